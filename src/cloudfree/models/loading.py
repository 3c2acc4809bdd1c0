"""Load a network from wherever weights live: the one loader behind ``cloudfree predict``,
``cloudfree evaluate``, ``cloudfree report --panels``, the demo and ``model.init_weights``.

Three kinds of path are accepted (:func:`load_model`):

* a **pretrained weights directory** (``config.json`` + ``model.safetensors``, written by
  :func:`cloudfree.models.save_pretrained`): the config rebuilds the model, so no name or
  constructor arguments are needed (a name, when given, must equal the config's; arguments are
  refused: the config holds them);
* a **training run directory** (:class:`RunLayout`): its ``weights/best`` when that holds
  weights, else ``weights/final`` (:func:`resolve_weights_dir`);
* an **official checkpoint file** (the authors' release): the architecture must be named and
  is built with the given arguments (:func:`cloudfree.models.load_official_checkpoint`).

What every output must record about the weights comes back with the network
(:class:`LoadedModel`): the registry name, the normalisation protocol and the band set (the
config's for our directories, the registry entry's for official checkpoints), the path
actually loaded, its SHA-256 and the kind of source (for an official checkpoint the
protocol is the entry's ``official_protocol`` where it has one: SpA-GAN's weights read 8-bit
images). The optical channel count of the model's spec must equal the band set's size. The
network is returned in eval mode on ``device``.

The run-directory layout is defined here (and only here); the trainer writes it
(:mod:`cloudfree.train.run`, :mod:`cloudfree.train.callbacks`) and the loader reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.bands import BandSet, get_band_set
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models.hub import CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "BEST_CKPT_NAME",
    "BEST_WEIGHTS",
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "FINAL_WEIGHTS",
    "LAST_CKPT",
    "PRETRAINED_FILES",
    "WEIGHTS_DIR",
    "LoadedModel",
    "RunLayout",
    "load_model",
    "resolve_weights_dir",
]

# ------------------------------------------------------------------------ run directory
#: ``<run>/config.yaml``: the resolved training config.
CONFIG_FILE = "config.yaml"
#: ``<run>/checkpoints/``: Lightning checkpoints (``last.ckpt``, ``best.ckpt``).
CHECKPOINT_DIR = "checkpoints"
#: ``<run>/checkpoints/last.ckpt``: the checkpoint a resume starts from.
LAST_CKPT = "last.ckpt"
#: File stem of the best val/loss Lightning checkpoint (``best.ckpt``).
BEST_CKPT_NAME = "best"
#: ``<run>/weights/``: pretrained directories exported during training.
WEIGHTS_DIR = "weights"
#: ``<run>/weights/best``: the best val/loss weights.
BEST_WEIGHTS = "best"
#: ``<run>/weights/final``: the weights at the end of training.
FINAL_WEIGHTS = "final"
#: The files of a pretrained weights directory.
PRETRAINED_FILES = (CONFIG_NAME, WEIGHTS_NAME)

_EXPECTED = (
    "expected a pretrained weights directory (config.json + model.safetensors) or a training "
    "run directory holding weights/best/ or weights/final/ with those files"
)


@dataclass(frozen=True)
class RunLayout:
    """Where a training run keeps its files::

    <run>/config.yaml                                   resolved config
    <run>/weights/best/{model.safetensors,config.json}  best val/loss weights
    <run>/weights/final/{model.safetensors,config.json} weights at the end
    <run>/checkpoints/last.ckpt, best.ckpt              Lightning checkpoints (resume)
    """

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST_CKPT

    @property
    def weights_dir(self) -> Path:
        return self.root / WEIGHTS_DIR

    @property
    def best_weights(self) -> Path:
        return self.weights_dir / BEST_WEIGHTS

    @property
    def final_weights(self) -> Path:
        return self.weights_dir / FINAL_WEIGHTS


def _has_pretrained_file(d: Path) -> bool:
    return any((d / name).exists() for name in PRETRAINED_FILES)


def resolve_weights_dir(path: str | os.PathLike[str]) -> Path:
    """The pretrained weights directory that the directory ``path`` designates.

    ``path`` is either a pretrained directory (``config.json`` + ``model.safetensors``), or a
    training run directory: then ``<run>/weights/best`` when it holds weights (or a config),
    else ``<run>/weights/final``. The chosen directory is not checked further here
    (:func:`cloudfree.models.load_pretrained` names any missing or unreadable file).

    Raises:
        InputFileError: ``path`` is missing, is a file, or is neither kind of directory.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, f"not found ({_EXPECTED})")
    if not p.is_dir():
        hint = (
            "; Lightning checkpoints are not loaded directly, pass the run directory"
            if p.suffix == ".ckpt"
            else ""
        )
        raise InputFileError(p, f"is a file, not a directory ({_EXPECTED}){hint}")
    if _has_pretrained_file(p):
        return p
    layout = RunLayout(p)
    for candidate in (layout.best_weights, layout.final_weights):
        if candidate.is_dir() and _has_pretrained_file(candidate):
            return candidate
    raise InputFileError(p, f"holds no model weights ({_EXPECTED})")


# -------------------------------------------------------------------------------- loading
@dataclass
class LoadedModel:
    """A network ready for inference and what the outputs must record about it.

    Attributes:
        model: the network (eval mode, on ``device``).
        name: its registry name.
        protocol: the normalisation protocol its inputs use.
        bands: the optical band set it takes.
        weights_path: the pretrained directory or the checkpoint file actually loaded.
        weights_sha256: SHA-256 of ``model.safetensors`` or of the checkpoint file.
        source: ``"pretrained"`` (one of our directories), ``"official"`` (a checkpoint) or
            ``"onnx"`` (an exported file run by onnxruntime).
        device: where the network is.
    """

    model: nn.Module
    name: str
    protocol: str
    bands: BandSet
    weights_path: Path
    weights_sha256: str
    source: str
    device: torch.device

    def require_cloud_removal(self) -> None:
        """Refuse a pre-training network (the ``sar_pretrain`` task: CA-MTCR's stage-1 SAR
        VQ-VAE) where a cloud-removal model is needed (predict, evaluate)."""
        from cloudfree.models.api import spec_of

        if "sar_pretrain" in spec_of(self.model).tasks:
            raise ConfigError(
                f"{self.weights_path} holds {self.name!r}, a SAR pre-training network (stage 1 "
                "of CA-MTCR) that removes no clouds; give it to stage 2 instead: cloudfree "
                "train --recipe ca_mtcr --set model.sar_encoder_init=<this run>"
            )


def _check_channels(model: nn.Module, bands: BandSet, name: str, where: Path) -> None:
    from cloudfree.models.api import spec_of

    try:
        spec_of(model).check_bands(bands.names)
    except ConfigError as exc:
        raise InputFileError(where, f"model {name!r}: {exc}") from None


def load_model(
    weights: str | os.PathLike[str],
    *,
    name: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    bands: str | Sequence[str] | BandSet | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load the network of a pretrained directory, a training run or an official checkpoint.

    Args:
        weights: pretrained directory, training run directory (:func:`resolve_weights_dir`),
            official checkpoint file, or ONNX file written by ``cloudfree models export``
            (run by onnxruntime: :func:`cloudfree.models.onnx_runtime.load_onnx`).
        name: registered model name; optional for a directory (must then match its config),
            required for an official checkpoint (``--model`` on the command line).
        kwargs: constructor arguments for an official checkpoint (refused for a directory).
        bands: the optical band set of an official checkpoint (default: the registry entry's,
            e.g. when ``kwargs`` narrow the input to RGB); refused for a directory (its config
            names its bands).
        device: where the model is loaded (resolve it first with
            :func:`cloudfree.devices.resolve_device`).

    Raises:
        InputFileError: nothing at ``weights``, no weights in the directory, unreadable or
            mismatching files.
        ConfigError: a name that does not match the directory's config, arguments given with a
            directory, a checkpoint file without a name.
    """
    # through the package namespace, so that a test can stand in for one of the loaders
    from cloudfree import models as zoo
    from cloudfree.models.onnx_runtime import is_onnx_file, load_onnx

    dev = torch.device(device)
    p = Path(weights)
    if p.is_file() and is_onnx_file(p):
        if kwargs or bands is not None:
            raise ConfigError(
                f"model arguments cannot be given with an ONNX file: {p} records them"
            )
        return load_onnx(p, name=name, device=dev)
    if not p.exists():
        raise InputFileError(p, f"weights not found ({_EXPECTED}, or an official checkpoint file)")
    if p.is_dir():
        wdir = resolve_weights_dir(p)
        cfg = zoo.read_pretrained_config(wdir)
        if name is not None and name != cfg["name"]:
            raise ConfigError(
                f"model {name!r} (--model) does not match the weights in {wdir}, which are a "
                f"{cfg['name']!r} model (leave the name out to use the config's)"
            )
        if kwargs or bands is not None:
            given = [*(kwargs or {}), *(["bands"] if bands is not None else [])]
            raise ConfigError(
                f"model arguments ({', '.join(given)}) cannot be given with a pretrained "
                f"directory: {wdir / CONFIG_NAME} holds them"
            )
        model = zoo.load_pretrained(wdir, map_location=dev)
        model_name = str(cfg["name"])
        info = zoo.get_model_info(model_name)
        protocol = str(cfg.get("protocol") or info.protocol)
        band_set = get_band_set(cfg.get("bands") or info.bands)
        sha = zoo.weights_sha256(wdir)
        source, path = "pretrained", wdir
    else:
        if name is None:
            raise ConfigError(
                f"{p} is a checkpoint file: name its architecture (--model NAME on the command "
                "line; a pretrained directory needs no name)"
            )
        model = zoo.load_official_checkpoint(name, p, map_location=dev, **dict(kwargs or {}))
        info = zoo.get_model_info(name)
        model_name, protocol = name, info.official_protocol or info.protocol
        band_set = get_band_set(info.bands if bands is None else bands)
        sha = zoo.weights_sha256(p)
        source, path = "official", p
    _check_channels(model, band_set, model_name, path)
    model.eval()
    return LoadedModel(
        model=model,
        name=model_name,
        protocol=protocol,
        bands=band_set,
        weights_path=path,
        weights_sha256=sha,
        source=source,
        device=dev,
    )
