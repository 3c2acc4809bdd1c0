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

* ``least_cloudy``, ``mosaic``, ``most_recent_clear``: the temporal composites of
  :mod:`cloudfree.models.composites` on the input dates, with a date counted as not clear where
  the sample's per-date ``cloud_masks`` or ``shadow_masks`` say so; time series only. For a time
  series ``identity`` is the last real input date (the cloudy date to restore under the
  ``ca_mtcr`` sampler).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from cloudfree.errors import ConfigError, DatasetError
from cloudfree.models.api import ModelBatch
from cloudfree.models.composites import least_cloudy, mosaic, most_recent_clear
from cloudfree.series import last_real_date

__all__ = [
    "IDENTITY_NAME",
    "TEMPORAL_BASELINES",
    "BaselineFn",
    "get_baseline",
    "identity_baseline",
    "list_baselines",
    "register_baseline",
]

#: Name under which the cloudy input, used as the prediction, is reported.
IDENTITY_NAME = "identity"
#: The temporal composites reported next to every model on a time-series dataset.
TEMPORAL_BASELINES: tuple[str, ...] = ("least_cloudy", "mosaic", "most_recent_clear")

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
    """The cloudy optical input as the prediction; for a time series the last real input date
    (under the ``ca_mtcr`` sampler the cloudy date to restore)."""
    if not inputs.temporal:
        return inputs.optical
    b, t = inputs.optical.shape[:2]
    last = last_real_date(inputs.time_mask, t).to(inputs.optical.device).expand(b)
    return inputs.optical[torch.arange(b, device=inputs.optical.device), last]


def _cloudy_dates(inputs: ModelBatch, batch: Mapping[str, Any], name: str) -> Tensor:
    if not inputs.temporal:
        raise ConfigError(f"baseline {name!r} needs time series; this dataset is mono-temporal")
    if "cloud_masks" not in batch:
        raise DatasetError(f"baseline {name!r} needs per-date 'cloud_masks' in the samples")
    dev = inputs.optical.device
    cloudy = batch["cloud_masks"].to(dev) > 0.5
    if "shadow_masks" in batch:
        cloudy |= batch["shadow_masks"].to(dev) > 0.5
    return cloudy


@register_baseline("least_cloudy")
def least_cloudy_baseline(inputs: ModelBatch, batch: Mapping[str, Any]) -> Tensor:
    """The least cloudy input date (:func:`cloudfree.models.composites.least_cloudy`)."""
    cloudy = _cloudy_dates(inputs, batch, "least_cloudy")
    return least_cloudy(inputs.optical, cloudy, inputs.time_mask)[0]


@register_baseline("mosaic")
def mosaic_baseline(inputs: ModelBatch, batch: Mapping[str, Any]) -> Tensor:
    """Mean of the clear observations (:func:`cloudfree.models.composites.mosaic`)."""
    cloudy = _cloudy_dates(inputs, batch, "mosaic")
    return mosaic(inputs.optical, cloudy, inputs.time_mask)[0]


@register_baseline("most_recent_clear")
def most_recent_clear_baseline(inputs: ModelBatch, batch: Mapping[str, Any]) -> Tensor:
    """The latest clear observation on or before the target date
    (:func:`cloudfree.models.composites.most_recent_clear`)."""
    cloudy = _cloudy_dates(inputs, batch, "most_recent_clear")
    target_date = batch.get("target_date")
    if target_date is not None:
        target_date = torch.as_tensor(target_date).to(inputs.optical.device)
    return most_recent_clear(inputs.optical, cloudy, inputs.time_mask, inputs.dates, target_date)[0]
