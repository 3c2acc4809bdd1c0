"""One synthetic SEN12MS-CR-style scene: land cover, clear and cloudy S2 L1C, S1 VV/VH.

:func:`generate_scene` draws everything from ``np.random.default_rng(seed)`` in a fixed order,
so the same seed gives bit-identical arrays. The pieces:

1. land cover (:mod:`cloudfree.synth.landcover`),
2. shared per-parcel / low-frequency *state* (vigour, moisture) and *brightness* terms,
3. the clear-sky optical image (:mod:`cloudfree.synth.optical`) -> ``clear_dn`` (the target),
4. SAR backscatter from the same land cover and state (:mod:`cloudfree.synth.sar`),
5. clouds and shadows (:mod:`cloudfree.synth.clouds`) -> ``cloudy_dn``.

The cloudy image shows the same ground as the target. With ``radiometric_jitter=True`` (default)
its ground also gets a small per-band gain (+-1.5 %), a path (aerosol) change (+-5 %) and
independent sensor noise (std 3 DN + 0.4 %), so the identity map is not perfect outside clouds;
with ``False`` the cloudy image equals ``clear_dn`` exactly wherever thickness and shadow are 0.

``domain="summer"`` (``"fall"``, ``"winter"``, or the SEN12MS-CR folder names) renders the same
seed's scene in another season (:mod:`cloudfree.synth.domains`): a shifted state term (vigour,
soil moisture; SAR follows it), per-class spectral factors and a path-radiance factor (phenology
tint, low sun), a season's cover distribution (for a drawn cover), cloud-type mix and shadow
length. No extra random numbers are drawn; ``domain=None`` and ``domain="spring"`` (the
reference season) give bit-identical arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.transform import Affine, from_origin

from cloudfree.errors import ConfigError
from cloudfree.synth.clouds import (
    VISIBLE_THICKNESS,
    CloudLayer,
    generate_clouds,
    render_cloudy_band,
)
from cloudfree.synth.domains import resolve_season
from cloudfree.synth.landcover import LANDCOVER_CLASSES, LandCoverLayout, generate_landcover
from cloudfree.synth.noise import fractal_noise
from cloudfree.synth.optical import OpticalGround, render_optical, to_dn
from cloudfree.synth.sar import render_sar

__all__ = ["DEFAULT_CRS", "DEFAULT_TRANSFORM", "MIN_SIZE", "SyntheticScene", "generate_scene"]

#: Smallest scene side accepted by :func:`generate_scene`.
MIN_SIZE = 8
#: Georeferencing of a scene generated without one (UTM 32N, 10 m, north-up).
DEFAULT_CRS = "EPSG:32632"
DEFAULT_TRANSFORM = from_origin(399960.0, 5000040.0, 10.0, 10.0)

Seed = int | Sequence[int]


@dataclass
class SyntheticScene:
    """A generated scene. All arrays share the ``[H, W]`` grid.

    Attributes:
        landcover: uint8 ``[H, W]`` class ids, names in
            :data:`~cloudfree.synth.landcover.LANDCOVER_CLASSES`.
        parcel_id: int32 ``[H, W]`` parcel / forest patch / water body ids.
        clear_dn: uint16 ``[13, H, W]`` cloud-free L1C DN (the target).
        cloudy_dn: uint16 ``[13, H, W]`` the same ground with clouds, haze and shadows.
        sar_db: float32 ``[2, H, W]`` S1 VV, VH backscatter in dB.
        cloud_thickness: float32 ``[H, W]`` cloud opacity in [0, 1].
        cloud_mask: bool ``[H, W]`` thick-ish cloud (thickness >= 0.3).
        shadow_mask: bool ``[H, W]`` visible cloud shadow outside ``cloud_mask``.
        shadow_strength: float32 ``[H, W]`` fraction of direct light removed (0 = no shadow).
        requested_cover: the cover the clouds were generated for.
        cloud_type: name of the cloud type, ``"none"`` without clouds.
        crs: CRS string (EPSG code).
        transform: affine transform of the 10 m north-up grid.
        params: per-scene parameters worth recording (seed, shadow offset, ...).
    """

    landcover: np.ndarray
    parcel_id: np.ndarray
    clear_dn: np.ndarray
    cloudy_dn: np.ndarray
    sar_db: np.ndarray
    cloud_thickness: np.ndarray
    cloud_mask: np.ndarray
    shadow_mask: np.ndarray
    shadow_strength: np.ndarray
    requested_cover: float
    cloud_type: str
    crs: str = DEFAULT_CRS
    transform: Affine = DEFAULT_TRANSFORM
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.landcover.shape[0])

    @property
    def width(self) -> int:
        return int(self.landcover.shape[1])

    @property
    def cloud_cover(self) -> float:
        """Measured cover: fraction of pixels with thickness >= 0.1 (thin or thick cloud)."""
        return float(np.mean(self.cloud_thickness >= VISIBLE_THICKNESS))

    @property
    def mask(self) -> np.ndarray:
        """int8 ``[H, W]``: 1 cloud, -1 shadow, 0 clear (the cloudmask convention)."""
        out = np.zeros(self.landcover.shape, dtype=np.int8)
        out[self.shadow_mask] = -1
        out[self.cloud_mask] = 1
        return out

    def class_fractions(self) -> dict[str, float]:
        """Fraction of pixels per land-cover class name."""
        counts = np.bincount(self.landcover.ravel(), minlength=len(LANDCOVER_CLASSES))
        return {n: float(counts[i]) / self.landcover.size for i, n in enumerate(LANDCOVER_CLASSES)}


def _make_rng(seed: Seed) -> np.random.Generator:
    values = [seed] if isinstance(seed, int | np.integer) else list(seed)
    if not values or any(
        isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0 for v in values
    ):
        raise ConfigError(
            f"seed must be a non-negative integer or a sequence of them, got {seed!r}"
        )
    return np.random.default_rng([int(v) for v in values])


def _drivers(
    layout: LandCoverLayout, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brightness, state (vigour / moisture) and fine-texture fields shared by both sensors."""
    h, w = layout.shape
    n = layout.n_parcels
    bright_parcel = rng.standard_normal(n).astype(np.float32)
    state_parcel = rng.standard_normal(n).astype(np.float32)
    low1 = fractal_noise((h, w), rng, beta=3.0, scale=80.0)
    low2 = fractal_noise((h, w), rng, beta=3.0, scale=80.0)
    fine = fractal_noise((h, w), rng, beta=2.0, scale=4.0)
    brightness = np.clip(0.7 * bright_parcel[layout.parcel_id] + 0.5 * low1, -3.0, 3.0)
    state = np.clip(0.8 * state_parcel[layout.parcel_id] + 0.45 * low2, -2.5, 2.5)
    return brightness, state, fine


def _jitter(n_bands: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-band gain and path (aerosol) change of the cloudy acquisition."""
    gain = rng.uniform(0.985, 1.015, size=n_bands).astype(np.float32)
    return gain, float(rng.uniform(0.95, 1.05))


def render_acquisition(
    ground: OpticalGround, clouds: CloudLayer, rng: np.random.Generator, jitter: bool
) -> tuple[np.ndarray, np.ndarray]:
    """uint16 DN ``(clear, cloudy)`` ``[13, H, W]`` of one acquisition of ``ground`` under
    ``clouds``; with ``jitter`` the cloudy one gets its radiometric change and sensor noise
    (module docstring), drawn from ``rng``."""
    nb, surface = ground.surface.shape[0], ground.surface
    h, w = surface.shape[1:]
    clear = np.empty((nb, h, w), dtype=np.uint16)
    cloudy = np.empty((nb, h, w), dtype=np.uint16)
    if jitter:
        gain, path_change = _jitter(nb, rng)
    else:
        gain, path_change = np.ones(nb, dtype=np.float32), 1.0
    for b in range(nb):  # band by band: no 13-band float temporaries
        to_dn(surface[b] + ground.path[b], out=clear[b])
        cloudy_path = float(ground.path[b] * gain[b] * path_change)
        band = render_cloudy_band(b, cloudy_path, surface[b] * gain[b], clouds)
        if jitter:
            noise = rng.standard_normal((h, w), dtype=np.float32)
            noise *= 3.0 + 0.004 * np.abs(band)
            band += noise
        to_dn(band, out=cloudy[b])
    return clear, cloudy


def generate_scene(
    height: int,
    width: int,
    *,
    seed: Seed,
    cloud_cover: float | None = None,
    cloud_type: str | None = None,
    radiometric_jitter: bool = True,
    crs: str = DEFAULT_CRS,
    transform: Affine = DEFAULT_TRANSFORM,
    domain: str | None = None,
) -> SyntheticScene:
    """Generate a deterministic synthetic scene.

    Args:
        height, width: size in pixels (10 m), at least :data:`MIN_SIZE`.
        seed: a non-negative integer or a sequence of them (e.g. ``(dataset_seed, index)``);
            the same seed gives bit-identical arrays.
        cloud_cover: fraction of pixels under thin or thick cloud (thickness >= 0.1), in
            [0, 1]; ``None`` draws it uniformly in [0, 1] from the seed.
        cloud_type: force a cloud type (``cumulus``, ``mixed``, ``haze``, ``cirrus``,
            ``overcast``); ``None`` draws one suited to the cover.
        radiometric_jitter: give the cloudy acquisition a small radiometric change and its own
            sensor noise (see the module docstring).
        crs, transform: georeferencing stored on the scene (writers set per-ROI values).
        domain: season domain (``spring``, ``summer``, ``fall``, ``winter`` or a SEN12MS-CR
            season folder name such as ``ROIs2017_winter``); None (and ``spring``, the
            reference) is the unshifted simulator. With a season, a drawn cover (``cloud_cover
            =None``) follows that season's distribution and a drawn cloud type its type mix; an
            explicit ``cloud_cover`` / ``cloud_type`` is used as given. See
            :mod:`cloudfree.synth.domains` for the shifts and their numbers.
    """
    h, w = int(height), int(width)
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ConfigError(f"scene size must be at least {MIN_SIZE}x{MIN_SIZE} px, got {h}x{w}")
    season = resolve_season(domain) if domain is not None else None
    shift = season if season is not None and not season.is_reference else None
    rng = _make_rng(seed)
    layout = generate_landcover(h, w, rng)
    brightness, state, fine = _drivers(layout, rng)
    drawn_cover = float(rng.uniform(0.0, 1.0))
    if shift is not None:
        drawn_cover = shift.cover_from_uniform(drawn_cover)
        state = shift.shift_state(state, layout.classes)
    cover = drawn_cover if cloud_cover is None else float(cloud_cover)
    if not 0.0 <= cover <= 1.0:
        raise ConfigError(f"cloud_cover must be in [0, 1], got {cloud_cover}")

    # without a shift the defaults (None, None, None, 1.0) are the unshifted code paths
    ground = render_optical(
        layout,
        brightness,
        state,
        fine,
        rng,
        surface_gain=None if shift is None else shift.surface_gain(),
        path_gain=None if shift is None else shift.path_gain(),
    )
    sar = render_sar(layout, state, fine, rng)
    clouds: CloudLayer = generate_clouds(
        h,
        w,
        cover,
        rng,
        cloud_type=cloud_type,
        type_weights=None if shift is None else shift.cloud_type_weights,
        shadow_scale=1.0 if shift is None else shift.shadow_scale,
    )

    clear, cloudy = render_acquisition(ground, clouds, rng, radiometric_jitter)

    return SyntheticScene(
        landcover=layout.classes,
        parcel_id=layout.parcel_id,
        clear_dn=clear,
        cloudy_dn=cloudy,
        sar_db=sar,
        cloud_thickness=clouds.thickness,
        cloud_mask=clouds.cloud_mask,
        shadow_mask=clouds.shadow_mask,
        shadow_strength=clouds.shadow,
        requested_cover=cover,
        cloud_type=clouds.cloud_type,
        crs=crs,
        transform=transform,
        params={
            "seed": [int(v) for v in ([seed] if isinstance(seed, int | np.integer) else seed)],
            "shadow_offset_px": list(clouds.shadow_offset),
            "radiometric_jitter": bool(radiometric_jitter),
            "domain": None if season is None else season.name,
        },
    )
