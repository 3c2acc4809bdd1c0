"""The one home of each cross-cutting concept: model loading (cloudfree.models.loading),
device resolution (cloudfree.devices), reflectance for metrics
(cloudfree.normalization.to_reflectance) and PNG writing (cloudfree.io.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models import (
    LoadedModel,
    RunLayout,
    create_model,
    load_model,
    resolve_weights_dir,
    save_pretrained,
    weights_sha256,
)
from cloudfree.normalization import denormalize_optical, normalize_optical, to_reflectance
from official_layouts import official_dsen2cr_checkpoint


def _dsen2cr(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("dsen2cr", width=8, num_blocks=1)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------------- loading
def test_pretrained_directory(tmp_path: Path) -> None:
    source = _dsen2cr(0)
    wdir = save_pretrained(source, tmp_path / "w", protocol="uncrtaints")
    loaded = load_model(wdir)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.protocol, loaded.source) == ("dsen2cr", "uncrtaints", "pretrained")
    assert len(loaded.bands) == 13 and loaded.weights_path == wdir
    assert loaded.weights_sha256 == weights_sha256(wdir) and loaded.device == torch.device("cpu")
    assert _same_weights(loaded.model, source) and not loaded.model.training
    assert load_model(wdir, name="dsen2cr").name == "dsen2cr"  # a matching name is fine


def test_training_run_directory(tmp_path: Path) -> None:
    run = RunLayout(tmp_path / "run")
    final, best = _dsen2cr(1), _dsen2cr(2)
    save_pretrained(final, run.final_weights)
    run.best_weights.mkdir(parents=True)  # present but empty: not weights, use final
    assert resolve_weights_dir(run.root) == run.root / "weights" / "final"
    assert _same_weights(load_model(run.root).model, final)
    save_pretrained(best, run.best_weights)
    loaded = load_model(run.root)
    assert loaded.weights_path == run.root / "weights" / "best"
    assert _same_weights(loaded.model, best)


def test_official_checkpoint_file(tmp_path: Path) -> None:
    source = _dsen2cr(3)
    ckpt = official_dsen2cr_checkpoint(source, tmp_path / "dsen2cr.pth")
    loaded = load_model(ckpt, name="dsen2cr", kwargs={"width": 8, "num_blocks": 1})
    assert (loaded.name, loaded.source, loaded.weights_path) == ("dsen2cr", "official", ckpt)
    assert loaded.protocol == "dsen2cr" and loaded.weights_sha256 == weights_sha256(ckpt)
    assert _same_weights(loaded.model, source)


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="weights not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty: holds no model weights"):
        load_model(tmp_path / "empty")
    wdir = save_pretrained(_dsen2cr(), tmp_path / "w")
    with pytest.raises(ConfigError, match="'glf_cr' .*does not match the weights .*'dsen2cr'"):
        load_model(wdir, name="glf_cr")
    with pytest.raises(ConfigError, match=r"model arguments \(width\) cannot be given"):
        load_model(wdir, kwargs={"width": 8})
    ckpt = official_dsen2cr_checkpoint(_dsen2cr(), tmp_path / "off.pth")
    with pytest.raises(ConfigError, match="is a checkpoint file: name its architecture"):
        load_model(ckpt)
    with pytest.raises(InputFileError, match="weights do not fit dsen2cr"):
        load_model(ckpt, name="dsen2cr", kwargs={"width": 16, "num_blocks": 1})
    # band set and model width disagree
    rgb = save_pretrained(_dsen2cr(), tmp_path / "rgb", bands="rgb")
    with pytest.raises(InputFileError, match="takes 13 optical channels but the band set has 3"):
        load_model(rgb)


def test_resolve_weights_dir_refuses_files(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(InputFileError, match="is a file.*Lightning checkpoints"):
        resolve_weights_dir(ckpt)


def test_run_layout_paths() -> None:
    """The paths of a run directory (tests/test_train.py checks the trainer writes them)."""
    layout = RunLayout(Path("r"))
    assert layout.config_file == Path("r/config.yaml")
    assert layout.last_checkpoint == Path("r/checkpoints/last.ckpt")
    assert (layout.best_weights, layout.final_weights) == (
        Path("r/weights/best"),
        Path("r/weights/final"),
    )


def test_predict_and_evaluate_use_the_loader(tmp_path: Path) -> None:
    from cloudfree.evaluate import load_model_for_evaluation
    from cloudfree.predict import load_model as predict_load

    source = _dsen2cr(4)
    wdir = save_pretrained(source, tmp_path / "w")
    assert _same_weights(predict_load(wdir).model, source)
    model = load_model_for_evaluation(wdir)
    assert _same_weights(model, source) and model.cloudfree_weights_dir == str(wdir)
    with pytest.raises(ConfigError, match="does not match"):
        predict_load(wdir, name="glf_cr")


# --------------------------------------------------------------------------------- devices
def test_resolve_device() -> None:
    from cloudfree import devices, evaluate, predict

    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert predict.resolve_device is devices.resolve_device  # one implementation
    with pytest.raises(ConfigError, match="invalid device 'gpu0'"):
        devices.resolve_device("gpu0")
    with pytest.raises(ConfigError, match="unsupported device 'meta'"):
        devices.resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            devices.resolve_device("cuda")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            evaluate.evaluate_models([_dsen2cr()], [], device="cuda:1", progress=False)
    else:
        n = torch.cuda.device_count()
        assert devices.resolve_device("cuda", local_rank=n - 1) == torch.device("cuda", n - 1)
        with pytest.raises(ConfigError, match=f"only {n} GPU"):
            devices.resolve_device(f"cuda:{n}")


# ---------------------------------------------------------------------------- reflectance
@pytest.mark.parametrize("protocol", ["glf_cr", "uncrtaints", "dsen2cr", "allclear"])
def test_to_reflectance_numpy_and_torch(protocol: str) -> None:
    dn = np.random.default_rng(0).uniform(-500, 12000, (2, 13, 8, 8)).astype(np.float32)
    x = normalize_optical(dn, protocol).array
    expected = denormalize_optical(x, protocol) / 10000.0
    got = to_reflectance(x, protocol)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)  # the same operations: bit-identical
    t = to_reflectance(torch.from_numpy(x), protocol)
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), expected)
    # clipped to [0, 1]: DN above 10000 are 1, negative DN 0
    assert got.max() == 1.0 and got.min() == 0.0
    np.testing.assert_allclose(got, np.clip(dn, 0, 10000) / 10000, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------- png
def test_save_png_round_trip(tmp_path: Path) -> None:
    from cloudfree.io import save_png
    from cloudfree.predict import quicklook

    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = save_png(rgb, tmp_path / "sub" / "a.png")
    assert path == tmp_path / "sub" / "a.png"
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(np.asarray(Image.open(save_png(grey, tmp_path / "g.png"))), grey)
    img = Image.fromarray(rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(save_png(img, tmp_path / "i.png"))), rgb)
    assert quicklook.save_png is save_png  # the quicklook writes through it
    with pytest.raises(ConfigError, match="must be uint8"):
        save_png(rgb.astype(np.float32), tmp_path / "f.png")
    with pytest.raises(ConfigError, match=r"\[H, W, 3\]"):
        save_png(np.zeros((3, 4, 5), dtype=np.uint8), tmp_path / "c.png")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "g.png", "i.png", "sub"]
