"""Sentinel-2 and Sentinel-1 as users have them: folders of single-band files read as one raster.

A raster path given to any command may be a **folder** instead of a multi-band GeoTIFF:

* a Sentinel-2 product as downloaded: the ``.SAFE`` directory (one granule), its
  ``GRANULE/<granule>`` folder or that granule's ``IMG_DATA`` folder, L1C (``*_B01.jp2`` ...)
  or L2A (``R10m/``, ``R20m/``, ``R60m/`` with ``*_B02_10m.jp2`` ...);
* a folder of per-band files at native 10/20/60 m, such as a BigEarthNet patch
  (``..._B01.tif`` ... ``..._B8A.tif``) or bands exported one by one;
* a folder of Sentinel-1 polarisation files (``..._VV.tif``, ``..._VH.tif``, BigEarthNet-S1).

:func:`stack_folder` finds the band files and describes them as a **virtual raster** (a GDAL VRT,
held as an XML string in memory, never written to disk); :func:`cloudfree.io.open_raster` opens
that, so every reader (predict's windowed reads, cloudmask, directory evaluation) sees an ordinary
multi-band dataset whose band descriptions are the band names.

Decisions:

* **Band names from file names.** A file is a band file when its name holds exactly one band
  token between separators: ``B1`` ... ``B12``, ``B01`` ... ``B09``, ``B8A`` (any case; Google
  Earth Engine's ``B1`` is ``B01``) or, for Sentinel-1, ``VV``, ``VH``, ``HH``, ``HV``. Other
  files (``TCI``, ``SCL``, ``AOT``, label or metadata files) are ignored. Bands are stacked in
  product order (``B01 .. B08, B8A, B09 .. B12``; ``VV, VH``). A band found at several
  resolutions (the L2A ``R20m`` / ``R60m`` copies of 10 m bands) is taken at its finest one.
  Sentinel-2 and Sentinel-1 files in one folder, two files of one band at the same resolution,
  or a band file with more than one band are errors naming the files.
* **Grid.** The output grid is the finest band's (10 m for a full product): its CRS and
  transform; every band must share the CRS and cover the same extent (within half a pixel of the
  finest grid), otherwise the file that does not fit is named.
* **Resampling: bilinear, window by window.** A coarser band (20 m, 60 m) is resampled onto the
  finest grid with GDAL's bilinear kernel (pixel centres aligned, edge pixels clamped) when a
  window is read, so only the source pixels that window needs are read and the values of a
  pixel do not depend on the window it is read in (tested against whole-image reads and against
  a NumPy bilinear reference). Bands at the finest resolution are read as they are (bit-exact).
  Integer results are rounded to the nearest integer by GDAL.
* **Nodata.** A band file's declared nodata is used; an integer Sentinel-2 band file without one
  is given 0, Sentinel-2's nodata value (the JP2 files of a ``.SAFE`` declare none). The bilinear
  kernel skips nodata source pixels: a pixel whose kernel holds at least one valid source pixel
  takes the weighted mean of the valid ones (so next to the footprint edge a 20 m band reaches
  up to half a fine pixel past it, never a value blended with 0); the stack declares the same
  nodata value.
* **Data type.** The band files' type when they share one (``uint16`` for L1C/L2A), else
  ``float32``.
* **Product level.** ``MSIL1C`` / ``MSIL2A`` in the path, or an L2A ``R10m`` layout, is recorded
  in the tag ``PRODUCT_LEVEL``; a processing baseline read from the product's ``MTD_MSI*.xml``
  in ``PROCESSING_BASELINE`` (baseline 04.00 and later add +1000 DN: ``--pb04-offset``).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cloudfree.bands import S2_L1C_NAMES
from cloudfree.errors import InputFileError

if TYPE_CHECKING:
    from cloudfree.io.geotiff import RasterInfo

__all__ = [
    "BandFile",
    "FolderStack",
    "band_token",
    "find_band_files",
    "stack_folder",
]

#: File suffixes read as band files.
BAND_FILE_SUFFIXES = (".tif", ".tiff", ".jp2")

_S2_TOKEN = re.compile(r"(?:^|[_\-. ])(B(?:0?[1-9]|1[0-2]|8A))(?=$|[_\-. ])", re.IGNORECASE)
_S1_TOKEN = re.compile(r"(?:^|[_\-. ])(VV|VH|HH|HV)(?=$|[_\-. ])", re.IGNORECASE)
_L2A_RES_DIRS = ("R10m", "R20m", "R60m")
#: Sentinel-1 polarisations in stacking order (co-pol first).
_S1_ORDER = ("VV", "VH", "HH", "HV")


def band_token(name: str) -> tuple[str, str] | None:
    """``("S2", "B08")`` / ``("S1", "VH")`` for a file name holding exactly one band token.

    ``None`` when the name holds no token or several (``B04_B03_B02_rgb.tif``).
    """
    stem = name
    for suffix in BAND_FILE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    s2 = {_canonical_s2(m) for m in _S2_TOKEN.findall(stem)}
    s1 = {m.upper() for m in _S1_TOKEN.findall(stem)}
    if len(s2) + len(s1) != 1:
        return None
    return ("S2", s2.pop()) if s2 else ("S1", s1.pop())


def _canonical_s2(token: str) -> str:
    t = token.upper()
    return f"B0{t[1:]}" if len(t) == 2 else t


@dataclass(frozen=True)
class BandFile:
    """One band file of a folder: its band name and its metadata."""

    name: str  # band name: B01 .. B12, B8A, or VV, VH, HH, HV
    info: RasterInfo

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def pixel_size(self) -> float:
        t = self.info.transform
        return float(max(abs(t.a), abs(t.e)))


@dataclass(frozen=True)
class FolderStack:
    """The band files of a folder and the VRT that stacks them (see the module docstring)."""

    folder: Path
    sensor: str  # "S2" or "S1"
    bands: tuple[BandFile, ...]
    vrt: str  # the VRT XML, opened by rasterio.open
    tags: dict[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(b.path for b in self.bands)


def _granule_dir(folder: Path) -> Path:
    granule_root = folder / "GRANULE"
    if not granule_root.is_dir():
        return folder
    granules = sorted(p for p in granule_root.iterdir() if (p / "IMG_DATA").is_dir())
    if not granules:
        raise InputFileError(folder, "is a .SAFE product without GRANULE/*/IMG_DATA band files")
    if len(granules) > 1:
        names = ", ".join(p.name for p in granules[:4])
        raise InputFileError(
            folder,
            f"holds {len(granules)} granules ({names}); give one granule's folder "
            "(GRANULE/<granule>) instead",
        )
    return granules[0]


def _candidate_dirs(folder: Path) -> list[Path]:
    base = _granule_dir(folder)
    if (base / "IMG_DATA").is_dir():
        base = base / "IMG_DATA"
    return [base] + [base / r for r in _L2A_RES_DIRS if (base / r).is_dir()]


def _describe(path: Path, name: str) -> BandFile:
    from cloudfree.io.geotiff import raster_info

    info = raster_info(path)
    if info.count != 1:
        raise InputFileError(
            path,
            f"is named as band {name} but holds {info.count} bands; a band folder holds "
            "one file per band",
        )
    return BandFile(name=name, info=info)


def find_band_files(folder: str | os.PathLike[str]) -> tuple[str, list[BandFile]]:
    """The sensor (``"S2"``/``"S1"``) and band files of ``folder``, in product order."""
    folder = Path(folder)
    if folder.name.upper().startswith("S1") and folder.suffix.upper() == ".SAFE":
        raise InputFileError(
            folder,
            "is a Sentinel-1 .SAFE product, which is in radar geometry and not calibrated; "
            "terrain-correct it to sigma0 in dB on a map grid first (e.g. SNAP or Google Earth "
            "Engine's S1_GRD collection) and give that GeoTIFF",
        )
    found: dict[str, dict[str, list[Path]]] = {"S2": {}, "S1": {}}
    for d in _candidate_dirs(folder):
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.suffix.lower() not in BAND_FILE_SUFFIXES:
                continue
            tok = band_token(p.name)
            if tok is not None:
                found[tok[0]].setdefault(tok[1], []).append(p)
    if found["S2"] and found["S1"]:
        some = [
            ps[0].name for ps in list(found["S2"].values())[:1] + list(found["S1"].values())[:1]
        ]
        raise InputFileError(
            folder,
            f"mixes Sentinel-2 and Sentinel-1 band files ({', '.join(some)}); give one "
            "folder per sensor",
        )
    sensor = "S2" if found["S2"] else "S1"
    if not found[sensor]:
        raise InputFileError(
            folder,
            "holds no band files: expected one GeoTIFF/JP2 per band with the band in its name "
            "(…_B02.tif, …_B8A.jp2, B2.tif; or …_VV.tif, …_VH.tif), or a Sentinel-2 .SAFE "
            "product",
        )
    order = S2_L1C_NAMES if sensor == "S2" else _S1_ORDER
    bands: list[BandFile] = []
    for name in order:
        paths = found[sensor].get(name)
        if not paths:
            continue
        described = [_describe(p, name) for p in paths]
        finest = min(b.pixel_size for b in described)
        best = [b for b in described if b.pixel_size == finest]
        if len(best) > 1:
            raise InputFileError(
                folder,
                f"holds two files of band {name} at the same resolution "
                f"({best[0].path.name}, {best[1].path.name}); keep one",
            )
        bands.append(best[0])
    return sensor, bands


def _check_grid(folder: Path, ref: BandFile, bands: Sequence[BandFile]) -> None:
    rb = _bounds(ref)
    tol = ref.pixel_size / 2
    for b in bands:
        if b.info.crs != ref.info.crs:
            raise InputFileError(
                b.path,
                f"is in {b.info.crs}, but band {ref.name} ({ref.path.name}) is in "
                f"{ref.info.crs}; the band files of {folder.name} must share one CRS",
            )
        bb = _bounds(b)
        if any(abs(x - y) > tol for x, y in zip(bb, rb)):
            raise InputFileError(
                b.path,
                f"covers {_fmt(bb)} but band {ref.name} ({ref.path.name}) covers {_fmt(rb)}; the "
                f"band files of {folder.name} must cover the same extent",
            )


def _bounds(b: BandFile) -> tuple[float, float, float, float]:
    t, w, h = b.info.transform, b.info.width, b.info.height
    x0, y0 = t.c, t.f
    x1, y1 = x0 + t.a * w, y0 + t.e * h
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _fmt(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"


_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def _band_nodata(sensor: str, b: BandFile) -> float | None:
    if b.info.nodata is not None:
        return float(b.info.nodata)
    if sensor == "S2" and np.dtype(b.info.dtype).kind in "iu":
        return 0.0
    return None


def _num(v: float) -> str:
    return "nan" if np.isnan(v) else repr(float(v))


def _source_name(b: BandFile, nodata: float | None) -> str:
    """The band file, or (to declare a nodata value it lacks) a one-band VRT around it."""
    path = html.escape(str(b.path.resolve()))
    i = b.info
    if nodata is None or i.nodata is not None:
        return path
    gt = ", ".join(repr(float(v)) for v in i.transform.to_gdal())
    inner = (
        f'<VRTDataset rasterXSize="{i.width}" rasterYSize="{i.height}">'
        f"<GeoTransform>{gt}</GeoTransform>"
        f'<VRTRasterBand dataType="{_GDAL_TYPES[i.dtype]}" band="1">'
        f"<NoDataValue>{_num(nodata)}</NoDataValue>"
        f'<SimpleSource><SourceFilename relativeToVRT="0">{path}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )
    return html.escape(inner)


def _product_tags(folder: Path, bands: Sequence[BandFile]) -> dict[str, str]:
    tags = {"CLOUDFREE_STACK": f"{len(bands)} band files of {folder.name}, bilinear"}
    text = " ".join(str(p) for p in [folder.resolve(), *(b.path for b in bands)]).upper()
    if "MSIL2A" in text or any(b.path.parent.name in _L2A_RES_DIRS for b in bands):
        tags["PRODUCT_LEVEL"] = "L2A"
    elif "MSIL1C" in text:
        tags["PRODUCT_LEVEL"] = "L1C"
    for xml in sorted(folder.glob("MTD_MSI*.xml"))[:1]:
        try:
            m = re.search(r"<PROCESSING_BASELINE>([^<]+)<", xml.read_text(errors="replace"))
        except OSError:
            m = None
        if m:
            tags["PROCESSING_BASELINE"] = m.group(1).strip()
    return tags


def stack_folder(folder: str | os.PathLike[str]) -> FolderStack:
    """Find the band files of ``folder`` and build the VRT that stacks them (module rules)."""
    folder = Path(folder)
    sensor, bands = find_band_files(folder)
    ref = min(bands, key=lambda b: b.pixel_size)
    _check_grid(folder, ref, bands)
    dtypes = {b.info.dtype for b in bands}
    dtype = dtypes.pop() if len(dtypes) == 1 else "float32"
    gdal_type = _GDAL_TYPES.get(dtype, "Float32")
    nodatas = {_band_nodata(sensor, b) for b in bands}
    nodatas_clean = {("nan" if v is not None and np.isnan(v) else v) for v in nodatas}
    stack_nodata = next(iter(nodatas)) if len(nodatas_clean) == 1 else None
    r = ref.info
    gt = ", ".join(repr(float(v)) for v in r.transform.to_gdal())
    crs = "" if r.crs is None else f"<SRS>{html.escape(r.crs.to_wkt())}</SRS>"
    parts = [f'<VRTDataset rasterXSize="{r.width}" rasterYSize="{r.height}">{crs}']
    parts.append(f"<GeoTransform>{gt}</GeoTransform>")
    tags = _product_tags(folder, bands)
    parts.append(
        "<Metadata>"
        + "".join(f'<MDI key="{k}">{html.escape(v)}</MDI>' for k, v in tags.items())
        + "</Metadata>"
    )
    for i, b in enumerate(bands, start=1):
        nod = _band_nodata(sensor, b)
        same = b.pixel_size == ref.pixel_size and b.info.shape == r.shape
        kind = "SimpleSource" if same else 'ComplexSource resampling="bilinear"'
        end = "SimpleSource" if same else "ComplexSource"
        parts.append(
            f'<VRTRasterBand dataType="{gdal_type}" band="{i}">'
            f"<Description>{b.name}</Description>"
            + ("" if stack_nodata is None else f"<NoDataValue>{_num(stack_nodata)}</NoDataValue>")
            + f'<{kind}><SourceFilename relativeToVRT="0">{_source_name(b, nod)}</SourceFilename>'
            f"<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{b.info.width}" ySize="{b.info.height}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{r.width}" ySize="{r.height}"/>'
            f"</{end}></VRTRasterBand>"
        )
    parts.append("</VRTDataset>")
    return FolderStack(folder, sensor, tuple(bands), "".join(parts), tags)
