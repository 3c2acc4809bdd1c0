"""Synthetic land-cover maps: parcels, forest, water and urban blocks.

The scene is first cut into a few large *districts* (a Voronoi partition, boundaries are straight
like roads). Each district is agricultural, forest or urban:

* agricultural districts are cut into parcels by a rotated strip partition (strips of random
  width, each cut into fields of random length with a small per-strip shear), and every parcel
  gets a field class (grassland, dense crop, young crop, harvested crop, bare soil, rarely a
  woodlot) from district-specific proportions;
* forest districts are cut the same way into large stands (rarely a clearing);
* urban districts are cut into small blocks separated by 1-2 px streets; blocks are built-up,
  with a few parks and construction sites.

Natural shapes are then laid on top: forest patches (a thresholded smooth noise field, crossing
parcel boundaries), a meandering river and a lake (smooth noise-deformed shapes).

Every pixel also carries a ``parcel_id``: pixels of one parcel, forest patch or water body share
it, so renderers can give each parcel its own state (vigour, moisture, orientation).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from cloudfree.synth.noise import fractal_noise, fractal_noise_1d

__all__ = [
    "LANDCOVER_CLASSES",
    "FIELD_CLASSES",
    "LandCover",
    "LandCoverLayout",
    "generate_landcover",
]


class LandCover(IntEnum):
    """Land-cover class ids stored in the uint8 class map."""

    WATER = 0
    FOREST = 1
    GRASSLAND = 2
    CROP_DENSE = 3
    CROP_YOUNG = 4
    CROP_HARVESTED = 5
    BARE_SOIL = 6
    URBAN = 7


#: Class names indexed by class id (``LANDCOVER_CLASSES[LandCover.URBAN] == "urban"``).
LANDCOVER_CLASSES: tuple[str, ...] = tuple(c.name.lower() for c in LandCover)

#: Classes an agricultural parcel can take.
FIELD_CLASSES: tuple[LandCover, ...] = (
    LandCover.GRASSLAND,
    LandCover.CROP_DENSE,
    LandCover.CROP_YOUNG,
    LandCover.CROP_HARVESTED,
    LandCover.BARE_SOIL,
)

_AGRI, _FOREST_DISTRICT, _URBAN_DISTRICT = 0, 1, 2


@dataclass
class LandCoverLayout:
    """A land-cover map and its parcel structure.

    Attributes:
        classes: uint8 ``[H, W]`` class ids (:class:`LandCover`).
        parcel_id: int32 ``[H, W]``, one id per parcel / forest patch / water body / street net,
            ids in ``[0, n_parcels)``.
        n_parcels: number of distinct ids that may occur.
        street: bool ``[H, W]``, the street network inside urban districts (class urban).
    """

    classes: np.ndarray
    parcel_id: np.ndarray
    n_parcels: int
    street: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.classes.shape[0]), int(self.classes.shape[1])

    def class_fractions(self) -> dict[str, float]:
        """Fraction of the pixels in each class, keyed by class name (all classes listed)."""
        counts = np.bincount(self.classes.ravel(), minlength=len(LANDCOVER_CLASSES))
        total = max(int(self.classes.size), 1)
        return {name: float(counts[i]) / total for i, name in enumerate(LANDCOVER_CLASSES)}


def _strip_partition(
    ys: np.ndarray,
    xs: np.ndarray,
    rng: np.random.Generator,
    *,
    theta: float,
    width_range: tuple[float, float],
    length_range: tuple[float, float],
    shear: float = 0.25,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Cut the points ``(ys, xs)`` into rotated rectangular-ish cells.

    Strips of random width run along the rotated v axis; each strip is cut into cells of random
    length, with cut lines sheared per strip. Fully vectorised with one ``searchsorted``.

    Returns:
        ``(cell, n_cells, du, dv)``: a cell index per point in ``[0, n_cells)`` and the point's
        distance from its cell's lower strip edge (``du``) and lower cut (``dv``).
    """
    c, s = np.cos(theta), np.sin(theta)
    u = xs * c + ys * s
    v = -xs * s + ys * c
    u_min, u_max = float(u.min()), float(u.max())
    v_min, v_max = float(v.min()), float(v.max())

    n_strips = int((u_max - u_min) / width_range[0]) + 2
    widths = rng.uniform(width_range[0], width_range[1], size=n_strips)
    start = u_min - rng.uniform(0.0, width_range[1])
    upper = start + np.cumsum(widths)
    lower = upper - widths
    strip = np.minimum(np.searchsorted(upper, u, side="right"), n_strips - 1)
    du = u - lower[strip]

    shears = rng.uniform(-shear, shear, size=n_strips)
    v_sheared = v + shears[strip] * du
    margin = width_range[1] * shear + length_range[1]
    span = (v_max - v_min) + 2.0 * margin
    n_cuts = int(span / length_range[0]) + 2
    lengths = rng.uniform(length_range[0], length_range[1], size=(n_strips, n_cuts))
    base = v_min - margin
    cuts = np.cumsum(lengths, axis=1) - rng.uniform(0.0, length_range[1], size=(n_strips, 1))
    big = span + 4.0 * length_range[1] * n_cuts  # larger than any in-strip coordinate
    flat_cuts = (np.arange(n_strips)[:, None] * big + cuts).ravel()
    key = strip * big + (v_sheared - base)
    cell = np.searchsorted(flat_cuts, key, side="right")
    n_cells = flat_cuts.size + 1
    prev = flat_cuts[np.maximum(cell - 1, 0)]
    dv = np.where(cell > 0, key - prev, key - strip * big)
    return cell.astype(np.int64), n_cells, du.astype(np.float32), dv.astype(np.float32)


def _districts(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Voronoi districts: an int16 ``[H, W]`` index map and the number of districts."""
    typical = rng.uniform(150.0, 260.0)
    k = int(np.clip(round(h * w / typical**2), 1, 48))
    sy = rng.uniform(-0.1 * h, 1.1 * h, size=k).astype(np.float32)
    sx = rng.uniform(-0.1 * w, 1.1 * w, size=k).astype(np.float32)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    best = np.full((h, w), np.inf, dtype=np.float32)
    index = np.zeros((h, w), dtype=np.int16)
    d = np.empty((h, w), dtype=np.float32)
    closer = np.empty((h, w), dtype=bool)
    for i in range(k):
        np.add((yy - sy[i]) ** 2, (xx - sx[i]) ** 2, out=d)
        np.less(d, best, out=closer)
        np.copyto(best, d, where=closer)
        np.copyto(index, np.int16(i), where=closer)
    return index, k


def _river(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A meandering river (bool ``[H, W]``)."""
    theta = rng.uniform(0.0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    along = xx * c + yy * s
    across = -xx * s + yy * c
    a0 = float(along.min())
    n = int(float(along.max()) - a0) + 3
    size = min(h, w)
    amplitude = rng.uniform(0.03, 0.1) * size
    centre = rng.uniform(float(across.min()), float(across.max()))
    centre_line = centre + amplitude * fractal_noise_1d(n, rng, beta=4.0, scale=max(size, 96))
    width = rng.uniform(3.0, 12.0) * (1.0 + 0.2 * fractal_noise_1d(n, rng, beta=3.0, scale=128.0))
    slope = np.gradient(centre_line)
    grid = np.arange(n, dtype=np.float64)
    a = (along - a0).ravel()
    line = np.interp(a, grid, centre_line).reshape(h, w)
    steep = np.sqrt(1.0 + np.interp(a, grid, slope) ** 2).reshape(h, w)
    half = 0.5 * np.maximum(np.interp(a, grid, width).reshape(h, w), 1.5)
    lateral = np.abs(across - line) / steep
    return lateral < half


def _lake(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A lake with a smooth irregular shore (bool ``[H, W]``)."""
    size = min(h, w)
    radius = max(rng.uniform(0.06, 0.22) * size, 3.0)
    cy, cx = rng.uniform(0.0, h), rng.uniform(0.0, w)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / radius
    shore = fractal_noise((h, w), rng, beta=3.5, scale=2.0 * radius)
    return dist + 0.3 * shore < 1.0


def generate_landcover(height: int, width: int, rng: np.random.Generator) -> LandCoverLayout:
    """Draw a land-cover layout of ``height x width`` pixels (10 m) from ``rng``."""
    h, w = int(height), int(width)
    district, k = _districts(h, w, rng)
    kinds = rng.choice(3, size=k, p=[0.72, 0.13, 0.15])
    classes = np.zeros((h, w), dtype=np.uint8)
    parcel = np.zeros((h, w), dtype=np.int32)
    street = np.zeros((h, w), dtype=bool)
    offset = 0

    for d in range(k):
        ys, xs = np.nonzero(district == d)
        if ys.size == 0:
            continue
        yf, xf = ys.astype(np.float32), xs.astype(np.float32)
        theta = rng.uniform(0.0, np.pi)
        kind = int(kinds[d])
        if kind == _AGRI:
            scale = rng.uniform(0.6, 1.6)
            cell, n, _, _ = _strip_partition(
                yf,
                xf,
                rng,
                theta=theta,
                width_range=(14.0 * scale, 45.0 * scale),
                length_range=(25.0 * scale, 110.0 * scale),
            )
            shares = rng.dirichlet([2.0, 2.0, 2.0, 1.5, 1.5])
            probs = np.concatenate([shares * 0.96, [0.04]])
            options = np.array([*FIELD_CLASSES, LandCover.FOREST], dtype=np.uint8)
            cell_class = rng.choice(options, size=n, p=probs)
            classes[ys, xs] = cell_class[cell]
        elif kind == _FOREST_DISTRICT:
            cell, n, _, _ = _strip_partition(
                yf, xf, rng, theta=theta, width_range=(50.0, 140.0), length_range=(60.0, 200.0)
            )
            cell_class = np.where(
                rng.random(n) < 0.08, LandCover.GRASSLAND, LandCover.FOREST
            ).astype(np.uint8)
            classes[ys, xs] = cell_class[cell]
        else:
            cell, n, du, dv = _strip_partition(
                yf,
                xf,
                rng,
                theta=theta,
                width_range=(6.0, 14.0),
                length_range=(7.0, 22.0),
                shear=0.05,
            )
            r = rng.random(n)
            cell_class = np.full(n, LandCover.URBAN, dtype=np.uint8)
            cell_class[r > 0.86] = LandCover.GRASSLAND
            cell_class[r > 0.93] = LandCover.FOREST
            cell_class[r > 0.97] = LandCover.BARE_SOIL
            street_width = rng.uniform(1.0, 2.2)
            on_street = (du < street_width) | (dv < street_width)
            classes[ys, xs] = np.where(on_street, LandCover.URBAN, cell_class[cell])
            street[ys[on_street], xs[on_street]] = True
            cell = np.where(on_street, n, cell)  # the street net is one extra id
            n += 1
        parcel[ys, xs] = (offset + cell).astype(np.int32)
        offset += n

    agri = kinds[district] == _AGRI
    forest_fraction = rng.uniform(0.0, 0.3)
    if forest_fraction > 0.02 and agri.any():
        blobs = fractal_noise((h, w), rng, beta=3.5, scale=rng.uniform(60.0, 160.0))
        threshold = np.quantile(blobs[agri], 1.0 - forest_fraction)
        forest = agri & (blobs > threshold)
        classes[forest] = LandCover.FOREST
        parcel[forest] = offset
        street[forest] = False
        offset += 1

    water_bodies = []
    if rng.random() < 0.45:
        water_bodies.append(_river(h, w, rng))
    if rng.random() < 0.35:
        water_bodies.append(_lake(h, w, rng))
    for body in water_bodies:
        classes[body] = LandCover.WATER
        parcel[body] = offset
        street[body] = False
        offset += 1

    return LandCoverLayout(classes=classes, parcel_id=parcel, n_parcels=offset, street=street)
