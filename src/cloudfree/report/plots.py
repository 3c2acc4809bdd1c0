"""Plots of a report (matplotlib, Agg backend: no display needed).

:func:`cover_bin_figure` draws PSNR per cloud-cover bin for every model of an evaluation
summary: the **overall** PSNR from ``summary["models"][name]["per_cover_bin"]`` and, when the
per-image table is available, the **inside-clouds** PSNR averaged per bin from its
``<name>_inside_clouds_psnr`` column (nan-mean, as the summary's means). Bars are grouped by bin,
one colour per model; a bin without images (or without a finite value) has no bar. The x labels
give each bin's number of images.

:func:`uncertainty_figure` draws, for every model whose summary entry has ``uncertainty``
(models with a variance output, :func:`cloudfree.metrics.uncertainty_summary`), the
calibration diagram (per bin of the images' mean variance, the RMS observed error
``sqrt(mean(mean_se))`` against the RMS predicted standard deviation ``sqrt(mean(mean_var))``,
marker area growing with the bin's image count, the diagonal = perfect calibration; empty bins
have no marker) and the discard curve (mean squared error of the most certain 5 %, ..., 100 %
of the images, with its linear fit).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MODEL_COLOURS",
    "cover_bin_figure",
    "cover_bin_table",
    "finite_or_none",
    "uncertainty_figure",
    "uncertainty_models",
]

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


def uncertainty_models(summary: Mapping[str, Any]) -> list[str]:
    """Keys of the summary's models that have an ``uncertainty`` entry, in summary order."""
    return [
        name
        for name, entry in (summary.get("models") or {}).items()
        if isinstance(entry, Mapping) and isinstance(entry.get("uncertainty"), Mapping)
    ]


def _points(xs: Sequence[Any], ys: Sequence[Any]) -> tuple[list[float], list[float], list[int]]:
    """The pairs where both values are finite, and their positions."""
    kept = [
        (i, fx, fy)
        for i, (x, y) in enumerate(zip(xs, ys))
        if (fx := finite_or_none(x)) is not None and (fy := finite_or_none(y)) is not None
    ]
    return [k[1] for k in kept], [k[2] for k in kept], [k[0] for k in kept]


def uncertainty_figure(
    summary: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    *,
    dpi: int = 110,
) -> bytes | None:
    """PNG bytes of the calibration diagram and the discard curve of every model with an
    ``uncertainty`` entry (module docstring); None when there is none."""
    names = uncertainty_models(summary)
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    labels = dict(labels or {})
    palette = matplotlib.colormaps["tab10"].colors
    fig = Figure(figsize=(10.4, 4.0), dpi=dpi, layout="constrained")
    cal_ax, dis_ax = fig.subplots(1, 2)
    top = 0.0
    for k, name in enumerate(names):
        u = summary["models"][name]["uncertainty"]
        colour = MODEL_COLOURS.get(name, palette[k % len(palette)])
        label = labels.get(name, name)
        bins = [b for b in u.get("calibration") or [] if isinstance(b, Mapping)]
        xs, ys, idx = _points([b.get("rms_std") for b in bins], [b.get("rmse") for b in bins])
        if xs:
            counts = [max(1, int(bins[i].get("count") or 0)) for i in idx]
            biggest = max(counts)
            sizes = [18 + 140 * c / biggest for c in counts]
            cal_ax.plot(xs, ys, color=colour, lw=1, alpha=0.6)
            cal_ax.scatter(xs, ys, s=sizes, color=colour, alpha=0.85, label=label, zorder=3)
            top = max(top, *xs, *ys)
        curve = u.get("discard_curve") or {}
        fx, fy, _ = _points(curve.get("fractions") or [], curve.get("errors") or [])
        if fx:
            dis_ax.plot([100 * f for f in fx], fy, "o", color=colour, ms=4, label=label)
            slope, icpt = finite_or_none(curve.get("slope")), finite_or_none(curve.get("intercept"))
            if slope is not None and icpt is not None:
                dis_ax.plot(
                    [0, 100],
                    [icpt, icpt + slope],
                    color=colour,
                    lw=1.2,
                    alpha=0.7,
                    label=f"{label}: fit, slope {slope:.3g}",
                )
    top = top * 1.08 if top > 0 else 1.0
    cal_ax.plot([0, top], [0, top], ls="--", color="#6b7280", lw=1, label="perfect calibration")
    cal_ax.set_xlim(0, top)
    cal_ax.set_ylim(0, top)
    cal_ax.set_aspect("equal", adjustable="box")
    cal_ax.set_xlabel("predicted RMS standard deviation (reflectance)")
    cal_ax.set_ylabel("observed RMSE (reflectance)")
    cal_ax.set_title("Calibration per bin of image variance")
    dis_ax.set_xlim(0, 100)
    dis_ax.set_xlabel("most certain images kept (%)")
    dis_ax.set_ylabel("mean squared error (reflectance$^2$)")
    dis_ax.set_title("Discard curve")
    for ax in (cal_ax, dis_ax):
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
