"""GLF-CR (global-local fusion cloud removal), its ablations, and the CARF network.

Papers:

* F. Xu, Y. Shi, P. Ebel, L. Yu, G.-S. Xia, W. Yang, X. X. Zhu, "GLF-CR: SAR-enhanced cloud
  removal with global-local fusion", ISPRS Journal of Photogrammetry and Remote Sensing 192
  (2022) 268-278. Official code: ``xufangchn/GLF-CR`` (``codes/net_CR_RDN.py``,
  ``RDN_residual_CR``; ``codes/submodules.py``).
* T.-A. Bui, T.-T. Le et al., "Cloud-Attentive Reconstruction Framework" (CARF, arXiv
  2506.17885, 2025). Official code: ``thoailt/Cloud-Removal`` (``codes/models/net_CR_RDN.py``),
  a refactor of GLF-CR's network whose only numerical difference is the shifted-window mask of
  the SAR stream (below).

This module is an independent re-implementation, checked against outputs of both official
networks (``parity/glf_cr``, ``parity/glf_cr_resize``, ``parity/carf``).

Architecture (SPEC sections 5.1, 5.2), with ``G0 = width``, ``G = growth``, ``D = num_blocks``,
``C = layers_per_block``, ``k = dyn_kernel``::

    x_opt = pixel_unshuffle(optical, 2); x_sar = pixel_unshuffle(sar, 2)      # H/2 x W/2
    f1 = sfe1_opt(x_opt) (5x5 -> G0);  x = sfe2_opt(f1) (3x3);  same for SAR (sfe*_sar)
    for i in range(D):
        x, s = block_i(x, s)          # SGCI: two-stream residual dense block with Swin layers
        x, s = fusion_i(x, s)         # SLFC: dynamic-filter SAR compensation + two gates
        keep x
    x = gff_conv(gff_reduce(cat(kept x))) + f1      # 1x1 (D*G0 -> G0), 3x3
    out = out_conv(pixel_shuffle(up_conv(x), 2)) + optical  # 3x3 G0->256, x2, 3x3 64->C_opt

SGCI block (``_DenseBlock``): C dense layers; layer ``c`` sees ``G0 + c*G`` channels per stream and
computes, per stream, ``y = ReLU(conv3x3(x))`` (G channels), then one Swin window-attention layer
on the G-dim tokens of both streams (``_DenseLayer``), and appends its output to the dense
concatenation. A local fusion conv3x3 (``G0 + C*G -> G0``) per stream plus the block input (local
residual) ends the block. The Swin layer, exactly as the official code orders it:

* no norm before attention; windows of ``window_size`` (8), cyclic shift 0 on even and
  ``window_size // 2`` on odd layers (in a block);
* per stream ``qkv`` (with bias) and ``proj`` Linear layers; one relative position bias table
  per layer shared by both streams; logits ``M = (q * d^-0.5) k^T + bias``;
* global fusion gate: ``M_res = M_sar - M_opt``, ``gate = sigmoid(Conv2d(heads, heads, 1)(M_res))``
  (heads as channels over the N x N logit map), ``M_opt' = M_opt + M_res * gate``; the SAR stream
  keeps ``M_sar``; both then get the shifted-window mask and a separate softmax;
* ``t = y + DropPath(proj(attn))`` (the residual is the ReLU conv output), then
  ``t = t + DropPath(MLP(LayerNorm(t)))`` with MLP = Linear(G -> int(G * mlp_ratio)), GELU,
  Linear(-> G); separate norm/MLP per stream; drop-path rates ``linspace(0, drop_path, D*C)`` over
  all layers in order.

SLFC (``_LocalFusion``): ``K = DFG(cat(x, s))`` with DFG = conv3x3 (2 G0 -> G0) + LeakyReLU(0.1),
two residual blocks ``r + conv3x3(LeakyReLU(conv3x3(r)))``, conv1x1 (G0 -> G0 k^2) +
LeakyReLU(0.1); ``s_m = dynamic_filter2d(s, K, k)`` (per-pixel per-channel ``k x k`` filter with
replicate padding, :mod:`cloudfree.models.layers.dynamic_filter`); ``x' = x + (s_m - x) *
sigmoid(gate_opt(s_m - x))``; ``s' = s + (x' - s_m) * sigmoid(gate_sar(x' - s_m))`` (1x1 convs).

Decisions and facts (each checked against the official code):

* **Gates are sigmoids.** The paper says "a convolution layer as well as a Softmax layer"; both
  official codes use ``sigmoid``, which is followed here (both for the attention gate and the
  two SLFC gates).
* **Gate and shift mask.** GLF-CR adds the mask to both logit maps before the gate; CARF computes
  the gate first and adds the mask to the fused optical logits only, so that **the CARF SAR
  stream never sees the shift mask** (``sar_shift_mask=False``, registered as ``carf``). The
  mask cancels in ``M_sar - M_opt`` and the fused optical logits differ only at masked entries
  (whose softmax weight is ~1e-44 either way), so both variants are computed here as "gate on
  unmasked logits, then mask"; only whether the SAR logits get the mask differs.
* **Mask value -inf instead of -100.** Masked pairs get ``-inf`` (exact zero weight) where the
  official code adds ``-100`` (weight ``e^-100`` relative to the row maximum). The results are
  the same in float32 and float64 (checked against the official code) unless a masked logit
  exceeded its row's maximum by more than about 80, which trained or random weights do not
  produce. The reason: ``exp(-100 + x)`` lands in float32's denormal range, which makes the CPU
  softmax about three times slower. Each row keeps its own token unmasked, so no row is all
  ``-inf``.
* **Gate width.** GLF-CR hard-codes ``Conv2d(8, 8, 1)`` (= its 8 heads); CARF uses
  ``Conv2d(num_heads, num_heads, 1)``, which is what is built here for any ``num_heads``.
* **Shift disabled on small maps.** The official layer sets the shift to 0 when
  ``min(feature H, W) <= window_size``. That rule is applied here to the (padded) feature size
  of each call instead of the construction size; the official code also shrinks the window to the
  map, which cannot happen here because the map is padded to at least one window.
* **Any input size.** The official model is tied to its build size (``input_size``) through
  persistent ``attn_mask`` buffers. Here optical and SAR are padded at the bottom/right to a
  multiple of ``2 * window_size`` (reflect, or replicate where the pad is not smaller than the
  image), the output is cropped back; the shift mask is built for the size seen (cached per
  size/device/dtype, never in the state dict) and the relative position index is a
  non-persistent buffer. At sizes that are already multiples (e.g. 32, 64, 128, 256) nothing is
  padded and the result equals the official model built for that size.
* **The dead last SAR gate is not built.** After the last block the official code still updates
  the SAR features (``opt_distribute_1x1conv[D-1]``) and then discards them, so those
  ``G0 * G0 + G0`` weights never influence the output (and never get a gradient). The update and
  its conv are left out here; :func:`convert_official_glf_cr` drops those two keys. The model
  therefore has 14,818,061 parameters at the defaults, the official 14,827,373 minus 9,312.
* **Initialisation** mirrors the official code: PyTorch's defaults for every conv, Linear and
  LayerNorm (the official network applies no custom init), and the relative position bias tables
  drawn from N(0, 0.02^2) truncated to [-2, 2] (timm's ``trunc_normal_(std=.02)``).
* **DropPath** draws independently for each residual (attention and MLP) of each stream, as the
  official code calls its DropPath modules once per residual; identity in eval mode.
* **Dynamic filter.** Same arithmetic as the official pure-PyTorch ``kernel2d_conv`` (and the CUDA
  FAC op it stands in for), but computed as ``k*k`` shifted multiply-adds without ``unfold``, so
  memory stays O(feature map) beyond the kernel tensor itself. Without autograd (inference) the
  kernel tensor ``[B, G0 k^2, H/2, W/2]``, the largest tensor of the network, is not even
  materialised: the DFG's last 1x1 conv, its LeakyReLU and the filtering run band by band
  (:func:`~cloudfree.models.layers.dynamic_filter.dynamic_filter2d_generated`). The two paths
  agree to float rounding (~1e-7).
* **Efficiency, same values.** The attention gate's 1x1 conv over heads is computed as a batched
  matmul, and the attention logits are processed in chunks of windows (~2 MiB per logit map) so
  that the element-wise chain (bias, gate, mask, softmax) stays in cache. On two CPU threads
  (``benchmarks/glf_cr_vs_official.py``, docs/performance.md) the inference forward at 256 x 256
  is about 3.8 times faster than the official code with a seventh of its extra memory, and a
  training step (forward, L1, backward, Adam) at 128 x 128 about 1.4 times faster with a
  quarter of its peak memory.
* **Traced with symbolic sizes** (``torch.export`` for ONNX, dynamic ``torch.compile``): the
  shift mask is built in the graph instead of looked up in the size-keyed cache, and all
  windows are attended in one call instead of the Python loop over chunks (a loop over
  symbolic counts would fix the batch and sizes in the trace). Same values; the eager path is
  unchanged.

Ablations (paper section 5.4 / Table 2), option ``variant``:

* ``"full"``: the network above.
* ``"concat"`` (paper "Concat"): optical and SAR channels concatenated (optical first) as the
  input of a single stream; the SAR stream, the attention-map update (gate) and the SLFC blocks
  are removed. The Swin layers remain (single-stream, no gate). The global residual adds the
  cloudy optical input.
* ``"no_sar"`` (paper "w/o SAR"): the same single-stream network on the optical input alone;
  ``sar`` is accepted and ignored (it may be ``None``).
* ``"no_stl"`` (paper "w/o STL"): two streams without any Swin layer (each dense layer is only
  conv3x3 + ReLU per stream), hence no global SAR-optical interaction; the SLFC blocks with the
  dynamic filter are kept.
* ``"no_gf"`` (paper "w/o GF"): the Swin layers remain in both streams but the optical attention
  is not guided by the SAR attention (no gate); SLFC kept.
* ``"no_df"`` (paper "w/o DF"): the dynamic filter is removed from the SLFC blocks (no DFG, the
  gates see the unfiltered SAR features, ``s_m = s``); the two gates and the SAR update are kept,
  since the paper says it removes "the dynamic filter in SLFC blocks" and that this variant
  "adopts the same strategy to utilize the information of [...] SAR images".

No official code exists for the ablations; their definitions above follow the paper's text.
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
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelSpec
from cloudfree.models.layers.drop_path import DropPath
from cloudfree.models.layers.dynamic_filter import dynamic_filter2d, dynamic_filter2d_generated
from cloudfree.models.layers.init import trunc_normal_
from cloudfree.models.layers.padding import pad_bottom_right
from cloudfree.models.layers.window_attention import (
    ShiftMaskCache,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

__all__ = [
    "GLFCR",
    "VARIANTS",
    "carf",
    "convert_official_glf_cr",
    "glf_cr",
    "glf_cr_concat",
    "glf_cr_no_df",
    "glf_cr_no_gf",
    "glf_cr_no_sar",
    "glf_cr_no_stl",
]

PAPER_GLF_CR = "Xu et al., ISPRS J. 2022 (GLF-CR)"
PAPER_CARF = "Bui & Le 2025 (CARF)"
REPO_GLF_CR = "xufangchn/GLF-CR"
REPO_CARF = "thoailt/Cloud-Removal"

#: the ``variant`` values and what they keep: (two streams, concat input, Swin layers, gate,
#: SLFC fusion, dynamic filter)
VARIANTS: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {
    "full": (True, False, True, True, True, True),
    "concat": (False, True, True, False, False, False),
    "no_sar": (False, False, True, False, False, False),
    "no_stl": (True, False, False, False, True, True),
    "no_gf": (True, False, True, False, True, True),
    "no_df": (True, False, True, True, True, False),
}

_LEAKY = 0.1  # LeakyReLU slope of the DFG (official LEAKY_VALUE)
_UP_CHANNELS = 256  # UPNet's hidden width, hard-coded in the official code
_CHUNK_BYTES = 2 << 20  # size of one [windows, heads, N, N] logit chunk in the attention


class _Mlp(nn.Module):
    """Linear -> GELU -> Linear on channels-last tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DualWindowAttention(nn.Module):
    """Window multi-head self-attention over an optical and (optionally) a SAR token stream.

    One relative position bias table is shared by the streams; ``qkv``/``proj`` are separate.
    With ``gated``, the optical logits are refined by the SAR logits through
    ``sigmoid(Conv2d(heads, heads, 1)(M_sar - M_opt))`` (GLF-CR's global fusion). Inputs and
    outputs are channels-last maps ``[B, H, W, dim]`` with H, W multiples of ``window_size``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        *,
        two_stream: bool = True,
        gated: bool = True,
        sar_shift_mask: bool = True,
    ) -> None:
        super().__init__()
        if gated and not two_stream:
            raise ConfigError("DualWindowAttention: the SAR gate needs two streams")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.sar_shift_mask = sar_shift_mask
        self.bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer(
            "rel_index", relative_position_index(window_size).flatten(), persistent=False
        )
        self.qkv_opt = nn.Linear(dim, 3 * dim, bias=True)
        self.proj_opt = nn.Linear(dim, dim)
        self.qkv_sar = nn.Linear(dim, 3 * dim, bias=True) if two_stream else None
        self.proj_sar = nn.Linear(dim, dim) if two_stream else None
        self.gate = nn.Conv2d(num_heads, num_heads, kernel_size=1) if gated else None
        trunc_normal_(self.bias_table, std=0.02)

    def _bias(self) -> Tensor:
        n = self.window_size**2
        return self.bias_table[self.rel_index].view(n, n, -1).permute(2, 0, 1)  # [h, N, N]

    def _qkv(self, windows: Tensor, qkv: nn.Linear) -> tuple[Tensor, Tensor, Tensor]:
        """``[B*nW, N, C]`` -> q (scaled), k, v as ``[B*nW, h, N, d]`` each."""
        bw, n, c = windows.shape
        t = qkv(windows).view(bw, n, 3, self.num_heads, c // self.num_heads)
        t = t.permute(2, 0, 3, 1, 4).contiguous()
        return t[0] * self.scale, t[1], t[2]

    def _gate(self, diff: Tensor) -> Tensor:
        """``sigmoid(Conv2d(h, h, 1)(diff))`` over ``[b, h, N, N]``, as a batched matmul.

        Same arithmetic as the 1x1 convolution, several times faster on CPU than a
        convolution with so few channels.
        """
        assert self.gate is not None
        b, h, n, _ = diff.shape
        weight = self.gate.weight.view(1, h, h).expand(b, h, h)
        g = torch.bmm(weight, diff.view(b, h, n * n))
        g += self.gate.bias.view(h, 1)  # type: ignore[union-attr]
        return g.sigmoid_().view(b, h, n, n)

    def _attend(
        self,
        opt: tuple[Tensor, Tensor, Tensor],
        sar: tuple[Tensor, Tensor, Tensor] | None,
        bias: Tensor,
        mask: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention of one chunk of windows; ``mask`` is the chunk's ``[b, N, N]`` or None."""
        q, k, v = opt
        logits_opt = q @ k.transpose(-2, -1)  # [b, h, N, N]
        logits_opt += bias
        out_sar = None
        if sar is not None:
            q_s, k_s, v_s = sar
            logits_sar = q_s @ k_s.transpose(-2, -1)
            logits_sar += bias
            if self.gate is not None:
                # mask-free difference: the mask cancels in it (see the module docstring)
                diff = logits_sar - logits_opt
                logits_opt.addcmul_(diff, self._gate(diff))
            if mask is not None and self.sar_shift_mask:
                logits_sar += mask.unsqueeze(1)
            out_sar = torch.softmax(logits_sar, dim=-1) @ v_s
        if mask is not None:
            logits_opt += mask.unsqueeze(1)
        return torch.softmax(logits_opt, dim=-1) @ v, out_sar

    def forward(
        self, x_opt: Tensor, x_sar: Tensor | None, shift: int, mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Attention outputs (before the residual) for both streams; ``mask`` is ``[nW, N, N]``.

        ``shift`` > 0 rolls the maps by ``-shift`` before partitioning (and back afterwards);
        ``mask`` must then be the matching shifted-window mask. The ``[windows, h, N, N]``
        logit maps are processed in chunks of windows (about 2 MiB per map) so that the chain
        of element-wise operations on them stays in cache; this does not change any value.
        """
        ws = self.window_size
        b, height, width, c = x_opt.shape
        n = ws * ws
        nw = (height // ws) * (width // ws)

        def partition(x: Tensor) -> Tensor:
            if shift:
                x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            return window_partition(x, ws)

        def finish(parts: list[Tensor], proj: nn.Linear) -> Tensor:
            y = torch.cat(parts) if len(parts) > 1 else parts[0]  # [B*nW, h, N, d]
            y = proj(y.transpose(1, 2).reshape(-1, n, c))
            y = window_reverse(y, ws, height, width)
            return torch.roll(y, shifts=(shift, shift), dims=(1, 2)) if shift else y

        two = self.qkv_sar is not None and self.proj_sar is not None
        opt = self._qkv(partition(x_opt), self.qkv_opt)
        sar = None
        if two:
            assert x_sar is not None and self.qkv_sar is not None
            sar = self._qkv(partition(x_sar), self.qkv_sar)
        bias = self._bias()
        if not all(isinstance(d, int) for d in (b, nw)):
            # symbolic sizes (torch.export, dynamic torch.compile): one call over every window,
            # since a Python loop over symbolic counts would fix them in the trace; the same
            # values as the chunks below
            o, s = self._attend(opt, sar, bias, None if mask is None else mask.repeat(b, 1, 1))
            out_opt = finish([o], self.proj_opt)
            out_sar = finish([s], self.proj_sar) if two and s is not None else None  # type: ignore[arg-type]
            return out_opt, out_sar
        step = max(1, _CHUNK_BYTES // (self.num_heads * n * n * x_opt.element_size()))
        parts_opt: list[Tensor] = []
        parts_sar: list[Tensor] = []
        for i in range(b):
            for j0 in range(0, nw, step):
                j1 = min(j0 + step, nw)
                sl = slice(i * nw + j0, i * nw + j1)
                o, s = self._attend(
                    (opt[0][sl], opt[1][sl], opt[2][sl]),
                    None if sar is None else (sar[0][sl], sar[1][sl], sar[2][sl]),
                    bias,
                    None if mask is None else mask[j0:j1],
                )
                parts_opt.append(o)
                if s is not None:
                    parts_sar.append(s)
        out_opt = finish(parts_opt, self.proj_opt)
        out_sar = finish(parts_sar, self.proj_sar) if two else None  # type: ignore[arg-type]
        return out_opt, out_sar


class _DenseLayer(nn.Module):
    """One dense layer of an SGCI block: per-stream conv3x3 + ReLU, then the Swin layer."""

    def __init__(
        self,
        in_channels: int,
        growth: int,
        *,
        two_stream: bool,
        use_stl: bool,
        gated: bool,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_path: float,
        sar_shift_mask: bool,
    ) -> None:
        super().__init__()
        self.conv_opt = nn.Conv2d(in_channels, growth, 3, padding=1)
        self.conv_sar = nn.Conv2d(in_channels, growth, 3, padding=1) if two_stream else None
        self.attn: DualWindowAttention | None = None
        if use_stl:
            hidden = int(growth * mlp_ratio)
            self.attn = DualWindowAttention(
                growth,
                num_heads,
                window_size,
                two_stream=two_stream,
                gated=gated,
                sar_shift_mask=sar_shift_mask,
            )
            self.norm_opt = nn.LayerNorm(growth)
            self.mlp_opt = _Mlp(growth, hidden)
            if two_stream:
                self.norm_sar = nn.LayerNorm(growth)
                self.mlp_sar = _Mlp(growth, hidden)
            self.drop_path = DropPath(drop_path)

    def _finish(self, y: Tensor, a: Tensor, norm: nn.LayerNorm, mlp: _Mlp) -> Tensor:
        t = y.permute(0, 2, 3, 1) + self.drop_path(a)
        t = t + self.drop_path(mlp(norm(t)))
        return t.permute(0, 3, 1, 2)

    def forward(
        self, x_opt: Tensor, x_sar: Tensor | None, shift: int, mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        y_opt = F.relu(self.conv_opt(x_opt), inplace=True)
        y_sar = None
        if self.conv_sar is not None:
            assert x_sar is not None
            y_sar = F.relu(self.conv_sar(x_sar), inplace=True)
        if self.attn is not None:
            a_opt, a_sar = self.attn(
                y_opt.permute(0, 2, 3, 1),
                None if y_sar is None else y_sar.permute(0, 2, 3, 1),
                shift,
                mask,
            )
            y_opt = self._finish(y_opt, a_opt, self.norm_opt, self.mlp_opt)
            if y_sar is not None:
                assert a_sar is not None
                y_sar = self._finish(y_sar, a_sar, self.norm_sar, self.mlp_sar)
        out_opt = torch.cat([x_opt, y_opt], dim=1)
        out_sar = None if y_sar is None else torch.cat([x_sar, y_sar], dim=1)  # type: ignore[list-item]
        return out_opt, out_sar


class _DenseBlock(nn.Module):
    """SGCI block: dense layers, then per-stream local fusion conv3x3 plus local residual."""

    def __init__(
        self, width: int, growth: int, num_layers: int, drop_paths: list[float], **layer_kw: object
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(width + c * growth, growth, drop_path=drop_paths[c], **layer_kw)  # type: ignore[arg-type]
            for c in range(num_layers)
        )
        out_in = width + num_layers * growth
        self.lff_opt = nn.Conv2d(out_in, width, 3, padding=1)
        self.lff_sar = nn.Conv2d(out_in, width, 3, padding=1) if layer_kw["two_stream"] else None

    def forward(
        self, x_opt: Tensor, x_sar: Tensor | None, shift: int, mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        h_opt, h_sar = x_opt, x_sar
        for c, layer in enumerate(self.layers):
            h_opt, h_sar = layer(h_opt, h_sar, shift if c % 2 else 0, mask if c % 2 else None)
        out_opt = self.lff_opt(h_opt) + x_opt
        out_sar = None
        if self.lff_sar is not None:
            out_sar = self.lff_sar(h_sar) + x_sar
        return out_opt, out_sar


class _ResBlock(nn.Module):
    """``x + conv3x3(LeakyReLU(conv3x3(x)))`` (the DFG's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.leaky_relu(self.conv1(x), _LEAKY, inplace=True)) + x


class _KernelGenerator(nn.Module):
    """Dynamic filter generation (DFG): ``cat(opt, sar)`` -> per-pixel ``k x k`` kernels."""

    def __init__(self, width: int, ksize: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(2 * width, width, 3, padding=1)
        self.res = nn.ModuleList([_ResBlock(width), _ResBlock(width)])
        self.conv_out = nn.Conv2d(width, width * ksize * ksize, 1)

    def features(self, x_opt: Tensor, x_sar: Tensor) -> Tensor:
        """Everything before the last 1x1 conv (``[B, G0, H, W]``)."""
        x = F.leaky_relu(self.conv_in(torch.cat([x_opt, x_sar], dim=1)), _LEAKY, inplace=True)
        for block in self.res:
            x = block(x)
        return x

    def forward(self, x_opt: Tensor, x_sar: Tensor) -> Tensor:
        return F.leaky_relu(self.conv_out(self.features(x_opt, x_sar)), _LEAKY, inplace=True)

    def filter(self, x_opt: Tensor, x_sar: Tensor, ksize: int) -> Tensor:
        """SAR features filtered with the generated per-pixel kernels.

        With autograd recording, the kernel tensor ``[B, G0 k^2, H, W]`` is generated and applied
        with :func:`dynamic_filter2d`. Without (inference), the last 1x1 conv, its LeakyReLU and
        the filtering run band by band (:func:`dynamic_filter2d_generated`) so that the kernel
        tensor, the largest tensor of the network, never exists in full; the two paths agree to
        float rounding (about 1e-7).
        """
        needs_grad = torch.is_grad_enabled() and (
            x_opt.requires_grad
            or x_sar.requires_grad
            or any(p.requires_grad for p in self.parameters())
        )
        if needs_grad:
            return dynamic_filter2d(x_sar, self(x_opt, x_sar), ksize)
        return dynamic_filter2d_generated(
            x_sar,
            self.features(x_opt, x_sar),
            self.conv_out.weight,
            self.conv_out.bias,
            ksize,
            negative_slope=_LEAKY,
        )


class _LocalFusion(nn.Module):
    """SLFC block: dynamic-filtered SAR features, SAR-to-optical and optical-to-SAR gates."""

    def __init__(self, width: int, ksize: int, *, dynamic_filter: bool, update_sar: bool) -> None:
        super().__init__()
        self.ksize = ksize
        self.kernel_gen = _KernelGenerator(width, ksize) if dynamic_filter else None
        self.gate_opt = nn.Conv2d(width, width, 1)
        self.gate_sar = nn.Conv2d(width, width, 1) if update_sar else None

    def forward(self, x_opt: Tensor, x_sar: Tensor) -> tuple[Tensor, Tensor | None]:
        sar_m = x_sar
        if self.kernel_gen is not None:
            sar_m = self.kernel_gen.filter(x_opt, x_sar, self.ksize)
        d = sar_m - x_opt
        new_opt = torch.addcmul(x_opt, d, torch.sigmoid(self.gate_opt(d)))
        if self.gate_sar is None:
            return new_opt, None
        d = new_opt - sar_m
        return new_opt, torch.addcmul(x_sar, d, torch.sigmoid(self.gate_sar(d)))


class GLFCR(CloudRemovalModel):
    """GLF-CR (Xu et al., ISPRS J. 2022) and CARF (Bui & Le 2025) cloud-removal network.

    See the module docstring for the architecture, the ablations and every decision taken.

    Args:
        in_optical: optical channels (13 Sentinel-2 L1C bands); also the output channels.
        in_sar: SAR channels (2: VV, VH).
        width: G0, feature channels between blocks (paper 96).
        num_blocks: D, number of SGCI + SLFC blocks (paper 6).
        layers_per_block: C, dense layers per SGCI block (paper 5).
        growth: G, channels added by each dense layer; the Swin token width (paper 48).
        num_heads: attention heads; must divide ``growth`` (paper 8).
        window_size: attention window (paper 8); inputs are padded to multiples of twice this.
        mlp_ratio: hidden width of the Swin MLP relative to ``growth`` (2.0).
        dyn_kernel: k, size of the per-pixel dynamic filter (odd; paper 5).
        drop_path: stochastic-depth rate of the last Swin layer (linear from 0; 0.2).
        variant: ``"full"`` or an ablation, see :data:`VARIANTS` and the module docstring.
        sar_shift_mask: add the shifted-window mask to the SAR attention logits (GLF-CR, True)
            or not (CARF, False).

    ``forward(optical [B, in_optical, H, W], sar [B, in_sar, H, W])`` in the ``glf_cr`` scaling
    (reflectance in [0, 1], SAR dB min-max scaled to [0, 1]) returns ``[B, in_optical, H, W]``.
    """

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        width: int = 96,
        num_blocks: int = 6,
        layers_per_block: int = 5,
        growth: int = 48,
        num_heads: int = 8,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        dyn_kernel: int = 5,
        drop_path: float = 0.2,
        variant: str = "full",
        sar_shift_mask: bool = True,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("in_optical", in_optical, 1),
            ("in_sar", in_sar, 1),
            ("width", width, 1),
            ("num_blocks", num_blocks, 1),
            ("layers_per_block", layers_per_block, 1),
            ("growth", growth, 1),
            ("num_heads", num_heads, 1),
            ("window_size", window_size, 1),
            ("dyn_kernel", dyn_kernel, 1),
        ):
            self.check_int(name, value, minimum)
        if variant not in VARIANTS:
            raise ConfigError(f"GLFCR: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if growth % num_heads:
            raise ConfigError(
                f"GLFCR: num_heads ({num_heads}) must divide growth ({growth}), the token width"
            )
        if dyn_kernel % 2 == 0:
            raise ConfigError(f"GLFCR: dyn_kernel must be odd, got {dyn_kernel}")
        if not 0.0 <= float(drop_path) < 1.0:
            raise ConfigError(f"GLFCR: drop_path must be in [0, 1), got {drop_path!r}")
        if not float(mlp_ratio) > 0 or int(growth * mlp_ratio) < 1:
            raise ConfigError(f"GLFCR: mlp_ratio must give a hidden width >= 1, got {mlp_ratio!r}")
        two_stream, concat, use_stl, gated, fusion, dyn = VARIANTS[variant]
        self.in_optical = in_optical
        self.in_sar = in_sar
        self.width = width
        self.num_blocks = num_blocks
        self.layers_per_block = layers_per_block
        self.growth = growth
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = float(mlp_ratio)
        self.dyn_kernel = dyn_kernel
        self.drop_path_rate = float(drop_path)
        self.variant = variant
        self.sar_shift_mask = bool(sar_shift_mask)
        self.two_stream = two_stream
        self.uses_sar = two_stream or concat
        self.use_stl = use_stl
        self._concat = concat
        self._masks = ShiftMaskCache(value=float("-inf"))

        in_first = 4 * (in_optical + (in_sar if concat else 0))
        self.sfe1_opt = nn.Conv2d(in_first, width, 5, padding=2)
        self.sfe2_opt = nn.Conv2d(width, width, 3, padding=1)
        if two_stream:
            self.sfe1_sar = nn.Conv2d(4 * in_sar, width, 5, padding=2)
            self.sfe2_sar = nn.Conv2d(width, width, 3, padding=1)

        total = num_blocks * layers_per_block
        rates = torch.linspace(0, self.drop_path_rate, total).tolist()
        layer_kw = dict(
            two_stream=two_stream,
            use_stl=use_stl,
            gated=gated,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=self.mlp_ratio,
            sar_shift_mask=self.sar_shift_mask,
        )
        self.blocks = nn.ModuleList(
            _DenseBlock(
                width,
                growth,
                layers_per_block,
                rates[i * layers_per_block : (i + 1) * layers_per_block],
                **layer_kw,
            )
            for i in range(num_blocks)
        )
        self.fusions = (
            nn.ModuleList(
                _LocalFusion(width, dyn_kernel, dynamic_filter=dyn, update_sar=i < num_blocks - 1)
                for i in range(num_blocks)
            )
            if fusion
            else None
        )
        self.gff_reduce = nn.Conv2d(num_blocks * width, width, 1)
        self.gff_conv = nn.Conv2d(width, width, 3, padding=1)
        self.up_conv = nn.Conv2d(width, _UP_CHANNELS, 3, padding=1)
        self.out_conv = nn.Conv2d(_UP_CHANNELS // 4, in_optical, 3, padding=1)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, sar_shift_mask={self.sar_shift_mask}"

    # ------------------------------------------------------------------ helpers
    def _check_inputs(self, optical: Tensor, sar: Tensor | None) -> None:
        self.check_image("optical", optical, self.in_optical)
        if not self.uses_sar:
            return
        if sar is None:
            raise ConfigError(f"GLFCR: variant {self.variant!r} needs a SAR input")
        self.check_image("sar", sar, self.in_sar, like=optical)

    # ------------------------------------------------------------------ forward
    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        """Cloud-free estimate of ``optical`` (same shape and scaling)."""
        self._check_inputs(optical, sar)
        h, w = optical.shape[-2:]
        multiple = 2 * self.window_size
        ph, pw = (-h) % multiple, (-w) % multiple
        opt_in = pad_bottom_right(optical, ph, pw)
        x_in = opt_in
        sar_in = None
        if self.uses_sar:
            assert sar is not None
            sar_in = pad_bottom_right(sar.to(optical.dtype), ph, pw)
            if self._concat:
                x_in = torch.cat([opt_in, sar_in], dim=1)

        f1 = self.sfe1_opt(F.pixel_unshuffle(x_in, 2))
        x = self.sfe2_opt(f1)
        s = None
        if self.two_stream:
            s = self.sfe2_sar(self.sfe1_sar(F.pixel_unshuffle(sar_in, 2)))  # type: ignore[arg-type]

        hf, wf = x.shape[-2:]
        ws = self.window_size
        shift = ws // 2 if min(hf, wf) > ws else 0
        mask = None
        if self.use_stl and shift > 0 and isinstance(hf, int) and isinstance(wf, int):
            mask = self._masks.get(hf, wf, ws, shift, x.device, x.dtype)
        elif self.use_stl and shift > 0:  # symbolic sizes (torch.export): built, not cached
            mask = shifted_window_mask(
                hf, wf, ws, shift, device=x.device, dtype=x.dtype, value=self._masks.value
            )

        kept = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, s, shift, mask)
            if self.fusions is not None:
                x, s = self.fusions[i](x, s)
            kept.append(x)
        x = self.gff_conv(self.gff_reduce(torch.cat(kept, dim=1))) + f1
        out = self.out_conv(F.pixel_shuffle(self.up_conv(x), 2)) + opt_in
        return out[..., :h, :w] if (ph or pw) else out


# ---------------------------------------------------------------------- official checkpoints
def _rules() -> list[tuple[re.Pattern[str], str | None]]:
    wb = r"(weight|bias)"
    layer = r"RDBs\.(\d+)\.convs\.(\d+)\."
    ours = r"blocks.\1.layers.\2."
    table: list[tuple[str, str | None]] = [
        (rf"SFENet1\.{wb}", r"sfe1_opt.\1"),
        (rf"SFENet2\.{wb}", r"sfe2_opt.\1"),
        (rf"SFENet1_SAR\.{wb}", r"sfe1_sar.\1"),
        (rf"SFENet2_SAR\.{wb}", r"sfe2_sar.\1"),
        (rf"{layer}conv\.0\.{wb}", ours + r"conv_opt.\3"),
        (rf"{layer}conv_SAR\.0\.{wb}", ours + r"conv_sar.\3"),
        (rf"{layer}attn\.relative_position_bias_table", ours + "attn.bias_table"),
        (rf"{layer}attn\.qkv\.{wb}", ours + r"attn.qkv_opt.\3"),
        (rf"{layer}attn\.qkv_SAR\.{wb}", ours + r"attn.qkv_sar.\3"),
        (rf"{layer}attn\.proj\.{wb}", ours + r"attn.proj_opt.\3"),
        (rf"{layer}attn\.proj_SAR\.{wb}", ours + r"attn.proj_sar.\3"),
        (rf"{layer}attn\.attn_fuse_1x1conv\.{wb}", ours + r"attn.gate.\3"),
        (rf"{layer}norm2\.{wb}", ours + r"norm_opt.\3"),
        (rf"{layer}norm2_SAR\.{wb}", ours + r"norm_sar.\3"),
        (rf"{layer}mlp\.(fc1|fc2)\.{wb}", ours + r"mlp_opt.\3.\4"),
        (rf"{layer}mlp_SAR\.(fc1|fc2)\.{wb}", ours + r"mlp_sar.\3.\4"),
        (rf"{layer}attn_mask", None),  # tied to the build size: rebuilt per call
        (rf"{layer}attn\.relative_position_index", None),  # recomputed (non-persistent)
        (rf"RDBs\.(\d+)\.LFF\.{wb}", r"blocks.\1.lff_opt.\2"),
        (rf"RDBs\.(\d+)\.LFF_SAR\.{wb}", r"blocks.\1.lff_sar.\2"),
        (rf"DF\.(\d+)\.fac_warp\.0\.0\.{wb}", r"fusions.\1.kernel_gen.conv_in.\2"),
        (rf"DF\.(\d+)\.fac_warp\.1\.stem\.0\.{wb}", r"fusions.\1.kernel_gen.res.0.conv1.\2"),
        (rf"DF\.(\d+)\.fac_warp\.1\.stem\.2\.{wb}", r"fusions.\1.kernel_gen.res.0.conv2.\2"),
        (rf"DF\.(\d+)\.fac_warp\.2\.stem\.0\.{wb}", r"fusions.\1.kernel_gen.res.1.conv1.\2"),
        (rf"DF\.(\d+)\.fac_warp\.2\.stem\.2\.{wb}", r"fusions.\1.kernel_gen.res.1.conv2.\2"),
        (rf"DF\.(\d+)\.fac_warp\.3\.0\.{wb}", r"fusions.\1.kernel_gen.conv_out.\2"),
        (rf"sar_fuse_1x1conv\.(\d+)\.{wb}", r"fusions.\1.gate_opt.\2"),
        (rf"opt_distribute_1x1conv\.(\d+)\.{wb}", r"fusions.\1.gate_sar.\2"),
        (rf"GFF\.0\.{wb}", r"gff_reduce.\1"),
        (rf"GFF\.1\.{wb}", r"gff_conv.\1"),
        (rf"UPNet\.0\.{wb}", r"up_conv.\1"),
        (rf"UPNet\.2\.{wb}", r"out_conv.\1"),
    ]
    return [(re.compile(p), r) for p, r in table]


_RULES = _rules()
_BLOCK_INDEX = re.compile(r"^(?:RDBs|DF|sar_fuse_1x1conv|opt_distribute_1x1conv)\.(\d+)\.")
_DEAD_GATE = re.compile(r"^opt_distribute_1x1conv\.(\d+)\.(?:weight|bias)$")


def convert_official_glf_cr(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert an official GLF-CR or CARF ``RDN_residual_CR`` state dict to :class:`GLFCR` names.

    Both repositories use the same keys (``SFENet1``, ``RDBs.i.convs.c.{conv,conv_SAR,attn.*,
    norm2*,mlp*}``, ``RDBs.i.LFF*``, ``DF.i.fac_warp.*``, ``sar_fuse_1x1conv.i``,
    ``opt_distribute_1x1conv.i``, ``GFF.*``, ``UPNet.*``); the mapping is one rename per key
    (see ``_rules``). Dropped: the size-tied buffers ``*.attn_mask`` and
    ``*.attn.relative_position_index`` (recomputed here for every input size), and the last
    block's ``opt_distribute_1x1conv`` whose output the official network discards (see the
    module docstring). The number of blocks is read from the keys, so any width and depth
    converts; build the model with the matching kwargs.

    Raises:
        ConfigError: naming the keys that are not part of that layout.
    """
    indices = [int(m.group(1)) for k in state_dict if (m := _BLOCK_INDEX.match(k))]
    last = max(indices) if indices else -1
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        dead = _DEAD_GATE.match(key)
        if dead is not None and int(dead.group(1)) == last:
            continue
        for pattern, repl in _RULES:
            if pattern.fullmatch(key):
                if repl is not None:
                    out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:10])
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise ConfigError(
            f"convert_official_glf_cr: unrecognised key(s) {shown}{more}; expected an official "
            "GLF-CR / CARF RDN_residual_CR state dict"
        )
    return out


# ---------------------------------------------------------------------- registry
def glf_cr_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of a :class:`GLFCR` built with ``kwargs``: mono-temporal, ``in_optical`` +
    ``in_sar`` channels (SAR unused by the ``no_sar`` ablation), padded to a multiple of
    twice the window size (space-to-depth x2, then windows)."""
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            needs_sar=kwargs["variant"] != "no_sar",
            spatial_multiple=2 * kwargs["window_size"],
        )
    )


_COMMON = dict(
    protocol="glf_cr",
    bands="all",
    official_converter=convert_official_glf_cr,
    spec=glf_cr_spec,
    model_class=GLFCR,
)


@register_model(
    "glf_cr",
    paper=PAPER_GLF_CR,
    description="GLF-CR: two-stream RDN + Swin with SAR-guided attention and dynamic-filter fusion",
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr(**kwargs: object) -> GLFCR:
    """GLF-CR (full model); kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "glf_cr_concat",
    paper=PAPER_GLF_CR,
    description="GLF-CR ablation 'Concat': one stream on optical+SAR channels, no fusion blocks",
    default_kwargs={"variant": "concat"},
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr_concat(**kwargs: object) -> GLFCR:
    """GLF-CR ablation ``concat``; kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "glf_cr_no_sar",
    paper=PAPER_GLF_CR,
    description="GLF-CR ablation 'w/o SAR': optical stream only; sar is ignored",
    default_kwargs={"variant": "no_sar"},
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr_no_sar(**kwargs: object) -> GLFCR:
    """GLF-CR ablation ``no_sar``; kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "glf_cr_no_stl",
    paper=PAPER_GLF_CR,
    description="GLF-CR ablation 'w/o STL': no Swin layers (no global interaction), SLFC kept",
    default_kwargs={"variant": "no_stl"},
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr_no_stl(**kwargs: object) -> GLFCR:
    """GLF-CR ablation ``no_stl``; kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "glf_cr_no_gf",
    paper=PAPER_GLF_CR,
    description="GLF-CR ablation 'w/o GF': Swin layers without the SAR-to-optical attention gate",
    default_kwargs={"variant": "no_gf"},
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr_no_gf(**kwargs: object) -> GLFCR:
    """GLF-CR ablation ``no_gf``; kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "glf_cr_no_df",
    paper=PAPER_GLF_CR,
    description="GLF-CR ablation 'w/o DF': SLFC gates on unfiltered SAR features (no DFG)",
    default_kwargs={"variant": "no_df"},
    official_repo=REPO_GLF_CR,
    default_recipe="glf_cr",
    **_COMMON,  # type: ignore[arg-type]
)
def glf_cr_no_df(**kwargs: object) -> GLFCR:
    """GLF-CR ablation ``no_df``; kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "carf",
    paper=PAPER_CARF,
    description="CARF network: GLF-CR whose SAR stream gets no shifted-window mask",
    default_kwargs={"sar_shift_mask": False},
    official_repo=REPO_CARF,
    default_recipe="carf",
    **_COMMON,  # type: ignore[arg-type]
)
def carf(**kwargs: object) -> GLFCR:
    """CARF's network (GLF-CR with ``sar_shift_mask=False``); kwargs go to :class:`GLFCR`."""
    return GLFCR(**kwargs)  # type: ignore[arg-type]
