"""GLF-CR (Xu et al. 2022), its ablations and CARF (Bui & Le 2025): parity, layout, contract."""

from __future__ import annotations

import itertools
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
from cloudfree.models.glf_cr import GLFCR, VARIANTS, convert_official_glf_cr
from cloudfree.models.layers import (
    DropPath,
    ShiftMaskCache,
    dynamic_filter2d,
    dynamic_filter2d_generated,
    dynamic_filter2d_reference,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from cloudfree.normalization import normalize_optical

OFFICIAL_FULL_PARAMS = 14_827_373  # official RDN_residual_CR at the defaults
DEAD_GATE_PARAMS = 96 * 96 + 96  # official opt_distribute_1x1conv[5], never used by its forward
SMALL = dict(width=16, num_blocks=2, layers_per_block=2, growth=8)
NAMES = {
    "full": "glf_cr",
    "concat": "glf_cr_concat",
    "no_sar": "glf_cr_no_sar",
    "no_stl": "glf_cr_no_stl",
    "no_gf": "glf_cr_no_gf",
    "no_df": "glf_cr_no_df",
}
SIZE_TIED = ("attn_mask", "relative_position_index")


def _small(seed: int = 0, **kwargs: object) -> GLFCR:
    torch.manual_seed(seed)
    return GLFCR(**{**SMALL, **kwargs})  # type: ignore[arg-type]


def _inputs(batch: int = 1, h: int = 32, w: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 13, h, w, generator=g), torch.rand(batch, 2, h, w, generator=g)


def _unwrap(path: Path) -> dict[str, torch.Tensor]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    sd = ck["network"] if "network" in ck else ck["model_state_dict"]
    return {k.removeprefix("module.").removeprefix("net_G."): v for k, v in sd.items()}


def _case(shared_path: Callable[[str], Path], name: str) -> tuple[Path, dict]:
    case_file = shared_path(f"parity/{name}/case.json")
    return case_file.parent, json.loads(case_file.read_text())


def _load_case_model(d: Path, case: dict) -> GLFCR:
    model = create_model("carf" if case["name"] == "carf" else "glf_cr", **case["kwargs"])
    model.load_state_dict(convert_official_glf_cr(_unwrap(d / case["checkpoint"])), strict=True)
    return model.eval()  # type: ignore[return-value]


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("case_name", ["glf_cr", "glf_cr_resize", "carf"])
def test_parity_with_official(shared_path: Callable[[str], Path], case_name: str) -> None:
    d, case = _case(shared_path, case_name)
    model = _load_case_model(d, case)
    io = load_file(str(d / "io.safetensors"))
    with torch.no_grad():
        pred = model(optical=io["input.cloudy"], sar=io["input.sar"])
    torch.testing.assert_close(pred, io["output.pred"], **case["tolerance"])
    # the grad-recording path (full kernel tensor, custom autograd filter) agrees as well
    pred_grad = model(optical=io["input.cloudy"], sar=io["input.sar"])
    torch.testing.assert_close(pred_grad.detach(), io["output.pred"], **case["tolerance"])


def test_carf_weights_differ_under_glf_cr_semantics(shared_path: Callable[[str], Path]) -> None:
    """The carf fixture separates the two mask variants (case notes: up to 2.8e-3)."""
    d, case = _case(shared_path, "carf")
    io = load_file(str(d / "io.safetensors"))
    sd = convert_official_glf_cr(_unwrap(d / case["checkpoint"]))
    glf = create_model("glf_cr", **case["kwargs"]).eval()
    glf.load_state_dict(sd, strict=True)
    with torch.no_grad():
        pred = glf(optical=io["input.cloudy"], sar=io["input.sar"])
    assert (pred - io["output.pred"]).abs().max() > 1e-3


def test_parity_weights_run_at_another_size(shared_path: Callable[[str], Path]) -> None:
    d, case = _case(shared_path, "glf_cr")
    model = _load_case_model(d, case)
    optical, sar = _inputs(batch=1, h=48, w=80, seed=3)
    with torch.no_grad():
        out = model(optical=optical, sar=sar)
        odd = model(optical=optical[..., :45, :77], sar=sar[..., :45, :77])
    assert out.shape == (1, 13, 48, 80) and torch.isfinite(out).all()
    assert odd.shape == (1, 13, 45, 77) and torch.isfinite(odd).all()
    # the model built for 32 still reproduces the fixture after running at other sizes
    io = load_file(str(d / "io.safetensors"))
    with torch.no_grad():
        pred = model(optical=io["input.cloudy"], sar=io["input.sar"])
    torch.testing.assert_close(pred, io["output.pred"], **case["tolerance"])


# --------------------------------------------------------------------------- key layout
def _manifest(shared_path: Callable[[str], Path], name: str) -> dict[str, list[int]]:
    return json.loads(shared_path(f"parity/{name}/keys_full.json").read_text())


@pytest.fixture(scope="module")
def full_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in GLFCR().state_dict().items()}


def test_full_size_parameter_count() -> None:
    """Needs no shared data: the full-size model has the official count minus the dead gate."""
    model = create_model("glf_cr")
    ours = sum(p.numel() for p in model.parameters())
    assert ours == OFFICIAL_FULL_PARAMS - DEAD_GATE_PARAMS == 14_818_061


def test_official_manifest_parameter_count(shared_path: Callable[[str], Path]) -> None:
    """The official key manifest (shared parity data) holds OFFICIAL_FULL_PARAMS parameters."""
    manifest = _manifest(shared_path, "glf_cr")
    official = sum(math.prod(shape) for k, shape in manifest.items() if not k.endswith(SIZE_TIED))
    assert official == OFFICIAL_FULL_PARAMS


def _mapping(official: dict[str, torch.Tensor]) -> dict[str, str | None]:
    """official key -> our key (None when dropped), traced through the converter by identity."""
    converted = convert_official_glf_cr(official)
    ours_by_id = {id(v): k for k, v in converted.items()}
    return {k: ours_by_id.get(id(v)) for k, v in official.items()}


@pytest.mark.parametrize("case_name", ["glf_cr", "carf"])
def test_full_size_manifest_is_covered(
    shared_path: Callable[[str], Path], case_name: str, full_shapes: dict[str, tuple[int, ...]]
) -> None:
    manifest = _manifest(shared_path, case_name)
    assert len(manifest) == 988
    fake = {k: torch.empty(shape, device="meta") for k, shape in manifest.items()}
    mapping = _mapping(fake)
    mapped = {ours: official for official, ours in mapping.items() if ours is not None}
    assert len(mapped) == len([v for v in mapping.values() if v is not None])  # one-to-one
    assert set(mapped) == set(full_shapes)  # every one of our keys, nothing else
    for ours, official in mapped.items():
        assert tuple(manifest[official]) == full_shapes[ours], (official, ours)
    dropped = {k for k, v in mapping.items() if v is None}
    assert {k for k in dropped if not k.endswith(SIZE_TIED)} == {
        "opt_distribute_1x1conv.5.weight",
        "opt_distribute_1x1conv.5.bias",
    }
    assert len(dropped) == 2 + 6 * 5 + 6 * 2  # dead gate, 30 index buffers, 12 shift masks


def test_converter_names_unknown_keys() -> None:
    sd = {"SFENet1.weight": torch.zeros(1), "RDBs.0.convs.0.bogus.weight": torch.zeros(1)}
    with pytest.raises(ConfigError, match=r"RDBs\.0\.convs\.0\.bogus\.weight"):
        convert_official_glf_cr(sd)
    with pytest.raises(ConfigError, match="model.0.weight"):
        convert_official_glf_cr({"model.0.weight": torch.zeros(1)})


def _official_names(num_blocks: int, layers: int) -> list[str]:
    names = ["SFENet1", "SFENet2", "SFENet1_SAR", "SFENet2_SAR", "GFF.0", "GFF.1", "UPNet.0"]
    names += ["UPNet.2"]
    for i in range(num_blocks):
        names += [f"RDBs.{i}.LFF", f"RDBs.{i}.LFF_SAR", f"sar_fuse_1x1conv.{i}"]
        names += [f"opt_distribute_1x1conv.{i}", f"DF.{i}.fac_warp.0.0", f"DF.{i}.fac_warp.3.0"]
        names += [f"DF.{i}.fac_warp.{r}.stem.{s}" for r in (1, 2) for s in (0, 2)]
        for j in range(layers):
            p = f"RDBs.{i}.convs.{j}."
            names += [p + n for n in ("conv.0", "conv_SAR.0", "norm2", "norm2_SAR")]
            names += [p + "attn." + n for n in ("qkv", "qkv_SAR", "proj", "proj_SAR")]
            names += [p + "attn.attn_fuse_1x1conv"]
            names += [p + m + "." + f for m in ("mlp", "mlp_SAR") for f in ("fc1", "fc2")]
    keys = [f"{n}.{wb}" for n in names for wb in ("weight", "bias")]
    for i, j in itertools.product(range(num_blocks), range(layers)):
        keys += [f"RDBs.{i}.convs.{j}.attn.relative_position_bias_table"]
        keys += [f"RDBs.{i}.convs.{j}.attn.relative_position_index"]
        keys += [f"RDBs.{i}.convs.{j}.attn_mask"] if j % 2 else []
    return keys


def test_converter_round_trip_on_small_model() -> None:
    """Our small model -> official names (inverse of the converter) -> back, loaded strictly."""
    model = _small(seed=4).eval()
    keys = _official_names(model.num_blocks, model.layers_per_block)
    mapping = _mapping({k: torch.empty(0, device="meta") for k in keys})
    ours = model.state_dict()
    theirs = {k: ours[v] if v is not None else torch.zeros(3) for k, v in mapping.items()}
    fresh = _small(seed=5).eval()
    fresh.load_state_dict(convert_official_glf_cr(theirs), strict=True)
    optical, sar = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(fresh(optical, sar), model(optical, sar), rtol=0, atol=0)


# --------------------------------------------------------------------------- dynamic filter
def _loop_reference(x: torch.Tensor, kernel: torch.Tensor, k: int) -> torch.Tensor:
    """Literal definition: out[b,c,y,x] = sum pad[b,c,y+ky,x+kx] * K[b, c*k*k+ky*k+kx, y, x]."""
    pad = F.pad(x, (k // 2,) * 4, mode="replicate")
    b, c, h, w = x.shape
    out = torch.zeros_like(x)
    for ci, ky, kx in itertools.product(range(c), range(k), range(k)):
        out[:, ci] += pad[:, ci, ky : ky + h, kx : kx + w] * kernel[:, ci * k * k + ky * k + kx]
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_dynamic_filter_matches_references_with_gradients(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    kern = torch.randn(2, 3 * k * k, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    out = dynamic_filter2d(x, kern, k)
    torch.testing.assert_close(out, _loop_reference(x, kern, k))
    ref = dynamic_filter2d_reference(x, kern, k)
    torch.testing.assert_close(out, ref)
    up = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gx, gk = torch.autograd.grad(out, (x, kern), up)
    rx, rk = torch.autograd.grad(ref, (x, kern), up)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gk, rk)
    xs, ks = x[:1, :2, :4, :5].detach(), kern[:1, : 2 * k * k, :4, :5].detach()
    xs.requires_grad_(True)
    ks.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: dynamic_filter2d(a, b, k), (xs, ks))


def test_dynamic_filter_generated_matches_explicit_kernels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 11, generator=g, dtype=torch.float64)
    feat = torch.randn(2, 6, 9, 11, generator=g, dtype=torch.float64)
    conv = torch.nn.Conv2d(6, 4 * 25, 1).double()
    kern = F.leaky_relu(conv(feat), 0.1)
    expected = dynamic_filter2d_reference(x, kern, 5)
    for chunk in (1, 4000, 1 << 22):  # one row per band, a few rows, everything at once
        got = dynamic_filter2d_generated(
            x, feat, conv.weight, conv.bias, 5, negative_slope=0.1, chunk_bytes=chunk
        )
        torch.testing.assert_close(got, expected.detach())


def test_dynamic_filter_shape_errors() -> None:
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ConfigError, match="kernel must have shape"):
        dynamic_filter2d(x, torch.zeros(1, 49, 4, 4), 5)
    with pytest.raises(ConfigError, match="odd"):
        dynamic_filter2d(x, torch.zeros(1, 32, 4, 4), 4)


# --------------------------------------------------------------------------- window helpers
def test_relative_position_index_and_partition() -> None:
    ws = 3
    idx = relative_position_index(ws)
    for i, j in itertools.product(range(ws * ws), repeat=2):
        (yi, xi), (yj, xj) = divmod(i, ws), divmod(j, ws)
        assert idx[i, j] == (yi - yj + ws - 1) * (2 * ws - 1) + (xi - xj + ws - 1)
    x = torch.arange(2 * 6 * 9 * 4, dtype=torch.float32).view(2, 6, 9, 4)
    win = window_partition(x, ws)
    assert win.shape == (2 * 2 * 3, 9, 4)
    torch.testing.assert_close(win[4], x[0, 3:6, 3:6].reshape(9, 4))  # image 0, window (1, 1)
    torch.testing.assert_close(window_reverse(win, ws, 6, 9), x)


def test_shift_mask_matches_region_recipe() -> None:
    h, w, ws, shift = 16, 24, 8, 4
    regions = torch.zeros(h, w)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            regions[hs, wsl] = cnt
            cnt += 1
    win = window_partition(regions.view(1, h, w, 1), ws).squeeze(-1)
    expected = (win[:, None, :] != win[:, :, None]).float() * -100.0
    torch.testing.assert_close(shifted_window_mask(h, w, ws, shift), expected)
    inf = shifted_window_mask(h, w, ws, shift, value=float("-inf"))
    assert torch.equal(torch.isinf(inf), expected != 0)
    cache = ShiftMaskCache(maxsize=2)
    a = cache.get(h, w, ws, shift, torch.device("cpu"), torch.float32)
    assert cache.get(h, w, ws, shift, torch.device("cpu"), torch.float32) is a
    cache.get(h, 16, ws, shift, torch.device("cpu"), torch.float32)
    cache.get(h, 32, ws, shift, torch.device("cpu"), torch.float64)
    assert len(cache) == 2


def test_drop_path() -> None:
    x = torch.ones(2000, 3)
    layer = DropPath(0.25)
    assert layer.eval()(x) is x
    torch.manual_seed(0)
    y = layer.train()(x)
    kept = y[:, 0] != 0
    assert torch.all(y[kept] == 1 / 0.75) and torch.all(y[~kept] == 0)
    assert 0.2 < (~kept).float().mean() < 0.3
    with pytest.raises(ConfigError):
        DropPath(1.0)


# --------------------------------------------------------------------------- semantics
def test_carf_and_glf_cr_differ_only_with_shifted_windows() -> None:
    glf = _small(seed=6).eval()
    carf = create_model("carf", **SMALL).eval()
    carf.load_state_dict(glf.state_dict(), strict=True)
    optical, sar = _inputs(batch=2, h=32, w=48, seed=7)
    with torch.no_grad():
        assert (glf(optical, sar) - carf(optical, sar)).abs().max() > 1e-6
        # 16x16 input -> 8x8 features = one window: the official rule turns the shift off
        small_o, small_s = optical[..., :16, :16], sar[..., :16, :16]
        torch.testing.assert_close(glf(small_o, small_s), carf(small_o, small_s), rtol=0, atol=0)


def test_no_sar_ignores_sar() -> None:
    model = create_model("glf_cr_no_sar", **SMALL).eval()
    optical, sar = _inputs()
    with torch.no_grad():
        a = model(optical=optical, sar=sar)
        b = model(optical=optical, sar=torch.rand_like(sar))
        c = model(optical=optical, sar=None)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_variant_structure() -> None:
    def has(model: torch.nn.Module, part: str) -> bool:
        return any(part in k for k in model.state_dict())

    full = _small(variant="full")
    assert has(full, "attn.gate") and has(full, "kernel_gen") and has(full, "sfe1_sar")
    assert not has(full, f"fusions.{SMALL['num_blocks'] - 1}.gate_sar")  # the dead official gate
    concat = _small(variant="concat")
    assert concat.sfe1_opt.in_channels == 4 * 15 and not has(concat, "_sar")
    assert not has(concat, "fusions") and not has(concat, "attn.gate") and has(concat, "attn.qkv")
    no_sar = _small(variant="no_sar")
    assert no_sar.sfe1_opt.in_channels == 4 * 13 and not has(no_sar, "_sar")
    no_stl = _small(variant="no_stl")
    assert not has(no_stl, "attn") and not has(no_stl, "mlp") and has(no_stl, "kernel_gen")
    no_gf = _small(variant="no_gf")
    assert has(no_gf, "attn.qkv_sar") and not has(no_gf, "attn.gate") and has(no_gf, "kernel_gen")
    no_df = _small(variant="no_df")
    assert not has(no_df, "kernel_gen") and has(no_df, "fusions.0.gate_sar")
    assert has(no_df, "attn.gate")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(50, 70), (20, 36), (5, 7)])
def test_any_size_every_variant(variant: str, size: tuple[int, int]) -> None:
    model = create_model(NAMES[variant], **SMALL).eval()
    optical, sar = _inputs(batch=2, h=size[0], w=size[1])
    with torch.no_grad():
        out = model(optical=optical, sar=sar)
    assert out.shape == optical.shape and torch.isfinite(out).all()
    assert not [k for k in model.state_dict() if k.endswith(SIZE_TIED) or "mask" in k]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_parameter_gets_a_gradient(variant: str) -> None:
    model = _small(seed=8, variant=variant).train()
    optical, sar = _inputs(batch=2, h=32, w=32)
    sar.requires_grad_(True)
    (model(optical=optical, sar=sar) - optical).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero
    if variant != "no_sar":
        assert sar.grad is not None and sar.grad.abs().sum() > 0


def test_training_mode_is_stochastic_and_eval_deterministic() -> None:
    model = _small(seed=9, drop_path=0.5)
    optical, sar = _inputs(batch=4)
    model.train()
    torch.manual_seed(0)
    a = model(optical, sar)
    torch.manual_seed(1)
    b = model(optical, sar)
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(optical, sar), model(optical, sar))


def test_grad_and_no_grad_paths_agree() -> None:
    model = _small(seed=10).eval()
    optical, sar = _inputs(batch=2, h=48, w=32)
    with torch.no_grad():
        fast = model(optical, sar)
    slow = model(optical, sar)
    assert slow.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-6)


def test_float64_and_mask_cache() -> None:
    model = _small(seed=11).eval()
    optical, sar = _inputs(h=32, w=48)
    with torch.no_grad():
        out32 = model(optical, sar)
        out64 = model.double()(optical.double(), sar.double())
        model(optical.double()[..., :32, :32], sar.double()[..., :32, :32])
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)
    assert len(model._masks) == 3  # (16, 24) float32, (16, 24) and (16, 16) float64


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="variant"):
        GLFCR(variant="nope")
    with pytest.raises(ConfigError, match="num_heads"):
        GLFCR(growth=12, num_heads=8)
    with pytest.raises(ConfigError, match="dyn_kernel"):
        GLFCR(dyn_kernel=4)
    with pytest.raises(ConfigError, match="drop_path"):
        GLFCR(drop_path=1.0)
    with pytest.raises(ConfigError, match="num_blocks"):
        GLFCR(num_blocks=0)
    model = _small()
    optical, sar = _inputs()
    with pytest.raises(ConfigError, match="optical must have shape"):
        model(optical[:, :12], sar)
    with pytest.raises(ConfigError, match="sar must have shape"):
        model(optical, sar[:, :1])
    with pytest.raises(ConfigError, match="share batch and spatial size"):
        model(optical, sar[..., :16])
    with pytest.raises(ConfigError, match="needs a SAR input"):
        model(optical, None)


@pytest.mark.parametrize("name", ["glf_cr", "carf"])
def test_registry_loads_the_official_layout(name: str, tmp_path: Path) -> None:
    """What the registry entries do (not what they say): ``load_official_checkpoint`` reads an
    official-layout checkpoint (``{"network": ...}``, official key names) through the
    registered converter into the registered model, which then computes exactly what the
    source computes; its recorded protocol scales DN by 1/10000."""
    source = create_model(name, **SMALL).eval()
    keys = _official_names(source.num_blocks, source.layers_per_block)  # type: ignore[arg-type]
    mapping = _mapping({k: torch.empty(0, device="meta") for k in keys})
    ours = source.state_dict()
    official = {k: ours[v] if v is not None else torch.zeros(3) for k, v in mapping.items()}
    path = tmp_path / "net_CR.pth"
    torch.save({"network": official}, path)
    loaded = load_official_checkpoint(name, path, **SMALL).eval()
    optical, sar = _inputs(h=32, w=48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(optical, sar), source(optical, sar), rtol=0, atol=0)
    dn = np.array([[[0, 5000, 10000, 15000]]], dtype=np.uint16)
    scaled = normalize_optical(dn, loaded.cloudfree_config["protocol"]).array
    np.testing.assert_allclose(scaled[0, 0], [0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize(("variant", "name"), sorted(NAMES.items()))
def test_registry_name_builds_its_variant(variant: str, name: str) -> None:
    """Each registered name builds the network of its ablation (same parameters and shapes as
    ``GLFCR(variant=...)``; the variants differ in them, see test_variant_structure)."""
    built = {k: v.shape for k, v in create_model(name, **SMALL).state_dict().items()}
    assert built == {k: v.shape for k, v in _small(variant=variant).state_dict().items()}


def test_init_mirrors_official() -> None:
    model = GLFCR(width=16, num_blocks=1, layers_per_block=2, growth=16)
    for layer in model.blocks[0].layers:
        table = layer.attn.bias_table
        assert table.abs().max() <= 2 and 0.01 < table.std() < 0.03
        assert torch.equal(layer.norm_opt.weight, torch.ones(16))
