"""`cloudfree predict --runtime onnxruntime` and `cloudfree evaluate --checkpoint FILE.onnx`: the
exported network runs through the same tiling, blending and writing path as the torch one and
gives the same scene within 1e-4 reflectance. Bad ONNX files are one-line errors naming the file.
Skipped when the optional packages (`cloudfree[onnx]`) are absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import read_raster
from cloudfree.models import create_model, load_model, run_model, save_pretrained
from cloudfree.models.onnx_runtime import OnnxRuntimeModel
from cloudfree.synth import write_scene_pair

pytest.importorskip("onnx", reason="optional package onnx (cloudfree[onnx]) not installed")
pytest.importorskip("onnxscript", reason="optional package onnxscript not installed")
pytest.importorskip("onnxruntime", reason="optional package onnxruntime not installed")

TILE = ["--tile-size", "32", "--overlap", "8", "--quiet"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random compact DSen2-CR: its weights directory and its ONNX export."""
    root = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    weights = save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), root / "weights")
    onnx_file = root / "dsen2cr.onnx"
    args = ["models", "export", "dsen2cr", str(onnx_file), "--weights", str(weights)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return weights, onnx_file


def test_loaded_onnx_model_keeps_the_contract(exported: tuple[Path, Path]) -> None:
    weights, onnx_file = exported
    torch_model = load_model(weights)
    onnx_model = load_model(onnx_file)
    assert isinstance(onnx_model.model, OnnxRuntimeModel)
    assert onnx_model.source == "onnx"
    assert (onnx_model.name, onnx_model.protocol) == (torch_model.name, torch_model.protocol)
    assert onnx_model.bands.names == torch_model.bands.names
    assert onnx_model.model.exported_from_sha256 == torch_model.weights_sha256
    assert onnx_model.weights_sha256 != torch_model.weights_sha256  # the file's own
    optical, sar = torch.rand(3, 13, 40, 48), torch.rand(3, 2, 40, 48)
    with torch.no_grad():
        want = run_model(torch_model.model, optical=optical, sar=sar).pred
    got = run_model(onnx_model.model, optical=optical, sar=sar).pred  # contract checks included
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # the spec travels with the file
    with pytest.raises(ConfigError, match=r"expects sar \[3, 2, 40, 48\]"):
        run_model(onnx_model.model, optical=optical, sar=sar[:, :1])
    with pytest.raises(ConfigError, match="does not match"):
        load_model(onnx_file, name="glf_cr")


def test_predict_with_onnxruntime_equals_torch(tmp_path: Path, exported) -> None:
    weights, onnx_file = exported
    scene = write_scene_pair(tmp_path / "data", height=72, width=88, seed=3)
    outs = {}
    for runtime, w in (("torch", weights), ("onnxruntime", onnx_file)):
        out = tmp_path / f"{runtime}.tif"
        args = ["predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1),
                "--weights", str(w), "--out", str(out), "--runtime", runtime,
                "--dtype", "float32", *TILE]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        outs[runtime] = read_raster(out)
    a, b = outs["torch"], outs["onnxruntime"]
    assert a.array.shape == b.array.shape == (13, 72, 88)
    both = np.isfinite(a.array) & np.isfinite(b.array)
    assert both.mean() > 0.9 and np.array_equal(np.isfinite(a.array), np.isfinite(b.array))
    np.testing.assert_allclose(b.array[both], a.array[both], atol=1e-4, rtol=0)
    assert a.tags["RUNTIME"] == "torch, float32"
    assert b.tags["RUNTIME"] == "onnxruntime, float32"
    assert b.tags["WEIGHTS_SOURCE"] == "onnx"
    assert b.tags["EXPORTED_FROM_WEIGHTS_SHA256"] == a.tags["WEIGHTS_SHA256"]


def test_runtime_and_weights_must_agree(tmp_path: Path, exported) -> None:
    weights, onnx_file = exported
    scene = write_scene_pair(tmp_path / "data", height=40, width=40, seed=1)
    base = ["predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1), *TILE]
    cases = {
        "runs an exported network": [
            "--weights", str(weights), "--runtime", "onnxruntime", "--out", str(tmp_path / "a.tif")
        ],
        "it runs with --runtime onnxruntime": [
            "--weights", str(onnx_file), "--runtime", "torch", "--out", str(tmp_path / "b.tif")
        ],
        "apply to the torch runtime": [
            "--weights", str(onnx_file), "--precision", "bf16", "--out", str(tmp_path / "c.tif")
        ],
    }  # fmt: skip
    for message, extra in cases.items():
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_bad_onnx_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(InputFileError, match="junk.onnx: onnxruntime cannot open it"):
        load_model(junk)

    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("optical", TensorProto.FLOAT, [1, 13, 8, 8])
    y = helper.make_tensor_value_info("pred", TensorProto.FLOAT, [1, 13, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["optical"], ["pred"])], "g", [x], [y])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(InputFileError, match="foreign.onnx: no cloudfree metadata"):
        load_model(foreign)
    from cloudfree.models.onnx_runtime import load_onnx

    with pytest.raises(InputFileError, match="absent.onnx: ONNX file not found"):
        load_onnx(tmp_path / "absent.onnx")


def test_evaluate_takes_an_onnx_file(tmp_path: Path, exported) -> None:
    from cloudfree.synth import write_sen12mscr_synthetic

    weights, onnx_file = exported
    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=3, size=32, seed=0)
    summaries = {}
    for key, w in (("torch", weights), ("onnx", onnx_file)):
        out = tmp_path / key
        args = ["evaluate", "--checkpoint", str(w), "--data", str(root), "--split", "all",
                "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        summaries[key] = json.loads((out / "summary.json").read_text())
    a, b = (summaries[k]["models"]["dsen2cr"] for k in ("torch", "onnx"))
    assert abs(a["overall"]["psnr"] - b["overall"]["psnr"]) < 1e-3
    assert abs(a["overall"]["mae"] - b["overall"]["mae"]) < 1e-5
    assert summaries["onnx"]["evaluated"]["dsen2cr"]["runtime"] == "onnxruntime, float32"
