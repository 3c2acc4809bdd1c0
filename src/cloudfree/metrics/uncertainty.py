"""Uncertainty metrics of models with a variance output (UnCRtainTS, SPEC section 4).

A model that predicts a mean ``pred`` and a variance ``var`` per band and pixel is judged on
whether its variance matches its errors. UnCRtainTS (``model/train_reconstruct.py``) does it on
**per-image** statistics, and so does this module:

* :func:`image_uncertainty_stats`: per image ``mean_var``, ``mean_se``, ``mean_ae`` and
  ``mean_error`` (means over bands and the pixels of a mask), as the official ``img_metrics``.
* :func:`uce_auce`: the uncertainty calibration error of images binned by their ``mean_var``,
  weighted by the bins' shares (UCE) and unweighted (AUCE); ``official=True`` gives the
  official numbers, quirks included, ``official=False`` the clean form (below).
* :func:`calibration_table`: per bin of ``mean_var``, the RMS predicted standard deviation
  against the RMS observed error and the count: the reliability diagram.
* :func:`discard_curve`: the mean error of the most certain 5 %, 10 %, ..., 100 % of the images
  (the official ``compute_ece``, a curve despite its name) and its linear-fit slope.
* :func:`uncertainty_summary`: all of them from the per-image statistics of a split, as the
  ``uncertainty`` entry of an evaluation summary.

Quirks of the official code and what is done here (``official=True`` keeps every one):

1. **Signed error in UCE.** ``compute_uce_auce`` is called with the per-image *signed* mean
   error ``nanmean(target - pred)``, not the squared error, although the result is logged as
   "UCE SE". Per bin it then compares ``sqrt(mean(error^2))``, the RMS of the images' mean
   errors (which cancel over 13 bands and all pixels), with the RMS predicted standard
   deviation ``sqrt(mean(mean_var))``. The clean form uses each image's RMSE
   ``sqrt(mean_se)`` instead, so the bin's error is ``sqrt(mean(mean_se))``, the RMSE of the
   bin's pixels with every image weighted equally: the quantity a calibrated Gaussian model's
   ``sqrt(mean(mean_var))`` predicts (``E[se] = var`` per pixel).
2. **Bin weights from a histogram of bin indices.** The official weights are
   ``torch.histogram(bin_index, 20) / n``: a 20-bin histogram of the *indices* over the range
   ``[min index, max index]``. It is aligned with the bins only when the first and the last bin
   are occupied. With the official binning (``floor = min``, ``ceil = max`` of the variances)
   they always are, except when all variances are equal: every image is then in bin 19, the
   histogram puts it in its middle bin 10, which is empty, and UCE is 0. With other bounds
   (:func:`uce_auce`'s ``bounds``, the official ``binarize`` defaults ``0, 1``) end bins can
   be empty and the weights land on other bins. The clean form weights bin ``k`` by its count
   over ``n``.
3. **The last bin holds only the maximum.** ``binarize`` digitises against
   ``linspace(floor, ceil, 20)[1:]``: 19 edges, so bins 0..18 are 19 equal intervals and bin 19
   holds the values ``>= ceil`` only (the maximum itself with the default bounds). The clean
   form splits ``[floor, ceil]`` into ``n_bins`` equal intervals, the last one closed.
4. **float32.** The official inputs become ``torch.Tensor`` (float32); ``official=True`` bins
   the float32 values with float32 edges exactly as ``np.linspace`` on torch scalars does and
   computes the bins' statistics in float64, so the numbers match the official ones to float32
   rounding (about 1e-6 relative). The clean form works in float64.
5. **Discard curve.** ``compute_ece`` keeps the first ``floor(k n / 20)`` images
   (``torch.linspace(0, n, 21, dtype=int)[1:]`` truncates) of the variance order, so with fewer
   than 20 images the first points average no image and are NaN; ``plot_discard`` fills NaN
   with the mean of the other points before its linear fit and draws the points at
   ``x = 0, 0.05, ..., 0.95`` (one step to the left of the fraction they keep). The slope does
   not depend on that shift; :class:`DiscardCurve` gives the points at the fraction kept
   ``0.05, ..., 1`` and the intercept of the fit against those (the official intercept is
   ``intercept + 0.05 * slope``). The official ``torch.sort`` is not stable: images with tied
   variances may be ordered differently (stable order here), which changes a point only when
   a tie straddles a cut.

Every function drops the images whose needed statistics are not finite (an empty region gives
NaN) and counts only the others (``n``); the official code has no such case (it averages all
pixels, and NaN statistics would make its bins NaN). Variances must be ``>= 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from cloudfree.errors import ConfigError
from cloudfree.metrics.functional import _as_tensor, _check, _masked_mean

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_STEPS",
    "UNCERTAINTY_DEFINITIONS",
    "UNCERTAINTY_STATS",
    "CalibrationBin",
    "DiscardCurve",
    "calibration_table",
    "discard_curve",
    "image_uncertainty_stats",
    "rank_correlation",
    "uce_auce",
    "uncertainty_summary",
]

#: Keys of :func:`image_uncertainty_stats`, in report order.
UNCERTAINTY_STATS: tuple[str, ...] = ("mean_var", "mean_se", "mean_ae", "mean_error")
#: Bins of the variance (UnCRtainTS: ``100 // percent`` with ``percent=5``).
DEFAULT_BINS = 20
#: Points of the discard curve (5 % steps).
DEFAULT_STEPS = 20

#: How the ``uncertainty`` entry of an evaluation summary is computed (stated in the summary).
UNCERTAINTY_DEFINITIONS = (
    "per image: mean_var, mean_se, mean_ae, mean_error = means over the 13 bands and the valid "
    "pixels of the predicted variance, squared error, absolute error and signed error "
    "(target - pred), in reflectance units (variance in reflectance^2); uce, auce: UnCRtainTS "
    "compute_uce_auce exactly (images in 20 bins of mean_var between its min and max, per bin "
    "|sqrt(mean(mean_error^2)) - sqrt(mean(mean_var))|, weighted by the official histogram of "
    "bin indices / n (uce) or averaged over occupied bins (auce); note the signed error); "
    "uce_clean, auce_clean: the same with each image's error sqrt(mean_se), i.e. per bin "
    "|sqrt(mean(mean_se)) - sqrt(mean(mean_var))|, 20 equal bins, weights count / n; "
    "calibration: those clean bins (rms_std = sqrt(mean(mean_var)), rmse = sqrt(mean(mean_se))); "
    "discard_curve: mean of mean_se over the most certain 5 %, 10 %, ..., 100 % of the images "
    "(UnCRtainTS compute_ece) with the slope of its linear fit; spearman_var_error: Spearman "
    "rank correlation of mean_var and mean_se; n: images with finite statistics"
)


# ----------------------------------------------------------------------- per-image statistics
def image_uncertainty_stats(
    pred: torch.Tensor,
    target: torch.Tensor,
    variance: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image means of the predicted variance and of the errors of a batch.

    Args:
        pred: predicted means ``[B, C, H, W]`` (float; numpy arrays accepted).
        target: references, same shape, device and scale as ``pred``.
        variance: predicted variances, same shape, in the square of that scale (reflectance
            ``[0, 1]`` gives reflectance^2).
        mask: optional boolean ``[B, 1, H, W]`` (or ``[B, H, W]``, ``[1, 1, H, W]``), True
            where a pixel counts; None: every pixel.

    Returns:
        ``{"mean_var", "mean_se", "mean_ae", "mean_error"}``, each a float64 tensor ``[B]``
        (float32 on Apple MPS): the means over the bands and the masked pixels of ``variance``,
        ``(target - pred)^2``, ``|target - pred|`` and the **signed** ``target - pred``, the
        per-image statistics of the official ``img_metrics`` (its ``mean var``, ``mean se``,
        ``mean ae``, ``error``). An image whose mask selects no pixel gets NaN. Unlike the
        official ``nanmean``, a NaN inside the mask is not skipped: it makes the image's
        statistic NaN (as :func:`cloudfree.metrics.image_metrics` does), and the calibration
        metrics then leave that image out.

    Raises:
        ConfigError: bad shapes, dtypes, devices or mask.
    """
    x, y, m = _check(pred, target, mask)
    var = _as_tensor(variance, "variance")
    if tuple(var.shape) != tuple(x.shape):
        raise ConfigError(
            f"variance must have the shape of pred {tuple(x.shape)}, got {tuple(var.shape)}"
        )
    if not var.is_floating_point():
        raise ConfigError(f"variance must be a floating-point tensor, got dtype {var.dtype}")
    if var.device != x.device:
        raise ConfigError(f"variance is on {var.device} but pred is on {x.device}")
    var = var.detach().to(x.dtype)
    b, _, h, w = x.shape
    weight = (
        torch.ones((b, 1, h, w), dtype=x.dtype, device=x.device) if m is None else m.to(x.dtype)
    )
    diff = y - x  # official sign: target - pred
    return {
        "mean_var": _masked_mean(var, weight),
        "mean_se": _masked_mean(diff * diff, weight),
        "mean_ae": _masked_mean(diff.abs(), weight),
        "mean_error": _masked_mean(diff, weight),
    }


# ----------------------------------------------------------------------------------- inputs
def _vector(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be one value per image (1-D), got shape {arr.shape}")
    return arr


def _finite(*columns: tuple[Any, str]) -> list[np.ndarray]:
    """The columns as float64 vectors of one length, restricted to the images where every one
    is finite; a negative variance (the first column) is an error."""
    arrays = [_vector(v, name) for v, name in columns]
    n = len(arrays[0])
    for arr, (_, name) in zip(arrays[1:], columns[1:]):
        if len(arr) != n:
            raise ConfigError(
                f"{columns[0][1]} has {n} values but {name} has {len(arr)}; give one per image"
            )
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    arrays = [a[keep] for a in arrays]
    if (arrays[0] < 0).any():
        raise ConfigError(
            f"{columns[0][1]} must be >= 0 (a variance), got {float(arrays[0].min())!r}"
        )
    return arrays


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _bounds(var: np.ndarray, bounds: tuple[float, float] | None) -> tuple[float, float]:
    if bounds is None:
        return float(var.min()), float(var.max())
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"bounds must be (low, high) numbers, got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ConfigError(f"bounds must be finite with low < high, got {bounds!r}")
    return lo, hi


# -------------------------------------------------------------------------- calibration bins
@dataclass(frozen=True)
class CalibrationBin:
    """One bin of the per-image mean variances (:func:`calibration_table`).

    Attributes:
        lower, upper: the bin's range of ``mean_var`` (``[lower, upper)``; the last bin is
            closed).
        count: images in the bin.
        rms_std: ``sqrt(mean(mean_var))`` of those images: the RMS predicted standard
            deviation (NaN for an empty bin).
        rmse: ``sqrt(mean(mean_se))``: the RMS observed error (NaN for an empty bin).
    """

    lower: float
    upper: float
    count: int
    rms_std: float
    rmse: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (NaN kept; the evaluation writes it as null)."""
        return asdict(self)


def _clean_bins(
    var: np.ndarray, lo: float, hi: float, n_bins: int
) -> tuple[np.ndarray, list[float]]:
    """Bin index of every value (``n_bins`` equal intervals of ``[lo, hi]``, the last closed,
    values outside clipped into the end bins) and the edges. ``lo == hi``: every value in
    bin 0."""
    edges = np.linspace(lo, hi, n_bins + 1)
    if hi > lo:
        idx = np.searchsorted(edges[1:-1], var, side="right")
    else:
        idx = np.zeros(len(var), dtype=np.int64)
    return idx, edges.tolist()


def calibration_table(
    mean_var: Sequence[float] | np.ndarray | torch.Tensor,
    mean_se: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    n_bins: int = DEFAULT_BINS,
    bounds: tuple[float, float] | None = None,
) -> list[CalibrationBin]:
    """The reliability diagram of per-image uncertainties: RMS predicted standard deviation
    against RMS observed error per bin of ``mean_var``.

    Args:
        mean_var: per-image mean predicted variance.
        mean_se: per-image mean squared error, same length and squared units.
        n_bins: number of equal-width bins of ``mean_var``.
        bounds: ``(low, high)`` range of the bins; default the finite values' min and max.
            Values outside go into the end bins.

    Returns:
        ``n_bins`` :class:`CalibrationBin` (empty bins included, with NaN statistics), the
        bins of the clean :func:`uce_auce`. All variances equal (without ``bounds``): every
        image in the first bin, whose range is that single value. No finite image: ``[]``.

    Raises:
        ConfigError: inputs of different lengths or not 1-D, a negative variance, bad
            ``n_bins`` or ``bounds``.
    """
    _check_count(n_bins, "n_bins")
    var, se = _finite((mean_var, "mean_var"), (mean_se, "mean_se"))
    if len(var) == 0:
        return []
    lo, hi = _bounds(var, bounds)
    idx, edges = _clean_bins(var, lo, hi, n_bins)
    out: list[CalibrationBin] = []
    for k in range(n_bins):
        sel = idx == k
        count = int(sel.sum())
        rms_std = math.sqrt(float(var[sel].mean())) if count else math.nan
        rmse = math.sqrt(float(se[sel].mean())) if count else math.nan
        out.append(CalibrationBin(edges[k], edges[k + 1], count, rms_std, rmse))
    return out


def _official_bin_index(
    var32: np.ndarray, n_bins: int, bounds: tuple[float, float] | None
) -> np.ndarray:
    """The official ``binarize``: ``np.digitize(var, linspace(floor, ceil, n_bins)[1:])``.

    Without bounds, ``floor`` and ``ceil`` are the float32 min and max and ``np.linspace`` on
    those torch scalars computes in float32 (``arange * step + start``, the last edge set to
    ``ceil``); with bounds they are Python floats (float64 edges).
    """
    if bounds is None:
        lo, hi = var32.min(), var32.max()
        step = (hi - lo) / np.float32(n_bins - 1) if n_bins > 1 else np.float32(0)
        edges = np.arange(n_bins, dtype=np.float32) * np.float32(step) + lo
        edges[-1] = hi
        return np.searchsorted(edges[1:], var32, side="right")
    edges64 = np.linspace(bounds[0], bounds[1], n_bins)
    return np.searchsorted(edges64[1:], var32.astype(np.float64), side="right")


def uce_auce(
    mean_var: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    mean_se: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    mean_error: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    official: bool = False,
    n_bins: int = DEFAULT_BINS,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Uncertainty calibration error (UCE) and its unweighted form (AUCE) of per-image
    uncertainties, UnCRtainTS ``compute_uce_auce(..., l2=True)``.

    Per bin ``k`` of the images' ``mean_var``: ``calib_k = |err_k - std_k|`` with the RMS
    predicted standard deviation ``std_k = sqrt(mean(mean_var))``; ``UCE = sum_k w_k calib_k``
    over occupied bins, ``AUCE`` = mean of ``calib_k`` over occupied bins.

    * ``official=True`` (needs ``mean_error``, the signed per-image mean error): the official
      numbers exactly: ``err_k = sqrt(mean(mean_error^2))``, the official binning (19 equal
      intervals plus a bin of the values at the top, quirk 3 of the module docstring) and the
      official weights (a histogram of bin indices / n, quirk 2). ``mean_se`` is not used.
    * ``official=False`` (needs ``mean_se``): the clean form: each image's error is its RMSE
      ``sqrt(mean_se)``, so ``err_k = sqrt(mean(mean_se))``; ``n_bins`` equal intervals
      (:func:`calibration_table`); ``w_k = count_k / n``. ``mean_error`` is not used.

    Args:
        mean_var: per-image mean predicted variance (squared units of the errors).
        mean_se, mean_error: per-image mean squared error / signed mean error (see above).
        official: which form.
        n_bins: number of bins (official: ``100 // percent = 20``).
        bounds: ``(floor, ceil)`` of the binning; default the data's min and max (the
            official call). The official ``binarize`` clips nothing: values below ``floor``
            fall in bin 0 and values ``>= ceil`` in the last bin; the clean form does the same.

    Returns:
        ``(uce, auce)`` as floats, in the units of the errors (reflectance for reflectance
        inputs); NaN when no image has finite statistics.

    Raises:
        ConfigError: the error input of the chosen form missing, inputs of different lengths,
            a negative variance, bad ``n_bins`` or ``bounds``.
    """
    _check_count(n_bins, "n_bins")
    if official:
        if mean_error is None:
            raise ConfigError(
                "uce_auce(official=True) needs mean_error, the signed per-image mean error "
                "(target - pred) that the official code passes"
            )
        var, err = _finite((mean_var, "mean_var"), (mean_error, "mean_error"))
        n = len(var)
        if n == 0:
            return math.nan, math.nan
        if bounds is not None:
            bounds = _bounds(var, bounds)
        var32 = var.astype(np.float32)
        err32 = err.astype(np.float32).astype(np.float64)
        idx = _official_bin_index(var32, n_bins, bounds)
        v = var32.astype(np.float64)
        calib = np.full(n_bins, np.nan)
        for k in range(n_bins):
            sel = idx == k
            if sel.any():
                calib[k] = abs(math.sqrt(np.mean(err32[sel] ** 2)) - math.sqrt(np.mean(v[sel])))
        # torch.histogram, as the official code calls it: 20 bins over [min idx, max idx]
        hist = torch.histogram(torch.from_numpy(idx.astype(np.float32)), bins=n_bins).hist
        weights = hist.double().numpy() / n
        return float(np.nansum(weights * calib)), float(np.nanmean(calib))
    if mean_se is None:
        raise ConfigError(
            "uce_auce(official=False) needs mean_se, the per-image mean squared error (each "
            "image's error is its RMSE sqrt(mean_se))"
        )
    table = calibration_table(mean_var, mean_se, n_bins=n_bins, bounds=bounds)
    n = sum(b.count for b in table)
    if n == 0:
        return math.nan, math.nan
    calib = [(b.count, abs(b.rmse - b.rms_std)) for b in table if b.count]
    uce = sum(c / n * e for c, e in calib)
    auce = sum(e for _, e in calib) / len(calib)
    return float(uce), float(auce)


# ----------------------------------------------------------------------------- discard curve
@dataclass(frozen=True)
class DiscardCurve:
    """Mean error of the most certain images (:func:`discard_curve`).

    Attributes:
        fractions: fraction of the images kept at each point, ``k / n_steps`` for
            ``k = 1..n_steps`` (0.05, 0.10, ..., 1.0).
        kept: images kept at each point, ``floor(k n / n_steps)``.
        errors: mean error of those images (NaN where none is kept).
        slope, intercept: least-squares line ``error = intercept + slope * fraction`` after
            NaN points are replaced by the mean of the others (as ``plot_discard``); the
            official plot's intercept is ``intercept + slope / n_steps`` (its x axis starts at
            0). A positive slope: the more certain images have the smaller errors. NaN when
            there is no image.
        n: images with finite variance and error.
    """

    fractions: tuple[float, ...]
    kept: tuple[int, ...]
    errors: tuple[float, ...]
    slope: float
    intercept: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with lists (NaN kept; the evaluation writes it as null)."""
        return {
            "fractions": list(self.fractions),
            "kept": list(self.kept),
            "errors": list(self.errors),
            "slope": self.slope,
            "intercept": self.intercept,
            "n": self.n,
        }


def discard_curve(
    mean_var: Sequence[float] | np.ndarray | torch.Tensor,
    errors: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    n_steps: int = DEFAULT_STEPS,
) -> DiscardCurve:
    """The official "ECE" of UnCRtainTS (``compute_ece`` + the fit of ``plot_discard``): sort the
    images by ascending ``mean_var`` and average ``errors`` (the official call passes
    ``mean_se``) over the first ``floor(k n / n_steps)`` of them, ``k = 1..n_steps``.

    See quirk 5 of the module docstring for the cut points, the NaN fill of the fit, the shifted
    x axis of the official plot and the sort order of tied variances (stable here).

    Raises:
        ConfigError: inputs of different lengths or not 1-D, a negative variance, bad
            ``n_steps``.
    """
    _check_count(n_steps, "n_steps")
    var, err = _finite((mean_var, "mean_var"), (errors, "errors"))
    n = len(var)
    sorted_err = err[np.argsort(var, kind="stable")]
    steps = np.arange(1, n_steps + 1)
    kept = (steps * n) // n_steps
    cumulative = np.concatenate([[0.0], np.cumsum(sorted_err)])
    values = np.full(n_steps, np.nan)
    values[kept > 0] = cumulative[kept[kept > 0]] / kept[kept > 0]
    fractions = steps / n_steps
    slope = intercept = math.nan
    if n:
        filled = np.where(np.isnan(values), np.nanmean(values), values)
        slope, intercept = (float(c) for c in np.polyfit(fractions, filled, deg=1))
    return DiscardCurve(
        tuple(float(f) for f in fractions),
        tuple(int(k) for k in kept),
        tuple(float(v) for v in values),
        slope,
        intercept,
        n,
    )


# ------------------------------------------------------------------------------ the summary
def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``a``, ties sharing the mean of their ranks."""
    order = np.argsort(a, kind="stable")
    _, first, counts = np.unique(a[order], return_index=True, return_counts=True)
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def rank_correlation(
    x: Sequence[float] | np.ndarray | torch.Tensor, y: Sequence[float] | np.ndarray | torch.Tensor
) -> float:
    """Spearman rank correlation of ``x`` and ``y`` over the pairs where both are finite: the
    Pearson correlation of their ranks, ties getting their average rank (the definition of
    :func:`scipy.stats.spearmanr`, computed here in numpy); NaN with fewer than 2 pairs or a
    constant side.

    Raises:
        ConfigError: inputs of different lengths or not 1-D.
    """
    a, b = _vector(x, "x"), _vector(y, "y")
    if len(a) != len(b):
        raise ConfigError(f"x has {len(a)} values but y has {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra @ rb) / math.sqrt(float(ra @ ra) * float(rb @ rb)))


def uncertainty_summary(
    stats: Mapping[str, Sequence[float] | np.ndarray | torch.Tensor],
    *,
    n_bins: int = DEFAULT_BINS,
    n_steps: int = DEFAULT_STEPS,
) -> dict[str, Any]:
    """Every uncertainty metric of a split, from its per-image statistics.

    Args:
        stats: ``{"mean_var", "mean_se", "mean_error", ...}`` (:func:`image_uncertainty_stats`
            of every image; ``mean_ae`` is not needed). Images where one of the three is not
            finite are left out of everything.
        n_bins, n_steps: bins of :func:`uce_auce` / :func:`calibration_table` and points of
            :func:`discard_curve`.

    Returns:
        A JSON-ready dict (NaN where undefined)::

            {"n": int, "uce", "auce": official, "uce_clean", "auce_clean": float,
             "rms_std": sqrt(mean(mean_var)), "rmse": sqrt(mean(mean_se)),
             "spearman_var_error": rank correlation of mean_var and mean_se,
             "discard_curve": DiscardCurve.to_dict() of mean_se,
             "calibration": [CalibrationBin.to_dict(), ...] (n_bins bins)}

        The definitions, in words: :data:`UNCERTAINTY_DEFINITIONS`.

    Raises:
        ConfigError: a missing statistic, inputs of different lengths, a negative variance.
    """
    missing = [k for k in ("mean_var", "mean_se", "mean_error") if k not in stats]
    if missing:
        raise ConfigError(f"uncertainty statistics need {missing} (image_uncertainty_stats)")
    var, se, err = _finite(
        (stats["mean_var"], "mean_var"),
        (stats["mean_se"], "mean_se"),
        (stats["mean_error"], "mean_error"),
    )
    n = len(var)
    uce, auce = uce_auce(var, mean_error=err, official=True, n_bins=n_bins)
    uce_c, auce_c = uce_auce(var, mean_se=se, official=False, n_bins=n_bins)
    return {
        "n": n,
        "uce": uce,
        "auce": auce,
        "uce_clean": uce_c,
        "auce_clean": auce_c,
        "rms_std": math.sqrt(float(var.mean())) if n else math.nan,
        "rmse": math.sqrt(float(se.mean())) if n else math.nan,
        "spearman_var_error": rank_correlation(var, se),
        "discard_curve": discard_curve(var, se, n_steps=n_steps).to_dict(),
        "calibration": [b.to_dict() for b in calibration_table(var, se, n_bins=n_bins)],
    }
