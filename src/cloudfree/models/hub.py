"""Save and load weights with the config that rebuilds the model (``save_pretrained`` /
``load_pretrained``), in the spirit of timm's pretrained configs and smp's hub mixin.

A pretrained directory holds two files:

* ``model.safetensors``: the state dict (no pickle);
* ``config.json``: ``{"format": "cloudfree.pretrained", "format_version": 1, "name",
  "kwargs", "protocol", "bands", "cloudfree_version", ...extra}``.

The directory alone rebuilds the model: ``load_pretrained(dir)`` calls
``create_model(name, **kwargs)`` and loads the tensors strictly. ``map_location`` decides
where the tensors go (CPU by default), so weights saved on a GPU load on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from cloudfree import __version__
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io.atomic import atomic_write_json, publish, temporary_sibling
from cloudfree.io.outputs import write_failure
from cloudfree.models._registry import create_model
from cloudfree.models.state import load_state_dict_strict

__all__ = [
    "CONFIG_NAME",
    "RESERVED_CONFIG_KEYS",
    "WEIGHTS_NAME",
    "load_pretrained",
    "read_pretrained_config",
    "save_pretrained",
    "weights_sha256",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "cloudfree.pretrained"
FORMAT_VERSION = 1
#: config.json keys written by :func:`save_pretrained` itself (``extra`` may not set them)
RESERVED_CONFIG_KEYS = frozenset(
    {"format", "format_version", "name", "kwargs", "protocol", "bands", "cloudfree_version"}
)


def _model_config(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "cloudfree_config", None)
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ConfigError(
            "this model was not built by cloudfree.models.create_model, so its name and "
            "arguments are unknown; build it with create_model(name, **kwargs)"
        )
    return cfg


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    protocol: str | None = None,
    bands: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``; return it.

    Both files are written atomically. ``protocol`` and ``bands`` record the data conventions
    the weights were trained with when they differ from the model's (``model.cloudfree_config``;
    :func:`load_pretrained` applies them). ``extra`` adds JSON-serialisable fields to the config
    (for example the training recipe or the metrics of the run); it may not set the keys that
    rebuild the model (:data:`RESERVED_CONFIG_KEYS`, or any ``format*`` key), so a config
    always describes the weights next to it.

    Raises:
        ConfigError: ``extra`` names a reserved key; the model was not built by
            :func:`~cloudfree.models.create_model`.
    """
    reserved = sorted(
        k for k in (extra or {}) if k in RESERVED_CONFIG_KEYS or k.startswith("format")
    )
    if reserved:
        raise ConfigError(
            f"save_pretrained(extra=...) may not set the reserved config key(s) {reserved}: "
            "they rebuild the model (pass protocol= / bands= for the data conventions)"
        )
    cfg = dict(_model_config(model))
    if protocol is not None:
        cfg["protocol"] = protocol
    if bands is not None:
        cfg["bands"] = bands
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage (tied parameters)
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    tmp = temporary_sibling(out / WEIGHTS_NAME)
    try:
        try:
            save_file(state, str(tmp), metadata={"format": "pt", "name": cfg["name"]})
        except (OSError, SafetensorError) as exc:  # full disk, I/O error: name the file
            raise write_failure(out / WEIGHTS_NAME, exc) from None
        publish(tmp, out / WEIGHTS_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **cfg,
        "cloudfree_version": __version__,
        **(extra or {}),
    }
    atomic_write_json(out / CONFIG_NAME, config)
    return out


def read_pretrained_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``config.json`` of a pretrained directory."""
    d = Path(directory)
    path = d / CONFIG_NAME
    if not d.is_dir():
        raise InputFileError(d, "pretrained weights directory not found")
    if not path.is_file():
        raise InputFileError(path, "file not found (a pretrained directory needs config.json)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"is not valid JSON ({exc})") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or "name" not in cfg:
        raise InputFileError(path, "is not a cloudfree pretrained config")
    version = cfg.get("format_version", 0)
    if not isinstance(version, int) or not isinstance(cfg.get("kwargs", {}), dict):
        raise InputFileError(
            path, "is not a cloudfree pretrained config (format_version or kwargs malformed)"
        )
    if version > FORMAT_VERSION:
        raise InputFileError(
            path,
            f"format version {cfg['format_version']} is newer than this cloudfree "
            f"({__version__}) understands",
        )
    return cfg


def _safetensors_problem(path: Path, exc: BaseException) -> str:
    """One line for a ``model.safetensors`` that does not load (empty, truncated, corrupt)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes), not a safetensors file; copy or save the weights again"
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    kind = "truncated or corrupt" if isinstance(exc, SafetensorError) else "corrupt"
    return f"is a {kind} safetensors file ({size} bytes: {detail}); copy or save it again"


def load_pretrained(
    directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild the model saved in ``directory`` and load its weights (eval mode)."""
    d = Path(directory)
    cfg = read_pretrained_config(d)
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise InputFileError(weights, "file not found")
    model = create_model(cfg["name"], **cfg.get("kwargs", {}))
    # the data conventions the weights were trained with win over the registry defaults
    for key in ("protocol", "bands"):
        if key in cfg:
            model.cloudfree_config[key] = cfg[key]
    try:
        state = load_file(str(weights), device=str(map_location))
    except OSError as exc:
        raise InputFileError(weights, f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # SafetensorError, or anything a corrupt header makes it raise
        raise InputFileError(weights, _safetensors_problem(weights, exc)) from None
    try:
        load_state_dict_strict(model, state)
    except ConfigError as exc:
        raise InputFileError(weights, f"weights do not fit model {cfg['name']!r}: {exc}") from None
    model.to(map_location)
    return model.eval()


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weights file (or of ``model.safetensors`` in a pretrained directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
