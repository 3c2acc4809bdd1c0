"""Loss registry: name -> loss class, and :func:`build_loss` for configuration files."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from cloudfree.errors import ConfigError

__all__ = ["LOSSES", "build_loss", "list_losses", "register_loss"]

#: Registered losses, ``name -> nn.Module subclass``. Filled by :func:`register_loss` when
#: :mod:`cloudfree.losses` is imported.
LOSSES: dict[str, type[nn.Module]] = {}

_T = TypeVar("_T", bound=type[nn.Module])


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_loss(name: str) -> Callable[[_T], _T]:
    """Class decorator registering a loss module under ``name`` (and setting ``cls.name``)."""
    key = _normalise_name(name)

    def decorator(cls: _T) -> _T:
        if key in LOSSES:
            raise ConfigError(f"loss {key!r} is already registered")
        cls.name = key  # type: ignore[attr-defined]
        LOSSES[key] = cls
        return cls

    return decorator


def list_losses() -> list[str]:
    """Registered loss names, sorted."""
    return sorted(LOSSES)


def _init_params(cls: type[nn.Module]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {k: p for k, p in params.items() if k != "self" and p.kind is not p.VAR_KEYWORD}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered loss ``name`` with keyword arguments ``kwargs``.

    Names are case-insensitive and ``-`` counts as ``_``.

    Raises:
        ConfigError: unknown name (the message lists the registered names), an argument the
            loss does not take (the message names it and lists the valid ones) or a bad value.
    """
    if not isinstance(name, str):
        raise ConfigError(f"loss name must be a string, got {type(name).__name__}")
    key = _normalise_name(name)
    cls = LOSSES.get(key)
    if cls is None:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(list_losses())}")
    params = _init_params(cls)
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        valid = ", ".join(params) if params else "none"
        raise ConfigError(
            f"loss {key!r} got unexpected argument(s) {', '.join(map(repr, unknown))}; "
            f"valid arguments: {valid}"
        )
    return cls(**kwargs)
