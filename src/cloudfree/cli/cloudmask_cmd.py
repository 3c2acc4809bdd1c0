"""`cloudfree cloudmask`: cloud and shadow mask of a Sentinel-2 L1C GeoTIFF.

The work is done by :func:`cloudfree.cloudmask.files.write_cloud_mask_file` (whole-image mask,
georeferenced int8 output, atomic write); this module only parses options and reports.
"""

from __future__ import annotations

from pathlib import Path

import click

from cloudfree.cli._options import optical_input_options
from cloudfree.cloudmask import CLOUD_MASK_METHODS
from cloudfree.cloudmask.files import write_cloud_mask_file

__all__ = ["cloudmask"]


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
@optical_input_options
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (never CLOUDY).")
def cloudmask(
    cloudy: Path,
    out: Path,
    method: str,
    threshold: float | None,
    file_bands: str | None,
    fill_bands: tuple[str, ...],
    pb04_offset: bool,
    optical_scale: str,
    overwrite: bool,
) -> None:
    """Write the cloud/shadow mask of CLOUDY (S2 L1C GeoTIFF, .SAFE or band folder) to OUT.

    OUT is a single-band int8 GeoTIFF on the input grid: -1 shadow, 0 clear, 1 cloud, and
    -128 (declared nodata) where the input has no valid value.
    """
    r = write_cloud_mask_file(
        cloudy,
        out,
        method=method,
        threshold=threshold,
        pb04_offset=pb04_offset,
        optical_scale=optical_scale,
        overwrite=overwrite,
        file_bands=file_bands,
        fills=fill_bands,
    )
    click.echo(
        f"{r.path}: {r.method} mask of {r.width}x{r.height} pixels, "
        f"cloud {100 * r.cloud_fraction:.2f} %, shadow {100 * r.shadow_fraction:.2f} %"
    )
