"""`cloudfree report RUN_DIR`: a self-contained HTML report of an evaluated run.

``RUN_DIR`` needs ``summary.json`` (``cloudfree evaluate --checkpoint RUN --data ROOT --out
RUN_DIR`` writes it, and so does ``cloudfree demo``); ``per_image.csv``, ``panels/`` and
``scene.json`` are used when present (see :mod:`cloudfree.report.html`). ``--panels N`` first
renders N test patches with the evaluated model.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report file (default: RUN_DIR/report.html).",
)
@click.option("--title", default=None, help="Title of the report.")
@click.option(
    "--panels",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First render N patches of the evaluated split (low to high cloud cover) with the "
    "evaluated model into RUN_DIR/panels.",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="With --panels: weights or run directory (default: the one the summary names).",
)
@click.option(
    "--data",
    "data_root",
    type=click.Path(path_type=Path),
    default=None,
    help="With --panels: dataset root (default: the one the summary names).",
)
def report(
    run_dir: Path,
    out: Path | None,
    title: str | None,
    panels: int,
    checkpoint: Path | None,
    data_root: Path | None,
) -> None:
    """Write an HTML report (metrics table, PSNR per cloud-cover bin, panels) of RUN_DIR.

    \b
    RUN_DIR/summary.json          required: `cloudfree evaluate --checkpoint ... --out RUN_DIR`
                                  or `cloudfree demo` output
    RUN_DIR/per_image.csv         optional: adds PSNR inside clouds per cover bin
    RUN_DIR/panels/panels.json    optional: sample panels (made by --panels N)
    RUN_DIR/scene.json            optional: a scene before and after (the demo's)

    Images are embedded, so the HTML file stands alone.
    """
    from cloudfree.report import build_report, load_report_inputs, model_label
    from cloudfree.report.panels import panels_for_evaluation

    if panels:
        inputs = load_report_inputs(run_dir)
        names = [k for k in inputs.summary["models"] if k != "identity"]
        label = model_label(names[0], inputs.summary) if len(names) == 1 else None
        click.echo(f"rendering {panels} panels into {run_dir / 'panels'}")
        panels_for_evaluation(
            run_dir, inputs.summary, panels, checkpoint=checkpoint, data_root=data_root, label=label
        )
    elif checkpoint is not None or data_root is not None:
        raise click.UsageError("--checkpoint and --data are only used with --panels N")
    path = build_report(run_dir, out, title=title)
    click.echo(f"report: {path.resolve()}")
