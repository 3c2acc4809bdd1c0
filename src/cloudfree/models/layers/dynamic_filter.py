"""Per-pixel, per-channel dynamic filtering ("kernel convolution", FAC layer of STFAN).

Zhou et al., "Spatio-Temporal Filter Adaptive Network for Video Deblurring" (ICCV 2019),
used by GLF-CR's SAR-based local feature compensation. Every output element is filtered with its
own ``k x k`` kernel::

    pad = replicate_pad(x, k // 2)
    out[b, c, y, x] = sum_{ky, kx} pad[b, c, y + ky, x + kx] * kernel[b, c*k*k + ky*k + kx, y, x]

(the kernel tensor has ``C * k * k`` channels, channel-major, then row-major taps).

Implementation: the reference PyTorch fallback of the official code unfolds every ``k x k``
neighbourhood, which materialises ``k * k`` copies of the feature map plus a permuted copy of the
kernel tensor. Here the sum is accumulated tap by tap as ``k * k`` shifted multiply-adds over
views of the padded input and of the kernel tensor, so the extra memory is O(feature map) in the
forward pass. A custom autograd function gives the matching backward without autograd's
per-slice zero-filled buffers: ``grad_kernel`` (necessarily the kernel's size) is written tap by
tap, ``grad_input`` is accumulated into one padded buffer, and the replicate padding's backward is
left to autograd. Double backward is not supported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from cloudfree.errors import ConfigError

__all__ = ["dynamic_filter2d", "dynamic_filter2d_generated", "dynamic_filter2d_reference"]


class _KernelConv(torch.autograd.Function):
    """``out = sum_t padded[..., t-shifted window] * kernel[:, :, t]`` on a pre-padded input."""

    @staticmethod
    def forward(ctx: Any, padded: Tensor, kernel: Tensor, ksize: int) -> Tensor:
        b, c, hp, wp = padded.shape
        h, w = hp - ksize + 1, wp - ksize + 1
        taps = kernel.unflatten(1, (c, ksize * ksize))
        out = padded[:, :, :h, :w] * taps[:, :, 0]
        for t in range(1, ksize * ksize):
            ky, kx = divmod(t, ksize)
            out.addcmul_(padded[:, :, ky : ky + h, kx : kx + w], taps[:, :, t])
        ctx.save_for_backward(padded, kernel)
        ctx.ksize = ksize
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        padded, kernel = ctx.saved_tensors
        ksize = ctx.ksize
        b, c, hp, wp = padded.shape
        h, w = hp - ksize + 1, wp - ksize + 1
        taps = kernel.unflatten(1, (c, ksize * ksize))
        grad_padded = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_padded = padded.new_zeros(padded.shape)
            for t in range(ksize * ksize):
                ky, kx = divmod(t, ksize)
                grad_padded[:, :, ky : ky + h, kx : kx + w].addcmul_(grad_out, taps[:, :, t])
        if ctx.needs_input_grad[1]:
            grad_kernel = kernel.new_empty((b, c, ksize * ksize, h, w))
            for t in range(ksize * ksize):
                ky, kx = divmod(t, ksize)
                torch.mul(
                    grad_out, padded[:, :, ky : ky + h, kx : kx + w], out=grad_kernel[:, :, t]
                )
            grad_kernel = grad_kernel.view(b, c * ksize * ksize, h, w)
        return grad_padded, grad_kernel, None


def _check(x: Tensor, kernel: Tensor, ksize: int) -> None:
    if isinstance(ksize, bool) or not isinstance(ksize, int) or ksize < 1 or ksize % 2 == 0:
        raise ConfigError(
            f"dynamic_filter2d: kernel_size must be a positive odd int, got {ksize!r}"
        )
    if x.ndim != 4 or kernel.ndim != 4:
        raise ConfigError(
            "dynamic_filter2d: expected x [B, C, H, W] and kernel [B, C*k*k, H, W], got "
            f"{tuple(x.shape)} and {tuple(kernel.shape)}"
        )
    b, c, h, w = x.shape
    if tuple(kernel.shape) != (b, c * ksize * ksize, h, w):
        raise ConfigError(
            f"dynamic_filter2d: kernel must have shape {(b, c * ksize * ksize, h, w)} for x of "
            f"shape {tuple(x.shape)} and kernel_size {ksize}, got {tuple(kernel.shape)}"
        )


def dynamic_filter2d(x: Tensor, kernel: Tensor, kernel_size: int) -> Tensor:
    """Filter ``x [B, C, H, W]`` with per-pixel kernels ``kernel [B, C*k*k, H, W]``.

    Replicate padding keeps the size; see the module docstring for the exact indexing.
    Differentiable with respect to both ``x`` and ``kernel``.
    """
    _check(x, kernel, kernel_size)
    pad = kernel_size // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate") if pad else x
    return _KernelConv.apply(padded, kernel, kernel_size)


def dynamic_filter2d_generated(
    x: Tensor,
    features: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    kernel_size: int,
    *,
    negative_slope: float | None = None,
    chunk_bytes: int = 4 << 20,
) -> Tensor:
    """``dynamic_filter2d(x, act(conv1x1(features)), k)`` without materialising the kernels.

    ``weight`` ``[C*k*k, C_f, 1, 1]`` (or ``[C*k*k, C_f]``) and ``bias`` ``[C*k*k]`` are a 1x1
    convolution that generates the per-pixel kernels from ``features [B, C_f, H, W]``;
    ``negative_slope`` applies a LeakyReLU to them. Kernels are generated and applied one band
    of rows at a time (about ``chunk_bytes`` of kernels per band), so memory stays O(feature
    map) instead of ``k * k`` times the map, and the band stays in cache between generation and
    use. **No autograd**: the result is computed without recording a graph; use
    :func:`dynamic_filter2d` on explicitly generated kernels when gradients are needed.
    """
    b, c, h, w = x.shape
    k2 = kernel_size * kernel_size
    cf = features.shape[1]
    if features.ndim != 4 or features.shape[0] != b or tuple(features.shape[-2:]) != (h, w):
        raise ConfigError(
            "dynamic_filter2d_generated: features must be [B, C_f, H, W] matching x "
            f"{tuple(x.shape)}, got {tuple(features.shape)}"
        )
    if weight.numel() != c * k2 * cf:
        raise ConfigError(
            f"dynamic_filter2d_generated: weight must have {c * k2} x {cf} elements, got shape "
            f"{tuple(weight.shape)}"
        )
    with torch.no_grad():
        pad = kernel_size // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate") if pad else x
        wmat = weight.reshape(c * k2, cf)
        bcol = None if bias is None else bias.reshape(c * k2, 1)
        out = torch.empty_like(x)
        rows = max(1, chunk_bytes // max(1, c * k2 * w * x.element_size()))
        for i in range(b):
            feat = features[i].reshape(cf, h * w)
            for y0 in range(0, h, rows):
                y1 = min(h, y0 + rows)
                cols = feat[:, y0 * w : y1 * w]
                kern = wmat @ cols if bcol is None else torch.addmm(bcol, wmat, cols)
                if negative_slope is not None:
                    F.leaky_relu(kern, negative_slope, inplace=True)
                taps = kern.view(c, k2, y1 - y0, w)
                band = out[i, :, y0:y1]
                torch.mul(padded[i, :, y0:y1, :w], taps[:, 0], out=band)
                for t in range(1, k2):
                    ky, kx = divmod(t, kernel_size)
                    band.addcmul_(padded[i, :, y0 + ky : y1 + ky, kx : kx + w], taps[:, t])
    return out


def dynamic_filter2d_reference(x: Tensor, kernel: Tensor, kernel_size: int) -> Tensor:
    """Straightforward ``unfold`` version of :func:`dynamic_filter2d` (for tests only).

    Memory grows with ``k * k`` times the feature map; use :func:`dynamic_filter2d` instead.
    """
    _check(x, kernel, kernel_size)
    b, c, h, w = x.shape
    pad = kernel_size // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate") if pad else x
    patches = F.unfold(padded, kernel_size)  # [B, C*k*k, H*W], channel-major then row-major
    return (
        (patches.view(b, c * kernel_size**2, h, w) * kernel).view(b, c, kernel_size**2, h, w).sum(2)
    )
