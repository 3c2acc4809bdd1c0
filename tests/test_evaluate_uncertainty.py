"""Uncertainty metrics in the evaluation of models with a variance output (evaluate_models,
write_evaluation, predict_samples, `cloudfree evaluate --checkpoint`)."""

from __future__ import annotations

import csv
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.data import SEN12MSCR
from cloudfree.evaluate import (
    IDENTITY_NAME,
    REGIONS,
    evaluate_models,
    per_image_columns,
    predict_samples,
    write_evaluation,
)
from cloudfree.metrics import UNCERTAINTY_STATS, uncertainty_summary
from cloudfree.models import create_model, save_pretrained
from cloudfree.normalization import to_reflectance
from cloudfree.synth import write_sen12mscr_synthetic

N = 6
BIAS = 0.3  # variance head bias of the constant-variance model
CONST_VAR = float(F.softplus(torch.tensor(BIAS))) + 1e-3  # in the model's normalised units^2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sen12mscr_unc")
    write_sen12mscr_synthetic(root, patches=N, size=32, seed=3)
    return root


@pytest.fixture(scope="module")
def raw(data_root) -> SEN12MSCR:
    return SEN12MSCR(data_root, split="all", crop="center")


def _standin(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("standin_uncertainty", width=4).eval()


def _constant(protocol: str = "uncrtaints"):
    """The stand-in returning its input as the mean and CONST_VAR as the variance."""
    model = _standin(1)
    with torch.no_grad():
        model.mean[-1].weight.zero_()
        model.mean[-1].bias.zero_()
        model.var[-1].weight.zero_()
        model.var[-1].bias.fill_(BIAS)
    model.cloudfree_config = {**model.cloudfree_config, "protocol": protocol}
    return model


def _plain():
    torch.manual_seed(0)
    return create_model("dsen2cr", width=4, num_blocks=1).eval()


@pytest.fixture(scope="module")
def result(raw):
    models = {"unc": _standin(0), "const": _constant(), "plain": _plain()}
    return evaluate_models(models, raw, batch_size=4, progress=False)


def test_columns_and_schema(result):
    assert result.uncertainty_names == ("unc", "const")
    cols = per_image_columns(["unc", "const", "plain"], uncertainty=["unc", "const"])
    assert result.columns == cols
    # the metric columns keep their places; the statistics come last
    assert cols[: len(per_image_columns(["unc", "const", "plain"]))] == per_image_columns(
        ["unc", "const", "plain"]
    )
    assert cols[-1] == f"const_{REGIONS[-1]}_{UNCERTAINTY_STATS[-1]}"
    assert all(set(r) == set(cols) for r in result.rows)
    models = result.summary["models"]
    assert "uncertainty" not in models["plain"] and "uncertainty" not in models[IDENTITY_NAME]
    assert set(models["plain"]) == {*REGIONS, "per_cover_bin"}
    assert "uncertainty_definitions" in result.summary
    u = models["unc"]["uncertainty"]
    assert set(u) == {
        "n",
        "uce",
        "auce",
        "uce_clean",
        "auce_clean",
        "rms_std",
        "rmse",
        "spearman_var_error",
        "discard_curve",
        "calibration",
    }
    assert u["n"] == N and len(u["calibration"]) == 20
    assert sum(b["count"] for b in u["calibration"]) == N
    assert u["discard_curve"]["kept"][-1] == N


def test_statistics_of_a_constant_variance_model(result):
    """Mean = the cloudy input: its errors are the identity's; its variance is the constant."""
    for row in result.rows:
        for region in REGIONS:
            se = row[f"const_{region}_mean_se"]
            rmse = row[f"{IDENTITY_NAME}_{region}_rmse"]
            if math.isnan(rmse):  # no pixel in that region
                assert all(math.isnan(row[f"const_{region}_{s}"]) for s in UNCERTAINTY_STATS)
                continue
            assert se == pytest.approx(rmse**2, rel=1e-6)
            assert row[f"const_{region}_mean_ae"] == pytest.approx(
                row[f"{IDENTITY_NAME}_{region}_mae"], rel=1e-6
            )
            assert row[f"const_{region}_mean_var"] == pytest.approx(CONST_VAR, rel=1e-6)
    u = result.summary["models"]["const"]["uncertainty"]
    assert u["rms_std"] == pytest.approx(math.sqrt(CONST_VAR), rel=1e-6)
    assert u["uce"] == 0.0  # the official quirk: all variances equal
    assert u["uce_clean"] == pytest.approx(abs(u["rmse"] - u["rms_std"]), rel=1e-6)
    assert math.isnan(u["spearman_var_error"])  # constant variance: no ranking


def test_signed_error_by_hand(raw, result):
    i = 2
    s = raw[i]
    from cloudfree.data.transforms import normalize_sample

    n = normalize_sample(s, "uncrtaints")
    x = to_reflectance(n["optical"].double(), "uncrtaints")
    y = to_reflectance(n["target"].double(), "uncrtaints")
    valid = n["valid_mask"][0]
    expected = float((y - x)[:, valid].mean())  # target - pred over bands and valid pixels
    assert result.rows[i]["const_overall_mean_error"] == pytest.approx(expected, rel=1e-5)


def test_summary_is_the_summary_of_the_rows(result):
    stats = {s: [r[f"unc_overall_{s}"] for r in result.rows] for s in UNCERTAINTY_STATS}
    expected = uncertainty_summary(stats)
    got = result.summary["models"]["unc"]["uncertainty"]
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_variance_is_brought_to_reflectance(raw):
    """dsen2cr scales optical by 1/2000: a variance of v (normalised^2) is 0.04 v in
    reflectance^2, its std 0.2 sqrt(v)."""
    res = evaluate_models({"c": _constant("dsen2cr")}, raw, batch_size=6, progress=False)
    for row in res.rows:
        assert row["c_overall_mean_var"] == pytest.approx(0.04 * CONST_VAR, rel=1e-6)


def test_predict_samples_gives_the_std_map(raw):
    """The panels' uncertainty map: mean over bands of sqrt(variance), in reflectance."""
    got = predict_samples({"c": _constant("dsen2cr"), "plain": _plain()}, raw, [0, 1])
    for sample in got.samples:
        std = sample["uncertainty"]["c"]
        assert set(sample["uncertainty"]) == {"c"}  # only the variance model
        assert std.shape == (32, 32) and std.dtype == np.float32
        np.testing.assert_allclose(std, 0.2 * math.sqrt(CONST_VAR), rtol=1e-6)
    plain = predict_samples({"plain": _plain()}, raw, [0])
    assert "uncertainty" not in plain.samples[0]


def test_written_files(result, tmp_path):
    csv_path, json_path = write_evaluation(result, tmp_path)
    with open(csv_path, newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == result.columns
    summary = json.loads(json_path.read_text())
    u = summary["models"]["unc"]["uncertainty"]
    assert u["uce"] == pytest.approx(result.summary["models"]["unc"]["uncertainty"]["uce"])
    # empty calibration bins and NaN points are strict JSON nulls
    assert any(b["rmse"] is None for b in u["calibration"])


def test_cli_prints_the_uncertainty_line(tmp_path, data_root):
    weights = save_pretrained(_standin(0), tmp_path / "w")
    out = tmp_path / "ev"
    args = ["evaluate", "--checkpoint", str(weights), "--data", str(data_root), "--split", "all"]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    u = summary["models"]["standin_uncertainty"]["uncertainty"]
    line = next(x for x in res.output.splitlines() if x.startswith("uncertainty "))
    assert line.startswith(f"uncertainty standin_uncertainty: UCE {u['uce']:.4f}, AUCE")
    assert f"clean UCE {u['uce_clean']:.4f}" in line and f"{N} images" in line


def test_a_negative_variance_is_an_error(raw):
    from torch.utils.data import Subset

    from cloudfree.errors import ConfigError
    from cloudfree.models import ModelOutput

    def negative(self, optical, sar=None):
        return ModelOutput(pred=optical, variance=torch.full_like(optical, -0.5))

    model = _constant()
    model.forward = types.MethodType(negative, model)
    with pytest.raises(ConfigError, match="model 'neg': mean_var must be >= 0"):
        evaluate_models({"neg": model}, Subset(raw, range(2)), progress=False)
