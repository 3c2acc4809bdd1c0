"""Plausible, deterministic georeferencing for synthetic SEN12MS-CR patches.

Each ROI id (``"ROIs1158_spring/s1_106"``) is mapped, through a CRC32 of the id (stable across
runs and platforms, unlike Python's ``hash``), to a UTM zone (EPSG:326xx north or 327xx south)
and an origin. Patch ``p<k>`` of that ROI sits on a grid of patches inside the ROI, 24 patches per
row, each ``size`` pixels of 10 m, north-up. S1, S2 and S2-cloudy of one triplet share it.
"""

from __future__ import annotations

import zlib

import numpy as np
from rasterio.transform import Affine, from_origin

__all__ = ["PIXEL_SIZE_M", "PATCHES_PER_ROW", "roi_georeference"]

#: Ground sampling distance of every synthetic raster (m).
PIXEL_SIZE_M = 10.0
#: Patches per row of the per-ROI patch grid.
PATCHES_PER_ROW = 24


def roi_georeference(roi: str, patch: int, size: int) -> tuple[str, Affine]:
    """CRS (``"EPSG:326xx"`` / ``"EPSG:327xx"``) and 10 m transform of patch ``patch`` of ``roi``.

    Args:
        roi: SEN12MS-CR ROI id, e.g. ``"ROIs1158_spring/s1_106"``.
        patch: patch number (>= 1).
        size: patch side in pixels.
    """
    rng = np.random.default_rng(zlib.crc32(roi.encode("utf-8")))
    zone = int(rng.integers(1, 61))
    north = bool(rng.random() < 0.75)
    epsg = (32600 if north else 32700) + zone
    x0 = float(np.round(rng.uniform(250_000.0, 650_000.0), -1))
    northing = (1_500_000.0, 7_000_000.0) if north else (2_500_000.0, 9_500_000.0)
    y0 = float(np.round(rng.uniform(*northing), -1))
    k = max(int(patch), 1) - 1
    step = size * PIXEL_SIZE_M
    col, row = k % PATCHES_PER_ROW, k // PATCHES_PER_ROW
    transform = from_origin(x0 + col * step, y0 - row * step, PIXEL_SIZE_M, PIXEL_SIZE_M)
    return f"EPSG:{epsg}", transform
