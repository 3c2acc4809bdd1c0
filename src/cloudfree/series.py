"""Time-series index helpers shared by the data, model and evaluation layers.

:func:`last_real_date` finds the last real (unpadded) date of each series from its
``time_mask``: the date a mono-temporal view of a series shows, the temporal ``identity``
baseline copies and CA-MTCR restores (under the ``ca_mtcr`` sampler, the cloudy date N).
It lives below :mod:`cloudfree.data` and :mod:`cloudfree.models` so that both use the same
rule without either importing the other.
"""

from __future__ import annotations

import torch

from cloudfree.errors import ConfigError

__all__ = ["last_real_date"]


def last_real_date(time_mask: torch.Tensor | None, num_dates: int) -> torch.Tensor:
    """Index of the last real (unpadded) date per series: ``time_mask [B, T]`` (None: all real)
    -> ``[B]`` int64; a ``[T]`` mask gives a 0-d index."""
    if time_mask is None:
        return torch.tensor(num_dates - 1, dtype=torch.int64)
    real = time_mask.to(torch.bool)
    if not bool(real.any(dim=-1).all()):
        raise ConfigError("a time series without any real date (time_mask all False)")
    return num_dates - 1 - real.flip(-1).to(torch.int64).argmax(dim=-1)
