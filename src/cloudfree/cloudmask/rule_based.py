"""Rule-based cloud and cloud-shadow detector of DSen2-CR, GLF-CR and UnCRtainTS (SPEC 3).

This is an independent re-implementation that reproduces the official masks bit for bit (see the
``parity/cloudmask`` fixture). All arithmetic follows the official numerics: reflectance is
``float32(DN) / 10000`` in float32, the rescalings and the snow index are float32, the 7 x 7 box
mean is ``scipy.signal.convolve2d`` of the float32 score with a float64 box (so the score that is
compared with the threshold is float64), and the shadow thresholds use NumPy's float32 ``min`` and
``mean`` of the whole image.

**Cloud score** (reflectance ``r`` = DN / 10000, ``s(x, lo, hi) = (x - lo) / (hi - lo)``)::

    score = min(1, s(B02, 0.1, 0.5), s(B01, 0.1, 0.3), s(B01 + B10, lo, hi),
                s(B04 + B03 + B02, 0.2, 0.8), s(NDSI, 0.8, 0.6))
    NDSI  = (B03 - B11) / (B03 + B11)     (a zero denominator is replaced by 0.001)
    score = clip(box_mean_7x7(grey_closing_5x5(score)), 1e-5, 1)
    cloud = score >= threshold            (threshold 0.2 in every official repository)

with ``(lo, hi) = (0.15, 0.2)`` for ``variant="glf_cr"`` (GLF-CR and DSen2-CR, our default) and
``(0.4, 0.9)`` for ``variant="uncrtaints"`` (the copy in UnCRtainTS / SEN12MS-CR-TS, which flags far
less cloud). The grey closing reflects at the image border (SciPy's default); the box mean treats
pixels outside the image as 0 (``convolve2d(mode='same')`` zero fill), so scores fall off within
3 pixels of the border, as in the official code.

**Shadow**::

    CSI = (B08 + B11) / 2
    T3  = min(CSI) + 3/4 (mean(CSI) - min(CSI))
    T4  = min(B02) + 5/6 (mean(B02) - min(B02))
    shadow = median_5x5(CSI < T3 and B02 < T4)   (zero padding outside the image)

The thresholds are **image-relative**: they depend on the minimum and mean over the whole image,
so masks must be computed on the full scene (or the full patch a model sees), never tile by tile;
a tiled computation gives different shadows at every tile. The same is true, to a lesser degree,
of the cloud score near tile borders (closing and box mean).

The 5 x 5 median of a 0/1 image is implemented exactly as a count: a pixel is shadow when at least
13 of the 25 pixels of its window are shadow candidates (pixels outside the image count as not
shadow, the zero padding of ``scipy.signal.medfilt2d``). This is identical to the official
``medfilt2d`` and several times faster.

**Combined mask** (int8): ``-1`` shadow, ``0`` clear, ``1`` cloud; cloud wins where both apply.

**Invalid pixels** (NaN or infinite in any band, or ``valid`` False): their band values are set to
0 before anything is computed, their cloud score is set to 0 before the closing and the box mean
(so they act like the zero fill outside the image), they are excluded from the shadow statistics
(min and mean over valid pixels only), they never count as shadow candidates, and they are
labelled 0 (clear) in every output. On a fully valid image these rules change nothing, so the
official behaviour is reproduced exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage, signal

from cloudfree.cloudmask._common import (
    Reflectance,
    check_dn,
    check_threshold,
    normalized_difference,
    rescale,
    validity,
)
from cloudfree.errors import ConfigError

__all__ = [
    "RULE_BASED_VARIANTS",
    "cloud_score",
    "shadow_mask",
    "rule_based",
    "cloud_cover",
]

Variant = Literal["glf_cr", "uncrtaints"]

#: Rescaling range of B01 + B10 in each variant of the official detector.
RULE_BASED_VARIANTS: dict[str, tuple[float, float]] = {
    "glf_cr": (0.15, 0.2),
    "uncrtaints": (0.4, 0.9),
}

_CLOSING_SIZE = (5, 5)
_BOX_SIZE = 7
_MEDIAN_SIZE = 5


def _check_variant(variant: str) -> tuple[float, float]:
    try:
        return RULE_BASED_VARIANTS[variant]
    except KeyError:
        raise ConfigError(
            f"unknown rule-based variant {variant!r}; choose one of {sorted(RULE_BASED_VARIANTS)}"
        ) from None


def _check_threshold(threshold: float) -> float:
    return check_threshold(threshold, unit_range=False)


def _raw_score(refl: Reflectance, b1_b10_range: tuple[float, float]) -> np.ndarray:
    """The per-pixel cloud score before closing and box mean (float32)."""
    b01, b02, b03, b04, b10, b11 = (refl[i] for i in (0, 1, 2, 3, 10, 11))
    score = np.minimum(rescale(b02, 0.1, 0.5), 1.0)
    np.minimum(score, rescale(b01, 0.1, 0.3), out=score)
    np.minimum(score, rescale(b01 + b10, *b1_b10_range), out=score)
    # (B04 + B03) + B02: the official summation order (float32 addition is not associative).
    np.minimum(score, rescale(b04 + b03 + b02, 0.2, 0.8), out=score)
    np.minimum(score, rescale(normalized_difference(b03, b11), 0.8, 0.6), out=score)
    return score


def _score(refl: Reflectance, valid: np.ndarray | None, variant: str) -> np.ndarray:
    score = _raw_score(refl, _check_variant(variant))
    if valid is not None:
        score[~valid] = 0.0
    score = ndimage.grey_closing(score, size=_CLOSING_SIZE)
    box = np.ones((_BOX_SIZE, _BOX_SIZE)) / (_BOX_SIZE**2)
    # convolve2d (not a separable filter): its summation order is the official one, and a
    # different order can flip pixels whose score lies within rounding of the threshold.
    out = signal.convolve2d(score, box, mode="same")
    np.clip(out, 0.00001, 1.0, out=out)
    return out


def _box_count(candidates: np.ndarray, size: int) -> np.ndarray:
    """Number of True pixels in each ``size`` x ``size`` window, zero padding (uint8)."""
    r = size // 2
    h, w = candidates.shape
    p = np.zeros((h + 2 * r, w + 2 * r), dtype=np.uint8)
    p[r : r + h, r : r + w] = candidates
    rows = p[0:h].copy()
    for k in range(1, size):
        rows += p[k : k + h]
    out = rows[:, 0:w].copy()
    for k in range(1, size):
        out += rows[:, k : k + w]
    return out


def _shadow(refl: Reflectance, valid: np.ndarray | None) -> np.ndarray:
    b02 = refl[1]
    csi = (refl[7] + refl[11]) / 2.0
    h, w = b02.shape
    if valid is None:
        csi_s, b02_s = csi, b02
    else:
        csi_s, b02_s = csi[valid], b02[valid]
        if csi_s.size == 0:
            return np.zeros((h, w), dtype=np.int8)
    # float32 min and mean (NumPy's pairwise float32 summation), Python-float weights: the
    # official expressions, which keep the thresholds in float32.
    t3 = np.min(csi_s) + 3 / 4 * (np.mean(csi_s) - np.min(csi_s))
    t4 = np.min(b02_s) + 5 / 6 * (np.mean(b02_s) - np.min(b02_s))
    candidates = (csi < t3) & (b02 < t4)
    if valid is not None:
        candidates &= valid
    half = _MEDIAN_SIZE * _MEDIAN_SIZE // 2  # 12: the median is -1 when more than half are -1
    shadow = _box_count(candidates, _MEDIAN_SIZE) > half
    out = np.zeros((h, w), dtype=np.int8)
    out[shadow] = -1
    if valid is not None:
        out[~valid] = 0
    return out


def cloud_score(
    dn: np.ndarray, variant: Variant | str = "glf_cr", *, valid: np.ndarray | None = None
) -> np.ndarray:
    """The rule-based cloud score after closing, box mean and clipping.

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype; cast to float32).
        variant: ``"glf_cr"`` (B01 + B10 rescaled over [0.15, 0.2]) or ``"uncrtaints"``
            ([0.4, 0.9]).
        valid: optional boolean ``[H, W]``; False marks nodata (see the module docstring).

    Returns:
        float64 ``[H, W]`` in [1e-5, 1] (float64 because the official box mean promotes to it;
        the threshold comparison is made on these values). Invalid pixels keep the score their
        neighbourhood gives them; :func:`rule_based` labels them clear.
    """
    arr = check_dn(dn)
    v = validity(arr, valid)
    return _score(Reflectance(arr, v), v, variant)


def shadow_mask(dn: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """The rule-based cloud-shadow mask: int8 ``[H, W]``, -1 shadow, 0 otherwise.

    Equals the official ``get_shadow_mask`` (after its 5 x 5 median filter). Image-relative:
    compute it on the whole image. ``valid`` as in :func:`cloud_score`; invalid pixels are
    excluded from the statistics and are 0.
    """
    arr = check_dn(dn)
    v = validity(arr, valid)
    return _shadow(Reflectance(arr, v), v)


def rule_based(
    dn: np.ndarray,
    threshold: float = 0.2,
    variant: Variant | str = "glf_cr",
    *,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Combined rule-based cloud and shadow mask.

    Args:
        dn: Sentinel-2 L1C DN ``[13, H, W]`` (any numeric dtype; cast to float32), whole image.
        threshold: a pixel is cloud when its score is ``>= threshold`` (official default 0.2).
        variant: ``"glf_cr"`` (default; GLF-CR and DSen2-CR) or ``"uncrtaints"``.
        valid: optional boolean ``[H, W]``; False marks nodata. NaN/inf pixels are invalid too.

    Returns:
        int8 ``[H, W]``: ``-1`` shadow, ``0`` clear (and invalid), ``1`` cloud; cloud wins.
    """
    t = _check_threshold(threshold)
    _check_variant(variant)
    arr = check_dn(dn)
    v = validity(arr, valid)
    refl = Reflectance(arr, v)
    out = _shadow(refl, v)
    out[_score(refl, v, variant) >= t] = 1
    if v is not None:
        out[~v] = 0
    return out


def cloud_cover(
    mask: np.ndarray, *, include_shadow: bool = False, valid: np.ndarray | None = None
) -> float:
    """Fraction of cloud pixels in a mask.

    Args:
        mask: a mask from any detector here: int8 -1/0/1, or 0/1 (uint8 or bool).
        include_shadow: count shadow pixels (``mask == -1``) as well. By default they do not
            count: "cloud cover" is ``mask == 1`` only, as in GLF-CR's cover bins.
        valid: optional boolean ``[H, W]``; the fraction is then over valid pixels only.

    Returns:
        The fraction in [0, 1]; NaN when there is no (valid) pixel.
    """
    m = np.asarray(mask)
    hit = (m == 1) | (m == -1) if include_shadow else (m == 1)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != m.shape:
            raise ConfigError(f"valid mask shape {v.shape} differs from the mask shape {m.shape}")
        n = int(v.sum())
        return float("nan") if n == 0 else float(np.count_nonzero(hit & v)) / n
    return float("nan") if m.size == 0 else float(np.count_nonzero(hit)) / m.size
