"""Adaptive max pooling that traces with dynamic sizes.

``F.adaptive_max_pool2d`` of a symbolic H x W to a fixed output becomes, in an ONNX graph, a
pooling whose kernel and stride are those of the traced size (ONNX has no adaptive pooling),
so the file is wrong at every other size. :func:`adaptive_max_pool2d_gather` computes the same
bins with index arithmetic on the input's sizes instead: output cell ``i`` of ``n`` covers rows
``floor(i H / n)`` to ``ceil((i + 1) H / n)`` (exclusive), torch's definition, and every bin
is read as a fixed number of rows, ``H // n + 2``, with the rows past the bin's end replaced by
its last row (which leaves the maximum unchanged). The two axes are pooled one after the other
(the maximum over a rectangle is the maximum over its rows of the maxima over its columns).
The result equals ``F.adaptive_max_pool2d`` exactly (``tests/test_uncrtaints.py``); it is used
only while exporting, as it reads about ``1 + 2 n / H`` times the input.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adaptive_max_pool2d_gather"]


def _bins(length: int, n: int, device: torch.device) -> Tensor:
    """``[n, L]`` input indices of the ``n`` adaptive bins over ``length`` (last index
    repeated to a common length L)."""
    i = torch.arange(n, device=device)
    start = (i * length) // n
    end = ((i + 1) * length + n - 1) // n  # ceil((i + 1) * length / n)
    steps = torch.arange(length // n + 2, device=device)
    return torch.minimum(start[:, None] + steps[None, :], (end - 1)[:, None])


def _pool_last_axis(x: Tensor, n: int) -> Tensor:
    idx = _bins(x.shape[-1], n, x.device)
    picked = x.index_select(-1, idx.flatten())
    return picked.unflatten(-1, idx.shape).amax(dim=-1)


def adaptive_max_pool2d_gather(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.adaptive_max_pool2d(x, size)`` for ``x`` of shape ``[..., H, W]``, traceable with
    symbolic H and W (see the module docstring)."""
    out_h, out_w = size
    x = _pool_last_axis(x, out_w)
    return _pool_last_axis(x.transpose(-1, -2), out_h).transpose(-1, -2)
