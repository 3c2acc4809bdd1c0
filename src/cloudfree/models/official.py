"""Load checkpoints written by the official repositories.

Supported wrappers (detected from the file, whatever the model):

* GLF-CR ``torch.save({'network': state_dict})`` (``<epoch>_net_CR.pth``);
* thoailt/Cloud-Removal (CARF) ``{'epoch', 'model_state_dict', 'optimizers_state_dicts'}`` with
  every key prefixed ``net_G.``;
* UnCRtainTS-style ``{'state_dict': ...}``;
* a bare state dict (DSen2-CR's PyTorch port, pix2pix-style ``save_networks``);

``module.`` (DataParallel) and ``net_G.`` prefixes are removed. The registry entry's
``official_converter`` then renames the keys to ours and drops buffers tied to the training
crop size (GLF-CR's ``attn_mask``), and the model is built with the given kwargs, loaded
strictly and put in eval mode. Checkpoints are read with ``weights_only=True`` (no pickle code
runs) and ``map_location`` (CPU by default), so GPU-saved files load anywhere.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models._registry import create_model, get_model_info
from cloudfree.models.state import load_state_dict_strict

__all__ = ["load_official_checkpoint", "read_official_state_dict", "strip_prefixes"]

_WRAPPER_KEYS = ("network", "model_state_dict", "state_dict", "state_dict_G", "model")
_PREFIXES = ("module.", "net_G.", "netG.")


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.``, ``net_G.``, ``netG.``) from every key, repeatedly."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p) :], True
        out[key] = value
    return out


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _checkpoint_problem(path: Path, exc: BaseException) -> str:
    """Say in our words why ``torch.load(path, weights_only=True)`` failed.

    torch's own message is never passed on: for a file holding Python objects it advises
    re-running with ``weights_only=False``, which executes the file's pickle code (never
    advise that for a downloaded checkpoint), and for a corrupt file it is a paragraph.
    """
    size = path.stat().st_size if path.exists() else 0
    text = str(exc)
    if size == 0:
        return "the file is empty (0 bytes); copy or download it again"
    if "zip archive" in text or isinstance(exc, (EOFError, OSError)):
        return (
            f"truncated or corrupt ({size} bytes; its data end early or its archive is "
            "damaged); copy or download it again"
        )
    found = _GLOBAL.search(text)
    if isinstance(exc, pickle.UnpicklingError) and found:
        return (
            f"it holds a Python object ({found.group(1)}) besides tensors; cloudfree loads "
            "only tensors and plain containers from a checkpoint, never code"
        )
    return "its content cannot be decoded as one"


def read_official_state_dict(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read an official checkpoint file and return its unwrapped, prefix-free state dict."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "checkpoint file not found")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols of files it is about to refuse anyway
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except PermissionError as exc:
        raise InputFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a corrupt file makes the unpickler raise almost anything
        problem = _checkpoint_problem(p, exc)
        raise InputFileError(p, f"not a readable PyTorch checkpoint: {problem}") from None
    if _is_state_dict(obj):
        return strip_prefixes(obj)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                return strip_prefixes(obj[key])
        raise InputFileError(
            p,
            "no state dict found in the checkpoint (looked for a bare state dict and the keys "
            f"{list(_WRAPPER_KEYS)}; found keys {sorted(map(str, obj))[:8]})",
        )
    raise InputFileError(p, f"unexpected checkpoint content of type {type(obj).__name__}")


def load_official_checkpoint(
    name: str,
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    **kwargs: Any,
) -> nn.Module:
    """Build registered model ``name`` with ``kwargs`` and load an official checkpoint into it.

    Returns the model in eval mode on ``map_location``. Where the registry entry names an
    ``official_protocol`` (the official weights expect other inputs than the protocol we train
    with), ``model.cloudfree_config["protocol"]`` is set to it, so that a conversion saved with
    :func:`~cloudfree.models.save_pretrained` records the scaling its weights need. Raises
    :class:`InputFileError` when the file is unreadable or its weights do not fit the model
    (for example a checkpoint of another architecture, or kwargs that do not match the
    checkpoint's widths).
    """
    info = get_model_info(name)
    if info.official_converter is None:
        raise ConfigError(f"model {name!r} has no converter for official checkpoints")
    official = read_official_state_dict(path, map_location=map_location)
    try:
        state = info.official_converter(official)
    except ConfigError as exc:
        raise InputFileError(path, f"is not an official {name} checkpoint: {exc}") from None
    model = create_model(name, **kwargs)
    if info.official_protocol is not None:
        model.cloudfree_config["protocol"] = info.official_protocol  # type: ignore[index]
    try:
        load_state_dict_strict(model, state)
    except ConfigError as exc:
        raise InputFileError(
            path,
            f"weights do not fit {name} built with {kwargs or 'its default arguments'}: {exc}",
        ) from None
    return model.to(map_location).eval()
