"""One entry point for every cloud-mask method: :func:`compute_cloud_mask`.

:data:`CLOUD_MASK_METHODS` is the single list of method names (the CLI offers exactly these).
Every method returns int8 ``[H, W]`` with the same encoding, ``-1`` shadow, ``0`` clear,
``1`` cloud; the methods without a shadow detector (``carf``, ``s2cloudless``) only use 0 and 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cloudfree.cloudmask._common import check_threshold
from cloudfree.cloudmask.carf import carf_cloud_mask
from cloudfree.cloudmask.rule_based import rule_based
from cloudfree.cloudmask.s2cloudless_adapter import s2cloudless_mask
from cloudfree.errors import ConfigError

__all__ = ["CLOUD_MASK_METHODS", "DEFAULT_THRESHOLDS", "MASK_ENCODING", "compute_cloud_mask"]

#: The encoding of every mask :func:`compute_cloud_mask` returns (also written as a GeoTIFF tag).
MASK_ENCODING = "-1 shadow, 0 clear, 1 cloud"


def _rule_based_glf_cr(dn: np.ndarray, **kw: Any) -> np.ndarray:
    return rule_based(dn, variant="glf_cr", **kw)


def _rule_based_uncrtaints(dn: np.ndarray, **kw: Any) -> np.ndarray:
    return rule_based(dn, variant="uncrtaints", **kw)


def _carf(dn: np.ndarray, **kw: Any) -> np.ndarray:
    return carf_cloud_mask(dn, **kw).astype(np.int8)


def _s2cloudless(dn: np.ndarray, **kw: Any) -> np.ndarray:
    return s2cloudless_mask(dn, **kw)[1].astype(np.int8)


#: Method name -> (function, one-line description). The single registry of mask methods.
CLOUD_MASK_METHODS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "rule_based": (
        _rule_based_glf_cr,
        "rule-based cloud + shadow detector, GLF-CR/DSen2-CR copy (default)",
    ),
    "rule_based_uncrtaints": (
        _rule_based_uncrtaints,
        "rule-based cloud + shadow detector, UnCRtainTS copy (B01+B10 over [0.4, 0.9])",
    ),
    "carf": (_carf, "CARF cloud score with NDSI snow filter (paper 004 eq. 13-16), no shadow"),
    "s2cloudless": (_s2cloudless, "s2cloudless LightGBM detector (optional extra), no shadow"),
}

#: Default threshold of each method (the keyword ``threshold`` overrides it).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "rule_based": 0.2,
    "rule_based_uncrtaints": 0.2,
    "carf": 0.2,
    "s2cloudless": 0.4,
}


def compute_cloud_mask(dn: np.ndarray, method: str = "rule_based", **kw: Any) -> np.ndarray:
    """Cloud (and, where the method has one, shadow) mask of a whole image.

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype).
        method: one of :data:`CLOUD_MASK_METHODS`: ``rule_based`` (GLF-CR variant),
            ``rule_based_uncrtaints``, ``carf``, ``s2cloudless``.
        **kw: passed to the method's function: ``threshold`` (in [0, 1], else
            :class:`~cloudfree.errors.ConfigError`) and ``valid`` for all of them,
            ``average_over``, ``dilation_size``, ``all_bands`` for ``s2cloudless``.

    Returns:
        int8 ``[H, W]``: ``-1`` shadow, ``0`` clear, ``1`` cloud (see :data:`MASK_ENCODING`).
    """
    try:
        fn = CLOUD_MASK_METHODS[method][0]
    except KeyError:
        raise ConfigError(
            f"unknown cloud-mask method {method!r}; choose one of {list(CLOUD_MASK_METHODS)}"
        ) from None
    if kw.get("threshold") is not None:
        kw["threshold"] = check_threshold(kw["threshold"])
    return fn(dn, **kw)
