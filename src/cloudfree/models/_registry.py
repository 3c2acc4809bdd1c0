"""Model registry: every architecture registers a builder under a name (timm style).

A registered entry records what a user needs to run the model correctly besides its weights:
the paper, the normalisation protocol its inputs use, the optical band set, and (optionally) a
converter that turns a state dict in the official repository's layout into ours.

Model modules register their builders at import time with :func:`register_model`;
:mod:`cloudfree.models` imports them all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cloudfree.errors import ConfigError

__all__ = [
    "ModelInfo",
    "OfficialConverter",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]

#: ``converter(official_state_dict) -> our_state_dict``; receives the unwrapped official state
#: dict (wrapper dicts and ``module.``/``net_G.`` prefixes already removed) and must raise
#: :class:`ConfigError` for keys it does not know. Size-tied buffers are dropped there.
OfficialConverter = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name."""

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    protocol: str
    bands: str = "all"  # a spec for cloudfree.bands.get_band_set
    description: str = ""
    temporal: bool = False
    default_kwargs: Mapping[str, Any] = field(default_factory=dict)
    official_converter: OfficialConverter | None = None
    official_repo: str | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    paper: str,
    protocol: str,
    bands: str = "all",
    description: str = "",
    temporal: bool = False,
    default_kwargs: Mapping[str, Any] | None = None,
    official_converter: OfficialConverter | None = None,
    official_repo: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``name``.

    ``default_kwargs`` are merged under the caller's kwargs (variants such as an ablation are
    registered as the same builder with different defaults).
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=builder,
            paper=paper,
            protocol=protocol,
            bands=bands,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            temporal=temporal,
            default_kwargs=dict(default_kwargs or {}),
            official_converter=official_converter,
            official_repo=official_repo,
        )
        return builder

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names (sorted), optionally filtered by a shell-style ``pattern``."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def get_model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; registered: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` with ``kwargs`` (over the entry's defaults).

    The returned module carries ``model.cloudfree_config``: the name, the full kwargs, the
    normalisation protocol and the band set, which :func:`save_pretrained` stores with the
    weights so that the model can be rebuilt from the directory alone.
    """
    info = get_model_info(name)
    merged = {**info.default_kwargs, **kwargs}
    try:
        model = info.builder(**merged)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for model {name!r}: {exc}") from None
    model.cloudfree_config = {  # type: ignore[assignment]
        "name": name,
        "kwargs": merged,
        "protocol": info.protocol,
        "bands": info.bands,
    }
    return model
