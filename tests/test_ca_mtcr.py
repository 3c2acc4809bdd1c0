"""CA-MTCR (paper 002): the network, its SAR encoder, its switches and its calibration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cloudfree.errors import ConfigError
from cloudfree.models import create_model, get_model_info, run_model, spec_of
from cloudfree.models.ca_mtcr import (
    CAMTCR,
    CAMTCRSAREncoder,
    ChangeAwareWeights,
    RegionSelection,
    masked_group_norm,
)
from cloudfree.models.layers.padding import pad_bottom_right

#: a tiny instance (same widths as tests/test_models_common.py's entry)
TINY = dict(embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, stem_width=8, stem_blocks=1)
TINY |= dict(sar_width=4, sar_channels=8, weight_width=8, ltae_heads=4, ltae_d_model=16)
TINY |= dict(decoder_widths=(8, 8))


def _tiny(seed: int = 0, **kw) -> CAMTCR:
    torch.manual_seed(seed)
    return CAMTCR(**{**TINY, **kw}).eval()


def _inputs(b: int = 2, t: int = 3, h: int = 24, w: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.rand(b, t, 13, h, w, generator=g)
    sar = torch.rand(b, t, 2, h, w, generator=g)
    dates = (torch.arange(t) * 30.0 + 100.0).expand(b, t).clone()
    return opt, sar, dates, torch.ones(b, t, dtype=torch.bool)


def _run(net, opt, sar, dates, mask):
    with torch.no_grad():
        return net(opt, sar, dates, mask)


# ------------------------------------------------------------------------------ SAR encoder
@pytest.mark.parametrize(("down", "strides"), [(1, (1, 1, 1)), (2, (1, 1, 2)), (4, (1, 2, 2))])
def test_sar_encoder_interface(down, strides) -> None:
    enc = CAMTCRSAREncoder(in_channels=2, width=4, out_channels=8, downsample=down)
    assert (enc.out_channels, enc.downsample, enc.strides) == (8, down, strides)
    out = enc(torch.rand(3, 2, 8 * down, 4 * down))
    assert out.shape == (3, 8, 8, 4)
    assert [k for k, _ in enc.named_parameters()][0] == "convs.0.weight"


def test_sar_encoder_defaults_and_errors() -> None:
    enc = CAMTCRSAREncoder()
    assert (enc.in_channels, enc.width, enc.out_channels, enc.downsample) == (2, 32, 64, 4)
    assert enc(torch.rand(1, 2, 16, 24)).shape == (1, 64, 4, 6)
    assert CAMTCRSAREncoder(downsample=8, strides=(1, 2, 4))(torch.rand(1, 2, 16, 16)).shape == (
        1,
        64,
        2,
        2,
    )
    with pytest.raises(ValueError, match="multiples of 4"):
        enc(torch.rand(1, 2, 18, 24))
    with pytest.raises(ConfigError, match="strides"):
        CAMTCRSAREncoder(downsample=4, strides=(2, 2, 2))
    with pytest.raises(ConfigError, match="no default strides"):
        CAMTCRSAREncoder(downsample=6)
    with pytest.raises(ConfigError, match="multiple of 4"):
        CAMTCRSAREncoder(out_channels=6)


def test_network_holds_the_encoder_as_sar_encoder() -> None:
    net = _tiny()
    assert isinstance(net.sar_encoder, CAMTCRSAREncoder)
    assert net.sar_encoder.downsample == net.patch_size == 4
    keys = [k for k in net.state_dict() if k.startswith("sar_encoder.")]
    assert keys and set(keys) == {f"sar_encoder.{k}" for k in net.sar_encoder.state_dict()}


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize(("h", "w"), [(37, 50), (8, 8), (24, 20)])
def test_shapes_any_t_and_size(t, h, w) -> None:
    net = _tiny()
    out = _run(net, *_inputs(2, t, h, w))
    assert out.pred.shape == (2, 13, h, w)
    assert torch.isfinite(out.pred).all() and (out.pred >= 0).all() and (out.pred <= 1).all()
    gh, gw = max(-(-h // 4), 2), max(-(-w // 4), 2)
    assert out.extras["fusion_weights"].shape == out.extras["change_maps"].shape == (2, t, gh, gw)


def test_run_model_spec_and_variants() -> None:
    for name, needs_sar in [("ca_mtcr", True), ("ca_mtcr_no_sar", False)]:
        info = get_model_info(name)
        assert info.protocol == "uncrtaints" and info.default_recipe == "ca_mtcr"
        spec = info.resolve_spec()
        assert spec.inputs.temporal and spec.inputs.needs_dates and spec.inputs.padding_invariant
        assert spec.inputs.needs_sar is needs_sar and spec.tasks == {"regression"}
    defaults = {
        "ca_mtcr_no_regs": dict(region_select=False, change_aware=True, use_sar=True),
        "ca_mtcr_no_ca": dict(region_select=True, change_aware=False, use_sar=True),
        "ca_mtcr_baseline": dict(region_select=False, change_aware=False, use_sar=True),
        "ca_mtcr_no_sar": dict(region_select=True, change_aware=False, use_sar=False),
    }
    for name, want in defaults.items():
        net = create_model(name, **TINY)
        assert {k: getattr(net, k) for k in want} == want
    net = create_model("ca_mtcr", **TINY, max_dates=3).eval()
    assert spec_of(net).inputs.max_dates == 3
    opt, sar, dates, mask = _inputs(1, 3, 16, 16)
    with torch.no_grad():
        assert run_model(net, optical=opt, sar=sar, dates=dates, time_mask=mask).pred.shape == (
            1,
            13,
            16,
            16,
        )
    with pytest.raises(ConfigError, match="at most 3 dates"):
        net(*_inputs(1, 4, 16, 16))


# ------------------------------------------------------------------------------ dates
def test_padded_dates_are_ignored_exactly() -> None:
    """A padded date (in the middle or at the end) with garbage frames and date changes
    nothing: the output equals that of the series without it."""
    net = _tiny(1)
    opt, sar, dates, mask = _inputs(2, 4, 20, 28, seed=1)
    mask[0, 1] = False  # padded in the middle
    mask[1, 3] = False  # padded at the end
    ref = _run(net, opt, sar, dates, mask)
    g_opt, g_sar, g_dates = opt.clone(), sar.clone(), dates.clone()
    g_opt[0, 1], g_sar[0, 1], g_dates[0, 1] = float("nan"), 1e6, 99999.0
    g_opt[1, 3], g_sar[1, 3], g_dates[1, 3] = 1e6, float("nan"), -5.0
    out = _run(net, g_opt, g_sar, g_dates, mask)
    torch.testing.assert_close(out.pred, ref.pred, rtol=0, atol=0)
    w = ref.extras["fusion_weights"]
    assert (w[0, 1] == 0).all() and (w[1, 3] == 0).all()
    for i, keep in [(0, [0, 2, 3]), (1, [0, 1, 2])]:
        alone = _run(net, opt[i : i + 1, keep], sar[i : i + 1, keep], dates[i : i + 1, keep], None)
        torch.testing.assert_close(alone.pred, ref.pred[i : i + 1], rtol=1e-5, atol=1e-6)


def test_target_is_the_last_real_date() -> None:
    net = _tiny(2)
    opt, sar, dates, mask = _inputs(2, 3, 16, 16, seed=2)
    mask[1, 2] = False
    out = _run(net, opt, sar, dates, mask)
    c = out.extras["change_maps"]
    assert (c[0, 2] == 1).all() and (c[1, 1] == 1).all()
    assert not (c[0, :2] == 1).all() and (c[1, 2] == 0).all()
    # output="residual" adds date N's optical input: with a zero decoder output, pred is it
    net_r = _tiny(2, output="residual")
    with torch.no_grad():
        net_r.decoder.out.weight.zero_()
        net_r.decoder.out.bias.zero_()
    pred = _run(net_r, opt, sar, dates, mask).pred
    torch.testing.assert_close(pred, opt[torch.arange(2), torch.tensor([2, 1])], rtol=0, atol=0)


def test_dates_enter_absolutely_or_relatively() -> None:
    opt, sar, dates, mask = _inputs(1, 3, 16, 16, seed=3)
    for rel, same in [(False, False), (True, True)]:
        net = _tiny(3, relative_dates=rel)
        for p in net.weights.parameters():
            nn.init.normal_(p, std=0.5)
        a = _run(net, opt, sar, dates, mask).pred
        b = _run(net, opt, sar, dates + 365.0, mask).pred
        assert torch.allclose(a, b, atol=1e-6) is same


# ------------------------------------------------------------------------------ change maps
def test_change_maps_are_the_sar_feature_cosine() -> None:
    net = _tiny(4)
    opt, sar, dates, mask = _inputs(2, 3, 22, 18, seed=4)
    out = _run(net, opt, sar, dates, mask)
    with torch.no_grad():
        f = net.sar_encoder(pad_bottom_right(sar.flatten(0, 1), 2, 2)).view(2, 3, 8, 6, 5)
    for b in range(2):
        for t in range(2):
            a, n = f[b, t], f[b, 2]
            cos = (a * n).sum(0) / (a.norm(dim=0) * n.norm(dim=0))
            torch.testing.assert_close(out.extras["change_maps"][b, t], cos, rtol=1e-5, atol=1e-6)
    assert (out.extras["change_maps"][:, 2] == 1).all()
    same = _run(net, opt, sar[:, [2, 2, 2]], dates, mask).extras["change_maps"]
    torch.testing.assert_close(same, torch.ones_like(same))


# ------------------------------------------------------------------------------ weights
def test_fusion_weights_sum_to_one_over_real_dates() -> None:
    net = _tiny(5)
    opt, sar, dates, mask = _inputs(3, 3, 16, 20, seed=5)
    mask[1, 2] = False
    mask[2, 1:] = False
    w = _run(net, opt, sar, dates, mask).extras["fusion_weights"]
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones_like(w.sum(1)))
    assert (w[2, 0] == 1).all()  # T = 1 in effect: date N alone


def test_weights_are_the_head_mean_of_the_ltae_attention() -> None:
    """With every date real, the weights are LTAE2dTiny's own attention averaged over heads."""
    torch.manual_seed(6)
    mod = ChangeAwareWeights(9, 8, 1, 4, 4, 16, 1000.0, True).eval()
    feats, dates = torch.randn(2, 3, 9, 5, 4), torch.rand(2, 3) * 500
    with torch.no_grad():
        got = mod(feats, None, dates)
        x = mod.conv(feats.flatten(0, 1)).view(2, 3, 8, 5, 4)
        want = mod.ltae(x, batch_positions=dates).mean(0)
        masked = mod(feats, torch.ones(2, 3, dtype=torch.bool), dates)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(masked, want, rtol=1e-5, atol=1e-6)


def test_masked_group_norm_uses_real_dates_only() -> None:
    torch.manual_seed(7)
    gn = nn.GroupNorm(2, 6)
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    x = torch.randn(5, 6, 4)
    real = torch.tensor([True, False, True, True]).expand(5, 4)
    got = masked_group_norm(x, real, gn)
    torch.testing.assert_close(got[..., [0, 2, 3]], gn(x[..., [0, 2, 3]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked_group_norm(x, None, gn), gn(x))


# ------------------------------------------------------------------------------ region selection
def test_region_selection_distance_and_modes() -> None:
    torch.manual_seed(8)
    sel = RegionSelection(6)
    res = RegionSelection(6, mask_mode="mul_residual")
    res.load_state_dict(sel.state_dict())
    before, after = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    r = sel.soft_mask(before, after)
    assert r.shape == (2, 1, 5, 7) and (r > 0).all() and (r < 1).all()
    torch.testing.assert_close(sel(before, after), after * r)
    torch.testing.assert_close(res(before, after), after + after * r)
    # R2 = 1 - cos: identical maps have distance 0, opposite ones 2 (other inputs fixed)
    with torch.no_grad():
        sel.mask.weight.zero_()
        sel.mask.weight[0, 1] = 1.0
        sel.mask.bias.zero_()
        sel.cam[2].weight.zero_()
        sel.cam[2].bias.fill_(50.0)  # channel gates ~1
    r_same = sel.soft_mask(after, after)
    r_opp = sel.soft_mask(-after, after)
    # the 3x3 mask conv sums the 9 neighbours' R2 (zero padding at the borders)
    inner = (slice(None), 0, slice(1, -1), slice(1, -1))
    torch.testing.assert_close(
        r_same[inner], torch.full_like(r_same[inner], 0.5), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        r_opp[inner], torch.full_like(r_opp[inner], torch.sigmoid(torch.tensor(18.0)).item())
    )


# ------------------------------------------------------------------------------ switches
def _shared_weights(src: nn.Module, dst: nn.Module) -> None:
    ref = src.state_dict()
    dst.load_state_dict(
        {
            k: v
            for k, v in ref.items()
            if k in dst.state_dict() and v.shape == dst.state_dict()[k].shape
        },
        strict=False,
    )


def test_each_switch_removes_its_parameters_and_changes_the_output() -> None:
    full = _tiny(9)
    inputs = _inputs(2, 3, 20, 16, seed=9)
    ref = _run(full, *inputs).pred
    keys = set(full.state_dict())
    cases = {
        "region_select": (dict(region_select=False), "optical_encoder.select."),
        "use_sar": (dict(use_sar=False, change_aware=False), "sar_encoder."),
        "decoder_skip": (dict(decoder_skip=False), "decoder.skip."),
    }
    for kwargs, prefix in cases.values():
        other = _tiny(9, **kwargs)
        assert any(k.startswith(prefix) for k in keys)
        assert not any(k.startswith(prefix) for k in other.state_dict())
        _shared_weights(full, other)
        assert not torch.allclose(_run(other, *inputs).pred, ref)
    no_ca = _tiny(9, change_aware=False)
    assert no_ca.weights.conv.in_channels == full.weights.conv.in_channels - 1 == 16
    out = _run(no_ca, *inputs)
    assert "change_maps" not in out.extras and not torch.allclose(out.pred, ref)
    no_sar = _tiny(9, use_sar=False, change_aware=False)
    assert no_sar.fusion[0].in_channels == 16 and full.fusion[0].in_channels == 24
    opt, _, dates, mask = inputs
    a = _run(no_sar, opt, None, dates, mask).pred
    torch.testing.assert_close(a, _run(no_sar, opt, torch.rand(2, 3, 2, 20, 16), dates, mask).pred)
    mul_res = _tiny(9, mask_mode="mul_residual")
    mul_res.load_state_dict(full.state_dict())
    assert not torch.allclose(_run(mul_res, *inputs).pred, ref)


@pytest.mark.parametrize("factor", [5, 10])
def test_sar_downsample_runs_at_sizes_not_divisible(factor) -> None:
    full = _tiny(10)
    low = _tiny(10, sar_downsample=factor)
    low.load_state_dict(full.state_dict())  # the same network, only the SAR input changes
    inputs = _inputs(1, 2, 23, 37, seed=10)
    out = _run(low, *inputs)
    assert out.pred.shape == (1, 13, 23, 37) and torch.isfinite(out.pred).all()
    assert not torch.allclose(out.pred, _run(full, *inputs).pred)
    x = torch.rand(2, 2, 2 * factor, 3 * factor)
    want = F.interpolate(F.avg_pool2d(x, factor), size=x.shape[-2:], mode="bilinear")
    torch.testing.assert_close(low._sar_input(x), want)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(patch_size=3), "patch_size"),
        (dict(num_heads=3), "num_heads"),
        (dict(embed_dim=18, num_heads=2), "multiple of 4"),
        (dict(mask_mode="add"), "mask_mode"),
        (dict(pos_encoding="learned"), "pos_encoding"),
        (dict(use_sar=False), "change_aware"),
        (dict(sar_downsample=2), "sar_downsample"),
        (dict(use_sar=False, change_aware=False, sar_downsample=5), "use_sar"),
        (dict(decoder_widths=(8,)), "decoder_widths"),
        (dict(decoder_widths=(8, 6)), "multiples of 4"),
        (dict(in_sar=0), "in_sar"),
        (dict(output="tanh"), "output"),
        (dict(fusion_kernel=2), "fusion_kernel"),
        (dict(r1_kernel=4), "r1_kernel"),
        (dict(weight_width=6), "ltae_heads"),
        (dict(mlp_ratio=0), "mlp_ratio"),
        (dict(depth=0), "depth"),
        (dict(max_dates=0), "max_dates"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        CAMTCR(**{**TINY, **kwargs})


def test_bad_inputs() -> None:
    net = _tiny()
    opt, sar, dates, mask = _inputs(1, 2, 16, 16)
    with pytest.raises(ConfigError, match="SAR"):
        net(opt, None, dates, mask)
    with pytest.raises(ConfigError, match="B, T, C, H, W"):
        net(opt[:, 0], sar[:, 0], dates, mask)
    with pytest.raises(ConfigError, match="dates"):
        net(opt, sar, None, mask)


# ------------------------------------------------------------------------------ calibration
def test_calibration_against_the_paper() -> None:
    """Paper 002, Table 1: 7.45 M parameters and 456.57 G MACs for T = 3 at 256 x 256; the
    default is pinned at its measured counts (module docstring), counted on the meta device
    (where the flop counter sees scaled_dot_product_attention)."""
    with torch.device("meta"):
        net = CAMTCR()
        params = sum(p.numel() for p in net.parameters())
        x, s, d = torch.empty(1, 3, 13, 256, 256), torch.empty(1, 3, 2, 256, 256), torch.empty(1, 3)
        with FlopCounterMode(display=False) as counter:
            net(x, s, d, None)
    macs = counter.get_total_flops() / 2
    assert params == 7_463_615
    assert abs(params / 7.45e6 - 1) < 0.02
    assert macs == pytest.approx(454.34e9, rel=0.005)
    assert abs(macs / 456.57e9 - 1) < 0.02
