"""Temporal composites: cloud-free images from a time series without a network.

Each function takes a time series ``optical [B, T, C, H, W]`` (any scaling: the result is in the
same one), per-date ``cloudy [B, T, 1, H, W]`` (True where a date is not clear: cloud or
shadow), ``time_mask [B, T]`` (False on padded dates, which are never used) and returns the
composite ``[B, C, H, W]`` with ``no_clear [B, 1, H, W]``, True where no real date was clear.

* :func:`least_cloudy` - the whole image of the date with the smallest cloudy fraction (the
  earliest among equals).
* :func:`mosaic` - per pixel, the mean of the clear observations (AllClear's and UnCRtainTS's
  "mosaicing"). **Where no date is clear** the value of the least cloudy date is used (a
  defined fallback, flagged in ``no_clear``). AllClear's own code intends 0.5 there but leaves
  those pixels 0 (its sum of clear values over a zero count); that bug is not reproduced.
* :func:`most_recent_clear` - per pixel, the clear observation with the latest date (or the
  latest on or before ``target_date`` when given, falling back to the earliest clear one after
  it); the least cloudy date's value where no date is clear.

They are the temporal baselines of evaluation (``least_cloudy``, ``mosaic``,
``most_recent_clear`` in :mod:`cloudfree.evaluate.baselines`) and of time-series prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cloudfree.errors import ConfigError

__all__ = ["COMPOSITES", "least_cloudy", "mosaic", "most_recent_clear"]


def _check(optical: Tensor, cloudy: Tensor, time_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    if optical.ndim != 5:
        raise ConfigError(f"a composite needs optical [B, T, C, H, W], got {tuple(optical.shape)}")
    b, t, _, h, w = optical.shape
    if tuple(cloudy.shape) != (b, t, 1, h, w):
        raise ConfigError(
            f"cloudy must be [B, T, 1, H, W] = {(b, t, 1, h, w)}, got {tuple(cloudy.shape)}"
        )
    real = torch.ones(b, t, dtype=torch.bool, device=optical.device)
    if time_mask is not None:
        real = time_mask.to(torch.bool)
    if not real.any(dim=1).all():
        raise ConfigError("every sample needs at least one real date (time_mask all False)")
    return cloudy.to(torch.bool), real


def _least_cloudy_index(cloudy: Tensor, real: Tensor) -> Tensor:
    frac = cloudy.float().mean(dim=(2, 3, 4))  # [B, T]
    frac = torch.where(real, frac, torch.full_like(frac, 2.0))  # padded dates never win
    return frac.argmin(dim=1)  # torch returns the first of equal minima: the earliest date


def least_cloudy(
    optical: Tensor, cloudy: Tensor, time_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The least cloudy real date of each sample (module docstring)."""
    cloudy_b, real = _check(optical, cloudy, time_mask)
    idx = _least_cloudy_index(cloudy_b, real)
    rows = torch.arange(optical.shape[0], device=optical.device)
    clear = ~cloudy_b & real[:, :, None, None, None]
    return optical[rows, idx], ~clear.any(dim=1)


def mosaic(
    optical: Tensor, cloudy: Tensor, time_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-pixel mean of the clear observations (module docstring)."""
    cloudy_b, real = _check(optical, cloudy, time_mask)
    clear = (~cloudy_b & real[:, :, None, None, None]).to(optical.dtype)  # [B, T, 1, H, W]
    count = clear.sum(dim=1)  # [B, 1, H, W]
    total = (optical * clear).sum(dim=1)
    mean = total / count.clamp(min=1)
    fallback, _ = least_cloudy(optical, cloudy_b, real)
    no_clear = count == 0
    return torch.where(no_clear, fallback, mean), no_clear


def most_recent_clear(
    optical: Tensor,
    cloudy: Tensor,
    time_mask: Tensor | None = None,
    dates: Tensor | None = None,
    target_date: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per pixel, the latest clear observation (module docstring); ``dates [B, T]`` (default:
    the date order), ``target_date [B]`` optional."""
    cloudy_b, real = _check(optical, cloudy, time_mask)
    b, t = optical.shape[:2]
    if dates is None:
        dates = torch.arange(t, device=optical.device, dtype=torch.float32).expand(b, t)
    d = dates.to(torch.float32)
    clear = ~cloudy_b[:, :, 0] & real[:, :, None, None]  # [B, T, H, W]
    score = d[:, :, None, None].expand_as(clear).clone()
    if target_date is not None:
        after = d > target_date.to(torch.float32)[:, None]  # dates after the target rank last
        score = torch.where(after[:, :, None, None], -score - 1e6, score)
    score = torch.where(clear, score, torch.full_like(score, -float("inf")))
    best = score.argmax(dim=1)  # [B, H, W]
    picked = torch.gather(optical, 1, best[:, None, None].expand(-1, 1, optical.shape[2], -1, -1))
    picked = picked[:, 0]
    fallback, _ = least_cloudy(optical, cloudy_b, real)
    no_clear = ~clear.any(dim=1, keepdim=True)
    return torch.where(no_clear, fallback, picked), no_clear


#: The composites by name.
COMPOSITES = {
    "least_cloudy": least_cloudy,
    "mosaic": mosaic,
    "most_recent_clear": most_recent_clear,
}
