"""Batches of time series with different numbers of dates: padding with a time mask.

:func:`collate_time_series` is the ``collate_fn`` for temporal datasets
(:class:`~cloudfree.data.SEN12MSCRTS`, AllClear). Per-date entries (:data:`TEMPORAL_KEYS`,
first dimension = the sample's dates) are padded at the end to the batch's largest T with
**0** (U-TAE's and L-TAE's pad value; UnCRtainTS treats all-zero frames as padding too) and
``time_mask`` is False on padded dates; every other tensor is stacked, strings and booleans
are collected in lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cloudfree.errors import ConfigError

__all__ = ["PAD_VALUE", "TEMPORAL_KEYS", "collate_time_series"]

#: Value of padded dates.
PAD_VALUE = 0.0
#: Sample entries indexed by input date first.
TEMPORAL_KEYS: tuple[str, ...] = (
    "optical",
    "sar",
    "dates",
    "time_mask",
    "cloud_masks",
    "shadow_masks",
    "cover",
    "input_idx",
    "changed_fraction",
)


def collate_time_series(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad and stack ``samples`` (module docstring)."""
    if not samples:
        raise ConfigError("cannot collate an empty batch")
    lengths = [int(s["optical"].shape[0]) for s in samples]
    t_max = max(lengths)
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in TEMPORAL_KEYS and isinstance(values[0], torch.Tensor):
            padded = []
            for v, n in zip(values, lengths):
                if int(v.shape[0]) != n:
                    raise ConfigError(f"sample entry {key!r} has {v.shape[0]} dates, optical {n}")
                if n < t_max:
                    pad = torch.full((t_max - n, *v.shape[1:]), PAD_VALUE, dtype=v.dtype)
                    v = torch.cat([v, pad])
                padded.append(v)
            out[key] = torch.stack(padded)
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = list(values)
    mask = torch.zeros(len(samples), t_max, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    if "time_mask" in out:
        out["time_mask"] = out["time_mask"] & mask
    else:
        out["time_mask"] = mask
    return out
