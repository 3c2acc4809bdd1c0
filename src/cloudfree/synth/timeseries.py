"""One synthetic scene seen on T dates: phenology, surface changes, per-date clouds and S1.

:func:`generate_time_series` builds on the mono-temporal generator (:mod:`cloudfree.synth.scene`):
the same land cover, brightness, state and texture fields drive every date, and each date adds

* **dates**: the first S2 date is drawn in January-February 2018 (as SEN12MS-CR-TS), then one
  every 5 to 12 days (revisit plus gaps); each S1 acquisition is 0 to 2 days from its S2 date
  (either side), as the dataset pairs them;
* **phenology**: the state term ``Q`` of vegetated pixels follows a growing season,
  ``Q_t = Q + a(class) sin(2 pi (doy_t - phase_parcel) / 365)`` with ``a`` = 0.9 for crops,
  0.6 for grassland, 0.35 for forest and 0 elsewhere, and a per-parcel phase; ``Q`` drives the
  optical reflectance (vegetation indices) and the SAR backscatter alike;
* **surface changes** between dates at a tunable rate and size: for every date after the first,
  ``Poisson(change_rate)`` events, each one of ``harvest`` (a dense crop parcel becomes
  harvested), ``plough`` (a harvested or grassland parcel becomes bare soil, darker: freshly
  turned), ``building`` (a rectangle of side about ``2 x change_size`` becomes urban),
  ``flood`` (a disc of radius about
  ``change_size`` becomes water) and ``fire`` (a disc over forest or grassland becomes dark bare
  soil). A change stays for every later date. The land-cover class drives both sensors, so every
  change is visible in the optical truth and in the SAR of the dates after it (tested);
* **clouds** per date: clear with probability 0.3 (cover 0), otherwise a cover drawn uniformly in
  [0.05, 1] (clear to overcast), each date its own cloud field and type;
* **per-date S1**: the ground's SAR-only structure (per-parcel offsets, texture) is kept, the
  speckle is drawn anew for each acquisition, plus a per-acquisition calibration offset of
  +-0.3 dB (both polarisations).

Every date's clear image is kept (``clear_dn``: the truth of that date) next to what the sensor saw
(``cloudy_dn``; equal to the truth up to the radiometric jitter where there is no cloud).
``change_event[t]`` marks the pixels whose surface changed between date ``t - 1`` and ``t`` with
the number of the event (``change`` is the same as a boolean map); every event is listed in
``events``. The same seed gives bit-identical arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.transform import Affine

from cloudfree.errors import ConfigError
from cloudfree.synth.clouds import generate_clouds
from cloudfree.synth.landcover import LandCover, LandCoverLayout, generate_landcover
from cloudfree.synth.optical import render_optical
from cloudfree.synth.sar import render_sar
from cloudfree.synth.scene import (
    DEFAULT_CRS,
    DEFAULT_TRANSFORM,
    MIN_SIZE,
    Seed,
    _drivers,
    _make_rng,
    render_acquisition,
)

__all__ = [
    "CHANGE_KINDS",
    "MAX_DATES",
    "ChangeEvent",
    "SyntheticTimeSeries",
    "generate_time_series",
]

#: Kinds of surface change the generator makes.
CHANGE_KINDS: tuple[str, ...] = ("harvest", "plough", "building", "flood", "fire")
#: Most dates a series may have (SEN12MS-CR-TS has 30).
MAX_DATES = 30
_MIN_DATES = 2
#: Phenology amplitude of the state term per land-cover class id.
_PHENOLOGY_AMPLITUDE = np.array([0.0, 0.35, 0.6, 0.9, 0.9, 0.0, 0.0, 0.0], dtype=np.float32)
_P_CLEAR = 0.3
#: Brightness term after a change: burnt ground is dark, freshly turned soil darker and moister.
_NEW_BRIGHTNESS = {"fire": -2.5, "plough": -1.2}


@dataclass(frozen=True)
class ChangeEvent:
    """One surface change: first visible on date ``date_index``."""

    date_index: int
    kind: str
    pixels: int
    box: tuple[int, int, int, int]  # row0, col0, row1, col1 (exclusive)


@dataclass
class SyntheticTimeSeries:
    """A scene on T dates (arrays indexed by date first).

    Attributes:
        dates: S2 acquisition dates; ``s1_dates`` those of S1.
        landcover: uint8 ``[T, H, W]`` class ids per date.
        clear_dn, cloudy_dn: uint16 ``[T, 13, H, W]``: each date's truth and what S2 saw.
        sar_db: float32 ``[T, 2, H, W]`` VV, VH dB.
        cloud_mask, shadow_mask: bool ``[T, H, W]``.
        covers: float ``[T]`` cloud cover (fraction of pixels in ``cloud_mask``).
        change_event: int16 ``[T, H, W]``: 0, or ``k`` where event ``events[k - 1]`` changed
            the surface between date ``t - 1`` and ``t`` (the last event wins where two overlap).
        events: every change event.
    """

    dates: tuple[dt.date, ...]
    s1_dates: tuple[dt.date, ...]
    landcover: np.ndarray
    clear_dn: np.ndarray
    cloudy_dn: np.ndarray
    sar_db: np.ndarray
    cloud_mask: np.ndarray
    shadow_mask: np.ndarray
    covers: np.ndarray
    change_event: np.ndarray
    events: list[ChangeEvent]
    crs: str = DEFAULT_CRS
    transform: Affine = DEFAULT_TRANSFORM
    params: dict[str, Any] = field(default_factory=dict)

    def mask_of(self, t: int) -> np.ndarray:
        """int8 ``[H, W]`` of date ``t``: 1 cloud, -1 shadow, 0 clear (the cloudmask
        convention, as :attr:`cloudfree.synth.SyntheticScene.mask`)."""
        out = np.zeros(self.landcover.shape[1:], dtype=np.int8)
        out[self.shadow_mask[t]] = -1
        out[self.cloud_mask[t]] = 1
        return out

    @property
    def change(self) -> np.ndarray:
        """bool ``[T, H, W]``: the surface changed between date ``t - 1`` and ``t``."""
        return self.change_event > 0

    @property
    def n_dates(self) -> int:
        return len(self.dates)

    @property
    def height(self) -> int:
        return int(self.landcover.shape[1])

    @property
    def width(self) -> int:
        return int(self.landcover.shape[2])

    def changed_between(self, t0: int, t1: int) -> np.ndarray:
        """Pixels whose surface changed on any date in ``(min, max]`` of ``t0``, ``t1``."""
        a, b = sorted((int(t0), int(t1)))
        if a == b:
            return np.zeros(self.landcover.shape[1:], dtype=bool)
        return self.change[a + 1 : b + 1].any(axis=0)


def _dates(n: int, rng: np.random.Generator) -> tuple[list[dt.date], list[dt.date]]:
    start = dt.date(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 45)))
    steps = rng.integers(5, 13, size=n - 1)
    s2 = [start]
    for s in steps:
        s2.append(s2[-1] + dt.timedelta(days=int(s)))
    offsets = rng.integers(-2, 3, size=n)
    s1 = [d + dt.timedelta(days=int(o)) for d, o in zip(s2, offsets)]
    return s2, s1


def _disc(h: int, w: int, r0: int, c0: int, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return (yy - r0) ** 2 + (xx - c0) ** 2 <= radius**2


def _event(
    kind: str,
    classes: np.ndarray,
    layout: LandCoverLayout,
    size: float,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Pixels a ``kind`` event takes (or None when the scene has nothing it applies to)."""
    h, w = classes.shape
    if kind in ("harvest", "plough"):
        sources = (
            (LandCover.CROP_DENSE,)
            if kind == "harvest"
            else (LandCover.CROP_HARVESTED, LandCover.GRASSLAND)
        )
        ok = np.isin(classes, sources)
        parcels = np.unique(layout.parcel_id[ok])
        if parcels.size == 0:
            return None
        pid = int(rng.choice(parcels))
        return ok & (layout.parcel_id == pid)
    radius = max(2.0, float(rng.uniform(0.6, 1.4)) * size)
    r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
    if kind == "building":
        half = int(round(radius))
        area = np.zeros((h, w), dtype=bool)
        area[max(0, r0 - half) : r0 + half, max(0, c0 - half) : c0 + half] = True
        area &= classes != LandCover.WATER
    else:
        area = _disc(h, w, r0, c0, radius)
        if kind == "fire":
            area &= np.isin(classes, (LandCover.FOREST, LandCover.GRASSLAND))
        else:  # flood
            area &= classes != LandCover.URBAN
    return area if area.any() else None


_TARGET_CLASS = {
    "harvest": LandCover.CROP_HARVESTED,
    "plough": LandCover.BARE_SOIL,
    "building": LandCover.URBAN,
    "flood": LandCover.WATER,
    "fire": LandCover.BARE_SOIL,
}


def generate_time_series(
    height: int,
    width: int,
    *,
    n_dates: int,
    seed: Seed,
    change_rate: float = 0.5,
    change_size: float | None = None,
    radiometric_jitter: bool = True,
    crs: str = DEFAULT_CRS,
    transform: Affine = DEFAULT_TRANSFORM,
) -> SyntheticTimeSeries:
    """Generate a deterministic synthetic time series (module docstring).

    Args:
        height, width: size in pixels (10 m), at least 8.
        n_dates: number of dates T, 2 to 30.
        seed: a non-negative integer or a sequence of them.
        change_rate: expected number of change events per date after the first (>= 0).
        change_size: typical event radius in pixels (default: an eighth of the shorter side,
            at least 3).
        radiometric_jitter, crs, transform: as :func:`cloudfree.synth.generate_scene`.
    """
    h, w, t_n = int(height), int(width), int(n_dates)
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ConfigError(f"scene size must be at least {MIN_SIZE}x{MIN_SIZE} px, got {h}x{w}")
    if not _MIN_DATES <= t_n <= MAX_DATES:
        raise ConfigError(f"n_dates must be between {_MIN_DATES} and {MAX_DATES}, got {n_dates}")
    if not (isinstance(change_rate, int | float) and change_rate >= 0):
        raise ConfigError(f"change_rate must be a number >= 0, got {change_rate!r}")
    size = float(change_size) if change_size is not None else max(3.0, min(h, w) / 8.0)
    if size <= 0:
        raise ConfigError(f"change_size must be > 0, got {change_size!r}")
    seeds = [seed] if isinstance(seed, int | np.integer) else list(seed)
    rng = _make_rng(seeds)
    layout = generate_landcover(h, w, rng)
    brightness, state, fine = _drivers(layout, rng)
    phase = rng.uniform(0.0, 365.0, size=layout.n_parcels).astype(np.float32)[layout.parcel_id]
    s2_dates, s1_dates = _dates(t_n, rng)
    event_rng = _make_rng([*seeds, 101])

    classes = layout.classes.copy()
    bright = brightness.copy()
    shape3 = (t_n, h, w)
    landcover = np.empty(shape3, dtype=np.uint8)
    change_event = np.zeros(shape3, dtype=np.int16)
    cloud_mask = np.zeros(shape3, dtype=bool)
    shadow_mask = np.zeros(shape3, dtype=bool)
    clear = np.empty((t_n, 13, h, w), dtype=np.uint16)
    cloudy = np.empty((t_n, 13, h, w), dtype=np.uint16)
    sar = np.empty((t_n, 2, h, w), dtype=np.float32)
    covers = np.zeros(t_n, dtype=np.float64)
    events: list[ChangeEvent] = []

    for t in range(t_n):
        if t > 0:
            for _ in range(int(event_rng.poisson(change_rate))):
                kind = CHANGE_KINDS[int(event_rng.integers(0, len(CHANGE_KINDS)))]
                area = _event(kind, classes, layout, size, event_rng)
                if area is None:
                    continue
                before_cls, before_b = classes[area].copy(), bright[area].copy()
                classes[area] = _TARGET_CLASS[kind]
                if kind in _NEW_BRIGHTNESS:
                    bright[area] = _NEW_BRIGHTNESS[kind]
                moved = (classes[area] != before_cls) | (bright[area] != before_b)
                if not moved.any():
                    continue
                rows, cols = np.nonzero(area)
                box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
                events.append(ChangeEvent(t, kind, int(moved.sum()), box))
                change_event[t, rows[moved], cols[moved]] = len(events)
        landcover[t] = classes
        layout_t = LandCoverLayout(
            classes.copy(), layout.parcel_id, layout.n_parcels, layout.street
        )
        doy = s2_dates[t].timetuple().tm_yday
        season = np.sin(2.0 * np.pi * (doy - phase) / 365.0).astype(np.float32)
        state_t = state + _PHENOLOGY_AMPLITUDE[classes] * season
        date_rng = _make_rng([*seeds, 102, t])
        ground = render_optical(layout_t, bright, state_t, fine, date_rng)
        # the SAR-only ground structure comes from the same draws every date; the speckle not
        sar[t] = render_sar(layout_t, state_t, fine, _make_rng([*seeds, 103]), speckle_rng=date_rng)
        sar[t] += np.float32(date_rng.uniform(-0.3, 0.3))
        cover = 0.0 if date_rng.random() < _P_CLEAR else float(date_rng.uniform(0.05, 1.0))
        clouds = generate_clouds(h, w, cover, date_rng)
        clear[t], cloudy[t] = render_acquisition(ground, clouds, date_rng, radiometric_jitter)
        cloud_mask[t], shadow_mask[t] = clouds.cloud_mask, clouds.shadow_mask
        covers[t] = float(clouds.cloud_mask.mean())

    return SyntheticTimeSeries(
        dates=tuple(s2_dates),
        s1_dates=tuple(s1_dates),
        landcover=landcover,
        clear_dn=clear,
        cloudy_dn=cloudy,
        sar_db=sar,
        cloud_mask=cloud_mask,
        shadow_mask=shadow_mask,
        covers=covers,
        change_event=change_event,
        events=events,
        crs=crs,
        transform=transform,
        params={
            "seed": [int(v) for v in seeds],
            "n_dates": t_n,
            "change_rate": float(change_rate),
            "change_size": size,
            "radiometric_jitter": bool(radiometric_jitter),
        },
    )
