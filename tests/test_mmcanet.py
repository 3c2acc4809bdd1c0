"""MMCANet / MMCANet_L (paper 000): cross-attention, ASPP, ablation switches, sizes."""

from __future__ import annotations

import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.models import create_model, run_model, spec_of
from cloudfree.models.mmcanet import ASPP, CrossModalAttention, attention_width

SMALL = dict(widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), nset=4, aspp_width=8, decoder_depth=1)


def _reference_attention(att: CrossModalAttention, f_opt, f_sar, renormalize: bool):
    """Paper 000 eqs. 1-8 with whole N x N maps."""
    b, c, h, w = f_opt.shape
    q = {m: att.query[m](f).flatten(2) for m, f in (("opt", f_opt), ("sar", f_sar))}
    k = {m: att.key[m](f).flatten(2) for m, f in (("opt", f_opt), ("sar", f_sar))}
    v = {m: att.value[m](f).flatten(2) for m, f in (("opt", f_opt), ("sar", f_sar))}
    p_opt = torch.softmax(q["opt"].transpose(1, 2) @ k["opt"], dim=-1)
    p_sar = torch.softmax(q["sar"].transpose(1, 2) @ k["sar"], dim=-1)
    p_fuse = p_opt * p_sar
    if renormalize:
        p_fuse = p_fuse / p_fuse.sum(-1, keepdim=True)
    ap = (v["opt"] @ p_fuse.transpose(1, 2)) * (v["sar"] @ p_fuse.transpose(1, 2))
    return ap.reshape(b, c, h, w)


@pytest.mark.parametrize("fuse_norm", ["renormalize", "none"])
def test_chunked_cross_attention_equals_the_whole_maps(fuse_norm: str) -> None:
    torch.manual_seed(0)
    att = CrossModalAttention(16, qk_reduction=4, fuse_norm=fuse_norm, chunk=7)
    f_opt = torch.randn(2, 16, 6, 9, requires_grad=True)
    f_sar = torch.randn(2, 16, 6, 9, requires_grad=True)
    got = att(f_opt, f_sar)
    ref = _reference_attention(att, f_opt, f_sar, fuse_norm == "renormalize")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    g1 = torch.autograd.grad(got.square().sum(), (f_opt, f_sar))
    g2 = torch.autograd.grad(ref.square().sum(), (f_opt, f_sar))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if fuse_norm == "none":  # the paper's product of softmax rows: AP shrinks with N
        v = att.value["opt"](f_opt).detach()
        assert float(got.detach().abs().mean()) < 0.1 * float(v.abs().mean()) ** 2


def test_chunks_keep_the_saved_activations_small() -> None:
    """While training, each block of query rows is recomputed in the backward pass: the
    tensors autograd keeps do not grow with N x N."""
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    f = torch.randn(1, 8, 32, 32, requires_grad=True)
    sizes = {}
    for chunk in (64, 4096):
        att = CrossModalAttention(8, chunk=chunk)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            att(f, f)
        sizes[chunk] = max(saved)
    assert sizes[4096] >= 1024 * 1024  # the whole 1024 x 1024 map
    assert sizes[64] < 1024 * 64  # nothing larger than the inputs and projections


def test_aspp_has_the_papers_four_branches_or_deeplabs_five() -> None:
    assert len(ASPP(8, 4).branches) + 1 == 4  # three atrous + pooling
    assert len(ASPP(8, 4, mode="deeplab").branches) + 1 == 5
    assert [b[0].dilation for b in ASPP(8, 4, rates=(2, 3)).branches] == [(2, 2), (3, 3)]
    with pytest.raises(ConfigError, match="aspp_mode"):
        ASPP(8, 4, mode="deeplabv3")
    with pytest.raises(ConfigError, match="aspp_rates"):
        ASPP(8, 4, rates=(0,))


def test_defaults_parameter_counts_and_the_5x5_variant() -> None:
    m, ml = create_model("mmcanet"), create_model("mmcanet_l")
    assert sum(p.numel() for p in m.parameters()) == 16_702_755
    assert sum(p.numel() for p in ml.parameters()) == 16_790_307
    kernels = {mod.kernel_size for name, mod in ml.named_modules() if name.endswith("dwconv.1")}
    assert kernels == {(5, 5)}
    assert {mod.kernel_size for n, mod in m.named_modules() if n.endswith("dwconv.1")} == {(3, 3)}
    spec = spec_of(m)
    assert spec.inputs.optical_channels == 3 and spec.inputs.spatial_multiple == 8
    assert [attention_width(d) for d in (8, 32, 48, 64, 256)] == [8, 16, 24, 16, 16]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fusion": "concat", "cross_attention": False},
        {"fusion": "optical", "cross_attention": False, "aspp": False},
        {"cross_attention": False},
        {"aspp_mode": "deeplab", "fuse_norm": "none", "learned_scale": True},
    ],
)
def test_ablations_run_at_any_size(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model("mmcanet", **SMALL, **kwargs).eval()
    optical, sar = torch.rand(1, 3, 21, 34), torch.rand(1, 2, 21, 34)
    with torch.no_grad():
        out = run_model(model, optical=optical, sar=sar).pred
    assert out.shape == optical.shape and torch.isfinite(out).all()
    if kwargs.get("fusion") == "optical":
        assert not spec_of(model).inputs.needs_sar
        with torch.no_grad():  # SAR is never looked at
            torch.testing.assert_close(model(optical, None), out)


def test_bad_configurations_are_named() -> None:
    with pytest.raises(ConfigError, match="cross_attention needs fusion='dual'"):
        create_model("mmcanet", fusion="concat")
    with pytest.raises(ConfigError, match="fusion must be one of"):
        create_model("mmcanet", fusion="late", cross_attention=False)
    with pytest.raises(ConfigError, match="kba_kernels"):
        create_model("mmcanet", kba_kernels=(3, 4))
    with pytest.raises(ConfigError, match="fuse_norm"):
        create_model("mmcanet", fuse_norm="softmax")
    with pytest.raises(ConfigError, match="low_stage"):
        create_model("mmcanet", low_stage=3)
