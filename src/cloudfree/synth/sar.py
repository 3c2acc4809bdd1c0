"""Sentinel-1 GRD (VV, VH) backscatter rendering of a land-cover layout.

Model, per polarisation, in dB: ``sigma0 = class mean + state sensitivity * Q + per-parcel
SAR-only offset + low-frequency texture (+ canopy texture in forests, per-block double bounce and
point scatterers in urban blocks, wind roughening on water) + incidence-angle gradient``. ``Q`` is
the same state term (vegetation vigour / soil moisture) that modulates the optical spectrum, so
SAR carries information on the hidden ground beyond the class. The mean is converted to linear
power, blurred (sigma 0.8 px, the roughly 20 m resolution of IW GRD on a 10 m grid), multiplied
by Gamma-distributed speckle with ``ENL`` looks (mean 1) and converted back to dB, floored at
:data:`SAR_FLOOR_DB`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cloudfree.synth.landcover import LandCover, LandCoverLayout
from cloudfree.synth.noise import fractal_noise

__all__ = ["CLASS_SAR_DB", "SAR_FLOOR_DB", "render_sar"]

#: Lowest value written (dB); speckle on calm water may otherwise reach -50 dB.
SAR_FLOOR_DB = -40.0

#: Mean backscatter (VV, VH) in dB per class id of
#: :class:`~cloudfree.synth.landcover.LandCover`, before texture and speckle.
CLASS_SAR_DB = np.array(
    [
        [-22.0, -29.0],  # water (calm; wind adds up to ~3.5 dB)
        [-7.0, -12.5],  # forest (volume scattering)
        [-11.5, -18.0],  # grassland
        [-9.5, -15.5],  # crop_dense (high biomass, strong VH)
        [-12.5, -20.5],  # crop_young
        [-14.5, -23.0],  # crop_harvested (smooth stubble)
        [-8.5, -18.5],  # bare_soil (rough ploughed soil: high VV, large VV-VH ratio)
        [1.0, -7.0],  # urban (double bounce)
    ],
    dtype=np.float32,
)

# dB change per unit of the state term Q (vigour: more volume scattering; moisture: brighter).
_STATE_SENSITIVITY = np.array(
    [
        [0.0, 0.0],  # water
        [0.2, 0.3],  # forest (C band saturates over dense canopies)
        [0.5, 0.8],  # grassland
        [0.5, 0.8],  # crop_dense
        [0.6, 0.9],  # crop_young
        [0.6, 0.6],  # crop_harvested
        [0.9, 0.7],  # bare_soil (moisture)
        [0.0, 0.0],  # urban
    ],
    dtype=np.float32,
)


def render_sar(
    layout: LandCoverLayout,
    state: np.ndarray,
    fine: np.ndarray,
    rng: np.random.Generator,
    *,
    speckle_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render float32 ``[2, H, W]`` VV, VH backscatter in dB.

    Args:
        layout: land-cover layout.
        state: float32 ``[H, W]`` state term ``Q`` shared with the optical renderer.
        fine: float32 ``[H, W]`` fine texture (unit variance), for forest canopies.
        rng: random generator for the SAR-only parts (per-parcel offsets, texture, speckle).
        speckle_rng: draw the speckle from this generator instead (a time series: the ground's
            SAR-only parts stay, each acquisition gets its own speckle).
    """
    cls = layout.classes
    h, w = cls.shape
    n = layout.n_parcels
    enl = rng.uniform(4.0, 5.0)
    wind = rng.uniform(0.0, 1.0)
    slope = rng.uniform(-1.0, 0.0)  # dB per 1000 px across range (incidence angle)

    # per-parcel SAR-only offsets (row direction, roughness), partially shared by VV and VH
    shared = rng.standard_normal(n).astype(np.float32)
    own = rng.standard_normal((2, n)).astype(np.float32)
    parcel_offset = 0.6 * (0.6 * shared[None, :] + 0.8 * own)
    # urban double bounce depends on the block orientation: strong per-block spread
    double_bounce = rng.normal(0.0, 3.5, size=n).astype(np.float32)

    texture = fractal_noise((h, w), rng, beta=2.8, scale=48.0)
    water_wind = fractal_noise((h, w), rng, beta=3.2, scale=96.0)
    x = (np.arange(w, dtype=np.float32)[None, :] - w / 2) / 1000.0

    is_water = cls == LandCover.WATER
    is_forest = cls == LandCover.FOREST
    is_urban = cls == LandCover.URBAN
    block = is_urban & ~layout.street
    points = block & (rng.random((h, w)) < 0.02)

    out = np.empty((2, h, w), dtype=np.float32)
    for p in range(2):
        db = CLASS_SAR_DB[:, p][cls] + _STATE_SENSITIVITY[:, p][cls] * state
        db += np.where(is_water, 0.0, parcel_offset[p][layout.parcel_id])
        db += 0.5 * texture
        db += np.where(is_forest, 0.8 * fine, 0.0)
        db += np.where(is_water, 3.5 * wind + 1.2 * water_wind, 0.0)
        db += np.where(block, double_bounce[layout.parcel_id], 0.0)
        db += np.where(layout.street, -9.0 if p == 0 else -8.0, 0.0)
        db += np.where(points, 12.0, 0.0)
        db += slope * x
        power = ndimage.gaussian_filter(10.0 ** (db / 10.0), 0.8, mode="nearest")
        power *= (speckle_rng or rng).gamma(enl, 1.0 / enl, size=(h, w)).astype(np.float32)
        out[p] = 10.0 * np.log10(np.maximum(power, 10.0 ** (SAR_FLOOR_DB / 10.0)))
    return out
