"""`cloudfree report RUN_DIR`: a self-contained HTML report of an evaluated run.

``RUN_DIR`` needs ``summary.json`` (``cloudfree evaluate --checkpoint RUN --data ROOT --out
RUN_DIR`` writes it, and so does ``cloudfree demo``); ``per_image.csv``, ``panels/`` and
``scene.json`` are used when present (see :mod:`cloudfree.report.html`). ``--panels N`` first
runs the evaluated model(s) on N patches of the evaluated dataset and split (rebuilt from the
summary: SEN12MS-CR, or a time series such as SEN12MS-CR-TS with its sampler;
:func:`cloudfree.evaluate.predict_samples`, here in the command-line layer) and has the report
draw their predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["report"]


def _evaluated_dataset(summary: Mapping[str, Any], root: Any) -> Any:
    """The evaluated split, rebuilt from the summary with :func:`cloudfree.data.build_dataset`:
    ``dataset_name`` and ``dataset_options`` as ``cloudfree evaluate`` recorded them (raw
    samples, e.g. ``sampler`` of a time series: the same draws, which depend on the seed, the
    epoch 0 and the index only) on ``root`` and the recorded ``split``. A summary without
    ``dataset_name`` (written before it was recorded) is SEN12MS-CR with whole patches
    (``crop="center"``, what evaluate always used); one without a split (or ``unknown``)
    takes ``test``."""
    from cloudfree.data import build_dataset

    name = str(summary.get("dataset_name") or "sen12mscr")
    recorded = summary.get("dataset_options")
    options = dict(recorded) if isinstance(recorded, Mapping) else {}
    if name == "sen12mscr":
        options = {"crop": "center", **options}
    split = str(summary.get("split") or "test")
    return build_dataset(name, root, split="test" if split == "unknown" else split, **options)


def _panel_covers(
    dataset: Any, rows: Sequence[Mapping[str, str]], n: int
) -> tuple[list[float], list[str] | None]:
    """Cloud cover of the ``n`` evaluated samples (the first ``n`` of ``dataset``: evaluate
    runs the first ``limit`` of the split, in order), to pick the panels from low to high
    cover, and the ids the covers belong to where they come from the run directory (the
    caller checks that the drawn samples have them).

    Decision, cheapest first: a dataset with ``cloud_covers()`` (SEN12MS-CR: its cached cover
    index) gives them; else ``per_image.csv``'s ``cloud_cover`` column, written by the
    evaluation from each sample's ``cloud_cover`` in dataset order, so row ``i`` is sample
    ``i`` (used when it has exactly ``n`` rows that all parse; a time series then needs no
    read beyond the panels' samples); else each sample's ``cloud_cover`` is read, which reads
    every series (slow on a large split, but needs nothing from the run directory).
    """
    if callable(getattr(dataset, "cloud_covers", None)):
        return [float(c) for c in dataset.cloud_covers(progress=False)[:n]], None
    if len(rows) == n:
        try:
            covers = [float(r["cloud_cover"]) for r in rows]
            return covers, [str(r["id"]) for r in rows]
        except (KeyError, TypeError, ValueError):
            pass  # not the table of this evaluation: read the samples
    return [float(dataset[i]["cloud_cover"]) for i in range(n)], None


def _render_panels(
    run_dir: Path,
    summary: Mapping[str, Any],
    n: int,
    *,
    checkpoint: Path | None,
    data_root: Path | None,
    rows: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Panels of ``n`` patches of the evaluated split, from low to high cloud cover, in
    ``run_dir/panels``: the models run here (:func:`cloudfree.evaluate.predict_samples`), the
    report only draws their predictions.

    The models default to those the summary of ``cloudfree evaluate --checkpoint`` records
    (``checkpoints``, else ``checkpoint``), the data to ``dataset.root``; the dataset is the
    evaluated one (:func:`_evaluated_dataset`: SEN12MS-CR, SEN12MS-CR-TS, AllClear ... with
    the recorded options), read once as raw samples and normalised for each model; the
    candidates are the evaluated samples (the first ``n_images``), their covers from
    :func:`_panel_covers` (``rows``: ``per_image.csv``).

    Raises:
        ConfigError: no model or no data named, or ``per_image.csv`` whose ids are not
            those of the rebuilt samples (other data than the evaluated).
    """
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
    dataset = _evaluated_dataset(summary, root)
    evaluated = summary.get("n_images")
    n_samples = len(dataset)
    if isinstance(evaluated, int) and not isinstance(evaluated, bool) and evaluated > 0:
        n_samples = min(n_samples, evaluated)
    covers, ids = _panel_covers(dataset, rows, n_samples)
    indices = select_by_cover(covers, n)
    predicted = predict_samples(
        models, dataset, indices, metric_protocol=str(summary.get("protocol", "uncrtaints"))
    )
    if ids is not None:
        for index, sample in zip(indices, predicted.samples):
            if sample["id"] != ids[index]:
                raise ConfigError(
                    f"sample {index} of the data at {root} is {sample['id']!r} but row {index} "
                    f"of per_image.csv is {ids[index]!r}: not the evaluated data; pass --data "
                    "with the evaluated root, or evaluate again"
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
            run_dir,
            inputs.summary,
            panels,
            checkpoint=checkpoint,
            data_root=data_root,
            rows=inputs.rows,
        )
        rendered = len(manifest["samples"])
        note = f" (the split has {rendered} samples)" if rendered < panels else ""
        click.echo(f"rendered {rendered} of {panels} panels{note} into {run_dir / 'panels'}")
    elif checkpoint is not None or data_root is not None:
        raise click.UsageError("--checkpoint and --data are only used with --panels N")
    path = build_report(run_dir, out, title=title, overwrite=overwrite)
    click.echo(f"report: {path.resolve()}")
