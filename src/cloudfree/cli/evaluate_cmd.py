"""`cloudfree evaluate`: image metrics of predictions against references.

Mode available now: ``--pred DIR --target DIR`` (GeoTIFFs paired by file name). The inputs
are options rather than arguments so that further modes (for example evaluating a trained
run on a dataset split) can be added as other option groups.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from cloudfree.metrics import METRIC_NAMES, METRIC_PROTOCOLS, MetricProtocol

DEFAULT_OUT = "evaluation_per_image.csv"


def _labels(protocol: MetricProtocol) -> dict[str, str]:
    scale = "" if protocol.error_scale == 1 else f" (x{protocol.error_scale:g})"
    sam_unit = "deg" if protocol.sam_units == "degrees" else "rad"
    return {
        "psnr": "PSNR (dB)",
        "ssim": "SSIM",
        "sam": f"SAM ({sam_unit})",
        "mae": f"MAE{scale}",
        "rmse": f"RMSE{scale}",
    }


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


@click.command("evaluate")
@click.option(
    "--pred",
    "pred_dir",
    type=click.Path(path_type=Path),
    help="Folder of predicted GeoTIFFs (S2 DN, searched recursively).",
)
@click.option(
    "--target",
    "target_dir",
    type=click.Path(path_type=Path),
    help="Folder of reference GeoTIFFs; each prediction needs one of the same file name.",
)
@click.option(
    "--protocol",
    type=click.Choice(sorted(METRIC_PROTOCOLS)),
    default="uncrtaints",
    show_default=True,
    help="Metric conventions (see cloudfree.metrics.protocols).",
)
@click.option(
    "--bands",
    default=None,
    help="Evaluate only these bands: 'rgb' or names such as B04,B03,B02 (default: all).",
)
@click.option(
    "--out",
    "out_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Per-image CSV (id, psnr, ssim, sam, mae, rmse).",
)
def evaluate(
    pred_dir: Path | None,
    target_dir: Path | None,
    protocol: str,
    bands: str | None,
    out_csv: Path,
) -> None:
    """Compute PSNR, SSIM, SAM, MAE and RMSE of predictions against references.

    Files are paired by identical name; pixel values are Sentinel-2 DN, scaled to [0, 1] by
    clipping to [0, 10000] and dividing by 10000. Prints the mean over images and writes one
    row per image to --out.
    """
    from cloudfree.evaluate import evaluate_directories

    if pred_dir is None or target_dir is None:
        missing = " and ".join(
            opt for opt, v in (("--pred", pred_dir), ("--target", target_dir)) if v is None
        )
        raise click.UsageError(f"missing {missing}: give both --pred DIR and --target DIR")
    proto = METRIC_PROTOCOLS[protocol]
    rows, means = evaluate_directories(
        pred_dir, target_dir, protocol=proto, out_csv=out_csv, bands=bands
    )
    labels = _labels(proto)
    width = max(len(s) for s in labels.values())
    click.echo(f"protocol: {proto.name} ({proto.description})")
    crop = f", centre {proto.center_crop}x{proto.center_crop} crop" if proto.center_crop else ""
    click.echo(f"images:   {len(rows)}{crop}")
    click.echo(f"{'metric'.ljust(width)}  mean")
    for key in METRIC_NAMES:
        click.echo(f"{labels[key].ljust(width)}  {_fmt(means[key])}")
    click.echo(f"wrote per-image metrics to {out_csv.resolve()}")
