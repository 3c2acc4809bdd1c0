"""Spatial padding of inputs whose size a network cannot take as they are."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_bottom_right", "padding_to_multiple"]


def padding_to_multiple(size: int, multiple: int, minimum: int = 1) -> int:
    """Rows (or columns) to add to ``size`` to reach the smallest multiple of ``multiple``
    that is at least ``minimum``."""
    target = max(-(-size // multiple) * multiple, -(-minimum // multiple) * multiple)
    return target - size


def pad_bottom_right(x: Tensor, ph: int, pw: int) -> Tensor:
    """``x [..., C, H, W]`` with ``ph`` rows added at the bottom and ``pw`` columns at the
    right: reflected when both pads are smaller than the image (so no edge row is repeated),
    replicated otherwise (reflection cannot pad by the image size or more). Any leading
    dimensions (batch, dates) are kept; ``x`` itself is returned when nothing is added."""
    if not (ph or pw):
        return x
    h, w = x.shape[-2:]
    mode = "reflect" if ph < h and pw < w else "replicate"
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.pad(flat, (0, pw, 0, ph), mode=mode)
    return out.reshape(*lead, *out.shape[-3:])
