"""Uncertainty metrics (cloudfree.metrics.uncertainty): per-image statistics, UCE / AUCE in the
official and the clean form, the calibration table, the discard curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.metrics import (
    UNCERTAINTY_STATS,
    calibration_table,
    discard_curve,
    image_uncertainty_stats,
    rank_correlation,
    uce_auce,
    uncertainty_summary,
)


def _inputs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded per-image (mean_var, mean_error, mean_se), as in the scratch script that ran the
    official functions (uniform draws only: their stream is stable across numpy versions)."""
    u = np.random.default_rng(seed).random((4, n))
    var = 1e-4 + 4e-3 * u[0] ** 2
    err = (u[1] - 0.5) * 0.1
    se = var * (0.5 + u[2]) + err**2
    return var, err, se


# Reference numbers of the official UnCRtainTS code (PatrickTUM/UnCRtainTS at commit 5e1f1b58,
# model/train_reconstruct.py): its compute_uce_auce, compute_ece and binarize were taken out of
# the script with `ast` and run (torch 2.13 CPU, numpy 2.4, matplotlib Agg, a stub tensorboard
# writer) on _inputs(seed, n), as the official iterate() calls them:
# compute_uce_auce(vars, errs, n, percent=5, l2=True) with the signed errors,
# compute_ece(vars, errs_se, n, percent=5), and the slope / intercept of plot_discard's
# np.polyfit (NaN filled with the nanmean, x = arange(0, 1, 0.05)). The same script compared
# 300 more seeds (1 to 119 images, tied variances included): bin indices identical, UCE / AUCE
# within 3e-7 relative.
OFFICIAL = {
    (0, 37): {
        "uce": 0.018604222685098648,
        "auce": 0.023166505619883537,
        "slope": 0.0015445385238547858,
        "intercept": 0.0009653052489738919,
        "curve": [
            0.0018539177253842354, 0.0010290594073012471, 0.0008765730890445411,
            0.001009085332043469, 0.0012223798548802733, 0.0011903586564585567,
            0.0013066391693428159, 0.0012664053356274962, 0.0014646966010332108,
            0.0015786009607836604, 0.001690406701527536, 0.0018069763900712132,
            0.0019352802773937583, 0.0019728040788322687, 0.002077527577057481,
            0.0020856535993516445, 0.0021760640665888786, 0.0023815941531211138,
            0.0024956241250038147, 0.002559573855251074,
        ],
    },
    (1, 7): {
        "uce": 0.02918120101094246,
        "auce": 0.02918119914829731,
        "slope": 0.00010243213133312174,
        "intercept": 0.0016341734937177829,
        "curve": [
            math.nan, math.nan, 0.002348114736378193, 0.002348114736378193,
            0.002348114736378193, 0.0013533111196011305, 0.0013533111196011305,
            0.0013533111196011305, 0.001206402899697423, 0.001206402899697423,
            0.001206402899697423, 0.0011559000704437494, 0.0011559000704437494,
            0.0011559000704437494, 0.0018014010274782777, 0.0018014010274782777,
            0.0018014010274782777, 0.002165163168683648, 0.002165163168683648,
            0.002365201711654663,
        ],
    },
    (2, 200): {
        "uce": 0.01569388061761856,
        "auce": 0.01779148541390896,
        "slope": 0.0014116574871822964,
        "intercept": 0.0007158691728753708,
        "curve": None,
    },
}  # fmt: skip


# ------------------------------------------------------------------------ per-image statistics
def test_image_stats_by_hand() -> None:
    pred = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[0.1, -0.3]], [[0.2, 0.4]]]])
    var = torch.tensor([[[[0.01, 0.02]], [[0.03, 0.04]]]])
    s = image_uncertainty_stats(pred, target, var)
    assert tuple(s) == UNCERTAINTY_STATS
    assert float(s["mean_var"][0]) == pytest.approx(0.025)
    assert float(s["mean_se"][0]) == pytest.approx((0.01 + 0.09 + 0.04 + 0.16) / 4)
    assert float(s["mean_ae"][0]) == pytest.approx(1.0 / 4)
    assert float(s["mean_error"][0]) == pytest.approx(0.4 / 4)  # signed: -0.3 cancels
    assert s["mean_var"].dtype == torch.float64
    # a mask keeps the first pixel in every band; an empty mask gives NaN
    mask = torch.tensor([[[[True, False]]], [[[False, False]]]])
    s = image_uncertainty_stats(pred.expand(2, -1, -1, -1), target.expand(2, -1, -1, -1),
                                var.expand(2, -1, -1, -1), mask)  # fmt: skip
    assert float(s["mean_var"][0]) == pytest.approx(0.02)
    assert float(s["mean_error"][0]) == pytest.approx(0.15)  # target - pred, not pred - target
    assert all(math.isnan(float(v[1])) for v in s.values())


def test_image_stats_errors() -> None:
    x = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ConfigError, match="variance must have the shape"):
        image_uncertainty_stats(x, x, torch.zeros(1, 1, 3, 3))
    with pytest.raises(ConfigError, match="floating-point"):
        image_uncertainty_stats(x, x, torch.zeros(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(ConfigError, match="boolean"):
        image_uncertainty_stats(x, x, x, torch.ones(1, 1, 3, 3))


# ------------------------------------------------------------------------------- UCE / AUCE
def test_clean_uce_by_hand() -> None:
    """Two bins of [0.01, 0.04]: three images of std 0.1 with RMSE sqrt(0.02), one of std 0.2
    with RMSE 0.1."""
    var = [0.01, 0.01, 0.01, 0.04]
    se = [0.01, 0.01, 0.04, 0.01]
    e0, e1 = math.sqrt(0.02) - 0.1, 0.2 - 0.1
    uce, auce = uce_auce(var, mean_se=se, n_bins=2)
    assert uce == pytest.approx(0.75 * e0 + 0.25 * e1)
    assert auce == pytest.approx((e0 + e1) / 2)
    table = calibration_table(var, se, n_bins=2)
    assert [b.count for b in table] == [3, 1]
    assert table[0].lower == 0.01 and table[0].upper == pytest.approx(0.025)
    assert table[1].upper == 0.04  # the last bin is closed: the maximum is in it
    assert table[0].rms_std == pytest.approx(0.1) and table[0].rmse == pytest.approx(0.02**0.5)
    assert table[1].to_dict() == {
        "lower": pytest.approx(0.025),
        "upper": 0.04,
        "count": 1,
        "rms_std": pytest.approx(0.2),
        "rmse": pytest.approx(0.1),
    }
    # official form on the same images with signed errors of the same squares: same bins here
    err = [0.1, -0.1, 0.2, 0.1]
    assert uce_auce(var, mean_error=err, official=True, n_bins=2) == pytest.approx((uce, auce))


def test_official_matches_the_reference_numbers() -> None:
    for (seed, n), ref in OFFICIAL.items():
        var, err, se = _inputs(seed, n)
        uce, auce = uce_auce(var, mean_error=err, official=True)
        assert uce == pytest.approx(ref["uce"], rel=1e-5)
        assert auce == pytest.approx(ref["auce"], rel=1e-5)
        curve = discard_curve(var, se)
        assert curve.slope == pytest.approx(ref["slope"], rel=1e-5)
        # the official x axis starts at 0, one step left of the fraction kept
        assert curve.intercept + 0.05 * curve.slope == pytest.approx(ref["intercept"], rel=1e-5)
        if ref["curve"] is not None:
            np.testing.assert_allclose(curve.errors, ref["curve"], rtol=1e-5)
        # the clean form uses the squared errors: a different number
        assert uce_auce(var, mean_se=se)[0] != pytest.approx(uce, rel=0.01)


def test_official_quirk_equal_variances() -> None:
    """All variances equal: every image is in bin 19, the histogram of indices puts the weight
    in its (empty) middle bin, so the official UCE is 0 (official: 0.0, 0.037871103733778)."""
    var = np.full(5, 0.01)
    err = np.array([0.1, -0.05, 0.02, 0.0, 0.08])
    uce, auce = uce_auce(var, mean_error=err, official=True)
    expected = 0.1 - math.sqrt(np.mean(err**2))
    assert uce == 0.0 and auce == pytest.approx(expected) and auce == pytest.approx(0.0378711)
    # clean: one occupied bin holding every image, UCE == AUCE
    se = err**2
    clean = uce_auce(var, mean_se=se)
    assert clean == pytest.approx((expected, expected))
    assert [b.count for b in calibration_table(var, se)][:2] == [5, 0]


def test_official_quirk_empty_end_bins_move_the_weights() -> None:
    """With the official binarize defaults floor=0, ceil=1 the indices are 3..11: the
    histogram over [3, 11] puts bin 3 -> 0, 4 -> 2, 6 -> 7, 7 -> 10, 9 -> 15, 11 -> 19, so only
    bin 7 (2 images) meets a calibration error. Official code, its binarize with those
    defaults: 0.04008926823735237, 0.2637844979763031."""
    var = np.array([0.21, 0.26, 0.33, 0.35, 0.41, 0.52, 0.58])
    err = np.array([0.3, -0.2, 0.4, 0.1, -0.5, 0.6, 0.2])
    uce, auce = uce_auce(var, mean_error=err, official=True, bounds=(0, 1))
    assert uce == pytest.approx(2 / 7 * abs(0.5 - math.sqrt(0.41)))
    assert uce == pytest.approx(0.04008926823735237, rel=1e-5)
    assert auce == pytest.approx(0.2637844979763031, rel=1e-5)
    # the clean form weights every occupied bin by its count (same bins as np.histogram)
    clean = uce_auce(var, mean_se=err**2, bounds=(0, 1))
    assert clean == pytest.approx(_numpy_clean_uce(var, err**2, 20, (0.0, 1.0)), rel=1e-12)
    assert clean[0] > 3 * uce


def _numpy_clean_uce(
    var: np.ndarray, se: np.ndarray, n_bins: int, bounds: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Independent re-computation: np.histogram's bins (last closed), explicit loops."""
    edges = np.histogram_bin_edges(var, bins=n_bins, range=bounds)
    counts, _ = np.histogram(var, bins=edges)
    errs = []
    for k in range(n_bins):
        hi_ok = var <= edges[k + 1] if k == n_bins - 1 else var < edges[k + 1]
        sel = (var >= edges[k]) & hi_ok
        assert sel.sum() == counts[k]
        if sel.any():
            errs.append((sel.sum(), abs(np.sqrt(se[sel].mean()) - np.sqrt(var[sel].mean()))))
    n = len(var)
    return sum(c / n * e for c, e in errs), float(np.mean([e for _, e in errs]))


def test_clean_form_matches_numpy() -> None:
    for seed, n, n_bins in ((3, 50, 20), (4, 9, 5), (5, 333, 20)):
        var, _, se = _inputs(seed, n)
        assert uce_auce(var, mean_se=se, n_bins=n_bins) == pytest.approx(
            _numpy_clean_uce(var, se, n_bins), rel=1e-12
        )
        table = calibration_table(var, se, n_bins=n_bins)
        assert sum(b.count for b in table) == n and len(table) == n_bins


def test_nan_images_are_left_out_and_errors() -> None:
    var, err, se = _inputs(0, 37)
    base = uce_auce(var, mean_error=err, official=True)
    assert uce_auce(
        np.append(var, math.nan), mean_error=np.append(err, 0.1), official=True
    ) == pytest.approx(base)
    assert uce_auce(torch.from_numpy(var), mean_error=list(err), official=True) == pytest.approx(
        base
    )
    assert all(math.isnan(v) for v in uce_auce([math.nan], mean_se=[0.1]))
    with pytest.raises(ConfigError, match="needs mean_error"):
        uce_auce(var, mean_se=se, official=True)
    with pytest.raises(ConfigError, match="needs mean_se"):
        uce_auce(var, mean_error=err)
    with pytest.raises(ConfigError, match="37 values but mean_se has 2"):
        uce_auce(var, mean_se=se[:2])
    with pytest.raises(ConfigError, match=">= 0"):
        uce_auce([-0.1, 0.2], mean_se=[0.1, 0.2])
    with pytest.raises(ConfigError, match="n_bins must be a positive integer"):
        uce_auce(var, mean_se=se, n_bins=0)
    with pytest.raises(ConfigError, match="low < high"):
        calibration_table(var, se, bounds=(1, 0))
    with pytest.raises(ConfigError, match="1-D"):
        calibration_table(np.zeros((2, 2)), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- discard curve
def test_discard_curve_by_hand() -> None:
    # 4 images, 4 steps: keep 1, 2, 3, 4 of the variance order (0.1 < 0.2 < 0.3 < 0.4)
    curve = discard_curve([0.3, 0.1, 0.4, 0.2], [3.0, 1.0, 4.0, 2.0], n_steps=4)
    assert curve.fractions == (0.25, 0.5, 0.75, 1.0) and curve.kept == (1, 2, 3, 4)
    assert curve.errors == pytest.approx((1.0, 1.5, 2.0, 2.5))
    assert curve.slope == pytest.approx(2.0) and curve.intercept == pytest.approx(0.5)
    assert curve.n == 4 and curve.to_dict()["kept"] == [1, 2, 3, 4]
    # fewer images than steps: the first points keep no image (NaN, filled for the fit)
    short = discard_curve([0.2, 0.1], [2.0, 4.0], n_steps=4)
    assert short.kept == (0, 1, 1, 2)
    assert math.isnan(short.errors[0]) and short.errors[1:] == pytest.approx((4.0, 4.0, 3.0))
    empty = discard_curve([], [])
    assert empty.n == 0 and math.isnan(empty.slope) and all(math.isnan(e) for e in empty.errors)


def test_discard_curve_matches_a_loop() -> None:
    var, _, se = _inputs(6, 45)
    curve = discard_curve(var, se)
    order = sorted(range(45), key=lambda i: var[i])
    for k, e in zip(curve.kept, curve.errors):
        assert e == pytest.approx(sum(se[i] for i in order[:k]) / k)
    assert curve.kept[:4] == (2, 4, 6, 9)  # floor(k * 45 / 20), as torch.linspace(dtype=int)


# -------------------------------------------------------------------------------- summary
def test_rank_correlation() -> None:
    from scipy.stats import spearmanr

    var, _, se = _inputs(7, 60)
    ties = np.round(var * 500)  # many tied ranks
    for a, b in ((var, se), (ties, se), (ties, np.round(se * 300))):
        assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic, rel=1e-12)
    assert rank_correlation([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, math.nan], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    assert math.isnan(rank_correlation([1], [1]))


def test_uncertainty_summary() -> None:
    var, err, se = _inputs(0, 37)
    s = uncertainty_summary({"mean_var": var, "mean_se": se, "mean_error": err})
    ref = OFFICIAL[(0, 37)]
    assert s["n"] == 37
    assert s["uce"] == pytest.approx(ref["uce"], rel=1e-5)
    assert s["auce"] == pytest.approx(ref["auce"], rel=1e-5)
    assert (s["uce_clean"], s["auce_clean"]) == pytest.approx(uce_auce(var, mean_se=se))
    assert s["discard_curve"]["slope"] == pytest.approx(ref["slope"], rel=1e-5)
    assert len(s["calibration"]) == 20 and sum(b["count"] for b in s["calibration"]) == 37
    assert s["rms_std"] == pytest.approx(math.sqrt(var.mean()))
    assert s["rmse"] == pytest.approx(math.sqrt(se.mean()))
    assert s["spearman_var_error"] > 0.5  # se grows with var by construction
    with pytest.raises(ConfigError, match="mean_error"):
        uncertainty_summary({"mean_var": var, "mean_se": se})
