"""The CARF cloud score and snow-filtered cloud mask (paper 004, eq. 13-16; SPEC section 3).

CARF (Cloud-Attentive Reconstruction Framework, Bui & Le 2025) weights its training loss with a
cloud mask built from a simplified form of the rule-based score: the same four brightness tests,
**without** the snow term inside the minimum, **without** morphology (no closing, no box mean) and
with the snow test applied afterwards as a hard filter. With reflectance ``r`` = DN / 10000 and
``s(x, lo, hi) = (x - lo) / (hi - lo)``::

    S_c = min(1, s(B02, 0.1, 0.5), s(B01, 0.1, 0.3), s(B01 + B10, 0.15, 0.2),
              s(B04 + B03 + B02, 0.2, 0.8))                        (eq. 13)
    M   = S_c > threshold              (threshold T_cloud = 0.2)   (eq. 14)
    NDSI = (B03 - B11) / (B03 + B11)                               (eq. 15)
    M'  = M and NDSI < 0.6                                         (eq. 16)

Decisions (the OCR-damaged paper is silent): the comparison in eq. 14 is strict (``>``), as
printed; eq. 16 keeps pixels with NDSI strictly below 0.6; a zero NDSI denominator is replaced
by 0.001 as in the rule-based detector (so a pixel dark in both B03 and B11 has NDSI 0, not
snow). Arithmetic is float32 on ``float32(DN) / 10000``, like the rule-based detector. The score
is purely per-pixel, so unlike the rule-based masks this one may be computed tile by tile.
Invalid pixels (NaN/inf in any band, or ``valid`` False) get score 0 and are never cloud.
"""

from __future__ import annotations

import numpy as np

from cloudfree.cloudmask._common import (
    Reflectance,
    check_dn,
    check_threshold,
    normalized_difference,
    rescale,
    validity,
)

__all__ = ["CARF_NDSI_SNOW", "carf_cloud_score", "carf_cloud_mask"]

#: Pixels with NDSI at or above this value are treated as snow, not cloud (eq. 16).
CARF_NDSI_SNOW = 0.6


def _carf_score(refl: Reflectance) -> np.ndarray:
    b01, b02, b03, b04, b10 = (refl[i] for i in (0, 1, 2, 3, 10))
    score = np.minimum(rescale(b02, 0.1, 0.5), 1.0)
    np.minimum(score, rescale(b01, 0.1, 0.3), out=score)
    np.minimum(score, rescale(b01 + b10, 0.15, 0.2), out=score)
    np.minimum(score, rescale(b04 + b03 + b02, 0.2, 0.8), out=score)
    return score


def carf_cloud_score(dn: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """CARF cloud score ``S_c`` (eq. 13): float32 ``[H, W]``, at most 1 (may be negative).

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype; cast to float32).
        valid: optional boolean ``[H, W]``; invalid pixels get score 0.
    """
    arr = check_dn(dn)
    v = validity(arr, valid)
    score = _carf_score(Reflectance(arr, v))
    if v is not None:
        score[~v] = 0.0
    return score


def carf_cloud_mask(
    dn: np.ndarray, threshold: float = 0.2, *, valid: np.ndarray | None = None
) -> np.ndarray:
    """CARF snow-filtered cloud mask ``M'`` (eq. 14-16): bool ``[H, W]``, True = cloud.

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype; cast to float32).
        threshold: ``T_cloud``; cloud where ``S_c > threshold`` (default 0.2).
        valid: optional boolean ``[H, W]``; invalid pixels are never cloud.
    """
    t = check_threshold(threshold, unit_range=False)
    arr = check_dn(dn)
    v = validity(arr, valid)
    refl = Reflectance(arr, v)
    mask = _carf_score(refl) > t
    mask &= normalized_difference(refl[2], refl[11]) < CARF_NDSI_SNOW
    if v is not None:
        mask &= v
    return mask
