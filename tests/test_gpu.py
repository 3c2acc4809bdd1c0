"""Every CUDA path: train, evaluate, predict (torch, autocast, compile, onnxruntime), the demo,
the benchmark, and every registered network's forward. Marked ``gpu``; they run where a CUDA
device is present (``pytest -m gpu``, ``benchmarks/gpu_check.sh``) and are skipped elsewhere.

Each compares the GPU with the CPU where both should agree: the same weights give the same
prediction within float32 rounding of different kernels (1e-4 reflectance, 0.01 dB), and
weights trained on the GPU load on the CPU (``map_location``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.models import create_model, list_models, run_model, save_pretrained
from cloudfree.synth import write_scene_pair, write_sen12mscr_synthetic
from predict_helpers import predict_float32

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

TILE = ["--tile-size", "64", "--overlap", "16", "--quiet"]
TINY_GLF_CR = {"width": 16, "num_blocks": 1, "layers_per_block": 1, "growth": 8}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu") / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=10, size=32, seed=0)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("glf_cr", **TINY_GLF_CR)
    return save_pretrained(model, tmp_path_factory.mktemp("gpu_w") / "glf_cr")


@pytest.mark.parametrize("name", list_models())
def test_every_network_runs_on_cuda_like_on_cpu(name: str) -> None:
    from cloudfree.models.complexity import spec_batch

    torch.manual_seed(0)
    model = create_model(name).eval()
    batch = spec_batch(model, 64, dates=3)
    with torch.no_grad():
        want = run_model(model, batch).pred
        got = run_model(model.cuda(), batch.to("cuda")).pred
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), want, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_train_on_gpu_and_load_on_cpu(data_root: Path, tmp_path: Path, precision: str) -> None:
    from cloudfree.models import load_model
    from cloudfree.train import train
    from train_helpers import tiny_config

    cfg = tiny_config(
        data_root, tmp_path / "run", trainer__accelerator="gpu", trainer__precision=precision
    )
    run = train(cfg)
    assert run.global_step == 5
    loaded = load_model(run.final_weights, device="cpu")  # map_location: trained on the GPU
    assert next(loaded.model.parameters()).device.type == "cpu"


def test_predict_on_cuda(tmp_path: Path, weights: Path) -> None:
    scene = write_scene_pair(tmp_path / "data", height=160, width=200, seed=4)
    cpu = predict_float32(tmp_path, scene, weights, "cpu", *TILE)
    valid = np.isfinite(cpu.array)
    for label, extra, atol in (
        ("cuda", ["--device", "cuda"], 1e-4),
        ("compiled", ["--device", "cuda", "--compile"], 1e-4),
        ("bf16", ["--device", "cuda", "--precision", "bf16"], 0.05),
        ("fp16", ["--device", "cuda", "--precision", "16"], 0.01),
    ):
        got = predict_float32(tmp_path, scene, weights, label, *TILE, *extra)
        assert np.array_equal(np.isfinite(got.array), valid), label
        np.testing.assert_allclose(got.array[valid], cpu.array[valid], atol=atol, rtol=0)


def test_predict_onnxruntime_on_cuda(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="optional package onnxscript not installed")
    ort = pytest.importorskip("onnxruntime", reason="optional package onnxruntime not installed")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider here")
    torch.manual_seed(0)
    w = save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), tmp_path / "w")
    onnx_file = tmp_path / "d.onnx"
    res = CliRunner().invoke(
        main, ["models", "export", "dsen2cr", str(onnx_file), "--weights", str(w)]
    )
    assert res.exit_code == 0, res.output
    scene = write_scene_pair(tmp_path / "data", height=96, width=96, seed=5)
    a = predict_float32(tmp_path, scene, w, "torch", *TILE)
    b = predict_float32(tmp_path, scene, onnx_file, "ort", *TILE, "--device", "cuda")
    valid = np.isfinite(a.array)
    np.testing.assert_allclose(b.array[valid], a.array[valid], atol=1e-4, rtol=0)


def test_evaluate_on_cuda_like_on_cpu(data_root: Path, tmp_path: Path, weights: Path) -> None:
    summaries = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / dev
        args = ["evaluate", "--checkpoint", str(weights), "--data", str(data_root),
                "--split", "test", "--out", str(out), "--device", dev]  # fmt: skip
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        summaries[dev] = json.loads((out / "summary.json").read_text())["models"]["glf_cr"]
    for region in ("overall", "inside_clouds"):
        a, b = summaries["cpu"][region]["psnr"], summaries["cuda"][region]["psnr"]
        assert abs(a - b) < 0.01, (region, a, b)


def test_quick_demo_on_cuda(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out), "--device", "cuda",
                                    "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["device"] == "cuda"


def test_synthetic_benchmark_on_cuda(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", "--synthetic", "--families", "dsen2cr", "--steps", "2",
            "--device", "cuda", "--out", str(out), "--quiet"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert any(out.rglob("*.json"))
