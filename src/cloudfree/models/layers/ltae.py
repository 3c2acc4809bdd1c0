"""L-TAE: the lightweight temporal attention encoder (Garnot & Landrieu 2020), 2-D form.

:class:`LTAE2d` maps a feature time series ``[B, T, C, H, W]`` to one feature map ``[B, C', H, W]``
by attention over the dates, pixel by pixel, as ``VSainteuf/utae-paps``'s ``LTAE2d`` (state-dict
keys identical, numerically equal including padded dates; parity case ``ltae2d``):

1. per pixel, GroupNorm(``n_head`` groups) over (channels x dates) of the input, **padded dates
   included** (they are all-zero features);
2. a 1x1 Conv1d to ``d_model`` channels (``inconv``), plus a sinusoidal encoding of the dates
   (:class:`PositionalEncoder`, period ``T``, ``d_model // n_head`` dims repeated per head);
3. ``n_head`` heads, each one learned query ``Q[h]`` (``d_k`` dims) against keys ``fc1_k(x)``;
   logits divided by ``sqrt(d_k)``; padded dates set to -1e3 before the softmax over dates; the
   values are the ``d_model`` channels split into ``n_head`` groups; attention dropout (0.1);
4. the heads concatenated, an MLP (Linear + BatchNorm1d + ReLU per layer), dropout, GroupNorm.

``forward(x, batch_positions, pad_mask)`` returns the output and, with ``return_att``, the
attention ``[n_head, B, T, H, W]``. ``pad_mask`` is True on padded dates (the official
convention; the model contract's ``time_mask`` is its negation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["LTAE2d", "LTAE2dTiny", "PositionalEncoder"]


class PositionalEncoder(nn.Module):
    """Sinusoidal encoding of date positions: dimension ``i`` of ``d`` uses the period
    ``T ** (2 * (i // 2) / d)``, sine on even and cosine on odd dimensions; the ``d`` values are
    repeated ``repeat`` times (one copy per attention head)."""

    def __init__(self, d: int, T: float = 1000, repeat: int | None = None, offset: int = 0) -> None:
        super().__init__()
        self.d, self.T, self.repeat = d, T, repeat
        exponent = 2 * torch.div(torch.arange(offset, offset + d).float(), 2, rounding_mode="floor")
        self.register_buffer("denom", torch.pow(float(T), exponent / d), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """``positions [N, T]`` -> ``[N, T, d * repeat]``."""
        table = positions[:, :, None].float() / self.denom[None, None, :]
        out = torch.empty_like(table)
        out[:, :, 0::2] = torch.sin(table[:, :, 0::2])
        out[:, :, 1::2] = torch.cos(table[:, :, 1::2])
        if self.repeat is not None:
            out = out.repeat(1, 1, self.repeat)
        return out


class _MasterQueryAttention(nn.Module):
    """One learned query per head attending over the dates (keys ``fc1_k``)."""

    def __init__(self, n_head: int, d_k: int, d_in: int, attn_dropout: float = 0.1) -> None:
        super().__init__()
        self.n_head, self.d_k, self.d_in = n_head, d_k, d_in
        self.Q = nn.Parameter(torch.zeros(n_head, d_k))
        nn.init.normal_(self.Q, mean=0.0, std=math.sqrt(2.0 / d_k))
        self.fc1_k = nn.Linear(d_in, n_head * d_k)
        nn.init.normal_(self.fc1_k.weight, mean=0.0, std=math.sqrt(2.0 / d_k))
        self.dropout = nn.Dropout(attn_dropout)
        self.temperature = math.sqrt(d_k)

    def weights(self, v: Tensor, pad_mask: Tensor | None) -> Tensor:
        """Attention ``[n_head, N, T]`` of ``v [N, T, d_in]`` (before dropout)."""
        n, t, _ = v.shape
        h, dk = self.n_head, self.d_k
        k = self.fc1_k(v).view(n, t, h, dk).permute(2, 0, 1, 3)  # [h, N, T, dk]
        logits = torch.einsum("hd,hntd->hnt", self.Q, k) / self.temperature
        if pad_mask is not None:
            logits = logits.masked_fill(pad_mask[None], -1e3)
        return torch.softmax(logits, dim=-1)

    def forward(self, v: Tensor, pad_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """``v [N, T, d_in]`` -> heads ``[n_head, N, d_in / n_head]``, attention
        ``[n_head, N, T]``."""
        attn = self.dropout(self.weights(v, pad_mask))
        values = torch.stack(v.split(v.shape[-1] // self.n_head, dim=-1))  # [h, N, T, d_in / h]
        out = torch.einsum("hnt,hntc->hnc", attn, values)
        return out, attn


def _pixel_sequences(
    m: nn.Module, x: Tensor, batch_positions: Tensor | None, pad_mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Steps 1-2 of the module docstring for ``m`` (its ``in_norm``, ``inconv`` and
    ``positional_encoder``): ``x [B, T, C, H, W]`` -> per-pixel sequences ``[B*H*W, T,
    d_model]`` and the per-pixel pad mask ``[B*H*W, T]`` (or None)."""
    b, t, c, h, w = x.shape
    out = m.in_norm(x.permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t))  # channels x dates
    if m.inconv is not None:
        out = m.inconv(out)
    out = out.permute(0, 2, 1)
    per_pixel = None
    if pad_mask is not None:
        per_pixel = pad_mask[:, None, None, :].expand(b, h, w, t).reshape(b * h * w, t)
    if m.positional_encoder is not None:
        if batch_positions is None:
            raise ValueError("batch_positions are needed with positional_encoding=True")
        pos = batch_positions[:, None, None, :].expand(b, h, w, t).reshape(b * h * w, t)
        out = out + m.positional_encoder(pos)
    return out, per_pixel


class LTAE2d(nn.Module):
    """The 2-D L-TAE (module docstring); argument names as the official constructor."""

    def __init__(
        self,
        in_channels: int = 128,
        n_head: int = 16,
        d_k: int = 4,
        mlp: list[int] | tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        d_model: int | None = 256,
        T: float = 1000,
        return_att: bool = False,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__()
        mlp = list(mlp)
        self.in_channels, self.n_head, self.return_att = in_channels, n_head, return_att
        self.d_model = d_model if d_model is not None else in_channels
        self.inconv = nn.Conv1d(in_channels, d_model, 1) if d_model is not None else None
        if mlp[0] != self.d_model:
            raise ValueError(f"mlp[0] must equal d_model ({self.d_model}), got {mlp}")
        self.positional_encoder = (
            PositionalEncoder(self.d_model // n_head, T=T, repeat=n_head)
            if positional_encoding
            else None
        )
        self.attention_heads = _MasterQueryAttention(n_head, d_k, self.d_model)
        self.in_norm = nn.GroupNorm(n_head, in_channels)
        self.out_norm = nn.GroupNorm(n_head, mlp[-1])
        layers: list[nn.Module] = []
        for a, b in zip(mlp[:-1], mlp[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        batch_positions: Tensor | None = None,
        pad_mask: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        b, t, _, h, w = x.shape
        out, per_pixel = _pixel_sequences(self, x, batch_positions, pad_mask)
        heads, attn = self.attention_heads(out, per_pixel)
        out = heads.permute(1, 0, 2).reshape(b * h * w, -1)  # concatenate the heads
        out = self.out_norm(self.dropout(self.mlp(out)))
        out = out.view(b, h, w, -1).permute(0, 3, 1, 2)
        attn = attn.view(self.n_head, b, h, w, t).permute(0, 1, 4, 2, 3)
        if self.return_att:
            return out, attn
        return out


class LTAE2dTiny(nn.Module):
    """UnCRtainTS's tiny L-TAE: the input GroupNorm, ``inconv``, the date encoding and the
    per-head master-query attention of :class:`LTAE2d`, returning only the attention
    ``[n_head, B, T, H, W]`` (no value path, no MLP, no dropout: UnCRtainTS applies its
    dropout after upsampling the attention). Keys as the official ``LTAE2dtiny``."""

    def __init__(
        self,
        in_channels: int = 128,
        n_head: int = 16,
        d_k: int = 4,
        d_model: int | None = 256,
        T: float = 1000,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.n_head = in_channels, n_head
        self.d_model = d_model if d_model is not None else in_channels
        self.inconv = nn.Conv1d(in_channels, d_model, 1) if d_model is not None else None
        self.positional_encoder = (
            PositionalEncoder(self.d_model // n_head, T=T, repeat=n_head)
            if positional_encoding
            else None
        )
        self.attention_heads = _MasterQueryAttention(n_head, d_k, self.d_model, attn_dropout=0.0)
        self.in_norm = nn.GroupNorm(n_head, in_channels)

    def forward(
        self, x: Tensor, batch_positions: Tensor | None = None, pad_mask: Tensor | None = None
    ) -> Tensor:
        b, t, _, h, w = x.shape
        out, per_pixel = _pixel_sequences(self, x, batch_positions, pad_mask)
        attn = self.attention_heads.weights(out, per_pixel)
        return attn.view(self.n_head, b, h, w, t).permute(0, 1, 4, 2, 3)
