"""`--precision {32,bf16,16}` and `--compile` in predict and evaluate, and bf16 training through
Lightning's `precision` on CPU.

The networks are tiny random ones: what is tested is that the options reach the forward pass
(outputs differ from float32 by a small, non-zero amount and come back as float32; a compiled
network equals the eager one), that the contract travels with the wrapper, and that outputs
record how the network ran. The accuracy cost on trained networks is measured by
``benchmarks/precision_accuracy.py`` (docs/performance.md).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from cloudfree.cli import main
from cloudfree.errors import ConfigError
from cloudfree.models import create_model, run_model, save_pretrained, spec_of
from cloudfree.models.inference import InferenceModel, InferenceOptions, for_inference
from cloudfree.synth import write_scene_pair, write_sen12mscr_synthetic
from predict_helpers import predict_float32

TILE = ["--tile-size", "32", "--overlap", "8", "--batch-size", "4", "--quiet"]
MODELS = {
    "dsen2cr": {"width": 8, "num_blocks": 1},
    "glf_cr": {"width": 16, "num_blocks": 1, "layers_per_block": 1, "growth": 8},
    "uncrtaints_mono": {},
    "utae_cr": {},
}


def _inputs(model: torch.nn.Module, size: int = 32) -> dict[str, torch.Tensor]:
    from cloudfree.models.complexity import spec_batch

    batch = spec_batch(model, size, dates=3)
    return {k: v for k, v in vars(batch).items() if v is not None}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_autocast_changes_the_forward_a_little(name: str, precision: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **MODELS[name]).eval()
    inputs = _inputs(model)
    wrapped = for_inference(model, InferenceOptions(precision=precision))
    assert isinstance(wrapped, InferenceModel) and spec_of(wrapped) is spec_of(model)
    assert wrapped.cloudfree_config == model.cloudfree_config
    with torch.no_grad():
        want = run_model(model, **inputs)
        got = run_model(wrapped, **inputs)
    for a, b in ((got.pred, want.pred), (got.variance, want.variance)):
        if b is None:
            assert a is None
            continue
        assert a.dtype == torch.float32 and a.shape == b.shape
        diff = (a - b).abs()
        assert torch.isfinite(a).all()
        assert float(diff.max()) > 0  # autocast did run in the low precision
        assert float(diff.mean()) < 0.02 * float(b.abs().mean()) + 1e-3


def test_plain_options_leave_the_network_alone() -> None:
    model = create_model("dsen2cr", **MODELS["dsen2cr"])
    assert for_inference(model, InferenceOptions()) is model
    assert for_inference(model, None) is model
    with pytest.raises(ConfigError, match="precision must be one of 32, bf16, 16"):
        InferenceOptions(precision="8")
    assert InferenceOptions("bf16", True).describe() == "bf16 autocast, torch.compile"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("dsen2cr", **MODELS["dsen2cr"])
    return save_pretrained(model, tmp_path_factory.mktemp("w") / "dsen2cr")


def test_predict_compiled_and_in_bf16(tmp_path: Path, weights: Path) -> None:
    # 72 x 88 px in 32 px tiles, step 24: 3 x 4 tiles, three full batches of 4 (one shape)
    scene = write_scene_pair(tmp_path / "data", height=72, width=88, seed=2)
    eager = predict_float32(tmp_path, scene, weights, "eager", *TILE)
    compiled = predict_float32(tmp_path, scene, weights, "compiled", *TILE, "--compile")
    bf16 = predict_float32(tmp_path, scene, weights, "bf16", *TILE, "--precision", "bf16")
    valid = np.isfinite(eager.array)
    assert valid.mean() > 0.9
    for other in (compiled, bf16):
        assert np.array_equal(np.isfinite(other.array), valid)
    np.testing.assert_allclose(compiled.array[valid], eager.array[valid], atol=1e-5, rtol=0)
    diff = np.abs(bf16.array[valid] - eager.array[valid])
    assert 0 < diff.max() < 0.05 and diff.mean() < 0.005  # reflectance
    assert eager.tags["RUNTIME"] == "torch, float32"
    assert compiled.tags["RUNTIME"] == "torch, float32, torch.compile"
    assert bf16.tags["RUNTIME"] == "torch, bf16 autocast"


def test_evaluate_records_the_precision(tmp_path: Path, weights: Path) -> None:
    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=3, size=32, seed=0)
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(weights), "--data", str(root), "--split", "all",
            "--out", str(out), "--precision", "16"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluated"]["dsen2cr"]["runtime"] == "torch, 16 autocast"
    folders = CliRunner().invoke(
        main, ["evaluate", "--pred", str(tmp_path), "--target", str(tmp_path), "--precision", "16"]
    )
    assert folders.exit_code != 0 and "belong to different modes" in folders.output


@pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")
def test_lightning_bf16_training_on_cpu(tmp_path: Path) -> None:
    from cloudfree.train import train
    from train_helpers import tiny_config

    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=10, size=32, seed=0)
    runs = {}
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(0)
        cfg = tiny_config(root, tmp_path / precision, trainer__precision=precision, seed=0)
        runs[precision] = train(cfg)
    bf16 = runs["bf16-mixed"]
    assert bf16.global_step == 5
    assert type(bf16.module.trainer.precision_plugin).__name__ == "MixedPrecision"
    a = load_file(str(runs["32-true"].final_weights / "model.safetensors"))
    b = load_file(str(bf16.final_weights / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(t.dtype == torch.float32 for t in b.values())  # master weights stay float32
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the bf16 forward changed the updates
    with open(bf16.run_dir / "metrics.csv", newline="") as fh:
        losses = [float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert losses and all(np.isfinite(losses))
