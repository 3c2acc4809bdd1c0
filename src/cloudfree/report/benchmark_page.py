"""The HTML page of a benchmark (``report.html`` of ``cloudfree benchmark``).

:func:`render_benchmark_html` lays out what :func:`cloudfree.evaluate.benchmark.run_benchmark`
measured, from its ``summary.json`` content (``protocols[P].models[ENTRY][REGION][FAMILY]
[LABEL][METRIC] = {mean, lo, hi, n}``), its complexity figures and, optionally, the manifest of
sample panels (:func:`cloudfree.report.panels.render_sample_panels`). Nothing here runs a
model: the benchmark computes the panels' predictions (:func:`cloudfree.evaluate.
predict_samples`) and this module only draws.

Layout (decisions):

* **First screen**: what was benchmarked (dataset, split, season, number of images,
  protocols, models and baselines, bootstrap) and the ranked table of the **first** protocol,
  overall region, every image: mean and bootstrap interval per metric, ``n`` the images in the
  mean. Rows are ranked by mean PSNR (:func:`rank_by_psnr`, the order of ``tables.md``); the
  best mean of each column is in bold.
* **Per protocol**: a section per protocol with its description and centre crop, the ranked
  table of every region of the benchmark (the first protocol's overall table is not
  repeated) and a PSNR-per-stratum table of the overall region (every family but ``all``:
  cover bins, seasons, auxiliary change).
* **Plots** (first protocol, overall region, matplotlib PNGs embedded as data URIs): one
  per-stratum bar plot per stratum family (every cover bin set, the seasons and the
  auxiliary-change strata when the run has them), with the bootstrap intervals as error bars
  (:func:`cloudfree.report.plots.stratum_figure`); a PSNR-versus-MACs scatter when the
  complexity was measured (:func:`cloudfree.report.plots.psnr_macs_figure`; baselines, which
  have no MACs, are dashed lines).
* **Panels** (when given): the run report's section (:func:`cloudfree.report.html.
  panels_section`), every model side by side, captions under the first protocol.
* **Complexity table** last (measured on the benchmark's machine; the only part of the page
  that changes from run to run).
* **Self-contained and repeatable**: every image is a ``data:`` URI, no network resource, no
  timestamp (the same measurements give the same page).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cloudfree.metrics.protocols import get_metric_protocol, metric_labels
from cloudfree.report.html import REPORT_CSS, facts_list, panels_section, png_data_uri
from cloudfree.report.plots import finite_or_none, psnr_macs_figure, stratum_figure

__all__ = ["BENCHMARK_HTML", "rank_by_psnr", "render_benchmark_html"]

#: The file name of the benchmark page in the benchmark's output directory.
BENCHMARK_HTML = "report.html"

#: decimals of each metric (as ``tables.md``); higher is better
_DECIMALS = {"psnr": 2, "ssim": 4, "sam": 3, "mae": 4, "rmse": 4}
_HIGHER = {"psnr": True, "ssim": True, "sam": False, "mae": False, "rmse": False}
_REGION_TITLES = {
    "overall": "overall",
    "inside_clouds": "inside clouds",
    "outside_clouds": "outside clouds (and shadows)",
}
_FAMILY_TITLES = {"season": "season", "aux_change": "auxiliary dates changed"}


def rank_by_psnr(entries: Sequence[str], psnr: Mapping[str, Any]) -> list[str]:
    """``entries`` by mean PSNR, highest first; a NaN or missing PSNR last; ties keep the
    given order. (``+inf``, a perfect prediction under ``uncrtaints``, ranks first.)"""
    order = {e: i for i, e in enumerate(entries)}

    def key(e: str) -> tuple[int, float, int]:
        try:
            v = float(psnr.get(e))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            v = math.nan
        return (1, 0.0, order[e]) if math.isnan(v) else (0, -v, order[e])

    return sorted(entries, key=key)


def _num(value: Any, decimals: int) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "&ndash;"
    if math.isnan(v):
        return "&ndash;"
    return f"{v:.{decimals}f}" if math.isfinite(v) else ("&infin;" if v > 0 else "&minus;&infin;")


def _cell(cell: Mapping[str, Any] | None, metric: str) -> str:
    """``mean [lo, hi]`` of one cell (a dash without images)."""
    if not cell or not cell.get("n"):
        return "&ndash;"
    d = _DECIMALS.get(metric, 4)
    return (
        f'{_num(cell.get("mean"), d)} <span class="ci">[{_num(cell.get("lo"), d)}, '
        f"{_num(cell.get('hi'), d)}]</span>"
    )


def _entry_cells(
    summary: Mapping[str, Any], protocol: str, entry: str, region: str, family: str, label: str
) -> Mapping[str, Any]:
    models = summary["protocols"][protocol]["models"]
    return ((models.get(entry) or {}).get(region) or {}).get(family, {}).get(label) or {}


def _name(entry: str, summary: Mapping[str, Any]) -> str:
    text = html.escape(entry)
    if entry in (summary.get("baselines") or []):
        return f'{text} <span class="note">(baseline)</span>'
    registry = (summary.get("models") or {}).get(entry, {}).get("name")
    if registry and registry != entry:
        text += f' <span class="note">({html.escape(str(registry))})</span>'
    return text


def _ranked_table(
    summary: Mapping[str, Any], protocol: str, region: str, family: str = "all", label: str = "all"
) -> str:
    """The ranked table of one protocol, region and stratum (every metric, with intervals)."""
    entries = list(summary.get("entries") or [])
    metrics = list(summary.get("metrics") or _DECIMALS)
    labels = metric_labels(get_metric_protocol(protocol))
    cells = {e: _entry_cells(summary, protocol, e, region, family, label) for e in entries}
    psnr = {e: (cells[e].get("psnr") or {}).get("mean") for e in entries}
    best: dict[str, float] = {}
    for m in metrics:
        vals = [
            v
            for e in entries
            if (cells[e].get(m) or {}).get("n")
            and (v := finite_or_none((cells[e].get(m) or {}).get("mean"))) is not None
        ]
        if len(vals) > 1:
            best[m] = max(vals) if _HIGHER.get(m, False) else min(vals)
    out = ['<table class="metrics ranked"><tr><th>rank</th><th>model</th>']
    out += [f"<th>{html.escape(labels.get(m, m))}</th>" for m in metrics]
    out.append("<th>n</th></tr>")
    for rank, e in enumerate(rank_by_psnr(entries, psnr), start=1):
        out.append(f'<tr data-model="{html.escape(e)}"><td>{rank}</td>')
        out.append(f'<td class="name">{_name(e, summary)}</td>')
        for m in metrics:
            c = cells[e].get(m)
            v = finite_or_none((c or {}).get("mean")) if c and c.get("n") else None
            cls = ' class="best"' if v is not None and best.get(m) == v else ""
            out.append(f"<td{cls}>{_cell(c, m)}</td>")
        n = (cells[e].get("mae") or {}).get("n", 0)
        out.append(f"<td>{int(n or 0)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _strata_table(summary: Mapping[str, Any], protocol: str, metric: str = "psnr") -> str:
    """Mean PSNR [interval] per stratum (overall region): a row per entry, a column per stratum
    of every family but ``all``; empty when the run has no strata."""
    families = [(f, list(s)) for f, s in (summary.get("strata") or {}).items() if f != "all"]
    if not families:
        return ""
    sizes = summary.get("stratum_sizes") or {}
    entries = list(summary.get("entries") or [])
    psnr = {
        e: (_entry_cells(summary, protocol, e, "overall", "all", "all").get("psnr") or {}).get(
            "mean"
        )
        for e in entries
    }
    out = ['<table class="metrics strata"><tr><th rowspan="2">model</th>']
    out += [
        f'<th colspan="{len(s)}">{html.escape(_family_title(f))}</th>' for f, s in families if s
    ]
    out.append("</tr><tr>")
    for f, strata in families:
        for label in strata:
            n = (sizes.get(f) or {}).get(label, "?")
            out.append(f"<th>{html.escape(_stratum_label(f, label))}<br>n={n}</th>")
    out.append("</tr>")
    for e in rank_by_psnr(entries, psnr):
        out.append(f'<tr><td class="name">{_name(e, summary)}</td>')
        for f, strata in families:
            for label in strata:
                cell = _entry_cells(summary, protocol, e, "overall", f, label).get(metric)
                out.append(f"<td>{_cell(cell, metric)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _family_title(family: str) -> str:
    if family.startswith("cover_"):
        return f"cloud cover ({family[len('cover_') :]} bins)"
    return _FAMILY_TITLES.get(family, family)


def _stratum_label(family: str, label: str) -> str:
    return f"{label} %" if family.startswith("cover_") else label


def _plots(summary: Mapping[str, Any], complexity: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The plot section's HTML pieces (first protocol, overall region)."""
    protocol = str(list(summary["protocols"])[0])
    entries = list(summary.get("entries") or [])
    sizes = summary.get("stratum_sizes") or {}
    out: list[str] = []
    for family, strata in (summary.get("strata") or {}).items():
        if family == "all" or not strata:
            continue
        cells = {
            e: [
                _entry_cells(summary, protocol, e, "overall", family, s).get("psnr") for s in strata
            ]
            for e in entries
        }
        cover = family.startswith("cover_")
        title = f"PSNR per {_family_title(family)}, protocol {protocol}, overall"
        png = stratum_figure(
            list(strata),
            [int((sizes.get(family) or {}).get(s, 0)) for s in strata],
            cells,
            title=title,
            xlabel="cloud cover of the patch" if cover else _family_title(family),
            unit=" %" if cover else "",
        )
        out.append(f'<h3 id="plot-{html.escape(family)}">{html.escape(title)}</h3>')
        out.append(
            f'<img src="{png_data_uri(png)}" alt="{html.escape(title)}" width="100%" '
            'style="max-width:1040px">'
        )
    if complexity:
        points = {
            e: (
                (complexity.get(e) or {}).get("macs"),
                (_entry_cells(summary, protocol, e, "overall", "all", "all").get("psnr") or {}).get(
                    "mean"
                ),
            )
            for e in entries
        }
        title = f"PSNR ({protocol}, overall) against MACs"
        png = psnr_macs_figure(points, title=title)
        if png is not None:
            size = next(iter(complexity.values())).get("size")
            out.append(f'<h3 id="plot-macs">{html.escape(title)}</h3>')
            out.append(
                f'<img src="{png_data_uri(png)}" alt="{html.escape(title)}" width="100%" '
                'style="max-width:700px">'
            )
            out.append(
                f'<p class="note">MACs of one forward pass at {html.escape(str(size))} &times; '
                f"{html.escape(str(size))} px (complexity table); baselines (no network) are "
                "dashed lines.</p>"
            )
    return out


def _complexity_table(
    complexity: Mapping[str, Mapping[str, Any]], summary: Mapping[str, Any]
) -> str:
    first = next(iter(complexity.values()))
    out = [
        '<h2 id="complexity">Complexity</h2>',
        f'<p class="note">Measured on the machine of this run: device '
        f"{html.escape(str(summary.get('device', '?')))}, "
        f"{html.escape(str(summary.get('threads', '?')))} threads, batch 1, "
        f"{first.get('size')} &times; {first.get('size')} px (temporal models: "
        f"{first.get('dates')} dates), median of {first.get('repeats')} forward passes; MACs "
        "with the math attention backend; peak memory: extra memory of the timed passes; "
        "throughput for a 10 m product.</p>",
        '<table class="metrics complexity"><tr><th>model</th><th>parameters</th><th>GMACs</th>'
        "<th>latency (s)</th><th>peak memory (MiB)</th><th>km&sup2;/s</th></tr>",
    ]
    for key, f in complexity.items():
        params = f.get("params")
        macs = finite_or_none(f.get("macs"))
        out.append(
            f'<tr><td class="name">{html.escape(str(key))}</td>'
            f"<td>{f'{int(params):,}' if params is not None else '&ndash;'}</td>"
            f"<td>{_num(None if macs is None else macs / 1e9, 2)}</td>"
            f"<td>{_num(f.get('latency_s'), 4)}</td>"
            f"<td>{_num(f.get('peak_memory_mib'), 0)}</td>"
            f"<td>{_num(f.get('throughput_km2_per_s'), 3)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _what(summary: Mapping[str, Any]) -> str:
    ds = summary.get("dataset") or {}
    b = summary.get("bootstrap") or {}
    protocols = list(summary["protocols"])
    entries = list(summary.get("entries") or [])
    baselines = [e for e in entries if e in (summary.get("baselines") or [])]
    models = [e for e in entries if e not in baselines]
    facts = [
        ("dataset", f"<b>{html.escape(str(ds.get('name', '?')))}</b> at "
                    f"{html.escape(str(ds.get('root', '?')))}"),
        ("split", html.escape(str(ds.get("split", "?")))
         + (f", season {html.escape(str(ds['season']))}" if ds.get("season") else "")),
        ("images", html.escape(str(ds.get("n_images", "?")))
         + (f" (drawn: {html.escape(str(ds['sample']))})" if ds.get("sample") else "")
         + (f" (first {html.escape(str(ds['limit']))})" if ds.get("limit") else "")),
        ("protocols", ", ".join(f"<b>{html.escape(p)}</b>" for p in protocols)),
        ("models", ", ".join(html.escape(m) for m in models) or "&ndash;"),
        ("baselines", ", ".join(html.escape(m) for m in baselines) or "&ndash;"),
        ("regions", ", ".join(html.escape(_REGION_TITLES.get(r, r))
                              for r in summary.get("regions") or [])),
        ("intervals", f"{100 * float(b.get('confidence', 0.95)):g} % percentile bootstrap over "
                      f"images, {b.get('samples', '?')} resamples, seed {b.get('seed', '?')}"),
    ]  # fmt: skip
    bands = summary["protocols"][protocols[0]].get("evaluation", {}).get("metric_bands")
    if bands and (summary.get("config") or {}).get("metric_bands") is not None:
        facts.append(("metric bands", html.escape(", ".join(map(str, bands)))))
    return facts_list(facts)


def _protocol_note(summary: Mapping[str, Any], protocol: str) -> str:
    p = summary["protocols"][protocol]
    crop = p.get("center_crop")
    text = html.escape(str(p.get("description", "")))
    if crop:
        text += f"; centre {int(crop)} &times; {int(crop)} crop"
    return f'<p class="note">Protocol <b>{html.escape(protocol)}</b>: {text}.</p>'


def render_benchmark_html(
    summary: Mapping[str, Any],
    complexity: Mapping[str, Mapping[str, Any]] | None = None,
    panels: Mapping[str, Any] | None = None,
    panels_dir: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> str:
    """The benchmark page's HTML text (see the module docstring).

    Args:
        summary: the benchmark's ``summary.json`` content (NaN or null allowed).
        complexity: model key -> complexity figures (``params``, ``macs``, ``size``,
            ``latency_s``, ...), as :attr:`BenchmarkResult.complexity`; empty or None: no
            scatter, no complexity table.
        panels, panels_dir: the manifest of :func:`cloudfree.report.panels.
            render_sample_panels` and the folder of its PNGs (read now and embedded); None:
            no panels; a manifest with ``unavailable`` (a reason): a note instead.
        title: the page title (default ``cloudfree benchmark: DATASET (SPLIT)``).
    """
    complexity = dict(complexity or {})
    ds = summary.get("dataset") or {}
    protocols = list(summary["protocols"])
    first = protocols[0]
    title = title or f"cloudfree benchmark: {ds.get('name', '?')} ({ds.get('split', '?')})"
    versions = summary.get("versions") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}"
        ".ci{color:#6b7280;font-size:.86em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">cloudfree {html.escape(str(versions.get("cloudfree", "?")))} '
        f"&middot; torch {html.escape(str(versions.get('torch', '?')))} &middot; device "
        f"{html.escape(str(summary.get('device', '?')))}, {summary.get('threads', '?')} "
        "threads</p>",
        _what(summary),
        f'<h2 id="ranking">Ranking: protocol {html.escape(first)}, overall</h2>',
        _protocol_note(summary, first),
        _ranked_table(summary, first, "overall"),
        '<p class="note">Mean over images [bootstrap interval]; n: images in the mean (MAE). '
        "Ranked by mean PSNR; best mean of each column in bold. PSNR and SSIM: higher is "
        "better; SAM and MAE / RMSE: lower is better. &ldquo;Outside clouds&rdquo; excludes "
        "cloud shadows.</p>",
    ]
    for p in protocols:
        parts.append(f'<h2 id="protocol-{html.escape(p)}">Protocol {html.escape(p)}</h2>')
        parts.append(_protocol_note(summary, p))
        for region in summary.get("regions") or ["overall"]:
            if p == first and region == "overall":
                continue  # the ranking above
            parts.append(f"<h3>{html.escape(_REGION_TITLES.get(region, region))}</h3>")
            parts.append(_ranked_table(summary, p, region))
        strata = _strata_table(summary, p)
        if strata:
            parts.append("<h3>PSNR per stratum, overall</h3>")
            parts.append(strata)
    plots = _plots(summary, complexity)
    if plots:
        parts.append('<h2 id="plots">Plots</h2>')
        parts += plots
    if panels and panels.get("unavailable"):
        parts.append('<h2 id="panels">Sample panels</h2>')
        parts.append(f'<p class="note">No panels: {html.escape(str(panels["unavailable"]))}</p>')
    elif panels and panels_dir is not None:
        section = panels_section(
            panels, panels_dir, {"split": ds.get("split", "test"), "protocol": first}
        )
        parts.append(section)
    if complexity:
        parts.append(_complexity_table(complexity, summary))
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)
