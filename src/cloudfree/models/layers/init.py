"""Weight initialisers shared by the re-implemented networks."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["trunc_normal_"]


def trunc_normal_(
    tensor: Tensor, std: float = 0.02, mean: float = 0.0, a: float = -2.0, b: float = 2.0
) -> Tensor:
    """Fill ``tensor`` in place from N(mean, std^2) truncated to the absolute interval [a, b].

    This is the convention of ``timm``'s ``trunc_normal_`` that Swin-style code calls as
    ``trunc_normal_(t, std=.02)``: the bounds ``a``/``b`` are absolute values (not multiples of
    ``std``), so with the defaults the truncation at +-2 never bites for std 0.02.
    """
    with torch.no_grad():
        return torch.nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)
