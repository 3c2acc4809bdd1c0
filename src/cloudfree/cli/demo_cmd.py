"""`cloudfree demo`: the built-in end-to-end run on synthetic data (no data or weights needed).

Generates a synthetic SEN12MS-CR-style dataset and a large scene, trains a compact GLF-CR and
its no-SAR ablation on the same budget, evaluates both against the identity baseline, removes
the clouds of the scene and writes ``OUT/report.html`` and ``OUT/summary.json``
(:mod:`cloudfree.demo.pipeline`). ``--quick`` is a smoke run of a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cloudfree.metrics import METRIC_PROTOCOLS

__all__ = ["demo"]


def _d(text: str, name: str) -> str:
    """Help text with the default taken from :class:`cloudfree.demo.DemoSettings`."""
    from cloudfree.demo import DemoSettings

    return f"{text} [default: {getattr(DemoSettings, name)}]."


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("demo_output"),
    show_default=True,
    help="Output directory (an earlier demo's output there is replaced).",
)
@click.option("--quick", is_flag=True, help="Tiny smoke run (seconds; numbers meaningless).")
@click.option("--patches", type=click.IntRange(min=3), help=_d("Synthetic patches", "patches"))
@click.option("--size", type=click.IntRange(min=16), help=_d("Patch size in px", "size"))
@click.option("--steps", type=click.IntRange(min=1), help=_d("Training steps per model", "steps"))
@click.option("--batch-size", type=click.IntRange(min=1), help=_d("Batch size", "batch_size"))
@click.option("--crop", type=click.IntRange(min=8), help=_d("Training crop in px", "crop"))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help=_d("Learning rate", "lr"))
@click.option("--loss", help=_d("Loss of both mono-temporal models (a registered loss)", "loss"))
@click.option(
    "--scene-size", type=click.IntRange(min=64), help=_d("Scene side in px", "scene_size")
)
@click.option("--panels", type=click.IntRange(min=0), help=_d("Test patches shown", "panels"))
@click.option("--seed", type=click.IntRange(min=0), help=_d("Random seed", "seed"))
@click.option(
    "--protocol",
    type=click.Choice(sorted(METRIC_PROTOCOLS)),
    help=_d("Metric protocol", "protocol"),
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Torch threads while training [default: torch's default, one per core].",
)
@click.option(
    "--workers", type=click.IntRange(min=0), help=_d("Training data-loader processes", "workers")
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    help="Train, evaluate and predict on the CPU or one GPU [default: cpu].",
)
@click.option(
    "--ts-steps",
    type=click.IntRange(min=1),
    help=_d("Training steps of the time-series model (CA-MTCR)", "ts_steps"),
)
@click.option(
    "--time-series/--no-time-series",
    default=None,
    help="Run the second part: a time series with surface changes [default: on].",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: Path, quick: bool, quiet: bool, **options: Any) -> None:
    """Run the built-in demo on synthetic data (no data or weights needed).

    Trains a compact GLF-CR and the same network without SAR on the same budget, evaluates
    both against the cloudy input on the test split and removes the clouds of a larger scene;
    then trains a compact CA-MTCR on time series with surface changes, compares it with the
    least-cloudy date and the mosaic, and composites a dated GeoTIFF series with cloudfree
    predict. Writes OUT/report.html and OUT/summary.json.
    """
    from cloudfree.demo import DemoSettings, run_demo, summary_lines

    given = {k: v for k, v in options.items() if v is not None}
    changes: dict[str, Any] = {"out": out, "progress": not quiet, **given}
    settings = DemoSettings.quick(**changes) if quick else DemoSettings(**changes)
    result = run_demo(settings, echo=click.echo)
    summary = result.summary
    minutes, seconds = divmod(round(result.seconds), 60)
    click.echo(f"\ndone in {minutes} min {seconds:02d} s")
    click.echo(f"report:  {result.report.resolve()}")
    click.echo(f"summary: {result.summary_path.resolve()}")
    click.echo(f"scene:   {result.scene_output.resolve()}")
    click.echo(
        f"test split, {summary.get('n_images', '?')} patches, protocol {summary['protocol']}:"
    )
    for line in summary_lines(summary):
        click.echo(line)
    ts = summary.get("time_series")
    if ts:
        click.echo(f"time series, {ts['n_test']} test series, inside the target date's clouds:")
        for line in summary_lines(ts):
            click.echo(line)
