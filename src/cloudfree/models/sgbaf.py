"""SG-BAF: the SAR-guided attention-fusion cloud-removal network of paper 003 (in Chinese,
"基于注意力融合技术的 SAR 引导的云去除网络"; the paper gives the network no name): MBConv basic
fusion, a directed fusion stage with the SAR-guided bimodal attention fusion module (SG-BAFM:
a SAR attention gate and a Transformer whose queries and keys are SAR features and whose values
are optical features) and the deep feature integration network (DFIN: a two-level U-Net
pyramid, channel attention, a pixel-wise maximum).

The paper publishes no code and leaves most sizes open; every open choice is a **Decision**
below and a constructor option (audit ``../shared/notes/papers-000-002-003-audit.md`` section
1.4, rows A3-1..A3-11, and Part 3, its translation; SPEC section 5.4). Shapes at 256 x 256 with
the defaults (C = ``width`` 32, D = ``directed_width`` 64, s = ``downsample`` 2):

1. **Basic fusion** (A3-1): ``concat(optical, SAR)`` -> 3x3 conv to C -> one MBConv per entry
   of ``basic_kernels`` (3, 5) -> ``F_b [B, C, H, W]``. The MBConv is the shared block of
   :mod:`cloudfree.models.layers.mbconv` (UnCRtainTS's: pre-norm, 1x1 expansion ``expansion``
   2, depth-wise conv with reflect padding, squeeze-excitation, 1x1 projection, ``norm``
   BatchNorm; an EfficientNet-style inverted residual, which is what the paper names). The
   paper's "multi-scale feature extraction strategy" of this stage is undefined (**Decision**:
   depth-wise kernels 3 and 5 in successive blocks; ``basic_kernels=(3, 3)`` drops it).
2. **Directed fusion, extraction** (A3-2): per modality "downsampling and ReLU": log2(s)
   3x3 stride-2 convs + ReLU to D channels (**Decision**: strided convs; s = 2, a power of 2,
   ``downsample``) -> ``F_opt``, ``F_sar [B, D, H/s, W/s]``.
3. **SG-BAFM gate** (A3-3, the audit's correction of SPEC: the paper's ⊕ is channel
   concatenation): ``A = sigmoid(Conv(concat(Conv1x1(F_opt), Conv1x1(F_sar))))``,
   ``F_sar' = F_sar * A``. The paper places the sigmoid in its text only ("通过 Sigmoid 激活函数
   增强了这些特征的加权重要性"), **Decision**: on the outer conv's output. The outer conv's
   kernel is unstated: 1 (``gate_kernel``; the text names only 1x1 convs); its output is a map
   per channel (D maps, ``gate_maps="channel"``) or one spatial map broadcast over the channels
   (``"spatial"``; the text's "an attention map"). ``gate_combine="add"`` is SPEC's former
   reading ``Conv(Conv1x1(F_opt) + Conv1x1(F_sar))`` (outer conv D -> ..., against 2D -> ...).
4. **SG-BAFM Transformer** (A3-4): "the 256-pixel image is split into 16-pixel patches":
   patches of ``patch_pixels`` 16 **input** pixels, i.e. 16 / s = 8 feature pixels, so the
   token grid is 16 x 16 at 256 px. **Decision** for other sizes: the patch stays 16 input
   pixels (a fixed patch in feature pixels, computed for 256 px) and the input is padded to a
   multiple of 16, so the grid is ``ceil(H / 16) x ceil(W / 16)`` (a fixed 16 x 16 grid would
   tie the patch embedding to the image size). Patch embeddings are ``p x p`` stride-``p``
   convs D -> E (``embed_dim`` 256: "mapped into a higher-dimensional feature space"), one for
   the gated SAR features (the queries' and keys' source) and one for the optical features
   (the values' source). ``transformer_depth`` 2 layers, ``num_heads`` 8, MLP ratio
   ``mlp_ratio`` 4 (GELU), LayerNorm ``transformer_norm="pre"`` (``"post"``: the original
   Transformer's placement), a 2-D sine-cosine positional encoding added to both token sets
   (``pos_encoding``: ``"sincos"``, ``"learned"``: a table for the 16 x 16 grid at 256 px,
   resized bilinearly to other grids, or ``"none"``); all unstated (**Decision**). A layer is
   ``x = x + Attn(Q = W_q n(s), K = W_k n(s), V = W_v n(x))``, ``x = x + MLP(n(x))``: the SAR
   tokens ``s`` decide where to attend in every layer and are not updated, the value stream
   ``x`` starts as the optical tokens and carries the residuals (**Decision**: the paper says
   only which features are Q, K and V). Back to features: a ``p x p`` stride-``p`` transposed
   conv E -> D (un-patchify), then the paper's "final 1x1 conv" (D -> D). ``sgbafm_skip``
   (True, **Decision**) adds ``F_opt`` to that output, so details finer than a patch survive
   the 256-token bottleneck; False is the paper's literal output.
5. **Directed fusion, end** (A3-5): ``directed_depth`` 2 MBConv (kernel 3) at D -> ``F_fused``
   at H/s, upsampled to full resolution before DFIN (unstated, **Decision**):
   ``upsample="bilinear"`` (bilinear x s, then a 3x3 conv D -> C) or ``"pixelshuffle"`` (1x1
   conv D -> C s^2, PixelShuffle(s)).
6. **DFIN** (A3-6), one per branch with its own weights (**Decision**: shared weights are
   unstated) on ``F_b`` and on ``F_fused``: ``F^ = Conv1x1(concat(Attention(F), Pyramid(F), F))``
   (3C -> C, **Decision**: 1x1). ``Pyramid`` is the paper's "two-layer UNet": ``pyramid_levels``
   2 resolutions (H and H/2; **Decision**: "two layers" read as two levels), a U-Net of the
   original form (two 3x3 conv + ReLU per level, 2x2 max-pool down, 2x2 transposed conv up, skip
   concatenation; the width doubles per level; no norm). ``Attention`` is channel attention,
   the squeeze-excitation of the MBConv (:class:`~cloudfree.models.layers.mbconv.SqueezeExcite`:
   global average, C -> C / ``attention_reduction`` (4) -> C, GELU, sigmoid; **Decision**: the
   paper does not define it). The formula applies both to F in parallel
   (``dfin_order="parallel"``, the default); the text runs the pyramid first and weights its
   output by the attention, ``"sequential"``: ``P = Pyramid(F)``,
   ``F^ = Conv1x1(concat(Attention(P), P, F))``.
7. **Output** (A3-7, A3-8): ``M = max(F^_b, F^_fused)`` element-wise (**Decision**: the
   formula's ``Max(F^_opt ⊕ F^_sar)`` applies a max to a concatenation, whose axis is undefined,
   and its subscripts are opt / sar where section II-A defines DFIN's inputs as F_b and
   F_fused; the text's extra conv "to the image's channel count" before the max is left out:
   the max is taken at C channels), then ``fusion_depth`` 1 MBConv on ``concat(M, F_b,
   F_fused)`` (3C) -> 3x3 conv to the optical bands, plus the optical input
   (``global_residual``, **Decision**: not in the paper).
8. **Ablations** (Table 2, A3-11; "base" is undefined, **Decision**): ``sgbafm=False``
   replaces SG-BAFM (gate and Transformer) by ``Conv1x1(concat(F_opt, F_sar))`` (2D -> D);
   ``dfin=False`` replaces DFIN and the max by ``concat(F_b, F_fused)`` (2C) into the same
   output MBConv. Registered as ``sgbaf_base`` (both False), ``sgbaf_sgbafm``, ``sgbaf_dfin``
   and ``sgbaf`` (both True).
9. **Any H and W**: inputs are padded at the bottom and right (reflect,
   :mod:`cloudfree.models.layers.padding`) to a multiple of ``lcm(patch_pixels, downsample,
   2 ** (pyramid_levels - 1))`` (16 with the defaults; the same for every variant, so the
   ablations see the same input), and to at least ``2 * downsample`` pixels and more than half
   the largest basic kernel (reflect padding in the MBConvs needs 2 feature pixels), and the
   output is cropped back.
10. **Initialisation** (unstated, **Decision**): torch's defaults for convolutions and norms;
    the Transformer layers' linear weights from N(0, 0.02^2) truncated, zero biases, and the
    learned position table N(0, 0.02^2) (the ViT convention).

13 Sentinel-2 L1C bands and VV/VH by default (the paper describes 13-band data but calls the
Transformer's values "RGB features": audit D3-3); ``in_optical=3`` builds the RGB network (train
it with ``data.bands: rgb``). Scaling: the ``glf_cr`` protocol (SPEC section 1, a **Decision**:
the paper states none; audit X-3). The paper gives no parameter count; the defaults are sized
as a plausible light network of a few million parameters (most of them in the Transformer's
patch embeddings and un-embedding, 8 x 8 x 64 -> 256 and back; the convolutional part is small,
the depth-wise MBConvs being the paper's argument for "fewer parameters and computation").
Parameters: 5,124,813 (``sgbaf``), 4,867,565 (``sgbaf_sgbafm``), 384,973 (``sgbaf_dfin``),
127,725 (``sgbaf_base``). Multiply-accumulates at 256 x 256 with 13 bands
(``torch.utils.flop_counter.FlopCounterMode``, total / 2): 16.22 G, 6.07 G, 14.81 G and
4.66 G; the two DFINs at full resolution cost 8.52 G of the full model's. The
counter does not see torch's CPU scaled-dot-product-attention kernel: add 2 N^2 E = 0.03 G per
Transformer layer at 256 px (N = 256 tokens, E = 256), 0.07 G for the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelSpec, OutputSpec
from cloudfree.models.layers.init import trunc_normal_
from cloudfree.models.layers.mbconv import MBConv, SqueezeExcite
from cloudfree.models.layers.norm import NORMS
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

__all__ = [
    "DFIN",
    "SGBAF",
    "SGBAFM",
    "GuidedTransformer",
    "GuidedTransformerLayer",
    "PyramidUNet",
    "SARGate",
    "sgbaf",
    "sgbaf_base",
    "sgbaf_dfin",
    "sgbaf_multiple",
    "sgbaf_sgbafm",
    "sgbaf_spec",
    "sincos_2d",
]

GATE_COMBINES = ("concat", "add")
GATE_MAPS = ("channel", "spatial")
DFIN_ORDERS = ("parallel", "sequential")
UPSAMPLES = ("bilinear", "pixelshuffle")
POS_ENCODINGS = ("sincos", "learned", "none")
TRANSFORMER_NORMS = ("pre", "post")
#: the paper's image size: its 16-pixel patches make a 16 x 16 token grid there
PAPER_IMAGE = 256


def _choice(name: str, value: object, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(f"SGBAF: {name} must be one of {list(valid)}, got {value!r}")
    return str(value)


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"SGBAF: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def sgbaf_multiple(patch_pixels: int, downsample: int, pyramid_levels: int) -> int:
    """The size H and W are padded to a multiple of (module docstring, item 9):
    ``lcm(patch_pixels, downsample, 2 ** (pyramid_levels - 1))``."""
    return math.lcm(patch_pixels, downsample, 2 ** (pyramid_levels - 1))


def sincos_2d(
    height: int,
    width: int,
    dim: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """2-D sine-cosine positional encoding ``[height * width, dim]`` (row-major tokens): the
    first half of the channels encodes the row, the second the column, each half as
    ``sin(pos * w_i), cos(pos * w_i)`` with ``w_i = 10000 ** (-i / (dim / 4))``,
    ``i < dim / 4`` (the MAE / ViT convention). ``dim`` must be a multiple of 4."""
    if dim % 4:
        raise ConfigError(f"sincos_2d: dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float64) / quarter)
    rows = torch.arange(height, device=device, dtype=torch.float64)[:, None] * omega
    cols = torch.arange(width, device=device, dtype=torch.float64)[:, None] * omega
    rows = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None].expand(height, width, 2 * quarter)
    cols = torch.cat([cols.sin(), cols.cos()], dim=1)[None].expand(height, width, 2 * quarter)
    pe = torch.cat([rows, cols], dim=-1).reshape(height * width, dim)
    return pe.to(dtype or torch.get_default_dtype())


class SARGate(nn.Module):
    """The SG-BAFM attention gate (module docstring, item 3): returns ``F_sar * A`` with
    ``A = sigmoid(fuse(combine(Conv1x1(F_opt), Conv1x1(F_sar))))``.

    Args:
        channels: D, the channels of both feature maps.
        combine: ``"concat"`` (the paper's ⊕, ``fuse`` takes 2D channels) or ``"add"`` (D).
        kernel: ``fuse``'s kernel (odd; 1).
        maps: ``"channel"`` (``fuse`` gives D maps) or ``"spatial"`` (1 map, broadcast).
    """

    def __init__(
        self, channels: int, combine: str = "concat", kernel: int = 1, maps: str = "channel"
    ) -> None:
        super().__init__()
        self.combine = _choice("gate_combine", combine, GATE_COMBINES)
        _choice("gate_maps", maps, GATE_MAPS)
        if _int("gate_kernel", kernel, 1) % 2 == 0:
            raise ConfigError(f"SGBAF: gate_kernel must be odd, got {kernel}")
        self.proj_opt = nn.Conv2d(channels, channels, 1)
        self.proj_sar = nn.Conv2d(channels, channels, 1)
        cin = 2 * channels if combine == "concat" else channels
        maps_out = channels if maps == "channel" else 1
        self.fuse = nn.Conv2d(cin, maps_out, kernel, padding=kernel // 2)

    def attention(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        """The attention map A, ``[B, D or 1, h, w]`` in (0, 1)."""
        a, b = self.proj_opt(f_opt), self.proj_sar(f_sar)
        x = torch.cat([a, b], dim=1) if self.combine == "concat" else a + b
        return torch.sigmoid(self.fuse(x))

    def forward(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        return f_sar * self.attention(f_opt, f_sar)


class GuidedTransformerLayer(nn.Module):
    """One Transformer layer whose queries and keys come from the guide tokens (SAR) and
    whose values come from the value stream ``x`` (optical), which carries the residuals:

    * ``norm="pre"``: ``x = x + Attn(n_g(s), n_x(x))``; ``x = x + MLP(n_m(x))``;
    * ``norm="post"``: ``x = n_x(x + Attn(n_g(s), x))``; ``x = n_m(x + MLP(x))``.

    ``Attn(g, v)`` is multi-head scaled dot-product attention with ``Q = W_q g``, ``K = W_k
    g``, ``V = W_v v`` and an output projection; the guide is layer-normalised in both forms
    (it is no residual stream). Tokens are ``[B, N, dim]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm: str = "pre") -> None:
        super().__init__()
        self.norm_mode = _choice("transformer_norm", norm, TRANSFORMER_NORMS)
        if dim % num_heads:
            raise ConfigError(f"SGBAF: embed_dim {dim} must be divisible by num_heads {num_heads}")
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ConfigError(f"SGBAF: mlp_ratio must be positive, got {mlp_ratio!r}")
        self.num_heads = num_heads
        self.norm_guide = nn.LayerNorm(dim)
        self.norm_value = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attend(self, guide: Tensor, value: Tensor) -> Tensor:
        """Multi-head attention: queries and keys from ``guide``, values from ``value``."""
        b, n, d = value.shape
        h = self.num_heads

        def heads(t: Tensor) -> Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q(guide)), heads(self.k(guide)), heads(self.v(value))
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        g = self.norm_guide(guide)
        if self.norm_mode == "pre":
            x = x + self.attend(g, self.norm_value(x))
            return x + self.mlp(self.norm_mlp(x))
        x = self.norm_value(x + self.attend(g, x))
        return self.norm_mlp(x + self.mlp(x))


class GuidedTransformer(nn.Module):
    """The SG-BAFM Transformer (module docstring, item 4): ``(F_opt, F_sar')`` ``[B, D, h, w]``
    (``h``, ``w`` multiples of ``patch``) -> ``[B, D, h, w]``.

    Args:
        channels: D.
        patch: patch side in feature pixels.
        dim, depth, num_heads, mlp_ratio, norm: the layers (:class:`GuidedTransformerLayer`).
        pos_encoding: ``"sincos"``, ``"learned"`` (a ``pos_grid`` x ``pos_grid`` table resized
            bilinearly to other grids) or ``"none"``.
        pos_grid: the grid of the learned table (16: the grid at 256 px).
    """

    def __init__(
        self,
        channels: int,
        patch: int,
        dim: int = 256,
        depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        norm: str = "pre",
        pos_encoding: str = "sincos",
        pos_grid: int = 16,
    ) -> None:
        super().__init__()
        self.pos_encoding = _choice("pos_encoding", pos_encoding, POS_ENCODINGS)
        if pos_encoding == "sincos" and dim % 4:
            raise ConfigError(f"SGBAF: pos_encoding 'sincos' needs embed_dim % 4 == 0, got {dim}")
        self.patch, self.dim = patch, dim
        self.embed_guide = nn.Conv2d(channels, dim, patch, stride=patch)
        self.embed_value = nn.Conv2d(channels, dim, patch, stride=patch)
        self.pos = (
            nn.Parameter(trunc_normal_(torch.empty(1, dim, pos_grid, pos_grid), std=0.02))
            if pos_encoding == "learned"
            else None
        )
        self.layers = nn.ModuleList(
            GuidedTransformerLayer(dim, num_heads, mlp_ratio, norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim) if norm == "pre" else nn.Identity()
        self.unembed = nn.ConvTranspose2d(dim, channels, patch, stride=patch)
        self.proj = nn.Conv2d(channels, channels, 1)
        for m in self.layers.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _positions(self, gh: int, gw: int, like: Tensor) -> Tensor | None:
        if self.pos_encoding == "none":
            return None
        if self.pos_encoding == "sincos":
            return sincos_2d(gh, gw, self.dim, device=like.device, dtype=like.dtype)
        pos = self.pos
        assert pos is not None
        if pos.shape[-2:] != (gh, gw):
            pos = F.interpolate(pos, size=(gh, gw), mode="bilinear", align_corners=False)
        return pos.flatten(2)[0].transpose(0, 1)

    def forward(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        guide, x = self.embed_guide(f_sar), self.embed_value(f_opt)
        b, d, gh, gw = x.shape
        guide, x = guide.flatten(2).transpose(1, 2), x.flatten(2).transpose(1, 2)
        pos = self._positions(gh, gw, x)
        if pos is not None:
            guide, x = guide + pos, x + pos
        for layer in self.layers:
            x = layer(x, guide)
        x = self.norm(x).transpose(1, 2).reshape(b, d, gh, gw)
        return self.proj(self.unembed(x))


class SGBAFM(nn.Module):
    """SAR-guided bimodal attention fusion (module docstring, items 3-4):
    ``transformer(F_opt, gate(F_opt, F_sar))`` (+ ``F_opt`` with ``skip``)."""

    def __init__(self, gate: SARGate, transformer: GuidedTransformer, skip: bool = True) -> None:
        super().__init__()
        self.gate, self.transformer, self.skip = gate, transformer, bool(skip)

    def forward(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        out = self.transformer(f_opt, self.gate(f_opt, f_sar))
        return out + f_opt if self.skip else out


class _ConcatFusion(nn.Module):
    """The ablations' SG-BAFM replacement: ``Conv1x1(concat(F_opt, F_sar))``, 2D -> D."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, f_opt: Tensor, f_sar: Tensor) -> Tensor:
        return self.conv(torch.cat([f_opt, f_sar], dim=1))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class PyramidUNet(nn.Module):
    """DFIN's pyramid (module docstring, item 6): a U-Net with ``levels`` resolutions (H ...
    H / 2^(levels-1); widths C, 2C, 4C ...), two 3x3 conv + ReLU per level, 2x2 max-pool down,
    2x2 stride-2 transposed conv up and skip concatenation; ``[B, C, H, W]`` -> same (H, W
    multiples of ``2 ** (levels - 1)``)."""

    def __init__(self, channels: int, levels: int = 2) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(levels)]
        self.down = nn.ModuleList(
            _double_conv(channels if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels - 1)
        )
        self.dec = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in range(levels - 1))

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i in range(len(self.up) - 1, -1, -1):
            x = self.dec[i](torch.cat([skips[i], self.up[i](x)], dim=1))
        return x


class DFIN(nn.Module):
    """Deep feature integration on one branch (module docstring, item 6):
    ``Conv1x1(concat(Attention(F), Pyramid(F), F))`` (``order="parallel"``) or, with
    ``P = Pyramid(F)``, ``Conv1x1(concat(Attention(P), P, F))`` (``"sequential"``)."""

    def __init__(
        self, channels: int, order: str = "parallel", levels: int = 2, reduction: int = 4
    ) -> None:
        super().__init__()
        self.order = _choice("dfin_order", order, DFIN_ORDERS)
        self.attention = SqueezeExcite(channels, channels, expansion=1.0 / reduction)
        self.pyramid = PyramidUNet(channels, levels)
        self.fuse = nn.Conv2d(3 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pyramid(x)
        a = self.attention(x if self.order == "parallel" else p)
        return self.fuse(torch.cat([a, p, x], dim=1))


class SGBAF(CloudRemovalModel):
    """The SG-BAF network of paper 003 (module docstring: items 1-9 are the decisions).
    ``forward(optical [B, in_optical, H, W], sar [B, in_sar, H, W]) -> [B, in_optical, H, W]``.

    Args:
        in_optical, in_sar: input channels (13; 3 for RGB; 2 SAR, at least 1).
        width: C, the full-resolution width (32).
        directed_width: D, the width of the directed fusion stage (64).
        basic_kernels: one basic-fusion MBConv per entry, its depth-wise kernel ((3, 5)).
        directed_depth: MBConvs after the fusion module (2).
        fusion_depth: MBConvs of the output stage (1).
        expansion, norm: the MBConvs' hidden expansion (2) and norm (``"batch"``).
        downsample: s, the directed stage's factor (2; a power of 2).
        sgbafm: use SG-BAFM (else ``Conv1x1(concat(F_opt, F_sar))``).
        gate_combine, gate_kernel, gate_maps: see :class:`SARGate` (``"concat"``, 1,
            ``"channel"``).
        patch_pixels: the Transformer's patch side in input pixels (16; a multiple of s).
        embed_dim, transformer_depth, num_heads, mlp_ratio, transformer_norm, pos_encoding:
            see :class:`GuidedTransformer` (256, 2, 8, 4, ``"pre"``, ``"sincos"``).
        sgbafm_skip: add ``F_opt`` to the Transformer's output (True).
        upsample: ``"bilinear"`` or ``"pixelshuffle"`` (F_fused to full resolution).
        dfin: use DFIN (else ``concat(F_b, F_fused)`` into the output MBConv).
        dfin_order: ``"parallel"`` (the formula) or ``"sequential"`` (the text).
        pyramid_levels: resolutions of DFIN's U-Net (2).
        attention_reduction: channel attention bottleneck C / r (4).
        global_residual: add the optical input to the output (True).
    """

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        width: int = 32,
        directed_width: int = 64,
        basic_kernels: Sequence[int] = (3, 5),
        directed_depth: int = 2,
        fusion_depth: int = 1,
        expansion: float = 2.0,
        norm: str = "batch",
        downsample: int = 2,
        sgbafm: bool = True,
        gate_combine: str = "concat",
        gate_kernel: int = 1,
        gate_maps: str = "channel",
        patch_pixels: int = 16,
        embed_dim: int = 256,
        transformer_depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        transformer_norm: str = "pre",
        pos_encoding: str = "sincos",
        sgbafm_skip: bool = True,
        upsample: str = "bilinear",
        dfin: bool = True,
        dfin_order: str = "parallel",
        pyramid_levels: int = 2,
        attention_reduction: int = 4,
        global_residual: bool = True,
    ) -> None:
        super().__init__()
        self.in_optical = _int("in_optical", in_optical, 1)
        self.in_sar = _int("in_sar", in_sar, 1)  # the network is SAR-guided: it needs SAR
        c = _int("width", width, 1)
        d = _int("directed_width", directed_width, 1)
        kernels = list(basic_kernels)
        odd = [isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 for k in kernels]
        if not kernels or not all(odd):
            raise ConfigError(f"SGBAF: basic_kernels must be odd sizes, got {kernels!r}")
        _int("directed_depth", directed_depth, 0)
        _int("fusion_depth", fusion_depth, 1)
        if isinstance(expansion, bool) or not isinstance(expansion, int | float) or expansion <= 0:
            raise ConfigError(f"SGBAF: expansion must be a positive number, got {expansion!r}")
        if norm not in NORMS or norm == "none":
            raise ConfigError(f"SGBAF: norm must be batch, instance or group, got {norm!r}")
        s = _int("downsample", downsample, 2)
        if s & (s - 1):
            raise ConfigError(f"SGBAF: downsample must be a power of 2, got {s}")
        _int("patch_pixels", patch_pixels, 1)
        if patch_pixels % s:
            raise ConfigError(
                f"SGBAF: patch_pixels ({patch_pixels}) must be a multiple of downsample ({s})"
            )
        # SG-BAFM's options are checked in every variant (a bad value is never silently unused)
        _int("embed_dim", embed_dim, 1)
        _int("transformer_depth", transformer_depth, 1)
        _int("num_heads", num_heads, 1)
        if embed_dim % num_heads:
            raise ConfigError(
                f"SGBAF: embed_dim {embed_dim} must be divisible by num_heads {num_heads}"
            )
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, int | float):
            raise ConfigError(f"SGBAF: mlp_ratio must be a number, got {mlp_ratio!r}")
        if int(embed_dim * mlp_ratio) < 1:
            raise ConfigError(f"SGBAF: mlp_ratio must be positive, got {mlp_ratio!r}")
        _choice("transformer_norm", transformer_norm, TRANSFORMER_NORMS)
        _choice("pos_encoding", pos_encoding, POS_ENCODINGS)
        if pos_encoding == "sincos" and embed_dim % 4:
            raise ConfigError(
                f"SGBAF: pos_encoding 'sincos' needs embed_dim % 4 == 0, got {embed_dim}"
            )
        _choice("gate_combine", gate_combine, GATE_COMBINES)
        _choice("gate_maps", gate_maps, GATE_MAPS)
        if _int("gate_kernel", gate_kernel, 1) % 2 == 0:
            raise ConfigError(f"SGBAF: gate_kernel must be odd, got {gate_kernel}")
        _choice("upsample", upsample, UPSAMPLES)
        _choice("dfin_order", dfin_order, DFIN_ORDERS)
        _int("pyramid_levels", pyramid_levels, 1)
        _int("attention_reduction", attention_reduction, 1)
        if c // attention_reduction < 1:
            raise ConfigError(
                f"SGBAF: width // attention_reduction must be >= 1, got {c} // "
                f"{attention_reduction}"
            )
        self.sgbafm_enabled, self.dfin_enabled = bool(sgbafm), bool(dfin)
        out_c = (3 if self.dfin_enabled else 2) * c
        if norm == "group":  # GroupNorm(4) over every MBConv's input and hidden channels
            odd_groups = sorted(
                {n for w in (c, d, out_c) for n in (w, int(w * expansion)) if n % 4}
            )
            if odd_groups:
                raise ConfigError(
                    f"SGBAF: norm 'group' (4 groups) needs channel counts divisible by 4; "
                    f"width / directed_width / expansion give {odd_groups}"
                )
        self.global_residual = bool(global_residual)
        self.downsample, self.patch_pixels = s, patch_pixels
        # reflect padding needs more pixels than half a kernel (2 feature pixels at H / s)
        self.min_size = max(2 * s, max(kernels) // 2 + 1)
        self.multiple = sgbaf_multiple(patch_pixels, s, pyramid_levels)
        block = {"expansion": expansion, "norm": norm}

        # 1. basic fusion
        self.stem = nn.Conv2d(in_optical + in_sar, c, 3, padding=1)
        self.basic = nn.Sequential(*(MBConv(c, kernel_size=k, **block) for k in kernels))
        # 2. per-modality extraction (downsampling + ReLU)
        self.extract_opt = self._extractor(in_optical, d, s)
        self.extract_sar = self._extractor(in_sar, d, s)
        # 3-4. SG-BAFM (or the ablations' concat + 1x1 conv)
        if self.sgbafm_enabled:
            self.fusion: nn.Module = SGBAFM(
                SARGate(d, gate_combine, gate_kernel, gate_maps),
                GuidedTransformer(
                    d, patch_pixels // s, embed_dim, transformer_depth, num_heads, mlp_ratio,
                    transformer_norm, pos_encoding, pos_grid=max(1, PAPER_IMAGE // patch_pixels),
                ),
                skip=sgbafm_skip,
            )  # fmt: skip
        else:
            self.fusion = _ConcatFusion(d)
        # 5. directed MBConvs and the upsampling to full resolution
        self.directed = nn.Sequential(*(MBConv(d, **block) for _ in range(directed_depth)))
        if upsample == "bilinear":
            self.upsample: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=s, mode="bilinear", align_corners=False),
                nn.Conv2d(d, c, 3, padding=1),
            )
        else:
            self.upsample = nn.Sequential(nn.Conv2d(d, c * s * s, 1), nn.PixelShuffle(s))
        # 6. DFIN per branch
        dfin_args = (dfin_order, pyramid_levels, attention_reduction)
        self.dfin_basic = DFIN(c, *dfin_args) if self.dfin_enabled else None
        self.dfin_directed = DFIN(c, *dfin_args) if self.dfin_enabled else None
        # 7. output
        self.head = nn.Sequential(*(MBConv(out_c, **block) for _ in range(fusion_depth)))
        self.out_conv = nn.Conv2d(out_c, in_optical, 3, padding=1)
        # channels-last convolution weights, so the feature maps are too and oneDNN does not
        # reorder them around every convolution: the forward on two CPU threads runs about
        # 1.3x faster at 128 px and 1.6-1.8x at 256 px (side by side, two runs); outputs
        # change by float rounding only (7e-7). The layout survives load_state_dict; saved
        # weights are made contiguous.
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def _extractor(cin: int, cout: int, factor: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(int(math.log2(factor))):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=2, padding=1), nn.ReLU()]
        return nn.Sequential(*layers)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height x width`` input is padded to (module docstring, item 9)."""
        return (
            height + padding_to_multiple(height, self.multiple, self.min_size),
            width + padding_to_multiple(width, self.multiple, self.min_size),
        )

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """The Transformer's token grid for an ``height x width`` input (16 x 16 at 256)."""
        h, w = self.padded_size(height, width)
        return h // self.patch_pixels, w // self.patch_pixels

    def branches(self, optical: Tensor, sar: Tensor) -> tuple[Tensor, Tensor]:
        """``(F_b, F_fused)`` ``[B, width, H, W]`` of inputs already padded (sizes multiples of
        ``self.multiple``); F_fused upsampled to full resolution."""
        f_b = self.basic(self.stem(torch.cat([optical, sar], dim=1)))
        fused = self.fusion(self.extract_opt(optical), self.extract_sar(sar))
        return f_b, self.upsample(self.directed(fused))

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        self.check_image("optical", optical, self.in_optical)
        if sar is None:
            raise ConfigError("SGBAF: the network is SAR-guided and needs a SAR input")
        self.check_image("sar", sar, self.in_sar, like=optical)
        sar = sar.to(optical.dtype)
        h, w = optical.shape[-2:]
        ph, pw = (n - m for n, m in zip(self.padded_size(h, w), (h, w), strict=True))
        opt_in, sar_in = pad_bottom_right(optical, ph, pw), pad_bottom_right(sar, ph, pw)
        f_b, f_fused = self.branches(opt_in, sar_in)
        if self.dfin_basic is not None and self.dfin_directed is not None:
            best = torch.maximum(self.dfin_basic(f_b), self.dfin_directed(f_fused))
            x = torch.cat([best, f_b, f_fused], dim=1)
        else:
            x = torch.cat([f_b, f_fused], dim=1)
        out = self.out_conv(self.head(x))[..., :h, :w]
        return out + optical if self.global_residual else out


def sgbaf_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of an :class:`SGBAF` built with ``kwargs``: mono-temporal, ``in_optical``
    optical and ``in_sar`` SAR channels (SAR required), padded to :func:`sgbaf_multiple`."""
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            needs_sar=True,
            spatial_multiple=sgbaf_multiple(
                kwargs["patch_pixels"], kwargs["downsample"], kwargs["pyramid_levels"]
            ),
        ),
        OutputSpec(channels=kwargs["in_optical"]),
    )


_PAPER = "Paper 003 (Chinese letter): SAR-guided cloud removal by attention fusion (SG-BAF)"
_COMMON: dict[str, Any] = dict(
    paper=_PAPER,
    protocol="glf_cr",
    bands="all",
    spec=sgbaf_spec,
    model_class=SGBAF,
    default_recipe="sgbaf",
)


@register_model(
    "sgbaf",
    description="SG-BAF: MBConv basic fusion, SAR-guided attention fusion (SG-BAFM), DFIN",
    **_COMMON,
)
def sgbaf(**kwargs: Any) -> SGBAF:
    """SG-BAF, the full network (Table 2's "+ SG-BAFM + DFIN"); kwargs go to :class:`SGBAF`."""
    return SGBAF(**kwargs)


@register_model(
    "sgbaf_base",
    description="SG-BAF ablation 'base': concat + 1x1 conv for SG-BAFM, concat + MBConv for DFIN",
    default_kwargs={"sgbafm": False, "dfin": False},
    **_COMMON,
)
def sgbaf_base(**kwargs: Any) -> SGBAF:
    """SG-BAF ablation "base" (Table 2): neither SG-BAFM nor DFIN."""
    return SGBAF(**kwargs)


@register_model(
    "sgbaf_sgbafm",
    description="SG-BAF ablation 'base + SG-BAFM' (no DFIN)",
    default_kwargs={"sgbafm": True, "dfin": False},
    **_COMMON,
)
def sgbaf_sgbafm(**kwargs: Any) -> SGBAF:
    """SG-BAF ablation "+ SG-BAFM" (Table 2): SG-BAFM without DFIN."""
    return SGBAF(**kwargs)


@register_model(
    "sgbaf_dfin",
    description="SG-BAF ablation 'base + DFIN' (no SG-BAFM)",
    default_kwargs={"sgbafm": False, "dfin": True},
    **_COMMON,
)
def sgbaf_dfin(**kwargs: Any) -> SGBAF:
    """SG-BAF ablation "+ DFIN" (Table 2): DFIN without SG-BAFM."""
    return SGBAF(**kwargs)
