"""One test base every registered model passes (the segmentation_models_pytorch idea).

Each registered name needs an entry in ``SMALL_KWARGS`` (small widths keep the suite fast); a
newly registered model without one fails ``test_every_model_has_small_test_kwargs``.
"""

from __future__ import annotations

import fnmatch
import json

import pytest
import torch

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models import (
    create_model,
    get_model_info,
    list_models,
    load_pretrained,
    save_pretrained,
)

#: shell pattern -> kwargs for a small, fast instance of the model
SMALL_KWARGS: dict[str, dict] = {
    "glf_cr*": dict(width=16, num_blocks=2, layers_per_block=2, growth=8),
    "carf": dict(width=16, num_blocks=2, layers_per_block=2, growth=8),
    "dsen2cr*": dict(width=16, num_blocks=2),
}

MODELS = list_models()


def small_kwargs(name: str) -> dict:
    for pattern, kwargs in SMALL_KWARGS.items():
        if fnmatch.fnmatch(name, pattern):
            return dict(kwargs)
    raise KeyError(name)


def inputs(name: str, h: int, w: int, batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = create_model(name, **small_kwargs(name))
    n_opt = model.cloudfree_config["kwargs"].get("in_optical", 13)
    n_sar = model.cloudfree_config["kwargs"].get("in_sar", 2) or 2
    optical = torch.rand(batch, n_opt, h, w, generator=g)
    sar = torch.rand(batch, n_sar, h, w, generator=g)
    return model, optical, sar


def test_registry_is_not_empty():
    for required in ("glf_cr", "carf", "dsen2cr"):
        assert required in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_every_model_has_small_test_kwargs(name):
    small_kwargs(name)


@pytest.mark.parametrize("name", MODELS)
def test_info_names_protocol_and_bands(name):
    from cloudfree.bands import get_band_set
    from cloudfree.normalization import get_protocol

    info = get_model_info(name)
    get_protocol(info.protocol)
    get_band_set(info.bands)
    assert info.paper


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("size", [(50, 70), (17, 33)])
def test_any_input_size(name, size):
    torch.manual_seed(0)
    model, optical, sar = inputs(name, *size)
    with torch.no_grad():
        out = model.eval()(optical=optical, sar=sar)
    assert out.shape == optical.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_no_size_tied_state(name):
    model, optical, sar = inputs(name, 32, 48)
    keys_before = dict((k, tuple(v.shape)) for k, v in model.state_dict().items())
    with torch.no_grad():
        model.eval()(optical=optical, sar=sar)
        model(optical=optical[..., :24, :40], sar=sar[..., :24, :40])
    keys_after = dict((k, tuple(v.shape)) for k, v in model.state_dict().items())
    assert keys_before == keys_after
    assert not [k for k in keys_after if "attn_mask" in k or "relative_position_index" in k]


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model, optical, sar = inputs(name, 32, 32)
    model.eval()
    save_pretrained(model, tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["name"] == name and cfg["protocol"] == get_model_info(name).protocol
    loaded = load_pretrained(tmp_path / name)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(optical=optical, sar=sar), model(optical=optical, sar=sar), rtol=0, atol=0
        )


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(2)
    model, optical, sar = inputs(name, 32, 32, batch=2)
    model.train()
    out = model(optical=optical, sar=sar)
    (out - optical).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:10]}"


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic(name):
    model, optical, sar = inputs(name, 32, 32)
    model.eval()
    with torch.no_grad():
        a = model(optical=optical, sar=sar)
        b = model(optical=optical, sar=sar)
    assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", MODELS)
def test_cuda_matches_cpu(name):
    model, optical, sar = inputs(name, 32, 48)
    model.eval()
    with torch.no_grad():
        cpu = model(optical=optical, sar=sar)
        gpu = model.cuda()(optical=optical.cuda(), sar=sar.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------- registry errors
def test_unknown_model_and_bad_kwargs():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*glf_cr"):
        create_model("nope")
    with pytest.raises(ConfigError, match="bad arguments for model 'dsen2cr'"):
        create_model("dsen2cr", not_an_argument=3)
    assert list_models("glf_cr*") and all(n.startswith("glf_cr") for n in list_models("glf_cr*"))


def test_save_pretrained_needs_a_registry_model(tmp_path):
    with pytest.raises(ConfigError, match="create_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path)


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"config\.json: file not found"):
        load_pretrained(tmp_path / "empty")
    # weights of one configuration under the config of another
    a = create_model("dsen2cr", width=8, num_blocks=1)
    save_pretrained(a, tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["kwargs"]["width"] = 16
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputFileError, match="do not fit model 'dsen2cr'"):
        load_pretrained(tmp_path / "a")


def test_load_pretrained_keeps_the_saved_data_conventions(tmp_path):
    model = create_model("dsen2cr", width=8, num_blocks=1)
    model.cloudfree_config["bands"] = "rgb"  # e.g. trained on a band subset
    model.cloudfree_config["protocol"] = "uncrtaints"
    save_pretrained(model, tmp_path / "w")
    loaded = load_pretrained(tmp_path / "w")
    assert loaded.cloudfree_config["bands"] == "rgb"
    assert loaded.cloudfree_config["protocol"] == "uncrtaints"
