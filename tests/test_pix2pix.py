"""The pix2pix U-Net and the GANs built on it: ``sar_opt_cgan`` (McGAN) and ``sar2opt``.

Parameter counts are checked against a count computed here from the pix2pix layer list
(independently of the module), the value mapping, padding and skip concatenation against
explicit references, dropout placement by module position and by behaviour, the SAR-only
contract (``InputSpec.needs_optical``), the ``sar`` discriminator condition and one
adversarial training step of each model through :func:`cloudfree.train.train` with the
``patchgan`` discriminator, from its shipped recipe.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.models import InputSpec, ModelBatch, create_model, get_model_info, run_model
from cloudfree.models.pix2pix import SAR2OPT, SAROptCGAN, UNetGenerator, dropout_levels
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.train import CloudRemovalModule, build_config, load_recipe, prepare_run, train
from cloudfree.train.config import list_recipes

TINY = dict(ngf=4, num_downs=6)  # 64 px multiple


def hand_count(cin: int, cout: int, num_downs: int = 8, ngf: int = 64, norm: str = "batch") -> int:
    """pix2pix U-Net parameters from its layer list: level j has width ngf * min(2^j, 8);
    down convs 4x4 (C_prev -> w_j), up convs 4x4 (w_j or 2 w_j -> w_{j-1} / C_out); with
    BatchNorm no conv bias except the output conv, a scale and shift per normed channel (down
    norms at levels 1..n-2, up norms at levels 1..n-1); otherwise a bias on every conv."""
    n = num_downs
    w = [ngf * min(2**j, 8) for j in range(n)]
    total = 0
    for j in range(n):
        c_in = cin if j == 0 else w[j - 1]
        total += 16 * c_in * w[j] + (0 if norm == "batch" else w[j])
        if norm == "batch" and 0 < j < n - 1:
            total += 2 * w[j]
        up_in = w[j] if j == n - 1 else 2 * w[j]
        up_out = cout if j == 0 else w[j - 1]
        total += 16 * up_in * up_out + (up_out if norm != "batch" or j == 0 else 0)
        if norm == "batch" and j > 0:
            total += 2 * up_out
    return total


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _inputs(h: int, w: int, b: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 13, h, w, generator=g), torch.rand(b, 2, h, w, generator=g)


# ------------------------------------------------------------------------------ sizes
def test_parameter_counts_equal_the_hand_count() -> None:
    assert hand_count(3, 3) == 54_413_955  # pix2pix's unet_256: "54.414 M"
    with torch.device("meta"):  # no memory, no random draws
        for norm in ("batch", "instance", "none"):
            assert n_params(UNetGenerator(3, 3, norm=norm)) == hand_count(3, 3, norm=norm)
        mcgan, s2o = create_model("sar_opt_cgan"), create_model("sar2opt")
        assert n_params(mcgan) == hand_count(15, 13, norm="instance") == 54_442_381
        assert n_params(s2o) == hand_count(2, 13, norm="instance") == 54_429_069
        bn = create_model("sar_opt_cgan", norm="batch")
        assert n_params(bn) == hand_count(15, 13) == 54_446_733
        small = UNetGenerator(5, 2, num_downs=3, ngf=8)
        assert n_params(small) == hand_count(5, 2, 3, 8, "instance")


def test_layer_layout_of_the_default() -> None:
    with torch.device("meta"):
        unet = create_model("sar_opt_cgan").unet
    downs = [m for m in unet.downs.modules() if isinstance(m, nn.Conv2d)]
    ups = [m for m in unet.ups.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in downs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert downs[0].in_channels == 15
    # ups[j] is level j (0 = outermost): inputs are the concatenations 2 w_j, innermost w_7
    assert [c.in_channels for c in ups] == [128, 256, 512, 1024, 1024, 1024, 1024, 512]
    assert [c.out_channels for c in ups] == [13, 64, 128, 256, 512, 512, 512, 512]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in downs + ups)
    acts = [type(m) for m in unet.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU))]
    assert acts.count(nn.LeakyReLU) == 7 and acts.count(nn.ReLU) == 8
    assert all(m.negative_slope == 0.2 for m in unet.modules() if isinstance(m, nn.LeakyReLU))
    norms = [m for m in unet.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 6 + 7 and not any(m.affine for m in norms)
    assert unet.downs[0][0] is downs[0] and len(unet.downs[0]) == 1  # outermost: conv only
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in unet.downs[7])  # innermost


@pytest.mark.parametrize("size", [(37, 50), (256, 256), (1, 3)])
def test_any_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    for name in ("sar_opt_cgan", "sar2opt"):
        model = create_model(name, ngf=4).eval()  # default num_downs 8: pads to 256
        optical, sar = _inputs(*size, b=2)
        with torch.no_grad():
            pred = run_model(model, optical=optical, sar=sar).pred
        assert pred.shape == (2, 13, *size) and torch.isfinite(pred).all()
        assert float(pred.min()) > 0 and float(pred.max()) < 1  # (tanh + 1) / 2


def test_padding_and_value_mapping_match_an_explicit_reference() -> None:
    """pred = (tanh(U(reflect_pad(2 x - 1))) + 1) / 2 cropped back, with x = cat(opt, sar)."""
    torch.manual_seed(1)
    model = create_model("sar_opt_cgan", **TINY).eval()
    optical, sar = _inputs(37, 50, seed=1)
    x = 2 * torch.cat([optical, sar], 1) - 1
    padded = F.pad(x, (0, 64 - 50, 0, 64 - 37), mode="reflect")
    with torch.no_grad():
        ref = (torch.tanh(model.unet(padded)[..., :37, :50]) + 1) / 2
        torch.testing.assert_close(model(optical, sar), ref, rtol=0, atol=1e-6)
        s2o = create_model("sar2opt", **TINY).eval()
        ref = (torch.tanh(s2o.unet(F.pad(2 * sar - 1, (0, 14, 0, 27), "reflect"))) + 1) / 2
        torch.testing.assert_close(s2o(optical, sar), ref[..., :37, :50], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match=r"H and W multiples of 64 \(2\*\*num_downs\)"):
        model.unet(torch.rand(1, 15, 32, 64))


def test_skip_concatenation_puts_the_encoder_feature_first() -> None:
    torch.manual_seed(2)
    unet = UNetGenerator(3, 2, num_downs=4, ngf=4).eval()
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, inputs: bool = False):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[name] = args[0] if inputs else out

        return hook

    for j in range(4):
        unet.downs[j].register_forward_hook(keep(f"d{j}"))
        unet.ups[j].register_forward_hook(keep(f"u{j}"))
        unet.ups[j].register_forward_hook(keep(f"in{j}", inputs=True))
    with torch.no_grad():
        out = unet(torch.rand(1, 3, 32, 32))
    torch.testing.assert_close(seen["in3"], seen["d3"], rtol=0, atol=0)
    for j in range(3):
        want = torch.cat([seen[f"d{j}"], seen[f"u{j + 1}"]], 1)
        torch.testing.assert_close(seen[f"in{j}"], want, rtol=0, atol=0)
    torch.testing.assert_close(out, seen["u0"], rtol=0, atol=0)
    assert seen["d3"].shape[-2:] == (2, 2)  # 32 / 2**4


# ------------------------------------------------------------------------------ dropout
def _dropout_positions(unet: UNetGenerator) -> list[int]:
    assert not any(isinstance(m, nn.Dropout) for m in unet.downs.modules())
    return [j for j, up in enumerate(unet.ups) if any(isinstance(m, nn.Dropout) for m in up)]


def test_dropout_only_in_the_three_decoder_layers_next_to_the_bottleneck() -> None:
    with torch.device("meta"):
        official = create_model("sar_opt_cgan").unet
        paper = create_model("sar_opt_cgan", dropout_layout="paper").unet
        none = create_model("sar_opt_cgan", dropout=0.0).unet
    # levels 4, 5, 6 = decoder layers 2-4 from the bottleneck (official); 5, 6, 7 = 1-3 (paper)
    assert _dropout_positions(official) == [4, 5, 6] and _dropout_positions(paper) == [5, 6, 7]
    assert _dropout_positions(none) == []
    ps = [m.p for m in official.modules() if isinstance(m, nn.Dropout)]
    assert ps == [0.5, 0.5, 0.5]
    for up in official.ups[4:7]:
        assert isinstance(up[-1], nn.Dropout) and isinstance(up[-2], nn.InstanceNorm2d)
    assert dropout_levels(7) == (4, 5) and dropout_levels(5) == () and dropout_levels(2) == ()
    assert dropout_levels(2, "paper") == (1,) and dropout_levels(1, "paper") == ()


def test_dropout_is_noise_in_training_and_off_in_eval_unless_asked() -> None:
    torch.manual_seed(3)
    kwargs = dict(ngf=4, num_downs=7, dropout_layout="official")  # one dropout layer (level 5)
    model = create_model("sar_opt_cgan", **kwargs)
    optical, sar = _inputs(128, 128, seed=3)
    with torch.no_grad():
        assert not torch.equal(model.train()(optical, sar), model(optical, sar))
        model.eval()
        assert torch.equal(model(optical, sar), model(optical, sar))
        noisy = create_model("sar_opt_cgan", dropout_at_eval=True, **kwargs).eval()
        assert not torch.equal(noisy(optical, sar), noisy(optical, sar))


# ------------------------------------------------------------------------------ inputs
def test_mcgan_output_depends_on_optical_and_sar() -> None:
    torch.manual_seed(4)
    model = create_model("sar_opt_cgan", **TINY).eval()
    optical, sar = _inputs(40, 40, seed=4)
    with torch.no_grad():
        ref = run_model(model, optical=optical, sar=sar).pred
        other_opt = run_model(model, optical=optical.flip(-1), sar=sar).pred
        other_sar = run_model(model, optical=optical, sar=sar.flip(-1)).pred
    assert (ref - other_opt).abs().max() > 1e-4 and (ref - other_sar).abs().max() > 1e-4
    spec = get_model_info("sar_opt_cgan").resolve_spec()
    assert spec.inputs.needs_sar and spec.inputs.needs_optical
    assert spec.inputs.spatial_multiple == 256 and spec.tasks == {"regression", "adversarial"}
    with pytest.raises(ConfigError, match="needs a SAR input"):
        model(optical)


def test_sar2opt_ignores_the_optical_input() -> None:
    torch.manual_seed(5)
    model = create_model("sar2opt", **TINY).eval()
    optical, sar = _inputs(40, 48, seed=5)
    with torch.no_grad():
        ref = run_model(model, optical=optical, sar=sar).pred
        for other in (torch.zeros_like(optical), torch.full_like(optical, float("nan"))):
            assert torch.equal(run_model(model, optical=other, sar=sar).pred, ref)
        assert torch.equal(model(None, sar), ref)
        assert (run_model(model, optical=optical, sar=sar.flip(-2)).pred - ref).abs().max() > 1e-4
    spec = get_model_info("sar2opt").resolve_spec()
    assert spec.inputs.needs_sar and not spec.inputs.needs_optical
    assert spec.out_channels == 13 and spec.describe().startswith("mono-temporal, SAR only;")
    with pytest.raises(ConfigError, match=r"expects optical \[B, 13, H, W\]"):
        run_model(model, optical=optical[:, :3], sar=sar)  # still the band-set reference
    with pytest.raises(ConfigError, match="needs a SAR input"):
        run_model(model, optical=optical)
    with pytest.raises(ConfigError, match="SAR2OPT: this model needs a SAR input"):
        model(optical)
    assert create_model("sar2opt", in_optical=3, **TINY).cloudfree_spec.out_channels == 3


def test_an_input_spec_needs_some_input() -> None:
    assert InputSpec(needs_optical=False).needs_sar
    with pytest.raises(ConfigError, match="needs_optical=False\\) needs SAR"):
        InputSpec(needs_optical=False, needs_sar=False)


# ------------------------------------------------------------------------------ options
def test_residual_and_output_activation() -> None:
    """With the last layer zeroed (v = act(0) = 0): pred = 1/2, or the cloudy input with the
    global residual; the tanh output is bounded, the linear one is not."""
    optical, sar = _inputs(20, 24, seed=6)
    for kwargs, want in (
        ({}, torch.full_like(optical, 0.5)),
        ({"residual": True}, optical),
        ({"output_activation": "none"}, torch.full_like(optical, 0.5)),
    ):
        model = create_model("sar_opt_cgan", **TINY, **kwargs).eval()
        last = model.unet.ups[0][1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        with torch.no_grad():
            torch.testing.assert_close(model(optical, sar), want, rtol=0, atol=0)
    linear = create_model("sar_opt_cgan", **TINY, output_activation="none").eval()
    nn.init.constant_(linear.unet.ups[0][1].bias, 5.0)
    with torch.no_grad():
        assert float(linear(optical, sar).min()) > 1.0  # (v + 1) / 2 with v > 1: unbounded


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_norm_bias_and_init_options() -> None:
    torch.manual_seed(7)
    for norm, norm_type in (("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d)):
        unet = UNetGenerator(15, 13, num_downs=5, ngf=8, norm=norm)
        assert sum(isinstance(m, norm_type) for m in unet.modules()) == 3 + 4
    batch = _convs(UNetGenerator(15, 13, num_downs=5, ngf=8, norm="batch"))
    # official: no bias before a BatchNorm, nor on the outermost down-conv; the output conv has one
    assert [c.bias is not None for c in batch] == [False] * 5 + [True] + [False] * 4
    none = UNetGenerator(15, 13, num_downs=5, ngf=8, norm="none")
    assert all(c.bias is not None for c in _convs(none))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in none.modules())
    weights = torch.cat([c.weight.detach().flatten() for c in _convs(none)])
    assert abs(float(weights.std()) - 0.02) < 0.002 and abs(float(weights.mean())) < 0.001
    assert all(float(c.bias.detach().abs().max()) == 0 for c in _convs(none))
    bn = [m for m in UNetGenerator(3, 3, 5, 8, "batch").modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bn])
    shifts = torch.cat([m.bias.detach() for m in bn])
    assert abs(float(scales.mean()) - 1) < 0.01 and float(shifts.abs().max()) == 0


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("sar_opt_cgan", {"norm": "layer"}, "norm must be one of instance, batch, none"),
        ("sar_opt_cgan", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ("sar_opt_cgan", {"dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
        ("sar_opt_cgan", {"dropout": "half"}, r"dropout must be a number"),
        ("sar_opt_cgan", {"dropout_layout": "middle"}, "dropout_layout must be one of official"),
        ("sar_opt_cgan", {"output_activation": "sigmoid"}, "output_activation must be one of"),
        ("sar_opt_cgan", {"num_downs": 0}, "num_downs must be an integer >= 1"),
        ("sar_opt_cgan", {"ngf": 2.5}, "ngf must be an integer >= 1"),
        ("sar_opt_cgan", {"residual": "yes"}, "residual must be true or false"),
        ("sar_opt_cgan", {"in_optical": 0}, "in_optical must be an integer >= 1"),
        ("sar2opt", {"in_sar": 0}, "in_sar must be an integer >= 1"),
        ("sar2opt", {"residual": True}, "bad arguments for model 'sar2opt'"),
    ],
)
def test_bad_options(name: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model(name, **{**TINY, **kwargs})


def test_classes_and_registry() -> None:
    for name, cls in (("sar_opt_cgan", SAROptCGAN), ("sar2opt", SAR2OPT)):
        info = get_model_info(name)
        assert info.model_class is cls and info.default_recipe == name in list_recipes()
        assert (info.protocol, info.bands) == ("glf_cr", "all")
    no_sar = create_model("sar_opt_cgan", in_sar=0, **TINY).eval()
    optical, _ = _inputs(16, 16)
    assert not no_sar.cloudfree_spec.inputs.needs_sar
    assert run_model(no_sar, optical=optical).pred.shape == optical.shape


# ------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pix2pix_data") / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=4, size=32, seed=0)
    return root


def _recipe_config(name: str, data_root: Path, out: Path | None, **overrides: Any) -> Any:
    """The shipped recipe shrunk to one CPU step on the 32 px synthetic patches (tiny U-Net,
    a two-layer PatchGAN of width 4)."""
    settings: dict[str, Any] = {
        "model.kwargs": {"ngf": 4, "num_downs": 5},
        "adversarial.discriminator_kwargs": {"width": 4, "num_layers": 2, "norm": "instance"},
        "data.num_workers": 0,
        "data.limit_train": 2,
        "data.limit_val": 1,
        "trainer.max_steps": 1,
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 1,
        "trainer.num_sanity_val_steps": 0,
        "trainer.enable_progress_bar": False,
        "trainer.checkpoint_every_n_steps": None,
        **overrides,
    }
    return build_config(load_recipe(name), settings, data_root=data_root, out=out)


@pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")
@pytest.mark.parametrize(("name", "d_channels"), [("sar_opt_cgan", 13 + 2 + 13), ("sar2opt", 15)])
def test_one_adversarial_step_from_the_recipe(
    name: str, d_channels: int, data_root: Path, tmp_path: Path
) -> None:
    cfg = _recipe_config(name, data_root, tmp_path / "run")
    prepared = prepare_run(cfg)
    start = CloudRemovalModule(prepared.config, model=prepared.model)
    g0 = {k: v.clone() for k, v in start.model.state_dict().items()}
    plan = start.task_plan
    assert plan.adversarial is not None and plan.adversarial.gan_loss == "bce"
    assert plan.adversarial.weight == 0.01 and plan.discriminator_channels == d_channels
    assert start.discriminator.in_channels == d_channels
    result = train(prepared=prepared)
    assert result.global_step == 1
    g1 = load_file(str(result.final_weights / "model.safetensors"))
    assert g1.keys() == g0.keys()
    changed = [k for k in g0 if not torch.equal(g0[k], g1[k])]
    assert len(changed) > len(g0) // 2  # the generator took its step
    with open(result.run_dir / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    assert len(rows) == 1
    r = rows[0]
    total = float(r["train/loss_reconstruction"]) + 0.01 * float(r["train/loss_adversarial"])
    assert float(r["train/loss"]) == pytest.approx(total, rel=1e-6)
    assert float(r["train/loss_discriminator"]) > 0


def test_sar_condition(data_root: Path) -> None:
    cfg = _recipe_config("sar2opt", data_root, None)
    torch.manual_seed(0)
    module = CloudRemovalModule(cfg)
    g = torch.Generator().manual_seed(0)
    valid = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    valid[0, 0, :3, :5] = False
    batch = {
        "optical": torch.rand(2, 13, 16, 16, generator=g),
        "sar": torch.rand(2, 2, 16, 16, generator=g),
        "target": torch.rand(2, 13, 16, 16, generator=g),
        "valid_mask": valid,
    }
    real, fake, condition = module.discriminator_inputs(batch, batch["optical"])
    assert condition is not None and condition.shape == (2, 2, 16, 16)
    assert torch.equal(condition[1], batch["sar"][1])
    assert bool((condition[0, :, :3, :5] == 0).all()) and torch.equal(
        condition[0, :, 3:], batch["sar"][0, :, 3:]
    )
    no_sar = _recipe_config(
        "sar_opt_cgan",
        data_root,
        None,
        **{"model.kwargs": {"ngf": 4, "num_downs": 5, "in_sar": 0}, "adversarial.condition": "sar"},
    )
    with pytest.raises(ConfigError, match="'sar' needs a model that uses SAR; model 'sar_opt"):
        prepare_run(no_sar)
    with pytest.raises(ConfigError, match="adversarial.condition"):
        _recipe_config("sar2opt", data_root, None, **{"adversarial.condition": "radar"})
    optical = _recipe_config("sar2opt", data_root, None, **{"adversarial.condition": "optical"})
    assert CloudRemovalModule(optical).task_plan.discriminator_channels == 13 + 13


def test_batch_from_sample_reaches_sar2opt() -> None:
    """A collated sample (with its optical entry) runs through the SAR-only model."""
    model = create_model("sar2opt", **TINY).eval()
    optical, sar = _inputs(24, 24)
    with torch.no_grad():
        out = run_model(model, ModelBatch.from_sample({"optical": optical, "sar": sar}))
    assert out.pred.shape == (1, 13, 24, 24)
