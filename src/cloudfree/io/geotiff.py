"""GeoTIFF reading and atomic writing with rasterio.

Reading returns a :class:`Raster` (array ``[bands, H, W]`` plus CRS, transform, nodata, band
descriptions and tags). Every failure is raised as :class:`~cloudfree.errors.InputFileError`
naming the file.

Writing never leaves a half-written file behind: data go to a temporary file in the target
directory, which is renamed onto the final name only when everything succeeded. For large scenes,
:class:`RasterWriter` writes window by window (for tiled inference) with the same guarantee, and
optionally converts the finished file to a Cloud-Optimized GeoTIFF.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import Interleaving
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from cloudfree.errors import InputFileError
from cloudfree.io.atomic import publish, temporary_sibling
from cloudfree.io.cstderr import CStderrHold
from cloudfree.io.outputs import write_failure

__all__ = [
    "Raster",
    "RasterInfo",
    "RasterWriter",
    "Window",
    "describe_read_error",
    "open_raster",
    "raster_files",
    "raster_info",
    "read_raster",
    "write_raster",
]

PathLike = str | os.PathLike[str]


@dataclass
class RasterInfo:
    """Metadata of a raster file, without its pixels."""

    path: Path
    count: int
    height: int
    width: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.count, self.height, self.width


@dataclass
class Raster:
    """Pixels ``[bands, H, W]`` and their georeferencing."""

    array: np.ndarray
    crs: CRS | None
    transform: Affine
    nodata: float | None = None
    descriptions: tuple[str | None, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def count(self) -> int:
        return int(self.array.shape[0])

    @property
    def height(self) -> int:
        return int(self.array.shape[1])

    @property
    def width(self) -> int:
        return int(self.array.shape[2])


def open_raster(path: PathLike) -> Any:
    """``rasterio.open(path)`` with every failure raised as :class:`InputFileError`.

    A folder of single-band files (a Sentinel-2 ``.SAFE`` product, a BigEarthNet patch, S1
    ``VV``/``VH`` files) opens as one virtual raster of its bands
    (:func:`cloudfree.io.bandstack.stack_folder`).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, "file not found")
    if p.is_dir():
        from cloudfree.io.bandstack import stack_folder

        stack = stack_folder(p)
        try:
            return rasterio.open(stack.vrt)
        except Exception as exc:
            raise InputFileError(
                p, f"its band files cannot be stacked ({_gdal_cause(exc)})"
            ) from None
    try:
        return rasterio.open(p)
    except Exception as exc:  # GDAL raises several types for corrupt headers
        raise InputFileError(p, f"not a readable raster ({_gdal_cause(exc, p)})") from None


def raster_files(path: PathLike) -> list[Path]:
    """The files read for raster ``path``: itself, or a folder's band files."""
    p = Path(path)
    if p.is_dir():
        from cloudfree.io.bandstack import stack_folder

        return [p, *stack_folder(p).files]
    return [p]


_VAGUE = "see previous exception"


def _gdal_cause(exc: BaseException, path: Path | None = None) -> str:
    """The most specific message in ``exc``'s chain, without rasterio's "See previous
    exception" wrapper and without a leading file name (the caller names the file)."""
    messages: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = " ".join(str(cur).split())
        if text and _VAGUE not in text.lower():
            messages.append(text)
        cur = cur.__cause__ or cur.__context__
    text = messages[-1] if messages else type(exc).__name__
    if path is not None:
        for prefix in (str(path), path.name):
            if text.startswith(prefix):
                text = text[len(prefix) :].lstrip(" ,:")
                break
    return text.rstrip(".")


def describe_read_error(exc: BaseException, path: PathLike | None = None) -> str:
    """A one-line problem for a failed pixel read:
    ``could not read pixel data: truncated or corrupt GeoTIFF (cause)``.

    rasterio reports a failed read as "Read failed. See previous exception for details.";
    the cause (GDAL's message, e.g. "TIFFReadEncodedTile() failed") is on the exception chain.
    Every caller that reads pixels from an opened raster (:func:`read_raster`, predict's
    windowed reads, the report's panels) builds its :class:`InputFileError` with this, so the
    user sees what is wrong and not rasterio's pointer to a traceback.
    """
    p = Path(path) if path is not None else None
    kind = "raster"
    if p is not None and p.is_dir():
        kind = "band file"
    elif p is None or p.suffix.lower() in (".tif", ".tiff", ".gtiff", ""):
        kind = "GeoTIFF"
    return f"could not read pixel data: truncated or corrupt {kind} ({_gdal_cause(exc, p)})"


def raster_info(path: PathLike) -> RasterInfo:
    """Read a raster's metadata only."""
    with open_raster(path) as src:
        return RasterInfo(
            path=Path(path),
            count=src.count,
            height=src.height,
            width=src.width,
            dtype=src.dtypes[0],
            crs=src.crs,
            transform=src.transform,
            nodata=src.nodata,
            descriptions=tuple(src.descriptions),
            tags=dict(src.tags()),
        )


def read_raster(
    path: PathLike,
    *,
    bands: Sequence[int] | None = None,
    window: Window | None = None,
    expected_count: int | Sequence[int] | None = None,
    dtype: str | np.dtype | None = None,
) -> Raster:
    """Read a GeoTIFF (or any raster rasterio opens).

    Args:
        path: file to read.
        bands: 0-based band positions to read (default: all), in that order.
        window: read only this window; the returned transform is the window's.
        expected_count: the file must have this many bands (or one of these counts),
            otherwise :class:`InputFileError` names the file, the count found and the one expected.
        dtype: cast the array to this dtype.
    """
    p = Path(path)
    with open_raster(p) as src:
        if expected_count is not None:
            allowed = (
                (expected_count,) if isinstance(expected_count, int) else tuple(expected_count)
            )
            if src.count not in allowed:
                want = " or ".join(str(c) for c in allowed)
                raise InputFileError(p, f"has {src.count} band(s), expected {want}")
        if bands is not None:
            bad = [b for b in bands if not 0 <= b < src.count]
            if bad:
                raise InputFileError(p, f"band positions {bad} out of range (file has {src.count})")
            indexes = [b + 1 for b in bands]
        else:
            indexes = list(range(1, src.count + 1))
        try:
            arr = src.read(indexes, window=window)
        except Exception as exc:  # rasterio raises several types for corrupt data
            raise InputFileError(p, describe_read_error(exc, p)) from None
        transform = src.window_transform(window) if window is not None else src.transform
        descriptions = tuple(src.descriptions[i - 1] for i in indexes)
        raster = Raster(
            array=arr if dtype is None else arr.astype(dtype, copy=False),
            crs=src.crs,
            transform=transform,
            nodata=src.nodata,
            descriptions=descriptions,
            tags=dict(src.tags()),
            path=p,
        )
    return raster


class RasterWriter:
    """Write a GeoTIFF window by window, atomically.

    Use as a context manager::

        with RasterWriter(out, count=13, height=H, width=W, dtype="uint16", crs=crs,
                          transform=transform, nodata=0, descriptions=names) as w:
            w.write(tile, Window(col, row, w, h))

    The file appears under its final name only when the block exits without an exception;
    otherwise the temporary file is removed. With ``cog=True`` the finished file is copied to a
    Cloud-Optimized GeoTIFF (overviews included) before the rename.

    A failed write (full disk, read-only or forbidden directory) raises
    :class:`~cloudfree.errors.InputFileError` naming the final file. GDAL reports some write
    errors only as messages when the file is closed (a full disk while writing the TIFF
    directory), so the closed temporary file is opened again and its size, band count and
    data type checked before it is published.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        count: int,
        height: int,
        width: int,
        dtype: str | np.dtype,
        crs: CRS | str | None,
        transform: Affine,
        nodata: float | None = None,
        descriptions: Sequence[str | None] | None = None,
        tags: Mapping[str, Any] | None = None,
        cog: bool = False,
        compress: str = "deflate",
        blocksize: int = 256,
    ) -> None:
        self.path = Path(path)
        self.cog = cog
        if descriptions is not None and len(descriptions) != count:
            raise ValueError(f"{len(descriptions)} descriptions for {count} bands")
        self._profile: dict[str, Any] = {
            "driver": "GTiff",
            "count": count,
            "height": height,
            "width": width,
            "dtype": np.dtype(dtype).name,
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
            "compress": compress,
            "BIGTIFF": "IF_SAFER",
        }
        if height >= blocksize and width >= blocksize:
            self._profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
        self._descriptions = descriptions
        self._tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self._tmp: Path | None = None
        self._dst: Any = None
        self._stderr = CStderrHold()

    def __enter__(self) -> RasterWriter:
        """Open the temporary file; if opening fails (bad profile, dtype, descriptions or
        tags), close what was opened, remove the temporary file and re-raise."""
        self._tmp = None
        try:
            self._tmp = temporary_sibling(self.path, ".tmp.tif")
            with self._stderr.held():
                try:
                    self._dst = rasterio.open(self._tmp, "w", **self._profile)
                except (OSError, RasterioError) as exc:
                    raise write_failure(self.path, exc) from None
                if self._descriptions is not None:
                    for i, d in enumerate(self._descriptions, start=1):
                        if d is not None:
                            self._dst.set_band_description(i, d)
                if self._tags:
                    self._dst.update_tags(**self._tags)
        except BaseException:
            if self._dst is not None:
                with self._stderr.held():
                    self._dst.close()
                self._dst = None
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            self._stderr.close()
            raise
        return self

    def write(self, array: np.ndarray, window: Window | None = None) -> None:
        """Write ``array`` ``[count, h, w]`` (or ``[h, w]`` for one band) into ``window``."""
        if self._dst is None:
            raise RuntimeError("RasterWriter.write called outside its 'with' block")
        arr = np.asarray(array)
        if arr.ndim == 2:
            arr = arr[None]
        try:
            with self._stderr.held():
                self._dst.write(arr.astype(self._profile["dtype"], copy=False), window=window)
        except (OSError, RasterioError) as exc:
            raise write_failure(self.path, exc) from None

    def _verify(self) -> None:
        """Open the closed temporary file again: it must be a raster of the profile whose every
        block lies inside the file (GDAL writes the TIFF directory even when the data before it
        did not fit on the disk)."""
        assert self._tmp is not None
        p = self._profile
        try:
            size = self._tmp.stat().st_size
            ok = size > 0
            if ok:
                with rasterio.open(self._tmp) as src:
                    ok = (src.count, src.height, src.width, src.dtypes[0]) == (
                        p["count"],
                        p["height"],
                        p["width"],
                        p["dtype"],
                    )
                    bands = [1] if src.interleaving == Interleaving.pixel else src.indexes
                    for bidx in bands if ok else ():
                        for (row, col), _ in src.block_windows(bidx):
                            offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx)
                            nbytes = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx)
                            if offset and nbytes and int(offset) + int(nbytes) > size:
                                ok = False
                                break
        except (OSError, RasterioError, ValueError):
            ok = False
        if not ok:
            raise write_failure(self.path, OSError("the written GeoTIFF is incomplete"))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._tmp is not None
        try:
            with self._stderr.held():
                try:
                    self._dst.close()
                except (OSError, RasterioError) as err:
                    if exc_type is None:
                        raise write_failure(self.path, err) from None
                if exc_type is None:
                    self._verify()
                    if self.cog:
                        self._to_cog()
            if exc_type is None:
                publish(self._tmp, self.path)
                self._stderr.release()  # complete: GDAL's messages are shown
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
            self._dst = None
            self._stderr.close()  # failed: its libtiff lines give way to our one-line error

    def _to_cog(self) -> None:
        assert self._tmp is not None
        cog_tmp = temporary_sibling(self.path, ".tmp.tif", clean_stale=False)
        try:
            try:
                rasterio.shutil.copy(
                    self._tmp,
                    cog_tmp,
                    driver="COG",
                    compress=self._profile["compress"].upper(),
                    BIGTIFF="IF_SAFER",
                )
                os.replace(cog_tmp, self._tmp)
            except (OSError, RasterioError) as exc:
                raise write_failure(self.path, exc) from None
            self._verify()
        finally:
            if cog_tmp.exists():
                cog_tmp.unlink()


def write_raster(
    path: PathLike,
    array: np.ndarray,
    *,
    crs: CRS | str | None,
    transform: Affine,
    nodata: float | None = None,
    descriptions: Sequence[str | None] | None = None,
    tags: Mapping[str, Any] | None = None,
    cog: bool = False,
    dtype: str | np.dtype | None = None,
    compress: str = "deflate",
) -> Path:
    """Write ``array`` ``[bands, H, W]`` (or ``[H, W]``) to ``path`` atomically; return the path."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected a [bands, H, W] array, got shape {arr.shape}")
    with RasterWriter(
        path,
        count=arr.shape[0],
        height=arr.shape[1],
        width=arr.shape[2],
        dtype=dtype or arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        descriptions=descriptions,
        tags=tags,
        cog=cog,
        compress=compress,
    ) as w:
        w.write(arr)
    return Path(path)
