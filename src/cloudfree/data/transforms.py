"""Sample transforms: normalisation of raw samples, crops and resizes of sample dicts.

Datasets yield **raw** samples (optical / target in Sentinel-2 DN, SAR in dB, NaN wherever a
value is missing); the normalisation a model expects is a transform applied afterwards, so one
pass over the files can feed several models (the TorchGeo idea). Decisions:

* :func:`normalize_sample` applies :func:`cloudfree.normalization.normalize_optical` (to
  ``optical`` and ``target``) and :func:`~cloudfree.normalization.normalize_sar` (to ``sar``)
  exactly as :class:`~cloudfree.data.SEN12MSCR` did with its ``protocol`` argument: the
  protocol's NaN fill (``nanmean`` of the whole array for ``glf_cr`` / ``dsen2cr``, a constant
  after scaling otherwise), then scaling. The results are bit-identical to that code path.
* **Validity** is recomputed from the arrays being normalised (a raw sample marks every missing
  value as NaN) and *replaces* the sample's ``valid_mask``: with a band subset it describes the
  selected bands only, as ``SEN12MSCR(bands=..., protocol=...)`` always did.
* **Order with crops and resizes.** The ``nanmean`` fill depends on the whole array, and the
  scaling clips before a resize would interpolate, so normalise the *whole* patch first and
  crop / resize afterwards (:func:`crop_sample`, :func:`center_crop_sample`,
  :func:`resize_sample`). Normalising an already cropped raw sample gives the same values at
  every valid pixel but a different fill at NaN pixels; normalising after a resize differs
  everywhere the clip range is crossed. ``SEN12MSCR(protocol=...)`` and the training data
  module both normalise before cropping.
* The band subset is taken from the full 13-band Sentinel-2 L1C order: ``bands`` needs a sample
  whose ``optical`` holds all 13 bands (a sample whose bands were already selected by the
  dataset is normalised with ``bands=None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cloudfree.bands import S1_NAMES, S2_L1C, BandSet, get_band_set
from cloudfree.errors import ConfigError
from cloudfree.normalization import get_protocol, normalize_optical, normalize_sar

__all__ = [
    "NormalizeSample",
    "center_crop_sample",
    "center_crop_window",
    "crop_sample",
    "normalize_sample",
    "resize_sample",
    "spatial_keys",
]

#: Sample keys holding Sentinel-2 DN (normalised with the optical rule, band subset applied).
OPTICAL_KEYS: tuple[str, ...] = ("optical", "target")
#: Sample key holding Sentinel-1 dB (VV, VH).
SAR_KEY = "sar"
#: Optional sample key: the SAR of the target (reference) date, ``[2, H, W]`` dB
#: (:class:`~cloudfree.data.SEN12MSCRTS` with ``target_sar=True``; the Noise2Noise pair of the
#: ``sar_pretrain`` task). Normalised with the SAR rule; its validity joins ``valid_mask``.
TARGET_SAR_KEY = "target_sar"


def _as_array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ConfigError(f"sample[{key!r}] must be a tensor or an array, got {type(value).__name__}")


def _band_selection(n_channels: int, bands: str | Sequence[str] | BandSet | None) -> list[int]:
    if bands is None:
        return list(range(n_channels))
    selected = get_band_set(bands)
    if n_channels != len(S2_L1C):
        raise ConfigError(
            f"the sample's optical image has {n_channels} bands; a band selection "
            f"({','.join(selected.names)}) is taken from the {len(S2_L1C)} Sentinel-2 L1C bands, "
            "so pass bands=None for a sample whose bands the dataset already selected"
        )
    return list(selected.indices)


def normalize_sample(
    sample: Mapping[str, Any],
    protocol: str,
    bands: str | Sequence[str] | BandSet | None = None,
    *,
    pb04_offset: bool = False,
) -> dict[str, Any]:
    """A new sample with ``optical``, ``target``, ``sar`` (and ``target_sar``) normalised with
    ``protocol``.

    Args:
        sample: a raw sample (``optical`` / ``target`` float DN ``[..., C, H, W]``, ``sar`` dB
            ``[..., 2, H, W]``, NaN where missing); ``target`` and ``sar`` are optional, and so
            is ``target_sar`` (the target date's SAR ``[2, H, W]`` dB: SAR rule, and pixels
            where it is missing are invalid too).
        protocol: a name of :data:`cloudfree.normalization.PROTOCOLS`.
        bands: optical bands to keep (see :func:`cloudfree.bands.get_band_set`), taken from
            13-band samples; None keeps the sample's bands.
        pb04_offset: subtract the processing-baseline 04.00 offset before scaling.

    Returns a new dict: the normalised images as float32 tensors, ``valid_mask`` (bool
    ``[..., 1, H, W]``) False where any normalised band was NaN / non-finite (for a time series,
    ``optical [T, C, H, W]`` with ``target [C, H, W]``: ``[1, H, W]``, False where the target
    is invalid or no input date has a valid optical and SAR value), every other entry
    (masks, ``cloud_cover``, ``id``, ``dates``) unchanged. The input is not modified.
    The fill statistics (``nanmean``) are those of the arrays given: pass whole patches.
    """
    proto = get_protocol(protocol)
    if "optical" not in sample:
        raise ConfigError(f"a sample needs an 'optical' entry; it has {', '.join(sample)}")
    optical = _as_array(sample["optical"], "optical")
    if optical.ndim < 3:
        raise ConfigError(f"sample['optical'] must be [..., C, H, W], got shape {optical.shape}")
    selection = _band_selection(optical.shape[-3], bands)
    temporal = (
        optical.ndim == 4 and "target" in sample and _as_array(sample["target"], "target").ndim == 3
    )
    out = dict(sample)
    valid: np.ndarray | None = None
    dates_valid: np.ndarray | None = None  # time series: per input date [T, H, W]
    for key in OPTICAL_KEYS:
        if key not in sample:
            continue
        dn = _as_array(sample[key], key)
        if bands is not None:
            dn = dn[..., selection, :, :]
        done = normalize_optical(dn, proto, pb04_offset=pb04_offset)
        out[key] = torch.from_numpy(done.array)
        if temporal and key == "optical":
            dates_valid = done.valid
        else:
            valid = done.valid if valid is None else valid & done.valid
    if SAR_KEY in sample:
        done = normalize_sar(_as_array(sample[SAR_KEY], SAR_KEY), proto, bands=S1_NAMES)
        out[SAR_KEY] = torch.from_numpy(done.array)
        if temporal:
            dates_valid = done.valid if dates_valid is None else dates_valid & done.valid
        else:
            valid = done.valid if valid is None else valid & done.valid
    if TARGET_SAR_KEY in sample:  # like the target: every valid pixel has it
        done = normalize_sar(
            _as_array(sample[TARGET_SAR_KEY], TARGET_SAR_KEY), proto, bands=S1_NAMES
        )
        out[TARGET_SAR_KEY] = torch.from_numpy(done.array)
        valid = done.valid if valid is None else valid & done.valid
    if dates_valid is not None:  # a pixel some input date observes, where the target is valid
        any_date = dates_valid.any(axis=0)
        valid = any_date if valid is None else valid & any_date
    assert valid is not None  # optical is always present
    out["valid_mask"] = torch.from_numpy(np.ascontiguousarray(np.expand_dims(valid, -3)))
    return out


class NormalizeSample:
    """:func:`normalize_sample` as a callable transform (``transform(sample) -> sample``).

    Args:
        protocol: normalisation protocol (``glf_cr``, ``uncrtaints``, ``dsen2cr``, ``allclear``).
        bands: optical band subset taken from 13-band samples (None: keep the sample's bands).
        pb04_offset: subtract the processing-baseline 04.00 offset first.
    """

    def __init__(
        self,
        protocol: str,
        bands: str | Sequence[str] | BandSet | None = None,
        *,
        pb04_offset: bool = False,
    ) -> None:
        self.protocol = get_protocol(protocol).name
        self.bands = None if bands is None else get_band_set(bands)
        self.pb04_offset = bool(pb04_offset)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        return normalize_sample(sample, self.protocol, self.bands, pb04_offset=self.pb04_offset)

    def __repr__(self) -> str:
        bands = None if self.bands is None else ",".join(self.bands.names)
        return (
            f"NormalizeSample(protocol={self.protocol!r}, bands={bands!r}, "
            f"pb04_offset={self.pb04_offset})"
        )


# --------------------------------------------------------------------------- crops, resizes
def spatial_keys(sample: Mapping[str, Any]) -> list[str]:
    """Keys of the tensors of ``sample`` that share ``optical``'s height and width."""
    ref = sample.get("optical")
    if not isinstance(ref, torch.Tensor) or ref.ndim < 2:
        raise ConfigError("a sample needs an 'optical' tensor [C, H, W]")
    size = tuple(ref.shape[-2:])
    return [
        k
        for k, v in sample.items()
        if isinstance(v, torch.Tensor) and v.ndim >= 2 and tuple(v.shape[-2:]) == size
    ]


def center_crop_window(height: int, width: int, size: int) -> tuple[int, int]:
    """Top-left corner of the centred ``size`` x ``size`` window (rounding towards the top
    left, as the GLF-CR test code)."""
    if size > height or size > width:
        raise ConfigError(f"crop_size {size} is larger than the {height}x{width} patch")
    return (height - size) // 2, (width - size) // 2


def crop_sample(
    sample: Mapping[str, Any], top: int, left: int, height: int, width: int
) -> dict[str, Any]:
    """A new sample with every spatial tensor cut to the window (contiguous copies)."""
    out = dict(sample)
    for key in spatial_keys(sample):
        out[key] = sample[key][..., top : top + height, left : left + width].contiguous()
    return out


def center_crop_sample(sample: Mapping[str, Any], size: int) -> dict[str, Any]:
    """:func:`crop_sample` on the centred ``size`` x ``size`` window."""
    h, w = sample["optical"].shape[-2:]
    top, left = center_crop_window(int(h), int(w), size)
    return crop_sample(sample, top, left, size, size)


def resize_sample(sample: Mapping[str, Any], size: int) -> dict[str, Any]:
    """A new sample resized to ``size`` x ``size``: images bilinear with antialiasing, masks
    (keys ending in ``_mask`` and non-float tensors) nearest, dtypes kept. A sample already
    of that size is returned as a copy of the dict with the same tensors."""
    out = dict(sample)
    for key in spatial_keys(sample):
        x = sample[key]
        if x.shape[-1] == size and x.shape[-2] == size:
            continue
        if key.endswith("_mask") or not x.is_floating_point():
            out[key] = F.interpolate(x[None].float(), size=(size, size), mode="nearest")[0].to(
                x.dtype
            )
        else:
            out[key] = F.interpolate(
                x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )[0]
    return out
