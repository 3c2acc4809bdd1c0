"""Baselines: predictions made without a network, evaluated next to the models.

A baseline is a function ``fn(inputs, batch) -> Tensor`` registered under a name
(:func:`register_baseline`). It gets the model inputs of one collated batch
(:class:`cloudfree.models.ModelBatch`, on the evaluation device) and the batch itself (every
sample key: masks, ``cloud_cover``, ``id``, dates when the data have them), both in the
normalisation of the evaluation's reference protocol (the first model's), and returns the
prediction ``[B, C, H, W]`` in that same scaling, shaped like the target. The evaluation converts
it to reflectance and measures it exactly as a model's output.

Registered here:

* ``identity``: the cloudy input itself, the floor every paper reports.

Least-cloudy date and mosaicking baselines need multi-temporal samples; they will be registered
the same way when a temporal dataset exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from cloudfree.errors import ConfigError
from cloudfree.models.api import ModelBatch

__all__ = [
    "IDENTITY_NAME",
    "BaselineFn",
    "get_baseline",
    "identity_baseline",
    "list_baselines",
    "register_baseline",
]

#: Name under which the cloudy input, used as the prediction, is reported.
IDENTITY_NAME = "identity"

BaselineFn = Callable[[ModelBatch, Mapping[str, Any]], Tensor]

_BASELINES: dict[str, BaselineFn] = {}


def register_baseline(name: str) -> Callable[[BaselineFn], BaselineFn]:
    """Decorator registering ``fn(inputs, batch) -> Tensor`` as the baseline ``name``.

    Raises:
        ConfigError: ``name`` is already registered or is not a plain identifier (it becomes a
            column prefix ``<name>_<region>_<metric>`` of ``per_image.csv``).
    """
    if not name.isidentifier():
        raise ConfigError(f"a baseline name must be an identifier, got {name!r}")
    if name in _BASELINES:
        raise ConfigError(f"baseline {name!r} is already registered")

    def decorate(fn: BaselineFn) -> BaselineFn:
        _BASELINES[name] = fn
        return fn

    return decorate


def get_baseline(name: str) -> BaselineFn:
    """The registered baseline ``name``; :class:`ConfigError` naming the known ones otherwise."""
    try:
        return _BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; registered: {', '.join(sorted(_BASELINES))}"
        ) from None


def list_baselines() -> list[str]:
    """Names of the registered baselines, sorted."""
    return sorted(_BASELINES)


@register_baseline(IDENTITY_NAME)
def identity_baseline(inputs: ModelBatch, batch: Mapping[str, Any]) -> Tensor:
    """The cloudy optical input as the prediction."""
    return inputs.optical
