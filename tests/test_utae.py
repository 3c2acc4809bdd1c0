"""L-TAE and U-TAE: parity with utae-paps (the shared fixtures), padded dates, registry; the
UnCRtainTS U-TAE baseline utae_cr (parameters and keys of the official class, sizes, padded
dates, variance head, official checkpoints)."""

from __future__ import annotations

import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.models import (
    create_model,
    get_model_info,
    list_models,
    load_official_checkpoint,
    run_model,
)
from cloudfree.models.layers.ltae import LTAE2d, PositionalEncoder
from cloudfree.models.utae import UTAE, UTAECR, temporal_aggregate
from parity import load_case


def _tol(case, name: str) -> dict:
    per = case.meta.get("tolerance_per_output", {}).get(name, case.meta["tolerance"])
    return {"atol": per["atol"], "rtol": per["rtol"]}


@pytest.mark.parametrize("name", ["ltae2d", "utae"])
def test_parity_with_the_official_outputs(shared_dir, shared_path, name: str) -> None:
    shared_path(f"parity/{name}/case.json")
    case = load_case(shared_dir, name)
    model = load_official_checkpoint(name, case.checkpoint_path, **case.kwargs)
    assert not model.training
    t = case.tensors
    with torch.no_grad():
        if name == "ltae2d":
            out, attn = model(t["input.x"], batch_positions=t["input.batch_positions"],
                              pad_mask=t["input.pad_mask"])  # fmt: skip
        else:
            out = model(t["input.x"], batch_positions=t["input.batch_positions"])
            out2, attn = model(t["input.x"], batch_positions=t["input.batch_positions"],
                               return_att=True)  # fmt: skip
            torch.testing.assert_close(out2, out, rtol=0, atol=0)
    torch.testing.assert_close(out, t["output.out"], **_tol(case, "out"))
    torch.testing.assert_close(attn, t["output.attn"], **_tol(case, "attn"))


def test_utae_parameter_count_and_registry() -> None:
    model = create_model("utae")  # input_dim 15 as UnCRtainTS's U-TAE baseline
    assert sum(p.numel() for p in model.parameters()) == 1_090_140
    assert "utae" not in list_models() and "utae" in list_models(include_blocks=True)
    assert get_model_info("ltae2d").is_block


def test_padded_dates_change_nothing_but_are_written_as_zero() -> None:
    """A zero-padded date: the result equals the one without it (attention weight 0, shared
    blocks not run on it), except through the L-TAE's input GroupNorm, which sees it."""
    torch.manual_seed(0)
    model = UTAE(input_dim=4, encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16],
                 out_conv=[8, 3], n_head=4, d_model=16).eval()  # fmt: skip
    x = torch.rand(1, 3, 4, 32, 32) + 0.1
    pos = torch.tensor([[0.0, 10.0, 20.0]])
    padded = torch.cat([x, torch.zeros(1, 1, 4, 32, 32)], dim=1)
    pos_p = torch.tensor([[0.0, 10.0, 20.0, 0.0]])
    with torch.no_grad():
        _, attn = model(padded, batch_positions=pos_p, return_att=True)
        assert torch.allclose(attn[:, :, 3], torch.zeros_like(attn[:, :, 3]), atol=1e-6)
        frames = model.in_conv(padded)
        assert (frames[:, 3] == 0).all() and (frames[:, :3] != 0).any()
        # without padding the GroupNorm statistics differ, so outputs are close, not equal
        a = model(x, batch_positions=pos)
        b = model(padded, batch_positions=pos_p)
    assert a.shape == b.shape == (1, 3, 32, 32)


def test_positional_encoder_is_the_sinusoid_table() -> None:
    enc = PositionalEncoder(4, T=1000, repeat=2)
    out = enc(torch.tensor([[0.0, 100.0]]))
    assert out.shape == (1, 2, 8)
    d = torch.tensor([1.0, 1.0, 1000**0.5, 1000**0.5])
    want = torch.stack([torch.sin(100 / d[0]), torch.cos(100 / d[1]),
                        torch.sin(100 / d[2]), torch.cos(100 / d[3])])  # fmt: skip
    torch.testing.assert_close(out[0, 1, :4], want)
    torch.testing.assert_close(out[0, 1, 4:], want)
    with pytest.raises(ValueError, match="mlp\\[0\\] must equal d_model"):
        LTAE2d(in_channels=16, d_model=32, mlp=[16, 16], n_head=4)


# --------------------------------------------------------------------------- utae_cr
def _small_cr(**kw) -> UTAECR:
    torch.manual_seed(0)
    kwargs = dict(encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16], n_head=4, d_model=16)
    return create_model("utae_cr", **{**kwargs, **kw}).eval()


def _series(b: int, t: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    optical, sar = torch.rand(b, t, 13, h, w, generator=g), torch.rand(b, t, 2, h, w, generator=g)
    dates = torch.cumsum(torch.randint(5, 40, (b, t), generator=g), dim=1).float()
    return optical, sar, dates


@pytest.mark.parametrize(("kwargs", "count"), [({}, 1_261_069), ({"covmode": "diag"}, 1_261_914)])
def test_utae_cr_parameters_and_keys_are_the_official_ones(kwargs, count) -> None:
    """Counts and key count of UnCRtainTS's utae.UTAE built by get_generator (--model utae):
    142 keys; one 1x1 in_conv, a 1x1 out_conv without norm, conv2 without its last ReLU."""
    model = create_model("utae_cr", **kwargs)
    assert sum(p.numel() for p in model.parameters()) == count
    state = model.state_dict()
    assert len(state) == 142
    out = 26 if kwargs else 13
    assert state["in_conv.conv.conv.0.weight"].shape == (64, 15, 1, 1)
    assert state["in_conv.conv.conv.1.weight"].shape == (64,)  # GroupNorm(4, 64)
    assert state["out_conv.conv.conv.0.weight"].shape == (out, 64, 1, 1)
    assert not [k for k in state if k.startswith(("in_conv.conv.conv.3", "out_conv.conv.conv.1"))]
    assert state["up_blocks.2.skip_conv.1.running_var"].shape == (64,)  # norm_skip batch
    assert isinstance(model.down_blocks[0].conv2.conv[-1], torch.nn.GroupNorm)  # no last ReLU
    assert isinstance(model.up_blocks[0].conv2.conv[-1], torch.nn.BatchNorm2d)


def test_utae_cr_registry_entry_and_spec() -> None:
    info = get_model_info("utae_cr")
    assert "utae_cr" in list_models() and info.protocol == "uncrtaints"
    assert info.default_recipe == "utae_cr" and info.official_repo == "PatrickTUM/UnCRtainTS"
    spec = info.resolve_spec()
    i = spec.inputs
    assert i.temporal and i.needs_sar and i.needs_dates and not i.padding_invariant
    assert (i.optical_channels, i.sar_channels, i.spatial_multiple) == (13, 2, 8)
    assert spec.out_channels == 13 and not spec.outputs.has_variance
    assert spec.tasks == {"regression"}
    diag = info.resolve_spec({"covmode": "diag"})
    assert diag.outputs.has_variance and diag.tasks == {"uncertainty"}
    assert info.resolve_spec({"positional_encoding": False}).inputs.needs_dates is False
    assert UTAECR.temporal_forward


@pytest.mark.parametrize(("h", "w"), [(64, 64), (72, 40), (16, 64), (17, 33), (5, 3)])
def test_utae_cr_output_shapes_for_any_size(h: int, w: int) -> None:
    """64 and 72x40 (multiples of 8) run as the official network; 16x64 needs the bilinear
    attention resize (the official one fails on wide images); 17x33 and 5x3 are padded."""
    model = _small_cr()
    optical, sar, dates = _series(2, 3, h, w)
    with torch.no_grad():
        out = run_model(model, optical=optical, sar=sar, dates=dates)
    assert out.pred.shape == (2, 13, h, w) and out.variance is None
    assert (out.pred > 0).all() and (out.pred < 1).all()


def test_utae_cr_pads_other_sizes_and_crops_back() -> None:
    """3 stages take multiples of 4: 21 x 29 is reflect-padded to 24 x 32 and the result is
    the crop of the network's output on that padded input."""
    model = _small_cr()
    optical, sar, dates = _series(1, 2, 21, 29)
    padded = [torch.nn.functional.pad(t.flatten(0, 1), (0, 3, 0, 3), mode="reflect")
              for t in (optical, sar)]  # fmt: skip
    big_o, big_s = (p.view(1, 2, -1, 24, 32) for p in padded)
    with torch.no_grad():
        small = model(optical, sar, dates).pred
        big = model(big_o, big_s, dates).pred
    torch.testing.assert_close(small, big[..., :21, :29], rtol=1e-6, atol=1e-6)


def test_utae_cr_padded_date_changes_the_output_only_through_the_ltae_groupnorm() -> None:
    """The padded date's content never matters; its zero features enter the L-TAE's input
    GroupNorm (as officially), so the output differs from the one without the date, and is
    equal to it once that GroupNorm is taken out."""
    model = _small_cr()
    optical, sar, dates = _series(1, 3, 24, 24, seed=1)
    mask = torch.tensor([[True, True, False]])
    with torch.no_grad():
        ref = model(optical, sar, dates, mask).pred
        garbage_o, garbage_s, garbage_d = optical.clone(), sar.clone(), dates.clone()
        garbage_o[:, 2], garbage_s[:, 2], garbage_d[:, 2] = float("nan"), 1e6, float("nan")
        torch.testing.assert_close(model(garbage_o, garbage_s, garbage_d, mask).pred, ref,
                                   rtol=0, atol=0)  # fmt: skip
        # the official rule without a time_mask: the zeroed frame is padding
        zero_o, zero_s = optical.clone(), sar.clone()
        zero_o[:, 2], zero_s[:, 2] = 0, 0
        torch.testing.assert_close(model(zero_o, zero_s, dates).pred, ref, rtol=0, atol=0)
        cut = model(optical[:, :2], sar[:, :2], dates[:, :2]).pred
        assert (cut - ref).abs().max() > 1e-4
        model.temporal_encoder.in_norm = torch.nn.Identity()
        ref_no_norm = model(optical, sar, dates, mask).pred
        cut_no_norm = model(optical[:, :2], sar[:, :2], dates[:, :2]).pred
    torch.testing.assert_close(ref_no_norm, cut_no_norm, rtol=1e-6, atol=1e-6)


def test_utae_cr_variance_head_is_softplus_over_scale_squared() -> None:
    """With out_conv weights 0, raw = its bias: pred = sigmoid(bias[:13]), variance =
    softplus(bias[13:]) / scale_by**2, positive even for a very negative raw value."""
    model = _small_cr(covmode="diag", scale_by=10.0)
    conv = model.out_conv.conv.conv[0]
    bias = torch.cat([torch.linspace(-2, 2, 13), torch.linspace(-30, 5, 13)])
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(bias)
        optical, sar, dates = _series(2, 3, 16, 24)
        out = run_model(model, optical=optical, sar=sar, dates=dates)
    want_var = torch.log1p(torch.exp(bias[13:].double())).float() / 100.0
    assert out.variance.shape == out.pred.shape == (2, 13, 16, 24)
    assert (out.variance > 0).all()
    torch.testing.assert_close(out.pred, torch.sigmoid(bias[:13])[None, :, None, None].expand(
        2, 13, 16, 24))  # fmt: skip
    torch.testing.assert_close(out.variance, want_var[None, :, None, None].expand(2, 13, 16, 24))


def test_utae_cr_official_checkpoint_round_trip(tmp_path) -> None:
    """An official checkpoint ({'state_dict': netG.-prefixed BaseModel keys, 'state_dict_G':
    ...}) loads into an equal model."""
    model = _small_cr(covmode="diag")
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    state = model.state_dict()
    path = tmp_path / "model.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"netG.{k}": v for k, v in state.items()},
                "state_dict_G": state}, path)  # fmt: skip
    loaded = load_official_checkpoint(
        "utae_cr", path, covmode="diag", encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16],
        n_head=4, d_model=16,
    )  # fmt: skip
    assert loaded.state_dict().keys() == state.keys()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    optical, sar, dates = _series(1, 3, 16, 16)
    with torch.no_grad():
        a, b = model(optical, sar, dates), loaded(optical, sar, dates)
    torch.testing.assert_close(a.pred, b.pred, rtol=0, atol=0)
    torch.testing.assert_close(a.variance, b.variance, rtol=0, atol=0)


def test_att_group_resize_follows_the_official_rule_and_fits_other_sizes() -> None:
    """Average-pooled where the official rule fits (features 2 x 2 from a 4 x 4 attention),
    bilinear where it compares height with width and cannot fit (a wide 4 x 16 skip)."""
    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(2, 1, 3, 4, 4), dim=2)
    x = torch.rand(1, 3, 4, 2, 2)
    pooled = torch.nn.functional.avg_pool2d(attn.flatten(0, 1), 2).view(2, 1, 3, 2, 2)
    want = torch.cat([(pooled[g][:, :, None] * x[:, :, 2 * g : 2 * g + 2]).sum(1)
                      for g in range(2)], dim=1)  # fmt: skip
    torch.testing.assert_close(temporal_aggregate(x, attn, None), want)
    wide_attn = torch.softmax(torch.randn(2, 1, 3, 2, 8), dim=2)
    wide = torch.rand(1, 3, 4, 4, 16)
    up = torch.nn.functional.interpolate(wide_attn.flatten(0, 1), size=(4, 16), mode="bilinear")
    up = up.view(2, 1, 3, 4, 16)
    want = torch.cat([(up[g][:, :, None] * wide[:, :, 2 * g : 2 * g + 2]).sum(1)
                      for g in range(2)], dim=1)  # fmt: skip
    torch.testing.assert_close(temporal_aggregate(wide, wide_attn, None), want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"covmode": "full"}, "covmode must be 'diag' or None"),
        ({"encoder_widths": [8, 8, 16], "decoder_widths": [8, 16]}, "equal length"),
        (
            {"encoder_widths": [6, 8, 16], "decoder_widths": [8, 8, 16], "n_head": 2},
            r"encoder_widths must be multiples of 4 \(GroupNorm",
        ),
        ({"n_head": 5}, r"d_model must be a multiple of 5 \(the L-TAE heads\), got 256"),
        ({"decoder_norm": "batchnorm"}, "decoder_norm must be one of"),
        ({"agg_mode": "sum"}, "agg_mode must be one of"),
        ({"scale_by": 0}, "scale_by must be a number > 0"),
        ({"in_sar": -1}, "in_sar must be an integer >= 0"),
    ],
)
def test_utae_cr_bad_options(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("utae_cr", **kwargs)


def test_utae_variant_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="in_conv_style must be one of"):
        UTAE(input_dim=4, in_conv_style="single")
    with pytest.raises(ConfigError, match="norm_skip must be one of"):
        UTAE(input_dim=4, norm_skip="layer")
