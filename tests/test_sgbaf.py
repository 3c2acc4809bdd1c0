"""SG-BAF (paper 003): shapes at any size, the SG-BAFM gate and Transformer against direct
computations, DFIN's two orders, the Table 2 variants, options and their errors, the
sgbaf_spring split, the recipe and the exponential scheduler."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cloudfree.data.splits import (
    PAPER_SPLITS,
    load_mmcanet_splits,
    load_paper_splits,
    load_sen12mscr_splits,
    paper_split_version,
    parse_roi_id,
)
from cloudfree.errors import ConfigError
from cloudfree.models import create_model, get_model_info, run_model, spec_of
from cloudfree.models.sgbaf import (
    DFIN,
    SGBAF,
    GuidedTransformerLayer,
    PyramidUNet,
    SARGate,
    sincos_2d,
)
from cloudfree.train.config import SchedulerConfig, build_config, load_recipe, resolve_config
from cloudfree.train.module import scheduler_from_section

TINY = dict(
    width=4,
    directed_width=8,
    basic_kernels=(3,),
    directed_depth=1,
    embed_dim=16,
    transformer_depth=1,
    num_heads=2,
    mlp_ratio=2.0,
)
VARIANTS = {
    "sgbaf": (True, True),
    "sgbaf_sgbafm": (True, False),
    "sgbaf_dfin": (False, True),
    "sgbaf_base": (False, False),
}
SPRING = "ROIs1158_spring"


def _inputs(h: int, w: int, batch: int = 1, optical: int = 13, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, optical, h, w, generator=g), torch.rand(batch, 2, h, w, generator=g)


def _tiny(name: str = "sgbaf", seed: int = 0, **kwargs) -> SGBAF:
    torch.manual_seed(seed)
    return create_model(name, **{**TINY, **kwargs}).eval()


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("size", [(37, 50), (64, 64), (5, 3)])
def test_any_size_keeps_the_input_shape(name: str, size: tuple[int, int]) -> None:
    model = _tiny(name)
    optical, sar = _inputs(*size, batch=2)
    with torch.no_grad():
        out = model(optical, sar)
    assert out.shape == optical.shape and torch.isfinite(out).all()


def test_a_256_forward_of_a_tiny_instance_and_its_16x16_token_grid() -> None:
    model = _tiny()
    grids = []
    hook = model.fusion.transformer.embed_guide.register_forward_hook(
        lambda m, i, o: grids.append(tuple(o.shape[-2:]))
    )
    optical, sar = _inputs(256, 256)
    with torch.no_grad():
        out = run_model(model, optical=optical, sar=sar).pred
    hook.remove()
    assert out.shape == (1, 13, 256, 256)
    assert grids == [(16, 16)]  # the paper's 16-pixel patches of the 256-pixel image
    assert model.token_grid(256, 256) == (16, 16)
    # other sizes: patches stay 16 input pixels, the input is padded to a multiple of 16
    assert model.token_grid(37, 50) == (3, 4) and model.padded_size(37, 50) == (48, 64)
    assert model.fusion.transformer.patch == 8  # 16 / downsample 2 feature pixels
    assert _tiny(downsample=4).fusion.transformer.patch == 4
    assert spec_of(model).inputs.spatial_multiple == 16


def test_group_norm_and_a_wide_kernel_on_a_tiny_input() -> None:
    model = _tiny(norm="group", basic_kernels=(3, 33))
    assert model.padded_size(5, 3) == (32, 32)  # reflect padding of 16 needs more than 16 px
    optical, sar = _inputs(5, 3, batch=2)
    with torch.no_grad():
        assert model(optical, sar).shape == optical.shape


def test_rgb_option() -> None:
    model = _tiny(in_optical=3)
    spec = spec_of(model)
    assert spec.inputs.optical_channels == 3 and spec.out_channels == 3
    optical, sar = _inputs(20, 24, optical=3)
    with torch.no_grad():
        assert model(optical, sar).shape == optical.shape


# ----------------------------------------------------------------------------- variants
def test_variants_module_structure() -> None:
    params = {}
    for name, (sgbafm, dfin) in VARIANTS.items():
        model = _tiny(name)
        assert (model.sgbafm_enabled, model.dfin_enabled) == (sgbafm, dfin)
        assert get_model_info(name).default_recipe == "sgbaf"
        names = [n for n, _ in model.named_parameters()]
        params[name] = names
        has_gate = any(n.startswith("fusion.gate.") for n in names)
        has_transformer = any(n.startswith("fusion.transformer.") for n in names)
        has_dfin = any(n.startswith(("dfin_basic.", "dfin_directed.")) for n in names)
        assert has_gate == has_transformer == sgbafm and has_dfin == dfin
        # the output MBConv sees concat(max, F_b, F_fused) (3C) or concat(F_b, F_fused) (2C)
        assert model.out_conv.in_channels == (3 if dfin else 2) * TINY["width"]
        if not sgbafm:  # SG-BAFM replaced by concat + 1x1 conv
            assert [n for n in names if n.startswith("fusion.")] == [
                "fusion.conv.weight",
                "fusion.conv.bias",
            ]
            assert model.fusion.conv.weight.shape == (8, 16, 1, 1)
    base = set(params["sgbaf_base"])
    assert base < set(params["sgbaf_dfin"]) and not base < set(params["sgbaf_sgbafm"])


def test_the_switches_change_the_output() -> None:
    optical, sar = _inputs(32, 32)
    with torch.no_grad():
        outs = {name: _tiny(name)(optical, sar) for name in VARIANTS}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(outs[a], outs[b], atol=1e-4), (a, b)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_sar_reaches_the_output(name: str) -> None:
    model = _tiny(name)
    optical, sar = _inputs(32, 40)
    with torch.no_grad():
        a = model(optical, sar)
        b = model(optical, sar.flip(-1))
    assert (a - b).abs().max() > 1e-4


def test_global_residual_adds_the_optical_input() -> None:
    model = _tiny()
    plain = _tiny(global_residual=False)
    plain.load_state_dict(model.state_dict())
    optical, sar = _inputs(24, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(optical, sar), plain(optical, sar) + optical)


# ----------------------------------------------------------------------------- SG-BAFM
@pytest.mark.parametrize("combine", ["concat", "add"])
@pytest.mark.parametrize("maps", ["channel", "spatial"])
def test_gate_against_its_formula(combine: str, maps: str) -> None:
    torch.manual_seed(0)
    gate = SARGate(6, combine=combine, kernel=3, maps=maps)
    cin = 12 if combine == "concat" else 6
    assert gate.fuse.weight.shape == (6 if maps == "channel" else 1, cin, 3, 3)
    f_opt, f_sar = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    a = F.conv2d(f_opt, gate.proj_opt.weight, gate.proj_opt.bias)
    b = F.conv2d(f_sar, gate.proj_sar.weight, gate.proj_sar.bias)
    x = torch.cat([a, b], 1) if combine == "concat" else a + b
    att = torch.sigmoid(F.conv2d(x, gate.fuse.weight, gate.fuse.bias, padding=1))
    with torch.no_grad():
        torch.testing.assert_close(gate(f_opt, f_sar), f_sar * att)


def test_model_gate_combine_shapes() -> None:
    concat = _tiny(gate_combine="concat").fusion.gate.fuse.weight
    add = _tiny(gate_combine="add").fusion.gate.fuse.weight
    assert concat.shape == (8, 16, 1, 1) and add.shape == (8, 8, 1, 1)
    assert _tiny(gate_maps="spatial", gate_kernel=3).fusion.gate.fuse.weight.shape == (1, 16, 3, 3)


def test_guided_attention_takes_queries_and_keys_from_sar_values_from_optical() -> None:
    torch.manual_seed(0)
    layer = GuidedTransformerLayer(8, 2, mlp_ratio=2.0).eval()
    guide, value = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    q, k, v = layer.q(guide), layer.k(guide), layer.v(value)
    outs = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(4), dim=-1)
        outs.append(w @ v[..., sl])
    ref = layer.proj(torch.cat(outs, dim=-1))
    with torch.no_grad():
        torch.testing.assert_close(layer.attend(guide, value), ref, rtol=1e-5, atol=1e-6)
        # pre-norm layer: x + Attn(n(s), n(x)), then + MLP(n(x))
        x = value + layer.attend(layer.norm_guide(guide), layer.norm_value(value))
        x = x + layer.mlp(layer.norm_mlp(x))
        torch.testing.assert_close(layer(value, guide), x)
    post = GuidedTransformerLayer(8, 2, mlp_ratio=2.0, norm="post").eval()
    post.load_state_dict(layer.state_dict())
    with torch.no_grad():
        assert not torch.allclose(post(value, guide), layer(value, guide))


def test_sincos_encoding_values() -> None:
    pe = sincos_2d(3, 4, 8)  # quarter = 2: omega = (1, 1 / 100)
    assert pe.shape == (12, 8)
    r, c = 2, 3
    row = pe[r * 4 + c]
    expected = [
        math.sin(r),
        math.sin(r / 100),
        math.cos(r),
        math.cos(r / 100),
        math.sin(c),
        math.sin(c / 100),
        math.cos(c),
        math.cos(c / 100),
    ]
    torch.testing.assert_close(row, torch.tensor(expected))
    with pytest.raises(ConfigError, match="multiple of 4"):
        sincos_2d(2, 2, 6)


@pytest.mark.parametrize("pos", ["sincos", "learned", "none"])
def test_positional_encodings_run_and_differ(pos: str) -> None:
    model = _tiny(pos_encoding=pos)
    assert (model.fusion.transformer.pos is not None) == (pos == "learned")
    optical, sar = _inputs(48, 32)  # a 3 x 2 grid: the learned 16 x 16 table is resized
    with torch.no_grad():
        out = model(optical, sar)
    ref = _tiny(pos_encoding="none")
    ref.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        same = torch.allclose(out, ref(optical, sar))
    assert same == (pos == "none")


def test_sgbafm_skip_adds_the_optical_features() -> None:
    model = _tiny()
    fusion = model.fusion
    f_opt, f_sar = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        with_skip = fusion(f_opt, f_sar)
        fusion.skip = False
        torch.testing.assert_close(with_skip, fusion(f_opt, f_sar) + f_opt)


# ----------------------------------------------------------------------------- DFIN
def test_dfin_orders_against_their_formulas() -> None:
    torch.manual_seed(0)
    par = DFIN(4, order="parallel").eval()
    seq = DFIN(4, order="sequential").eval()
    seq.load_state_dict(par.state_dict())
    x = torch.randn(2, 4, 8, 12)
    with torch.no_grad():
        p = par.pyramid(x)
        torch.testing.assert_close(par(x), par.fuse(torch.cat([par.attention(x), p, x], 1)))
        torch.testing.assert_close(seq(x), par.fuse(torch.cat([par.attention(p), p, x], 1)))
        assert not torch.allclose(par(x), seq(x))
    # the channel attention is a squeeze-excitation gate in (0, 1) per channel
    gate = par.attention(torch.ones(1, 4, 3, 3))[0, :, 0, 0]
    assert ((gate > 0) & (gate < 1)).all()


def test_dfin_order_changes_the_model_output() -> None:
    model = _tiny()
    seq = _tiny(dfin_order="sequential")
    seq.load_state_dict(model.state_dict())
    optical, sar = _inputs(32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(optical, sar), seq(optical, sar), atol=1e-5)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_pyramid_unet_levels(levels: int) -> None:
    net = PyramidUNet(4, levels)
    assert len(net.down) == levels and len(net.up) == levels - 1
    assert net.down[-1][0].out_channels == 4 * 2 ** (levels - 1)
    x = torch.randn(1, 4, 8, 12)
    assert net(x).shape == x.shape
    assert _tiny(pyramid_levels=3).multiple == 16 and _tiny(pyramid_levels=6).multiple == 32


def test_upsample_options() -> None:
    optical, sar = _inputs(16, 32)
    for mode in ("bilinear", "pixelshuffle"):
        model = _tiny(upsample=mode)
        f_b, f_fused = model.branches(optical, sar)
        assert f_b.shape == f_fused.shape == (1, 4, 16, 32)
    assert isinstance(_tiny(upsample="pixelshuffle").upsample[1], torch.nn.PixelShuffle)


# ----------------------------------------------------------------------------- sizes
def test_default_parameter_counts() -> None:
    counts = {name: sum(p.numel() for p in create_model(name).parameters()) for name in VARIANTS}
    assert counts == {
        "sgbaf": 5_124_813,
        "sgbaf_sgbafm": 4_867_565,
        "sgbaf_dfin": 384_973,
        "sgbaf_base": 127_725,
    }


def test_multiply_accumulates_at_256_of_the_base_variant() -> None:
    torch.manual_seed(0)
    model = create_model("sgbaf_base").eval()
    optical, sar = _inputs(256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(optical, sar)
    assert round(counter.get_total_flops() / 2 / 1e9, 2) == 4.66


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_sar": 0}, "in_sar"),
        ({"width": 0}, "width"),
        ({"downsample": 3}, "power of 2"),
        ({"downsample": 1}, "downsample"),
        ({"patch_pixels": 10, "downsample": 4}, "multiple of downsample"),
        ({"gate_combine": "sum"}, "gate_combine"),
        ({"gate_maps": "pixel"}, "gate_maps"),
        ({"gate_kernel": 2}, "gate_kernel"),
        ({"dfin_order": "serial"}, "dfin_order"),
        ({"upsample": "nearest"}, "upsample"),
        ({"pos_encoding": "rope"}, "pos_encoding"),
        ({"transformer_norm": "sandwich"}, "transformer_norm"),
        ({"embed_dim": 18, "num_heads": 4}, "divisible"),
        ({"embed_dim": 18, "num_heads": 2}, "sincos"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"basic_kernels": (3, 4)}, "basic_kernels"),
        ({"basic_kernels": ()}, "basic_kernels"),
        ({"norm": "none"}, "norm"),
        ({"norm": "group", "width": 6}, "divisible by 4"),
        ({"expansion": -1}, "expansion"),
        ({"fusion_depth": 0}, "fusion_depth"),
        ({"attention_reduction": 8}, "attention_reduction"),
        ({"pyramid_levels": 0}, "pyramid_levels"),
    ],
)
def test_bad_options_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SGBAF(**{**TINY, **kwargs})
    # checked in every variant, also where the option is unused
    with pytest.raises(ConfigError, match=match):
        SGBAF(**{**TINY, "sgbafm": False, "dfin": False, **kwargs})


def test_bad_inputs_raise() -> None:
    model = _tiny()
    optical, sar = _inputs(16, 16)
    with pytest.raises(ConfigError, match="needs a SAR input"):
        model(optical)
    with pytest.raises(ConfigError, match="optical"):
        model(optical[:, :3], sar)
    with pytest.raises(ConfigError, match="share batch and spatial size"):
        model(optical, sar[..., :8])


# ----------------------------------------------------------------------------- data protocol
def test_sgbaf_split_is_40_spring_rois_36_2_2() -> None:
    splits = load_paper_splits("sgbaf_spring")
    assert {k: len(v) for k, v in splits.items()} == {"train": 36, "val": 2, "test": 2}
    rois = [r for v in splits.values() for r in v]
    assert len(set(rois)) == 40  # disjoint
    assert all(parse_roi_id(r)[0] == SPRING for r in rois)
    standard = {r for v in load_sen12mscr_splits().values() for r in v if r.startswith(SPRING)}
    assert len(standard) == 41 and set(rois) < standard
    assert standard - set(rois) == {f"{SPRING}/s1_140"}
    mmcanet = load_mmcanet_splits()
    assert splits["val"] == mmcanet["val"] and splits["test"] == mmcanet["test"]
    assert set(splits["train"]) == set(mmcanet["train"]) - {f"{SPRING}/s1_140"}
    assert paper_split_version("sgbaf_spring") == "sgbaf_spring v1"


def test_paper_split_loader_is_shared() -> None:
    assert set(PAPER_SPLITS) == {"mmcanet_spring", "sgbaf_spring"}
    assert load_paper_splits("mmcanet_spring") == load_mmcanet_splits()
    with pytest.raises(ConfigError, match="unknown paper split 'sgbaf'.*sgbaf_spring"):
        load_paper_splits("sgbaf")


def test_sgbaf_recipe() -> None:
    c = build_config(load_recipe("sgbaf"), data_root="/d")
    assert c.model.name == "sgbaf" and c.model.kwargs == {}
    d = c.data
    assert d.dataset == "sen12mscr" and d.seasons == ["spring"]
    assert (d.patch_size, d.val_patch_size, d.batch_size) == (None, None, 4)
    assert not (d.augment.hflip or d.augment.vflip or d.augment.rot90)
    assert d.options["split_source"] == "standard" and "resize" not in d.options
    expected = {k: list(v) for k, v in load_paper_splits("sgbaf_spring").items()}
    assert d.options["splits"] == expected  # the recipe mirrors the shipped resource
    assert (c.loss.name, c.optimizer.name, c.optimizer.lr) == ("l1", "adam", 1e-3)
    s = c.scheduler
    assert (s.name, s.gamma, s.interval) == ("exponential", 0.8, "epoch")
    assert c.trainer.max_epochs == 10 and c.trainer.max_steps is None
    resolved = resolve_config(c).data
    assert (resolved.protocol, resolved.bands) == ("glf_cr", "all")


def test_exponential_scheduler_multiplies_the_lr_every_interval() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    section = SchedulerConfig(name="exponential", gamma=0.8, interval="epoch")
    out = scheduler_from_section(section, opt, max_epochs=10, total_steps=None)
    assert out is not None and out["interval"] == "epoch"
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        out["scheduler"].step()
    torch.testing.assert_close(
        torch.tensor(lrs, dtype=torch.float64), 1e-3 * 0.8 ** torch.arange(4.0, dtype=torch.float64)
    )
