"""Paper 000's official building blocks: KBNet's MFF / KBBlock_s (kernel basis attention) and
MPRNet's CAB / ORB. Parity with the official outputs (shared fixtures), KBA against a float64
direct reference and a grouped conv, gradients (gradcheck, recompute path, saved memory),
odd sizes, parameter counts, the shared PReLU, registry entries and bad arguments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models import create_model, get_model_info, list_models, load_official_checkpoint
from cloudfree.models.layers.kbnet import MFF, KBBlockS, LayerNorm2d, SimpleGate, kba
from cloudfree.models.layers.mprnet import CAB, ORB, CALayer
from parity import load_case

BLOCK_CASES = ["kbnet_mff", "kbnet_kbblock_s", "mprnet_cab", "mprnet_orb"]


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("name", BLOCK_CASES)
def test_parity_with_the_official_outputs(shared_dir, shared_path, name: str) -> None:
    shared_path(f"parity/{name}/case.json")
    case = load_case(shared_dir, name)
    assert case.kind == "block" and get_model_info(name).is_block
    model = load_official_checkpoint(name, case.checkpoint_path, **case.kwargs)
    assert not model.training
    x, ref = case.tensors["input.x"], case.tensors["output.y"]
    with torch.no_grad():
        y = model(x)
    torch.testing.assert_close(y, ref, **case.tolerance("y"))
    if name.startswith("kbnet"):
        # the fixture detects a wrong KBA: without the KBA branch the output is far off
        with torch.no_grad():
            model.ga1.zero_()
            off = (model(x) - ref).abs().max().item()
        assert off > 100 * case.tolerance("y")["atol"]


def test_orb_checkpoint_shares_one_prelu(shared_dir, shared_path) -> None:
    shared_path("parity/mprnet_orb/case.json")
    case = load_case(shared_dir, "mprnet_orb")
    orb = load_official_checkpoint("mprnet_orb", case.checkpoint_path, **case.kwargs)
    acts = {id(orb.body[i].act) for i in range(orb.num_cab)}
    assert len(acts) == 1 and isinstance(orb.body[0].act, torch.nn.PReLU)
    slope = case.checkpoint()["body.0.body.1.weight"]
    torch.testing.assert_close(orb.body[5].act.weight.detach(), slope, rtol=0, atol=0)
    assert sum(p.numel() for p in orb.parameters()) == 251_201  # the slope counted once


def test_orb_checkpoint_with_differing_act_copies_is_refused(tmp_path) -> None:
    state = ORB(8, num_cab=2).state_dict()
    state = {k: v.clone() for k, v in state.items()}
    state["body.1.body.1.weight"] += 0.1  # a network with one PReLU per CAB
    path = tmp_path / "orb.pth"
    torch.save(state, path)
    with pytest.raises(InputFileError, match="shared activation"):
        load_official_checkpoint("mprnet_orb", path, n_feat=8, num_cab=2)
    state["body.1.body.1.weight"] = state["body.0.body.1.weight"]
    torch.save(state, path)
    assert load_official_checkpoint("mprnet_orb", path, n_feat=8, num_cab=2).num_cab == 2


def test_checkpoint_of_other_widths_is_refused(shared_dir, shared_path) -> None:
    shared_path("parity/kbnet_mff/case.json")
    case = load_case(shared_dir, "kbnet_mff")
    with pytest.raises(InputFileError, match="do not fit kbnet_mff"):
        load_official_checkpoint("kbnet_mff", case.checkpoint_path, dim=24)


# ------------------------------------------------------------------------------ kba reference


def _kba_direct(x, att, weight, bias, k: int, g: int) -> torch.Tensor:
    """Per pixel: kernel = sum_s att_s * basis_s, laid out [g, out, in, ky, kx]; apply it to the
    zero-padded neighbourhood tap by tap (no unfold), plus the mixed bias."""
    bsz, c, h, w = x.shape
    nset, cg, p = att.shape[1], c // g, k // 2
    bases = weight.reshape(nset, g, cg, cg, k, k)
    kern = torch.einsum("bshw,sgoiyx->bhwgoiyx", att, bases)
    xp = F.pad(x, (p, p, p, p)).reshape(bsz, g, cg, h + 2 * p, w + 2 * p)
    out = x.new_zeros(bsz, g, cg, h, w)
    for ky in range(k):
        for kx in range(k):
            win = xp[:, :, :, ky : ky + h, kx : kx + w]
            out += torch.einsum("bhwgoi,bgihw->bgohw", kern[..., ky, kx], win)
    return out.reshape(bsz, c, h, w) + torch.einsum("bshw,sc->bchw", att, bias.reshape(nset, c))


def _kba_inputs(bsz, c, h, w, nset, g, k, dtype=torch.float64, grad=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(bsz, c, h, w), (bsz, nset, h, w), (1, nset, c * (c // g) * k * k), (1, nset, c)]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(grad) for s in shapes]


@pytest.mark.parametrize(
    ("c", "g", "k", "h", "w"),
    [(4, 2, 3, 5, 7), (6, 3, 1, 4, 3), (4, 1, 5, 6, 5), (6, 6, 3, 3, 8), (8, 2, 3, 1, 1)],
)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
def test_kba_equals_the_direct_float64_reference(c, g, k, h, w, chunk_bytes) -> None:
    x, att, weight, bias = _kba_inputs(2, c, h, w, 3, g, k)
    got = kba(x, att, weight, bias, k, g, chunk_bytes=chunk_bytes)
    torch.testing.assert_close(got, _kba_direct(x, att, weight, bias, k, g), rtol=1e-12, atol=1e-12)


def test_kba_with_one_hot_coefficients_is_a_grouped_conv() -> None:
    c, g, k, nset = 6, 3, 3, 4
    x, att, weight, bias = _kba_inputs(1, c, 5, 6, nset, g, k)
    att = torch.zeros_like(att)
    att[:, 2] = 1.0
    conv = F.conv2d(x, weight[0, 2].reshape(c, c // g, k, k), bias[0, 2], padding=k // 2, groups=g)
    torch.testing.assert_close(kba(x, att, weight, bias, k, g), conv, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("recompute", "chunk_bytes"), [(True, 1), (False, 1), (True, 1 << 30)])
def test_kba_gradcheck(recompute: bool, chunk_bytes: int) -> None:
    inputs = _kba_inputs(1, 4, 3, 4, 2, 2, 3, grad=True)

    def fn(*args):
        return kba(*args, 3, 2, chunk_bytes=chunk_bytes, recompute=recompute)

    # the checkpointed bands are checked on random projections of the Jacobian (fast mode)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, fast_mode=recompute)


def test_kba_recompute_gives_the_same_gradients_and_keeps_only_its_inputs() -> None:
    """With recompute (the default under autograd) the graph keeps only the inputs (the padded
    x, att and the bases), not the per-pixel kernels; the gradients are the same."""
    bsz, c, h, w, nset, g, k = 1, 8, 16, 16, 4, 4, 3
    grads, kept = {}, {}
    for recompute in (True, False):
        inputs = _kba_inputs(bsz, c, h, w, nset, g, k, dtype=torch.float32, grad=True)
        storages: dict[int, int] = {}

        def pack(t, storages=storages):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = kba(*inputs, k, g, chunk_bytes=8192, recompute=recompute)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[recompute] = [t.grad for t in inputs]
        kept[recompute] = sum(storages.values())
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    padded_x = bsz * c * (h + 2) * (w + 2) * 4
    inputs_bytes = padded_x + 4 * (bsz * nset * h * w + nset * c * (c // g) * k * k + nset * c)
    kernels_bytes = bsz * h * w * c * (c // g) * k * k * 4
    assert kept[True] <= inputs_bytes
    assert kept[False] >= kernels_bytes


def test_kba_bad_arguments() -> None:
    x, att, weight, bias = _kba_inputs(1, 4, 3, 3, 2, 2, 3)
    with pytest.raises(ConfigError, match="odd"):
        kba(x, att, weight, bias, 2, 2)
    with pytest.raises(ConfigError, match="weight must be"):
        kba(x, att, weight, bias, 3, 4)  # 4 groups need another basis size
    with pytest.raises(ConfigError, match="att"):
        kba(x, att[:, :, :2], weight, bias, 3, 2)
    with pytest.raises(ConfigError, match="bias must be"):
        kba(x, att, weight, bias[..., :3], 3, 2)
    with pytest.raises(ConfigError, match="groups"):
        kba(x, att, weight, bias, 3, 3)
    with pytest.raises(ConfigError, match="chunk_bytes"):
        kba(x, att, weight, bias, 3, 2, chunk_bytes=0)


# ------------------------------------------------------------------------- blocks: behaviour


def test_layernorm2d_matches_kbnets_formula_and_its_gradient() -> None:
    """KBNet's LayerNorm2d (eps 1e-6, biased variance) and the gradient of its custom backward,
    ``(g - y * mean(g * y) - mean(g)) / sqrt(var + eps)`` with ``g = grad * weight``."""
    gen = torch.Generator().manual_seed(1)
    norm = LayerNorm2d(5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(5, generator=gen, dtype=torch.float64) + 0.5)
        norm.bias.copy_(torch.randn(5, generator=gen, dtype=torch.float64))
    x = (torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    grad_out = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64)
    out = norm(x)
    out.backward(grad_out)
    mu = x.detach().mean(1, keepdim=True)
    var = x.detach().var(1, unbiased=False, keepdim=True)
    y = (x.detach() - mu) / (var + 1e-6).sqrt()
    torch.testing.assert_close(out.detach(), norm.weight.view(1, -1, 1, 1) * y + norm.bias.view(
        1, -1, 1, 1))  # fmt: skip
    g = grad_out * norm.weight.detach().view(1, -1, 1, 1)
    ref = (g - y * (g * y).mean(1, keepdim=True) - g.mean(1, keepdim=True)) / (var + 1e-6).sqrt()
    torch.testing.assert_close(x.grad, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(norm.weight.grad, (grad_out * y).sum((0, 2, 3)))
    assert norm.eps == 1e-6


def test_simple_gate() -> None:
    x = torch.arange(8.0).view(1, 4, 1, 2)
    torch.testing.assert_close(SimpleGate()(x), x[:, :2] * x[:, 2:])
    with pytest.raises(ConfigError, match="even"):
        SimpleGate()(torch.zeros(1, 3, 2, 2))


def _strong_layer_scale(block: torch.nn.Module) -> None:
    """Gains of 1 instead of 1e-2, so that the KBA and residual branches matter."""
    with torch.no_grad():
        for name in ("ga1", "attgamma", "beta", "gamma"):
            if hasattr(block, name):
                getattr(block, name).fill_(1.0)


@pytest.mark.parametrize(
    "block",
    [lambda: MFF(4, 1.5, False, nset=3), lambda: KBBlockS(4, nset=3, gc=2)],
    ids=["mff", "kbblock_s"],
)
def test_blocks_gradcheck_float64(block) -> None:
    torch.manual_seed(0)
    model = block().double()
    _strong_layer_scale(model)
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-7)
    model(x).square().sum().backward()
    assert model.w.grad is not None and model.w.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("block", "shape"),
    [
        (lambda: MFF(8), (2, 8, 7, 5)),
        (lambda: MFF(8, 2.0, True, act=False, gc=4, nset=5, k=5), (1, 8, 5, 9)),
        (lambda: MFF(32, interc=16, dw_kernel=5), (1, 32, 6, 5)),  # options, not official
        (lambda: KBBlockS(8), (1, 8, 9, 6)),
        (lambda: KBBlockS(48, interc=16), (1, 48, 3, 4)),
        (lambda: KBBlockS(8, FFN_Expand=1.5, lightweight=True, k=1), (2, 8, 3, 11)),
        (lambda: CAB(6, reduction=3), (2, 6, 5, 7)),
        (lambda: CAB(6, 5, 2, True, torch.nn.ReLU()), (1, 6, 4, 3)),
        (lambda: ORB(6, 3, 2, num_cab=2), (1, 6, 7, 1)),
    ],
)
def test_odd_sizes_keep_the_shape(block, shape) -> None:
    torch.manual_seed(0)
    model = block().eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    if hasattr(model, "chunk_bytes"):  # the banded KBA gives the same result
        model.chunk_bytes = 1
        with torch.no_grad():
            torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-6)


def test_mff_formula_with_its_layers() -> None:
    """MFF recomposed from its own layers and the direct KBA reference (act True and False)."""
    torch.manual_seed(3)
    for act in (True, False):
        m = MFF(8, 1.5, True, act=act, nset=4).double()
        _strong_layer_scale(m)
        x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
        att = m.conv2(x) * m.attgamma + m.conv211(x)
        uf = m.conv1(x)
        x2 = _kba_direct(uf, att, m.w, m.b, 3, m.g) * m.ga1 + uf
        x1 = m.dwconv(x)
        gated = (F.gelu(x1) if act else x1) * x2 * m.sca(x)
        torch.testing.assert_close(m(x), m.project_out(gated))


def test_cab_and_orb_formulas() -> None:
    torch.manual_seed(4)
    act = torch.nn.PReLU()
    cab = CAB(6, 3, 2, False, act)
    x = torch.randn(1, 6, 5, 4)
    r = cab.body[2](F.prelu(cab.body[0](x), act.weight))
    w = torch.sigmoid(cab.CA.conv_du[2](F.relu(cab.CA.conv_du[0](r.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(cab(x), r * w + x)
    orb = ORB(6, 3, 2, act, False, 3)
    assert all(orb.body[i].act is act for i in range(3)) and orb.body[3].bias is None
    h = x
    for i in range(3):
        h = orb.body[i](h)
    torch.testing.assert_close(orb(x), orb.body[3](h) + x)
    assert ORB(6, bias=True, num_cab=1).body[1].bias is None  # the closing conv ignores bias


# ---------------------------------------------------------------------- counts and registry


def test_parameter_counts() -> None:
    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(MFF(48, 1.5)) == 61_512
    assert count(KBBlockS(64)) == 115_712
    assert count(CAB(56)) == 58_017
    assert count(ORB(40)) == 251_201
    assert count(KBBlockS(32)) == 51_008 and count(CAB(40)) == 29_601  # the fixture widths


def test_official_key_layout() -> None:
    mff = set(MFF(48).state_dict())
    assert {"w", "b", "attgamma", "ga1", "conv2.2.bias", "conv211.weight", "sca.1.bias"} <= mff
    assert "dwconv.0.bias" not in mff  # bias=False
    wide = MFF(8, dw_kernel=5, interc=4).state_dict()  # the options change only these shapes
    assert tuple(wide["dwconv.1.weight"].shape) == (12, 1, 5, 5)
    assert tuple(wide["conv1.1.weight"].shape) == (12, 1, 3, 3)
    assert tuple(wide["conv2.0.weight"].shape) == (4, 2, 3, 3)
    s = KBBlockS(32).state_dict()
    assert tuple(s["w"].shape) == (1, 32, 1152) and tuple(s["conv11.1.weight"].shape) == (
        32, 4, 5, 5)  # fmt: skip
    orb = ORB(40).state_dict()
    assert len(orb) == 8 * 5 + 1 and "body.7.body.1.weight" in orb and "body.8.weight" in orb
    assert set(CALayer(8, 4).state_dict()) == {"conv_du.0.weight", "conv_du.2.weight"}


def test_blocks_are_registered_but_not_listed() -> None:
    listed = list_models(include_blocks=True)
    for name in BLOCK_CASES:
        assert name in listed and name not in list_models()
        assert get_model_info(name).is_block
    assert create_model("kbnet_mff").c == 72  # KBNet-L's dim 48
    assert create_model("kbnet_kbblock_s").c == 64
    orb = create_model("mprnet_orb")
    assert orb.num_cab == 8 and orb.body[0].body[0].in_channels == 40
    spec = get_model_info("kbnet_kbblock_s").resolve_spec({"c": 32})
    assert spec.inputs.optical_channels == 32 and spec.out_channels == 32
    with pytest.raises(ConfigError, match="valid arguments"):
        create_model("mprnet_cab", width=3)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MFF(36), "divisible"),  # conv2's 24 groups
        (lambda: MFF(7), "even"),  # interc 7 before the SimpleGate
        (lambda: MFF(8, gc=0), "gc"),
        (lambda: MFF(8, 1.25, False, True, 3), "KBA groups"),  # 10 // 3 = 3 groups
        (lambda: MFF(8, k=2), "odd"),
        (lambda: MFF(8, 0.01), "hidden"),
        (lambda: MFF(32), "pass interc="),  # the official min(dim, 24) = 24 groups
        (lambda: MFF(32, interc=12), "choose another interc"),
        (lambda: MFF(12, interc=3), "even"),
        (lambda: MFF(8, dw_kernel=4), "dw_kernel"),
        (lambda: MFF(8, act="yes"), "act"),
        (lambda: MFF(8.0), "dim"),
        (lambda: KBBlockS(32, DW_Expand=3), "DW_Expand"),
        (lambda: KBBlockS(48), "divisible"),
        (lambda: KBBlockS(8, FFN_Expand=1.125), "FFN_Expand"),
        (lambda: KBBlockS(10, gc=3), "KBA groups"),
        (lambda: KBBlockS(2), "c // 4"),
        (lambda: KBBlockS(8, nset=0), "nset"),
        (lambda: KBBlockS(8, lightweight=1), "lightweight"),
        (lambda: CAB(8, kernel_size=2), "odd"),
        (lambda: CAB(8, reduction=16), "reduction"),
        (lambda: CAB(8, act="prelu"), "nn.Module"),
        (lambda: CAB(8, bias=None), "bias"),
        (lambda: ORB(8, num_cab=-1), "num_cab"),
        (lambda: LayerNorm2d(0), "channels"),
    ],
)
def test_bad_arguments_raise_config_error(build, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()
