"""Input checks and band access shared by the cloud-mask detectors.

Conventions used by every detector in :mod:`cloudfree.cloudmask`:

* Input ``dn`` is a Sentinel-2 L1C array ``[13, H, W]`` in product band order
  (``B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12``) holding DN = reflectance x 10000,
  of any numeric dtype. Each band is cast to float32 and divided by 10000, as the official data
  loaders do (they call the detectors on ``img.astype('float32')``), so integer and float inputs
  with the same values give identical masks.
* Validity: a pixel is valid when all 13 of its values are finite and, if the caller passes
  ``valid``, ``valid`` is True there. Invalid values are replaced by 0 before any arithmetic so
  that NaN never spreads through the morphological filters; each detector documents what it does
  with invalid pixels (they are always labelled clear, 0).
"""

from __future__ import annotations

import numpy as np

from cloudfree.errors import CloudfreeError, ConfigError

__all__ = ["CloudMaskInputError", "check_dn", "check_threshold", "validity", "Reflectance"]

#: Number of Sentinel-2 L1C bands the detectors expect.
N_BANDS = 13


class CloudMaskInputError(CloudfreeError, ValueError):
    """The array given to a cloud-mask detector has the wrong shape, dtype or validity mask."""


def check_dn(dn: np.ndarray) -> np.ndarray:
    """Return ``dn`` as an ndarray after checking it is a numeric ``[13, H, W]`` array."""
    arr = np.asarray(dn)
    if arr.ndim != 3 or arr.shape[0] != N_BANDS:
        raise CloudMaskInputError(
            f"expected a Sentinel-2 L1C array of shape [13, H, W] (band order B01..B12), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise CloudMaskInputError(f"empty image of shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise CloudMaskInputError(f"expected a numeric array, got dtype {arr.dtype}")
    return arr


def check_threshold(
    threshold: float, what: str = "cloud threshold", *, unit_range: bool = True
) -> float:
    """``threshold`` as a float after checking it is finite and (``unit_range``) in [0, 1].

    Every detector compares a score or probability in [0, 1] with it; a threshold outside that
    range would silently label every pixel cloud (below 0) or none (above 1), so the user-facing
    entry points (:func:`~cloudfree.cloudmask.compute_cloud_mask`, the ``cloudmask`` command)
    refuse it. The detector functions themselves only require a finite number
    (``unit_range=False``), so that tests can probe them at extreme thresholds.
    """
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number in [0, 1], got {threshold!r}") from None
    if not np.isfinite(t):
        raise ConfigError(f"{what} must be a finite number, got {threshold!r}")
    if unit_range and not 0.0 <= t <= 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1], got {threshold!r}")
    return t


def validity(dn: np.ndarray, valid: np.ndarray | None) -> np.ndarray | None:
    """The validity mask ``[H, W]`` of ``dn``, or ``None`` when every pixel is valid.

    Returning ``None`` for a fully valid image lets the detectors take exactly the official code
    path (bit-identical statistics), which matters for parity.
    """
    h, w = dn.shape[1:]
    mask: np.ndarray | None = None
    if valid is not None:
        v = np.asarray(valid)
        if v.shape != (h, w):
            raise CloudMaskInputError(
                f"valid mask has shape {tuple(v.shape)}, expected the image shape {(h, w)}"
            )
        if v.dtype != np.bool_:
            raise CloudMaskInputError(f"valid mask must be boolean, got dtype {v.dtype}")
        mask = v.copy()
    if np.issubdtype(dn.dtype, np.floating):
        finite = np.ones((h, w), dtype=bool)
        for b in range(dn.shape[0]):
            finite &= np.isfinite(dn[b])
        mask = finite if mask is None else (mask & finite)
    if mask is not None and mask.all():
        return None
    return mask


class Reflectance:
    """Lazy per-band access to TOA reflectance (float32 DN / 10000), with invalid pixels zeroed.

    Bands are converted one at a time and cached, so a whole scene never needs a float32 copy of
    all 13 bands (a 5000 x 5000 scene needs 100 MB per band instead of 1.3 GB).
    """

    def __init__(self, dn: np.ndarray, valid: np.ndarray | None) -> None:
        self._dn = dn
        self._valid = valid
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, band: int) -> np.ndarray:
        if band not in self._cache:
            # float32 cast first, then division by a Python float: float32 arithmetic, exactly
            # as ``img.astype('float32') / 10000.`` in the official detectors.
            r = self._dn[band].astype(np.float32) / 10000.0
            if self._valid is not None:
                r[~self._valid] = 0.0
            self._cache[band] = r
        return self._cache[band]


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` in float32, with zero denominators replaced by 0.001.

    The replacement is the one the official rule-based detector makes to avoid dividing by 0.
    """
    num = a - b
    den = a + b
    den[den == 0] = 0.001
    num /= den
    return num


def rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` with ``lo``, ``hi`` Python floats (float32 arithmetic on x).

    ``hi - lo`` is evaluated in double precision first and then rounded to float32 by NumPy's
    scalar promotion, as in the official code; the float32 results are therefore bit-identical.
    """
    out = x - lo
    out /= hi - lo
    return out
