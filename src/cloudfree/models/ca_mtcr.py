"""CA-MTCR (You et al., Sci China Inf Sci 2026, paper 002): change-aware multi-temporal cloud
removal with SAR.

The paper publishes no code. What it states (Sec. 3, Figs. 2-4): per date t an optical encoder
of L = 9 Transformer blocks, each followed by region selection; a SAR encoder of three convs and
two MBConv blocks (pre-trained as a VQ-VAE encoder, :mod:`cloudfree.models.ca_mtcr_pretrain`);
a fusion ``concat -> conv -> MBConv``; change maps ``c^t = cos(F_sar^t, F_sar^N)`` (ones for N);
weights ``W = L-TAE({Conv(c^t || F_f^t)})``; ``F_c = sum_t F_f^t W^t``; a decoder to 13 bands.
Everything else is a **Decision** below (audit ``../shared/notes/papers-000-002-003-audit.md``
rows A2-1 ... A2-15, Part 4) and a constructor option of :class:`CAMTCR`. Shapes for
``[B, T, 13, 256, 256]`` at the defaults:

1. **Tokens** (A2-1): per date a full-resolution stem ``conv3x3 (13 -> stem_width 96) -> GELU
   -> stem_blocks (5) x [x + conv3x3(GELU(conv3x3(x)))]`` (EDSR-style blocks, no norm: the
   "shallow feature extraction" of image-restoration Transformers such as SwinIR, and the
   convolutional stem of Xiao et al. 2021), then a ``patch_size`` (4) x 4 stride-4 conv to
   ``embed_dim`` (D = 224) and a LayerNorm: a 64 x 64 grid of 4,096 tokens. The paper's
   7.45 M parameters and 456.57 G MACs (2.3 M MACs per pixel per date) cannot be met by
   Transformer blocks on a token grid alone (their parameters give at most 4,096 MACs each per
   date at p = 4, the global attention ``2 N^2 D`` per block is bounded by D): the
   full-resolution stem is where the remaining compute goes (calibration below).
2. **Transformer** (A2-1): ``depth`` 9 pre-norm blocks (``x + proj(MHSA(LN x))``, ``x +
   MLP(LN x)``, GELU MLP of ``mlp_ratio`` 4), **global** multi-head attention over all tokens
   (``num_heads`` 7 of 32 dims; the paper: "the Transformer's ability to efficiently propagate
   information across the entire image"), a fixed 2-D sine-cosine position encoding added to
   the tokens for any grid (:func:`cloudfree.models.sgbaf.sincos_2d`, the MAE convention;
   ``pos_encoding="none"`` drops it), a final LayerNorm: F_opt ``[D, 64, 64]``.
3. **Region selection** (A2-2 ... A2-4, :class:`RegionSelection`) after every block, on the
   block input F and output F~ as 64 x 64 maps: R1 = CBAM's spatial attention on F~
   (``sigmoid(conv7x7([mean_c, max_c]))``), R2 = ``1 - cos(F, F~)`` per position, ``[R1, R2]``
   -> CBAM's channel attention on those 2 channels (hidden ``cam_hidden`` 2: CBAM's reduction
   16 has no meaning for 2 channels) -> ``conv3x3 (2 -> 1)`` -> sigmoid = R. ``mask_mode``:
   ``"mul"`` (default, the literal reading of "constrain the output": ``F~ * R``) or
   ``"mul_residual"`` (``F~ * (1 + R)``, never removing a position). ``region_select=False``
   is "w/o RegS": "retaining only the Transformer blocks" (no mask, no mask parameters).
4. **SAR encoder** (A2-5, :class:`CAMTCRSAREncoder`): ``conv3x3 (2 -> sar_width 32, stride 1)
   -> GELU -> conv3x3 (stride 2) -> GELU -> conv3x3 (-> sar_channels 64, stride 2) -> 2 x
   MBConv`` (UnCRtainTS's block, :mod:`cloudfree.models.layers.mbconv`, expansion 2,
   GroupNorm(4)), reflect padding: F_sar ``[64, 64, 64]`` on the token grid; its output is the
   VQ-VAE's ``z_e`` and is used **without quantisation** (A2-6: the codebook is discarded).
   GroupNorm rather than BatchNorm, so a date's features never depend on the batch.
5. **Fusion** H_mmf (A2-7): ``conv (D + 64 -> D, fusion_kernel 1) -> MBConv(D)`` (GroupNorm,
   its depth-wise 3x3 gives the spatial context): F_f ``[D, 64, 64]``.
6. **Change maps** (A2-8, eq. 10, :meth:`CAMTCR.change_maps`): cosine over the channels of the
   SAR-encoder features (not the fused ones) of each date and of date N, in [-1, 1], exactly
   one for N; padded dates get 0 (never used).
7. **Weights** (A2-9, eq. 11, :class:`ChangeAwareWeights`): ``conv (1 + D -> weight_width 128,
   weight_kernel 1)`` on ``c^t || F_f^t`` (``change_aware=False``, "w/o CA": on F_f^t only),
   then the attention path of the ``ltae2d`` block (:class:`~cloudfree.models.layers.ltae.
   LTAE2dTiny`: utae-paps ``LTAE2d``'s input GroupNorm, ``inconv``, date encoding and
   master-query heads; its value path and MLP are not built, since eq. 12 uses only the
   weights) with LTAE2d's defaults ``ltae_heads`` 16, ``ltae_d_k`` 4, ``ltae_d_model`` 256,
   dates in days since 2014-04-03 encoded with period 1000 (UnCRtainTS's convention;
   ``relative_dates=True`` encodes ``date - date_N`` instead), at the token-grid resolution,
   softmax over the dates. **Head merging**: the mean of the 16 heads' softmaxes, one weight per
   date and position (still summing to 1). No attention dropout. ``F_c = sum_t F_f^t W^t``
   (eq. 12, W broadcast over the channels).
8. **Decoder** H_d (A2-10, :class:`CAMTCRDecoder`): per factor 2 of the patch size ``conv1x1
   (c -> 4 c') -> PixelShuffle(2) -> decoder_blocks (1) x MBConv(c')`` with
   ``decoder_widths`` (128, 64); at full resolution (``decoder_skip``) ``concat`` with the stem
   features fused over the dates by the same weights, bilinearly upsampled (U-TAE's use of
   its temporal attention on the skip connections, which keeps the full-resolution detail the
   4 x 4 patches compress), ``conv3x3 -> GELU``; then ``conv3x3 -> 13``. ``output``:
   ``"sigmoid"`` (default: the ``uncrtaints`` protocol's data lie in [0, 1], as UnCRtainTS's
   head) or ``"residual"`` (date N's cloudy input plus the decoder output, no activation).
9. **Ablations** (A2-15, Tables 2, 3, Fig. 7b): ``region_select``, ``change_aware``,
   ``use_sar`` (False = "w/o SAR": no SAR encoder and no SAR channels in the fusion conv; the
   change map, which needs SAR, is dropped as in "w/o CA", so ``use_sar=False`` requires
   ``change_aware=False``), ``sar_downsample`` in {1, 5, 10}: the SAR is average-pooled to
   ``ceil(H / s) x ceil(W / s)`` (a sensor of coarser resolution integrates the scene) and
   resized back to H x W bilinearly before the encoder (the network itself is unchanged).
   Registered: ``ca_mtcr``, ``ca_mtcr_no_regs``, ``ca_mtcr_no_ca``, ``ca_mtcr_baseline``
   (both off, Table 2's "Baseline"), ``ca_mtcr_no_sar``; ``sar_downsample`` is a kwarg.
10. **Dates and sizes** (A2-13): the target date N is the **last real date** of each sample
    (:func:`cloudfree.series.last_real_date`; a sample whose last date is padded uses the one
    before). Any T >= 1 (T = 1: date N alone, weight 1), up to ``max_dates`` (None: any).
    Padded dates (``time_mask`` False) are ignored exactly: their frames never enter a layer
    (only the real frames are encoded), their dates are zeroed, the L-TAE's input GroupNorm
    takes its statistics over the real dates only (:func:`masked_group_norm`; utae-paps' own
    L-TAE includes the zero-padded dates, which would make the output depend on the padding),
    and their weight is exactly 0, so the output equals that of the sample without them
    (``padding_invariant``). Any H and W: padded at the bottom and right (reflect) to a
    multiple of the patch size and at least twice it, the output cropped back.
11. **Outputs**: ``pred [B, 13, H, W]``; extras ``change_maps`` and ``fusion_weights``
    ``[B, T, h, w]`` on the padded token grid (the maps of the paper's Fig. 4).
12. **Data scaling**: the ``uncrtaints`` protocol (all 13 bands clipped to [0, 10000] and
    scaled to [0, 1]; both SAR bands clipped to [-25, 0] and scaled to [0, 1]), which is the
    paper's preprocessing (Sec. 4.1).

**Calibration** (the paper's Table 1: 7.45 M parameters, 456.57 G "FLOPs", which count
multiply-accumulates): 7,463,615 parameters (+0.18 %) and 454.34 G MACs (-0.49 %) for T = 3 at
256 x 256, counted with ``torch.utils.flop_counter.FlopCounterMode`` (total / 2) on the meta
device, where ``scaled_dot_product_attention`` is counted (its CPU kernel is not: the counter
reads 0 for it there). Of those: stem 165.3 G (0.84 M parameters), patch embedding 4.2 G,
Transformer 269.5 G (5.45 M; 202.9 G of it the attention products ``2 N^2 D`` per block),
SAR encoder 1.2 G, fusion 3.3 G, weights 1.0 G, decoder 9.8 G. Variants (parameters / MACs):
``ca_mtcr_no_regs`` 7,462,445 / 454.33 G (1,170 region-selection parameters), ``ca_mtcr_no_ca``
7,463,487 / 454.34 G, ``ca_mtcr_baseline`` 7,462,317 / 454.32 G, ``ca_mtcr_no_sar``
7,375,999 / 452.94 G. The paper's 8.45 FPS on a 3090 is not a target.
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
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelOutput, ModelSpec, check_int
from cloudfree.models.layers.ltae import LTAE2dTiny
from cloudfree.models.layers.mbconv import MBConv
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple
from cloudfree.models.sgbaf import sincos_2d
from cloudfree.series import last_real_date

__all__ = [
    "CAMTCR",
    "CAMTCRDecoder",
    "CAMTCROpticalEncoder",
    "CAMTCRSAREncoder",
    "ChangeAwareWeights",
    "RegionSelection",
    "masked_group_norm",
]

_OWNER = "CAMTCR"
_EPS = 1e-8
PATCH_SIZES = (1, 2, 4, 8)
MASK_MODES = ("mul", "mul_residual")
POS_ENCODINGS = ("sincos", "none")
SAR_DOWNSAMPLES = (1, 5, 10)
OUTPUTS = ("sigmoid", "residual")


def _choice(name: str, value: object, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(f"{_OWNER}: {name} must be one of {list(valid)}, got {value!r}")
    return str(value)


def _default_strides(downsample: int) -> tuple[int, int, int]:
    """Strides of the three convs for a power-of-two ``downsample`` up to 8 (the first conv
    keeps the full resolution unless 8 is asked)."""
    table = {1: (1, 1, 1), 2: (1, 1, 2), 4: (1, 2, 2), 8: (2, 2, 2)}
    if downsample not in table:
        raise ConfigError(
            f"CAMTCRSAREncoder: no default strides for downsample={downsample}; "
            "give strides=(s1, s2, s3) whose product is downsample"
        )
    return table[downsample]


def _conv(cin: int, cout: int, stride: int) -> nn.Conv2d:
    """3x3 conv (reflect padding 1) for stride 1 or 2; a non-overlapping ``stride x stride``
    conv for larger strides. Both map a multiple of the stride to ``size / stride``."""
    if stride <= 2:
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect")
    return nn.Conv2d(cin, cout, stride, stride=stride)


class CAMTCRSAREncoder(nn.Module):
    """The SAR encoder F_sar: three convolutions followed by two MBConv blocks (paper 002,
    Sec. 3.2), landing on the optical token grid.

    ``conv(in -> width, s1) -> GELU -> conv(width -> width, s2) -> GELU ->
    conv(width -> out_channels, s3) -> MBConv -> MBConv``, with ``s1 * s2 * s3 = downsample``.
    The last conv is linear (the MBConv blocks are residual), so the output is the VQ-VAE's
    ``z_e`` of the pre-training stage and ``F_sar`` of the main network (no quantisation).
    MBConv is UnCRtainTS's block (expansion 2) with GroupNorm(4): no batch statistics, so a
    date's features do not depend on the other dates or samples of the batch (padded dates can
    be ignored exactly, and the pre-training batch size does not change the encoder).

    Args:
        in_channels: SAR bands (2: VV, VH).
        width: channels of the first two convs.
        out_channels: feature channels (a multiple of 4 for the GroupNorm).
        downsample: total stride (the optical patch size).
        strides: the three convs' strides; default from ``downsample`` (1: 1,1,1; 2: 1,1,2;
            4: 1,2,2; 8: 2,2,2).

    ``forward(x [B, in_channels, H, W]) -> [B, out_channels, H / downsample, W / downsample]``
    (H, W multiples of ``downsample``; the network pads).
    """

    def __init__(
        self,
        in_channels: int = 2,
        width: int = 32,
        out_channels: int = 64,
        downsample: int = 4,
        strides: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("CAMTCRSAREncoder", "in_channels", in_channels, 1)
        self.width = check_int("CAMTCRSAREncoder", "width", width, 1)
        self.out_channels = check_int("CAMTCRSAREncoder", "out_channels", out_channels, 4)
        if out_channels % 4:
            raise ConfigError(
                f"CAMTCRSAREncoder: out_channels must be a multiple of 4 (GroupNorm), "
                f"got {out_channels}"
            )
        self.downsample = check_int("CAMTCRSAREncoder", "downsample", downsample, 1)
        if strides is None:
            strides = _default_strides(downsample)
        strides = tuple(int(s) for s in strides)  # type: ignore[assignment]
        if len(strides) != 3 or min(strides) < 1 or math.prod(strides) != downsample:
            raise ConfigError(
                f"CAMTCRSAREncoder: strides must be three positive ints whose product is "
                f"downsample={downsample}, got {strides!r}"
            )
        self.strides = strides
        self.convs = nn.Sequential(
            _conv(in_channels, width, strides[0]),
            nn.GELU(),
            _conv(width, width, strides[1]),
            nn.GELU(),
            _conv(width, out_channels, strides[2]),
        )
        self.blocks = nn.Sequential(
            MBConv(out_channels, 2, "group"), MBConv(out_channels, 2, "group")
        )

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(
                f"CAMTCRSAREncoder: H and W must be multiples of {self.downsample}, got {h}x{w}"
            )
        return self.blocks(self.convs(x))


# ----------------------------------------------------------------------------- optical encoder
class _ResBlock(nn.Module):
    """``x + conv3x3(GELU(conv3x3(x)))`` (EDSR-style, no norm): the stem's full-resolution
    blocks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _SelfAttentionBlock(nn.Module):
    """Pre-norm Transformer block on tokens ``[B, N, dim]``: ``x + proj(MHSA(LN(x)))`` then
    ``x + MLP(LN(x))`` (MLP: Linear, GELU, Linear, hidden ``dim * mlp_ratio``); global
    multi-head attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, d / heads]
        att = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class RegionSelection(nn.Module):
    """Region selection after one Transformer block (paper 002, Sec. 3.2, Fig. 3): a soft mask
    ``R [B, 1, h, w]`` from the block input ``F`` and output ``F~`` (``[B, C, h, w]``), and
    the constrained output.

    * ``R1 = sigmoid(conv_k([mean_c F~, max_c F~]))``: CBAM's spatial attention on the block
      output (``r1_kernel`` 7, as CBAM);
    * ``R2 = 1 - cos(F, F~)`` per position over the channels (the cosine *distance*);
    * ``Z = [R1, R2]`` -> channel attention (CBAM's CAM on 2 channels: a shared
      ``1x1 (2 -> cam_hidden) -> ReLU -> 1x1 (-> 2)`` on the average- and the max-pooled Z,
      summed, sigmoid, multiplied onto Z) -> ``conv (2 -> 1, mask_kernel)`` -> sigmoid = R;
    * ``mask_mode="mul"``: ``F~ * R`` (the paper's "constrain", read literally);
      ``"mul_residual"``: ``F~ * (1 + R)`` (the attention-residual form of Wang et al.'s
      Residual Attention Network: the mask re-weights but never removes a position).
    """

    def __init__(
        self,
        channels: int,
        mask_mode: str = "mul",
        r1_kernel: int = 7,
        cam_hidden: int = 2,
        mask_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.mask_mode = _choice("mask_mode", mask_mode, MASK_MODES)
        for name, k in (("r1_kernel", r1_kernel), ("mask_kernel", mask_kernel)):
            if check_int(_OWNER, name, k, 1) % 2 == 0:
                raise ConfigError(f"{_OWNER}: {name} must be odd, got {k}")
        check_int(_OWNER, "cam_hidden", cam_hidden, 1)
        self.spatial = nn.Conv2d(2, 1, r1_kernel, padding=r1_kernel // 2)
        self.cam = nn.Sequential(
            nn.Conv2d(2, cam_hidden, 1), nn.ReLU(), nn.Conv2d(cam_hidden, 2, 1)
        )
        self.mask = nn.Conv2d(2, 1, mask_kernel, padding=mask_kernel // 2)

    def soft_mask(self, before: Tensor, after: Tensor) -> Tensor:
        """The soft mask R ``[B, 1, h, w]`` in (0, 1)."""
        r1 = torch.sigmoid(
            self.spatial(torch.cat([after.mean(1, keepdim=True), after.amax(1, keepdim=True)], 1))
        )
        r2 = 1.0 - F.cosine_similarity(before, after, dim=1, eps=_EPS)[:, None]
        z = torch.cat([r1, r2], dim=1)
        gate = torch.sigmoid(
            self.cam(z.mean((2, 3), keepdim=True)) + self.cam(z.amax((2, 3), keepdim=True))
        )
        return torch.sigmoid(self.mask(z * gate))

    def forward(self, before: Tensor, after: Tensor) -> Tensor:
        r = self.soft_mask(before, after)
        return after * r if self.mask_mode == "mul" else after * (1.0 + r)


class CAMTCROpticalEncoder(nn.Module):
    """The region-selective optical encoder F_opt of one date (module docstring, Decisions
    1-4): stem ``conv3x3 (in -> stem_width) -> GELU -> stem_blocks x ResBlock`` at full
    resolution, patch embedding (``patch_size``-strided ``patch_size x patch_size`` conv to
    ``embed_dim``), a fixed 2-D sine-cosine position encoding, ``depth`` Transformer blocks
    each followed by :class:`RegionSelection` (or not: ``region_select=False``), a final
    LayerNorm.

    ``forward(x [B, in, H, W]) -> (F_opt [B, embed_dim, H / p, W / p], stem [B, stem_width,
    H, W])`` (H, W multiples of ``patch_size``).
    """

    def __init__(
        self,
        in_channels: int,
        stem_width: int,
        stem_blocks: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        pos_encoding: str,
        region_select: bool,
        select_kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        self.patch_size, self.embed_dim = patch_size, embed_dim
        self.pos_encoding = _choice("pos_encoding", pos_encoding, POS_ENCODINGS)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 3, padding=1),
            nn.GELU(),
            *(_ResBlock(stem_width) for _ in range(stem_blocks)),
        )
        self.patch_embed = nn.Conv2d(stem_width, embed_dim, patch_size, stride=patch_size)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.blocks = nn.ModuleList(
            _SelfAttentionBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.select = (
            nn.ModuleList(RegionSelection(embed_dim, **select_kwargs) for _ in range(depth))
            if region_select
            else None
        )
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        stem = self.stem(x)
        tokens = self.patch_embed(stem)
        b, d, h, w = tokens.shape
        t = self.embed_norm(tokens.flatten(2).transpose(1, 2))  # [B, N, D]
        if self.pos_encoding == "sincos":
            t = t + sincos_2d(h, w, d, device=t.device, dtype=t.dtype)
        for j, block in enumerate(self.blocks):
            out = block(t)
            if self.select is not None:
                grid = out.transpose(1, 2).reshape(b, d, h, w)
                before = t.transpose(1, 2).reshape(b, d, h, w)
                out = self.select[j](before, grid).flatten(2).transpose(1, 2)
            t = out
        f = self.norm(t).transpose(1, 2).reshape(b, d, h, w)
        return f, stem


# ------------------------------------------------------------------------------ fusion
def masked_group_norm(x: Tensor, real: Tensor | None, norm: nn.GroupNorm) -> Tensor:
    """``norm`` (a GroupNorm over ``x [N, C, T]``: channels x dates per sequence) with its
    statistics taken over the real dates only (``real [N, T]``, True = real; None: all
    real), then its affine. With every date real this is ``norm(x)``; padded dates get
    normalised values too (they are masked in the attention afterwards)."""
    if real is None:
        return norm(x)
    n, c, t = x.shape
    g = norm.num_groups
    xg = x.reshape(n, g, c // g, t)
    m = real[:, None, None, :].to(x.dtype)
    count = m.sum(dim=(2, 3), keepdim=True) * (c // g)
    mean = (xg * m).sum(dim=(2, 3), keepdim=True) / count
    var = ((xg - mean).square() * m).sum(dim=(2, 3), keepdim=True) / count
    out = ((xg - mean) / torch.sqrt(var + norm.eps)).reshape(n, c, t)
    if norm.affine:
        out = out * norm.weight[None, :, None] + norm.bias[None, :, None]
    return out


class ChangeAwareWeights(nn.Module):
    """The fusion weights of eq. 11: ``W^t = Attn({Conv(c^t || F_f^t)})`` with Attn the
    attention of an L-TAE (:class:`~cloudfree.models.layers.ltae.LTAE2dTiny`: the input
    GroupNorm, ``inconv``, the date encoding and the master-query heads of utae-paps'
    ``LTAE2d``; the value path and MLP are unused, since only the weights enter eq. 12), the
    heads merged by their mean. The input GroupNorm takes its statistics over the real dates
    only (:func:`masked_group_norm`), so a padded date changes nothing; padded dates get
    -1e3 logits (the L-TAE's rule) and weight exactly 0.

    ``forward(feats [B, T, C_in, h, w], real [B, T] | None, dates [B, T] | None) -> W [B, T,
    h, w]`` (sums to 1 over the real dates).
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        kernel: int,
        n_head: int,
        d_k: int,
        d_model: int,
        period: float,
        positional_encoding: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, kernel, padding=kernel // 2)
        self.ltae = LTAE2dTiny(
            in_channels=width, n_head=n_head, d_k=d_k, d_model=d_model, T=period,
            positional_encoding=positional_encoding,
        )  # fmt: skip

    def forward(self, feats: Tensor, real: Tensor | None, dates: Tensor | None) -> Tensor:
        b, t = feats.shape[:2]
        x = self.conv(feats.flatten(0, 1))
        _, c, h, w = x.shape
        seq = x.view(b, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t)
        per_pixel = None
        if real is not None:
            per_pixel = real[:, None, None, :].expand(b, h, w, t).reshape(b * h * w, t)
        m = self.ltae
        out = masked_group_norm(seq, per_pixel, m.in_norm)
        out = m.inconv(out).permute(0, 2, 1)  # [N, T, d_model]
        if m.positional_encoder is not None:
            if dates is None:
                raise ConfigError(f"{_OWNER}: dates are needed with positional_encoding=True")
            pos = dates[:, None, None, :].expand(b, h, w, t).reshape(b * h * w, t)
            out = out + m.positional_encoder(pos)
        pad = None if per_pixel is None else ~per_pixel
        attn = m.attention_heads.weights(out, pad)  # [heads, N, T]
        weights = attn.mean(dim=0).view(b, h, w, t).permute(0, 3, 1, 2)
        if real is not None:
            weights = weights * real[:, :, None, None].to(weights.dtype)
        return weights


# ------------------------------------------------------------------------------ decoder
class CAMTCRDecoder(nn.Module):
    """H_d (module docstring, Decision 11): per factor 2 of ``patch_size`` one stage
    ``conv1x1 (c -> 4 c') -> PixelShuffle(2) -> decoder_blocks x MBConv(c')`` (widths
    ``decoder_widths``); at full resolution, with ``skip_channels`` > 0, ``concat(x, skip)
    -> conv3x3 -> GELU``; then ``conv3x3 -> out_channels``."""

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        blocks: int,
        skip_channels: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        stages = []
        c = in_channels
        for w in widths:
            layers: list[nn.Module] = [nn.Conv2d(c, 4 * w, 1), nn.PixelShuffle(2)]
            layers += [MBConv(w, 2, "group") for _ in range(blocks)]
            stages.append(nn.Sequential(*layers))
            c = w
        self.stages = nn.ModuleList(stages)
        self.skip = (
            nn.Sequential(nn.Conv2d(c + skip_channels, c, 3, padding=1), nn.GELU())
            if skip_channels
            else None
        )
        self.out = nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=1))  # type: ignore[list-item]
        return self.out(x)


# ------------------------------------------------------------------------------ the network
def _frames_of(x: Tensor, real: Tensor | None) -> Tensor:
    """The real frames of ``x [B, T, ...]`` as ``[M, ...]`` (all B*T frames when ``real`` is
    None)."""
    return x.flatten(0, 1) if real is None else x[real]


def _scatter(frames: Tensor, real: Tensor | None, b: int, t: int) -> Tensor:
    """Inverse of :func:`_frames_of`: ``[M, ...]`` -> ``[B, T, ...]``, zeros on padded dates."""
    if real is None:
        return frames.view(b, t, *frames.shape[1:])
    out = frames.new_zeros(b, t, *frames.shape[1:])
    out[real] = frames
    return out


class CAMTCR(CloudRemovalModel):
    """CA-MTCR (module docstring; every argument is a Decision there).

    Args:
        in_optical, in_sar: input channels (13, 2).
        patch_size: token grid stride p, a power of two up to 8 (4).
        embed_dim, depth, num_heads, mlp_ratio: the optical Transformer (D, L = 9, heads, r).
        stem_width, stem_blocks: the full-resolution optical stem.
        pos_encoding: ``"sincos"`` (2-D sine-cosine on the token grid) or ``"none"``.
        region_select: region selection after every block (False: "w/o RegS").
        mask_mode, r1_kernel, cam_hidden, mask_kernel: :class:`RegionSelection`.
        use_sar: the SAR branch (False: "w/o SAR"; needs ``change_aware=False``).
        sar_width, sar_channels: :class:`CAMTCRSAREncoder` widths.
        sar_downsample: SAR resolution factor (1, 5, 10: Table 3): the SAR is average-pooled
            by it and resized back bilinearly before the encoder.
        fusion_kernel: kernel of H_mmf's conv.
        change_aware: the change map enters the weights (False: "w/o CA").
        weight_width, weight_kernel: the conv before the L-TAE.
        ltae_heads, ltae_d_k, ltae_d_model, ltae_period: the L-TAE.
        positional_encoding: encode the dates in the L-TAE.
        relative_dates: encode ``date - date_N`` instead of the absolute day.
        decoder_widths, decoder_blocks: :class:`CAMTCRDecoder`.
        decoder_skip: the stem features, fused over the dates with the upsampled W, enter the
            decoder at full resolution.
        output: ``"sigmoid"`` or ``"residual"`` (date N's optical input plus the decoder).
        max_dates: most dates T (None: any).
    """

    temporal_forward = True

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        patch_size: int = 4,
        embed_dim: int = 224,
        depth: int = 9,
        num_heads: int = 7,
        mlp_ratio: float = 4.0,
        stem_width: int = 96,
        stem_blocks: int = 5,
        pos_encoding: str = "sincos",
        region_select: bool = True,
        mask_mode: str = "mul",
        r1_kernel: int = 7,
        cam_hidden: int = 2,
        mask_kernel: int = 3,
        use_sar: bool = True,
        sar_width: int = 32,
        sar_channels: int = 64,
        sar_downsample: int = 1,
        fusion_kernel: int = 1,
        change_aware: bool = True,
        weight_width: int = 128,
        weight_kernel: int = 1,
        ltae_heads: int = 16,
        ltae_d_k: int = 4,
        ltae_d_model: int = 256,
        ltae_period: float = 1000.0,
        positional_encoding: bool = True,
        relative_dates: bool = False,
        decoder_widths: Sequence[int] = (128, 64),
        decoder_blocks: int = 1,
        decoder_skip: bool = True,
        output: str = "sigmoid",
        max_dates: int | None = None,
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        if isinstance(in_sar, bool) or not isinstance(in_sar, int) or in_sar < 1:
            raise ConfigError(
                f"{_OWNER}: in_sar must be an integer >= 1, got {in_sar!r} (the optical-only "
                "variant is use_sar=False, registered as ca_mtcr_no_sar)"
            )
        self.in_sar = in_sar
        if isinstance(patch_size, bool) or patch_size not in PATCH_SIZES:
            raise ConfigError(
                f"{_OWNER}: patch_size must be one of {PATCH_SIZES}, got {patch_size!r}"
            )
        self.patch_size = patch_size
        self.check_int("embed_dim", embed_dim, 4)
        self.check_int("depth", depth, 1)
        self.check_int("num_heads", num_heads, 1)
        if embed_dim % 4 or embed_dim % num_heads:
            raise ConfigError(
                f"{_OWNER}: embed_dim must be a multiple of 4 (GroupNorm, sine-cosine "
                f"encoding) and of num_heads={num_heads}, got {embed_dim}"
            )
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ConfigError(f"{_OWNER}: mlp_ratio must be a number > 0, got {mlp_ratio!r}")
        self.check_int("stem_width", stem_width, 1)
        self.check_int("stem_blocks", stem_blocks, 0)
        self.region_select, self.use_sar = bool(region_select), bool(use_sar)
        self.change_aware = bool(change_aware)
        if self.change_aware and not self.use_sar:
            raise ConfigError(
                f"{_OWNER}: change_aware=True needs the SAR branch (the change map is computed "
                "from SAR features); use_sar=False needs change_aware=False (ca_mtcr_no_sar)"
            )
        if isinstance(sar_downsample, bool) or sar_downsample not in SAR_DOWNSAMPLES:
            raise ConfigError(
                f"{_OWNER}: sar_downsample must be one of {SAR_DOWNSAMPLES}, got {sar_downsample!r}"
            )
        if sar_downsample != 1 and not self.use_sar:
            raise ConfigError(f"{_OWNER}: sar_downsample={sar_downsample} needs use_sar=True")
        self.sar_downsample = sar_downsample
        if check_int(_OWNER, "fusion_kernel", fusion_kernel, 1) % 2 == 0:
            raise ConfigError(f"{_OWNER}: fusion_kernel must be odd, got {fusion_kernel}")
        if check_int(_OWNER, "weight_kernel", weight_kernel, 1) % 2 == 0:
            raise ConfigError(f"{_OWNER}: weight_kernel must be odd, got {weight_kernel}")
        self.check_int("weight_width", weight_width, 1)
        self.check_int("ltae_heads", ltae_heads, 1)
        self.check_int("ltae_d_k", ltae_d_k, 1)
        self.check_int("ltae_d_model", ltae_d_model, 1)
        if weight_width % ltae_heads or ltae_d_model % ltae_heads:
            raise ConfigError(
                f"{_OWNER}: weight_width ({weight_width}) and ltae_d_model ({ltae_d_model}) must "
                f"be multiples of ltae_heads ({ltae_heads})"
            )
        self.positional_encoding = bool(positional_encoding)
        self.relative_dates = bool(relative_dates)
        widths = [check_int(_OWNER, "decoder_widths[i]", int(w), 1) for w in decoder_widths]
        n_up = int(math.log2(patch_size))
        if len(widths) != n_up:
            raise ConfigError(
                f"{_OWNER}: decoder_widths needs one width per factor 2 of patch_size "
                f"({n_up} for patch_size={patch_size}), got {list(decoder_widths)}"
            )
        if any(w % 4 for w in widths):
            raise ConfigError(
                f"{_OWNER}: decoder_widths must be multiples of 4 (GroupNorm), got {widths}"
            )
        self.check_int("decoder_blocks", decoder_blocks, 0)
        self.decoder_skip = bool(decoder_skip)
        self.output = _choice("output", output, OUTPUTS)
        if max_dates is not None:
            self.check_int("max_dates", max_dates, 1)
        self.max_dates = max_dates

        select_kwargs = dict(
            mask_mode=mask_mode, r1_kernel=r1_kernel, cam_hidden=cam_hidden, mask_kernel=mask_kernel
        )
        self.optical_encoder = CAMTCROpticalEncoder(
            in_optical, stem_width, stem_blocks, patch_size, embed_dim, depth, num_heads,
            float(mlp_ratio), pos_encoding, self.region_select, select_kwargs,
        )  # fmt: skip
        sar_out = 0
        if self.use_sar:
            self.sar_encoder = CAMTCRSAREncoder(in_sar, sar_width, sar_channels, patch_size)
            sar_out = sar_channels
        self.fusion = nn.Sequential(
            nn.Conv2d(embed_dim + sar_out, embed_dim, fusion_kernel, padding=fusion_kernel // 2),
            MBConv(embed_dim, 2, "group"),
        )
        self.weights = ChangeAwareWeights(
            embed_dim + (1 if self.change_aware else 0), weight_width, weight_kernel,
            ltae_heads, ltae_d_k, ltae_d_model, float(ltae_period), self.positional_encoding,
        )  # fmt: skip
        self.decoder = CAMTCRDecoder(
            embed_dim, widths, decoder_blocks, stem_width if self.decoder_skip else 0, in_optical
        )

    # ---------------------------------------------------------------- pieces
    def _sar_input(self, sar: Tensor) -> Tensor:
        """``sar [M, C, H, W]`` at 1 / ``sar_downsample`` resolution and back (Decision 7)."""
        s = self.sar_downsample
        if s == 1:
            return sar
        h, w = sar.shape[-2:]
        low = F.adaptive_avg_pool2d(sar, (-(-h // s), -(-w // s)))
        return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)

    @staticmethod
    def change_maps(f_sar: Tensor, target: Tensor) -> Tensor:
        """Eq. 10: ``c^t = cos(F_sar^t, F_sar^N)`` per position over the channels, ones for
        t = N. ``f_sar [B, T, C, h, w]``, ``target [B]`` (index of N) -> ``[B, T, h, w]``."""
        b, t = f_sar.shape[:2]
        ref = f_sar[torch.arange(b, device=f_sar.device), target]  # [B, C, h, w]
        c = F.cosine_similarity(f_sar, ref[:, None], dim=2, eps=_EPS)
        is_target = torch.arange(t, device=c.device)[None, :] == target[:, None]
        return torch.where(is_target[:, :, None, None], torch.ones((), dtype=c.dtype), c)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> ModelOutput:
        """``optical [B, T, C, H, W]``, ``sar [B, T, in_sar, H, W]``, ``dates [B, T]``,
        ``time_mask [B, T]`` (True = real) -> ``pred [B, C, H, W]`` for date N, the last real
        date of each sample; extras ``change_maps`` and ``fusion_weights`` ``[B, T, h, w]`` on
        the (padded) token grid."""
        if optical.ndim != 5:
            raise ConfigError(
                f"{_OWNER}: optical must be [B, T, C, H, W], got {tuple(optical.shape)}"
            )
        b, t, _, h, w = optical.shape
        if self.max_dates is not None and t > self.max_dates:
            raise ConfigError(f"{_OWNER}: at most {self.max_dates} dates, got {t}")
        if self.use_sar and sar is None:
            raise ConfigError(f"{_OWNER}: needs a SAR input [B, T, {self.in_sar}, H, W]")
        real = None if time_mask is None else time_mask.to(device=optical.device, dtype=torch.bool)
        target = last_real_date(real, t).to(optical.device).expand(b)
        if dates is not None:
            dates = dates.to(optical.dtype)
            if real is not None:
                dates = dates.masked_fill(~real, 0.0)
            if self.relative_dates:
                dates = dates - dates[torch.arange(b, device=dates.device), target][:, None]
        p = self.patch_size
        ph, pw = padding_to_multiple(h, p, 2 * p), padding_to_multiple(w, p, 2 * p)

        x = pad_bottom_right(_frames_of(optical, real), ph, pw)
        f_opt, stem = self.optical_encoder(x)
        parts = [f_opt]
        if self.use_sar:
            s = self._sar_input(_frames_of(sar.to(optical.dtype), real))  # type: ignore[union-attr]
            f_sar = self.sar_encoder(pad_bottom_right(s, ph, pw))
            parts.append(f_sar)
        f_f = _scatter(self.fusion(torch.cat(parts, dim=1)), real, b, t)  # [B, T, D, h', w']
        extras: dict[str, Tensor] = {}
        feats = f_f
        if self.change_aware:
            c = self.change_maps(_scatter(f_sar, real, b, t), target)
            if real is not None:
                c = c * real[:, :, None, None].to(c.dtype)
            extras["change_maps"] = c
            feats = torch.cat([c[:, :, None], f_f], dim=2)
        wts = self.weights(feats, real, dates)  # [B, T, h', w']
        extras["fusion_weights"] = wts
        fused = (f_f * wts[:, :, None]).sum(dim=1)
        skip = None
        if self.decoder_skip:
            up = F.interpolate(wts, size=stem.shape[-2:], mode="bilinear", align_corners=False)
            skip = (_scatter(stem, real, b, t) * up[:, :, None]).sum(dim=1)
        raw = self.decoder(fused, skip)[..., :h, :w]
        if self.output == "sigmoid":
            pred = torch.sigmoid(raw)
        else:
            pred = optical[torch.arange(b, device=optical.device), target] + raw
        return ModelOutput(pred=pred, extras=extras)


# ------------------------------------------------------------------------------ registry
def _spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(
        InputSpec(
            temporal=True,
            max_dates=kwargs["max_dates"],
            needs_sar=bool(kwargs["use_sar"]),
            needs_dates=bool(kwargs["positional_encoding"]),
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            spatial_multiple=kwargs["patch_size"],
            padding_invariant=True,
        ),
        tasks=frozenset({"regression"}),
    )


_PAPER = "You et al., Change-aware multi-temporal cloud removal (Sci China Inf Sci 2026)"


def _variant(name: str, description: str, defaults: Mapping[str, Any]) -> None:
    def builder(**kwargs: Any) -> CAMTCR:
        return CAMTCR(**kwargs)

    builder.__doc__ = description
    register_model(
        name,
        paper=_PAPER,
        protocol="uncrtaints",
        description=description,
        default_kwargs=defaults,
        default_recipe="ca_mtcr",
        spec=_spec,
        model_class=CAMTCR,
    )(builder)


_variant("ca_mtcr", "CA-MTCR: region-selective optical encoder, change-aware L-TAE fusion", {})
_variant(
    "ca_mtcr_no_regs",
    "CA-MTCR w/o RegS (plain Transformer blocks; Table 2)",
    {"region_select": False},
)
_variant(
    "ca_mtcr_no_ca",
    "CA-MTCR w/o CA (no change map in the weights; Table 2)",
    {"change_aware": False},
)
_variant(
    "ca_mtcr_baseline",
    "CA-MTCR Baseline: neither region selection nor change awareness (Table 2)",
    {"region_select": False, "change_aware": False},
)
_variant(
    "ca_mtcr_no_sar",
    "CA-MTCR w/o SAR: optical only, no change map (Table 3, Fig. 7b)",
    {"use_sar": False, "change_aware": False},
)
