"""Normalisation layers by name, as the official U-TAE / UnCRtainTS code chooses them."""

from __future__ import annotations

from torch import nn

from cloudfree.errors import ConfigError

__all__ = ["NORMS", "norm_layer"]

#: Norm names (``"none"`` or None: no norm layer).
NORMS = ("batch", "instance", "group", "none")


def norm_layer(kind: str | None, channels: int, groups: int = 4) -> nn.Module | None:
    """``BatchNorm2d``, ``InstanceNorm2d`` (no affine, torch's default) or ``GroupNorm(groups)``
    over ``channels``; None for ``"none"`` / None. Raises :class:`ConfigError` for other names."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind is None or kind == "none":
        return None
    raise ConfigError(f"unknown norm {kind!r}; valid: {', '.join(NORMS)}")
