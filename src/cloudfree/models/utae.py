"""U-TAE (Garnot & Landrieu, ICCV 2021): a U-Net whose encoder is shared over the dates and whose
skip connections are aggregated over time with the L-TAE's attention.

:class:`UTAE` is the backbone of ``VSainteuf/utae-paps`` (``src/backbones/utae.py``), with the same
constructor arguments, state-dict keys and numerics (parity case ``utae``), called as the
official one: ``out = model(x, batch_positions=...)``, ``out, attn = model(x, batch_positions,
return_att=True)``; ``x`` is ``[B, T, C, H, W]``, ``batch_positions`` ``[B, T]``.

* **Padded dates** are the frames whose every value equals ``pad_value`` (0): the shared
  convolution blocks are run on the other frames only and write ``pad_value`` for them
  (:func:`_shared`), the L-TAE masks them in its attention (its input GroupNorm still sees their
  zero features), and the skip aggregation weights them 0.
* **Encoder**: ``in_conv`` (two 3x3 conv + GroupNorm(4) + ReLU), then per stage a strided 4x4 conv
  and a residual pair of 3x3 convs (``DownConvBlock``); GroupNorm by default (``encoder_norm``).
* **Temporal encoder**: :class:`~cloudfree.models.layers.ltae.LTAE2d` on the deepest features
  (``mlp = [d_model, encoder_widths[-1]]``, attention returned).
* **Decoder**: per stage a transposed 4x4 conv, the skip (attention-aggregated over time,
  bilinearly resized to its resolution, per channel group) through a 1x1 conv, two 3x3 convs
  (BatchNorm); ``out_conv`` is a conv block **with** BatchNorm + ReLU after its last conv, as the
  official ``ConvBlock([32, 20])`` (so its outputs are >= 0).

It is registered as the building block ``utae`` (tag ``block``: not a cloud-removal model by
itself, hidden from ``list_models()``); ``load_official_checkpoint("utae", path, **kwargs)``
reads the official ``{'state_dict': ...}`` files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.models._registry import BLOCK_TAG, register_model
from cloudfree.models.api import InputSpec, ModelSpec, OutputSpec
from cloudfree.models.layers.ltae import LTAE2d

__all__ = ["UTAE", "temporal_aggregate"]


def _norm(kind: str | None, channels: int, groups: int = 4) -> nn.Module | None:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    return None


class _ConvLayer(nn.Module):
    """Convolutions, each followed by a norm and a ReLU (the last ReLU optional); the layers
    sit in ``self.conv`` (state-dict keys ``conv.<i>``)."""

    def __init__(
        self,
        nkernels: Sequence[int],
        norm: str | None = "batch",
        k: int = 3,
        s: int = 1,
        p: int = 1,
        last_relu: bool = True,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n = len(nkernels) - 1
        for i in range(n):
            layers.append(
                nn.Conv2d(
                    nkernels[i], nkernels[i + 1], k, stride=s, padding=p, padding_mode=padding_mode
                )  # fmt: skip
            )
            nl = _norm(norm, nkernels[i + 1])
            if nl is not None:
                layers.append(nl)
            if last_relu or i < n - 1:
                layers.append(nn.ReLU())
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _shared(block: nn.Module, x: Tensor, pad_value: float | None) -> Tensor:
    """``block`` applied to every frame of ``x [B, T, C, H, W]``; with ``pad_value``, frames
    holding only that value are not run and come out as ``pad_value``."""
    if x.ndim == 4:
        return block(x)
    b, t = x.shape[:2]
    flat = x.reshape(b * t, *x.shape[2:])
    if pad_value is None:
        out = block(flat)
    else:
        padded = (flat == pad_value).flatten(1).all(dim=1)
        if padded.any():
            real = block(flat[~padded])
            out = real.new_full((b * t, *real.shape[1:]), float(pad_value))
            out[~padded] = real
        else:
            out = block(flat)
    return out.reshape(b, t, *out.shape[1:])


class _ConvBlock(nn.Module):
    def __init__(self, nkernels: Sequence[int], pad_value: float | None = None,
                 norm: str | None = "batch", last_relu: bool = True,
                 padding_mode: str = "reflect") -> None:  # fmt: skip
        super().__init__()
        self.pad_value = pad_value
        self.conv = _ConvLayer(nkernels, norm=norm, last_relu=last_relu, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        return _shared(self.conv, x, self.pad_value)


class _DownBlock(nn.Module):
    """Strided conv, then ``conv1`` and a residual ``conv2``."""

    def __init__(self, d_in: int, d_out: int, k: int, s: int, p: int,
                 pad_value: float | None, norm: str, padding_mode: str) -> None:  # fmt: skip
        super().__init__()
        self.pad_value = pad_value
        self.down = _ConvLayer([d_in, d_in], norm=norm, k=k, s=s, p=p, padding_mode=padding_mode)
        self.conv1 = _ConvLayer([d_in, d_out], norm=norm, padding_mode=padding_mode)
        self.conv2 = _ConvLayer([d_out, d_out], norm=norm, padding_mode=padding_mode)

    def _frame(self, x: Tensor) -> Tensor:
        out = self.conv1(self.down(x))
        return out + self.conv2(out)

    def forward(self, x: Tensor) -> Tensor:
        return _shared(self._frame, x, self.pad_value)  # type: ignore[arg-type]


class _UpBlock(nn.Module):
    """Transposed conv, concatenation with the (1x1-conv'd) skip, ``conv1`` and a residual
    ``conv2``."""

    def __init__(self, d_in: int, d_out: int, k: int, s: int, p: int, norm: str,
                 d_skip: int | None, padding_mode: str) -> None:  # fmt: skip
        super().__init__()
        d = d_out if d_skip is None else d_skip
        self.skip_conv = nn.Sequential(nn.Conv2d(d, d, 1), nn.BatchNorm2d(d), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(d_in, d_out, k, stride=s, padding=p),
            nn.BatchNorm2d(d_out),
            nn.ReLU(),
        )
        self.conv1 = _ConvLayer([d_out + d, d_out], norm=norm, padding_mode=padding_mode)
        self.conv2 = _ConvLayer([d_out, d_out], norm=norm, padding_mode=padding_mode)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        out = torch.cat([self.up(x), self.skip_conv(skip)], dim=1)
        out = self.conv1(out)
        return out + self.conv2(out)


def temporal_aggregate(
    x: Tensor, attn: Tensor, pad_mask: Tensor | None, mode: str = "att_group"
) -> Tensor:
    """Aggregate ``x [B, T, C, H, W]`` over time with the L-TAE attention ``[heads, B, T, h,
    w]`` (resized to ``x``'s resolution: bilinear up, average-pooled down), padded dates
    weighted 0: ``att_group`` (channel group g with head g), ``att_mean`` (heads averaged) or
    ``mean`` (plain mean of the real dates)."""
    real = None if pad_mask is None else (~pad_mask).to(x.dtype)
    if mode == "mean":
        if real is None:
            return x.mean(dim=1)
        return (x * real[:, :, None, None, None]).sum(dim=1) / real.sum(dim=1)[:, None, None, None]
    n_heads, b, t, h, w = attn.shape
    if mode == "att_mean":
        a = F.interpolate(attn.mean(dim=0), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if real is not None:
            a = a * real[:, :, None, None]
        return (x * a[:, :, None]).sum(dim=1)
    if mode != "att_group":
        raise ValueError(f"unknown aggregation mode {mode!r}")
    a = attn.reshape(n_heads * b, t, h, w)
    if x.shape[-2] > w:
        a = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
    else:
        a = F.avg_pool2d(a, kernel_size=w // x.shape[-2])
    a = a.view(n_heads, b, t, *x.shape[-2:])
    if real is not None:
        a = a * real[None, :, :, None, None]
    groups = torch.stack(x.chunk(n_heads, dim=2))  # [heads, B, T, C / heads, H, W]
    out = (a[:, :, :, None] * groups).sum(dim=2)
    return torch.cat(list(out), dim=1)


class UTAE(nn.Module):
    """The U-TAE backbone (module docstring); argument names as the official constructor."""

    def __init__(
        self,
        input_dim: int,
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] | None = (32, 32, 64, 128),
        out_conv: Sequence[int] = (32, 20),
        str_conv_k: int = 4,
        str_conv_s: int = 2,
        str_conv_p: int = 1,
        agg_mode: str = "att_group",
        encoder_norm: str = "group",
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        encoder: bool = False,
        return_maps: bool = False,
        pad_value: float = 0,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        enc = list(encoder_widths)
        dec = list(decoder_widths) if decoder_widths is not None else enc
        if len(enc) != len(dec) or enc[-1] != dec[-1]:
            raise ValueError("encoder_widths and decoder_widths need equal length and last width")
        self.n_stages = len(enc)
        self.encoder, self.return_maps = encoder, return_maps or encoder
        self.pad_value, self.agg_mode = pad_value, agg_mode
        self.in_conv = _ConvBlock([input_dim, enc[0], enc[0]], pad_value=pad_value,
                                  norm=encoder_norm, padding_mode=padding_mode)  # fmt: skip
        self.down_blocks = nn.ModuleList(
            _DownBlock(
                enc[i],
                enc[i + 1],
                str_conv_k,
                str_conv_s,
                str_conv_p,
                pad_value,
                encoder_norm,
                padding_mode,
            )  # fmt: skip
            for i in range(self.n_stages - 1)
        )
        self.up_blocks = nn.ModuleList(
            _UpBlock(
                dec[i],
                dec[i - 1],
                str_conv_k,
                str_conv_s,
                str_conv_p,
                "batch",
                enc[i - 1],
                padding_mode,
            )  # fmt: skip
            for i in range(self.n_stages - 1, 0, -1)
        )
        self.temporal_encoder = LTAE2d(
            in_channels=enc[-1], d_model=d_model, n_head=n_head, mlp=[d_model, enc[-1]],
            return_att=True, d_k=d_k,
        )  # fmt: skip
        self.out_conv = _ConvBlock([dec[0], *out_conv], padding_mode=padding_mode)

    def forward(
        self, x: Tensor, batch_positions: Tensor | None = None, return_att: bool = False
    ) -> Tensor | tuple[Tensor, Tensor] | tuple[Tensor, list[Tensor]]:
        pad_mask = (x == self.pad_value).flatten(2).all(dim=2)  # [B, T]
        maps = [self.in_conv(x)]
        for block in self.down_blocks:
            maps.append(block(maps[-1]))
        out, att = self.temporal_encoder(maps[-1], batch_positions=batch_positions,
                                         pad_mask=pad_mask)  # fmt: skip
        decoded = [out]
        for i, block in enumerate(self.up_blocks):
            skip = temporal_aggregate(maps[-(i + 2)], att, pad_mask, self.agg_mode)
            out = block(out, skip)
            decoded.append(out)
        if self.encoder:
            return out, decoded
        out = self.out_conv(out)
        if return_att:
            return out, att
        if self.return_maps:
            return out, decoded
        return out


def _same_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The official key names are ours (the strict load names any mismatch)."""
    return dict(state)


def _utae_spec(kwargs: dict) -> ModelSpec:
    return ModelSpec(
        inputs=InputSpec(
            temporal=True,
            needs_sar=False,
            optical_channels=kwargs["input_dim"],
            sar_channels=None,
            needs_dates=True,
        ),  # fmt: skip
        outputs=OutputSpec(channels=list(kwargs["out_conv"])[-1]),
    )


@register_model(
    "utae",
    paper="Garnot & Landrieu, Panoptic segmentation of satellite image time series with "
    "convolutional temporal attention networks (ICCV 2021)",
    protocol="uncrtaints",
    description="U-TAE backbone (building block; utae-paps parity)",
    default_kwargs={"input_dim": 15},
    official_converter=_same_keys,
    official_repo="VSainteuf/utae-paps",
    spec=_utae_spec,
    model_class=UTAE,
    tags={BLOCK_TAG},
)
def utae(**kwargs: object) -> UTAE:
    """U-TAE backbone of utae-paps (a building block, called as the official one)."""
    return UTAE(**kwargs)  # type: ignore[arg-type]


def _ltae_spec(kwargs: dict) -> ModelSpec:
    return ModelSpec(
        inputs=InputSpec(
            temporal=True,
            needs_sar=False,
            optical_channels=kwargs["in_channels"],
            sar_channels=None,
            needs_dates=bool(kwargs["positional_encoding"]),
        ),  # fmt: skip
        outputs=OutputSpec(channels=list(kwargs["mlp"])[-1]),
    )


@register_model(
    "ltae2d",
    paper="Garnot & Landrieu, Lightweight temporal self-attention for classifying satellite "
    "image time series (2020)",
    protocol="uncrtaints",
    description="L-TAE 2-D block (building block; utae-paps parity)",
    official_converter=_same_keys,
    official_repo="VSainteuf/utae-paps",
    spec=_ltae_spec,
    model_class=LTAE2d,
    tags={BLOCK_TAG},
)
def ltae2d(**kwargs: object) -> LTAE2d:
    """The 2-D L-TAE of utae-paps (a building block, called as the official one)."""
    return LTAE2d(**kwargs)  # type: ignore[arg-type]
