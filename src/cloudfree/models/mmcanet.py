"""MMCANet and MMCANet_L (Zhou et al., IEEE TGRS 2025, paper 000): a dual-stream encoder of
KBNet MFF blocks, multimodal cross-attention at a low and a high level, ASPP on the high-level
features and a decoder of MFF blocks.

The paper publishes no code; every choice it leaves open is a **Decision** below and a
constructor option (see ``../shared/notes/papers-000-002-003-audit.md`` section 1.3 and Part 5,
whose shape walk-through this follows). Shapes at 128 x 128 with the defaults:

* **Streams** (``fusion="dual"``): per modality a 3x3 stem conv (C_in -> 32), then four stages
  of MFF blocks, ``depths`` (2, 2, 4, 4) at ``widths`` (32, 64, 128, 256) and resolutions
  H, H/2, H/4, H/8; between stages a 2x2 stride-2 conv doubling the width (KBNet-S's
  down-sampling; **Decision**). An MFF block is ``x + MFF(LayerNorm2d(x))`` with KBNet-L's
  ``MFF`` (hidden 1.5 x dim, kernel-basis attention with ``nset`` 32 bases, ``gc`` 2) and
  without KBNet's second (MDTA / FFN) half, which the paper does not mention (**Decision**).
  "Distinct kernel sizes for the optical and SAR modalities": the KBA kernel is 3 in the
  optical and 5 in the SAR stream (``kba_kernels``; **Decision**: the paper does not say which
  kernel). MMCANet_L has 5x5 instead of 3x3 in the depth-wise branch of every MFF
  (``dw_kernel``; the KBA input's depth-wise conv stays 3x3: **Decision**).
* **Cross-attention** (:class:`CrossModalAttention`) on the stage-2 output (``low_stage`` 1:
  64 ch at H/2, 4,096 tokens at 128 px; **Decision**) and the stage-4 output (256 ch at H/8):
  per modality 1x1 convs give Q, K (C / ``qk_reduction``, 8 as DANet: **Decision**) and V (C);
  ``P_m = softmax_keys(Q_m^T K_m)`` (no scaling: none stated), ``P_fuse = P_opt * P_sar``,
  ``AP_m = V_m P_fuse^T`` (the only dimensionally valid reading of the paper's eq. 4),
  ``AP = AP_opt * AP_sar`` and ``F = concat(F_sar, F_opt, AP)`` (eqs. 9-10), 3C channels.
  ``P_fuse`` is not row-normalised in the paper: the product of two softmax rows sums to about
  1/N, so AP is about N times smaller than V and AP_opt * AP_sar smaller still (at 4,096
  tokens the term vanishes). ``fuse_norm="renormalize"`` (the default, **Decision**) divides
  ``P_fuse`` by its row sums (each row a distribution again), ``"none"`` is the paper's literal
  formula; ``learned_scale`` multiplies AP by a learned scalar (init 1). Measured
  (``benchmarks/mmcanet_fuse_norm.py``: a reduced MMCANet, 200 steps of batch 4 at 64 px, L1,
  the simulator's test split, one seed): PSNR inside clouds 27.29 dB with ``renormalize``,
  23.73 with ``none`` and 23.09 with ``none`` + learned scale; mean |AP| / mean |F| 0.11 at
  both levels with ``renormalize`` against 1.2e-7 (low) and 1.3e-5 (high) without it: the
  literal formula switches the cross-attention off, hence the default. The attention is
  computed in chunks of ``attention_chunk`` query rows, each recomputed in the backward pass
  (activation checkpointing) while training, so no N x N map is ever held whole: memory
  O(chunk x N) instead of three N x N maps per sample.
* **ASPP** (:class:`ASPP`) on F_high: the paper's **four** branches, 3x3 atrous convs at
  ``aspp_rates`` (6, 12, 18) and image pooling + 1x1, each to ``aspp_width`` (256) with
  BatchNorm + ReLU, concatenated, 1x1 + BatchNorm + ReLU; ``aspp_mode="deeplab"`` adds
  DeepLab's 1x1 branch (five). At 128 px the 16 x 16 map makes the rate-18 taps fall in the
  zero padding only (a 1x1 conv in effect): rates are an option.
* **Decoder** (**Decision**, the paper only says "MFF blocks"): ``concat(upsample(ASPP),
  F_low)`` (bilinear to H/2) -> 1x1 conv to the low stage's width -> ``decoder_depth`` MFF
  blocks -> per level up: 1x1 conv (c -> 2c') + PixelShuffle(2) -> ``decoder_depth`` MFF
  blocks at c' ... -> 3x3 conv to the optical bands, plus the optical input
  (``global_residual``, **Decision**: the paper does not mention one).
* **Ablations** (Table V): ``fusion="concat"`` is a single stream on ``concat(optical, SAR)``
  (what the paper's "without SAR" row trains, by its own text), ``fusion="optical"`` a single
  stream on the optical image alone; both need ``cross_attention=False`` (there is no second
  modality to attend with); ``cross_attention=False`` uses ``concat(F_sar, F_opt)``;
  ``aspp=False`` feeds F_high to the decoder directly (through the same 1x1 width change).
* **Any H and W**: inputs are padded at the bottom and right to a multiple of 8 (reflect) and
  the output cropped back.
* **Stem link** (for MPIR, :mod:`cloudfree.models.mpir`; off by default): with
  ``link_channels`` > 0 every stream's stem output is merged with a feature map ``link``
  ``[B, link_channels, H, W]`` passed to :meth:`MMCANet.features` (:class:`StemLink`:
  ``link_mode="concat"`` concatenates and applies a 1x1 conv back to the stem width, ``"add"``
  adds the link through a 1x1 conv). With the default ``link_channels=0`` no module is
  created and MMCANet is unchanged (same weights from a seed, same keys, same outputs).

RGB (B04, B03, B02) optical and VV/VH SAR by default (paper 000 works on RGB at 128 x 128, with
the ``glf_cr`` scaling: SPEC section 1). Parameters: 16,702,755 (MMCANet), 16,790,307
(MMCANet_L), most of them in the kernel bases of the wide stages and in the ASPP on 768
channels; multiply-accumulates at 128 x 128 (torch's flop counter / 2): 16.58 G and 16.73 G.
The paper gives no parameter or runtime figure to compare with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelSpec, OutputSpec
from cloudfree.models.layers.kbnet import MFF, LayerNorm2d
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

__all__ = ["ASPP", "MMCANet", "CrossModalAttention", "MFFBlock", "StemLink", "attention_width"]

FUSIONS = ("dual", "concat", "optical")
FUSE_NORMS = ("renormalize", "none")
ASPP_MODES = ("paper", "deeplab")
LINK_MODES = ("concat", "add")


def attention_width(dim: int) -> int:
    """Width of the MFF's attention branch (KBNet's ``interc``): the largest even divisor of
    ``dim`` up to 24. KBNet uses ``min(dim, 24)`` as the group count of a conv over ``dim``
    channels, which only works when 24 divides ``dim`` (KBNet-L's 48); MMCANet's widths
    (32 ... 256) give 16 (**Decision**)."""
    return max(d for d in range(2, min(dim, 24) + 1, 2) if dim % d == 0) if dim >= 2 else 1


class MFFBlock(nn.Module):
    """``x + MFF(LayerNorm2d(x))`` (KBNet-L's MFF half; module docstring)."""

    def __init__(
        self, dim: int, *, ffn: float, kba_kernel: int, nset: int, gc: int, dw_kernel: int
    ) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.mff = MFF(
            dim, ffn, False, gc=gc, nset=nset, k=kba_kernel, dw_kernel=dw_kernel,
            interc=attention_width(dim),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mff(self.norm(x))


class StemLink(nn.Module):
    """Merges a feature map ``link [B, link_channels, H, W]`` into a stem output
    ``x [B, width, H, W]`` (MPIR's link between stages; module docstring).

    ``mode="concat"``: ``conv1x1(concat(x, link))`` back to ``width`` (MPIR1's "merged with
    the ones stemming from the new input post-convolution", Fig. 3's concatenation);
    ``mode="add"``: ``x + conv1x1(link)`` (MPIR3 / MPIR4's skip connection). Both 1x1 convs
    have a bias (**Decision**).
    """

    def __init__(self, width: int, link_channels: int, mode: str = "concat") -> None:
        super().__init__()
        if mode not in LINK_MODES:
            raise ConfigError(f"link_mode must be one of {LINK_MODES}, got {mode!r}")
        self.mode = mode
        cin = width + link_channels if mode == "concat" else link_channels
        self.conv = nn.Conv2d(cin, width, 1)

    def forward(self, x: Tensor, link: Tensor) -> Tensor:
        if self.mode == "concat":
            return self.conv(torch.cat([x, link], dim=1))
        return x + self.conv(link)


class _Stream(nn.Module):
    """Stem conv (merged with a link feature map when ``link_channels`` > 0), then stages of
    MFF blocks with a stride-2 conv between them; returns every stage's output."""

    def __init__(
        self,
        cin: int,
        widths: Sequence[int],
        depths: Sequence[int],
        block: dict[str, Any],
        link_channels: int = 0,
        link_mode: str = "concat",
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cin, widths[0], 3, padding=1)
        # created only when asked, before the stages: without a link the modules, their
        # initialisation from a seed and the state dict are those of plain MMCANet
        self.link = StemLink(widths[0], link_channels, link_mode) if link_channels else None
        self.stages = nn.ModuleList(
            nn.Sequential(*(MFFBlock(w, **block) for _ in range(d)))
            for w, d in zip(widths, depths, strict=True)
        )
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(len(widths) - 1)
        )

    def forward(self, x: Tensor, link: Tensor | None = None) -> list[Tensor]:
        x = self.stem(x)
        if (link is None) != (self.link is None):
            raise ConfigError(
                "MMCANet: a link feature map is needed exactly when the network is built with "
                f"link_channels > 0 (built with a link: {self.link is not None}, got a link: "
                f"{link is not None})"
            )
        if self.link is not None:
            x = self.link(x, link)  # type: ignore[arg-type]
        outs = []
        for i, stage in enumerate(self.stages):
            if i:
                x = self.downs[i - 1](x)
            x = stage(x)
            outs.append(x)
        return outs


def _fused_attention_rows(
    q_opt: Tensor,
    q_sar: Tensor,
    k_opt: Tensor,
    k_sar: Tensor,
    v_opt: Tensor,
    v_sar: Tensor,
    renormalize: bool,
) -> Tensor:
    """``AP_opt * AP_sar`` for a block of query rows: ``q_* [B, r, c]``, ``k_* [B, c, N]``,
    ``v_* [B, N, C]`` -> ``[B, r, C]``."""
    p = torch.softmax(torch.bmm(q_opt, k_opt), dim=-1) * torch.softmax(
        torch.bmm(q_sar, k_sar), dim=-1
    )
    if renormalize:
        p = p / p.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return torch.bmm(p, v_opt) * torch.bmm(p, v_sar)


class CrossModalAttention(nn.Module):
    """The multimodal cross-attention of paper 000 (eqs. 1-10; module docstring): returns
    ``AP`` ``[B, C, H, W]`` for features ``f_opt``, ``f_sar`` ``[B, C, H, W]``.

    Args:
        channels: C.
        qk_reduction: Q / K have ``max(1, C // qk_reduction)`` channels.
        fuse_norm: ``"renormalize"`` (rows of ``P_fuse`` summing to 1) or ``"none"`` (the paper).
        learned_scale: multiply AP by a learned scalar (initialised to 1).
        chunk: query rows per block (memory O(chunk x N)); blocks are recomputed in the backward
            pass when gradients are needed.
    """

    def __init__(
        self,
        channels: int,
        *,
        qk_reduction: int = 8,
        fuse_norm: str = "renormalize",
        learned_scale: bool = False,
        chunk: int = 1024,
    ) -> None:
        super().__init__()
        if fuse_norm not in FUSE_NORMS:
            raise ConfigError(f"fuse_norm must be one of {FUSE_NORMS}, got {fuse_norm!r}")
        qk = max(1, channels // qk_reduction)
        self.query = nn.ModuleDict({m: nn.Conv2d(channels, qk, 1) for m in ("opt", "sar")})
        self.key = nn.ModuleDict({m: nn.Conv2d(channels, qk, 1) for m in ("opt", "sar")})
        self.value = nn.ModuleDict({m: nn.Conv2d(channels, channels, 1) for m in ("opt", "sar")})
        self.renormalize = fuse_norm == "renormalize"
        self.scale = nn.Parameter(torch.ones(())) if learned_scale else None
        self.chunk = chunk

    def forward(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        b, c, h, w = f_opt.shape
        q = {
            m: self.query[m](f).flatten(2).transpose(1, 2)
            for m, f in (("opt", f_opt), ("sar", f_sar))
        }
        k = {m: self.key[m](f).flatten(2) for m, f in (("opt", f_opt), ("sar", f_sar))}
        v = {
            m: self.value[m](f).flatten(2).transpose(1, 2)
            for m, f in (("opt", f_opt), ("sar", f_sar))
        }
        n = h * w
        if not isinstance(n, int):
            # symbolic sizes (torch.export, dynamic torch.compile): every query row at once,
            # since a Python loop over a symbolic count would fix the sizes in the trace
            args = (q["opt"], q["sar"], k["opt"], k["sar"], v["opt"], v["sar"])
            rows_out = _fused_attention_rows(*args, self.renormalize)
        else:
            parts = []
            for start in range(0, n, self.chunk):
                rows = slice(start, min(n, start + self.chunk))
                args = (q["opt"][:, rows], q["sar"][:, rows])
                args += (k["opt"], k["sar"], v["opt"], v["sar"])
                if torch.is_grad_enabled() and n > self.chunk:
                    part = checkpoint(
                        _fused_attention_rows, *args, self.renormalize, use_reentrant=False
                    )
                else:
                    part = _fused_attention_rows(*args, self.renormalize)
                parts.append(part)
            rows_out = torch.cat(parts, dim=1)
        ap = rows_out.transpose(1, 2).reshape(b, c, h, w)
        return ap if self.scale is None else ap * self.scale


def _conv_bn_relu(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (module docstring): ``mode="paper"`` has the 3x3 atrous
    branches at ``rates`` and the image-pooling branch; ``"deeplab"`` adds a 1x1 branch."""

    def __init__(
        self, cin: int, width: int = 256, rates: Sequence[int] = (6, 12, 18), mode: str = "paper"
    ) -> None:
        super().__init__()
        if mode not in ASPP_MODES:
            raise ConfigError(f"aspp_mode must be one of {ASPP_MODES}, got {mode!r}")
        if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates):
            raise ConfigError(f"aspp_rates must be positive integers, got {list(rates)!r}")
        branches = [_conv_bn_relu(cin, width, 1)] if mode == "deeplab" else []
        branches += [_conv_bn_relu(cin, width, 3, r) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, width, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.project = _conv_bn_relu(width * (len(branches) + 1), width, 1)

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class MMCANet(CloudRemovalModel):
    """MMCANet (module docstring). ``forward(optical [B, C, H, W], sar [B, 2, H, W])``.

    Args:
        in_optical, in_sar: input channels (3 RGB, 2).
        widths, depths: the four encoder stages ((32, 64, 128, 256), (2, 2, 4, 4)).
        kba_kernels: KBA kernel of the optical and of the SAR stream ((3, 5)).
        dw_kernel: kernel of the MFF depth-wise branch (3; 5 for MMCANet_L).
        ffn, nset, gc: MFF hidden expansion (1.5), kernel bases (32), channels per group (2).
        low_stage: the stage whose output is the low-level feature (1: the second).
        fusion: ``"dual"``, ``"concat"`` or ``"optical"`` (ablations).
        cross_attention: use the cross-attention (dual streams only).
        qk_reduction, fuse_norm, learned_scale, attention_chunk: see
            :class:`CrossModalAttention`.
        aspp, aspp_width, aspp_rates, aspp_mode: see :class:`ASPP` (``aspp=False``: none).
        decoder_depth: MFF blocks per decoder level (2).
        global_residual: add the optical input to the output (True).
        link_channels, link_mode: channels of the feature map merged into every stream's stem
            and how (:class:`StemLink`; MPIR's stages). 0 (the default): no link; with a
            link the network is called through :meth:`features` (``forward`` refuses).
    """

    def __init__(
        self,
        in_optical: int = 3,
        in_sar: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (2, 2, 4, 4),
        kba_kernels: Sequence[int] = (3, 5),
        dw_kernel: int = 3,
        ffn: float = 1.5,
        nset: int = 32,
        gc: int = 2,
        low_stage: int = 1,
        fusion: str = "dual",
        cross_attention: bool = True,
        qk_reduction: int = 8,
        fuse_norm: str = "renormalize",
        learned_scale: bool = False,
        attention_chunk: int = 1024,
        aspp: bool = True,
        aspp_width: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        aspp_mode: str = "paper",
        decoder_depth: int = 2,
        global_residual: bool = True,
        link_channels: int = 0,
        link_mode: str = "concat",
    ) -> None:
        super().__init__()
        widths, depths = list(widths), list(depths)
        if len(widths) != len(depths) or len(widths) < 2:
            raise ConfigError("widths and depths need the same length (at least 2 stages)")
        for name, seq in (("widths", widths), ("depths", depths)):
            for v in seq:
                self.check_int(name, v, 1)
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if fusion != "dual" and cross_attention:
            raise ConfigError(
                f"fusion={fusion!r} has a single stream: cross_attention needs fusion='dual'"
            )
        if len(kba_kernels) != 2 or any(k % 2 == 0 or k < 1 for k in kba_kernels):
            raise ConfigError(f"kba_kernels must be two odd sizes, got {list(kba_kernels)!r}")
        if dw_kernel % 2 == 0 or dw_kernel < 1:
            raise ConfigError(f"dw_kernel must be odd, got {dw_kernel!r}")
        self.check_int("low_stage", low_stage, 0)
        self.link_channels = self.check_int("link_channels", link_channels, 0)
        if link_mode not in LINK_MODES:
            raise ConfigError(f"link_mode must be one of {LINK_MODES}, got {link_mode!r}")
        if low_stage >= len(widths) - 1:
            raise ConfigError(f"low_stage must be below the last stage {len(widths) - 1}")
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 0)
        if fusion != "optical" and in_sar == 0:
            raise ConfigError(f"fusion={fusion!r} needs SAR channels (in_sar > 0)")
        self.fusion, self.low_stage, self.global_residual = fusion, low_stage, global_residual
        self.multiple = 2 ** (len(widths) - 1)
        block = {"ffn": ffn, "nset": nset, "gc": gc, "dw_kernel": dw_kernel}
        link = (link_channels, link_mode)
        if fusion == "dual":
            self.optical_stream = _Stream(
                in_optical, widths, depths, {**block, "kba_kernel": kba_kernels[0]}, *link
            )
            self.sar_stream = _Stream(
                in_sar, widths, depths, {**block, "kba_kernel": kba_kernels[1]}, *link
            )
        else:
            cin = in_optical + (in_sar if fusion == "concat" else 0)
            self.optical_stream = _Stream(
                cin, widths, depths, {**block, "kba_kernel": kba_kernels[0]}, *link
            )
            self.sar_stream = None
        streams = 2 if fusion == "dual" else 1
        extra = 1 if cross_attention else 0
        attn = {
            "qk_reduction": qk_reduction,
            "fuse_norm": fuse_norm,
            "learned_scale": learned_scale,
            "chunk": attention_chunk,
        }
        self.low_attention = (
            CrossModalAttention(widths[low_stage], **attn) if cross_attention else None
        )
        self.high_attention = CrossModalAttention(widths[-1], **attn) if cross_attention else None
        low_ch = widths[low_stage] * (streams + extra)
        high_ch = widths[-1] * (streams + extra)
        self.aspp = ASPP(high_ch, aspp_width, aspp_rates, aspp_mode) if aspp else None
        fuse_in = low_ch + (aspp_width if aspp else high_ch)
        self.fuse = nn.Conv2d(fuse_in, widths[low_stage], 1)
        dec_block = {**block, "kba_kernel": kba_kernels[0]}
        levels = list(range(low_stage, -1, -1))
        self.decoder = nn.ModuleList(
            nn.Sequential(*(MFFBlock(widths[lv], **dec_block) for _ in range(decoder_depth)))
            for lv in levels
        )
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[lv], 4 * widths[lv - 1], 1), nn.PixelShuffle(2))
            for lv in levels[:-1]
        )
        self.out_conv = nn.Conv2d(widths[0], in_optical, 3, padding=1)

    def features(self, optical: Tensor, sar: Tensor | None, link: Tensor | None = None) -> Tensor:
        """The decoder's last feature map ``[B, widths[0], H, W]`` (before the output conv) of
        padded inputs whose size is a multiple of ``self.multiple`` (what MPIR's stages pass
        on). ``link`` ``[B, link_channels, H, W]`` is merged into every stream's stem; it is
        required exactly when the network is built with ``link_channels`` > 0."""
        if self.fusion == "dual":
            assert sar is not None and self.sar_stream is not None
            opt_f, sar_f = self.optical_stream(optical, link), self.sar_stream(sar, link)
            low, high = self._fuse(opt_f, sar_f, self.low_stage), self._fuse(opt_f, sar_f, -1)
        else:
            x = optical if self.fusion == "optical" else torch.cat([optical, sar], dim=1)  # type: ignore[list-item]
            feats = self.optical_stream(x, link)
            low, high = feats[self.low_stage], feats[-1]
        if self.aspp is not None:
            high = self.aspp(high)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([high, low], dim=1))
        for i, blocks in enumerate(self.decoder):
            if i:
                x = self.ups[i - 1](x)
            x = blocks(x)
        return x

    def _fuse(self, opt_f: list[Tensor], sar_f: list[Tensor], stage: int) -> Tensor:
        attention = self.low_attention if stage == self.low_stage else self.high_attention
        parts = [sar_f[stage], opt_f[stage]]
        if attention is not None:
            parts.append(attention(opt_f[stage], sar_f[stage]))
        return torch.cat(parts, dim=1)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        if self.link_channels:
            raise ConfigError(
                f"MMCANet: built with link_channels={self.link_channels} (an MPIR stage), it "
                "takes a link feature map: call features(optical, sar, link)"
            )
        self.check_image("optical", optical, self.in_optical)
        if self.fusion != "optical":
            if sar is None:
                raise ConfigError("MMCANet: this configuration needs a SAR input")
            self.check_image("sar", sar, self.in_sar, like=optical)
            sar = sar.to(optical.dtype)
        h, w = optical.shape[-2:]
        ph, pw = padding_to_multiple(h, self.multiple), padding_to_multiple(w, self.multiple)
        opt_in = pad_bottom_right(optical, ph, pw)
        sar_in = None if self.fusion == "optical" else pad_bottom_right(sar, ph, pw)  # type: ignore[arg-type]
        out = self.out_conv(self.features(opt_in, sar_in))[..., :h, :w]
        return out + optical if self.global_residual else out


def _spec(kwargs: dict[str, Any]) -> ModelSpec:
    uses_sar = kwargs["fusion"] != "optical"
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"] if uses_sar else 0,
            needs_sar=uses_sar,
            spatial_multiple=2 ** (len(list(kwargs["widths"])) - 1),
        ),
        OutputSpec(channels=kwargs["in_optical"]),
    )


_PAPER = (
    "Zhou et al., Multimodal cross-attention network for cloud removal with SAR and optical "
    "images (IEEE TGRS 2025)"
)


@register_model(
    "mmcanet",
    default_recipe="mmcanet",
    paper=_PAPER,
    protocol="glf_cr",
    bands="rgb",
    description="MMCANet: dual-stream MFF encoder, cross-attention, ASPP (paper 000; RGB)",
    spec=_spec,
    model_class=MMCANet,
)
def mmcanet(**kwargs: Any) -> MMCANet:
    """MMCANet with 3x3 depth-wise convs in its MFF blocks."""
    return MMCANet(**kwargs)


@register_model(
    "mmcanet_l",
    default_recipe="mmcanet_l",
    paper=_PAPER,
    protocol="glf_cr",
    bands="rgb",
    description="MMCANet_L: MMCANet with 5x5 depth-wise convs in its MFF blocks (paper 000)",
    default_kwargs={"dw_kernel": 5},
    spec=_spec,
    model_class=MMCANet,
)
def mmcanet_l(**kwargs: Any) -> MMCANet:
    """MMCANet_L: 5x5 instead of 3x3 in the depth-wise branch of every MFF."""
    return MMCANet(**kwargs)
