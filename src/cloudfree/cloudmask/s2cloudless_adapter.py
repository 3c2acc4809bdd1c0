"""Adapter for the s2cloudless pixel classifier (optional extra ``cloudfree[cloudmask]``).

s2cloudless (Sentinel Hub, LightGBM model shipped in the PyPI package) is called exactly as
UnCRtainTS's data loader calls it for its ``s2cloudless_mask`` option::

    det  = S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
    x    = moveaxis(clip(float32(DN), 0, 10000) / 10000, 0, -1)[None]     # [1, H, W, 13]
    prob = det.get_cloud_probability_maps(x)[0]
    mask = det.get_cloud_masks(x)[0]

The mask is derived from the probabilities already computed (``get_mask_from_prob``, which is what
``get_cloud_masks`` does internally), so the classifier runs once instead of twice; the result is
identical. The package is imported lazily, so ``cloudfree`` works without it until this function
is called.
"""

from __future__ import annotations

import numpy as np

from cloudfree.cloudmask._common import check_dn, check_threshold, validity
from cloudfree.errors import CloudfreeError

__all__ = ["S2CLOUDLESS_BANDS", "require_s2cloudless", "s2cloudless_mask"]

#: Band positions (0-based, L1C product order) that the s2cloudless model uses:
#: B01 B02 B04 B05 B08 B8A B09 B10 B11 B12.
S2CLOUDLESS_BANDS: tuple[int, ...] = (0, 1, 3, 4, 7, 8, 9, 10, 11, 12)

_INSTALL_HINT = (
    "the s2cloudless cloud detector needs the optional package 's2cloudless'; "
    "install it with: pip install 'cloudfree[cloudmask]'  (or: pip install s2cloudless)"
)


def _detector_class() -> type:
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError as exc:
        raise CloudfreeError(f"{_INSTALL_HINT} ({exc})") from None
    return S2PixelCloudDetector


def require_s2cloudless() -> None:
    """Raise :class:`CloudfreeError` (with the install command) unless s2cloudless imports.

    Lets callers fail before reading a large scene.
    """
    _detector_class()


def s2cloudless_mask(
    dn: np.ndarray,
    threshold: float = 0.4,
    average_over: int | None = 4,
    dilation_size: int | None = 2,
    all_bands: bool = True,
    *,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud probability and mask from s2cloudless.

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype; cast to float32, clipped to
            [0, 10000] and divided by 10000 before the call). Always all 13 bands.
        threshold: probability threshold of the mask (after averaging), s2cloudless' ``>``.
        average_over: radius of the disk used to average the probabilities (``None``/0: off).
        dilation_size: radius of the disk used to dilate the mask (``None``/0: off).
        all_bands: ``True`` (UnCRtainTS' call) hands all 13 bands to s2cloudless, which picks
            its 10 bands itself; ``False`` selects :data:`S2CLOUDLESS_BANDS` here first. Both
            give identical numbers; ``False`` needs less memory on large scenes.
        valid: optional boolean ``[H, W]``; invalid pixels (also NaN/inf in any band) are fed to
            the model as 0, get probability 0 before the averaging and dilation, and are 0 in
            the mask.

    Returns:
        ``(prob, mask)``: float32 ``[H, W]`` probabilities in [0, 1] and uint8 ``[H, W]`` mask
        (1 cloud, 0 clear).

    Raises:
        CloudfreeError: s2cloudless is not installed (the message says how to install it).
    """
    arr = check_dn(dn)
    check_threshold(threshold, "s2cloudless threshold", unit_range=False)
    detector_cls = _detector_class()
    v = validity(arr, valid)
    bands = list(range(arr.shape[0])) if all_bands else list(S2CLOUDLESS_BANDS)
    img = arr[bands].astype(np.float32)
    if v is not None:
        img[:, ~v] = 0.0
    x = np.moveaxis(np.clip(img, 0, 10000) / 10000, 0, -1)[None]
    del img
    det = detector_cls(
        threshold=threshold,
        all_bands=all_bands,
        average_over=average_over,
        dilation_size=dilation_size,
    )
    prob = np.asarray(det.get_cloud_probability_maps(x), dtype=np.float32)
    del x
    if v is not None:
        prob[0, ~v] = 0.0
    mask = np.asarray(det.get_mask_from_prob(prob), dtype=np.uint8)[0]
    if v is not None:
        mask[~v] = 0
    return prob[0], mask
