"""Tests of model evaluation on a dataset split (cloudfree.evaluate.model_eval) and of
`cloudfree evaluate --checkpoint RUN --data ROOT`."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import Subset

from cloudfree.cli import main
from cloudfree.data import SEN12MSCR, assign_cover_bins, cover_bin_labels
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.evaluate import (
    IDENTITY_NAME,
    REGIONS,
    center_crop,
    evaluate_checkpoint,
    evaluate_model,
    load_model_for_evaluation,
    per_image_columns,
    resolve_weights_dir,
    write_evaluation,
)
from cloudfree.metrics import METRIC_NAMES, get_metric_protocol, image_metrics
from cloudfree.models import create_model, save_pretrained
from cloudfree.normalization import denormalize_optical
from cloudfree.synth import write_sen12mscr_synthetic

N_PATCHES = 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """8 synthetic SEN12MS-CR triplets of 32 x 32 (split 'all' holds all of them)."""
    root = tmp_path_factory.mktemp("sen12mscr")
    write_sen12mscr_synthetic(root, patches=N_PATCHES, size=32, seed=0, layout="official")
    return root


def _model(seed: int = 0, zero_tail: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("dsen2cr", width=8, num_blocks=1)
    if zero_tail:
        with torch.no_grad():
            model.tail.weight.zero_()
            model.tail.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return save_pretrained(_model(0), tmp_path_factory.mktemp("weights") / "dsen2cr")


@pytest.fixture(scope="module")
def dataset(data_root) -> SEN12MSCR:
    return SEN12MSCR(data_root, split="all", protocol="dsen2cr", crop="center")


@pytest.fixture(scope="module")
def result(dataset):
    return evaluate_model(_model(0), dataset, batch_size=3, progress=False)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ----------------------------------------------------------------------------- evaluate_model
def test_summary_schema(result, dataset):
    s = result.summary
    assert result.model_name == "dsen2cr"
    for key in ("protocol", "split", "n_images", "models", "normalisation", "bands", "regions"):
        assert key in s
    assert s["protocol"] == "uncrtaints" and s["split"] == "all"
    assert s["n_images"] == len(dataset) == N_PATCHES
    assert s["normalisation"] == "dsen2cr" and len(s["bands"]) == 13
    assert set(s["models"]) == {"dsen2cr", IDENTITY_NAME}
    labels = cover_bin_labels()
    for entry in s["models"].values():
        assert set(entry) == {*REGIONS, "per_cover_bin"}
        for region in REGIONS:
            assert set(entry[region]) == set(METRIC_NAMES)
            assert all(isinstance(v, float) for v in entry[region].values())
        assert list(entry["per_cover_bin"]) == labels
        for b in entry["per_cover_bin"].values():
            assert set(b) == {"n", *METRIC_NAMES} and isinstance(b["n"], int)
        assert sum(b["n"] for b in entry["per_cover_bin"].values()) == s["n_images"]
    # The synthetic data span several bins; an empty bin is n 0 with NaN metrics.
    per_bin = s["models"]["dsen2cr"]["per_cover_bin"]
    assert sum(b["n"] > 0 for b in per_bin.values()) >= 3
    for b in per_bin.values():
        if b["n"] == 0:
            assert all(math.isnan(b[m]) for m in METRIC_NAMES)


def test_rows_and_means(result, dataset):
    rows = result.rows
    assert [r["id"] for r in rows] == dataset.ids
    covers = np.array([r["cloud_cover"] for r in rows])
    np.testing.assert_allclose(covers, dataset.cloud_covers(progress=False), rtol=1e-6)
    labels = cover_bin_labels()
    assert [r["cover_bin"] for r in rows] == [labels[b] for b in assign_cover_bins(covers)]
    assert set(rows[0]) == set(per_image_columns("dsen2cr"))
    models = result.summary["models"]
    for name in ("dsen2cr", IDENTITY_NAME):
        for region in REGIONS:
            for m in METRIC_NAMES:
                vals = [r[f"{name}_{region}_{m}"] for r in rows]
                kept = [v for v in vals if not math.isnan(v)]
                assert models[name][region][m] == pytest.approx(float(np.mean(kept)))
        for label, b in models[name]["per_cover_bin"].items():
            members = [r for r in rows if r["cover_bin"] == label]
            assert b["n"] == len(members)
            if members:
                mean = np.mean([r[f"{name}_overall_psnr"] for r in members])
                assert b["psnr"] == pytest.approx(float(mean))
    # A patch without cloud pixels has NaN inside-cloud metrics (skipped by the nan-mean).
    cloudless = [r for r in rows if math.isnan(r["identity_inside_clouds_mae"])]
    counts = result.summary["n_images_per_region"]
    assert counts["inside_clouds"] == N_PATCHES - len(cloudless)
    assert counts["overall"] == N_PATCHES


def test_identity_metrics_match_direct_computation(result, dataset):
    """Recompute one sample's identity metrics from the dataset, by hand."""
    i = 1
    sample = dataset[i]
    x = (denormalize_optical(sample["optical"], "dsen2cr") / 10000)[None]
    y = (denormalize_optical(sample["target"], "dsen2cr") / 10000)[None]
    valid = sample["valid_mask"][None]
    cloud = (sample["cloud_mask"] > 0.5)[None]
    shadow = (sample["shadow_mask"] > 0.5)[None]
    masks = {"overall": valid, "inside_clouds": cloud & valid, "outside_clouds": ~cloud & ~shadow}
    row = result.rows[i]
    for region, mask in masks.items():
        expected = image_metrics(x, y, "uncrtaints", mask & valid)
        for m in METRIC_NAMES:
            assert _same(row[f"identity_{region}_{m}"], float(expected[m][0])), (region, m)


def test_identity_like_model_equals_identity(dataset):
    """DSen2-CR with a zeroed tail returns its optical input exactly: same metrics as identity
    (checks the pipeline and the dsen2cr [0, 5] rescaling)."""
    model = _model(3, zero_tail=True)
    res = evaluate_model(model, dataset, batch_size=4, progress=False)
    for row in res.rows:
        for region in REGIONS:
            for m in METRIC_NAMES:
                a, b = row[f"dsen2cr_{region}_{m}"], row[f"identity_{region}_{m}"]
                assert _same(a, b), (row["id"], region, m, a, b)
    models = res.summary["models"]
    assert json.dumps(models["dsen2cr"]) == json.dumps(models[IDENTITY_NAME])
    # The identity is not trivially perfect: it is far from the target inside clouds.
    assert (
        models[IDENTITY_NAME]["inside_clouds"]["psnr"]
        < models[IDENTITY_NAME]["outside_clouds"]["psnr"]
    )


class _PassThrough(nn.Module):
    """A model without cloudfree_config: returns the cloudy input."""

    def forward(self, optical, sar=None):
        return optical


def test_scaling_is_undone(data_root, result):
    """Identity metrics do not depend on the normalisation protocol the data are scaled with."""
    ds = SEN12MSCR(data_root, split="all", protocol="uncrtaints")
    res = evaluate_model(_PassThrough(), ds, batch_size=8, progress=False)
    assert res.model_name == "_PassThrough" and res.summary["normalisation"] == "uncrtaints"
    a = res.summary["models"][IDENTITY_NAME]
    b = result.summary["models"][IDENTITY_NAME]
    for region in REGIONS:
        for m in METRIC_NAMES:
            assert a[region][m] == pytest.approx(b[region][m], rel=1e-5, abs=1e-6)


def test_batch_size_and_subset_do_not_change_values(dataset, result):
    # float32 convolutions may differ in the last bits with the batch size
    res = evaluate_model(_model(0), Subset(dataset, range(5)), batch_size=1, progress=False)
    assert res.summary["n_images"] == 5 and res.summary["split"] == "all"
    for r1, r2 in zip(res.rows, result.rows[:5]):
        assert r1["id"] == r2["id"]
        for key in per_image_columns("dsen2cr")[3:]:
            assert r1[key] == pytest.approx(r2[key], rel=1e-5, abs=1e-7, nan_ok=True)


def test_center_crop_applied(dataset):
    proto = dataclasses.replace(get_metric_protocol("glf_cr"), center_crop=16)
    res = evaluate_model(_PassThrough(), Subset(dataset, [0]), protocol=proto, progress=False)
    assert res.summary["center_crop"] == 16
    s = dataset[0]

    def refl(x):
        return center_crop(denormalize_optical(x, "dsen2cr") / 10000, 16)[None]

    mask = center_crop(s["valid_mask"], 16)[None]
    expected = image_metrics(refl(s["optical"]), refl(s["target"]), proto, mask)
    for m in METRIC_NAMES:
        assert _same(res.rows[0][f"identity_overall_{m}"], float(expected[m][0]))


def test_mismatched_dataset_protocol(data_root):
    ds = SEN12MSCR(data_root, split="all", protocol="uncrtaints")
    with pytest.raises(ConfigError, match="protocol='dsen2cr'"):
        evaluate_model(_model(0), ds, progress=False)


def test_bad_options(dataset):
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_model(_model(0), dataset, batch_size=0, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            evaluate_model(_model(0), dataset, device="cuda", progress=False)


# ---------------------------------------------------------------------------------- writing
def test_write_evaluation(result, tmp_path):
    csv_path, json_path = write_evaluation(result, tmp_path / "out")
    assert csv_path == tmp_path / "out" / "per_image.csv"
    assert json_path == tmp_path / "out" / "summary.json"
    with open(csv_path, newline="") as fh:
        table = list(csv.reader(fh))
    assert tuple(table[0]) == per_image_columns("dsen2cr")
    assert table[0][:3] == ["id", "cloud_cover", "cover_bin"]
    assert len(table) == 1 + result.summary["n_images"]
    for line, row in zip(table[1:], result.rows):
        assert line[0] == row["id"] and line[2] == row["cover_bin"]
        for col, text in zip(table[0][3:], line[3:]):
            assert _same(float(text), row[col])  # repr: read back exactly
    summary = json.loads(json_path.read_text())
    assert summary["n_images"] == result.summary["n_images"]
    assert summary["models"]["dsen2cr"]["overall"] == result.summary["models"]["dsen2cr"]["overall"]
    assert not list(tmp_path.glob("out/.*"))  # no temporary files left


# ---------------------------------------------------------------------------------- loading
def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_run_directory_resolution(tmp_path, weights_dir):
    run = tmp_path / "run"
    final, best = _model(1), _model(2)
    save_pretrained(final, run / "weights" / "final")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not used")
    (run / "config.yaml").write_text("model: dsen2cr\n")
    (run / "weights" / "best").mkdir()  # present but empty: not weights, use final
    assert resolve_weights_dir(run) == run / "weights" / "final"
    assert _state_equal(load_model_for_evaluation(run), final)
    save_pretrained(best, run / "weights" / "best")
    assert resolve_weights_dir(run) == run / "weights" / "best"
    model = load_model_for_evaluation(run)
    assert _state_equal(model, best) and not model.training
    assert model.cloudfree_config["name"] == "dsen2cr"
    assert model.cloudfree_weights_dir == str(run / "weights" / "best")
    # A pretrained directory is used as is.
    assert resolve_weights_dir(weights_dir) == weights_dir
    assert _state_equal(load_model_for_evaluation(weights_dir), _model(0))


def test_bad_checkpoint_paths(tmp_path):
    with pytest.raises(InputFileError, match="not found.*weights/best"):
        load_model_for_evaluation(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty: holds no model weights"):
        load_model_for_evaluation(tmp_path / "empty")
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(InputFileError, match="Lightning checkpoints"):
        load_model_for_evaluation(ckpt)
    broken = tmp_path / "run" / "weights" / "best"
    save_pretrained(_model(0), broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="model.safetensors"):
        load_model_for_evaluation(tmp_path / "run")


# ------------------------------------------------------------------------------- pipeline
def test_evaluate_checkpoint(tmp_path, data_root, weights_dir, result):
    run = tmp_path / "run"
    save_pretrained(_model(0), run / "weights" / "final")
    out = tmp_path / "eval"
    res = evaluate_checkpoint(
        run, data_root, split="all", out_dir=out, batch_size=2, progress=False, limit=3
    )
    s = res.summary
    assert s["n_images"] == 3 and s["limit"] == 3 and s["split"] == "all"
    assert s["weights_dir"] == str((run / "weights" / "final").resolve())
    assert s["checkpoint"] == str(run.resolve())
    assert s["dataset"]["split_size"] == N_PATCHES
    assert (out / "per_image.csv").is_file() and (out / "summary.json").is_file()
    for r1, r2 in zip(res.rows, result.rows[:3]):
        assert r1["dsen2cr_overall_psnr"] == pytest.approx(r2["dsen2cr_overall_psnr"])


# ------------------------------------------------------------------------------------- CLI
def test_cli_model_mode(tmp_path, data_root, weights_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "--checkpoint", str(weights_dir), "--data", str(data_root)]
    res = CliRunner().invoke(main, [*args, "--split", "all", "--limit", "2", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "evaluation"
    assert "protocol: uncrtaints" in res.output
    assert f"wrote summary to {(out / 'summary.json').resolve()}" in res.output
    for label in ("dsen2cr  overall", "identity overall", "identity inside clouds", "SAM (deg)"):
        assert label in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 2
    with open(out / "per_image.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 3
    # Explicit --out and --protocol.
    res = CliRunner().invoke(
        main, [*args, "--split", "all", "--limit", "1", "--out", "x", "--protocol", "dsen2cr"]
    )
    assert res.exit_code == 0, res.output
    assert "SAM (rad)" in res.output
    assert json.loads((tmp_path / "x" / "summary.json").read_text())["protocol"] == "dsen2cr"


def test_cli_directory_mode_still_works(tmp_path):
    res = CliRunner().invoke(
        main, ["evaluate", "--pred", str(tmp_path / "p"), "--target", str(tmp_path / "t")]
    )
    assert res.exit_code == 1 and "prediction directory not found" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pred", "a", "--checkpoint", "b"], "different modes"),
        (["--pred", "a", "--target", "b", "--data", "c"], "different modes"),
        (["--pred", "a", "--target", "b", "--split", "val"], "different modes"),
        (["--checkpoint", "b", "--bands", "rgb"], "different modes"),
        (["--checkpoint", "b"], "missing --data"),
        (["--data", "c", "--limit", "3"], "missing --checkpoint"),
        ([], "--pred and --target"),
    ],
)
def test_cli_usage_errors(extra, message):
    res = CliRunner().invoke(main, ["evaluate", *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_cli_bad_inputs(tmp_path, data_root, weights_dir):
    res = CliRunner().invoke(
        main, ["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", str(data_root)]
    )
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{tmp_path / 'nope'}: not found" in res.output
    res = CliRunner().invoke(
        main, ["evaluate", "--checkpoint", str(weights_dir), "--data", str(tmp_path / "nodata")]
    )
    assert res.exit_code == 1 and "dataset root does not exist" in res.output
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(
        main,
        ["evaluate", "--checkpoint", str(weights_dir), "--data", str(data_root)]
        + ["--split", "all", "--out", str(tmp_path / "file")],
    )
    assert res.exit_code == 2 and "--out" in res.output
