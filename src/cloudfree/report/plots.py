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

:func:`stratum_figure` (benchmark pages) draws one metric per stratum of one family (cover bins,
seasons, ...) for every model: grouped bars of the stratum means with their bootstrap
intervals as error bars; a stratum without images (or without a finite mean) has no bar; the
x labels give each stratum's number of images. :func:`psnr_macs_figure` draws each measured
model's mean PSNR against its MACs (log axis, one labelled point per model); entries without
MACs (baselines) are dashed horizontal lines at their PSNR, labelled at the right.
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
    "model_colour",
    "psnr_macs_figure",
    "stratum_figure",
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


def model_colour(name: str, index: int) -> str | tuple[float, float, float]:
    """The colour of model ``name``: :data:`MODEL_COLOURS`, else tab10's ``index``-th colour
    (cycling)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    return MODEL_COLOURS.get(name, palette[index % len(palette)])


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
    for ax, (region, title) in zip(axes, panels):
        bins, counts, values = cover_bin_table(summary, rows, region, "psnr")
        n_models = max(1, len(values))
        width = 0.8 / n_models
        for k, (name, vals) in enumerate(values.items()):
            colour = model_colour(name, k)
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
    fig = Figure(figsize=(10.4, 4.0), dpi=dpi, layout="constrained")
    cal_ax, dis_ax = fig.subplots(1, 2)
    top = 0.0
    for k, name in enumerate(names):
        u = summary["models"][name]["uncertainty"]
        colour = model_colour(name, k)
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


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def stratum_figure(
    strata: Sequence[str],
    counts: Sequence[int],
    cells: Mapping[str, Sequence[Mapping[str, Any] | None]],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "PSNR (dB)",
    unit: str = "",
    labels: Mapping[str, str] | None = None,
    dpi: int = 110,
) -> bytes:
    """PNG bytes of one metric per stratum (module docstring).

    Args:
        strata: the stratum labels, in display order; counts: images per stratum.
        cells: model key -> one ``{"mean", "lo", "hi"}`` (or None) per stratum.
        title, xlabel, ylabel: texts of the axes; unit: appended to the x tick labels
            (``" %"`` for cover bins).
        labels: model key -> legend label (default: the key).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    labels = dict(labels or {})
    fig = Figure(figsize=(max(5.2, 1.1 * len(strata) + 2.5), 3.8), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    n_models = max(1, len(cells))
    width = 0.8 / n_models
    finite: list[float] = []
    for k, (name, row) in enumerate(cells.items()):
        xs, ys, err_lo, err_hi = [], [], [], []
        for i, cell in enumerate(row):
            mean = finite_or_none((cell or {}).get("mean"))
            if mean is None:
                continue
            lo = finite_or_none((cell or {}).get("lo"))
            hi = finite_or_none((cell or {}).get("hi"))
            xs.append(i + (k - (n_models - 1) / 2) * width)
            ys.append(mean)
            err_lo.append(mean - lo if lo is not None else 0.0)
            err_hi.append(hi - mean if hi is not None else 0.0)
            finite += [mean, *(v for v in (lo, hi) if v is not None)]
        if xs:
            ax.bar(
                xs,
                ys,
                width=width * 0.95,
                color=model_colour(name, k),
                label=labels.get(name, name),
                yerr=[err_lo, err_hi],
                error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#374151"},
            )
    ax.set_xticks(range(len(strata)))
    ax.set_xticklabels([f"{s}{unit}\nn={n}" for s, n in zip(strata, counts)])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if finite:
        lo, hi = min(finite), max(finite)
        ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo) - 2.0), hi + 0.1 * (hi - lo) + 1.0)
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside upper center", ncols=min(len(handles), 6),
                   frameon=False)  # fmt: skip
    return _png(fig)


def psnr_macs_figure(
    points: Mapping[str, tuple[float | None, float | None]],
    *,
    title: str = "PSNR against MACs",
    ylabel: str = "PSNR (dB)",
    labels: Mapping[str, str] | None = None,
    dpi: int = 110,
) -> bytes | None:
    """PNG bytes of mean PSNR against MACs (module docstring); None when no entry has both a
    finite PSNR and positive MACs.

    Args:
        points: key -> ``(macs, psnr)``; ``macs`` None: a baseline line at its PSNR.
        labels: key -> point label (default: the key).
    """
    labels = dict(labels or {})
    measured: dict[str, tuple[float, float]] = {}
    for k, (m0, p0) in points.items():
        m, p = finite_or_none(m0), finite_or_none(p0)
        if m is not None and m > 0 and p is not None:
            measured[k] = (m, p)
    if not measured:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(points):
        macs, psnr = points[name]
        colour = model_colour(name, k)
        label = labels.get(name, name)
        if name in measured:
            x, y = measured[name]
            ax.scatter([x / 1e9], [y], s=46, color=colour, zorder=3)
            ax.annotate(label, (x / 1e9, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
        elif macs is None and (y := finite_or_none(psnr)) is not None:
            ax.axhline(y, ls="--", lw=1, color=colour)
            ax.annotate(
                label,
                (1.0, y),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                color="#374151",
            )
    xs = [m / 1e9 for m, _ in measured.values()]
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 2.0, max(xs) * 2.0)
    ax.set_xlabel("GMACs per forward pass (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.set_axisbelow(True)
    return _png(fig)
