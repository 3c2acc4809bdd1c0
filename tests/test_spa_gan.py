"""SpA-GAN (``spa_gan``): official-weight parity, the converter's BGR -> RGB permutation, the
direction-attention quirk, the ``spa_gan_8bit`` protocol, the loss, the discriminator and one
adversarial training run of the recipe at tiny size.

The references here are written from the official code's description (``Penn000/SpA-GAN_for_
cloud_removal``: clone-then-assign IRNN, a SAM whose direction weights are discarded, the
two-branch discriminator), not from our modules.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cloudfree.errors import ConfigError
from cloudfree.losses import SpAGANLoss, build_loss
from cloudfree.models import (
    ModelOutput,
    create_discriminator,
    create_model,
    get_model_info,
    list_discriminators,
    load_official_checkpoint,
    run_model,
    spec_of,
)
from cloudfree.models.discriminators import SpAGANDiscriminator, discriminator_min_size
from cloudfree.models.spa_gan import IRNNStep, convert_official_spa_gan
from cloudfree.normalization import denormalize_optical, normalize_optical

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OFFICIAL_PARAMS = 219_300
#: never affect the output by default: SAM.conv_in (32 * 32 * 9) and the direction attention
UNUSED_PARAMS = 32 * 32 * 9 + (32 * 16 * 9 + 16) + (16 * 16 * 9 + 16) + (16 * 4 + 4)


# ------------------------------------------------------------------- official-layout helpers
def official_shapes(width: int = 32) -> dict[str, tuple[int, ...]]:
    """The official ``Generator`` state dict layout (``gen.gen.<SPANet key>``) for ``width``."""
    w, h = width, width // 2
    shapes: dict[str, tuple[int, ...]] = {"conv_in.0.weight": (w, 3, 3, 3)}
    for n in (1, 2):
        for d in ("left", "right", "up", "down"):
            shapes[f"SAM1.irnn{n}.{d}_weight.weight"] = (w, 1, 1, 1)
            shapes[f"SAM1.irnn{n}.{d}_weight.bias"] = (w,)
    shapes |= {
        "SAM1.conv_in.weight": (w, w, 3, 3),
        "SAM1.conv1.weight": (w, w, 1, 1),
        "SAM1.conv1.bias": (w,),
        "SAM1.conv2.weight": (w, 4 * w, 1, 1),
        "SAM1.conv2.bias": (w,),
        "SAM1.conv3.weight": (w, 4 * w, 1, 1),
        "SAM1.conv3.bias": (w,),
        "SAM1.attention_layer.conv1.weight": (h, w, 3, 3),
        "SAM1.attention_layer.conv1.bias": (h,),
        "SAM1.attention_layer.conv2.weight": (h, h, 3, 3),
        "SAM1.attention_layer.conv2.bias": (h,),
        "SAM1.attention_layer.conv3.weight": (4, h, 1, 1),
        "SAM1.attention_layer.conv3.bias": (4,),
        "SAM1.conv_out.weight": (1, w, 1, 1),
    }
    for i in range(1, 18):
        shapes[f"res_block{i}.group1.conv1.weight"] = (w, w, 1, 1)
        shapes[f"res_block{i}.group1.conv2.weight"] = (w, w, 3, 3)
        shapes[f"res_block{i}.group1.conv3.weight"] = (w, w, 1, 1)
    shapes["conv_out.0.weight"] = (3, w, 3, 3)
    return {f"gen.gen.{k}": v for k, v in shapes.items()}


def random_official(width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: 0.15 * torch.randn(s, generator=g) + (0.05 if k.endswith("bias") else 0.0)
        for k, s in official_shapes(width).items()
    }


def reference_spanet(
    sd: dict[str, torch.Tensor], x_bgr: torch.Tensor, applied: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(attention4, out)`` of the official SPANet on BGR input, from an official-layout state
    dict: clone-then-assign IRNN, direction weights discarded (or multiplied when
    ``applied``), SAM1 applied four times, 17 dilated bottlenecks."""
    p = {k.removeprefix("gen.gen."): v for k, v in sd.items()}

    def conv(x, key, pad=0, dil=1, groups=1):
        return F.conv2d(x, p[f"{key}.weight"], p.get(f"{key}.bias"), 1, pad, dil, groups)

    def irnn(x, name):
        c, h, w = x.shape[1:]
        out = {d: x.clone() for d in ("up", "right", "down", "left")}
        lin = {d: conv(x, f"SAM1.{name}.{d}_weight", groups=c) for d in out}
        out["left"][..., 1:] = F.relu(lin["left"][..., : w - 1] + x[..., 1:])
        out["right"][..., :-1] = F.relu(lin["right"][..., 1:] + x[..., : w - 1])
        out["up"][..., 1:, :] = F.relu(lin["up"][..., : h - 1, :] + x[..., 1:, :])
        out["down"][..., :-1, :] = F.relu(lin["down"][..., 1:, :] + x[..., : h - 1, :])
        return [out["up"], out["right"], out["down"], out["left"]]

    def sam(x):
        a = F.relu(conv(x, "SAM1.attention_layer.conv1", pad=1))
        a = F.relu(conv(a, "SAM1.attention_layer.conv2", pad=1))
        weight = torch.sigmoid(conv(a, "SAM1.attention_layer.conv3"))
        out = conv(x, "SAM1.conv1")
        for n, fuse in ((1, "SAM1.conv2"), (2, "SAM1.conv3")):
            maps = irnn(out, f"irnn{n}")
            if applied:
                maps = [m * weight[:, k : k + 1] for k, m in enumerate(maps)]
            out = conv(torch.cat(maps, 1), fuse)
        return torch.sigmoid(conv(F.relu(out), "SAM1.conv_out"))

    def block(x, i):
        key = f"res_block{i}.group1"
        y = F.relu(conv(x, f"{key}.conv1"))
        y = F.relu(conv(y, f"{key}.conv2", pad=2, dil=2))
        return conv(y, f"{key}.conv3")

    out = F.relu(conv(x_bgr, "conv_in.0", pad=1))
    for i in (1, 2, 3):
        out = F.relu(block(out, i) + out)
    att = None
    for group in range(4):
        att = sam(out)
        for i in range(4 + 3 * group, 7 + 3 * group):
            out = F.relu(block(out, i) * att + out)
    for i in (16, 17):
        out = F.relu(block(out, i) + out)
    return att, conv(out, "conv_out.0", pad=1)


def converted_model(sd: dict[str, torch.Tensor], width: int, **kwargs: Any) -> torch.nn.Module:
    model = create_model("spa_gan", width=width, **kwargs)
    model.load_state_dict(convert_official_spa_gan(sd), strict=True)
    return model.eval()


# --------------------------------------------------------------------------- parity
def test_official_rice1_weights_match_the_fixture(shared_path):
    """Real RICE1 weights: our RGB model on the reversed fixture input gives the official BGR
    outputs (pred reversed back) and the official last attention map."""
    d = shared_path("parity/spa_gan_rice1/case.json").parent
    model = load_official_checkpoint("spa_gan", d / "checkpoint.pth")
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    io = load_file(str(d / "io.safetensors"))
    x = io["input.cloudy_bgr"]
    with torch.no_grad():
        out = run_model(model, optical=x.flip(1))
    tol = dict(atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(out.pred.flip(1), io["output.pred"], **tol)
    torch.testing.assert_close(out.extras["attention"], io["output.attention"], **tol)
    maps = out.extras["attention_maps"]
    assert maps.shape == (2, 4, 96, 96) and torch.equal(maps[:, 3:], out.extras["attention"])
    # the same file keeps exactly the official layout (the test's own table)
    official = torch.load(d / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert {k: tuple(v.shape) for k, v in official.items()} == official_shapes(32)
    # the evidently intended SAM changes the output of these weights (one 48 px crop: fast)
    applied = load_official_checkpoint("spa_gan", d / "checkpoint.pth", direction_weights="applied")
    crop = x[:1, :, :48, :48].flip(1)
    with torch.no_grad():
        other = run_model(applied, optical=crop).pred
        default = run_model(model, optical=crop).pred
    assert (other - default).abs().max() > 1e-2


def test_spa_gan_8bit_reproduces_the_fixture_input(shared_path):
    """The fixture's 8-bit BGR input is ``spa_gan_8bit`` of the real SEN12MS-CR patch, bit for
    bit (including the DN 2000 pixels that sit exactly half-way between two levels)."""
    from cloudfree.bands import get_band_set
    from cloudfree.io import read_raster

    d = shared_path("data/sen12mscr")
    cloudy = read_raster(
        d / "ROIs1970_fall_s2_cloudy/s2_cloudy_139/ROIs1970_fall_s2_cloudy_139_p839.tif"
    ).array
    clear = read_raster(d / "ROIs1970_fall_s2/s2_139/ROIs1970_fall_s2_139_p839.tif").array
    rgb = list(get_band_set("rgb").indices)
    x = load_file(str(shared_path("parity/spa_gan_rice1/io.safetensors")))["input.cloudy_bgr"]
    crops = [cloudy[rgb, 0:96, 0:96], clear[rgb, 100:196, 80:176]]
    assert (crops[0] == 2000).any()  # the half-way case is present
    for k, dn in enumerate(crops):
        ours = torch.from_numpy(normalize_optical(dn, "spa_gan_8bit").array)
        assert torch.equal(ours.flip(0), x[k])


def test_predict_and_convert_use_the_official_8bit_protocol(shared_path, tmp_path):
    """``cloudfree predict --model spa_gan --weights <official .pth>`` on a 13-band scene: the
    RGB bands scaled with spa_gan_8bit, the official weights, the prediction back in DN (and
    so tagged); ``cloudfree models convert`` records that protocol for the weights."""
    import json

    import rasterio
    from click.testing import CliRunner

    from cloudfree.cli import main
    from cloudfree.io import read_raster
    from cloudfree.models import load_model
    from cloudfree.synth import write_scene_pair

    ckpt = shared_path("parity/spa_gan_rice1/checkpoint.pth")
    assert load_model(ckpt, name="spa_gan").protocol == "spa_gan_8bit"
    scene = write_scene_pair(tmp_path / "scene", height=40, width=56, seed=4, cloud_cover=0.4)
    out = tmp_path / "pred.tif"
    args = ["--optical", str(scene.cloudy), "--sar", str(scene.s1), "--weights", str(ckpt)]
    tiles = ["--tile-size", "64", "--overlap", "8", "--quiet"]  # one tile: the whole scene
    res = CliRunner().invoke(
        main, ["predict", *args, "--model", "spa_gan", "--out", str(out)] + tiles
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.tags()["NORMALIZATION_PROTOCOL"] == "spa_gan_8bit"
        assert ds.descriptions == ("B04", "B03", "B02")
        got = ds.read().astype(np.float64)
    dn = read_raster(scene.cloudy).array[[3, 2, 1]]
    x = torch.from_numpy(normalize_optical(dn, "spa_gan_8bit").array)[None]
    model = load_official_checkpoint("spa_gan", ckpt)
    with torch.no_grad():
        pred = run_model(model, optical=x).pred[0].numpy()
    np.testing.assert_allclose(got, denormalize_optical(pred, "spa_gan_8bit"), atol=1.0)
    res = CliRunner().invoke(main, ["models", "convert", "spa_gan", str(ckpt), str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "w" / "config.json").read_text())["protocol"] == "spa_gan_8bit"
    assert load_model(tmp_path / "w").protocol == "spa_gan_8bit"


# --------------------------------------------------------------------------- model
def test_parameter_counts_and_frozen_unused_parameters():
    model = create_model("spa_gan")
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == OFFICIAL_PARAMS - UNUSED_PARAMS == 203_072
    applied = create_model("spa_gan", direction_weights="applied")
    trainable = sum(p.numel() for p in applied.parameters() if p.requires_grad)
    assert trainable == OFFICIAL_PARAMS - 32 * 32 * 9
    assert not applied.sam.unused_conv_in.weight.requires_grad


def test_registry_entry():
    info = get_model_info("spa_gan")
    assert info.protocol == "glf_cr" and info.official_protocol == "spa_gan_8bit"
    assert info.bands == "rgb"
    assert info.default_recipe == "spa_gan" and info.official_converter is convert_official_spa_gan
    spec = spec_of(create_model("spa_gan", width=4))
    assert spec.inputs.optical_channels == 3 and spec.out_channels == 3
    assert not spec.inputs.needs_sar and spec.inputs.spatial_multiple == 1
    assert spec.tasks == {"regression", "adversarial"}


@pytest.mark.parametrize("size", [(37, 50), (1, 2), (3, 1)])
def test_any_size_and_outputs(size):
    torch.manual_seed(0)
    model = create_model("spa_gan", width=4).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = run_model(model, optical=x, sar=torch.rand(2, 2, *size))  # SAR ignored
    assert out.pred.shape == (2, 3, *size)
    assert out.extras["attention"].shape == (2, 1, *size)
    assert out.extras["attention_maps"].shape == (2, 4, *size)
    assert bool(((out.extras["attention_maps"] > 0) & (out.extras["attention_maps"] < 1)).all())


def test_irnn_step_against_clone_and_assign():
    torch.manual_seed(1)
    step = IRNNStep(3)
    for conv in (step.up, step.right, step.down, step.left):
        torch.nn.init.normal_(conv.weight)
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 3, 5, 4)
    a = {d: getattr(step, d).weight.view(1, 3, 1, 1) for d in ("up", "right", "down", "left")}
    b = {d: getattr(step, d).bias.view(1, 3, 1, 1) for d in a}
    want = {d: x.clone() for d in a}
    for i in range(1, 5):
        want["up"][:, :, i] = torch.relu(
            a["up"][..., 0] * x[:, :, i - 1] + b["up"][..., 0] + x[:, :, i]
        )
    for i in range(0, 4):
        want["down"][:, :, i] = torch.relu(
            a["down"][..., 0] * x[:, :, i + 1] + b["down"][..., 0] + x[:, :, i]
        )
    for j in range(1, 4):
        want["left"][..., j] = torch.relu(
            a["left"][..., 0] * x[..., j - 1] + b["left"][..., 0] + x[..., j]
        )
    for j in range(0, 3):
        want["right"][..., j] = torch.relu(
            a["right"][..., 0] * x[..., j + 1] + b["right"][..., 0] + x[..., j]
        )
    with torch.no_grad():
        got = step(x)
    for name, value in zip(("up", "right", "down", "left"), got, strict=True):
        torch.testing.assert_close(value, want[name], atol=1e-6, rtol=1e-6)
    assert torch.equal(got[0][:, :, 0], x[:, :, 0])  # the edge keeps its (negative) input


@pytest.mark.parametrize(
    ("shape", "channels_last"),
    [((2, 3, 5, 4), False), ((2, 3, 5, 4), True), ((1, 3, 1, 6), False), ((1, 2, 4, 1), True)],
)
def test_irnn_training_path_matches_autograd(shape, channels_last):
    """The hand-written backward of the concatenated IRNN step (used when gradients are
    recorded) gives autograd's gradients of ``cat(IRNNStep(x))``, keeps the input's layout,
    and passes gradcheck, down to maps of one row or one column."""
    from cloudfree.models.spa_gan import _IRNNFunction

    torch.manual_seed(3)
    step = IRNNStep(shape[1]).double()
    for conv in (step.up, step.right, step.down, step.left):
        torch.nn.init.normal_(conv.weight)
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(*shape, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_ref, x_got = x.clone().requires_grad_(), x.clone().requires_grad_()
    want = torch.cat(step(x_ref), dim=1)
    got = step.concatenated(x_got)
    assert got.grad_fn is not None and "IRNN" in type(got.grad_fn).__name__
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    g = torch.randn_like(want)
    params = list(step.parameters())
    for a, b in zip(
        torch.autograd.grad(want, [x_ref, *params], g),
        torch.autograd.grad(got, [x_got, *params], g),
        strict=True,
    ):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)
    weight = torch.randn(4, shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, shape[1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_IRNNFunction.apply, (x.clone().requires_grad_(), weight, bias))
    with torch.no_grad():  # inference keeps the plain path
        assert step.concatenated(x).grad_fn is None
        torch.testing.assert_close(step.concatenated(x), want.detach(), atol=0, rtol=0)


@pytest.mark.parametrize("direction_weights", ["discarded", "applied"])
def test_converter_permutes_bgr_to_rgb(direction_weights):
    """Random official-layout weights through the converter: on RGB, our model gives the
    official network's BGR output (a reference from the official description) reversed, with
    either direction-weights mode; our model with unpermuted weights on BGR gives it too."""
    sd = random_official(width=8, seed=2)
    applied = direction_weights == "applied"
    model = converted_model(sd, 8, direction_weights=direction_weights)
    x_bgr = torch.rand(2, 3, 11, 14, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref_att, ref_out = reference_spanet(sd, x_bgr, applied=applied)
        out = run_model(model, optical=x_bgr.flip(1))
    torch.testing.assert_close(out.pred.flip(1), ref_out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.extras["attention"], ref_att, atol=1e-5, rtol=1e-4)
    converted = convert_official_spa_gan(sd)
    assert torch.equal(converted["head.weight"], sd["gen.gen.conv_in.0.weight"].flip(1))
    assert torch.equal(converted["tail.weight"], sd["gen.gen.conv_out.0.weight"].flip(0))
    assert torch.equal(
        converted["sam.direction.conv1.weight"], sd["gen.gen.SAM1.attention_layer.conv1.weight"]
    )
    unpermuted = dict(converted)
    unpermuted["head.weight"] = sd["gen.gen.conv_in.0.weight"]
    unpermuted["tail.weight"] = sd["gen.gen.conv_out.0.weight"]
    bgr_model = create_model("spa_gan", width=8, direction_weights=direction_weights).eval()
    bgr_model.load_state_dict(unpermuted, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(
            run_model(bgr_model, optical=x_bgr).pred, out.pred.flip(1), atol=1e-6, rtol=1e-5
        )


def test_direction_weights_quirk():
    """Discarded (default): the direction-attention weights never matter; applied: they do."""
    sd = random_official(width=8, seed=4)
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    changed = dict(sd)
    for key in [k for k in sd if "attention_layer" in k or k.endswith("SAM1.conv_in.weight")]:
        changed[key] = sd[key] + 1.0
    with torch.no_grad():
        base = run_model(converted_model(sd, 8), optical=x).pred
        same = run_model(converted_model(changed, 8), optical=x).pred
        applied = run_model(converted_model(sd, 8, direction_weights="applied"), optical=x).pred
    assert torch.equal(base, same)
    assert (applied - base).abs().max() > 1e-3


def test_converter_errors_and_bare_spanet_keys():
    sd = random_official(width=4)
    bare = {k.removeprefix("gen.gen."): v for k, v in sd.items()}
    torch.testing.assert_close(convert_official_spa_gan(bare), convert_official_spa_gan(sd))
    with pytest.raises(ConfigError, match="unrecognised key 'extra.weight'.*'gen.gen.extra"):
        convert_official_spa_gan({**sd, "gen.gen.extra.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="block index 18"):
        convert_official_spa_gan({**sd, "gen.gen.res_block18.group1.conv1.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="two keys map to 'head.weight'"):
        convert_official_spa_gan({**sd, "conv_in.0.weight": torch.zeros(4, 3, 3, 3)})
    wide = dict(sd, **{"gen.gen.conv_in.0.weight": torch.zeros(4, 13, 3, 3)})
    with pytest.raises(ConfigError, match="3-channel BGR"):
        convert_official_spa_gan(wide)
    with pytest.raises(ConfigError, match="no tail"):
        convert_official_spa_gan({k: v for k, v in sd.items() if "conv_out.0" not in k})


def test_load_official_checkpoint_file(tmp_path):
    sd = random_official(width=32, seed=6)
    path = tmp_path / "gen_model_epoch_200.pth"
    torch.save(sd, path)
    model = load_official_checkpoint("spa_gan", path)
    assert not model.training
    torch.testing.assert_close(model.head.weight, sd["gen.gen.conv_in.0.weight"].flip(1))


def test_bad_options():
    with pytest.raises(ConfigError, match="direction_weights must be one of discarded, applied"):
        create_model("spa_gan", direction_weights="inplace")
    with pytest.raises(ConfigError, match="width must be an integer >= 2"):
        create_model("spa_gan", width=1)
    with pytest.raises(ConfigError, match="in_optical must be an integer >= 1"):
        create_model("spa_gan", in_optical=0)
    with pytest.raises(ConfigError, match="bad arguments for model 'spa_gan'"):
        create_model("spa_gan", in_sar=2)
    model = create_model("spa_gan", width=4)
    with pytest.raises(ConfigError, match=r"expects optical \[B, 3, H, W\]"):
        run_model(model, optical=torch.rand(1, 13, 8, 8))


# --------------------------------------------------------------------------- protocol
def test_spa_gan_8bit_protocol_values():
    dn = np.array([[[0, 1000, 2000, 2857, 2858, 10000, np.nan]]], dtype=np.float32)
    out = normalize_optical(dn, "spa_gan_8bit")
    levels = np.floor(np.clip(dn[0, 0, :6] / 10000 * 3.5, 0, 1) * 255 + 0.5)
    assert levels.tolist() == [0, 89, 179, 255, 255, 255]  # 2000: 178.5 rounds up
    np.testing.assert_array_equal(out.array[0, 0, :6], (levels / 255).astype(np.float32))
    assert out.array[0, 0, 6] == 0.0 and not out.valid[0, 6] and out.valid[0, :6].all()
    back = denormalize_optical(out.array, "spa_gan_8bit")[0, 0, :4]
    np.testing.assert_allclose(back, [0, 1000, 2000, 2857], atol=10000 / 3.5 / 255 / 2 + 1e-3)


# --------------------------------------------------------------------------- loss
def _loss_batch() -> tuple[ModelOutput, dict[str, torch.Tensor]]:
    """One sample, 2 bands, 1 x 3 pixels, chosen so M is 0, 1 and a fraction."""
    target = torch.tensor([[[[0.50, 0.20, 0.30]], [[0.40, 0.10, 0.30]]]])
    optical = torch.tensor([[[[0.40, 0.60, 0.30]], [[0.30, 0.10, 0.298]]]])
    pred = torch.tensor([[[[0.45, 0.20, 0.40]], [[0.40, 0.30, 0.30]]]])
    attention = torch.tensor([[[[0.9, 0.5, 0.0]]]])
    return ModelOutput(pred, extras={"attention": attention}), {
        "target": target,
        "optical": optical,
    }


def test_loss_hand_values():
    out, batch = _loss_batch()
    # sum_c(target - optical) = 0.2, -0.4, 0.002 -> M = clip(255 *, 0, 1) = 1, 0, 0.51
    m = [1.0, 0.0, 0.51]
    l1 = (0.05 + 0 + 0.1 + 0 + 0.2 + 0) / 6
    mse = ((0.9 - m[0]) ** 2 + (0.5 - m[1]) ** 2 + (0.0 - m[2]) ** 2) / 3
    loss = build_loss("spa_gan")
    assert isinstance(loss, SpAGANLoss) and loss.reads_output
    assert loss.batch_keys() == {"optical"}
    total = loss(out, batch)
    assert total.item() == pytest.approx(100 * l1 + mse, rel=1e-5)
    assert loss.last_terms["l1"].item() == pytest.approx(l1, rel=1e-5)
    assert loss.last_terms["attention_mse"].item() == pytest.approx(mse, rel=1e-4)
    scaled = build_loss("spa_gan", l1_weight=1.0, attention_weight=2.0, mask_scale=100.0)
    mse100 = ((0.9 - 1.0) ** 2 + 0.5**2 + 0.2**2) / 3  # 100 * 0.002 = 0.2
    assert scaled(out, batch).item() == pytest.approx(l1 + 2 * mse100, rel=1e-4)


def test_loss_matches_the_official_8bit_mask():
    """On 8-bit images / 255 the mask equals the official clip(sum(t8 - x8), 0, 1)."""
    g = torch.Generator().manual_seed(7)
    t8 = torch.randint(0, 256, (2, 3, 6, 5), generator=g).float()
    x8 = (t8 + torch.randint(-2, 3, t8.shape, generator=g)).clamp(0, 255)
    attention = torch.rand(2, 1, 6, 5, generator=g)
    pred = torch.rand(2, 3, 6, 5, generator=g)
    m_official = (t8 - x8).sum(1, keepdim=True).clamp(0, 1)
    assert 0 < float(m_official.mean()) < 1
    want = 100 * (pred - t8 / 255).abs().mean() + ((attention - m_official) ** 2).mean()
    out = ModelOutput(pred, extras={"attention": attention})
    got = build_loss("spa_gan")(out, {"target": t8 / 255, "optical": x8 / 255})
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_loss_valid_mask_gradients_and_errors():
    out, batch = _loss_batch()
    loss = build_loss("spa_gan")
    valid = torch.tensor([[[[True, True, False]]]])
    pred = out.pred.clone().requires_grad_(True)
    att = out.extras["attention"].clone().requires_grad_(True)
    total = loss(ModelOutput(pred, extras={"attention": att}), dict(batch, valid_mask=valid))
    l1 = (0.05 + 0 + 0 + 0.2) / 4  # pixels 0 and 1, both bands
    mse = ((0.9 - 1.0) ** 2 + 0.5**2) / 2
    assert total.item() == pytest.approx(100 * l1 + mse, rel=1e-5)
    total.backward()
    assert (pred.grad[..., 2] == 0).all() and att.grad[..., 2].item() == 0.0
    assert att.grad[..., 0].item() != 0.0
    with pytest.raises(ConfigError, match="needs the model's attention map.*bare prediction"):
        loss(out.pred, batch)
    with pytest.raises(ConfigError, match=r"extras hold \['other'\]"):
        loss(ModelOutput(out.pred, extras={"other": out.pred}), batch)
    with pytest.raises(ConfigError, match=r"attention map has shape \(1, 2, 1, 3\)"):
        loss(ModelOutput(out.pred, extras={"attention": out.pred}), batch)
    with pytest.raises(ConfigError, match="needs batch key 'optical'"):
        loss(out, {"target": batch["target"]})
    for kwargs, arg in (
        ({"l1_weight": -1.0}, "l1_weight"),
        ({"mask_scale": 0.0}, "mask_scale"),
        ({"attention_weight": math.nan}, "attention_weight"),
        ({"attention_key": ""}, "attention_key"),
    ):
        with pytest.raises(ConfigError, match=arg):
            build_loss("spa_gan", **kwargs)


# --------------------------------------------------------------------------- discriminator
def _reference_discriminator(d: SpAGANDiscriminator, image, condition):
    """The official two-branch forward from ``d``'s parameters (eval-mode batch norm)."""
    p = dict(d.named_parameters()) | dict(d.named_buffers())

    def conv(x, key, stride=2, pad=1):
        return F.conv2d(x, p[f"{key}.weight"], p[f"{key}.bias"], stride, pad)

    def bn(x, key):
        return F.batch_norm(
            x, p[f"{key}.running_mean"], p[f"{key}.running_var"], p[f"{key}.weight"],
            p[f"{key}.bias"], False, 0.0, 1e-5,
        )  # fmt: skip

    h = torch.cat(
        [F.leaky_relu(conv(condition, "condition_in.0"), 0.2),
         F.leaky_relu(conv(image, "image_in.0"), 0.2)], 1,
    )  # fmt: skip
    for k in (0, 3, 6):
        h = F.leaky_relu(bn(conv(h, f"body.{k}"), f"body.{k + 1}"), 0.2)
    return conv(h, "head", stride=1, pad=1)


def test_discriminator_structure_and_reference():
    assert "spa_gan" in list_discriminators()
    torch.manual_seed(0)
    d = create_discriminator("spa_gan", in_channels=6)
    assert isinstance(d, SpAGANDiscriminator)
    assert sum(p.numel() for p in d.parameters()) == 2_762_945
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 32), (3, 32), (64, 128), (128, 256), (256, 512), (512, 1),
    ]  # fmt: skip
    assert [c.kernel_size[0] for c in convs] == [4] * 5 + [3]
    assert all(c.bias is not None for c in convs)
    weights = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(float(weights.std()) - 0.02) < 0.002
    small = create_discriminator("spa_gan", in_channels=6, width=4).eval()
    for m in small.modules():  # non-trivial running statistics for the reference
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    image, cond = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        logits = small(image, cond)
        assert logits.shape == (2, 1, 2, 3)
        torch.testing.assert_close(logits, _reference_discriminator(small, image, cond))
        assert not torch.allclose(logits, small(image, torch.rand(2, 3, 32, 48)))


def test_discriminator_sizes_and_errors():
    assert discriminator_min_size("spa_gan", in_channels=6) == 32
    assert discriminator_min_size("spa_gan", in_channels=6, norm="instance") == 32
    assert discriminator_min_size("spa_gan", in_channels=6, norm="none") == 16
    d = create_discriminator("spa_gan", in_channels=6, width=2, norm="none")
    assert d(torch.rand(1, 3, 16, 17), torch.rand(1, 3, 16, 17)).shape == (1, 1, 1, 1)
    with pytest.raises(ConfigError, match="at least 16x16 pixels"):
        d(torch.rand(1, 3, 15, 40), torch.rand(1, 3, 15, 40))
    with pytest.raises(ConfigError, match="needs the condition"):
        d(torch.rand(1, 3, 16, 16))
    with pytest.raises(ConfigError, match=r"an image \[B, 3, H, W\] and a condition"):
        d(torch.rand(1, 4, 16, 16), torch.rand(1, 2, 16, 16))
    uneven = create_discriminator("spa_gan", in_channels=16, image_channels=3, width=2)
    assert uneven.condition_in[0].in_channels == 13
    with pytest.raises(ConfigError, match="in_channels 7 is odd"):
        create_discriminator("spa_gan", in_channels=7)
    with pytest.raises(ConfigError, match="is conditional"):
        create_discriminator("spa_gan", in_channels=3, image_channels=3)
    with pytest.raises(ConfigError, match="norm must be one of"):
        create_discriminator("spa_gan", in_channels=6, norm="layer")
    with pytest.raises(ConfigError, match="bad arguments for discriminator 'spa_gan'"):
        create_discriminator("spa_gan", in_channels=6, num_layers=3)


# --------------------------------------------------------------------------- recipe + training
def test_recipe_settings_and_checks():
    from cloudfree.train import build_config, load_recipe
    from cloudfree.train.config import resolve_config
    from cloudfree.train.tasks import resolve_task

    cfg = build_config(load_recipe("spa_gan"), data_root="/d")
    assert cfg.model.name == "spa_gan" and resolve_config(cfg).data.protocol == "glf_cr"
    assert cfg.data.batch_size == 1 and cfg.data.patch_size is None
    o = cfg.optimizer
    assert (o.name, o.lr, o.betas, o.weight_decay) == ("adam", 4e-4, (0.5, 0.999), 1e-5)
    assert cfg.trainer.max_epochs == 200 and cfg.loss.name == "spa_gan"
    assert cfg.loss.kwargs == {"l1_weight": 100.0, "attention_weight": 1.0, "mask_scale": 892.5}
    plan = resolve_task(cfg, get_model_info("spa_gan").resolve_spec())
    adv = plan.adversarial
    assert adv is not None and plan.loss_takes_output and plan.discriminator_channels == 6
    assert (adv.discriminator, adv.condition, adv.gan_loss, adv.weight) == (
        "spa_gan", "optical", "bce", 1.0,
    )  # fmt: skip
    assert adv.optimizer == o  # the discriminator's optimizer is the generator's
    short = build_config(load_recipe("spa_gan"), {"trainer.max_epochs": 10}, data_root="/d")
    assert short.trainer.max_epochs == 10


@pytest.mark.usefixtures("quiet_lightning")
def test_one_adversarial_run_of_the_recipe(tmp_path: Path):
    """The recipe at tiny size (width 4, discriminator width 2, 32 px, 2 steps of batch 2):
    both networks learn, the logged generator loss is reconstruction + 1 * GAN term, the
    loss terms are logged, and the frozen unused parameters stay as they were."""
    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.train import CloudRemovalModule, build_config, load_recipe, prepare_run, train

    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=4, size=32, seed=0)
    overrides = {
        "model.kwargs": {"width": 4},
        "adversarial.discriminator_kwargs": {"width": 2},
        "data.batch_size": 2,
        "data.num_workers": 0,
        "data.limit_val": 1,
        "trainer.max_steps": 2,
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 1,
        "trainer.val_check_interval": None,  # every epoch: one batch of 2 training samples
        "trainer.checkpoint_every_n_steps": 2,
        "trainer.num_sanity_val_steps": 0,
        "trainer.enable_progress_bar": False,
    }
    cfg = build_config(load_recipe("spa_gan"), overrides, data_root=root, out=tmp_path / "run")
    prepared = prepare_run(cfg, run_dir=tmp_path / "fresh")
    initial = prepared.model.state_dict()
    module0 = CloudRemovalModule(prepared.config, model=prepared.model)
    assert isinstance(module0.discriminator, SpAGANDiscriminator)
    d0 = {k: v.clone() for k, v in module0.discriminator.state_dict().items()}
    result = train(cfg)
    assert result.global_step == 2
    final = load_file(str(result.run_dir / "weights" / "final" / "model.safetensors"))
    assert final.keys() == initial.keys()
    frozen = [k for k in final if k.startswith(("sam.unused_conv_in.", "sam.direction."))]
    assert frozen and all(torch.equal(final[k], initial[k]) for k in frozen)
    assert not torch.equal(final["tail.weight"], initial["tail.weight"])
    ckpt = torch.load(
        result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    d = {k[len("discriminator.") :]: v for k, v in ckpt["state_dict"].items() if "discrim" in k}
    assert d.keys() == d0.keys() and not torch.equal(d["head.weight"], d0["head.weight"])
    with open(result.run_dir / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    assert rows
    for r in rows:
        total = float(r["train/loss_reconstruction"]) + float(r["train/loss_adversarial"])
        assert float(r["train/loss"]) == pytest.approx(total, rel=1e-6)
        recon = 100 * float(r["train/l1"]) + float(r["train/attention_mse"])
        assert float(r["train/loss_reconstruction"]) == pytest.approx(recon, rel=1e-5)
        assert float(r["train/loss_discriminator"]) > 0
