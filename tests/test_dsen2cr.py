"""DSen2-CR (Meraner et al., ISPRS J. 2020): parity with the official PyTorch port and contract."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cloudfree.errors import ConfigError
from cloudfree.models import create_model, load_official_checkpoint
from cloudfree.models.dsen2cr import DSen2CR, convert_official_dsen2cr
from cloudfree.normalization import normalize_optical

FULL_SIZE_PARAMS = 18_947_341


def _small(**kwargs: object) -> DSen2CR:
    torch.manual_seed(0)
    return DSen2CR(**{"width": 8, "num_blocks": 2, **kwargs})  # type: ignore[arg-type]


def _inputs(batch: int = 2, h: int = 16, w: int = 16, in_sar: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    optical = torch.rand(batch, 13, h, w, generator=g) * 5.0
    sar = torch.rand(batch, in_sar, h, w, generator=g) * 2.0
    return optical, sar


def _to_official(state: dict[str, torch.Tensor], num_blocks: int) -> dict[str, torch.Tensor]:
    """Our names back to the port's ``model.N.*`` layout (test helper, the converter's inverse)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "head":
            out[f"model.0.{parts[1]}"] = value
        elif parts[0] == "tail":
            out[f"model.{num_blocks + 2}.{parts[1]}"] = value
        else:
            conv = {"conv1": 0, "conv2": 2}[parts[2]]
            out[f"model.{int(parts[1]) + 2}.conv_block.{conv}.{parts[3]}"] = value
    return out


# --------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def case_dir(shared_path: Callable[[str], Path]) -> Path:
    return shared_path("parity/dsen2cr/case.json").parent


def test_parity_with_official_port(case_dir: Path) -> None:
    case = json.loads((case_dir / "case.json").read_text())
    io = load_file(str(case_dir / "io.safetensors"))
    official = torch.load(case_dir / case["checkpoint"], map_location="cpu", weights_only=True)

    model = DSen2CR(**case["kwargs"])
    model.load_state_dict(convert_official_dsen2cr(official), strict=True)
    model.eval()
    with torch.no_grad():
        pred = model(optical=io["input.cloudy"], sar=io["input.sar"])
    torch.testing.assert_close(pred, io["output.pred"], **case["tolerance"])


def test_parity_through_official_loader(case_dir: Path) -> None:
    from cloudfree.models import load_official_checkpoint

    case = json.loads((case_dir / "case.json").read_text())
    io = load_file(str(case_dir / "io.safetensors"))
    model = load_official_checkpoint("dsen2cr", case_dir / case["checkpoint"], **case["kwargs"])
    assert not model.training
    with torch.no_grad():
        pred = model(optical=io["input.cloudy"], sar=io["input.sar"])
    torch.testing.assert_close(pred, io["output.pred"], **case["tolerance"])


def test_converter_covers_full_size_official_keys(case_dir: Path) -> None:
    keys_full = json.loads((case_dir / "keys_full.json").read_text())
    official = {k: torch.empty(shape, device="meta") for k, shape in keys_full.items()}
    converted = convert_official_dsen2cr(official)
    assert len(converted) == len(official)
    with torch.device("meta"):
        ours = DSen2CR().state_dict()
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in ours.items()
    }


# --------------------------------------------------------------------------- size and layout


def test_full_size_parameter_count() -> None:
    with torch.device("meta"):
        model = create_model("dsen2cr")
    assert sum(p.numel() for p in model.parameters()) == FULL_SIZE_PARAMS
    assert model.head.in_channels == 15 and model.head.out_channels == 256
    assert len(model.blocks) == 16 and model.tail.out_channels == 13


def test_state_dict_has_no_buffers_or_size_tied_entries() -> None:
    model = _small()
    assert list(model.buffers()) == []
    assert all(v.ndim in (1, 4) for v in model.state_dict().values())


@pytest.mark.parametrize("num_blocks", [0, 1, 3])
def test_converter_round_trip(num_blocks: int) -> None:
    model = _small(num_blocks=num_blocks)
    state = model.state_dict()
    converted = convert_official_dsen2cr(_to_official(state, num_blocks))
    assert converted.keys() == state.keys()
    assert all(converted[k] is state[k] for k in state)
    DSen2CR(width=8, num_blocks=num_blocks).load_state_dict(converted, strict=True)


@pytest.mark.parametrize(
    "extra_key",
    [
        "model.1.weight",  # the ReLU has no parameters
        "model.2.conv_block.1.weight",  # the ReLU inside a block
        "model.2.conv_block.3.weight",  # a dropout-shifted conv (dropout is off in the port)
        "model.0.running_mean",
        "model.0.conv_block.0.weight",  # the head is a plain conv
        "netResNet.model.0.weight",
        "head.weight",
    ],
)
def test_converter_rejects_unknown_keys(extra_key: str) -> None:
    official = _to_official(_small().state_dict(), num_blocks=2)
    official[extra_key] = torch.zeros(1)
    with pytest.raises(ConfigError, match="unrecognised key"):
        convert_official_dsen2cr(official)


def test_converter_rejects_gaps_and_missing_tail() -> None:
    official = _to_official(_small(num_blocks=3).state_dict(), num_blocks=3)
    gap = {k: v for k, v in official.items() if not k.startswith("model.3.")}
    with pytest.raises(ConfigError, match="residual blocks"):
        convert_official_dsen2cr(gap)
    no_tail = {k: v for k, v in official.items() if not k.startswith("model.5.")}
    with pytest.raises(ConfigError):
        convert_official_dsen2cr(no_tail)


# --------------------------------------------------------------------------- behaviour


def _reference_forward(
    model: DSen2CR, optical: torch.Tensor, sar: torch.Tensor | None
) -> torch.Tensor:
    """Plain functional re-statement of the architecture, independent of the module's code."""
    s = model.state_dict()
    x = optical if sar is None else torch.cat([optical, sar], dim=1)
    x = torch.relu(F.conv2d(x, s["head.weight"], s["head.bias"], padding=1))
    for i in range(model.num_blocks):
        r = F.conv2d(x, s[f"blocks.{i}.conv1.weight"], s[f"blocks.{i}.conv1.bias"], padding=1)
        r = F.conv2d(
            torch.relu(r), s[f"blocks.{i}.conv2.weight"], s[f"blocks.{i}.conv2.bias"], 1, 1
        )
        x = x + model.res_scale * r
    return optical + F.conv2d(x, s["tail.weight"], s["tail.bias"], padding=1)


@pytest.mark.parametrize("in_sar,res_scale", [(2, 0.1), (3, 0.5), (0, 0.1)])
def test_matches_functional_reference(in_sar: int, res_scale: float) -> None:
    model = _small(in_sar=in_sar, res_scale=res_scale, num_blocks=3).eval()
    with torch.no_grad():  # non-zero biases so that they are exercised too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    optical, sar = _inputs(in_sar=in_sar)
    sar_in = sar if in_sar else None
    with torch.no_grad():
        torch.testing.assert_close(
            model(optical=optical, sar=sar_in), _reference_forward(model, optical, sar_in)
        )


def test_odd_sizes() -> None:
    model = _small().eval()
    for h, w in [(50, 70), (1, 1), (7, 33)]:
        optical, sar = _inputs(batch=1, h=h, w=w)
        with torch.no_grad():
            out = model(optical=optical, sar=sar)
        assert out.shape == (1, 13, h, w)
        assert torch.isfinite(out).all()


def test_long_skip_returns_optical_input_when_tail_is_zero() -> None:
    model = _small().eval()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        optical, sar = _inputs(h=12, w=9)
        assert torch.equal(model(optical=optical, sar=sar), optical)


def test_sar_changes_the_output() -> None:
    model = _small().eval()
    optical, sar = _inputs()
    with torch.no_grad():
        assert not torch.allclose(
            model(optical=optical, sar=sar), model(optical=optical, sar=0 * sar)
        )


def test_every_parameter_gets_a_gradient_in_train_mode() -> None:
    model = _small().train()
    optical, sar = _inputs()
    model(optical=optical, sar=sar).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_eval_is_deterministic() -> None:
    model = _small().eval()
    optical, sar = _inputs()
    with torch.no_grad():
        assert torch.equal(model(optical=optical, sar=sar), model(optical=optical, sar=sar))


def test_float64_and_inputs_untouched() -> None:
    model = _small().double().eval()
    optical, sar = (t.double() for t in _inputs())
    before = optical.clone()
    with torch.no_grad():
        out = model(optical=optical, sar=sar)
    assert out.dtype == torch.float64
    assert torch.equal(optical, before)


def test_he_uniform_init_and_zero_biases() -> None:
    torch.manual_seed(0)
    model = DSen2CR(width=64, num_blocks=1)
    for name, conv in [
        ("head", model.head),
        ("conv1", model.blocks[0].conv1),
        ("tail", model.tail),
    ]:
        fan_in = conv.in_channels * 9
        bound = math.sqrt(6.0 / fan_in)  # Keras he_uniform == kaiming_uniform_(fan_in, relu)
        w = conv.weight
        assert w.abs().max() <= bound, name
        assert w.abs().max() > 0.95 * bound, name
        assert abs(w.std().item() - bound / math.sqrt(3.0)) < 0.05 * bound, name
        assert torch.count_nonzero(conv.bias) == 0, name


# --------------------------------------------------------------------------- variants and errors


def test_no_sar_variant_ignores_sar() -> None:
    torch.manual_seed(0)
    model = create_model("dsen2cr_no_sar", width=8, num_blocks=1).eval()
    assert model.head.in_channels == 13
    optical, sar = _inputs()
    with torch.no_grad():
        out = model(optical=optical, sar=sar)
        assert torch.equal(out, model(optical=optical, sar=None))
    assert out.shape == optical.shape


def test_registry_loads_the_official_layout_and_scales_dn_by_2000(tmp_path) -> None:
    """What the registry entries do (not what they say): ``load_official_checkpoint`` reads the
    port's ``model.N.*`` layout through the registered converter into a model that computes
    exactly what the source does, and the recorded protocol scales DN by 1/2000 (the paper's
    input scaling, clipped at 10000 DN), for the optical-only ablation too, which has no
    official checkpoint to convert."""
    source = create_model("dsen2cr", width=8, num_blocks=1).eval()
    path = tmp_path / "official.pth"
    torch.save({"model_state_dict": _to_official(source.state_dict(), 1)}, path)
    loaded = load_official_checkpoint("dsen2cr", path, width=8, num_blocks=1).eval()
    assert isinstance(loaded, DSen2CR)
    optical, sar = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(optical, sar), source(optical, sar), rtol=0, atol=0)
    dn = np.array([[[0, 1000, 2000, 15000]]], dtype=np.uint16)
    no_sar = create_model("dsen2cr_no_sar", width=8, num_blocks=1)
    for model in (loaded, no_sar):
        scaled = normalize_optical(dn, model.cloudfree_config["protocol"]).array
        np.testing.assert_allclose(scaled[0, 0], [0.0, 0.5, 1.0, 5.0])
    with pytest.raises(ConfigError, match="'dsen2cr_no_sar' has no converter"):
        load_official_checkpoint("dsen2cr_no_sar", path, width=8, num_blocks=1)


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 0}, {"num_blocks": -1}, {"in_optical": 0}, {"in_sar": 1.5}, {"res_scale": math.nan}],
)
def test_bad_kwargs_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DSen2CR(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise_config_error() -> None:
    model = _small()
    optical, sar = _inputs()
    with pytest.raises(ConfigError, match="SAR"):
        model(optical=optical, sar=None)
    with pytest.raises(ConfigError, match="sar"):
        model(optical=optical, sar=sar[:, :1])
    with pytest.raises(ConfigError, match="optical"):
        model(optical=optical[:, :12], sar=sar)
    with pytest.raises(ConfigError, match="spatial"):
        model(optical=optical, sar=sar[..., :8])
