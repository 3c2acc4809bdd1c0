"""The network for ``cloudfree predict``: :func:`cloudfree.models.load_model` plus predict's
own constraint.

Loading (pretrained directory, training run directory or official checkpoint; the name,
protocol, bands, weights path and SHA-256 that every output's tags record) lives in
:mod:`cloudfree.models.loading`, device resolution in :mod:`cloudfree.devices`; both are
re-exported here under their historical names. Predict adds one check: the model must be
mono-temporal (a scene is one date).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from cloudfree.devices import resolve_device
from cloudfree.errors import ConfigError
from cloudfree.models.loading import LoadedModel
from cloudfree.models.loading import load_model as _load_any

__all__ = ["LoadedModel", "load_model", "resolve_device"]


def load_model(
    weights: str | os.PathLike[str],
    *,
    name: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    temporal: bool = False,
) -> LoadedModel:
    """Load the network from a pretrained directory, a training run or an official checkpoint
    (:func:`cloudfree.models.load_model`) and check that it takes one date (``temporal=True``:
    a time series, for :func:`cloudfree.predict.predict_time_series`).

    Raises:
        ConfigError: a model of the other kind, or what :func:`cloudfree.models.load_model`
            raises.
        InputFileError: see :func:`cloudfree.models.load_model`.
    """
    from cloudfree.models import spec_of

    loaded = _load_any(weights, name=name, kwargs=kwargs, device=device)
    loaded.require_cloud_removal()
    is_temporal = spec_of(loaded.model).inputs.temporal
    if is_temporal and not temporal:
        raise ConfigError(
            f"model {loaded.name!r} is multi-temporal: give it a time series (several "
            "--optical and --sar files, or --series CSV)"
        )
    if temporal and not is_temporal:
        raise ConfigError(
            f"model {loaded.name!r} is mono-temporal: it takes one date (one --optical, one --sar)"
        )
    return loaded
