"""Synthetic Sentinel-2 products in the layouts users download: ``.SAFE`` and per-band folders.

:func:`write_s2_product` takes a 13-band 10 m image (a :class:`~cloudfree.synth.SyntheticScene`'s
``cloudy_dn`` or ``clear_dn``) and writes each band at its **native resolution** (10, 20 or
60 m, :data:`cloudfree.bands.S2_L1C`), as the sensor delivers it:

* ``layout="safe", level="L1C"``::

    S2A_MSIL1C_<date>_N0207_R108_<tile>_<date>.SAFE/
        manifest.safe, MTD_MSIL1C.xml (PROCESSING_BASELINE 02.07: no +1000 DN offset)
        GRANULE/L1C_<tile>_A000000_<date>/IMG_DATA/<tile>_<date>_B01.jp2 ... _B12.jp2, _TCI.jp2

* ``layout="safe", level="L2A"``: ``MSIL2A``, ``GRANULE/L2A_.../IMG_DATA/R10m|R20m|R60m/``
  with ``<tile>_<date>_<band>_<res>m.jp2`` (each band at its native and every coarser
  resolution, as ESA ships them), ``SCL_20m.jp2``; **no B10**. The values stay the simulator's
  TOA DN: only the layout is L2A (the simulator has no atmospheric correction).
* ``layout="bands"``: a folder ``<prefix>/`` of ``<prefix>_<band>.tif`` GeoTIFFs at native
  resolution (the BigEarthNet layout; ``level="L2A"`` leaves out B10).

Coarser bands are the **block mean** of the 10 m image (a coarse detector pixel integrates the
ground it sees), so the image side must be a multiple of 6 (60 m = 6 x 10 m). JP2 files are
lossless JPEG 2000 (OpenJPEG, reversible); every file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import Affine

from cloudfree.bands import S2_L1C
from cloudfree.errors import ConfigError
from cloudfree.io import write_raster
from cloudfree.io.atomic import atomic_write_text, publish, temporary_sibling

__all__ = ["S2_PRODUCT_LAYOUTS", "write_s2_product"]

S2_PRODUCT_LAYOUTS: tuple[str, ...] = ("safe", "bands")
_LEVELS = ("L1C", "L2A")
_L2A_RES = (10, 20, 60)


def _block_mean(band: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return band
    h, w = band.shape
    b = band.astype(np.float64).reshape(h // factor, factor, w // factor, factor)
    return np.round(b.mean(axis=(1, 3))).astype(band.dtype)


def _coarse_transform(transform: Affine, factor: int) -> Affine:
    return transform * Affine.scale(factor)


def _write_jp2(path: Path, band: np.ndarray, crs: Any, transform: Affine) -> Path:
    tmp_tif = temporary_sibling(path, ".tmp.tif")
    tmp_jp2 = temporary_sibling(path, ".tmp.jp2", clean_stale=False)
    try:
        with rasterio.open(
            tmp_tif,
            "w",
            driver="GTiff",
            width=band.shape[1],
            height=band.shape[0],
            count=1,
            dtype=band.dtype,
            crs=crs,
            transform=transform,
        ) as dst:
            dst.write(band, 1)
        rasterio.shutil.copy(
            tmp_tif, tmp_jp2, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES"
        )
        publish(tmp_jp2, path)
    finally:
        tmp_tif.unlink(missing_ok=True)
        tmp_jp2.unlink(missing_ok=True)
        Path(str(tmp_tif) + ".aux.xml").unlink(missing_ok=True)
    return path


def write_s2_product(
    outdir: str | os.PathLike[str],
    dn: np.ndarray,
    *,
    crs: Any,
    transform: Affine,
    layout: str = "safe",
    level: str = "L1C",
    tile: str = "T32UNU",
    date: str = "20180501T103021",
    prefix: str = "patch",
) -> Path:
    """Write the 13-band 10 m image ``dn`` (uint16 DN) as a Sentinel-2 product (module
    docstring); return the product's folder (the ``.SAFE`` directory or the band folder)."""
    if layout not in S2_PRODUCT_LAYOUTS:
        raise ConfigError(f"layout must be one of {list(S2_PRODUCT_LAYOUTS)}, got {layout!r}")
    if level not in _LEVELS:
        raise ConfigError(f"level must be one of {list(_LEVELS)}, got {level!r}")
    arr = np.asarray(dn)
    if arr.ndim != 3 or arr.shape[0] != len(S2_L1C):
        raise ConfigError(f"expected a [13, H, W] L1C image, got shape {arr.shape}")
    if arr.shape[1] % 6 or arr.shape[2] % 6:
        raise ConfigError(f"the image side must be a multiple of 6 (60 m bands), got {arr.shape}")
    bands = [b for b in S2_L1C if not (level == "L2A" and b.name == "B10")]
    out = Path(outdir)
    if layout == "bands":
        folder = out / prefix
        for b in bands:
            f = b.resolution_m // 10  # type: ignore[operator]
            write_raster(
                folder / f"{prefix}_{b.name}.tif",
                _block_mean(arr[b.index], f),
                crs=crs,
                transform=_coarse_transform(transform, f),
                dtype=arr.dtype,
            )
        return folder
    kind = "MSIL1C" if level == "L1C" else "MSIL2A"
    safe = out / f"S2A_{kind}_{date}_N0207_R108_{tile}_{date}.SAFE"
    granule = safe / "GRANULE" / f"{level}_{tile}_A000000_{date}" / "IMG_DATA"
    stem = f"{tile}_{date}"
    atomic_write_text(safe / "manifest.safe", _MANIFEST)
    atomic_write_text(safe / f"MTD_{kind}.xml", _MTD.format(level=level))
    if level == "L1C":
        for b in bands:
            f = b.resolution_m // 10  # type: ignore[operator]
            _write_jp2(
                granule / f"{stem}_{b.name}.jp2",
                _block_mean(arr[b.index], f),
                crs,
                _coarse_transform(transform, f),
            )
        rgb = _tci(arr)
        _write_jp2(granule / f"{stem}_TCI.jp2", rgb, crs, transform)
        return safe
    for res in _L2A_RES:
        f = res // 10
        for b in bands:
            if b.resolution_m > res:  # type: ignore[operator]
                continue  # not shipped finer than native
            if res == 10 and b.resolution_m != 10:
                continue
            _write_jp2(
                granule / f"R{res}m" / f"{stem}_{b.name}_{res}m.jp2",
                _block_mean(arr[b.index], f),
                crs,
                _coarse_transform(transform, f),
            )
    scl = np.full((arr.shape[1] // 2, arr.shape[2] // 2), 4, dtype=np.uint8)
    _write_jp2(granule / "R20m" / f"{stem}_SCL_20m.jp2", scl, crs, _coarse_transform(transform, 2))
    return safe


def _tci(arr: np.ndarray) -> np.ndarray:
    """An 8-bit true-colour band (the red channel only: it is there to be ignored)."""
    return np.clip(arr[S2_L1C.position("B04")] / 10000 * 255 * 3.5, 0, 255).astype(np.uint8)


_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!-- synthetic product written by cloudfree.synth.products -->\n"
    '<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1"></xfdu:XFDU>\n'
)
_MTD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!-- synthetic product written by cloudfree.synth.products -->\n"
    "<Level-{level}_User_Product><General_Info><Product_Info>"
    "<PROCESSING_LEVEL>Level-{level}</PROCESSING_LEVEL>"
    "<PROCESSING_BASELINE>02.07</PROCESSING_BASELINE>"
    "</Product_Info></General_Info></Level-{level}_User_Product>\n"
)
