"""MPIR1-4 (paper 000's multi-stage networks): stages, resolutions, links, ORSNet, training."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cloudfree.errors import ConfigError
from cloudfree.models import create_model, mpir, run_model, spec_of
from cloudfree.models.layers.mprnet import CAB
from cloudfree.models.layers.padding import pad_bottom_right
from cloudfree.models.mmcanet import MMCANet
from cloudfree.models.mpir import MPIR, ORSNetStage
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.train import prepare_run, train
from train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL_MMCA = dict(widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), nset=4, aspp_width=8, decoder_depth=1)
SMALL = dict(mmcanet_kwargs=SMALL_MMCA, orsnet_cabs=2)


def _small(name: str, **kwargs: Any) -> MPIR:
    torch.manual_seed(0)
    return create_model(name, **{**SMALL, **kwargs}).eval()


def _inputs(h: int = 21, w: int = 34, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 2, h, w, generator=g)


def _block_mean(x: torch.Tensor, s: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // s, s, w // s, s).mean(dim=(3, 5))


def _stem(stage: nn.Module) -> nn.Module:
    return stage.stem if isinstance(stage, ORSNetStage) else stage.optical_stream.stem


def _record_inputs(modules: list[nn.Module]) -> tuple[list[torch.Tensor], list[Any]]:
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, args, _o: seen.append(args[0])) for m in modules]
    return seen, handles


# ------------------------------------------------------------------------ stages and shapes
@pytest.mark.parametrize(
    ("name", "stem_inputs", "multiple"),
    [
        ("mpir1", [(3, 8, 16), (6, 16, 32), (6, 32, 64)], 32),
        ("mpir2", [(3, 8, 16), (6, 16, 32), (8, 32, 64)], 32),  # ORSNet stem: image + SAR
        ("mpir3", [(3, 8, 16), (6, 16, 32), (6, 32, 64)], 32),
        ("mpir4", [(3, 16, 24), (6, 32, 48)], 16),
    ],
)
def test_stages_run_at_their_resolutions_at_any_size(name, stem_inputs, multiple) -> None:
    """21 x 34 is padded to the multiple; each stage sees its reduced input (plus the previous
    output), every output comes back full size and the spec counts the earlier stages."""
    model = _small(name)
    spec = spec_of(model)
    assert spec.outputs.num_stages == len(stem_inputs) - 1
    assert spec.inputs.spatial_multiple == model.multiple == multiple
    assert spec.tasks == {"regression", "multi_stage"}
    seen, handles = _record_inputs([_stem(s) for s in model.stages])
    optical, sar = _inputs()
    with torch.no_grad():
        out = run_model(model, optical=optical, sar=sar)
    for h in handles:
        h.remove()
    assert [tuple(x.shape[1:]) for x in seen] == stem_inputs
    assert len(out.stages) == len(stem_inputs) - 1
    for t in (*out.stages, out.pred):
        assert t.shape == optical.shape and torch.isfinite(t).all()
    kinds = [type(s) for s in model.stages]
    assert kinds[-1] is (ORSNetStage if name == "mpir2" else MMCANet)
    assert all(k is MMCANet for k in kinds[:-1])


def test_first_stage_is_an_mmcanet_on_the_area_reduced_input() -> None:
    """Stage 1 of MPIR1 = MMCANet (global residual) on the 4 x 4 block means of the padded
    inputs, bilinearly upsampled to full size and cropped."""
    model = _small("mpir1")
    optical, sar = _inputs()
    with torch.no_grad():
        out = model(optical, sar)
        opt_p, sar_p = pad_bottom_right(optical, 11, 30), pad_bottom_right(sar, 11, 30)
        low = model.stages[0](_block_mean(opt_p, 4), _block_mean(sar_p, 4))
        ref = F.interpolate(low, size=(32, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.stages[0], ref[..., :21, :34], rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the other reduction is an option and changes the result
        other = _small("mpir1", resize="bilinear")(optical, sar)
    assert not torch.allclose(other.stages[0], out.stages[0])


@pytest.mark.parametrize("feed_output", [True, False])
def test_next_stage_image_input_is_cloudy_plus_previous_output(feed_output: bool) -> None:
    model = _small("mpir4", feed_output=feed_output)
    outs: list[torch.Tensor] = []
    hook = model.stages[0].out_conv.register_forward_hook(lambda _m, _a, o: outs.append(o))
    seen, handles = _record_inputs([_stem(model.stages[1])])
    optical, sar = _inputs(16, 32)  # no padding needed (multiple 16)
    with torch.no_grad():
        model(optical, sar)
    hook.remove()
    handles[0].remove()
    image = seen[0]
    assert image.shape[1] == (6 if feed_output else 3)
    torch.testing.assert_close(image[:, :3], optical)
    if feed_output:
        prev = outs[0] + _block_mean(optical, 2)  # stage 1's output (global residual)
        up = F.interpolate(prev, size=(16, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(image[:, 3:], up)
    assert model.stages[1].out_conv.out_channels == 3


# ------------------------------------------------------------------------------ the links
def test_link_layouts_concat_and_add() -> None:
    """Concatenation: 1x1 conv (stem width + previous width -> stem width); addition: 1x1 conv
    of the previous features only; none in the first stage; both streams linked."""
    cat, add = _small("mpir1"), _small("mpir3")
    for model, cin in ((cat, 16), (add, 8)):
        assert model.stages[0].optical_stream.link is None
        assert model.stages[0].sar_stream.link is None
        for stage in model.stages[1:]:
            for stream in (stage.optical_stream, stage.sar_stream):
                assert stream.link.mode == ("concat" if cin == 16 else "add")
                assert tuple(stream.link.conv.weight.shape) == (8, cin, 1, 1)
    ors = _small("mpir2", orsnet_width=12).stages[2]
    assert tuple(ors.link.conv.weight.shape) == (12, 12 + 8, 1, 1)
    assert sum(p.numel() for p in cat.parameters()) - sum(p.numel() for p in add.parameters()) == (
        2 * 2 * 8 * 8  # the concatenated stem channels of two streams in two stages
    )


def test_additive_link_carries_the_previous_stage() -> None:
    optical, sar = _inputs(16, 32)
    model = _small("mpir3", feed_output=False)
    with torch.no_grad():
        ref = model(optical, sar)
        model.stages[1].optical_stream.link.conv.weight.add_(0.5)
        changed = model(optical, sar)
    torch.testing.assert_close(changed.stages[0], ref.stages[0], rtol=0, atol=0)
    assert not torch.allclose(changed.stages[1], ref.stages[1])
    assert not torch.allclose(changed.pred, ref.pred)
    # links of zero weight: without the fed output, the later stages ignore stage 1 entirely
    with torch.no_grad():
        for stage in model.stages[1:]:
            for stream in (stage.optical_stream, stage.sar_stream):
                stream.link.conv.weight.zero_()
                stream.link.conv.bias.zero_()
        before = model(optical, sar)
        for p in model.stages[0].parameters():
            p.add_(0.1)
        after = model(optical, sar)
    assert not torch.allclose(after.stages[0], before.stages[0])
    torch.testing.assert_close(after.stages[1], before.stages[1], rtol=0, atol=0)
    torch.testing.assert_close(after.pred, before.pred, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["concat", "add"])
def test_a_neutral_link_leaves_mmcanet_unchanged(mode: str) -> None:
    """A link conv that passes the stem through (concat: [I | 0]; add: 0) gives the features
    of the plain MMCANet with the same weights."""
    torch.manual_seed(0)
    plain = MMCANet(**SMALL_MMCA).eval()
    linked = MMCANet(**SMALL_MMCA, link_channels=5, link_mode=mode).eval()
    missing, unexpected = linked.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".link." in k for k in missing) and missing
    with torch.no_grad():
        for stream in (linked.optical_stream, linked.sar_stream):
            w = stream.link.conv.weight
            w.zero_()
            stream.link.conv.bias.zero_()
            if mode == "concat":
                w[:, :8, 0, 0] = torch.eye(8)
        optical, sar = _inputs(16, 24)
        link = torch.randn(2, 5, 16, 24)
        torch.testing.assert_close(
            linked.features(optical, sar, link), plain.features(optical, sar), rtol=0, atol=1e-6
        )
        assert not [k for k in plain.state_dict() if "link" in k]


# ------------------------------------------------------------------------------- ORSNet
def test_mpir2_orsnet_shares_one_prelu() -> None:
    model = create_model("mpir2", mmcanet_kwargs=SMALL_MMCA)  # 3 ORBs x 8 CABs
    ors = model.stages[2]
    cabs = [m for m in ors.modules() if isinstance(m, CAB)]
    assert len(cabs) == 24 and all(c.act is ors.act for c in cabs)
    assert len({id(m) for m in model.modules() if isinstance(m, nn.PReLU)}) == 1
    assert isinstance(ors.act, nn.PReLU) and ors.act.weight.numel() == 1
    names = [n for n, _ in ors.named_parameters() if n.endswith("body.1.weight")]
    assert len(names) == 1  # counted once ...
    assert sum(k.endswith("body.1.weight") for k in ors.state_dict()) == 24  # ... stored per CAB
    assert tuple(ors.stem.weight.shape) == (8, 3 + 3 + 2, 3, 3) and ors.stem.bias is None
    assert cabs[0].CA.conv_du[0].out_channels == 8 // 4  # reduction 4
    optical, sar = _inputs(16, 32)
    out = model(optical, sar)
    (out.pred.square().mean() + sum(s.square().mean() for s in out.stages)).backward()
    assert ors.act.weight.grad is not None and float(ors.act.weight.grad.abs()) > 0


# ---------------------------------------------------------------------------- defaults
@pytest.mark.parametrize(
    ("name", "params", "gmacs"),
    [
        ("mpir1", 50_118_313, 21.26),
        ("mpir2", 33_898_087, 12.38),
        ("mpir3", 50_114_217, 21.21),
        ("mpir4", 33_408_486, 20.31),
    ],
)
def test_default_sizes_are_the_documented_ones(name: str, params: int, gmacs: float) -> None:
    """Parameter and MAC counts of the module docstring (on the meta device: no memory, no
    arithmetic)."""
    with torch.device("meta"):
        model = create_model(name).eval()
        optical, sar = torch.zeros(1, 3, 128, 128), torch.zeros(1, 2, 128, 128)
    assert sum(p.numel() for p in model.parameters()) == params
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(optical, sar)
    assert round(counter.get_total_flops() / 2 / 1e9, 2) == gmacs
    assert f"{params:,}" in mpir.__doc__ and f"{gmacs:.2f} G" in mpir.__doc__


def test_optical_only_stages_need_no_sar() -> None:
    mk = {**SMALL_MMCA, "fusion": "optical", "cross_attention": False}
    model = _small("mpir2", mmcanet_kwargs=mk)
    spec = spec_of(model)
    assert not spec.inputs.needs_sar and spec.inputs.sar_channels == 0
    assert model.stages[2].stem.in_channels == 6
    optical, _ = _inputs()
    with torch.no_grad():
        assert run_model(model, optical=optical).pred.shape == optical.shape


# ---------------------------------------------------------------------------- training
def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_multi_stage_task_trains_every_stage(tmp_path: Path) -> None:
    """One optimiser step through cloudfree.train: the loss is the weighted sum of the three
    stage losses, each logged, and every stage's weights move."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    root = tmp_path / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=6, size=32, seed=0)
    config = tiny_config(
        root,
        tmp_path / "run",
        {"model.name": "mpir1", "model.kwargs": SMALL},
        loss__name="l1",
        loss__kwargs={},
        task__stage_weights=[0.5, 0.25, 1.0],
        trainer__max_steps=1,
        trainer__val_check_interval=1,
        trainer__checkpoint_every_n_steps=1,
    )
    prepared = prepare_run(config)
    assert prepared.config.data.bands == "rgb" and prepared.config.data.protocol == "glf_cr"
    before = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    result = train(prepared=prepared)
    assert result.global_step == 1
    rows = [r for r in _rows(result.run_dir) if r.get("train/loss")]
    assert len(rows) == 1
    r = {k: float(v) for k, v in rows[0].items() if v}
    weighted = 0.5 * r["train/loss_stage0"] + 0.25 * r["train/loss_stage1"]
    assert r["train/loss"] == pytest.approx(weighted + r["train/loss_stage2"], rel=1e-6)
    assert {"val/loss_stage0", "val/loss_stage1", "val/loss_stage2"} <= set(result.val_metrics)
    after = result.module.model.state_dict()
    for k in range(3):
        moved = [
            n
            for n in before
            if n.startswith(f"stages.{k}.") and not torch.equal(before[n], after[n])
        ]
        assert moved, f"stage {k} did not train"


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scales": (4, 2)}, "last of scales must be 1"),
        ({"scales": (2, 4, 1)}, "multiple of the next and larger"),
        ({"scales": (4, 3, 1)}, "multiple of the next and larger"),
        ({"scales": (1,)}, "at least two stages"),
        ({"scales": "421"}, "sequence of integers"),
        ({"scales": (4, 0, 1)}, r"scales\[i\] must be an integer >= 1"),
        ({"link": "mul"}, "link must be one of"),
        ({"last_stage": "unet"}, "last_stage must be one of"),
        ({"resize": "nearest"}, "resize must be one of"),
        ({"feed_output": 1}, "feed_output must be True or False"),
        ({"mmcanet_kwargs": {"in_optical": 4}}, "may not set in_optical"),
        ({"mmcanet_kwargs": {"global_residual": False}}, "may not set global_residual"),
        ({"mmcanet_kwargs": {"width": 8}}, "unknown MMCANet argument.*width; valid: widths"),
        ({"mmcanet_kwargs": [1, 2]}, "mmcanet_kwargs must be a mapping"),
        ({"last_stage": "orsnet", "orsnet_cabs": 0}, "orsnet_cabs must be an integer >= 1"),
        ({"in_sar": 0}, "in_sar"),
    ],
)
def test_bad_options_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("mpir1", **{**SMALL, **kwargs})


def test_bad_links_and_calls_are_named() -> None:
    with pytest.raises(ConfigError, match="link_mode must be one of"):
        MMCANet(**SMALL_MMCA, link_channels=4, link_mode="mul")
    with pytest.raises(ConfigError, match="link_channels must be an integer >= 0"):
        MMCANet(**SMALL_MMCA, link_channels=-1)
    linked = MMCANet(**SMALL_MMCA, link_channels=4)
    optical, sar = _inputs(16, 16)
    with pytest.raises(ConfigError, match="call features"):
        linked(optical, sar)
    with pytest.raises(ConfigError, match="link feature map is needed exactly"):
        linked.features(optical, sar)
    with pytest.raises(ConfigError, match="link feature map is needed exactly"):
        MMCANet(**SMALL_MMCA).features(optical, sar, torch.zeros(2, 4, 16, 16))
    with pytest.raises(ConfigError, match="needs a SAR input"):
        _small("mpir1")(optical)
