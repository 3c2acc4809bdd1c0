"""Stochastic depth (DropPath): drop whole residual branches per sample during training.

Huang et al., "Deep Networks with Stochastic Depth" (ECCV 2016), in the form used by Swin
Transformer: in training, each sample's branch output is zeroed with probability ``p`` and the
kept ones are scaled by ``1 / (1 - p)`` so that the expectation is unchanged; in eval mode (or with
``p == 0``) the input is returned unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from cloudfree.errors import ConfigError

__all__ = ["DropPath", "drop_path"]


def drop_path(x: Tensor, p: float = 0.0, training: bool = False) -> Tensor:
    """Zero each sample (first axis) of ``x`` with probability ``p``; rescale the rest.

    The random draw follows ``x``'s device and dtype. Identity when ``p == 0`` or not training.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask


class DropPath(nn.Module):
    """Module form of :func:`drop_path` with drop probability ``p`` in ``[0, 1)``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"DropPath: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
