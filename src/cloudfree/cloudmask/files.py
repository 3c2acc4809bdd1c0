"""Cloud masks of GeoTIFF files: read a 13-band L1C scene, write a georeferenced int8 mask.

The input may be any raster :func:`cloudfree.io.open_raster` opens (a GeoTIFF, a ``.SAFE``
product or a folder of per-band files); its bands are matched by name to the 13 L1C bands the
detectors read (:mod:`cloudfree.io.bandmap`: ``file_bands`` / ``--bands``, else the band
descriptions, else the L1C order). Every detector reads B10, which L2A products lack:
``fills={"B10": 20}`` (``--fill-band B10``) is the documented adapter (its effect on the masks is
measured in ``docs/sentinel2_inputs.md``).

The mask is computed over the **whole image** (the rule-based shadow thresholds are
image-relative, so it is never computed tile by tile) and written on the same grid (CRS and
transform copied), atomically: on any error no output file appears.

Nodata: when the input declares a nodata value, a pixel whose bands all equal it is invalid;
NaN in any band also makes a pixel invalid. Invalid pixels are excluded from the detectors'
statistics and written as :data:`MASK_NODATA` (-128), declared as the mask's nodata value (they
are not "clear": nothing was observed there).

Input scale: the input must be L1C DN (:func:`cloudfree.io.checks.check_optical_scale`):
``uint8`` and 0..1 reflectance are refused (the detectors would report about 0 % cloud);
``optical_scale="reflectance"`` (``--optical-scale reflectance``) multiplies 0..1 floats by
10000 first. The threshold must lie in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from rasterio.errors import RasterioError

from cloudfree.bands import S2_L1C, harmonize_pb04
from cloudfree.cloudmask._common import check_threshold, validity
from cloudfree.cloudmask.dispatch import DEFAULT_THRESHOLDS, MASK_ENCODING, compute_cloud_mask
from cloudfree.cloudmask.rule_based import cloud_cover
from cloudfree.cloudmask.s2cloudless_adapter import require_s2cloudless
from cloudfree.errors import InputFileError
from cloudfree.io import open_raster, raster_info, write_raster
from cloudfree.io.bandmap import map_bands, parse_band_fills
from cloudfree.io.checks import check_optical_scale
from cloudfree.io.geotiff import describe_read_error, raster_files
from cloudfree.io.outputs import check_output

__all__ = ["MASK_NODATA", "MaskFileResult", "nodata_validity", "write_cloud_mask_file"]

#: Value (and declared nodata) of invalid pixels in a mask file.
MASK_NODATA = -128


@dataclass(frozen=True)
class MaskFileResult:
    """What :func:`write_cloud_mask_file` wrote."""

    path: Path
    method: str
    height: int
    width: int
    cloud_fraction: float
    shadow_fraction: float


def nodata_validity(array: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Valid pixels of a ``[C, H, W]`` array: False where every band equals ``nodata``.

    Returns ``None`` when there is no nodata value or no pixel is nodata. A NaN nodata value
    is left to the detectors, which treat NaN in any band as invalid anyway.
    """
    if nodata is None or np.isnan(nodata):
        return None
    invalid = np.ones(array.shape[1:], dtype=bool)
    for band in array:
        invalid &= band == nodata
    return None if not invalid.any() else ~invalid


def write_cloud_mask_file(
    cloudy: str | PathLike[str],
    out: str | PathLike[str],
    *,
    method: str = "rule_based",
    threshold: float | None = None,
    pb04_offset: bool = False,
    optical_scale: str = "dn",
    overwrite: bool = False,
    file_bands: str | Sequence[str] | None = None,
    fills: Sequence[str] | Mapping[str, float] | None = None,
) -> MaskFileResult:
    """Compute the cloud/shadow mask of ``cloudy`` and write it to ``out``.

    ``out`` may not be ``cloudy``, nor an existing file unless ``overwrite``
    (:func:`cloudfree.io.outputs.check_output`); a failed write (full disk, read-only
    directory) raises :class:`InputFileError` naming ``out`` and leaves nothing under it.

    ``out`` is a single-band int8 GeoTIFF on the input grid (-1 shadow, 0 clear, 1 cloud) with
    band description ``cloud_mask``, nodata :data:`MASK_NODATA` at invalid pixels, and tags
    ``encoding``, ``method``, ``threshold``, ``pb04_offset``, ``source`` and ``computed_on``.
    """
    cloudy, out = Path(cloudy), Path(out)
    # never the input (or one of its band files); an existing file only with --overwrite
    check_output(out, inputs=raster_files(cloudy), overwrite=overwrite)
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[method]
    threshold = check_threshold(threshold)
    fill_values = parse_band_fills(fills)
    if method == "s2cloudless":
        require_s2cloudless()  # fail before reading a possibly large scene
    info = raster_info(cloudy)
    bandmap = map_bands(info, S2_L1C.names, file_bands, fill_values, who=f"the {method} detector")
    with open_raster(cloudy) as src:
        try:
            raw = src.read([p + 1 for p in bandmap.file_positions])
        except RasterioError as exc:
            raise InputFileError(cloudy, describe_read_error(exc, cloudy)) from None
    check_optical_scale(raw, cloudy, info.nodata, optical_scale)
    valid = nodata_validity(raw, info.nodata)
    if optical_scale == "reflectance":
        raw = raw.astype(np.float32) * np.float32(10000.0)
    dn = bandmap.assemble(raw) if bandmap.fills else raw
    del raw
    if pb04_offset:
        dn = harmonize_pb04(dn)
    mask = compute_cloud_mask(dn, method, threshold=threshold, valid=valid)
    usable = validity(dn, valid)  # None when every pixel is valid; also NaN / inf in any band
    if usable is not None:
        mask[~usable] = MASK_NODATA
    tags = {
        "encoding": MASK_ENCODING,
        **({"filled_bands": bandmap.describe()} if bandmap.fills else {}),
        "method": method,
        "threshold": repr(float(threshold)),
        "pb04_offset": str(pb04_offset),
        "source": cloudy.name,
        "computed_on": "whole image",
    }
    try:
        write_raster(
            out,
            mask,
            crs=info.crs,
            transform=info.transform,
            descriptions=["cloud_mask"],
            tags=tags,
            dtype="int8",
            nodata=MASK_NODATA,
        )
    except (OSError, RasterioError) as exc:
        raise InputFileError(out, f"could not write the mask ({exc})") from None
    return MaskFileResult(
        path=out,
        method=method,
        height=mask.shape[0],
        width=mask.shape[1],
        cloud_fraction=cloud_cover(mask, valid=usable),
        shadow_fraction=cloud_cover(np.where(mask == -1, 1, 0), valid=usable),
    )
