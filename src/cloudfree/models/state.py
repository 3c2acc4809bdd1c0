"""Load a state dict strictly and, when it does not fit, say how in one line.

torch's ``load_state_dict`` error is a multi-line message whose first line is only
"Error(s) in loading state_dict for GLFCR:"; the CLI shows one line, so the useful part was
lost. :func:`load_state_dict_strict` is the one place that loads weights into a model for
:func:`~cloudfree.models.load_pretrained`, :func:`~cloudfree.models.load_official_checkpoint`
and ``model.init_weights``; :func:`describe_state_mismatch` lists the first few missing keys,
unexpected keys and shape mismatches (``missing 12 keys (a, b, c, ...), unexpected 3 keys
(...), 1 shape mismatch (conv.weight: file [8, 3, 3, 3], model [16, 3, 3, 3])``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cloudfree.errors import ConfigError

__all__ = ["describe_state_mismatch", "load_state_dict_strict"]

#: How many keys of each kind a message names.
SHOWN_KEYS = 4


def _listing(what: str, items: Sequence[str], limit: int) -> str:
    n = len(items)
    noun = what if n == 1 else f"{what}s"
    shown = ", ".join(items[:limit]) + (", ..." if n > limit else "")
    return f"{n} {noun} ({shown})"


def _shape(value: object) -> list[int] | str:
    shape = getattr(value, "shape", None)
    return list(shape) if shape is not None else type(value).__name__


def describe_state_mismatch(
    model: nn.Module, state: Mapping[str, object], *, limit: int = SHOWN_KEYS
) -> str | None:
    """One line naming how ``state`` differs from ``model.state_dict()``; ``None`` if it fits.

    Keys are listed in the model's order (missing, shape mismatches) and the file's order
    (unexpected), at most ``limit`` of each kind, followed by the counts.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {_shape(state[k])}, model {list(v.shape)}"
        for k, v in own.items()
        if k in state and _shape(state[k]) != list(v.shape)
    ]
    parts = []
    if missing:
        parts.append("missing " + _listing("key", missing, limit))
    if unexpected:
        parts.append("unexpected " + _listing("key", unexpected, limit))
    if shapes:
        parts.append(_listing("shape mismatch", shapes, limit).replace("mismatchs", "mismatches"))
    return ", ".join(parts) if parts else None


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state, strict=True)``, with a one-line error.

    Raises:
        ConfigError: the keys or shapes do not fit (:func:`describe_state_mismatch`), or torch
            refused a value for another reason (its message, on one line). The caller adds
            which file the weights came from.
    """
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        problem = describe_state_mismatch(model, state)
        raise ConfigError(problem or " ".join(str(exc).split())[:400]) from None
