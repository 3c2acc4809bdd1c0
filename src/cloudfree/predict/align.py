"""Read Sentinel-1 window by window on the Sentinel-2 grid.

:class:`SarOnGrid` opens the S1 file once and answers ``read(window)`` with float32 VV/VH dB on
the optical scene's grid, NaN where there is no valid S1 value.

Decisions:

* **Same grid, no resampling.** When S1 already has the optical file's CRS, transform and size,
  windows are read directly (bit-exact values, no interpolation).
* **Otherwise a GDAL warp, window by window.** S1 is wrapped in a :class:`rasterio.vrt.WarpedVRT`
  onto the optical grid (CRS, transform, width, height) with **bilinear** resampling; reading a
  window warps only the source pixels that window needs, so memory stays bounded whatever the
  scene size (GDAL's warp memory limit applies per request). The coordinate transformation is
  approximated to 1e-6 source pixels instead of GDAL's default 1/8 pixel: the approximation is
  interpolated across each requested window, so with the default the warped value of a pixel
  depends on the window it is read in, i.e. on the tile, and overlapping tiles would see
  different S1 values (up to 0.5 dB on speckled S1 in our tests; about 1.6x the warp time).
* **Nodata.** The S1 file's nodata value (if any) and NaN are invalid; the warp excludes invalid
  source pixels from the bilinear kernel, and an optical pixel whose centre falls outside the S1
  raster, or whose kernel holds no valid S1 pixel, comes back as NaN. Callers treat NaN as an
  invalid pixel (never fed as a number) and write nodata there.
* **Overlap check.** Before any pixel is read, the S1 footprint (its bounds transformed into the
  optical CRS, densified) must intersect the optical footprint; no overlap at all is an
  :class:`~cloudfree.errors.InputFileError` naming the S1 file. Partial overlap is fine.
* **Units, fill values, band order** (the rules live in :mod:`cloudfree.io.checks`). Before any
  pixel is used, a decimated sample of the whole file (at most 512 px a side, nearest) must look
  like backscatter in dB (``units="db"``, the default) or in linear power (``units="linear"``,
  ``--sar-units linear``: converted with ``10*log10`` after reading, so a warp interpolates
  linear power; values <= 0 become invalid). A fill value such as -9999 without declared nodata
  is refused; ``nodata`` (``--sar-nodata``) declares one and replaces the file's own. Band
  descriptions are honoured (VH,VV is read as VV,VH; HH/HV only when ``bands`` names them).
* **No georeferencing.** A file without CRS can only be used when both files lack a CRS and share
  transform and size (then the grids are taken as identical); anything else is an error, since
  the two images cannot be aligned.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from cloudfree.bands import S1_NAMES
from cloudfree.errors import InputFileError
from cloudfree.io import RasterInfo, open_raster
from cloudfree.io.checks import check_sar_units, linear_to_db, sample_shape, sar_band_order
from cloudfree.io.geotiff import describe_read_error

__all__ = ["SAR_BANDS", "SarOnGrid", "warp_onto_grid"]

#: Error tolerance (source pixels) of GDAL's approximate transformer: effectively exact (0 itself
#: makes rasterio 1.4 build a warp without transformer, which fails).
_WARP_TOLERANCE = 1e-6

#: Sentinel-1 bands expected in every S1 file, in this order (backscatter in dB).
SAR_BANDS: tuple[str, ...] = S1_NAMES


def _bounds(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    xs = [transform.c, transform.c + transform.a * width + transform.b * height]
    ys = [transform.f, transform.f + transform.d * width + transform.e * height]
    # include the other two corners (rotated grids)
    xs += [transform.c + transform.a * width, transform.c + transform.b * height]
    ys += [transform.f + transform.d * width, transform.f + transform.e * height]
    return min(xs), min(ys), max(xs), max(ys)


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class SarOnGrid:
    """Sentinel-1 VV/VH dB resampled onto an optical grid, read window by window.

    Use as a context manager; :meth:`read` returns float32 ``[2, h, w]`` with NaN where S1 has
    no valid value.

    Args:
        path: the S1 GeoTIFF (2 bands, VV then VH, dB).
        grid: metadata of the optical file (its CRS, transform, width and height define the grid).
        resampling: GDAL resampling used when S1 is on another grid (default bilinear).
        units: ``"db"`` (default) or ``"linear"`` power (converted to dB after reading).
        nodata: S1 nodata value replacing the file's declared one (None: the file's).
        bands: the file's polarisations in file order (``"VH,VV"``, ``"HH,HV"``; None: from
            the band descriptions, else VV, VH).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: RasterInfo,
        *,
        resampling: Resampling = Resampling.bilinear,
        units: str = "db",
        nodata: float | None = None,
        bands: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.units = units
        self.nodata_override = nodata
        self.bands_spec = bands
        self.indexes: list[int] = [1, 2]
        self.grid = grid
        self.resampling = resampling
        self._src: Any = None
        self._vrt: Any = None
        self.same_grid = False
        self.nodata: float | None = None

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> SarOnGrid:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        """Open S1, check its bands and its overlap with the optical scene, set up the warp."""
        src = open_raster(self.path)
        self._src = src
        try:
            self._setup(src)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
            self._vrt = None
        if self._src is not None:
            self._src.close()
            self._src = None

    def _setup(self, src: Any) -> None:
        grid = self.grid
        if src.count != len(SAR_BANDS):
            raise InputFileError(
                self.path,
                f"has {src.count} band(s), expected {len(SAR_BANDS)} Sentinel-1 bands "
                f"({', '.join(SAR_BANDS)} backscatter in dB)",
            )
        self.indexes = [i + 1 for i in sar_band_order(src.descriptions, self.path, self.bands_spec)]
        self.nodata = src.nodata if self.nodata_override is None else float(self.nodata_override)
        try:
            sample = src.read(
                self.indexes,
                out_shape=(2, *sample_shape(src.height, src.width)),
                resampling=Resampling.nearest,
            )
        except RasterioError as exc:
            raise InputFileError(self.path, describe_read_error(exc, self.path)) from None
        check_sar_units(sample, self.path, self.nodata, self.units)
        self._vrt = warp_onto_grid(src, self.path, grid, self.resampling, self.nodata, "Sentinel-1")
        self.same_grid = self._vrt is None

    # ------------------------------------------------------------------ reading
    def read(self, window: Window) -> np.ndarray:
        """VV/VH dB ``[2, h, w]`` float32 on the optical grid, NaN where invalid."""
        if self._src is None:
            raise RuntimeError("SarOnGrid.read called before open()")
        try:
            if self.same_grid:
                arr = self._src.read(self.indexes, window=window).astype(np.float32, copy=False)
                if self.nodata is not None and not np.isnan(self.nodata):
                    arr[arr == np.float32(self.nodata)] = np.nan
            else:
                arr = self._vrt.read(self.indexes, window=window).astype(np.float32, copy=False)
        except RasterioError as exc:
            raise InputFileError(self.path, describe_read_error(exc, self.path)) from None
        if self.units == "linear":
            arr = linear_to_db(arr)
        return arr

    @property
    def resampling_name(self) -> str:
        """What was done to S1: ``none (same grid)`` or the warp's resampling."""
        return "none (same grid)" if self.same_grid else f"{self.resampling.name} warp"


def warp_onto_grid(
    src: Any,
    path: Path,
    grid: RasterInfo,
    resampling: Resampling,
    nodata: float | None,
    what: str,
) -> Any:
    """``None`` when the open raster ``src`` is already on ``grid`` (read it directly), else a
    float32 :class:`~rasterio.vrt.WarpedVRT` of it on ``grid`` (module docstring: the warp, the
    overlap check, the no-CRS rule); NaN where there is no valid source value. ``what`` names
    the data in errors (``"Sentinel-1"``)."""
    if src.crs is None or grid.crs is None:
        if (
            src.crs is None
            and grid.crs is None
            and src.transform == grid.transform
            and (src.height, src.width) == (grid.height, grid.width)
        ):
            return None
        which = path if src.crs is None else grid.path
        raise InputFileError(
            which,
            f"has no coordinate reference system, so {what} cannot be aligned with the "
            "optical scene (both files need a CRS, or both none on an identical grid)",
        )
    if (
        src.crs == grid.crs
        and src.transform.almost_equals(grid.transform)
        and (src.height, src.width) == (grid.height, grid.width)
    ):
        return None
    opt_bounds = _bounds(grid.transform, grid.width, grid.height)
    try:
        src_bounds = transform_bounds(
            src.crs, grid.crs, *_bounds(src.transform, src.width, src.height), densify_pts=21
        )
    except (RasterioError, ValueError) as exc:
        raise InputFileError(
            path, f"its footprint cannot be transformed to {grid.crs} ({exc})"
        ) from None
    if not all(math.isfinite(v) for v in src_bounds) or not _intersects(src_bounds, opt_bounds):
        raise InputFileError(
            path,
            f"does not overlap the optical scene {grid.path.name} ({what} bounds "
            f"{_fmt(src_bounds)} vs optical bounds {_fmt(opt_bounds)} in {grid.crs})",
        )
    src_nodata = nodata
    if src_nodata is None and np.dtype(src.dtypes[0]).kind == "f":
        src_nodata = float("nan")
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        src_nodata=src_nodata,
        nodata=float("nan"),
        dtype="float32",
        tolerance=_WARP_TOLERANCE,
    )


def _fmt(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
