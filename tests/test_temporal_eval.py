"""Temporal composites, the temporal baselines and evaluation on time-series datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.errors import ConfigError
from cloudfree.evaluate import evaluate_checkpoints
from cloudfree.evaluate.baselines import get_baseline, identity_baseline
from cloudfree.models import ModelBatch, create_model, save_pretrained
from cloudfree.models.composites import least_cloudy, mosaic, most_recent_clear
from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic


def _series() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=1, T=3, C=1, 1 x 3 pixels: date values 10, 20, 30; cloudy flags per pixel."""
    optical = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1, 1).expand(1, 3, 1, 1, 3).clone()
    cloudy = torch.tensor(
        [
            [True, False, True],  # date 0
            [False, False, True],  # date 1
            [True, True, True],  # date 2
        ]
    ).view(1, 3, 1, 1, 3)
    return optical, cloudy, torch.ones(1, 3, dtype=torch.bool)


def test_least_cloudy_takes_the_earliest_clearest_date() -> None:
    optical, cloudy, tm = _series()
    pred, no_clear = least_cloudy(optical, cloudy, tm)
    assert pred.flatten().tolist() == [20.0, 20.0, 20.0]  # date 1 (1/3 cloudy)
    assert no_clear.flatten().tolist() == [False, False, True]
    tie = torch.zeros(1, 3, 1, 1, 3, dtype=torch.bool)
    assert least_cloudy(optical, tie, tm)[0].flatten().tolist() == [10.0] * 3  # earliest


def test_mosaic_means_clear_observations_and_never_leaves_zeros() -> None:
    optical, cloudy, tm = _series()
    pred, no_clear = mosaic(optical, cloudy, tm)
    # pixel 0: only date 1 clear; pixel 1: dates 0, 1; pixel 2: never clear -> least cloudy
    assert pred.flatten().tolist() == [20.0, 15.0, 20.0]
    assert no_clear.flatten().tolist() == [False, False, True]
    # AllClear leaves never-clear pixels 0; here they hold the least cloudy date's value
    assert (pred[no_clear.expand_as(pred)] != 0).all()


def test_padded_dates_are_never_used() -> None:
    optical, cloudy, _ = _series()
    cloudy = cloudy.clone()
    cloudy[:, 2] = False  # date 2 would be the clearest, but it is padding
    tm = torch.tensor([[True, True, False]])
    assert least_cloudy(optical, cloudy, tm)[0].flatten().tolist() == [20.0] * 3
    assert mosaic(optical, cloudy, tm)[0].flatten().tolist() == [20.0, 15.0, 20.0]
    with pytest.raises(ConfigError, match="at least one real date"):
        mosaic(optical, cloudy, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"\[B, T, C, H, W\]"):
        mosaic(optical[:, 0], cloudy, tm)


def test_most_recent_clear() -> None:
    optical, cloudy, tm = _series()
    pred, no_clear = most_recent_clear(optical, cloudy, tm)
    assert pred.flatten().tolist() == [20.0, 20.0, 20.0]
    cloudy = torch.zeros(1, 3, 1, 1, 3, dtype=torch.bool)
    dates = torch.tensor([[100.0, 110.0, 120.0]])
    assert most_recent_clear(optical, cloudy, tm, dates)[0].flatten().tolist() == [30.0] * 3
    # on or before the target date; the earliest after it only when nothing is before
    target = torch.tensor([112.0])
    assert most_recent_clear(optical, cloudy, tm, dates, target)[0].flatten().tolist() == [20.0] * 3
    cloudy[:, :2] = True
    assert most_recent_clear(optical, cloudy, tm, dates, target)[0].flatten().tolist() == [30.0] * 3


def test_temporal_identity_is_the_last_real_date() -> None:
    optical, cloudy, _ = _series()
    tm = torch.tensor([[True, True, False]])
    out = identity_baseline(ModelBatch(optical, None, None, tm), {})
    assert out.flatten().tolist() == [20.0, 20.0, 20.0]
    with pytest.raises(ConfigError, match="mono-temporal"):
        get_baseline("mosaic")(ModelBatch(optical[:, 0]), {})


# ------------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def ts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tseval") / "ts"
    write_sen12mscr_ts_synthetic(root, patches=8, size=32, seed=2, dates=8, change_rate=1.5)
    return root


@pytest.fixture(scope="module")
def temporal_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(create_model("standin_temporal"), tmp_path_factory.mktemp("w") / "t")


def test_evaluate_a_temporal_model_with_the_temporal_baselines(
    ts_root: Path, temporal_weights: Path, tmp_path: Path
) -> None:
    res = evaluate_checkpoints(
        {"standin": temporal_weights},
        ts_root,
        split="train",
        out_dir=tmp_path / "eval",
        progress=False,
        dataset="sen12mscr_ts",
        dataset_options={"sampler": "ca_mtcr", "cloud_masks": "mask_files"},
    )
    s = res.summary
    assert list(s["models"]) == [
        "standin",
        "identity",
        "least_cloudy",
        "mosaic",
        "most_recent_clear",
    ]
    assert s["dataset_name"] == "sen12mscr_ts" and s["dataset_options"]["sampler"] == "ca_mtcr"
    m = s["models"]
    # the date to restore is cloudy: every composite of the clear dates beats it there
    for b in ("least_cloudy", "mosaic", "most_recent_clear"):
        assert m[b]["inside_clouds"]["psnr"] > m["identity"]["inside_clouds"]["psnr"] + 3, b
    strata = m["mosaic"]["per_aux_change"]
    assert strata["changed"]["n"] + strata["unchanged"]["n"] == s["n_images"]
    with open(tmp_path / "eval" / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == s["n_images"] and {r["aux_changed"] for r in rows} <= {"0.0", "1.0"}
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_images"] == len(rows)


def test_evaluate_cli_on_a_time_series_dataset(
    ts_root: Path, temporal_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(main, [
        "evaluate", "--checkpoint", f"t={temporal_weights}", "--data", str(ts_root),
        "--dataset", "sen12mscr_ts", "--sampler", "fixed", "--split", "train", "--out", str(out),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mosaic" in res.output and "least_cloudy" in res.output
    res = CliRunner().invoke(main, [
        "evaluate", "--checkpoint", str(temporal_weights), "--data", str(ts_root),
        "--sampler", "fixed", "--out", str(tmp_path / "x"),
    ])  # fmt: skip
    assert res.exit_code == 1 and "takes no option 'sampler'" in res.output
    res = CliRunner().invoke(main, [
        "evaluate", "--checkpoint", str(temporal_weights), "--data", str(ts_root),
        "--dataset", "sen12mscr_tz", "--out", str(tmp_path / "y"),
    ])  # fmt: skip
    assert res.exit_code == 1 and "did you mean 'sen12mscr_ts'" in res.output


def test_mono_models_on_time_series_see_the_last_date(
    ts_root: Path, temporal_weights: Path, tmp_path: Path
) -> None:
    from cloudfree.data import SEN12MSCRTS, SingleDateView
    from cloudfree.evaluate import evaluate_models

    torch.manual_seed(1)
    mono = create_model("uncrtaints_mono", width=8, decoder_blocks=1)
    mono_dir = save_pretrained(mono, tmp_path / "mono")
    series = SEN12MSCRTS(ts_root, "train", sampler="ca_mtcr", cloud_masks="mask_files")
    res = evaluate_checkpoints(
        {"mono": mono_dir, "standin": temporal_weights},
        ts_root,
        split="train",
        out_dir=None,
        progress=False,
        dataset="sen12mscr_ts",
        dataset_options={"sampler": "ca_mtcr", "cloud_masks": "mask_files"},
    )
    m = res.summary["models"]
    assert list(m)[:2] == ["mono", "standin"] and "mosaic" in m
    alone = evaluate_models({"mono": mono}, SingleDateView(series), baselines=(), progress=False)
    for region in ("overall", "inside_clouds"):
        assert m["mono"][region] == alone.summary["models"]["mono"][region]
    # the baselines see the whole series, whichever model comes first
    ref = evaluate_models({"standin": create_model("standin_temporal")}, series,
                          baselines=("mosaic",), progress=False)  # fmt: skip
    assert m["mosaic"]["overall"] == ref.summary["models"]["mosaic"]["overall"]
    scaled = SEN12MSCRTS(ts_root, "train", sampler="ca_mtcr", cloud_masks="mask_files")
    scaled.protocol = "uncrtaints"  # as a dataset that yields normalised samples declares
    with pytest.raises(ConfigError, match="needs raw samples"):
        evaluate_models({"mono": mono}, scaled, progress=False)
