"""KBNet building blocks: kernel basis attention (KBA), the MFF block of KBNet-L and the
``KBBlock_s`` of KBNet-S (Zhang et al., "KBNet: Kernel Basis Network for Image Restoration",
2023; ``zhangyi-3/KBNet``, ``basicsr/models/archs/{kb_utils,kbnet_l_arch,kbnet_s_arch}.py``).

The modules have the official constructor arguments (names and positional order), the official
state-dict keys (an official state dict loads strictly) and the official numerics (parity
cases ``kbnet_mff`` and ``kbnet_kbblock_s``); they are called as the official ones,
``y = block(x)``. MMCANet / MPIR (paper 000, no official code) are built from them.

**Kernel basis attention** (:func:`kba`). With ``x [B, c, H, W]``, per-pixel mixing coefficients
``att [B, nset, H, W]``, ``nset`` learned kernel bases ``weight [1, nset, c * (c/g) * k * k]``
and bias bases ``bias [1, nset, c]`` (``g`` groups of ``c/g`` channels)::

    kernel[b, :, y, x] = sum_s att[b, s, y, x] * weight[0, s]      # one grouped k x k conv
    out[b, :, y, x]    = grouped_conv(kernel[b, :, y, x], zero_pad(x)[b, :, window(y, x)])
                         + sum_s att[b, s, y, x] * bias[0, s]

where the flat kernel of one pixel is ``[g, c/g (out), c/g (in), k, k]`` in row-major order and
the window is the ``k x k`` neighbourhood centred on the pixel, **zero**-padded by ``k // 2``
(``F.unfold`` with padding, unlike GLF-CR's replicate-padded dynamic filter). That is a
pixel-adaptive grouped convolution whose kernel is a linear mix of the ``nset`` bases.

Decisions for :func:`kba`:

* **Plain autograd, no custom backward.** The official ``KBAFunction`` is a custom
  ``autograd.Function`` whose backward re-derives the gradients with ``F.fold``; it keeps ``x``,
  ``att`` and the bases as ``ctx`` attributes (not ``save_for_backward``: a quirk without a
  numerical effect) and recomputes the per-pixel kernels and patches in the backward. Ours is
  written with differentiable ops (``unfold``, ``matmul``) only, so the gradient is autograd's.
* **Memory.** The per-pixel kernels take ``c * (c/g) * k * k`` values per pixel (18 times the
  feature map for MFF's ``c/g = 2``, ``k = 3``; 36 times for ``KBBlock_s``'s ``c/g = 4``) and the
  unfolded patches ``k * k`` times the map. They are built for one band of rows at a time
  (about ``chunk_bytes`` of intermediates per band), never for the whole map. With
  ``recompute`` (default: whenever autograd records the call) every band runs under
  :func:`torch.utils.checkpoint.checkpoint` (non-reentrant): autograd keeps only the band's
  inputs (views of the zero-padded ``x`` and of ``att``) and rebuilds the band's kernels and
  patches in the backward, which is what the official backward does too (at the cost of one
  more KBA forward). With ``recompute=False`` autograd keeps every band's kernels and patches
  (faster backward, memory like a plain ``unfold`` implementation). Under ``torch.no_grad``
  nothing is kept.
* The summation order differs from the official one (a few ulp in float32; the parity
  tolerances allow for it).

**Initialisation** (:func:`init_kernel_bases`, faithful). The official ``init_p`` applies
``kaiming_uniform_(a=sqrt(5))`` to the whole ``[1, nset, c*(c/g)*k*k]`` tensor, so torch's
fan-in is ``nset * c*(c/g)*k*k`` (every basis counted, not one kernel's ``(c/g)*k*k``): the
bound is ``1 / sqrt(nset * c*(c/g)*k*k)`` for the weights, and the bias bases are uniform with
the same bound. This quirk is kept (it only sets the starting point of training). Every other
layer has PyTorch's default init, and the layers are created in the official order, so the same
seed gives the same initial weights as the official constructor.

Other official quirks, kept: KBNet's ``LayerNorm2d`` uses ``eps = 1e-6`` and the biased variance
over channels (its custom backward is the exact gradient, so plain autograd equals it); the
"simplified channel attention" ``sca`` (pool + 1x1 conv) has **no sigmoid**; layer-scale gains
(``ga1``, ``attgamma``, ``beta``, ``gamma``) start at ``1e-2``. Constructor arguments that the
official code accepts but that make its forward fail (grouped convs with non-dividing channel
counts, odd SimpleGate inputs, ``KBBlock_s``'s ``DW_Expand != 2``) raise :class:`ConfigError`
at construction instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init
from torch.utils.checkpoint import checkpoint

from cloudfree.errors import ConfigError

__all__ = [
    "DEFAULT_KBA_CHUNK_BYTES",
    "KBBlockS",
    "LayerNorm2d",
    "MFF",
    "SimpleGate",
    "init_kernel_bases",
    "kba",
    "kba_groups",
]

#: Intermediates (unfolded patches + per-pixel kernels) built at once by :func:`kba`.
DEFAULT_KBA_CHUNK_BYTES = 128 << 20


def _int_at_least(owner: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _odd_kernel(owner: str, name: str, value: object) -> int:
    k = _int_at_least(owner, name, value, 1)
    if k % 2 == 0:
        raise ConfigError(f"{owner}: {name} must be odd (padding k // 2 keeps the size), got {k}")
    return k


def _number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


def _flag(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def kba_groups(owner: str, channels: int, gc: object) -> int:
    """The official group count ``g = channels // gc`` of a KBA over ``channels`` channels
    (``gc`` is the number of channels per group), checked: ``g >= 1`` and ``channels``
    divisible by ``g`` (the official forward reshapes into ``g`` equal groups and fails
    otherwise). Raises :class:`ConfigError` naming ``owner``."""
    gc = _int_at_least(owner, "gc", gc, 1)
    g = channels // gc
    if g < 1 or channels % g:
        raise ConfigError(
            f"{owner}: gc={gc} gives {g} KBA groups (channels // gc), which must be >= 1 and "
            f"divide the {channels} KBA channels"
        )
    return g


def _check_conv_groups(owner: str, what: str, channels: int, groups: int) -> None:
    if groups < 1 or channels % groups:
        raise ConfigError(
            f"{owner}: {what} is a conv over {channels} channels in {groups} groups; the "
            "channels must be divisible by the groups (choose another width)"
        )


def init_kernel_bases(weight: Tensor, bias: Tensor | None = None) -> None:
    """KBNet's ``init_p``, in place: ``kaiming_uniform_(weight, a=sqrt(5))`` on the whole
    ``[1, nset, ...]`` tensor, and ``bias`` uniform in ``+-1/sqrt(fan_in)`` with torch's fan-in
    of that tensor (``nset * weight.shape[-1]``: the quirk described in the module docstring)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(bias, -bound, bound)


class LayerNorm2d(nn.Module):
    """KBNet's ``LayerNorm2d``: per pixel, normalise over the channels of ``[B, C, H, W]``
    (mean, **biased** variance, ``eps`` inside the square root, default ``1e-6``), then a
    per-channel affine ``weight * y + bias`` (parameters ``weight``/``bias``, init 1 and 0).

    The official module is a custom ``autograd.Function`` whose backward is the exact
    layer-norm gradient; here autograd differentiates the same formula.
    """

    def __init__(self, channels: int, eps: float = 1e-6, requires_grad: bool = True) -> None:
        super().__init__()
        channels = _int_at_least("LayerNorm2d", "channels", channels, 1)
        self.eps = _number("LayerNorm2d", "eps", eps)
        self.weight = nn.Parameter(torch.ones(channels), requires_grad=requires_grad)
        self.bias = nn.Parameter(torch.zeros(channels), requires_grad=requires_grad)

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """NAFNet's gate: split the channels into two halves and multiply them (``C -> C/2``).

    An odd channel count raises :class:`ConfigError` (the official ``chunk`` would give halves
    of different sizes and fail in the multiplication)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] % 2:
            raise ConfigError(f"SimpleGate needs an even channel count, got {x.shape[1]}")
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


def _check_kba(x: Tensor, att: Tensor, weight: Tensor, bias: Tensor, k: int, g: int) -> None:
    if x.ndim != 4 or att.ndim != 4:
        raise ConfigError(
            "kba: expected x [B, c, H, W] and att [B, nset, H, W], got "
            f"{tuple(x.shape)} and {tuple(att.shape)}"
        )
    b, c, h, w = x.shape
    if att.shape[0] != b or tuple(att.shape[2:]) != (h, w):
        raise ConfigError(
            f"kba: att {tuple(att.shape)} must match x {tuple(x.shape)} in batch and size"
        )
    if c % g:
        raise ConfigError(f"kba: {c} channels cannot be split into {g} groups")
    nset = att.shape[1]
    per = c * (c // g) * k * k
    if weight.numel() != nset * per or weight.shape[-1] != per:
        raise ConfigError(
            f"kba: weight must be [1, {nset}, {per}] (nset, c * c/g * k * k) for x "
            f"{tuple(x.shape)}, {g} groups and kernel size {k}, got {tuple(weight.shape)}"
        )
    if bias.numel() != nset * c or bias.shape[-1] != c:
        raise ConfigError(f"kba: bias must be [1, {nset}, {c}], got {tuple(bias.shape)}")


def _kba_band(padded: Tensor, att: Tensor, weight: Tensor, bias: Tensor, k: int, g: int) -> Tensor:
    """KBA of one band of rows: ``padded`` holds the band's rows plus ``k - 1`` halo rows and
    columns (zero padding already applied), ``att`` the band's ``[B, nset, rows, W]``."""
    bsz, c, _, _ = padded.shape
    _, nset, rows, width = att.shape
    n, cg = rows * width, c // g
    cols = F.unfold(padded, k)  # [B, c*k*k, n]: channel-major, then row-major taps
    cols = cols.view(bsz, g, cg * k * k, n).permute(0, 3, 1, 2).unsqueeze(-1)
    mix = att.reshape(bsz, nset, n).transpose(1, 2)  # [B, n, nset]
    kernels = (mix @ weight.reshape(nset, -1)).view(bsz, n, g, cg, cg * k * k)
    out = (kernels @ cols).view(bsz, n, c) + mix @ bias.reshape(nset, c)
    return out.transpose(1, 2).reshape(bsz, c, rows, width)


def kba(
    x: Tensor,
    att: Tensor,
    weight: Tensor,
    bias: Tensor,
    kernel_size: int,
    groups: int,
    *,
    chunk_bytes: int = DEFAULT_KBA_CHUNK_BYTES,
    recompute: bool | None = None,
) -> Tensor:
    """Kernel basis attention: ``x [B, c, H, W]`` filtered per pixel by the grouped
    ``kernel_size`` conv mixed from ``weight [1, nset, c*(c/groups)*k*k]`` (and the bias from
    ``bias [1, nset, c]``) with the coefficients ``att [B, nset, H, W]``; returns
    ``[B, c, H, W]``.

    The official ``KBA(x, att, selfk, selfg, selfb, selfw)`` is
    ``kba(x, att, selfw, selfb, selfk, selfg)``. Rows are processed in bands of about
    ``chunk_bytes`` of intermediates; ``recompute`` (None: when autograd records the call)
    checkpoints every band (it has no effect when autograd does not record). See the module
    docstring for the formula and the memory decisions.

    Raises:
        ConfigError: inconsistent shapes, a non-odd kernel size, or bad options.
    """
    k = _odd_kernel("kba", "kernel_size", kernel_size)
    g = _int_at_least("kba", "groups", groups, 1)
    chunk_bytes = _int_at_least("kba", "chunk_bytes", chunk_bytes, 1)
    _check_kba(x, att, weight, bias, k, g)
    bsz, c, h, w = x.shape
    records = torch.is_grad_enabled() and any(t.requires_grad for t in (x, att, weight, bias))
    if recompute is None:
        recompute = records
    recompute = _flag("kba", "recompute", recompute) and records
    pad = k // 2
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    cg, nset = c // g, att.shape[1]
    # unfolded patches (twice: unfold, permuted copy), kernels, coefficients and output per pixel
    per_pixel = (2 * c * k * k + c * cg * k * k + nset + 2 * c) * x.element_size()
    if not all(isinstance(d, int) for d in (bsz, h, w)):
        # symbolic sizes (torch.export): one band, since a loop over bands would fix them
        return _kba_band(padded, att, weight, bias, k, g)
    rows = max(1, min(h, chunk_bytes // max(1, bsz * w * per_pixel)))
    bands = []
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        args = (padded[:, :, y0 : y1 + 2 * pad], att[:, :, y0:y1], weight, bias, k, g)
        if recompute:
            bands.append(checkpoint(_kba_band, *args, use_reentrant=False))
        else:
            bands.append(_kba_band(*args))
    return bands[0] if len(bands) == 1 else torch.cat(bands, dim=2)


def _kba_attention(
    owner: str, dim: int, interc: int | None, official: int, nset: int
) -> nn.Sequential:
    """``conv2`` of both blocks: grouped 3x3 (``dim -> interc``, ``interc`` groups), SimpleGate,
    1x1 (``interc/2 -> nset``), all with biases; ``interc=None`` is the official ``official``."""
    hint = "choose another width or pass interc=" if interc is None else "choose another interc"
    if interc is None:
        interc = official
    interc = _int_at_least(owner, "interc", interc, 1)
    if dim % interc:
        raise ConfigError(
            f"{owner}: conv2.0 (the KBA coefficients' grouped 3x3) maps {dim} channels to "
            f"interc = {interc} in {interc} groups; {dim} must be divisible by {interc} ({hint})"
        )
    if interc % 2:
        raise ConfigError(
            f"{owner}: the KBA coefficient branch has interc = {interc} channels before its "
            f"SimpleGate; it needs an even count ({hint})"
        )
    return nn.Sequential(
        nn.Conv2d(dim, interc, kernel_size=3, padding=1, stride=1, groups=interc, bias=True),
        SimpleGate(),
        nn.Conv2d(interc // 2, nset, 1, padding=0, stride=1),
    )


class _KBAMixin(nn.Module):
    """The kernel bases ``w``/``b`` and the KBA call shared by :class:`MFF` and
    :class:`KBBlockS` (attributes ``k``, ``g``, ``w``, ``b``; ``chunk_bytes`` and ``recompute``
    can be set per instance)."""

    k: int
    g: int
    w: nn.Parameter
    b: nn.Parameter
    #: bands of :func:`kba`; ``recompute`` follows autograd (see :func:`kba`)
    chunk_bytes: int = DEFAULT_KBA_CHUNK_BYTES
    recompute: bool | None = None

    def _make_bases(self, nset: int, c: int) -> None:
        # the official size c * c // g * k**2 (equal to c * (c/g) * k**2: g divides c)
        self.w = nn.Parameter(torch.zeros(1, nset, c * c // self.g * self.k**2))
        self.b = nn.Parameter(torch.zeros(1, nset, c))
        init_kernel_bases(self.w, self.b)

    def init_p(self, weight: Tensor, bias: Tensor | None = None) -> None:
        """The official method name of :func:`init_kernel_bases`."""
        init_kernel_bases(weight, bias)

    def KBA(self, x: Tensor, att: Tensor) -> Tensor:  # the official method name
        """:func:`kba` with this block's bases, kernel size and groups."""
        return kba(x, att, self.w, self.b, self.k, self.g, chunk_bytes=self.chunk_bytes,
                   recompute=self.recompute)  # fmt: skip


class MFF(_KBAMixin):
    """KBNet-L's multi-kernel feed-forward block ``MFF(dim, ffn_expansion_factor, bias, act,
    gc, nset, k)``; ``[B, dim, H, W] -> [B, dim, H, W]``, with ``hid = int(dim * ffn)``::

        sca = Conv1x1(dim -> hid)(AvgPool(x))                        # no sigmoid
        x1  = DW3x3(Conv1x1(dim -> hid)(x))                          # dwconv
        att = conv2(x) * attgamma + conv211(x)                       # [B, nset, H, W]
        uf  = DW3x3(Conv1x1(dim -> hid)(x))                          # conv1
        x2  = KBA(uf, att) * ga1 + uf                                # g = hid // gc groups
        out = project_out(GELU(x1) * x2 * sca)                       # act=False: x1 * x2 * sca

    ``conv2`` is a grouped 3x3 conv ``dim -> interc = min(dim, 24)`` (``interc`` groups),
    SimpleGate and a 1x1 conv ``interc/2 -> nset``; ``conv211`` a 1x1 conv ``dim -> nset``.
    The ``bias`` flag applies to ``dwconv``, ``conv1`` and ``project_out`` only (``sca``,
    ``conv2`` and ``conv211`` always have biases, as officially). GELU is the exact (erf) one.
    The block has no norm and no residual (KBNet-L's ``KBBlock_l`` adds them). Defaults are
    KBNet-L's (``ffn_expansion_factor=1.5``, ``bias=False``); the official signature has none
    for them. With the official ``interc``, ``dim`` must be even and, above 24, a multiple of 24
    (``conv2``'s groups; e.g. 32 or 64 fail, in the official code too), and ``hid`` divisible
    into ``hid // gc`` groups.

    Two keyword options that the official class does not have (their defaults are the official
    block, other values change the state-dict shapes): ``dw_kernel`` is the kernel of the
    depth-wise conv of the ``dwconv`` (``x1``) branch (official 3; MMCANet_L uses 5; the KBA
    input's ``conv1`` stays 3x3), ``interc`` the width of ``conv2`` (None: the official
    ``min(dim, 24)``; must divide ``dim`` and be even), for widths the official rule rejects.
    """

    def __init__(
        self,
        dim: int,
        ffn_expansion_factor: float = 1.5,
        bias: bool = False,
        act: bool = True,
        gc: int = 2,
        nset: int = 32,
        k: int = 3,
        *,
        dw_kernel: int = 3,
        interc: int | None = None,
    ) -> None:
        super().__init__()
        owner = "MFF"
        dim = _int_at_least(owner, "dim", dim, 1)
        ffn = _number(owner, "ffn_expansion_factor", ffn_expansion_factor)
        bias = _flag(owner, "bias", bias)
        self.act = _flag(owner, "act", act)
        nset = _int_at_least(owner, "nset", nset, 1)
        self.k = _odd_kernel(owner, "k", k)
        dw_kernel = _odd_kernel(owner, "dw_kernel", dw_kernel)
        hidden = int(dim * ffn)
        if hidden < 1:
            raise ConfigError(
                f"{owner}: int(dim * ffn_expansion_factor) = {hidden} hidden channels; need >= 1"
            )
        self.g = kba_groups(owner, hidden, gc)
        self.gc = gc
        self.c, self.nset = hidden, nset

        # created in the official order, so a seed gives the official initial weights
        self.dwconv = nn.Sequential(
            nn.Conv2d(dim, hidden, kernel_size=1, bias=bias),
            nn.Conv2d(
                hidden,
                hidden,
                dw_kernel,
                stride=1,
                padding=dw_kernel // 2,
                groups=hidden,
                bias=bias,
            ),  # fmt: skip
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)
        self.sca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, hidden, kernel_size=1, padding=0, stride=1, groups=1, bias=True),
        )
        self.conv1 = nn.Sequential(
            nn.Conv2d(dim, hidden, kernel_size=1, bias=bias),
            nn.Conv2d(hidden, hidden, 3, stride=1, padding=1, groups=hidden, bias=bias),
        )
        self._make_bases(nset, hidden)
        self.conv2 = _kba_attention(owner, dim, interc, min(dim, 24), nset)
        self.conv211 = nn.Conv2d(dim, nset, kernel_size=1)
        self.attgamma = nn.Parameter(torch.zeros((1, nset, 1, 1)) + 1e-2)
        self.ga1 = nn.Parameter(torch.zeros((1, hidden, 1, 1)) + 1e-2)

    def forward(self, x: Tensor) -> Tensor:
        sca = self.sca(x)
        x1 = self.dwconv(x)
        att = self.conv2(x) * self.attgamma + self.conv211(x)
        uf = self.conv1(x)
        x2 = self.KBA(uf, att) * self.ga1 + uf
        x = F.gelu(x1) * x2 if self.act else x1 * x2
        return self.project_out(x * sca)


class KBBlockS(_KBAMixin):
    """KBNet-S's block ``KBBlock_s(c, DW_Expand, FFN_Expand, nset, k, gc, lightweight)``, a
    NAFNet block whose depthwise branch goes through KBA; ``[B, c, H, W] -> [B, c, H, W]``::

        x   = norm1(inp)                                  # KBNet LayerNorm2d, eps 1e-6
        sca = Conv1x1(c -> c)(AvgPool(x))                 # no sigmoid
        x1  = conv11(x)        # Conv1x1, then 5x5 conv in c // 4 groups (lightweight: DW 3x3)
        att = conv2(x) * attgamma + conv211(x)            # interc = min(c, 32)
        uf  = conv21(conv1(x))                            # Conv1x1, DW 3x3
        x   = KBA(uf, att) * ga1 + uf                     # g = c // gc groups
        y   = inp + conv3(x * x1 * sca) * beta
        out = y + conv5(SimpleGate(conv4(norm2(y)))) * gamma   # FFN: c -> FFN_Expand*c -> c

    Every conv has a bias. Official quirks: ``DW_Expand`` only sizes ``conv3``'s input as
    ``int(c * DW_Expand) // 2``, which must equal ``c`` (the block has no ``dw_ch``-wide branch;
    any other value makes the official forward fail, here a :class:`ConfigError`), so in effect
    it must be 2; ``dropout1``/``dropout2`` are identities (no keys). With the official
    ``interc``, ``c`` must be a multiple of 32 above 32 and even below (``conv2``'s groups), and
    of 4 unless ``lightweight`` (``conv11``'s ``c // 4`` groups). The keyword option ``interc``
    (not official; None: the official ``min(c, 32)``) sets ``conv2``'s width for other ``c``.
    """

    def __init__(
        self,
        c: int,
        DW_Expand: float = 2,  # the official argument names
        FFN_Expand: float = 2,
        nset: int = 32,
        k: int = 3,
        gc: int = 4,
        lightweight: bool = False,
        *,
        interc: int | None = None,
    ) -> None:
        super().__init__()
        owner = "KBBlock_s"
        c = _int_at_least(owner, "c", c, 1)
        dw_ch = int(c * _number(owner, "DW_Expand", DW_Expand))
        ffn_ch = int(_number(owner, "FFN_Expand", FFN_Expand) * c)
        nset = _int_at_least(owner, "nset", nset, 1)
        self.k = _odd_kernel(owner, "k", k)
        lightweight = _flag(owner, "lightweight", lightweight)
        if dw_ch // 2 != c:
            raise ConfigError(
                f"{owner}: DW_Expand={DW_Expand!r} gives conv3 int(c * DW_Expand) // 2 = "
                f"{dw_ch // 2} input channels, but its input has c = {c} (use DW_Expand=2)"
            )
        if ffn_ch < 2 or ffn_ch % 2:
            raise ConfigError(
                f"{owner}: FFN_Expand={FFN_Expand!r} gives {ffn_ch} FFN channels before the "
                "SimpleGate; need an even count >= 2"
            )
        if not lightweight:
            _check_conv_groups(owner, "conv11.1 (5x5 in c // 4 groups)", c, c // 4)
        self.g = kba_groups(owner, c, gc)
        self.c, self.nset = c, nset

        # created in the official order, so a seed gives the official initial weights
        self._make_bases(nset, c)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.sca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, c, kernel_size=1, padding=0, stride=1, groups=1, bias=True),
        )
        if lightweight:
            spatial = nn.Conv2d(c, c, 3, padding=1, stride=1, groups=c, bias=True)
        else:
            spatial = nn.Conv2d(c, c, 5, padding=2, stride=1, groups=c // 4, bias=True)
        self.conv11 = nn.Sequential(
            nn.Conv2d(c, c, kernel_size=1, padding=0, stride=1, groups=1, bias=True), spatial
        )
        self.conv1 = nn.Conv2d(c, c, kernel_size=1, padding=0, stride=1, groups=1, bias=True)
        self.conv21 = nn.Conv2d(c, c, kernel_size=3, padding=1, stride=1, groups=c, bias=True)
        self.conv2 = _kba_attention(owner, c, interc, min(c, 32), nset)
        self.conv211 = nn.Conv2d(c, nset, kernel_size=1)
        self.conv3 = nn.Conv2d(dw_ch // 2, c, kernel_size=1, padding=0, stride=1, bias=True)
        self.conv4 = nn.Conv2d(c, ffn_ch, kernel_size=1, padding=0, stride=1, bias=True)
        self.conv5 = nn.Conv2d(ffn_ch // 2, c, kernel_size=1, padding=0, stride=1, bias=True)
        self.dropout1 = nn.Identity()
        self.dropout2 = nn.Identity()
        self.ga1 = nn.Parameter(torch.zeros((1, c, 1, 1)) + 1e-2)
        self.attgamma = nn.Parameter(torch.zeros((1, nset, 1, 1)) + 1e-2)
        self.sg = SimpleGate()
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)) + 1e-2)
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)) + 1e-2)

    def forward(self, inp: Tensor) -> Tensor:
        x = self.norm1(inp)
        sca = self.sca(x)
        x1 = self.conv11(x)
        att = self.conv2(x) * self.attgamma + self.conv211(x)
        uf = self.conv21(self.conv1(x))
        x = self.KBA(uf, att) * self.ga1 + uf
        x = self.dropout1(self.conv3(x * x1 * sca))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + self.dropout2(x) * self.gamma
