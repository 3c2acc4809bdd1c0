"""MPIR1-4, the multi-stage progressive image restoration networks of paper 000 (Zhou et al.,
IEEE TGRS 2025, section III-B and Fig. 3), built of our :class:`~cloudfree.models.mmcanet.MMCANet`
(and, for MPIR2, of an MPRNet ORSNet).

The paper describes the four strategies in a few sentences and publishes no code; every choice
it leaves open is a **Decision** below (``../shared/notes/papers-000-002-003-audit.md`` rows
A0-15 .. A0-19 and Part 5) and a constructor option of :class:`MPIR`:

* **Stages and resolutions** (``scales``, A0-16): "the restoration process commences at the
  first stage using a low-resolution variant of the input image". MPIR1-3 have three stages at
  the input / 4, / 2 and full size (``scales=(4, 2, 1)``), MPIR4 ("MPIR3 ... streamlined to a
  two-stage approach") two at / 2 and full size (``(2, 1)``). Every scale divides the one
  before it and the last is 1. Optical and SAR are resized to each stage's resolution by
  ``resize="area"`` (the mean of each s x s block: anti-aliased, and for SAR a multi-look
  average of the speckle; **Decision**) or ``"bilinear"`` (anti-aliased bilinear).
* **Stage input** (``feed_output``, A0-16): "the output from each stage is channeled as input
  to its successor": stage k+1's image input is ``concat(cloudy optical at its resolution,
  upsample(out_k))`` (bilinear, 2C channels; its output conv is rebuilt to the C optical
  bands); ``feed_output=False`` gives it the cloudy optical image only. SAR goes to the SAR
  stream as in MMCANet.
* **Link between stages** (``link``, A0-17 / A0-19): stage k's features "prior to the terminal
  convolution" (MMCANet's decoder output, :meth:`~cloudfree.models.mmcanet.MMCANet.features`,
  ``widths[0]`` channels) are bilinearly upsampled to stage k+1's resolution (x 2) and merged
  into **both** stream stems of stage k+1 (the paper does not say which stream; **Decision**)
  by :class:`~cloudfree.models.mmcanet.StemLink`: MPIR1 / MPIR2 concatenate them ("merged with
  the ones stemming from the new input post-convolution"; Fig. 3's dashed arrows are
  concatenations) and a 1x1 conv returns to the stem width (``link="concat"``); MPIR3 / MPIR4
  "replace the intermediate connection with skip connections across different restoration
  stages": the upsampled features pass a 1x1 conv and are **added** to the stem output
  (``link="add"``; **Decision**).
* **Stage output** (``global_residual``): ``out_conv(features) + cloudy optical`` at the
  stage's resolution (MMCANet's global residual, and MPRNet's ``stage3_img + x3_img``).
  Stages have their own weights (**Decision**; as MPRNet's stages) and the MMCANet stages share
  one configuration, ``mmcanet_kwargs`` (any :class:`MMCANet` argument but the channel counts,
  the link and ``global_residual``, which MPIR sets).
* **MPIR2's third stage** (``last_stage="orsnet"``, A0-18; :class:`ORSNetStage`) "substitutes
  the MMCANet in the third restoration stage with an original-resolution subnetwork (ORSNet)":
  a 3x3 stem conv of ``concat(image input, SAR)`` at full size to ``orsnet_width`` (None:
  MMCANet's first width, 32), the upsampled stage-2 features merged by the same link, then
  ``orsnet_orbs`` (3) ORBs of ``orsnet_cabs`` (8) CABs with channel-attention reduction
  ``orsnet_reduction`` (4), one PReLU shared by every CAB (as in MPRNet), a 3x3 output conv
  and the input residual. Stem and output convs have no bias, as MPRNet's ``conv``; MPRNet's
  cross-stage feature fusion (CSFF) and supervised attention module (SAM) are left out
  (MMCANet has no U-Net encoder / decoder pair to feed CSFF; the paper mentions neither;
  **Decision**).
* **Supervision** (A0-15): every stage's output is returned in ``ModelOutput.stages`` (first
  stage first) and the last one is ``pred``; the multi-stage task
  (:mod:`cloudfree.train.tasks`) minimises ``sum_k w_k * loss(stage_k, target)`` with
  ``task.stage_weights`` (default all 1, MPRNet's plain sum; ``[0, 0, 1]`` trains the last
  stage only, the audit's option). The model contract wants full-size stages, so the outputs
  of the low-resolution stages are returned **bilinearly upsampled to full size** and
  compared with the full-size target. This deviates from A0-15's "target resized to each
  stage's resolution": the loss also asks an upsampled low-resolution output for detail it
  cannot hold, which the low stages then only approach (stated; a different objective, same
  architecture).
* **Any H and W**: optical and SAR are padded at the bottom and right (reflect) to a multiple of
  ``scales[0] * 2 ** (len(widths) - 1)`` (32 for MPIR1-3, 16 for MPIR4: the first stage works
  at ``H / scales[0]`` and MMCANet needs a multiple of 8 there) and every output is cropped
  back.

Sizes with the defaults (RGB + VV/VH; multiply-accumulates of one 128 x 128 sample counted
with ``torch.utils.flop_counter.FlopCounterMode``, total / 2; the paper gives no figure):

========  ============  ==========
model     parameters    MACs @ 128
========  ============  ==========
MPIR1     50,118,313    21.26 G
MPIR2     33,898,087    12.38 G
MPIR3     50,114,217    21.21 G
MPIR4     33,408,486    20.31 G
========  ============  ==========

MMCANet alone has 16,702,755 parameters and 16.58 G MACs: each MMCANet stage has its own weights,
but the stages at / 4 and / 2 add little computation (about 1 / 16 and 1 / 4 of the convolutions'
MACs); MPIR2's ORSNet at full size (24 CABs at width 32) costs less than an MMCANet there.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import (
    CloudRemovalModel,
    InputSpec,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    check_int,
)
from cloudfree.models.layers.mprnet import ORB, conv
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple
from cloudfree.models.mmcanet import LINK_MODES, MMCANet, StemLink

__all__ = ["MPIR", "ORSNetStage"]

LAST_STAGES = ("mmcanet", "orsnet")
RESIZES = ("area", "bilinear")
#: MMCANet arguments MPIR sets itself (refused in ``mmcanet_kwargs``)
_SET_BY_MPIR = ("in_optical", "in_sar", "link_channels", "link_mode", "global_residual")
_MMCANET_ARGS = inspect.signature(MMCANet).parameters


def _check_scales(scales: object) -> tuple[int, ...]:
    """``scales`` as a tuple: at least two positive integers, each dividing the one before it
    (so strictly decreasing), the last 1."""
    if not isinstance(scales, Sequence) or isinstance(scales, str):
        raise ConfigError(f"MPIR: scales must be a sequence of integers, got {scales!r}")
    out = tuple(check_int("MPIR", "scales[i]", s, 1) for s in scales)
    if len(out) < 2:
        raise ConfigError(f"MPIR: scales needs at least two stages (multi-stage), got {list(out)}")
    if out[-1] != 1:
        raise ConfigError(f"MPIR: the last of scales must be 1 (full size), got {list(out)}")
    for a, b in zip(out, out[1:], strict=False):
        if a <= b or a % b:
            raise ConfigError(
                f"MPIR: each of scales must be a multiple of the next and larger, got {list(out)}"
            )
    return out


def _check_mmcanet_kwargs(kwargs: object) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"MPIR: mmcanet_kwargs must be a mapping, got {kwargs!r}")
    kwargs = dict(kwargs)
    fixed = sorted(k for k in kwargs if k in _SET_BY_MPIR)
    if fixed:
        raise ConfigError(
            f"MPIR: mmcanet_kwargs may not set {', '.join(fixed)} (set by MPIR: use its own "
            "in_optical, in_sar, link and global_residual)"
        )
    unknown = sorted(k for k in kwargs if k not in _MMCANET_ARGS)
    if unknown:
        valid = [k for k in _MMCANET_ARGS if k not in _SET_BY_MPIR]
        raise ConfigError(
            f"MPIR: mmcanet_kwargs has unknown MMCANet argument(s) {', '.join(unknown)}; valid: "
            f"{', '.join(valid)}"
        )
    return kwargs


def _mmcanet_value(kwargs: Mapping[str, Any], name: str) -> Any:
    return kwargs[name] if name in kwargs else _MMCANET_ARGS[name].default


def _up(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize to ``size`` (``align_corners=False``); ``x`` itself if already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ORSNetStage(nn.Module):
    """MPIR2's last stage (module docstring): stem, link, ORBs of CABs with one shared PReLU,
    output conv. Called as an MMCANet stage: ``features(image, sar, link)`` then
    ``out_conv(...)``.

    Args:
        in_image: channels of the image input (the cloudy optical, plus the previous output).
        in_sar: SAR channels concatenated to the image for the stem (0: none).
        out_channels: output bands.
        width: ORB width.
        link_channels, link_mode: the link of the previous stage's features
            (:class:`~cloudfree.models.mmcanet.StemLink`).
        num_orb, num_cab, reduction, kernel_size: ORBs, CABs per ORB, channel-attention
            reduction, conv kernel (MPRNet's 3, 8, 4, 3).
    """

    def __init__(
        self,
        in_image: int,
        in_sar: int,
        out_channels: int,
        width: int,
        link_channels: int,
        link_mode: str = "concat",
        num_orb: int = 3,
        num_cab: int = 8,
        reduction: int = 4,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_int("ORSNetStage", "orsnet_orbs", num_orb, 1)
        check_int("ORSNetStage", "orsnet_cabs", num_cab, 1)  # a CAB uses the shared PReLU
        check_int("ORSNetStage", "orsnet_width", width, 1)
        self.stem = conv(in_image + in_sar, width, kernel_size)
        self.link = StemLink(width, link_channels, link_mode)
        act = nn.PReLU()  # MPRNet's single activation, put into every CAB of every ORB
        self.orbs = nn.Sequential(
            *(ORB(width, kernel_size, reduction, act=act, num_cab=num_cab) for _ in range(num_orb))
        )
        self.out_conv = conv(width, out_channels, kernel_size)

    @property
    def act(self) -> nn.Module:
        """The PReLU shared by every CAB."""
        return self.orbs[0].body[0].act

    def features(self, image: Tensor, sar: Tensor | None, link: Tensor) -> Tensor:
        """The ORBs' output ``[B, width, H, W]`` (before the output conv)."""
        x = self.stem(image if sar is None else torch.cat([image, sar], dim=1))
        return self.orbs(self.link(x, link))


class MPIR(CloudRemovalModel):
    """Multi-stage progressive restoration of MMCANet stages (module docstring).
    ``forward(optical [B, C, H, W], sar [B, in_sar, H, W])`` returns a
    :class:`~cloudfree.models.api.ModelOutput` with ``pred`` (the last stage) and ``stages``
    (the earlier ones, upsampled to full size), all ``[B, C, H, W]``.

    Args:
        in_optical, in_sar: input channels (3 RGB, 2).
        scales: downsampling factor of each stage, first stage first ((4, 2, 1)).
        link: ``"concat"`` (MPIR1 / MPIR2) or ``"add"`` (MPIR3 / MPIR4) stem link.
        last_stage: ``"mmcanet"`` or ``"orsnet"`` (MPIR2).
        feed_output: stage k+1's image input also holds stage k's upsampled output (True).
        resize: ``"area"`` or ``"bilinear"``: how inputs are reduced to a stage's resolution.
        global_residual: each stage adds the cloudy optical image at its resolution (True).
        mmcanet_kwargs: arguments of every MMCANet stage (widths, depths, ...; None: defaults).
        orsnet_orbs, orsnet_cabs, orsnet_reduction, orsnet_width: the ORSNet of
            ``last_stage="orsnet"`` (3, 8, 4, None = MMCANet's first width).
    """

    def __init__(
        self,
        in_optical: int = 3,
        in_sar: int = 2,
        scales: Sequence[int] = (4, 2, 1),
        link: str = "concat",
        last_stage: str = "mmcanet",
        feed_output: bool = True,
        resize: str = "area",
        global_residual: bool = True,
        mmcanet_kwargs: Mapping[str, Any] | None = None,
        orsnet_orbs: int = 3,
        orsnet_cabs: int = 8,
        orsnet_reduction: int = 4,
        orsnet_width: int | None = None,
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 0)
        self.scales = _check_scales(scales)
        if link not in LINK_MODES:
            raise ConfigError(f"MPIR: link must be one of {LINK_MODES}, got {link!r}")
        if last_stage not in LAST_STAGES:
            raise ConfigError(f"MPIR: last_stage must be one of {LAST_STAGES}, got {last_stage!r}")
        if resize not in RESIZES:
            raise ConfigError(f"MPIR: resize must be one of {RESIZES}, got {resize!r}")
        for name, flag in (("feed_output", feed_output), ("global_residual", global_residual)):
            if not isinstance(flag, bool):
                raise ConfigError(f"MPIR: {name} must be True or False, got {flag!r}")
        mk = _check_mmcanet_kwargs(mmcanet_kwargs)
        self.uses_sar = _mmcanet_value(mk, "fusion") != "optical"
        self.feed_output, self.resize, self.global_residual = feed_output, resize, global_residual
        stages: list[nn.Module] = []
        link_width = 0
        for k in range(len(self.scales)):
            cin = in_optical * (2 if k and feed_output else 1)
            if k == len(self.scales) - 1 and last_stage == "orsnet":
                stages.append(
                    ORSNetStage(
                        cin,
                        in_sar if self.uses_sar else 0,
                        in_optical,
                        orsnet_width if orsnet_width is not None else link_width,
                        link_width,
                        link,
                        orsnet_orbs,
                        orsnet_cabs,
                        orsnet_reduction,
                    )
                )
                continue
            net = MMCANet(
                in_optical=cin,
                in_sar=in_sar,
                link_channels=link_width,
                link_mode=link,
                global_residual=global_residual,
                **mk,
            )
            link_width = net.out_conv.in_channels  # the decoder's width, widths[0]
            if cin != in_optical:  # an image input of 2C channels still restores C bands
                net.out_conv = nn.Conv2d(link_width, in_optical, 3, padding=1)
            stages.append(net)
        self.stages = nn.ModuleList(stages)
        self.multiple = self.scales[0] * self.stages[0].multiple

    def _down(self, x: Tensor, s: int) -> Tensor:
        if s == 1:
            return x
        if self.resize == "area":
            return F.avg_pool2d(x, s)
        size = (x.shape[-2] // s, x.shape[-1] // s)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> ModelOutput:
        self.check_image("optical", optical, self.in_optical)
        if self.uses_sar:
            if sar is None:
                raise ConfigError("MPIR: this configuration needs a SAR input")
            self.check_image("sar", sar, self.in_sar, like=optical)
            sar = sar.to(optical.dtype)
        else:
            sar = None
        h, w = optical.shape[-2:]
        ph, pw = padding_to_multiple(h, self.multiple), padding_to_multiple(w, self.multiple)
        opt_full = pad_bottom_right(optical, ph, pw)
        sar_full = None if sar is None else pad_bottom_right(sar, ph, pw)
        outs: list[Tensor] = []
        feats: Tensor | None = None
        for s, net in zip(self.scales, self.stages, strict=True):
            opt = self._down(opt_full, s)
            size = opt.shape[-2:]
            image = opt
            if outs and self.feed_output:
                image = torch.cat([opt, _up(outs[-1], size)], dim=1)
            link = None if feats is None else _up(feats, size)
            sar_s = None if sar_full is None else self._down(sar_full, s)
            feats = net.features(image, sar_s, link)  # type: ignore[operator]
            out = net.out_conv(feats)  # type: ignore[operator]
            outs.append(out + opt if self.global_residual else out)
        full = opt_full.shape[-2:]
        stages = tuple(_up(o, full)[..., :h, :w] for o in outs[:-1])
        return ModelOutput(outs[-1][..., :h, :w], stages=stages)


def _spec(kwargs: dict[str, Any]) -> ModelSpec:
    scales = _check_scales(kwargs["scales"])
    mk = _check_mmcanet_kwargs(kwargs["mmcanet_kwargs"])
    uses_sar = _mmcanet_value(mk, "fusion") != "optical"
    depth = len(list(_mmcanet_value(mk, "widths"))) - 1
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"] if uses_sar else 0,
            needs_sar=uses_sar,
            spatial_multiple=scales[0] * 2**depth,
        ),
        OutputSpec(channels=kwargs["in_optical"], num_stages=len(scales) - 1),
        tasks=frozenset({"regression", "multi_stage"}),
    )


_PAPER = (
    "Zhou et al., Multimodal cross-attention network for cloud removal with SAR and optical "
    "images (IEEE TGRS 2025), section III-B (MPIR)"
)
_ENTRY: dict[str, Any] = {
    "paper": _PAPER,
    "protocol": "glf_cr",
    "bands": "rgb",
    "spec": _spec,
    "model_class": MPIR,
}


@register_model(
    "mpir1",
    default_recipe="mpir1",
    description="MPIR1: three MMCANet stages (/4, /2, full), features concatenated (paper 000)",
    **_ENTRY,
)
def mpir1(**kwargs: Any) -> MPIR:
    """MPIR1: three MMCANet stages, concatenated stem links."""
    return MPIR(**kwargs)


@register_model(
    "mpir2",
    default_recipe="mpir2",
    description="MPIR2: MPIR1 with an ORSNet (ORBs of CABs) as the third stage (paper 000)",
    default_kwargs={"last_stage": "orsnet"},
    **_ENTRY,
)
def mpir2(**kwargs: Any) -> MPIR:
    """MPIR2: two MMCANet stages, then an ORSNet at full size."""
    return MPIR(**kwargs)


@register_model(
    "mpir3",
    default_recipe="mpir3",
    description="MPIR3: three MMCANet stages with additive skip links (paper 000)",
    default_kwargs={"link": "add"},
    **_ENTRY,
)
def mpir3(**kwargs: Any) -> MPIR:
    """MPIR3: three MMCANet stages, additive stem links."""
    return MPIR(**kwargs)


@register_model(
    "mpir4",
    default_recipe="mpir4",
    description="MPIR4: MPIR3 with two stages (/2, full) (paper 000)",
    default_kwargs={"link": "add", "scales": (2, 1)},
    **_ENTRY,
)
def mpir4(**kwargs: Any) -> MPIR:
    """MPIR4: two MMCANet stages (/2, full), additive stem links."""
    return MPIR(**kwargs)
