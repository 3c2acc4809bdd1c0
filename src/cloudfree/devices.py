"""Which torch device to run on: the one place that turns ``cpu`` / ``cuda[:N]`` into a
:class:`torch.device` and refuses a device that is not there.

Decisions:

* The check happens before any work (loading weights, reading data), so a missing GPU is a
  one-line :class:`~cloudfree.errors.ConfigError`, not a CUDA traceback halfway through.
* ``cuda`` without an index becomes ``cuda:<local_rank>`` when a ``local_rank`` is given
  (one GPU per ``torchrun`` process); an index beyond the visible GPUs is refused.
* Only ``cpu``, ``cuda`` and ``mps`` are accepted (other torch device types are not tested).
"""

from __future__ import annotations

import torch

from cloudfree.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(
    device: str | torch.device = "cpu", *, local_rank: int | None = None
) -> torch.device:
    """The torch device to run on; ``cuda`` becomes ``cuda:<local_rank>`` under torchrun.

    Raises:
        ConfigError: an unknown device, CUDA (or MPS) requested where it is not available, or
            a GPU index beyond the visible GPUs.
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
