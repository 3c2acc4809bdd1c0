"""The MBConv inverted residual block and its squeeze-excitation, shared by UnCRtainTS and SG-BAF.

The block is the one of the official UnCRtainTS code (``PatrickTUM/UnCRtainTS``, under parity
tests in ``tests/test_uncrtaints.py``): its structure, parameter names and numbers at the
default ``kernel_size=3`` must not change. ``kernel_size`` (odd) widens the depth-wise conv for
other users (SG-BAF's multi-scale basic fusion, :mod:`cloudfree.models.sgbaf`).
"""

from __future__ import annotations

from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models.layers.norm import norm_layer

__all__ = ["MBConv", "SqueezeExcite"]


def _norm(kind: str, channels: int) -> nn.Module:
    layer = norm_layer(kind, channels)
    if layer is None:
        raise ConfigError("MBConv needs a norm (batch, instance or group)")
    return layer


class SqueezeExcite(nn.Module):
    """Channel gates from the global average (squeeze-excitation):
    ``x * sigmoid(Linear(GELU(Linear(mean_hw(x)))))``, ``hidden -> int(inp * expansion) ->
    hidden``, linear layers without bias (UnCRtainTS's ``SE``: the bottleneck is a fraction of
    the block's *input* width ``inp``, the gated tensor has ``hidden`` channels)."""

    def __init__(self, inp: int, hidden: int, expansion: float = 0.25) -> None:
        super().__init__()
        squeezed = int(inp * expansion)
        self.fc = nn.Sequential(
            nn.Linear(hidden, squeezed, bias=False),
            nn.GELU(),
            nn.Linear(squeezed, hidden, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module, norm: str) -> None:
        super().__init__()
        self.norm = _norm(norm, dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class MBConv(nn.Module):
    """Inverted residual block (expansion > 1, no down-sampling): ``x + fn(norm(x))`` with
    ``fn`` = 1x1 conv, norm, GELU, depth-wise ``kernel_size`` conv (reflect padding), norm,
    GELU, squeeze-excitation (bottleneck ``channels / 4``), 1x1 conv, norm; no biases in the
    convs. Keeps ``[B, channels, H, W]``; reflect padding needs H and W above
    ``kernel_size // 2``.

    Args:
        channels: input and output channels.
        expansion: hidden width ``int(channels * expansion)`` (UnCRtainTS: 2).
        norm: ``"batch"``, ``"instance"`` or ``"group"`` (4 groups).
        kernel_size: the depth-wise conv's size, odd (UnCRtainTS: 3).
    """

    def __init__(
        self, channels: int, expansion: float = 2, norm: str = "batch", kernel_size: int = 3
    ) -> None:
        super().__init__()
        odd = isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
        if not odd or kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"MBConv: kernel_size must be odd and >= 1, got {kernel_size!r}")
        hidden = int(channels * expansion)
        # created in this order (the official one): a seed gives UnCRtainTS's initial weights
        expand = [nn.Conv2d(channels, hidden, 1, bias=False), _norm(norm, hidden), nn.GELU()]
        depthwise = nn.Conv2d(
            hidden, hidden, kernel_size, padding=kernel_size // 2, padding_mode="reflect",
            groups=hidden, bias=False,
        )  # fmt: skip
        fn = nn.Sequential(
            *expand,
            depthwise,
            _norm(norm, hidden),
            nn.GELU(),
            SqueezeExcite(channels, hidden),
            nn.Conv2d(hidden, channels, 1, bias=False),
            _norm(norm, channels),
        )
        self.conv = _PreNorm(channels, fn, norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x)
