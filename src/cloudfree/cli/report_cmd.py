"""`cloudfree report RUN_DIR`: a self-contained HTML report of an evaluated run.

``RUN_DIR`` needs ``summary.json`` (``cloudfree evaluate --checkpoint RUN --data ROOT --out
RUN_DIR`` writes it, and so does ``cloudfree demo``); ``per_image.csv``, ``panels/`` and
``scene.json`` are used when present (see :mod:`cloudfree.report.html`). ``--panels N`` first
runs the evaluated model(s) on N test patches (:func:`cloudfree.evaluate.predict_samples`, here
in the command-line layer) and has the report draw their predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

__all__ = ["report"]


def _render_panels(
    run_dir: Path,
    summary: Mapping[str, Any],
    n: int,
    *,
    checkpoint: Path | None,
    data_root: Path | None,
) -> dict[str, Any]:
    """Panels of ``n`` patches of the evaluated split, from low to high cloud cover, in
    ``run_dir/panels``: the models run here (:func:`cloudfree.evaluate.predict_samples`), the
    report only draws their predictions.

    The models default to those the summary of ``cloudfree evaluate --checkpoint`` records
    (``checkpoints``, else ``checkpoint``), the data to ``dataset.root`` and ``split``; the
    split is read once as raw samples and normalised for each model.
    """
    from cloudfree.data import SEN12MSCR
    from cloudfree.errors import ConfigError
    from cloudfree.evaluate import load_model_for_evaluation, predict_samples
    from cloudfree.report import model_label, select_by_cover
    from cloudfree.report.panels import PANELS_DIR, render_sample_panels

    dataset_info = summary.get("dataset")
    root = data_root or (dataset_info.get("root") if isinstance(dataset_info, Mapping) else None)
    names = [k for k in summary.get("models", {}) if k != "identity"]
    recorded = summary.get("checkpoints")
    if checkpoint is not None:
        paths: dict[str, Any] = {"": checkpoint}
    elif isinstance(recorded, Mapping) and recorded:
        paths = dict(recorded)
    elif summary.get("checkpoint") is not None:
        paths = {"": summary["checkpoint"]}
    else:
        paths = {}
    if not paths or root is None:
        raise ConfigError(
            "panels need the model and the data, which this summary does not name; pass "
            "--checkpoint RUN_OR_WEIGHTS and --data ROOT"
        )
    models = {}
    for key, path in paths.items():
        model = load_model_for_evaluation(path)
        if not key:  # one model given or recorded: the summary's key for it
            name = str(model.cloudfree_config["name"])  # type: ignore[index]
            key = name if name in names or len(names) != 1 else names[0]
        models[key] = model
    split = str(summary.get("split", "test"))
    dataset = SEN12MSCR(
        root,
        split=split if split in ("train", "val", "test", "all") else "test",  # type: ignore[arg-type]
        crop="center",
    )
    indices = select_by_cover(dataset.cloud_covers(progress=False), n)
    predicted = predict_samples(
        models, dataset, indices, metric_protocol=str(summary.get("protocol", "uncrtaints"))
    )
    return render_sample_panels(
        predicted.samples,
        predicted.predictions,
        run_dir / PANELS_DIR,
        band_names=predicted.band_names,
        labels={k: model_label(k, summary) for k in models},
        metric_protocol=predicted.metric_protocol,
        metrics_crop=predicted.metrics_crop,
    )


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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing report and its side files (never an input of the report).",
)
def report(
    run_dir: Path,
    out: Path | None,
    title: str | None,
    panels: int,
    checkpoint: Path | None,
    data_root: Path | None,
    overwrite: bool,
) -> None:
    """Write an HTML report (metrics table, PSNR per cloud-cover bin, panels) of RUN_DIR.

    \b
    RUN_DIR/summary.json          required: `cloudfree evaluate --checkpoint ... --out RUN_DIR`
                                  or `cloudfree demo` output
    RUN_DIR/per_image.csv         optional: adds PSNR inside clouds per cover bin
    RUN_DIR/panels/panels.json    optional: sample panels (made by --panels N)
    RUN_DIR/scene.json            optional: a scene before and after (the demo's)

    Images are embedded, so the HTML file stands alone; the plot is also written into the
    folder REPORT_files/ next to it (report.html: report_files/). An existing report is
    replaced only with --overwrite; an input of the report (summary.json, ...) never.
    """
    from cloudfree.report import build_report, load_report_inputs

    if panels:
        inputs = load_report_inputs(run_dir)
        manifest = _render_panels(
            run_dir, inputs.summary, panels, checkpoint=checkpoint, data_root=data_root
        )
        rendered = len(manifest["samples"])
        note = f" (the split has {rendered} samples)" if rendered < panels else ""
        click.echo(f"rendered {rendered} of {panels} panels{note} into {run_dir / 'panels'}")
    elif checkpoint is not None or data_root is not None:
        raise click.UsageError("--checkpoint and --data are only used with --panels N")
    path = build_report(run_dir, out, title=title, overwrite=overwrite)
    click.echo(f"report: {path.resolve()}")
