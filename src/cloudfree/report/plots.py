"""Plots of a report (matplotlib, Agg backend: no display needed).

:func:`cover_bin_figure` draws PSNR per cloud-cover bin for every model of an evaluation
summary: the **overall** PSNR from ``summary["models"][name]["per_cover_bin"]`` and, when the
per-image table is available, the **inside-clouds** PSNR averaged per bin from its
``<name>_inside_clouds_psnr`` column (nan-mean, as the summary's means). Bars are grouped by bin,
one colour per model; a bin without images (or without a finite value) has no bar. The x labels
give each bin's number of images.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MODEL_COLOURS", "cover_bin_figure", "cover_bin_table", "finite_or_none"]

#: Fixed colours of the usual report keys; other models cycle through matplotlib's tab10.
MODEL_COLOURS: dict[str, str] = {
    "identity": "#9ca3af",
    "no_sar": "#f59e0b",
    "glf_cr_no_sar": "#f59e0b",
    "glf_cr": "#2563eb",
}


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (NaN, inf, missing, text)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _nanmean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def cover_bin_table(
    summary: Mapping[str, Any],
    rows: Sequence[Mapping[str, str]] | None = None,
    region: str = "overall",
    metric: str = "psnr",
) -> tuple[list[str], list[int], dict[str, list[float | None]]]:
    """``(bin labels, images per bin, {model: per-bin value})`` of one region and metric.

    ``overall`` comes from the summary's ``per_cover_bin``; another region needs the per-image
    ``rows`` (``cover_bin`` and ``<model>_<region>_<metric>`` columns) and is their nan-mean
    per bin. Models without the data get None everywhere.
    """
    models = summary.get("models", {})
    labels = list(summary.get("cover_bins") or [])
    if not labels:
        for entry in models.values():
            labels = list((entry or {}).get("per_cover_bin", {}))
            if labels:
                break
    counts: list[int] = []
    values: dict[str, list[float | None]] = {}
    if region == "overall":
        for name, entry in models.items():
            bins = (entry or {}).get("per_cover_bin", {})
            values[name] = [finite_or_none(bins.get(b, {}).get(metric)) for b in labels]
        first = next(iter(models.values()), {}) or {}
        counts = [int(first.get("per_cover_bin", {}).get(b, {}).get("n", 0)) for b in labels]
        return labels, counts, values
    rows = list(rows or [])
    counts = [sum(1 for r in rows if r.get("cover_bin") == b) for b in labels]
    for name in models:
        column = f"{name}_{region}_{metric}"
        values[name] = [
            _nanmean([finite_or_none(r.get(column)) for r in rows if r.get("cover_bin") == b])
            for b in labels
        ]
    return labels, counts, values


def cover_bin_figure(
    summary: Mapping[str, Any],
    rows: Sequence[Mapping[str, str]] | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    dpi: int = 110,
) -> bytes:
    """PNG bytes of the PSNR-per-cover-bin plot (one panel overall, one inside clouds when
    ``rows``, the per-image table, has the inside-clouds columns)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    labels = dict(labels or {})
    panels = [("overall", "PSNR over the whole patch")]
    if rows and any(k.endswith("_inside_clouds_psnr") for k in (rows[0].keys() if rows else ())):
        panels.append(("inside_clouds", "PSNR inside clouds"))
    fig = Figure(figsize=(5.2 * len(panels), 3.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    palette = matplotlib.colormaps["tab10"].colors
    for ax, (region, title) in zip(axes, panels):
        bins, counts, values = cover_bin_table(summary, rows, region, "psnr")
        n_models = max(1, len(values))
        width = 0.8 / n_models
        for k, (name, vals) in enumerate(values.items()):
            colour = MODEL_COLOURS.get(name, palette[k % len(palette)])
            xs = [i + (k - (n_models - 1) / 2) * width for i in range(len(bins))]
            pts = [(x, v) for x, v in zip(xs, vals) if v is not None]
            if pts:
                ax.bar(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    width=width * 0.95,
                    color=colour,
                    label=labels.get(name, name),
                )
        ax.set_xticks(range(len(bins)))
        ax.set_xticklabels([f"{b} %\nn={n}" for b, n in zip(bins, counts)])
        ax.set_xlabel("cloud cover of the patch")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        finite = [v for vals in values.values() for v in vals if v is not None]
        if finite:
            lo, hi = min(finite), max(finite)
            ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo) - 2.0), hi + 0.1 * (hi - lo) + 1.0)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside upper center", ncols=len(handles), frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
