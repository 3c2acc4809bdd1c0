"""UnCRtainTS (Ebel et al., CVPRW 2023): multi-temporal cloud removal with uncertainty.

Our implementation of ``PatrickTUM/UnCRtainTS`` ``UNCRTAINTS`` inside its ``BaseModel`` (the
scaling around the network), numerically equal to it (parity cases ``uncrtaints``,
``uncrtaints_mono``) and with the official state-dict keys (after the ``netG.`` prefix):

* **Inputs** (model contract): ``optical [B, T, 13, H, W]`` and ``sar [B, T, 2, H, W]`` in the
  ``uncrtaints`` scaling ([0, 1]), ``dates [B, T]`` (days since 2014-04-03), ``time_mask``.
  Inside, the network sees ``cat(S1, S2)`` (the 2 SAR channels **first**) multiplied by
  ``scale_by`` (10 in the README configuration).
* **Encoder**: a 1x1 conv (15 -> ``width``) + GroupNorm(4) + ReLU, then one MBConv (expansion 2,
  pre-norm GroupNorm, GELU, depth-wise 3x3 with reflect padding, squeeze-excitation), shared
  over the dates.
* **Temporal encoder** (``temporal=True``): the features max-pooled to 32 x 32, the tiny L-TAE
  (:class:`~cloudfree.models.layers.ltae.LTAE2dTiny`: attention only, ``num_heads`` heads,
  ``d_k``, ``d_model``, dates encoded with period 1000); the attention upsampled bilinearly to
  the full resolution and applied per channel group (``att_group``), padded dates weighted 0.
  ``temporal=False`` is the official mono-temporal pre-training model (``--pretrain``: no L-TAE,
  one date).
* **Decoder**: 5 MBConv with BatchNorm; a 1x1 conv to 26 channels. (MBConv lives in
  :mod:`cloudfree.models.layers.mbconv`, shared with SG-BAF; importable from here too.)
* **Outputs** (``covmode="diag"``): ``pred = sigmoid(raw[:13])`` (the official mean head
  ``scale_by * sigmoid`` divided back by ``scale_by``) and ``variance = (softplus(raw[13:]) +
  eps) / scale_by**2`` with eps 1e-3 (1e-9 when ``scale_by == 1``), i.e. the official outputs
  rescaled to the data's scale as ``BaseModel`` does; ``covmode=None`` has no variance head.
* **Padded dates** (``time_mask`` False, or frames that are all 0 when no mask is given, as the
  official ``pad_mask``) are masked in the attention; the shared blocks run on every frame
  (padded frames are zeroed first, so NaN never enters).
* **Any size** (the contract): the 32 x 32 attention is resized to the features as officially
  (bilinear up when larger; average-pooled down when square and 32 is a multiple); other sizes,
  which the official code cannot take, use bilinear resizing (a documented extension).
* **ONNX export** (``torch.compiler.is_exporting()``): the 32 x 32 max pooling is computed by
  index arithmetic (:func:`~cloudfree.models.layers.pooling.adaptive_max_pool2d_gather`, the
  same bins) and the attention is resized by one bilinear interpolation, which equals the
  branches above at every size an exported file takes (>= 16 px); one graph then holds every
  size. The eager path is unchanged.

Parameters at the README configuration: 570,010 (``uncrtaints``), 520,218 (``uncrtaints_mono``),
568,333 without the variance head.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelOutput, ModelSpec, OutputSpec
from cloudfree.models.layers.ltae import LTAE2dTiny
from cloudfree.models.layers.mbconv import MBConv
from cloudfree.models.layers.norm import norm_layer
from cloudfree.models.layers.pooling import adaptive_max_pool2d_gather

__all__ = ["MBConv", "UnCRtainTS"]

_S2 = 13
_ATT_SIZE = 32


def _norm(kind: str, channels: int) -> nn.Module:
    layer = norm_layer(kind, channels)
    if layer is None:
        raise ConfigError("UnCRtainTS's blocks need a norm (batch, instance or group)")
    return layer


class _InConv(nn.Module):
    """1x1 conv + GroupNorm(4) + ReLU (keys ``conv.conv.{0,1}`` as the official ConvBlock)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        inner = nn.Module()
        inner.conv = nn.Sequential(nn.Conv2d(cin, cout, 1), _norm(norm, cout), nn.ReLU())
        self.conv = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.conv.conv(x)


class _OutConv(nn.Module):
    """1x1 conv, no norm, no ReLU (keys ``conv.conv.0``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        inner = nn.Module()
        inner.conv = nn.Sequential(nn.Conv2d(cin, cout, 1))
        self.conv = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.conv.conv(x)


def _frames(fn: nn.Module, x: Tensor) -> Tensor:
    """``fn`` on every frame of ``[B, T, C, H, W]``."""
    b, t = x.shape[:2]
    out = fn(x.reshape(b * t, *x.shape[2:]))
    return out.reshape(b, t, *out.shape[1:])


class UnCRtainTS(CloudRemovalModel):
    """UnCRtainTS (module docstring).

    Args:
        in_optical, in_sar: input channels (13, 2).
        width: feature channels (128).
        num_heads, d_k, d_model: the tiny L-TAE (16, 4, 256).
        decoder_blocks: MBConv blocks of the decoder (5).
        scale_by: the official input/output scale factor (10).
        covmode: ``"diag"`` (a variance per band) or None (mean only).
        temporal: False for the mono-temporal pre-training model (no L-TAE).
        positional_encoding: encode the dates (True; the mono model has none).
    """

    temporal_forward = True

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        width: int = 128,
        num_heads: int = 16,
        d_k: int = 4,
        d_model: int = 256,
        decoder_blocks: int = 5,
        scale_by: float = 10.0,
        covmode: str | None = "diag",
        temporal: bool = True,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 0)
        self.width = self.check_int("width", width, 1)
        self.check_int("decoder_blocks", decoder_blocks, 1)
        if covmode not in ("diag", None):
            raise ConfigError(f"covmode must be 'diag' or None, got {covmode!r}")
        self.scale_by, self.covmode, self.temporal = float(scale_by), covmode, bool(temporal)
        self.in_conv = _InConv(in_sar + in_optical, width, "group")
        self.in_block = nn.ModuleList([MBConv(width, 2, "group")])
        if self.temporal:
            self.temporal_encoder = LTAE2dTiny(
                in_channels=width, n_head=num_heads, d_k=d_k, d_model=d_model,
                positional_encoding=positional_encoding,
            )  # fmt: skip
            self.attn_dropout = nn.Dropout(0.1)  # on the upsampled attention, as the official
        self.out_block = nn.ModuleList([MBConv(width, 2, "batch") for _ in range(decoder_blocks)])
        out_channels = in_optical * (2 if covmode == "diag" else 1)
        self.out_conv = _OutConv(width, out_channels)
        self.eps = 1e-9 if self.scale_by == 1.0 else 1e-3
        # channels-last convolution weights: the CPU forward and training step run about 1.15x
        # faster (benchmarks/uncrtaints_vs_official.py); outputs change by float rounding only
        # (2e-6 at most against the parity fixtures' 3e-5 tolerance). load_state_dict copies
        # into these tensors, so the layout survives loading; saved weights are made contiguous.
        self.to(memory_format=torch.channels_last)

    def _aggregate(self, x: Tensor, attn: Tensor, pad_mask: Tensor) -> Tensor:
        n_heads, b, t, h, w = attn.shape
        a = attn.reshape(n_heads * b, t, h, w)
        size = tuple(x.shape[-2:])
        if torch.compiler.is_exporting():
            # one graph for every size: bilinear equals the branches below wherever the
            # exporter lets a file run (>= 16 px): it is the first branch above 32 px, the
            # identity at 32, and at 16 px it averages each 2 x 2 block, as avg_pool2d does
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        elif size[0] > w:  # the official path: bilinear up, then dropout
            a = self.attn_dropout(F.interpolate(a, size=size, mode="bilinear", align_corners=False))
        elif size[0] == size[1] and w % size[0] == 0:  # the official path: average down
            a = F.avg_pool2d(a, kernel_size=w // size[0])
        else:  # sizes the official code cannot take (not square, 32 not a multiple): bilinear
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        a = a.view(n_heads, b, t, *x.shape[-2:])
        # multiplying by 1 where nothing is padded changes no value, so this needs no
        # data-dependent branch (which torch.export cannot trace)
        a = a * (~pad_mask).to(a.dtype)[None, :, :, None, None]
        groups = torch.stack(x.chunk(n_heads, dim=2))  # [heads, B, T, C / heads, H, W]
        out = (a[:, :, :, None] * groups).sum(dim=2)
        return torch.cat(list(out), dim=1)

    def forward(
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> ModelOutput:
        mono_input = optical.ndim == 4
        if mono_input:
            optical = optical[:, None]
            sar = None if sar is None else sar[:, None]
        parts = [optical] if self.in_sar == 0 else [sar.to(optical.dtype), optical]  # type: ignore[union-attr]
        x = torch.cat(parts, dim=2) * self.scale_by  # S1 first, as the official network
        b, t = x.shape[:2]
        if time_mask is not None:
            pad_mask = ~time_mask.to(torch.bool)
            x = torch.where(pad_mask[:, :, None, None, None], torch.zeros((), dtype=x.dtype), x)
        else:  # the official rule: frames holding only the pad value (0)
            pad_mask = (x == 0).flatten(2).all(dim=2)
        out = _frames(self.in_conv, x)
        for block in self.in_block:
            out = _frames(block, out)
        if self.temporal:
            frames = out.flatten(0, 1)
            if torch.compiler.is_exporting():  # the same values, any size in one graph
                down = adaptive_max_pool2d_gather(frames, (_ATT_SIZE, _ATT_SIZE))
            else:
                down = F.adaptive_max_pool2d(frames, (_ATT_SIZE, _ATT_SIZE))
            down = down.view(b, t, *down.shape[1:])
            attn = self.temporal_encoder(down, batch_positions=dates, pad_mask=pad_mask)
            out = self._aggregate(out, attn, pad_mask)
        else:
            if t != 1:
                raise ValueError(f"the mono-temporal UnCRtainTS takes one date, got {t}")
            out = out[:, 0]
        for block in self.out_block:
            out = block(out)
        raw = self.out_conv(out)
        c = self.in_optical
        pred = torch.sigmoid(raw[:, :c])  # scale_by * sigmoid, divided back by scale_by
        variance = None
        if self.covmode == "diag":
            variance = (F.softplus(raw[:, c : 2 * c], beta=1, threshold=20) + self.eps) / (
                self.scale_by**2
            )
        return ModelOutput(pred=pred, variance=variance)


# ------------------------------------------------------------------------------ official keys
#: Old checkpoints number their blocks from 1 without a dot (``in_block1``, ``out_block3``);
#: the official ``load_checkpoint`` renames them to ``in_block.0``, ``out_block.2``.
_OLD_BLOCK = re.compile(r"^(in_block|out_block)(\d+)\.")


def _official_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official keys (after ``netG.``) are ours; old block names are renamed (see above)."""
    out = {}
    for key, value in state.items():
        m = _OLD_BLOCK.match(key)
        if m:
            key = f"{m[1]}.{int(m[2]) - 1}." + key[m.end() :]
        out[key] = value
    return out


def _spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    temporal = bool(kwargs["temporal"])
    return ModelSpec(
        InputSpec(
            temporal=temporal,
            needs_sar=kwargs["in_sar"] > 0,
            needs_dates=temporal and bool(kwargs["positional_encoding"]),
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            padding_invariant=False,  # the L-TAE's GroupNorm sees padded frames, as officially
        ),
        OutputSpec(has_variance=kwargs["covmode"] == "diag"),
        frozenset({"uncertainty"} if kwargs["covmode"] == "diag" else {"regression"}),
    )


_PAPER = (
    "Ebel et al., UnCRtainTS: Uncertainty quantification for cloud removal in optical "
    "satellite time series (CVPRW 2023)"
)


@register_model(
    "uncrtaints",
    paper=_PAPER,
    protocol="uncrtaints",
    default_recipe="uncrtaints",
    official_converter=_official_keys,
    official_repo="PatrickTUM/UnCRtainTS",
    spec=_spec,
    model_class=UnCRtainTS,
)
def uncrtaints(**kwargs: Any) -> UnCRtainTS:
    """UnCRtainTS, multi-temporal (L-TAE tiny, diagonal variance; README configuration)."""
    return UnCRtainTS(**kwargs)


@register_model(
    "uncrtaints_mono",
    paper=_PAPER,
    protocol="uncrtaints",
    default_kwargs={"temporal": False, "num_heads": 1, "positional_encoding": False},
    default_recipe="uncrtaints_mono",
    official_converter=_official_keys,
    official_repo="PatrickTUM/UnCRtainTS",
    spec=_spec,
    model_class=UnCRtainTS,
)
def uncrtaints_mono(**kwargs: Any) -> UnCRtainTS:
    """UnCRtainTS, mono-temporal (the official --pretrain model on SEN12MS-CR)."""
    return UnCRtainTS(**kwargs)
