"""SpA-GAN's generator, SPANet (Pan et al. 2020): a residual network of dilated bottlenecks
gated by a spatial attention map from an IRNN-style spatial attention module (SAM).

Paper: H. Pan, "Cloud Removal for Remote Sensing Imagery via Spatial Attention Generative
Adversarial Network", arXiv:2009.13015 (2020). Official code (MIT, with trained RICE weights):
``Penn000/SpA-GAN_for_cloud_removal`` (``models/gen/SPANet.py``: ``SPANet`` inside
``Generator``; discriminator ``models/dis/dis.py``; training ``train.py``). This module is an
independent re-implementation, checked against the official network run on its shipped
RICE1 weights (``parity/spa_gan_rice1``). Optical only: the network never sees SAR (SPEC
section 5.6; paper 000 describes SpA-GAN as using cloudy images only).

Architecture, ``W`` = ``width`` (32)::

    x = relu(head(optical))                          # 3x3, C -> W, no bias
    x = relu(block(x) + x)                           # blocks 1-3
    for k in 1..4:                                   # the same SAM, applied four times
        A_k = sam(x)                                 # [B, 1, H, W] in (0, 1)
        x = relu(block(x) * A_k + x)                 # three blocks per attention map
    x = relu(block(x) + x)                           # blocks 16-17
    pred = tail(x)                                   # 3x3, W -> C, no bias

* **Bottleneck** (17 of them, :class:`DilatedBottleneck`): 1x1 -> ReLU -> 3x3 with dilation 2
  (padding 2) -> ReLU -> 1x1, all W -> W without bias and without a final activation (the
  residual sum is activated by the caller). The official class also builds a trailing ReLU
  module that its ``forward`` never calls; it has no parameters and is left out.
* **SAM** (:class:`SpatialAttentionModule`): ``m = proj_in(x)`` (1x1 with bias); one IRNN step
  (:class:`IRNNStep`) gives four direction maps; ``fuse1`` (1x1, 4W -> W) of their
  concatenation; a second IRNN step; ``fuse2`` (1x1, 4W -> W) and ReLU; ``mask_head`` (1x1,
  W -> 1, no bias) and a sigmoid. **One module is applied four times** (``SAM1`` in the
  official code, shared weights).
* **IRNN step**: for each direction a per-channel affine map (depth-wise 1x1 conv with bias)
  of the neighbour one pixel away is added to the pixel and rectified: ``up[i] = relu(a_u *
  x[i-1] + b_u + x[i])`` for rows ``i >= 1`` and likewise ``down`` (from row ``i+1``),
  ``left`` (from column ``j-1``) and ``right`` (from column ``j+1``). Each direction's first
  row / column (the one without such a neighbour: row 0 for ``up``, the last column for
  ``right``) keeps its input value **unrectified**, as the official clone-then-assign does.
  This is a single step, not the recurrence over the whole image of the original IRNN; the
  four outputs are concatenated in the official order up, right, down, left.
* **Direction attention** (official quirk). The official SAM computes a four-channel map
  ``w = sigmoid(conv1x1(relu(conv3x3(relu(conv3x3(x))))))`` (W -> W/2 -> W/2 -> 4, with bias)
  and "applies" it with ``top_up.mul(w[:, 0:1])`` etc., a non-in-place multiplication whose
  result is thrown away, so the weights never affect the output. ``direction_weights=
  "discarded"`` (default) reproduces that: the map is not even computed, and its parameters
  are kept (and frozen, see below) only so that official checkpoints load. ``"applied"``
  multiplies each direction map by its weight (channel 0 up, 1 right, 2 down, 3 left) after
  both IRNN steps, the evidently intended behaviour; it changes the output of the official
  weights, which were trained without it.
* **Unused parameters.** The official SAM also builds ``conv_in`` (3x3, W -> W, no bias) and
  never calls it. It is kept as ``sam.unused_conv_in`` so that checkpoints load key for key and
  the parameter count is the official 219,300. Parameters that cannot affect the output (that
  conv, and the direction-attention convs under ``"discarded"``) are created with
  ``requires_grad=False``: no optimizer sees them and DDP does not wait for their gradients.
* **Outputs.** :class:`~cloudfree.models.ModelOutput` with ``pred`` (not clipped; the official
  code clips only for its PNGs) and ``extras["attention"]``, the last map ``A_4`` ``[B, 1, H,
  W]`` that the official ``Generator`` returns and its training supervises; all four maps
  are in ``extras["attention_maps"]`` ``[B, 4, H, W]`` (``A_1`` first; they are computed
  anyway, so this costs one concatenation).
* **Initialisation** (official ``weights_init``): every convolution's weight from N(0, 0.02);
  biases keep PyTorch's default (uniform in +-1/sqrt(fan_in)), which the official function
  does not touch.
* **Memory layout.** The convolution weights are channels-last, so the feature maps are too
  and oneDNN does not reorder them around every convolution: on two CPU threads the forward
  runs 1.4x faster at 128 px and 2.1-3.2x at 256 px (side by side, two runs; at 256 px a
  32-channel map no longer fits in cache); the outputs change by float rounding only (4e-8).
  ``load_state_dict`` copies into these tensors, so the layout survives loading; saved
  weights are made contiguous.
* **IRNN backward.** When gradients are recorded, each IRNN step runs as one autograd
  function (``_IRNNFunction``) that writes the four maps into one ``[B, 4C, H, W]`` tensor
  and computes the gradients of ``x`` and of the four affine maps by hand, through views.
  Autograd on the sliced formulation instead gives each of a step's 12 slices a zero-filled
  full-size gradient buffer and sums them: a fifth of a training step at 256 px. Same values
  (float64 gradients equal to autograd's to 1e-12, tested); a training step at 256 px runs
  1.4x faster than the official code instead of 0.9x (``benchmarks/spa_gan_vs_official.py``,
  docs/performance.md). Inference and export keep the plain formulation.
* **Resolution.** Every convolution keeps the size and the IRNN shifts by one pixel, so any
  ``H, W`` works without padding (``spatial_multiple`` 1).

**Channel order and scaling.** The official network reads 8-bit images as OpenCV gives them,
**BGR** / 255, and writes BGR. Ours takes and returns RGB (B04, B03, B02: band set ``rgb``);
:func:`convert_official_spa_gan` reverses the input channels of the first convolution and the
output channels of the last one (the official last conv has no bias), so official weights
give the same numbers on RGB. Two protocols (:mod:`cloudfree.normalization`): trained from
scratch, the model uses ``glf_cr`` (reflectance, S2 / 10000; the registry ``protocol``, which
the ``spa_gan`` recipe and the saved weights of a run follow). The official weights read
8-bit images, so the entry's ``official_protocol`` is ``spa_gan_8bit`` (DN / 10000 * 3.5
clipped to [0, 1] and rounded to 8-bit levels, how the parity fixture made 8-bit images from
Sentinel-2): ``cloudfree predict --model spa_gan --weights <official .pth>`` (and ``cloudfree
models convert``) use it for official checkpoints, so the official weights get 8-bit inputs
as in their training (RICE PNGs; the gain 3.5 is the fixture's choice for Sentinel-2, not the
authors') and the prediction is mapped back to DN (saturating at 2857 DN, reflectance 0.2857).

Parameters: 219,300 (of which 16,228 never affect the output by default: 9,216 in
``unused_conv_in`` and 7,012 in the direction attention). Multiply-accumulates at 256 x 256
(torch's flop counter / 2): 15.15 G (``"discarded"``: the wasted direction map is not
computed, the official code spends 1.8 G on it) and 16.98 G (``"applied"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelOutput, ModelSpec

__all__ = [
    "DIRECTION_WEIGHTS",
    "DilatedBottleneck",
    "DirectionAttention",
    "IRNNStep",
    "SpAGAN",
    "SpatialAttentionModule",
    "convert_official_spa_gan",
    "spa_gan",
]

PAPER = "Pan, arXiv:2009.13015 2020 (SpA-GAN)"
OFFICIAL_REPO = "Penn000/SpA-GAN_for_cloud_removal"

#: ``direction_weights`` values: the official behaviour (weights computed, then discarded) and
#: the evidently intended one (each direction map multiplied by its weight).
DIRECTION_WEIGHTS = ("discarded", "applied")

#: Blocks before the first attention map, blocks per attention map, attention maps, blocks
#: after the last group (3 + 4 * 3 + 2 = 17 in the official SPANet).
_PLAIN_BEFORE, _PER_MAP, _NUM_MAPS, _PLAIN_AFTER = 3, 3, 4, 2
NUM_BLOCKS = _PLAIN_BEFORE + _PER_MAP * _NUM_MAPS + _PLAIN_AFTER


def _conv(c_in: int, c_out: int, k: int, *, bias: bool, dilation: int = 1) -> nn.Conv2d:
    """A stride-1 convolution that keeps the size (padding ``dilation * (k - 1) / 2``)."""
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=bias)


class DilatedBottleneck(nn.Module):
    """``conv3(relu(conv2(relu(conv1(x)))))``: 1x1, 3x3 dilated by 2, 1x1, no biases."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = _conv(width, width, 1, bias=False)
        self.conv2 = _conv(width, width, 3, bias=False, dilation=2)
        self.conv3 = _conv(width, width, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))


#: The four IRNN directions in the official order, each as (axis, first index of the pixels
#: that get a neighbour, first index of those neighbours, index of the edge kept as it is):
#: ``up`` adds row ``i - 1`` to row ``i >= 1`` and keeps row 0, and so on.
_DIRECTIONS = (
    ("up", 2, 1, 0, 0),
    ("right", 3, 0, 1, -1),
    ("down", 2, 0, 1, -1),
    ("left", 3, 1, 0, 0),
)


class _IRNNFunction(torch.autograd.Function):
    """The four direction maps of one IRNN step, concatenated, with a hand-written backward.

    ``forward(x [B, C, H, W], weight [4, C], bias [4, C])`` (the depth-wise affine maps of up,
    right, down, left) returns ``[B, 4C, H, W]`` in that order, in ``x``'s memory layout.
    Same arithmetic as :meth:`IRNNStep.forward` plus a concatenation, but the backward writes
    each direction's gradient into one ``dx`` through views, where autograd would give every
    one of the 12 slices of a step a zero-filled full-size gradient buffer and then add them
    up (measured: a fifth of a SpA-GAN training step at 256 px).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        b, c, h, w = x.shape
        layout = (
            torch.channels_last
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            else torch.contiguous_format
        )
        out = torch.empty((b, 4 * c, h, w), dtype=x.dtype, device=x.device, memory_format=layout)
        for k, (_, axis, inner, neighbour, edge) in enumerate(_DIRECTIONS):
            n = x.shape[axis] - 1
            o = out[:, k * c : (k + 1) * c]
            o_inner = o.narrow(axis, inner, n)
            a, t = weight[k].view(1, c, 1, 1), bias[k].view(1, c, 1, 1)
            torch.addcmul(t, x.narrow(axis, neighbour, n), a, out=o_inner)
            o_inner.add_(x.narrow(axis, inner, n)).relu_()
            o.select(axis, edge).copy_(x.select(axis, edge))
        ctx.save_for_backward(x, weight, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight, out = ctx.saved_tensors
        c = x.shape[1]
        dx = torch.zeros_like(x)
        dw = torch.empty_like(weight)
        db = torch.empty_like(weight)
        for k, (_, axis, inner, neighbour, edge) in enumerate(_DIRECTIONS):
            n = x.shape[axis] - 1
            g = grad[:, k * c : (k + 1) * c]
            # the ReLU's backward: the gradient where the rectified output is positive
            g_inner = torch.ops.aten.threshold_backward(
                g.narrow(axis, inner, n), out[:, k * c : (k + 1) * c].narrow(axis, inner, n), 0
            )
            dx.narrow(axis, inner, n).add_(g_inner)
            dx.narrow(axis, neighbour, n).addcmul_(g_inner, weight[k].view(1, c, 1, 1))
            dx.select(axis, edge).add_(g.select(axis, edge))
            dw[k] = (g_inner * x.narrow(axis, neighbour, n)).sum((0, 2, 3))
            db[k] = g_inner.sum((0, 2, 3))
        return dx, dw, db


class IRNNStep(nn.Module):
    """One step of the four-direction IRNN (see the module docstring): returns the ``up``,
    ``right``, ``down`` and ``left`` maps, each ``[B, C, H, W]``; :meth:`concatenated` returns
    them as one ``[B, 4C, H, W]`` map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # per-channel affine maps of the neighbour (depth-wise 1x1 convolutions with bias)
        self.up = nn.Conv2d(channels, channels, 1, groups=channels)
        self.right = nn.Conv2d(channels, channels, 1, groups=channels)
        self.down = nn.Conv2d(channels, channels, 1, groups=channels)
        self.left = nn.Conv2d(channels, channels, 1, groups=channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # the 1x1 convs act per pixel: map the whole image, then add the shifted neighbour
        up = torch.cat([x[..., :1, :], F.relu(self.up(x)[..., :-1, :] + x[..., 1:, :])], dim=-2)
        down = torch.cat([F.relu(self.down(x)[..., 1:, :] + x[..., :-1, :]), x[..., -1:, :]], -2)
        left = torch.cat([x[..., :1], F.relu(self.left(x)[..., :-1] + x[..., 1:])], dim=-1)
        right = torch.cat([F.relu(self.right(x)[..., 1:] + x[..., :-1]), x[..., -1:]], dim=-1)
        return up, right, down, left

    def concatenated(self, x: Tensor) -> Tensor:
        """``cat(forward(x), dim=1)``; when gradients are recorded, through
        :class:`_IRNNFunction` (same values up to float rounding, a faster backward)."""
        convs = (self.up, self.right, self.down, self.left)
        if (
            torch.is_grad_enabled()
            and not torch.compiler.is_exporting()
            and (x.requires_grad or any(m.weight.requires_grad for m in convs))
        ):
            c = x.shape[1]
            weight = torch.stack([m.weight.view(c) for m in convs])
            bias = torch.stack([m.bias.view(c) for m in convs])  # type: ignore[union-attr]
            return _IRNNFunction.apply(x, weight, bias)
        return torch.cat(self(x), dim=1)


class DirectionAttention(nn.Module):
    """The SAM's four direction weights: 3x3 (W -> W/2) + ReLU, 3x3 (W/2 -> W/2) + ReLU,
    1x1 (-> 4), sigmoid; every conv with a bias (official ``Attention``, ``W/2`` rounded
    down as its ``int(in_channels / 2)``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        half = width // 2
        self.conv1 = _conv(width, half, 3, bias=True)
        self.conv2 = _conv(half, half, 3, bias=True)
        self.conv3 = _conv(half, 4, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))


class SpatialAttentionModule(nn.Module):
    """SPANet's spatial attention module (SAM): ``x [B, W, H, W'] -> mask [B, 1, H, W']``.

    See the module docstring; ``direction_weights`` is ``"discarded"`` (official) or
    ``"applied"``.
    """

    def __init__(self, width: int, direction_weights: str = "discarded") -> None:
        super().__init__()
        if direction_weights not in DIRECTION_WEIGHTS:
            raise ConfigError(
                f"SpAGAN: direction_weights must be one of {', '.join(DIRECTION_WEIGHTS)}, "
                f"got {direction_weights!r}"
            )
        self.direction_weights = direction_weights
        self.direction = DirectionAttention(width)
        self.unused_conv_in = _conv(width, width, 3, bias=False)  # official conv_in, never used
        self.proj_in = _conv(width, width, 1, bias=True)
        self.irnn1 = IRNNStep(width)
        self.fuse1 = _conv(4 * width, width, 1, bias=True)
        self.irnn2 = IRNNStep(width)
        self.fuse2 = _conv(4 * width, width, 1, bias=True)
        self.mask_head = _conv(width, 1, 1, bias=False)
        self.unused_conv_in.requires_grad_(False)
        if direction_weights == "discarded":
            self.direction.requires_grad_(False)

    def _directions(self, x: Tensor, irnn: IRNNStep, weights: Tensor | None) -> Tensor:
        if weights is None:
            return irnn.concatenated(x)
        maps = tuple(m * weights[:, k : k + 1] for k, m in enumerate(irnn(x)))
        return torch.cat(maps, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.direction(x) if self.direction_weights == "applied" else None
        out = self.fuse1(self._directions(self.proj_in(x), self.irnn1, weights))
        out = F.relu(self.fuse2(self._directions(out, self.irnn2, weights)))
        return torch.sigmoid(self.mask_head(out))

    def extra_repr(self) -> str:
        return f"direction_weights={self.direction_weights!r}"


class SpAGAN(CloudRemovalModel):
    """SpA-GAN's generator SPANet (Pan 2020); see the module docstring for every decision.

    Args:
        in_optical: optical channels in and out (3: RGB, the official network; other counts
            train from scratch, official weights need 3).
        width: feature channels W of every layer (official 32); at least 2 (the direction
            attention has W/2 channels).
        direction_weights: ``"discarded"`` (official: the direction-attention weights are
            computed and thrown away) or ``"applied"`` (each direction map is multiplied by
            its weight, the evidently intended SAM).

    ``forward(optical [B, in_optical, H, W], sar=None)`` returns a
    :class:`~cloudfree.models.ModelOutput`: ``pred`` in the input's scaling,
    ``extras["attention"]`` ``[B, 1, H, W]`` (the last attention map) and
    ``extras["attention_maps"]`` ``[B, 4, H, W]`` (all four). ``sar`` is ignored.
    """

    def __init__(
        self, in_optical: int = 3, width: int = 32, direction_weights: str = "discarded"
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.width = self.check_int("width", width, 2)
        self.head = _conv(in_optical, width, 3, bias=False)
        self.blocks = nn.ModuleList(DilatedBottleneck(width) for _ in range(NUM_BLOCKS))
        self.sam = SpatialAttentionModule(width, direction_weights)
        self.tail = _conv(width, in_optical, 3, bias=False)
        self.direction_weights = direction_weights
        self.reset_parameters()
        # channels-last convolution weights (see "Memory layout" in the module docstring)
        self.to(memory_format=torch.channels_last)

    def reset_parameters(self) -> None:
        """Official ``weights_init``: conv weights from N(0, 0.02), biases left at PyTorch's
        default."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                with torch.no_grad():
                    module.weight.normal_(0.0, 0.02)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> ModelOutput:
        """Cloud-free estimate and attention maps (see the class docstring)."""
        self.check_image("optical", optical, self.in_optical)
        blocks = iter(self.blocks)
        x = F.relu(self.head(optical))
        for _ in range(_PLAIN_BEFORE):
            x = F.relu(next(blocks)(x) + x)
        maps = []
        for _ in range(_NUM_MAPS):
            attention = self.sam(x)
            maps.append(attention)
            for _ in range(_PER_MAP):
                x = F.relu(next(blocks)(x) * attention + x)
        for _ in range(_PLAIN_AFTER):
            x = F.relu(next(blocks)(x) + x)
        return ModelOutput(
            pred=self.tail(x),
            extras={"attention": maps[-1], "attention_maps": torch.cat(maps, dim=1)},
        )


# ------------------------------------------------------------------------------ conversion
_OFFICIAL_PREFIX = "gen.gen."
_BLOCK = re.compile(r"^res_block(\d+)\.group1\.(conv[123])\.weight$")
_IRNN = re.compile(r"^SAM1\.(irnn[12])\.(left|right|up|down)_weight\.(weight|bias)$")
_SAM_RENAMES = {
    "conv_in": "unused_conv_in",
    "conv1": "proj_in",
    "conv2": "fuse1",
    "conv3": "fuse2",
    "conv_out": "mask_head",
    "attention_layer.conv1": "direction.conv1",
    "attention_layer.conv2": "direction.conv2",
    "attention_layer.conv3": "direction.conv3",
}
_SAM = re.compile(r"^SAM1\.(" + "|".join(re.escape(k) for k in _SAM_RENAMES) + r")\.(weight|bias)$")
_PLAIN = {"conv_in.0.weight": "head.weight", "conv_out.0.weight": "tail.weight"}


def _our_key(key: str) -> str:
    if key in _PLAIN:
        return _PLAIN[key]
    match = _BLOCK.match(key)
    if match is not None:
        index = int(match.group(1))
        if not 1 <= index <= NUM_BLOCKS:
            raise ConfigError(
                f"convert_official_spa_gan: block index {index} outside 1..{NUM_BLOCKS} in {key!r}"
            )
        return f"blocks.{index - 1}.{match.group(2)}.weight"
    match = _IRNN.match(key)
    if match is not None:
        return f"sam.{match.group(1)}.{match.group(2)}.{match.group(3)}"
    match = _SAM.match(key)
    if match is not None:
        return f"sam.{_SAM_RENAMES[match.group(1)]}.{match.group(2)}"
    raise ConfigError(f"convert_official_spa_gan: unrecognised key {key!r}")


def convert_official_spa_gan(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert an official SpA-GAN generator state dict (``gen_model_epoch_*.pth``) to
    :class:`SpAGAN` names, for RGB inputs.

    The official ``Generator`` keeps ``SPANet`` under ``gen.gen.``; that prefix is removed
    here (a bare ``SPANet`` state dict, without it, converts too). Keys map as ``conv_in.0 ->
    head``, ``res_block{i}.group1.conv{k} -> blocks.{i-1}.conv{k}``, ``SAM1.* -> sam.*``
    (``irnn{n}.<dir>_weight -> irnn{n}.<dir>``, ``conv_in -> unused_conv_in``, ``conv1 ->
    proj_in``, ``conv2 -> fuse1``, ``conv3 -> fuse2``, ``conv_out -> mask_head``,
    ``attention_layer -> direction``) and ``conv_out.0 -> tail``. The official network
    works on **BGR**: the head's input channels and the tail's output channels are reversed
    so that the converted model takes and returns RGB (the tail has no bias to reverse).

    Raises:
        ConfigError: a key outside that layout, a duplicate after the prefix is removed, or a
            head / tail without 3 image channels (official weights are BGR images).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        try:
            ours = _our_key(key.removeprefix(_OFFICIAL_PREFIX))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (checkpoint key {key!r})") from None
        if ours in out:
            raise ConfigError(f"convert_official_spa_gan: two keys map to {ours!r} ({key!r})")
        out[ours] = value
    for key, dim in (("head.weight", 1), ("tail.weight", 0)):
        weight = out.get(key)
        if weight is None:
            raise ConfigError(f"convert_official_spa_gan: no {key.split('.')[0]} convolution")
        if weight.ndim != 4 or weight.shape[dim] != 3:
            raise ConfigError(
                f"convert_official_spa_gan: {key} has shape {list(weight.shape)}; the official "
                "network takes and returns 3-channel BGR images"
            )
        out[key] = weight.flip(dim)  # BGR <-> RGB
    return out


def spa_gan_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of a :class:`SpAGAN` built with ``kwargs``: mono-temporal, ``in_optical``
    channels in and out, no SAR, any size, trained as a GAN generator."""
    return ModelSpec(
        InputSpec(optical_channels=kwargs["in_optical"], sar_channels=0, needs_sar=False),
        tasks=frozenset({"regression", "adversarial"}),
    )


@register_model(
    "spa_gan",
    paper=PAPER,
    protocol="glf_cr",
    official_protocol="spa_gan_8bit",
    bands="rgb",
    description="SpA-GAN generator SPANet: dilated bottlenecks gated by a shared IRNN spatial "
    "attention module (optical only, RGB)",
    official_converter=convert_official_spa_gan,
    official_repo=OFFICIAL_REPO,
    spec=spa_gan_spec,
    model_class=SpAGAN,
    default_recipe="spa_gan",
)
def spa_gan(**kwargs: Any) -> SpAGAN:
    """SpA-GAN's generator; kwargs go to :class:`SpAGAN`."""
    return SpAGAN(**kwargs)
