"""Batches of time series with different numbers of dates: padding with a time mask.

:func:`collate_time_series` is the ``collate_fn`` for temporal datasets
(:class:`~cloudfree.data.SEN12MSCRTS`, AllClear). Per-date entries (:data:`TEMPORAL_KEYS`,
first dimension = the sample's dates) are padded at the end to the batch's largest T with
**0** (U-TAE's and L-TAE's pad value; UnCRtainTS treats all-zero frames as padding too) and
``time_mask`` is False on padded dates; every other tensor is stacked, strings and booleans
are collected in lists.

:func:`last_real_date` and :func:`single_date_sample` / :class:`SingleDateView` give
mono-temporal models a view of a time series: **the last real input date** (the date the
temporal ``identity`` baseline copies; under the ``ca_mtcr`` sampler the cloudy date to
restore), so that a mono-temporal network is trained and compared on the same scenes as the
temporal ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from cloudfree.errors import ConfigError
from cloudfree.series import last_real_date

__all__ = [
    "PAD_VALUE",
    "TEMPORAL_KEYS",
    "SingleDateView",
    "collate_time_series",
    "last_real_date",
    "single_date_sample",
]

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


#: Per-date entries a single-date view replaces by their last real date (without the date axis).
_SINGLE_DATE_KEYS = ("optical", "sar")


def single_date_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """The mono-temporal view of one (uncollated) time-series sample: ``optical [C, H, W]`` and
    ``sar`` of its last real input date; the other per-date entries (:data:`TEMPORAL_KEYS`:
    ``dates``, ``time_mask``, ``cloud_masks`` ...) are dropped, everything else (``target``,
    ``valid_mask``, the evaluation region ``cloud_mask`` / ``shadow_mask``, ``cloud_cover``,
    ``aux_changed``, ``id``) is kept, so scores are computed on the same pixels as for the
    temporal models."""
    optical = sample["optical"]
    if not isinstance(optical, torch.Tensor) or optical.ndim != 4:
        raise ConfigError("single_date_sample needs a time-series sample (optical [T, C, H, W])")
    t = int(optical.shape[0])
    last = int(last_real_date(sample.get("time_mask"), t))
    out = {k: v for k, v in sample.items() if k not in TEMPORAL_KEYS}
    for key in _SINGLE_DATE_KEYS:
        if isinstance(sample.get(key), torch.Tensor):
            out[key] = sample[key][last]
    return out


class SingleDateView(Dataset):
    """A time-series dataset seen by a mono-temporal model: sample ``i`` is
    :func:`single_date_sample` of ``base[i]`` (the samplers, masks and regions are
    ``base``'s). ``set_epoch`` is passed on to ``base``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return single_date_sample(self.base[index])

    def set_epoch(self, epoch: int) -> None:
        set_epoch = getattr(self.base, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)

    def __getattr__(self, name: str) -> Any:  # protocol, bands, sampler ... of the base
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)
