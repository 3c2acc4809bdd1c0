"""`cloudfree demo`: the built-in end-to-end run on synthetic data.

Until training and prediction exist this is a smoke run of the foundation, in four steps:

1. generate a synthetic SEN12MS-CR-style dataset (official and flat layouts);
2. compute georeferenced rule-based cloud/shadow masks for the test split;
3. evaluate the cloudy input against the cloud-free target (the *identity* baseline) for every
   file of the flat layout (per-image CSV);
4. evaluate the identity on the test split through the dataset reader, overall, inside and
   outside clouds, and write ``summary.json``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import click
import torch

__all__ = ["demo", "run_demo"]


def _region_means(rows: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    out = {}
    for name in ("psnr", "ssim", "sam", "mae", "rmse"):
        values = torch.cat([r[name] for r in rows])
        finite = values[torch.isfinite(values)]
        out[name] = float(finite.mean()) if finite.numel() else math.nan
    return out


def run_demo(out: Path, *, patches: int, size: int, seed: int, protocol: str) -> dict[str, Any]:
    """Run the demo into ``out`` and return the summary (also written to summary.json)."""
    from cloudfree.cloudmask.files import write_cloud_mask_file
    from cloudfree.data import SEN12MSCR
    from cloudfree.evaluate import evaluate_directories
    from cloudfree.io.atomic import atomic_write_json
    from cloudfree.metrics import image_metrics
    from cloudfree.synth import write_sen12mscr_synthetic

    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if (data / "synthetic_manifest.json").is_file():
        shutil.rmtree(data)  # the demo's own data from an earlier run: regenerate from scratch
    click.echo(f"[1/4] generating {patches} synthetic patches of {size} px in {data}")
    write_sen12mscr_synthetic(data, patches=patches, size=size, seed=seed, layout="both")

    # optical in [0, 1] reflectance, the scale every metric protocol expects
    test = SEN12MSCR(data, split="test", protocol="glf_cr")
    click.echo(f"[2/4] cloud masks of the {len(test)} test patches -> {out / 'cloudmasks'}")
    for t in test.triplets:
        r = write_cloud_mask_file(t.s2_cloudy, out / "cloudmasks" / f"{t.id}.tif")
        click.echo(f"      {t.id}: cloud {100 * r.cloud_fraction:5.1f} %")

    click.echo("[3/4] identity baseline (cloudy input vs target), all patches")
    csv_path = out / "identity_per_image.csv"
    _, means = evaluate_directories(
        data / "flat" / "s2_cloudy",
        data / "flat" / "s2_cloudfree",
        protocol=protocol,
        out_csv=csv_path,
    )

    click.echo("[4/4] identity on the test split, inside and outside clouds")
    regions: dict[str, list[dict[str, torch.Tensor]]] = {
        "overall": [],
        "inside_clouds": [],
        "outside_clouds": [],
    }
    for i in range(len(test)):
        s = test[i]
        pred, target = s["optical"][None], s["target"][None]
        cloud = s["cloud_mask"][None] > 0.5
        regions["overall"].append(image_metrics(pred, target, protocol=protocol))
        regions["inside_clouds"].append(image_metrics(pred, target, protocol=protocol, mask=cloud))
        regions["outside_clouds"].append(
            image_metrics(pred, target, protocol=protocol, mask=~cloud)
        )
    summary = {
        "protocol": protocol,
        "split": "test",
        "n_images": len(test),
        "models": {"identity": {k: _region_means(v) for k, v in regions.items()}},
        "all_patches_identity": means,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("demo_output"),
    show_default=True,
    help="Output directory.",
)
@click.option("--patches", type=int, default=24, show_default=True, help="Synthetic patches.")
@click.option("--size", type=int, default=128, show_default=True, help="Patch size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--protocol", default="uncrtaints", show_default=True, help="Metric protocol.")
def demo(out: Path, patches: int, size: int, seed: int, protocol: str) -> None:
    """Run the built-in demo on synthetic data (no data or weights needed)."""
    summary = run_demo(out, patches=patches, size=size, seed=seed, protocol=protocol)
    ident = summary["models"]["identity"]
    click.echo(f"\nprotocol: {summary['protocol']}, test images: {summary['n_images']}")
    for region in ("overall", "inside_clouds", "outside_clouds"):
        m = ident[region]
        click.echo(
            f"  identity {region:<15} PSNR {m['psnr']:6.2f}  SSIM {m['ssim']:.4f}  "
            f"SAM {m['sam']:6.2f}  MAE {m['mae']:.4f}"
        )
    click.echo(f"summary: {out / 'summary.json'}")
