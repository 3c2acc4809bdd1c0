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
    evaluate_checkpoints,
    evaluate_model,
    evaluate_models,
    get_baseline,
    list_baselines,
    load_model_for_evaluation,
    per_image_columns,
    predict_samples,
    register_baseline,
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


# ------------------------------------------------------------------------ N models, baselines
@pytest.fixture(scope="module")
def raw_dataset(data_root) -> SEN12MSCR:
    """The same samples, raw (DN, dB): normalised by the evaluation for each model."""
    return SEN12MSCR(data_root, split="all", crop="center")


def _glf_cr(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("glf_cr", width=8, num_blocks=1, layers_per_block=1, growth=8).eval()


def _assert_same_rows(rows, reference, columns) -> None:
    assert [r["id"] for r in rows] == [r["id"] for r in reference]
    for r1, r2 in zip(rows, reference):
        for c in columns:
            assert _same(r1[c], r2[c]), (r1["id"], c, r1[c], r2[c])


def _cols(name: str, as_name: str | None = None) -> list[tuple[str, str]]:
    return [
        (f"{as_name or name}_{r}_{m}", f"{name}_{r}_{m}") for r in REGIONS for m in METRIC_NAMES
    ]


def test_raw_dataset_gives_the_normalised_datasets_values(raw_dataset, result):
    """Raw samples normalised per model = a dataset built with the model's protocol, exactly."""
    res = evaluate_model(_model(0), raw_dataset, batch_size=3, progress=False)
    _assert_same_rows(res.rows, result.rows, per_image_columns("dsen2cr")[3:])
    assert [r["cover_bin"] for r in res.rows] == [r["cover_bin"] for r in result.rows]
    assert json.dumps(res.summary["models"]) == json.dumps(result.summary["models"])
    assert res.summary["dataset"]["samples"] == "raw, normalised for each model"
    assert res.summary["evaluated"]["identity"] == {
        "kind": "baseline",
        "normalisation": "dsen2cr",
        "bands": res.summary["bands"],
    }


def test_n_models_equal_their_single_evaluations(data_root, raw_dataset, result):
    """Two dsen2cr models and a GLF-CR (another normalisation) in one pass: each column equals
    that model's evaluation alone; the identity is measured in the first model's scaling."""
    models = {"a": _model(0), "b": _model(5), "glf": _glf_cr(1)}
    res = evaluate_models(models, raw_dataset, batch_size=3, progress=False)
    assert res.model_names == ("a", "b", "glf") and res.baseline_names == (IDENTITY_NAME,)
    assert res.columns == per_image_columns(["a", "b", "glf"])
    assert list(res.summary["models"]) == ["a", "b", "glf", IDENTITY_NAME]
    assert res.summary["normalisation"] == "dsen2cr"
    assert res.summary["evaluated"]["glf"]["normalisation"] == "glf_cr"
    alone_b = evaluate_model(_model(5), raw_dataset, batch_size=3, progress=False)
    glf_data = SEN12MSCR(data_root, split="all", protocol="glf_cr", crop="center")
    alone_glf = evaluate_model(_glf_cr(1), glf_data, batch_size=3, progress=False)
    for alone, name, key in ((result, "dsen2cr", "a"), (alone_b, "dsen2cr", "b")):
        pairs = _cols(name, key)
        for r1, r2 in zip(res.rows, alone.rows):
            assert all(_same(r1[c1], r2[c2]) for c1, c2 in pairs), key
        assert json.dumps(res.summary["models"][key]) == json.dumps(alone.summary["models"][name])
    for r1, r2 in zip(res.rows, alone_glf.rows):
        assert all(_same(r1[c1], r2[c2]) for c1, c2 in _cols("glf_cr", "glf"))
    for r1, r2 in zip(res.rows, result.rows):
        assert all(_same(r1[c], r2[c]) for c, _ in _cols(IDENTITY_NAME))
    # the written table holds every model and the baseline
    csv_path, _ = write_evaluation(res, Path(data_root).parent / "n_models_eval")
    with open(csv_path, newline="") as fh:
        assert tuple(next(csv.reader(fh))) == res.columns


def test_normalised_dataset_needs_matching_models(dataset):
    with pytest.raises(ConfigError, match="model 'glf' expects 'glf_cr'"):
        evaluate_models({"a": _model(0), "glf": _glf_cr()}, dataset, progress=False)
    samples = [dataset[0]]  # no protocol attribute: the models' own scalings must agree
    with pytest.raises(ConfigError, match="different scalings .*a: dsen2cr; glf: glf_cr"):
        evaluate_models({"a": _model(0), "glf": _glf_cr()}, samples, progress=False)


def test_model_keys(dataset):
    with pytest.raises(ConfigError, match="cannot be called 'identity'"):
        evaluate_models({"identity": _model(0)}, dataset, progress=False)
    with pytest.raises(ConfigError, match="two models are called 'dsen2cr'"):
        evaluate_models([_model(0), _model(1)], dataset, progress=False)
    with pytest.raises(ConfigError, match="no model to evaluate"):
        evaluate_models({}, dataset, progress=False)


def test_baseline_registry(dataset):
    assert IDENTITY_NAME in list_baselines()
    assert get_baseline(IDENTITY_NAME) is not None
    assert {"least_cloudy", "mosaic", "most_recent_clear"} <= set(list_baselines())
    with pytest.raises(ConfigError, match="unknown baseline 'mosaik'; registered: .*identity"):
        get_baseline("mosaik")
    with pytest.raises(ConfigError, match="already registered"):
        register_baseline(IDENTITY_NAME)
    with pytest.raises(ConfigError, match="must be an identifier"):
        register_baseline("no-dash")

    from cloudfree.evaluate import baselines as registry

    @register_baseline("test_dark")
    def dark(inputs, batch):
        """A black image (0 DN): a second baseline for the test."""
        return torch.zeros_like(inputs.optical)

    try:
        assert "test_dark" in list_baselines()
        res = evaluate_models(
            [_model(0)],
            Subset(dataset, range(3)),
            baselines=("test_dark", IDENTITY_NAME),
            progress=False,
        )
        assert res.baseline_names == ("test_dark", IDENTITY_NAME)
        assert list(res.summary["models"]) == ["dsen2cr", "test_dark", IDENTITY_NAME]
        assert res.columns == per_image_columns("dsen2cr", ("test_dark", IDENTITY_NAME))
        # black against the target: MAE = mean reflectance of the target's valid pixels
        s = dataset[0]
        y = denormalize_optical(s["target"], "dsen2cr") / 10000
        expected = float(y[:, s["valid_mask"][0]].mean())
        assert res.rows[0]["test_dark_overall_mae"] == pytest.approx(expected, rel=1e-5)
        # without baselines: the models only
        subset = Subset(dataset, range(3))
        alone = evaluate_models([_model(0)], subset, baselines=(), progress=False)
        assert list(alone.summary["models"]) == ["dsen2cr"]
    finally:
        registry._BASELINES.pop("test_dark", None)


def test_evaluate_checkpoints_two_models(tmp_path, data_root, weights_dir, result):
    other = save_pretrained(_model(5), tmp_path / "other")
    res = evaluate_checkpoints(
        {"first": weights_dir, "second": other},
        data_root,
        split="all",
        out_dir=tmp_path / "eval",
        batch_size=3,
        progress=False,
    )
    s = res.summary
    assert list(s["models"]) == ["first", "second", IDENTITY_NAME]
    assert s["checkpoints"] == {"first": str(weights_dir.resolve()), "second": str(other.resolve())}
    assert s["weights_dir"] == str(weights_dir.resolve()) and s["limit"] is None
    for r1, r2 in zip(res.rows, result.rows):
        assert all(_same(r1[c1], r2[c2]) for c1, c2 in _cols("dsen2cr", "first"))
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert list(summary["models"]) == ["first", "second", IDENTITY_NAME]


def test_predict_samples(raw_dataset, result):
    """Predictions as arrays for the report's panels; captions measured like the table."""
    indices = [0, 3]
    got = predict_samples({"net": _model(0)}, raw_dataset, indices)
    assert got.protocol == "dsen2cr" and got.metrics_crop is None and len(got.band_names) == 13
    assert [s["id"] for s in got.samples] == [raw_dataset.ids[i] for i in indices]
    for i, sample in zip(indices, got.samples):
        assert sample["optical"].shape == (13, 32, 32) and sample["sar"].shape == (2, 32, 32)
        assert sample["optical"].dtype == np.float32 and sample["valid_mask"].dtype == bool
        assert 0 <= sample["optical"].min() and sample["optical"].max() <= 1
        assert sample["sar"].max() <= 0 and sample["sar"].min() >= -32.5  # dB
        row = result.rows[i]
        for key, name in (("net", "dsen2cr"), (IDENTITY_NAME, IDENTITY_NAME)):
            m = sample["metrics"][key]
            if math.isnan(row[f"{name}_inside_clouds_psnr"]):
                assert m is None
            else:
                assert m["psnr"] == pytest.approx(row[f"{name}_inside_clouds_psnr"], rel=1e-5)
                assert m["mae"] == pytest.approx(row[f"{name}_inside_clouds_mae"], rel=1e-5)
    assert [p.shape for p in got.predictions["net"]] == [(13, 32, 32)] * 2
    with pytest.raises(ConfigError, match="no sample"):
        predict_samples({"net": _model(0)}, raw_dataset, [])


def test_predict_samples_captions_use_the_metric_crop(raw_dataset):
    proto = dataclasses.replace(get_metric_protocol("glf_cr"), center_crop=16)
    model = _model(3, zero_tail=True)  # returns its input: its metrics are the identity's
    got = predict_samples({"net": model}, raw_dataset, range(N_PATCHES), metric_protocol=proto)
    assert got.metrics_crop == 16
    for s in got.samples:
        cloud = center_crop(torch.from_numpy(s["cloud_mask"] > 0.5), 16)
        valid = center_crop(torch.from_numpy(s["valid_mask"]), 16)
        region = (cloud & valid)[None, None]
        if not bool(region.any()):
            assert s["metrics"]["net"] is None
            continue
        y = center_crop(torch.from_numpy(s["target"]), 16)[None]
        x = center_crop(torch.from_numpy(s["optical"]), 16)[None]
        expected = image_metrics(x, y, proto, region)
        assert s["metrics"][IDENTITY_NAME]["psnr"] == float(expected["psnr"][0])
        assert s["metrics"]["net"] == s["metrics"][IDENTITY_NAME]


def test_cli_two_checkpoints_in_one_table(tmp_path, data_root, weights_dir):
    other = save_pretrained(_model(5), tmp_path / "other")
    out = tmp_path / "two"
    args = ["evaluate", "--data", str(data_root), "--split", "all", "--limit", "2"]
    named = ["--checkpoint", f"mine={weights_dir}", "--checkpoint", f"theirs={other}"]
    res = CliRunner().invoke(main, [*args, *named, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"model:    mine ({weights_dir.resolve()})" in res.output
    assert "theirs   inside clouds" in res.output and "identity inside clouds" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["mine", "theirs", IDENTITY_NAME]
    with open(out / "per_image.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == per_image_columns(["mine", "theirs"])
    mixed = ["--checkpoint", f"mine={weights_dir}", "--checkpoint", str(other)]
    res = CliRunner().invoke(main, [*args, *mixed])
    assert res.exit_code == 2 and "name every model (KEY=PATH) or none" in res.output
    same = ["--checkpoint", str(weights_dir), "--checkpoint", str(other)]
    res = CliRunner().invoke(main, [*args, *same])
    assert res.exit_code == 1 and "several checkpoints hold a 'dsen2cr' model" in res.output
    assert "KEY=PATH on the command line" in res.output
