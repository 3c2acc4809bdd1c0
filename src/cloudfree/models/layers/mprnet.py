"""MPRNet building blocks: channel attention (``CALayer``), the channel-attention block
(``CAB``) and the original-resolution block (``ORB``) of Zamir et al., "Multi-Stage Progressive
Image Restoration" (CVPR 2021; ``swz30/MPRNet``, ``{Deraining,Denoising,Deblurring}/MPRNet.py``,
identical in the three folders).

The modules have the official constructor arguments (names and positional order), state-dict
keys and numerics (parity cases ``mprnet_cab`` and ``mprnet_orb``) and are called as the
official ones, ``y = block(x)``. MMCANet / MPIR (paper 000, no official code) use them.

Official behaviour, kept:

* :func:`conv` pads by ``k // 2`` and has no bias unless asked (``kernel_size`` must be odd here,
  or the residual sums would not fit; the official code would fail in the forward).
* **One activation module shared by every CAB.** MPRNet builds a single ``nn.PReLU()`` (one
  learnable slope, init 0.25) and passes the same instance to every CAB of the network, so the
  slope is one parameter that sits in each CAB's ``body.1`` and the state dict repeats it under
  every CAB's key. :class:`CAB` and :class:`ORB` take the module as ``act`` and put that very
  instance into every CAB (``act=None`` makes one new ``nn.PReLU()``; an :class:`ORB` shares it
  among its CABs). Loading an official state dict copies the repeated value into the one
  parameter; :func:`check_shared_copies` verifies that the copies agree.
* :class:`CAB`: ``x + CA(conv(act(conv(x))))``; the official ``res += x`` is an in-place add on
  the attention output (a fresh tensor), here an ordinary add: the same numbers.
* :class:`CALayer`: global average pool, 1x1 conv ``C -> C // r``, ReLU, 1x1 conv back,
  sigmoid, multiply; both 1x1 convs follow the ``bias`` flag.
* :class:`ORB`: ``num_cab`` CABs, then a ``k x k`` conv that **never has a bias** (the official
  ``ORB`` ignores its ``bias`` flag there), plus the input.
* Initialisation: PyTorch's defaults (MPRNet applies none of its own); the layers are created
  in the official order, so a seed gives the official initial weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from cloudfree.errors import ConfigError

__all__ = ["CAB", "CALayer", "ORB", "check_shared_copies", "conv"]


def _int_at_least(owner: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _flag(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def _act(owner: str, act: nn.Module | None) -> nn.Module:
    if act is None:
        return nn.PReLU()
    if not isinstance(act, nn.Module):
        raise ConfigError(
            f"{owner}: act must be an nn.Module (MPRNet passes one nn.PReLU()), got {act!r}"
        )
    return act


def conv(
    in_channels: int, out_channels: int, kernel_size: int, bias: bool = False, stride: int = 1
) -> nn.Conv2d:
    """MPRNet's ``conv``: ``nn.Conv2d`` with padding ``kernel_size // 2``, no bias by default."""
    k = _int_at_least("MPRNet conv", "kernel_size", kernel_size, 1)
    if k % 2 == 0:
        raise ConfigError(
            f"MPRNet conv: kernel_size must be odd (padding k // 2 keeps the size), got {k}"
        )
    return nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=bias, stride=stride)


class CALayer(nn.Module):
    """Channel attention ``CALayer(channel, reduction=16, bias=False)``:
    ``x * sigmoid(conv_du(avgpool(x)))`` with ``conv_du`` = 1x1 ``C -> C // r``, ReLU, 1x1
    ``C // r -> C``, sigmoid (keys ``conv_du.0``, ``conv_du.2``)."""

    def __init__(self, channel: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        channel = _int_at_least("CALayer", "channel", channel, 1)
        reduction = _int_at_least("CALayer", "reduction", reduction, 1)
        bias = _flag("CALayer", "bias", bias)
        if channel // reduction < 1:
            raise ConfigError(
                f"CALayer: channel // reduction = {channel} // {reduction} = 0 channels; "
                "choose reduction <= channel"
            )
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):
    """Channel-attention block ``CAB(n_feat, kernel_size, reduction, bias, act)``:
    ``x + CA(conv(act(conv(x))))`` (keys ``body.0``, ``body.1`` (the act), ``body.2``, ``CA.*``).

    ``act`` is used as given, not copied (MPRNet shares one ``nn.PReLU()`` among all CABs);
    ``None`` makes a new ``nn.PReLU()``. Defaults are MPRNet's (``k=3``, ``reduction=4``,
    ``bias=False``); the official signature has none. Param count of ``CAB(56)``: 58,017.
    """

    def __init__(
        self,
        n_feat: int,
        kernel_size: int = 3,
        reduction: int = 4,
        bias: bool = False,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        n_feat = _int_at_least("CAB", "n_feat", n_feat, 1)
        bias = _flag("CAB", "bias", bias)
        act = _act("CAB", act)
        body = [conv(n_feat, n_feat, kernel_size, bias=bias), act]
        body.append(conv(n_feat, n_feat, kernel_size, bias=bias))
        self.CA = CALayer(n_feat, reduction, bias=bias)
        self.body = nn.Sequential(*body)

    @property
    def act(self) -> nn.Module:
        """The activation module (shared with the other CABs of an :class:`ORB`)."""
        return self.body[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.CA(self.body(x)) + x


class ORB(nn.Module):
    """Original-resolution block ``ORB(n_feat, kernel_size, reduction, act, bias, num_cab)``:
    ``x + conv(CAB_n(...CAB_1(x)))``; keys ``body.0 .. body.{num_cab-1}`` (the CABs) and
    ``body.{num_cab}`` (the closing conv, never with a bias, whatever ``bias`` says).

    Every CAB gets the same ``act`` instance (``None``: one new ``nn.PReLU()`` for all), as in
    MPRNet; :meth:`parameters` counts the shared slope once (``ORB(40, num_cab=8)``: 251,201).
    Defaults are MPRNet's Deraining values (``k=3``, ``reduction=4``, ``bias=False``, 8 CABs).
    """

    def __init__(
        self,
        n_feat: int,
        kernel_size: int = 3,
        reduction: int = 4,
        act: nn.Module | None = None,
        bias: bool = False,
        num_cab: int = 8,
    ) -> None:
        super().__init__()
        n_feat = _int_at_least("ORB", "n_feat", n_feat, 1)
        num_cab = _int_at_least("ORB", "num_cab", num_cab, 0)
        act = _act("ORB", act)
        body: list[nn.Module] = [
            CAB(n_feat, kernel_size, reduction, bias=bias, act=act) for _ in range(num_cab)
        ]
        body.append(conv(n_feat, n_feat, kernel_size))  # the official ORB: no bias here
        self.body = nn.Sequential(*body)
        self.num_cab = num_cab

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


def check_shared_copies(state: Mapping[str, Tensor], groups: Iterable[Iterable[str]]) -> None:
    """Raise :class:`ConfigError` unless, in each group of keys, the present entries of
    ``state`` are equal tensors.

    A module shared by several parents (MPRNet's single PReLU) appears in a state dict once per
    parent; loading copies every entry into the same parameter, so entries that differ (a file
    from a network with one act per CAB) would load silently as the last one.
    """
    for keys in groups:
        present = [k for k in keys if k in state]
        first = present[0] if present else None
        for key in present[1:]:
            a, b = state[first], state[key]  # type: ignore[index]
            if a.shape != b.shape or not torch.equal(a, b):
                raise ConfigError(
                    f"{key} differs from {first}, but both are the one shared activation module "
                    "of the official network (one act for every CAB)"
                )
