"""A self-contained HTML report of an evaluated run (``cloudfree report RUN_DIR``).

What ``RUN_DIR`` must contain (only ``summary.json`` is required):

==========================  ===================================================================
``summary.json``            ``cloudfree evaluate --checkpoint ... --out RUN_DIR`` output, the
                            demo's, or any JSON with ``{"protocol": str, "models": {NAME:
                            {"overall" | "inside_clouds" | "outside_clouds": {"psnr", "ssim",
                            "sam", "mae"}, "per_cover_bin": {...}}}}`` (NaN / null allowed)
``per_image.csv``           optional: the per-image table of ``cloudfree evaluate`` (columns
                            ``cover_bin`` and ``<NAME>_<region>_<metric>``); adds the
                            inside-clouds panel of the cover-bin plot
``panels/panels.json``      optional: sample panels (:func:`cloudfree.report.panels.
                            render_sample_panels`; ``cloudfree report --panels N`` makes them)
``scene.json``              optional: a whole scene before and after (written by the demo):
                            ``{"title", "text", "images": [{"file", "label"}], "facts":
                            {label: value}}``, files relative to ``RUN_DIR``; an optional
                            ``"table": {"columns": [...], "rows": [[...], ...]}`` is shown
                            under the images
``summary.json``'s          optional ``overview``: ``{"text", "images": [{"file", "label"}]}``,
``overview``                the report's first screen (one paragraph, one row of images)
``time_series.json``        optional: the same schema, for a time series (the demo's second
                            part: the dates, each method's image of the target date, the
                            truth and a table of the methods)
==========================  ===================================================================

The report (``report.html``) holds the metrics table of every model (PSNR, SSIM, SAM, MAE
overall, inside and outside clouds; the best value of each column in bold) with the metric
protocol named, the PSNR-per-cover-bin plot, the panels and the scene, and what the summary says
about how it was measured. When a model's summary entry has ``uncertainty`` (a model with a
variance output, ``cloudfree evaluate``), an uncertainty section follows the cover-bin plot:
the table of its calibration numbers (UCE / AUCE as UnCRtainTS computes them and in the clean
form, RMS std against RMSE, rank correlation, discard-curve slope) and the calibration diagram
with the discard curve (:func:`cloudfree.report.plots.uncertainty_figure`); the panels then
show its uncertainty maps with their colour bar and range. Panels of a time series begin with
one small panel per input date, captioned with its date. Every image is embedded as a base64
``data:`` URI, so the file stands alone (no network resource, nothing beside it needed); the
plots are also written as ``psnr_per_cover_bin.png`` (and ``uncertainty_calibration.png``)
into the report's side folder.

Decisions on the files written:

* **Side files go into a folder named after the report**: ``X.html`` gets ``X_files/``
  (:func:`side_files_dir`, the convention browsers use for saved pages), never files beside
  ``X``, so a report never replaces an unrelated file of the same name as a side file.
* **Never an input, never an old file without consent**: the report and its side files are
  checked with :func:`cloudfree.io.outputs.check_output` against every file the report reads
  (:func:`report_input_files`: ``summary.json``, ``per_image.csv``, the panels and the scene);
  an existing report is replaced only with ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudfree.errors import InputFileError
from cloudfree.io.atomic import atomic_write_bytes, atomic_write_text
from cloudfree.io.outputs import check_output
from cloudfree.report.panels import PANELS_DIR, PANELS_JSON
from cloudfree.report.plots import (
    cover_bin_figure,
    finite_or_none,
    uncertainty_figure,
    uncertainty_models,
)

__all__ = [
    "DEFAULT_LABELS",
    "PLOT_PNG",
    "REPORT_CSS",
    "REPORT_HTML",
    "SCENE_JSON",
    "TIME_SERIES_JSON",
    "UNCERTAINTY_PNG",
    "ReportInputs",
    "build_report",
    "facts_list",
    "load_report_inputs",
    "model_label",
    "panels_section",
    "png_data_uri",
    "render_report_html",
    "report_input_files",
    "side_files_dir",
]

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
PER_IMAGE_CSV = "per_image.csv"
SCENE_JSON = "scene.json"
TIME_SERIES_JSON = "time_series.json"
PLOT_PNG = "psnr_per_cover_bin.png"
UNCERTAINTY_PNG = "uncertainty_calibration.png"

#: Display names of the usual model keys (a summary's ``model_labels`` overrides them).
DEFAULT_LABELS: dict[str, str] = {
    "identity": "Identity (cloudy input)",
    "glf_cr": "GLF-CR",
    "no_sar": "GLF-CR w/o SAR",
    "glf_cr_no_sar": "GLF-CR w/o SAR",
    "dsen2cr": "DSen2-CR",
    "dsen2cr_no_sar": "DSen2-CR w/o SAR",
    "carf": "CARF",
}
_REGIONS = (
    ("overall", "Overall"),
    ("inside_clouds", "Inside clouds"),
    ("outside_clouds", "Outside clouds"),
)
#: metric, header, digits, higher is better
_METRICS = (
    ("psnr", "PSNR", 2, True),
    ("ssim", "SSIM", 3, True),
    ("sam", "SAM", 2, False),
    ("mae", "MAE", 4, False),
)

#: The style sheet of every report page (run reports and benchmark pages).
REPORT_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;
max-width:1320px;padding:0 16px;color:#1f2937;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;
border-bottom:1px solid #e5e7eb;padding-bottom:.2em}
.meta{color:#4b5563;font-size:.92em}.note{color:#4b5563;font-size:.86em}
.result{background:#eff6ff;border-left:4px solid #2563eb;padding:8px 14px;margin:14px 0}
table.metrics{border-collapse:collapse;font-size:.92em;margin-top:6px}
table.metrics th,table.metrics td{border:1px solid #e5e7eb;padding:4px 9px;text-align:right}
table.metrics th{background:#f3f4f6}table.metrics td.name{text-align:left;white-space:nowrap}
table.metrics td.best{font-weight:700;background:#ecfdf5}
table.panels{border-collapse:separate;border-spacing:6px 4px}
table.panels th{font-size:.82em;font-weight:600;text-align:center;color:#374151}
table.panels td{vertical-align:top;text-align:center;font-size:.78em;color:#4b5563}
table.panels img{width:172px;height:auto;image-rendering:pixelated;display:block;
border:1px solid #d1d5db}
table.panels img.date{width:86px}
td.rowhead{text-align:left!important;width:120px;font-size:.82em}
.scene{display:flex;flex-wrap:wrap;gap:10px}.scene figure{margin:0}
.scene img{width:410px;height:auto;border:1px solid #d1d5db;display:block}
.overview p{font-size:1.05em;max-width:1040px}.overview .scene img{width:300px}
figcaption{font-size:.85em;text-align:center;color:#374151;margin-top:3px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:.88em}
dl.facts dt{color:#4b5563}dl.facts dd{margin:0}
.legend span{display:inline-block;width:12px;height:12px;border:1px solid #9ca3af;
vertical-align:middle;margin:0 4px 0 10px}
"""


@dataclass
class ReportInputs:
    """What a report is built from (see the module docstring)."""

    run_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, str]] = field(default_factory=list)
    panels: dict[str, Any] | None = None
    scene: dict[str, Any] | None = None
    time_series: dict[str, Any] | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"is not readable JSON ({exc})") from None


def load_report_inputs(run_dir: str | os.PathLike[str]) -> ReportInputs:
    """Read ``summary.json`` and the optional files of ``run_dir``.

    Raises:
        InputFileError: no ``run_dir`` or no ``summary.json`` in it (the message says how to
            make one), or a file that is not what it should be.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise InputFileError(d, "not found or not a directory (expected an evaluated run)")
    summary_path = d / SUMMARY_JSON
    if not summary_path.is_file():
        raise InputFileError(
            d,
            f"has no {SUMMARY_JSON}; evaluate first, e.g. `cloudfree evaluate --checkpoint RUN "
            f"--data ROOT --out {d}`, or pass the demo's output directory",
        )
    summary = _read_json(summary_path)
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), dict):
        raise InputFileError(summary_path, "has no 'models' mapping (not an evaluation summary)")
    if not summary["models"]:
        raise InputFileError(summary_path, "lists no model")
    rows: list[dict[str, str]] = []
    csv_path = d / PER_IMAGE_CSV
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    panels_path = d / PANELS_DIR / PANELS_JSON
    panels = _read_json(panels_path) if panels_path.is_file() else None
    scene_path = d / SCENE_JSON
    scene = _read_json(scene_path) if scene_path.is_file() else None
    ts_path = d / TIME_SERIES_JSON
    time_series = _read_json(ts_path) if ts_path.is_file() else None
    return ReportInputs(d, summary, rows, panels, scene, time_series)


def model_label(key: str, summary: Mapping[str, Any] | None = None) -> str:
    """Display name of model ``key``: the summary's ``model_labels``, else :data:`DEFAULT_LABELS`,
    else the key."""
    labels = (summary or {}).get("model_labels") or {}
    return str(labels.get(key) or DEFAULT_LABELS.get(key, key))


def _ordered_models(summary: Mapping[str, Any]) -> list[str]:
    names = list(summary["models"])
    return (["identity"] if "identity" in names else []) + [n for n in names if n != "identity"]


def _fmt(value: Any, digits: int) -> str:
    v = finite_or_none(value)
    return "&ndash;" if v is None else f"{v:.{digits}f}"


def png_data_uri(data: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI (pages embed every image)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _data_uri(path: Path) -> str | None:
    """The PNG file at ``path`` as a data URI (None when it cannot be read)."""
    try:
        return png_data_uri(path.read_bytes())
    except OSError:
        return None


def _metrics_table(summary: Mapping[str, Any]) -> str:
    names = _ordered_models(summary)
    models = summary["models"]
    sam_unit = "rad" if summary.get("sam_units") == "radians" else "&deg;"
    scale = finite_or_none(summary.get("error_scale"))
    mae_head = "MAE" if scale in (None, 1.0) else f"MAE (&times;{scale:g})"
    heads = {"psnr": "PSNR (dB)", "ssim": "SSIM", "sam": f"SAM ({sam_unit})", "mae": mae_head}
    out = ['<table class="metrics"><tr><th rowspan="2">Model</th>']
    out += [f'<th colspan="{len(_METRICS)}">{label}</th>' for _, label in _REGIONS]
    out.append("</tr><tr>")
    out += [f"<th>{heads[m]}</th>" for _ in _REGIONS for m, *_ in _METRICS]
    out.append("</tr>")
    best: dict[tuple[str, str], float] = {}
    for region, _ in _REGIONS:
        for metric, _, _, higher in _METRICS:
            vals = [
                v
                for n in names
                if (v := finite_or_none((models[n] or {}).get(region, {}).get(metric))) is not None
            ]
            if len(vals) > 1:
                best[(region, metric)] = max(vals) if higher else min(vals)
    for n in names:
        out.append(f'<tr><td class="name">{html.escape(model_label(n, summary))}</td>')
        for region, _ in _REGIONS:
            for metric, _, digits, _ in _METRICS:
                v = finite_or_none((models[n] or {}).get(region, {}).get(metric))
                cls = ' class="best"' if v is not None and best.get((region, metric)) == v else ""
                out.append(f"<td{cls}>{_fmt(v, digits)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _key_result(summary: Mapping[str, Any]) -> str:
    """One or two sentences on the inside-clouds numbers (empty when there is nothing to say)."""
    models = summary["models"]

    def get(name: str, metric: str) -> float | None:
        return finite_or_none((models.get(name) or {}).get("inside_clouds", {}).get(metric))

    lines: list[str] = []
    ident_psnr, ident_mae = get("identity", "psnr"), get("identity", "mae")
    for n in _ordered_models(summary):
        if n == "identity":
            continue
        psnr, mae = get(n, "psnr"), get(n, "mae")
        if psnr is None or mae is None:
            continue
        text = f"<b>{html.escape(model_label(n, summary))}</b>: PSNR {psnr:.2f} dB, MAE {mae:.4f}"
        if ident_psnr is not None and ident_mae is not None:
            text += (
                f" (cloudy input: {ident_psnr:.2f} dB, {ident_mae:.4f}; "
                f"{psnr - ident_psnr:+.2f} dB)"
            )
        lines.append(text)
    sar_key = next((k for k in ("no_sar", "glf_cr_no_sar") if k in models), None)
    if sar_key is not None and "glf_cr" in models:
        a, b = get("glf_cr", "psnr"), get(sar_key, "psnr")
        ma, mb = get("glf_cr", "mae"), get(sar_key, "mae")
        if None not in (a, b, ma, mb):
            better = a > b and ma < mb  # type: ignore[operator]
            verdict = "better" if better else "not better"
            lines.append(
                f"With SAR, GLF-CR is <b>{verdict}</b> inside clouds than the same network "
                f"without SAR (higher PSNR and lower MAE): {a - b:+.2f} dB PSNR, "  # type: ignore[operator]
                f"MAE {ma:.4f} vs {mb:.4f}"
            )
    if not lines:
        return ""
    return '<div class="result">Inside clouds:<br>' + "<br>".join(lines) + "</div>"


def _measurement_notes(summary: Mapping[str, Any]) -> str:
    facts: list[tuple[str, str]] = []
    proto = str(summary.get("protocol", "?"))
    desc = summary.get("protocol_description")
    facts.append(
        ("metric protocol", proto + (f" &mdash; {html.escape(str(desc))}" if desc else ""))
    )
    if summary.get("split"):
        facts.append(("split", html.escape(str(summary["split"]))))
    if summary.get("n_images") is not None:
        per = summary.get("n_images_per_region") or {}
        extra = ", ".join(f"{html.escape(str(k))} {v}" for k, v in per.items())
        facts.append(
            ("images", f"{summary['n_images']}" + (f" (per region: {extra})" if extra else ""))
        )
    for key, label in (
        ("normalisation", "model scaling"),
        ("center_crop", "centre crop"),
        ("regions", "regions"),
        ("aggregation", "aggregation"),
    ):
        if summary.get(key) is not None:
            facts.append((label, html.escape(str(summary[key]))))
    dataset = summary.get("dataset")
    if isinstance(dataset, Mapping) and dataset.get("root"):
        facts.append(("dataset", html.escape(str(dataset["root"]))))
    if summary.get("checkpoint"):
        facts.append(("checkpoint", html.escape(str(summary["checkpoint"]))))
    return facts_list(facts)


def facts_list(facts: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are already HTML."""
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


#: uncertainty table: key, header, digits
_UNCERTAINTY_COLUMNS = (
    ("n", "images", 0),
    ("rms_std", "RMS std", 4),
    ("rmse", "RMSE", 4),
    ("uce", "UCE", 4),
    ("auce", "AUCE", 4),
    ("uce_clean", "UCE (clean)", 4),
    ("auce_clean", "AUCE (clean)", 4),
    ("spearman_var_error", "Spearman (var, SE)", 3),
)


def _uncertainty_section(summary: Mapping[str, Any], plot_png: bytes | None) -> str:
    """Calibration numbers and plots of the models with an ``uncertainty`` entry (empty when
    there is none)."""
    names = uncertainty_models(summary)
    if not names:
        return ""
    out = ['<h2 id="uncertainty">Uncertainty calibration</h2>', '<table class="metrics"><tr>']
    out.append("<th>Model</th>")
    out += [f"<th>{html.escape(head)}</th>" for _, head, _ in _UNCERTAINTY_COLUMNS]
    out.append("<th>discard slope</th></tr>")
    for n in names:
        u = summary["models"][n]["uncertainty"]
        out.append(f'<tr><td class="name">{html.escape(model_label(n, summary))}</td>')
        out += [f"<td>{_fmt(u.get(key), digits)}</td>" for key, _, digits in _UNCERTAINTY_COLUMNS]
        slope = (u.get("discard_curve") or {}).get("slope")
        v = finite_or_none(slope)
        out.append(f"<td>{'&ndash;' if v is None else f'{v:.3g}'}</td></tr>")
    out.append("</table>")
    out.append(
        '<p class="note">Per image: mean predicted variance and mean squared error over bands '
        "and valid pixels (reflectance). UCE: bin-weighted |RMS error &minus; RMS predicted std| "
        "over 20 bins of the images&rsquo; variance, AUCE: its unweighted mean over occupied "
        "bins; lower is better. UCE / AUCE are UnCRtainTS&rsquo;s numbers (its code compares "
        "the images&rsquo; <i>signed</i> mean error with the std and weights the bins by a "
        "histogram of bin indices); the clean form compares each image&rsquo;s RMSE and weights "
        "by bin counts. Spearman: rank correlation of the images&rsquo; variance and squared "
        "error (higher: the variance ranks the errors). Discard slope: of the mean squared error "
        "of the most certain images against the fraction kept (positive: discarding uncertain "
        "images lowers the error).</p>"
    )
    if plot_png is not None:
        out.append(
            f'<img src="{png_data_uri(plot_png)}" alt="Uncertainty calibration and discard curve" '
            'width="100%" style="max-width:1040px">'
        )
        out.append(
            '<p class="note">Left: per bin of image variance, observed RMSE against predicted '
            "RMS standard deviation (marker area: images in the bin; on the dashed diagonal a "
            "model is calibrated, above it over-confident). Right: the discard curve with its "
            "linear fit.</p>"
        )
    definitions = summary.get("uncertainty_definitions")
    if definitions:
        out.append(facts_list([("definitions", html.escape(str(definitions)))]))
    return "".join(out)


def _split_title(summary: Mapping[str, Any]) -> str:
    """``Test`` / ``Validation`` / ``Training`` / ``All`` for the summary's split."""
    split = str(summary.get("split", "test"))
    return {"val": "Validation", "train": "Training", "all": "All"}.get(split, "Test")


def panels_section(
    panels: Mapping[str, Any], base: str | os.PathLike[str], summary: Mapping[str, Any]
) -> str:
    """The HTML section of sample panels: ``panels`` is the manifest of
    :func:`cloudfree.report.panels.render_sample_panels`, ``base`` the folder of its PNGs (each
    embedded as a data URI), ``summary`` gives ``split`` (the title) and ``protocol`` (the
    caption note's fallback). Empty when the manifest has no column or no sample."""
    base = Path(base)
    columns = list(panels.get("columns") or [])
    samples = list(panels.get("samples") or [])
    if not columns or not samples:
        return ""
    out = [
        f"<h2>{html.escape(_split_title(summary))} patches, from low to high cloud cover</h2>",
        '<table class="panels"><tr><th></th>',
    ]
    out += [f"<th>{html.escape(str(c.get('label', c.get('key'))))}</th>" for c in columns]
    out.append("</tr>")
    region = str(panels.get("metrics_region", "inside_clouds")).replace("_", " ")
    for s in samples:
        cover = finite_or_none(s.get("cloud_cover"))
        head = f"<b>{html.escape(str(s.get('id', '')))}</b><br>cloud cover "
        head += f"{100 * cover:.0f} %" if cover is not None else "?"
        out.append(f'<tr><td class="rowhead">{head}</td>')
        metrics = s.get("metrics") or {}
        for c in columns:
            key = str(c.get("key"))
            file = (s.get("images") or {}).get(key)
            uri = _data_uri(base / str(file)) if file else None
            if c.get("kind") == "input_date":  # a time series' input date: small, dated
                date = (s.get("input_dates") or {}).get(key)
                img = (
                    f'<img class="date" src="{uri}" alt="{html.escape(key)} '
                    f'{html.escape(str(s.get("id")))}">'
                    if uri
                    else ""  # a shorter series
                )
                out.append(f"<td>{img}{html.escape(str(date)) if uri and date else ''}</td>")
                continue
            img = (
                f'<img src="{uri}" alt="{html.escape(key)} {html.escape(str(s.get("id")))}">'
                if uri
                else "(missing)"
            )
            caption = ""
            name = "identity" if key == "cloudy" else key
            m = metrics.get(name)
            std = (s.get("uncertainty") or {}).get(key[: -len("_std")])
            if key.endswith("_std") and finite_or_none(std) is not None:
                caption = f"mean std {std:.4f}"
            elif isinstance(m, Mapping) and finite_or_none(m.get("psnr")) is not None:
                caption = f"{m['psnr']:.1f} dB, MAE {m['mae']:.3f}"
            elif name in metrics and key != "target":
                caption = f"no pixel {html.escape(region)}"
            out.append(f"<td>{img}{caption}</td>")
        out.append("</tr>")
    out.append("</table>")
    mask_legend = "".join(
        f'<span style="background:rgb{rgb}"></span>{name}'
        for name, rgb in (
            ("clear", (40, 44, 52)),
            ("cloud", (245, 245, 245)),
            ("cloud shadow", (59, 130, 246)),
        )
    )
    notes = [
        f"Numbers under the images: PSNR and MAE {html.escape(region)} of that patch "
        f"({html.escape(str(panels.get('metric_protocol', summary.get('protocol', ''))))}"
        + (f", over {html.escape(str(panels['metrics_area']))}" if "metrics_area" in panels else "")
        + ").",
        f"RGB: {html.escape(str(panels.get('rgb', '')))}.",
        f"SAR: {html.escape(str(panels.get('sar', '')))}.",
    ]
    out.append(f'<p class="note">{" ".join(notes)}</p>')
    out.append(f'<p class="note legend">Cloud mask:{mask_legend}</p>')
    if panels.get("uncertainty"):
        bar = panels.get("uncertainty_colourbar")
        uri = _data_uri(base / str(bar)) if bar else None
        lo, hi = (list(panels.get("uncertainty_range") or []) + [None, None])[:2]
        scale = ""
        if uri is not None and finite_or_none(lo) is not None and finite_or_none(hi) is not None:
            scale = (
                f' {lo:.4g} <img src="{uri}" alt="uncertainty colour bar" '
                'style="width:220px;height:12px;vertical-align:middle"> '
                f"{hi:.4g}"
            )
        out.append(
            f'<p class="note">Uncertainty: {html.escape(str(panels["uncertainty"]))}.{scale}</p>'
        )
    return "".join(out)


def _panels_section(panels: Mapping[str, Any], run_dir: Path, summary: Mapping[str, Any]) -> str:
    """:func:`panels_section` of a run directory's panels (``run_dir/panels``)."""
    return panels_section(panels, Path(run_dir) / PANELS_DIR, summary)


def _figure_row(images: Any, run_dir: Path) -> str:
    """A wrapping row of captioned images (``[{"file", "label"}]``, files relative to
    ``run_dir``, embedded; a missing file is left out)."""
    out = ['<div class="scene">']
    for item in images or []:
        uri = _data_uri(run_dir / str(item.get("file", "")))
        if uri is None:
            continue
        label = html.escape(str(item.get("label", "")))
        out.append(
            f'<figure><img src="{uri}" alt="{label}"><figcaption>{label}</figcaption></figure>'
        )
    out.append("</div>")
    return "".join(out)


def _scene_section(scene: Mapping[str, Any], run_dir: Path) -> str:
    out = [f"<h2>{html.escape(str(scene.get('title', 'Whole scene: before and after')))}</h2>"]
    if scene.get("text"):
        out.append(f"<p>{html.escape(str(scene['text']))}</p>")
    out.append(_figure_row(scene.get("images"), run_dir))
    table = scene.get("table")
    if isinstance(table, Mapping) and table.get("columns"):
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
            for row in table.get("rows") or []
        )
        out.append(f'<table class="metrics"><tr>{head}</tr>{body}</table>')
        if table.get("note"):
            out.append(f'<p class="note">{html.escape(str(table["note"]))}</p>')
    facts = scene.get("facts") or {}
    if facts:
        out.append(facts_list([(str(k), html.escape(str(v))) for k, v in facts.items()]))
    return "".join(out)


def _overview_section(summary: Mapping[str, Any], run_dir: Path) -> str:
    """The first screen: the summary's ``overview`` (``{"text", "images": [{"file",
    "label"}]}``: one paragraph and one row of images), empty without one."""
    overview = summary.get("overview")
    if not isinstance(overview, Mapping):
        return ""
    out = ['<div class="overview">']
    if overview.get("text"):
        out.append(f"<p>{html.escape(str(overview['text']))}</p>")
    out.append(_figure_row(overview.get("images"), run_dir))
    out.append("</div>")
    return "".join(out)


def _setup_section(summary: Mapping[str, Any]) -> str:
    setup = summary.get("setup")
    if not isinstance(setup, Mapping) or not setup:
        model = summary.get("model")
        if not isinstance(model, Mapping):
            return ""
        setup = {"model": json.dumps(model, sort_keys=True)}
    facts = [(str(k), html.escape(str(v))) for k, v in setup.items()]
    return "<h2>How this was made</h2>" + facts_list(facts)


def render_report_html(
    inputs: ReportInputs,
    *,
    title: str | None = None,
    plot_png: bytes | None = None,
    uncertainty_png: bytes | None = None,
) -> str:
    """The report's HTML text (see the module docstring); ``plot_png`` is the cover-bin plot
    (made by :func:`cloudfree.report.plots.cover_bin_figure` when None), ``uncertainty_png``
    the uncertainty plot (made by :func:`cloudfree.report.plots.uncertainty_figure` when None
    and a model has an ``uncertainty`` entry)."""
    from cloudfree import __version__

    summary = inputs.summary
    title = title or str(summary.get("title") or f"cloudfree report: {inputs.run_dir.name}")
    labels = {n: model_label(n, summary) for n in summary["models"]}
    if plot_png is None:
        plot_png = cover_bin_figure(summary, inputs.rows, labels)
    if uncertainty_png is None:
        uncertainty_png = uncertainty_figure(summary, labels)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">Metric protocol <b>{html.escape(str(summary.get("protocol", "?")))}'
        f"</b> &middot; split {html.escape(str(summary.get('split', '?')))} &middot; "
        f"{html.escape(str(summary.get('n_images', '?')))} images &middot; cloudfree "
        f"{html.escape(str(summary.get('cloudfree_version', __version__)))} &middot; "
        f"report made {stamp}</p>",
    ]
    parts.append(_overview_section(summary, inputs.run_dir))
    if summary.get("description"):
        parts.append(f"<p>{html.escape(str(summary['description']))}</p>")
    parts.append(_key_result(summary))
    parts.append('<h2 id="metrics">Metrics</h2>')
    parts.append(_metrics_table(summary))
    parts.append(
        '<p class="note">Mean over images of per-image metrics; best value of each column in '
        "bold. PSNR and SSIM: higher is better; SAM (spectral angle) and MAE (reflectance): "
        "lower is better. &ldquo;Outside clouds&rdquo; excludes cloud shadows.</p>"
    )
    parts.append(_measurement_notes(summary))
    parts.append('<h2 id="cover-bins">PSNR per cloud-cover bin</h2>')
    parts.append(
        f'<img src="{png_data_uri(plot_png)}" alt="PSNR per cloud-cover bin" width="100%" '
        'style="max-width:1040px">'
    )
    parts.append(
        '<p class="note">Bins of the patch cloud cover (cloud fraction of the whole cloudy patch '
        "by the dataset's detector); n = test images in the bin.</p>"
    )
    parts.append(_uncertainty_section(summary, uncertainty_png))
    if inputs.panels:
        parts.append(_panels_section(inputs.panels, inputs.run_dir, summary))
    if inputs.scene:
        parts.append(_scene_section(inputs.scene, inputs.run_dir))
    if inputs.time_series:
        parts.append(_scene_section(inputs.time_series, inputs.run_dir))
    parts.append(_setup_section(summary))
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def side_files_dir(report: str | os.PathLike[str]) -> Path:
    """The folder of a report's side files: ``X_files`` next to ``X.html``."""
    target = Path(report)
    return target.parent / f"{target.stem}_files"


def report_input_files(inputs: ReportInputs) -> list[Path]:
    """Every file a report of ``inputs`` reads (outputs must never replace one)."""
    d = inputs.run_dir
    files = [d / SUMMARY_JSON, d / PER_IMAGE_CSV, d / SCENE_JSON, d / TIME_SERIES_JSON]
    panels = d / PANELS_DIR
    if panels.is_dir():
        files += [f for f in panels.rglob("*") if f.is_file()]
    for section in (inputs.scene, inputs.time_series):
        for image in (section or {}).get("images", []) or []:
            if isinstance(image, dict) and image.get("file"):
                files.append(d / str(image["file"]))
    return [f for f in files if f.exists()]


def build_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) and the
    cover-bin plot into :func:`side_files_dir` (``psnr_per_cover_bin.png``, and
    ``uncertainty_calibration.png`` when a model has an ``uncertainty`` entry); return the
    report's path.

    Raises:
        InputFileError: ``out`` or a side file is one of the report's inputs, a directory, or
            (without ``overwrite``) an existing file; checked before anything is written.
    """
    inputs = load_report_inputs(run_dir)
    target = Path(out) if out is not None else inputs.run_dir / REPORT_HTML
    plot_path = side_files_dir(target) / PLOT_PNG
    unc_path = side_files_dir(target) / UNCERTAINTY_PNG
    with_unc = bool(uncertainty_models(inputs.summary))
    read = report_input_files(inputs)
    check_output(target, inputs=read, overwrite=overwrite, what="report")
    check_output(plot_path, inputs=read, overwrite=overwrite, what="report's plot")
    if with_unc:
        check_output(unc_path, inputs=read, overwrite=overwrite, what="report's plot")
    labels = {n: model_label(n, inputs.summary) for n in inputs.summary["models"]}
    plot = cover_bin_figure(inputs.summary, inputs.rows, labels)
    atomic_write_bytes(plot_path, plot)
    unc_plot = uncertainty_figure(inputs.summary, labels) if with_unc else None
    if unc_plot is not None:
        atomic_write_bytes(unc_path, unc_plot)
    html_text = render_report_html(inputs, title=title, plot_png=plot, uncertainty_png=unc_plot)
    return atomic_write_text(target, html_text)
