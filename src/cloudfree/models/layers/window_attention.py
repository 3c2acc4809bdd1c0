"""Swin-style window helpers: partition/reverse, relative position index, shifted-window mask.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
(ICCV 2021). Nothing here holds learnable state or depends on one input size at construction:
masks are built for the size actually seen and cached by :class:`ShiftMaskCache`, so no
size-tied tensor ever enters a ``state_dict``.

Conventions (those of the Swin reference and of every network in this package that uses it):

* Feature maps are channels-last ``[B, H, W, C]``; windows are ``[B * nW, N, C]`` with
  ``N = window_size ** 2``, windows in row-major order (window row, then window column), tokens
  inside a window in row-major order, and the batch as the outermost axis.
* The relative position index of tokens ``i = (yi, xi)`` and ``j = (yj, xj)`` of one window is
  ``(yi - yj + ws - 1) * (2 ws - 1) + (xi - xj + ws - 1)``, an index into a table of
  ``(2 ws - 1) ** 2`` rows.
* The shifted-window mask is for a map that was cyclically rolled by ``-shift`` on both axes:
  each axis is split into the regions ``[0, n - ws)``, ``[n - ws, n - shift)`` and
  ``[n - shift, n)``; tokens of one window in different (row region, column region) cells may
  not attend to each other, which the mask expresses as ``value`` added to their logit (``0``
  otherwise). Swin uses ``-100``; ``-inf`` gives exact zeros after the softmax and avoids the
  denormal numbers that ``exp(-100 + x)`` produces in float32, which slow CPU softmax several
  times over (each softmax row keeps its diagonal, so it never becomes all ``-inf``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

__all__ = [
    "ShiftMaskCache",
    "relative_position_index",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]

#: logit offset for token pairs that a shifted window must not connect (Swin's value)
MASK_VALUE = -100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """``[B, H, W, C]`` -> ``[B * nW, ws * ws, C]``; H and W must be multiples of ``ws``."""
    b, h, w, c = x.shape
    ws = window_size
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, ws * ws, C]`` -> ``[B, H, W, C]``."""
    ws = window_size
    c = windows.shape[-1]
    x = windows.view(-1, height // ws, width // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


def relative_position_index(window_size: int, device: torch.device | None = None) -> Tensor:
    """``[N, N]`` long tensor of table rows for every token pair of a ``ws x ws`` window."""
    ws = window_size
    ys, xs = torch.meshgrid(
        torch.arange(ws, device=device), torch.arange(ws, device=device), indexing="ij"
    )
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + (ws - 1)
    dx = xs[:, None] - xs[None, :] + (ws - 1)
    return dy * (2 * ws - 1) + dx


def _region_ids(n: int, window_size: int, shift: int, device: torch.device | None) -> Tensor:
    idx = torch.arange(n, device=device)
    return (idx >= n - window_size).long() + (idx >= n - shift).long()


def shifted_window_mask(
    height: int,
    width: int,
    window_size: int,
    shift: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    value: float = MASK_VALUE,
) -> Tensor:
    """``[nW, N, N]`` additive mask (0 / ``value``) for windows of a map rolled by ``-shift``."""
    ws = window_size
    ids = _region_ids(height, ws, shift, device)[:, None] * 3
    ids = ids + _region_ids(width, ws, shift, device)[None, :]  # [H, W]
    ids = ids.view(height // ws, ws, width // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    differ = ids[:, None, :] != ids[:, :, None]
    zero = torch.zeros((), device=device, dtype=dtype)
    return torch.where(differ, torch.full_like(zero, value), zero)


class ShiftMaskCache:
    """Small LRU cache of :func:`shifted_window_mask` results keyed by size, device and dtype.

    Held as a plain attribute of a module (never a buffer), so it is not part of the state dict;
    the cached masks must be treated as read-only. ``value`` is the logit offset of masked pairs.
    """

    def __init__(self, maxsize: int = 8, value: float = MASK_VALUE) -> None:
        self.maxsize = maxsize
        self.value = value
        self._masks: OrderedDict[tuple, Tensor] = OrderedDict()

    def get(
        self,
        height: int,
        width: int,
        window_size: int,
        shift: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor:
        key = (height, width, window_size, shift, str(device), dtype)
        mask = self._masks.get(key)
        if mask is None:
            mask = shifted_window_mask(
                height, width, window_size, shift, device=device, dtype=dtype, value=self.value
            )
            self._masks[key] = mask
            while len(self._masks) > self.maxsize:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(key)
        return mask

    def clear(self) -> None:
        self._masks.clear()

    def __len__(self) -> int:
        return len(self._masks)
