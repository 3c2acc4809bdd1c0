"""`cloudfree cloudmask`: cloud and shadow mask of a Sentinel-2 L1C GeoTIFF.

Reads a 13-band L1C GeoTIFF (product band order, DN = reflectance x 10000), computes the mask over
the **whole image** (the rule-based shadow thresholds are image-relative, so the mask is never
computed tile by tile) and writes a single-band int8 GeoTIFF on the same grid (CRS and transform
copied), atomically: on any error no output file appears.

Nodata: when the input declares a nodata value, a pixel whose 13 bands all equal it is invalid;
NaN in any band also makes a pixel invalid. Invalid pixels are excluded from the detectors'
statistics and labelled 0 (see :mod:`cloudfree.cloudmask`).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rasterio.errors import RasterioError

from cloudfree.bands import harmonize_pb04
from cloudfree.cloudmask import (
    CLOUD_MASK_METHODS,
    DEFAULT_THRESHOLDS,
    MASK_ENCODING,
    cloud_cover,
    compute_cloud_mask,
    require_s2cloudless,
)
from cloudfree.errors import InputFileError
from cloudfree.io import read_raster, write_raster

__all__ = ["cloudmask", "nodata_validity"]


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


@click.command("cloudmask")
@click.argument("cloudy", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(list(CLOUD_MASK_METHODS)),
    default="rule_based",
    show_default=True,
    help="Detector: "
    + "; ".join(f"{name}: {desc}" for name, (_, desc) in CLOUD_MASK_METHODS.items()),
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Cloud threshold (default: 0.2 for rule_based*, carf; 0.4 for s2cloudless).",
)
@click.option(
    "--pb04-offset",
    is_flag=True,
    default=False,
    help="Remove the +1000 DN offset of processing baseline 04.00 products (after 25 Jan 2022).",
)
def cloudmask(
    cloudy: Path, out: Path, method: str, threshold: float | None, pb04_offset: bool
) -> None:
    """Write the cloud/shadow mask of CLOUDY (13-band S2 L1C GeoTIFF) to OUT.

    OUT is a single-band int8 GeoTIFF on the input grid: -1 shadow, 0 clear, 1 cloud.
    """
    if out.resolve() == cloudy.resolve():
        raise InputFileError(out, "the output would overwrite the input; choose another name")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[method]
    if method == "s2cloudless":
        require_s2cloudless()  # fail before reading a possibly large scene
    raster = read_raster(cloudy, expected_count=13)
    dn = raster.array
    valid = nodata_validity(dn, raster.nodata)
    if pb04_offset:
        dn = harmonize_pb04(dn)
    mask = compute_cloud_mask(dn, method, threshold=threshold, valid=valid)
    tags = {
        "encoding": MASK_ENCODING,
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
            crs=raster.crs,
            transform=raster.transform,
            descriptions=["cloud_mask"],
            tags=tags,
            dtype="int8",
        )
    except (OSError, RasterioError) as exc:
        raise InputFileError(out, f"could not write the mask ({exc})") from None
    cloud = cloud_cover(mask, valid=valid)
    shadow = cloud_cover(np.where(mask == -1, 1, 0), valid=valid)
    h, w = mask.shape
    click.echo(
        f"{out}: {method} mask of {w}x{h} pixels, cloud {100 * cloud:.2f} %, "
        f"shadow {100 * shadow:.2f} %"
    )
