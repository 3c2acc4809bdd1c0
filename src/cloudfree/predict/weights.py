"""Load the network for ``cloudfree predict``: a pretrained directory or an official checkpoint.

Decisions:

* ``weights`` that is a **directory** is one of ours (``config.json`` + ``model.safetensors``,
  or a training run directory, resolved as :func:`cloudfree.evaluate.resolve_weights_dir` does:
  ``weights/best``, else ``weights/final``). The config rebuilds the model, so ``name`` is
  optional; when given it must equal the config's ``name`` (a mismatch is an error, never a
  silent choice). Constructor arguments (``kwargs``) are not allowed then: they come from the
  config.
* ``weights`` that is a **file** is an official checkpoint: ``name`` is required and the model is
  built by :func:`cloudfree.models.load_official_checkpoint` with ``kwargs``.
* The normalisation protocol and the optical band set are the config's (pretrained) or the
  registry entry's (official). The optical channel count of the model's spec
  (:func:`cloudfree.models.spec_of`) must equal the band set's size.
* The weights' SHA-256 (of ``model.safetensors`` or of the checkpoint file) is recorded in every
  output's tags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.bands import BandSet, get_band_set
from cloudfree.errors import ConfigError, InputFileError

__all__ = ["LoadedModel", "load_model", "resolve_device"]


@dataclass
class LoadedModel:
    """A network ready for inference and what the outputs must record about it."""

    model: nn.Module
    name: str
    protocol: str
    bands: BandSet
    weights_path: Path
    weights_sha256: str
    source: str  # "pretrained" or "official"
    device: torch.device


def resolve_device(
    device: str | torch.device = "cpu", *, local_rank: int | None = None
) -> torch.device:
    """The torch device to run on; ``cuda`` becomes ``cuda:<local_rank>`` under torchrun.

    Raises :class:`ConfigError` for an unknown device, or CUDA requested where it is not
    available (or an index beyond the visible GPUs).
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} requested but CUDA is not available here "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        if dev.index is None and local_rank is not None:
            dev = torch.device("cuda", local_rank)
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device cuda:{index} requested but only {torch.cuda.device_count()} GPU(s) "
                "are visible"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(device)!r} requested but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {str(device)!r}; use cpu or cuda")
    return dev


def _check_channels(model: nn.Module, bands: BandSet, name: str, where: Path) -> None:
    from cloudfree.models import spec_of

    n = spec_of(model).inputs.optical_channels
    if n is not None and n != len(bands):
        raise InputFileError(
            where,
            f"model {name!r} takes {n} optical channels but its band set has {len(bands)} "
            f"bands ({','.join(bands.names)})",
        )


def load_model(
    weights: str | os.PathLike[str],
    *,
    name: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load the network from a pretrained directory or an official checkpoint file.

    Args:
        weights: pretrained directory (or training run directory), or official checkpoint file.
        name: registered model name; optional for a directory (must then match its config),
            required for an official checkpoint.
        kwargs: constructor arguments for an official checkpoint (not allowed for a directory).
        device: where the model runs (already resolved, see :func:`resolve_device`).
    """
    from cloudfree.evaluate.model_eval import resolve_weights_dir
    from cloudfree.models import (
        get_model_info,
        load_official_checkpoint,
        load_pretrained,
        read_pretrained_config,
        weights_sha256,
    )

    dev = torch.device(device)
    p = Path(weights)
    if not p.exists():
        raise InputFileError(p, "weights not found (expected a pretrained directory or a file)")
    if p.is_dir():
        wdir = resolve_weights_dir(p)
        cfg = read_pretrained_config(wdir)
        if name is not None and name != cfg["name"]:
            raise ConfigError(
                f"--model {name!r} does not match the weights in {wdir}, which are a "
                f"{cfg['name']!r} model (leave --model out to use the config's name)"
            )
        if kwargs:
            raise ConfigError(
                f"model arguments ({', '.join(kwargs)}) cannot be given with a pretrained "
                f"directory: {wdir / 'config.json'} holds them"
            )
        model = load_pretrained(wdir, map_location=dev)
        model_name = str(cfg["name"])
        info = get_model_info(model_name)
        protocol = str(cfg.get("protocol") or info.protocol)
        bands = get_band_set(cfg.get("bands") or info.bands)
        sha = weights_sha256(wdir)
        source, path = "pretrained", wdir
    else:
        if name is None:
            raise ConfigError(
                f"{p} is a checkpoint file: name its architecture with --model "
                "(a pretrained directory needs no --model)"
            )
        model = load_official_checkpoint(name, p, map_location=dev, **dict(kwargs or {}))
        info = get_model_info(name)
        model_name, protocol, bands = name, info.protocol, get_band_set(info.bands)
        sha = weights_sha256(p)
        source, path = "official", p
    if (
        get_model_info(model_name)
        .resolve_spec(getattr(model, "cloudfree_config", {}).get("kwargs"))
        .inputs.temporal
    ):
        raise ConfigError(f"model {model_name!r} is multi-temporal; predict takes one date")
    _check_channels(model, bands, model_name, path)
    model.eval()
    return LoadedModel(
        model=model,
        name=model_name,
        protocol=protocol,
        bands=bands,
        weights_path=path,
        weights_sha256=sha,
        source=source,
        device=dev,
    )
