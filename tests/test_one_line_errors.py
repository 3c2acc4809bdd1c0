"""Bad inputs and unwritable outputs end in ONE line ``Error: ...`` naming the file, never a
traceback (issue 11, "Tracebacks to turn into one-line errors")."""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

from cloudfree.cli import main, worker_error_message
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import read_raster
from cloudfree.models import (
    create_model,
    load_official_checkpoint,
    load_pretrained,
    save_pretrained,
)
from cloudfree.models.state import describe_state_mismatch, load_state_dict_strict
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.train import load_yaml_config
from cloudfree.train.run import holds_training_state
from disk_helpers import read_only_dir

TINY_DSEN2CR = {"width": 8, "num_blocks": 1}
#: ``train`` options of a CPU smoke run of a tiny DSen2-CR (2 steps, one validation batch)
TINY_TRAIN = [
    "--recipe", "dsen2cr", "--set", "model.kwargs={width: 8, num_blocks: 1}",
    "--set", "data.patch_size=16", "--set", "data.batch_size=2", "--set", "trainer.max_steps=2",
    "--set", "trainer.accelerator=cpu", "--set", "trainer.enable_progress_bar=false",
    "--set", "trainer.val_check_interval=2", "--set", "trainer.limit_val_batches=1",
    "--set", "trainer.num_sanity_val_steps=0",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("quiet_lightning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("one_line") / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=6, size=32, seed=0)
    return root


def _files(root: Path, kind: str) -> list[Path]:
    """The synthetic dataset's GeoTIFFs of one kind (``s1``, ``s2``, ``s2_cloudy``)."""
    return sorted(p for p in root.rglob("*.tif") if p.parent.parent.name.endswith(f"_{kind}"))


def _truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _one_line_error(result: Result, *names: str) -> str:
    """Assert a clean failure: exit 1, no traceback, one ``Error:`` line naming ``names``."""
    out = result.output
    assert result.exit_code == 1, out
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    lines = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, out
    assert "Traceback" not in out and "See previous exception" not in out
    assert "weights_only" not in out
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


# --------------------------------------------------------------------------- checkpoints
def _bad_checkpoint(kind: str, path: Path) -> Path:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "text":
        path.write_text("hello, not a checkpoint\n")
    elif kind == "truncated":
        good = path.with_name("good.pth")
        torch.save({"network": {"w": torch.zeros(64, 64)}}, good)
        _truncate(good, path, 0.5)
    elif kind == "python_object":  # a checkpoint that would run code of another class
        torch.save({"network": {"w": torch.zeros(1)}, "args": argparse.Namespace(a=1)}, path)
    elif kind == "raw_pickle":
        path.write_bytes(pickle.dumps(collections.Counter(a=1), protocol=4))
    return path


CHECKPOINT_KINDS = ["empty", "random", "text", "truncated", "python_object", "raw_pickle"]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_bad_official_checkpoint_is_one_line_in_our_words(kind: str, tmp_path: Path) -> None:
    bad = _bad_checkpoint(kind, tmp_path / f"{kind}.pth")
    with pytest.raises(InputFileError) as info:
        load_official_checkpoint("glf_cr", bad)
    message = str(info.value)
    assert message.startswith(str(bad)) and "\n" not in message
    assert "weights_only" not in message and "arbitrary code" not in message
    expected = {
        "empty": "the file is empty (0 bytes)",
        "random": "content cannot be decoded",
        "text": "content cannot be decoded",
        "truncated": "truncated or corrupt",
        "python_object": "holds a Python object (argparse.Namespace)",
        "raw_pickle": "content cannot be decoded",
    }[kind]
    assert f"{bad}: not a readable PyTorch checkpoint" in message and expected in message


@pytest.mark.parametrize("kind", ["empty", "truncated", "python_object"])
def test_models_convert_of_a_bad_checkpoint(kind: str, tmp_path: Path) -> None:
    bad = _bad_checkpoint(kind, tmp_path / f"{kind}.pth")
    out = tmp_path / "converted"
    _one_line_error(_run("models", "convert", "glf_cr", bad, out), bad.name)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["empty", "random"])
def test_predict_with_a_bad_checkpoint(kind: str, data_root: Path, tmp_path: Path) -> None:
    bad = _bad_checkpoint(kind, tmp_path / f"{kind}.pth")
    out = tmp_path / "pred.tif"
    optical, sar = _files(data_root, "s2_cloudy")[0], _files(data_root, "s1")[0]
    result = _run(
        "predict", "--optical", optical, "--sar", sar, "--weights", bad, "--model", "glf_cr",
        "--out", out,
    )  # fmt: skip
    _one_line_error(result, bad.name)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_train_init_weights_bad_checkpoint(kind: str, data_root: Path, tmp_path: Path) -> None:
    bad = _bad_checkpoint(kind, tmp_path / f"{kind}.pth")
    run = tmp_path / "run"
    result = _run("train", *TINY_TRAIN, "--data", data_root, "--out", run,
                  "--set", f"model.init_weights={bad}", "--set", "data.num_workers=0")  # fmt: skip
    _one_line_error(result, bad.name, "model.init_weights")
    assert not run.exists()


def test_truncated_safetensors_is_one_line(tmp_path: Path) -> None:
    model = create_model("dsen2cr", **TINY_DSEN2CR)
    d = save_pretrained(model, tmp_path / "w")
    weights = d / "model.safetensors"
    _truncate(weights, weights, 0.5)
    with pytest.raises(InputFileError, match="truncated or corrupt safetensors") as info:
        load_pretrained(d)
    assert str(info.value).startswith(str(weights))
    weights.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"is empty \(0 bytes\)"):
        load_pretrained(d)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"[1, 2", b'"just a string"'])
def test_bad_pretrained_config_is_one_line(content: bytes, tmp_path: Path) -> None:
    d = save_pretrained(create_model("dsen2cr", **TINY_DSEN2CR), tmp_path / "w")
    (d / "config.json").write_bytes(content)
    with pytest.raises(InputFileError) as info:
        load_pretrained(d)
    assert str(info.value).startswith(str(d / "config.json"))


# --------------------------------------------------------------------------- state dicts
def test_state_mismatch_lists_missing_unexpected_and_shapes() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1))
    state = {
        "0.weight": torch.zeros(16, 3, 3, 3),  # shape mismatch
        "0.bias": torch.zeros(8),
        "extra.a": torch.zeros(1),
        "extra.b": torch.zeros(1),
    }
    text = describe_state_mismatch(model, state)
    assert text == (
        "missing 2 keys (1.weight, 1.bias), unexpected 2 keys (extra.a, extra.b), "
        "1 shape mismatch (0.weight: file [16, 3, 3, 3], model [8, 3, 3, 3])"
    )
    assert describe_state_mismatch(model, model.state_dict()) is None
    many = {f"k{i}": torch.zeros(1) for i in range(7)}
    assert "unexpected 7 keys (k0, k1, k2, k3, ...)" in str(describe_state_mismatch(model, many))
    with pytest.raises(ConfigError, match="missing 4 keys"):
        load_state_dict_strict(model, many)


def test_pretrained_of_other_widths_names_the_keys(tmp_path: Path) -> None:
    d = save_pretrained(create_model("dsen2cr", **TINY_DSEN2CR), tmp_path / "w")
    cfg = json.loads((d / "config.json").read_text())
    cfg["kwargs"] = {"width": 16, "num_blocks": 2}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputFileError) as info:
        load_pretrained(d)
    message = str(info.value)
    assert "Error(s) in loading" not in message
    assert "missing" in message and "shape mismatch" in message and "\n" not in message


def test_official_checkpoint_of_other_widths_names_the_keys(tmp_path: Path) -> None:
    small = create_model("dsen2cr", **TINY_DSEN2CR)  # one block: model.{0, 2, 3}
    official = {}
    for key, value in small.state_dict().items():
        part, _, rest = key.partition(".")
        if part == "blocks":  # blocks.0.conv1.weight -> model.2.conv_block.0.weight
            _, conv, rest = rest.split(".", 2)
            key = f"model.2.conv_block.{0 if conv == 'conv1' else 2}.{rest}"
        else:
            key = f"model.{0 if part == 'head' else 3}.{rest}"
        official[key] = value
    path = tmp_path / "ckpt.pth"
    torch.save(official, path)
    assert load_official_checkpoint("dsen2cr", path, **TINY_DSEN2CR) is not None
    result = _run("models", "convert", "dsen2cr", path, tmp_path / "out", "--arg", "width=16",
                  "--arg", "num_blocks=2")  # fmt: skip
    line = _one_line_error(result, path.name)
    assert "shape mismatch" in line and "file [8" in line


# --------------------------------------------------------------------------- config files
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (bytes(range(256)), "is not a text file"),
        (b"model: [unclosed\n", "is not valid YAML"),
        (b"- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_config_file(content: bytes, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=problem):
        load_yaml_config(path)
    line = _one_line_error(_run("train", "--config", path), str(path))
    assert problem in line


# --------------------------------------------------------------------------- truncated TIFFs
def test_read_raster_names_the_cause_of_a_truncated_tiff(data_root: Path, tmp_path: Path) -> None:
    bad = _truncate(_files(data_root, "s2")[0], tmp_path / "cut.tif")
    with pytest.raises(InputFileError) as info:
        read_raster(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: could not read pixel data: truncated or corrupt GeoTIFF (")
    assert "See previous exception" not in message and "\n" not in message


@pytest.mark.parametrize("which", ["optical", "sar"])
def test_predict_of_a_truncated_input(which: str, data_root: Path, tmp_path: Path) -> None:
    weights = save_pretrained(create_model("dsen2cr", **TINY_DSEN2CR), tmp_path / "w")
    optical, sar = _files(data_root, "s2_cloudy")[0], _files(data_root, "s1")[0]
    if which == "optical":
        optical = _truncate(optical, tmp_path / "optical.tif")
    else:
        sar = _truncate(sar, tmp_path / "sar.tif")
    out = tmp_path / "pred.tif"
    result = _run("predict", "--optical", optical, "--sar", sar, "--weights", weights,
                  "--out", out)  # fmt: skip
    line = _one_line_error(result, f"{which}.tif")
    assert "truncated or corrupt GeoTIFF" in line
    assert not out.exists() and not list(tmp_path.glob(".pred*"))


def test_directory_evaluation_of_a_truncated_prediction(data_root: Path, tmp_path: Path) -> None:
    target = _files(data_root, "s2")[0]
    pred_dir, target_dir = tmp_path / "pred", tmp_path / "target"
    pred_dir.mkdir()
    target_dir.mkdir()
    shutil.copy(target, target_dir / "a.tif")
    _truncate(target, pred_dir / "a.tif")
    out = tmp_path / "metrics.csv"
    result = _run("evaluate", "--pred", pred_dir, "--target", target_dir, "--out", out)
    line = _one_line_error(result, "a.tif")
    assert "truncated or corrupt GeoTIFF" in line
    assert not out.exists()


def test_dataset_reader_of_a_truncated_file(data_root: Path, tmp_path: Path) -> None:
    from cloudfree.data import SEN12MSCR

    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    ds = SEN12MSCR(root, "train", masks=False)
    for path in _files(root, "s2"):
        _truncate(path, path)
    with pytest.raises(InputFileError, match="truncated or corrupt GeoTIFF"):
        ds[0]


# --------------------------------------------------------------------------- unwritable outputs
def _fake_run_dir(d: Path) -> Path:
    """The least ``report`` needs: a summary.json of one model."""
    d.mkdir(parents=True)
    metrics = {k: 20.0 for k in ("psnr", "ssim", "sam", "mae", "rmse")}
    entry = {"overall": metrics, "inside_clouds": metrics, "outside_clouds": metrics}
    entry["per_cover_bin"] = {"0-100": {"n": 1, **metrics}}
    summary = {"protocol": "uncrtaints", "split": "test", "n_images": 1, "cover_bins": ["0-100"],
               "models": {"identity": entry}}  # fmt: skip
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def _command(name: str, data_root: Path, tmp_path: Path, out: Path) -> list[Any]:
    if name == "predict":
        weights = save_pretrained(create_model("dsen2cr", **TINY_DSEN2CR), tmp_path / "w")
        optical, sar = _files(data_root, "s2_cloudy")[0], _files(data_root, "s1")[0]
        return ["predict", "--optical", optical, "--sar", sar, "--weights", weights,
                "--out", out / "pred.tif"]  # fmt: skip
    if name == "evaluate":
        d = tmp_path / "imgs"
        d.mkdir()
        shutil.copy(_files(data_root, "s2")[0], d / "a.tif")
        shutil.copy(_files(data_root, "s2_cloudy")[0], tmp_path / "a.tif")
        return ["evaluate", "--pred", d, "--target", d, "--out", out / "m.csv"]
    if name == "report":
        return ["report", _fake_run_dir(tmp_path / "run"), "--out", out / "r.html"]
    if name == "train":
        return ["train", *TINY_TRAIN, "--data", data_root, "--out", out / "run",
                "--set", "data.num_workers=0"]  # fmt: skip
    assert name == "data synth"
    return ["data", "synth", out / "ds", "-n", "3", "-s", "16"]


COMMANDS = ["predict", "evaluate", "report", "train", "data synth"]


@pytest.mark.parametrize("name", COMMANDS)
def test_output_under_a_file_is_one_line(name: str, data_root: Path, tmp_path: Path) -> None:
    """An output path below a regular file: creating its directory fails (any user)."""
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"keep me")
    args = _command(name, data_root, tmp_path, blocker / "sub")
    if name == "evaluate":  # the directory evaluation needs distinct pred and target
        args[4] = tmp_path / "tgt"
        (tmp_path / "tgt").mkdir()
        shutil.copy(tmp_path / "a.tif", tmp_path / "tgt" / "a.tif")
    _one_line_error(_run(*args), "blocker")
    assert blocker.read_bytes() == b"keep me"


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_output_directory_is_one_line(name: str, data_root: Path, tmp_path: Path) -> None:
    """chmod 555 for a normal user; a tmpfs remounted read-only for root (disk_helpers)."""
    ro = tmp_path / "ro"
    args = _command(name, data_root, tmp_path, ro)
    if name == "evaluate":
        args[4] = tmp_path / "tgt"
        (tmp_path / "tgt").mkdir()
        shutil.copy(tmp_path / "a.tif", tmp_path / "tgt" / "a.tif")
    with read_only_dir(ro):
        _one_line_error(_run(*args), str(ro))
        assert list(ro.iterdir()) == []


def test_worker_errors_are_unwrapped() -> None:
    tb = (
        "Caught InputFileError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\n    raise InputFileError(p, "bad")\n'
        "cloudfree.errors.InputFileError: /data/a.tif: truncated or corrupt GeoTIFF (x)\n"
    )
    assert worker_error_message(RuntimeError(tb)) == "/data/a.tif: truncated or corrupt GeoTIFF (x)"
    other = tb.replace("InputFileError", "ZeroDivisionError")
    assert worker_error_message(RuntimeError(other)) is None
    assert worker_error_message(RuntimeError("plain")) is None


# --------------------------------------------------------------------------- train retry
@pytest.mark.parametrize(("retry", "num_workers"), [("plain", 0), ("resume", 0), ("plain", 2)])
def test_train_after_a_corrupt_file_can_be_retried(
    retry: str, num_workers: int, data_root: Path, tmp_path: Path
) -> None:
    """A training file truncated mid-run: one line, a run directory without checkpoint; once
    the file is repaired a plain retry (or ``--resume``, which starts afresh) trains. With
    DataLoader workers the error arrives wrapped in the worker's traceback: still one line."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    run = tmp_path / "run"
    args = ["train", *TINY_TRAIN, "--data", root, "--out", run,
            "--set", f"data.num_workers={num_workers}"]  # fmt: skip
    from cloudfree.data import SEN12MSCR

    training = [t.s2 for t in SEN12MSCR(root, "train", masks=False).triplets]
    assert len(training) >= 3
    originals = {}
    for path in training[1:]:  # prepare_run reads sample 0: the failure comes mid-run
        originals[path] = path.read_bytes()
        _truncate(path, path)
    line = _one_line_error(_run(*args))
    assert "truncated or corrupt GeoTIFF" in line
    assert (run / "config.yaml").is_file() and not holds_training_state(run)
    for path, data in originals.items():
        path.write_bytes(data)
    again = _run(*args, *(["--resume"] if retry == "resume" else []))
    assert again.exit_code == 0, again.output
    assert (run / "weights" / "final" / "model.safetensors").is_file()
    if retry == "resume":
        assert "holds no checkpoint" in again.output and "starting it afresh" in again.output
    refused = _run(*args)  # a run that trained is never started over
    assert refused.exit_code == 1 and "already holds a training run" in refused.output
