"""Named normalisation protocols for optical (S2 DN) and SAR (S1 dB) inputs (SPEC section 1).

================  ===========================  ==================================================
protocol          optical                      SAR
================  ===========================  ==================================================
``glf_cr``        clip [0, 10000] / 10000      VV clip [-25, 0], VH clip [-32.5, 0], to [0, 1]
``uncrtaints``    clip [0, 10000] / 10000      both bands clip [-25, 0], to [0, 1]
``dsen2cr``       clip [0, 10000] / 2000       as ``glf_cr`` but to [0, 2]
``allclear``      clip [0, 10000] / 10000      < -40 set to -40, then as ``glf_cr``
``spa_gan_8bit``  clip(DN * 3.5e-4, 0, 1)      as ``glf_cr`` (SpA-GAN is optical only)
                  in 8-bit levels (k / 255)
================  ===========================  ==================================================

``spa_gan_8bit`` is the scaling of SpA-GAN's official weights (its registry entry's
``official_protocol``; the model trains from scratch on ``glf_cr``): the official network reads
8-bit images / 255, and the parity fixture (``parity/spa_gan_rice1``) made such images from
Sentinel-2 DN as ``round(clip(DN / 10000 * 3.5, 0, 1) * 255) / 255``. It is linear up to the
8-bit rounding (``optical_max_dn = optical_divisor = 10000 / 3.5``, so reflectance above 0.2857
saturates at 1) with ``optical_levels = 255``: the scaled value is rounded to a multiple of
1/255, half up, computed in float64 (which reproduces the fixture's inputs bit for bit: at DN
2000 the value is exactly 178.5 levels, which numpy's half-to-even rounding would send to 178).
Inverting it (:func:`denormalize_optical`) is exact only to half a level (about 5.6 DN).

NaN handling (what the official loaders do, reproduced per protocol):

* ``glf_cr`` and ``dsen2cr`` fill NaN with the image's ``nanmean`` (over all bands) before scaling;
* ``uncrtaints`` turns NaN into 0 after scaling (``np.nan_to_num``), for both modalities;
* ``allclear`` turns optical NaN into 0 and SAR NaN into -1 after scaling;
* ``spa_gan_8bit`` turns optical NaN into 0 after scaling (black, as an 8-bit image holds no
  NaN) and fills SAR as ``glf_cr`` (unused by SpA-GAN).

Whatever the fill, every normaliser also returns a boolean validity mask ``[..., H, W]`` that is
False where any band of the input was NaN or equal to ``nodata``, so downstream code never treats
a filled value as an observation.

The Sentinel-2 processing-baseline 04.00 offset (+1000 DN) is removed only when the caller passes
``pb04_offset=True`` (see :func:`cloudfree.bands.harmonize_pb04`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from cloudfree.bands import PB04_OFFSET, S1_NAMES
from cloudfree.errors import ConfigError

__all__ = [
    "NormalizationProtocol",
    "Normalized",
    "PROTOCOLS",
    "get_protocol",
    "normalize_optical",
    "normalize_sar",
    "denormalize_optical",
    "denormalize_sar",
    "to_reflectance",
]

_DEFAULT_SAR_RANGES = {"VV": (-25.0, 0.0), "VH": (-32.5, 0.0)}


@dataclass(frozen=True)
class NormalizationProtocol:
    """How one family of papers scales its inputs."""

    name: str
    optical_max_dn: float = 10000.0
    optical_divisor: float = 10000.0
    sar_ranges: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(_DEFAULT_SAR_RANGES)
    )
    sar_max: float = 1.0
    sar_floor_db: float | None = None
    optical_nan: str | float = "nanmean"  # "nanmean" (before scaling) or a value after scaling
    sar_nan: str | float = "nanmean"
    #: round scaled optical values to multiples of 1 / optical_levels (8-bit images: 255)
    optical_levels: int | None = None

    @property
    def optical_range(self) -> tuple[float, float]:
        """Range of normalised optical values."""
        return 0.0, self.optical_max_dn / self.optical_divisor

    def sar_range_db(self, band: str) -> tuple[float, float]:
        try:
            return self.sar_ranges[band.upper()]
        except KeyError:
            raise ConfigError(
                f"protocol {self.name!r} has no dB range for SAR band {band!r}; "
                f"known: {sorted(self.sar_ranges)}"
            ) from None


PROTOCOLS: dict[str, NormalizationProtocol] = {
    "glf_cr": NormalizationProtocol("glf_cr"),
    "uncrtaints": NormalizationProtocol(
        "uncrtaints",
        sar_ranges={"VV": (-25.0, 0.0), "VH": (-25.0, 0.0)},
        optical_nan=0.0,
        sar_nan=0.0,
    ),
    "dsen2cr": NormalizationProtocol("dsen2cr", optical_divisor=2000.0, sar_max=2.0),
    "allclear": NormalizationProtocol(
        "allclear", sar_floor_db=-40.0, optical_nan=0.0, sar_nan=-1.0
    ),
    "spa_gan_8bit": NormalizationProtocol(
        "spa_gan_8bit",
        optical_max_dn=10000.0 / 3.5,
        optical_divisor=10000.0 / 3.5,
        optical_nan=0.0,
        optical_levels=255,
    ),
}


def get_protocol(protocol: str | NormalizationProtocol) -> NormalizationProtocol:
    """Look a protocol up by name (``glf_cr``, ``uncrtaints``, ``dsen2cr``, ``allclear``,
    ``spa_gan_8bit``)."""
    if isinstance(protocol, NormalizationProtocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ConfigError(
            f"unknown normalisation protocol {protocol!r}; valid: {sorted(PROTOCOLS)}"
        ) from None


class Normalized(NamedTuple):
    """A normalised array and its validity mask (True where every band was a real value)."""

    array: np.ndarray
    valid: np.ndarray


def _invalid(arr: np.ndarray, nodata: float | None) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if nodata is not None and not np.isnan(nodata):
        bad |= arr == nodata
    return bad


def _fill_before(arr: np.ndarray, bad: np.ndarray, how: str | float) -> np.ndarray:
    if how != "nanmean" or not bad.any():
        return arr
    good = arr[~bad]
    fill = float(good.mean()) if good.size else 0.0
    arr = arr.copy()
    arr[bad] = fill
    return arr


def _fill_after(arr: np.ndarray, bad: np.ndarray, how: str | float) -> np.ndarray:
    if how == "nanmean" or not bad.any():
        return arr
    arr[bad] = float(how)
    return arr


def normalize_optical(
    dn: np.ndarray,
    protocol: str | NormalizationProtocol = "glf_cr",
    *,
    pb04_offset: bool = False,
    nodata: float | None = None,
) -> Normalized:
    """Scale Sentinel-2 DN ``[..., C, H, W]`` to the protocol's range.

    ``pb04_offset=True`` subtracts the processing-baseline 04.00 offset (1000 DN) first. A
    protocol with ``optical_levels`` rounds the scaled values to its levels (half up).
    Returns the float32 array and the validity mask ``[..., H, W]``.
    """
    p = get_protocol(protocol)
    arr = np.asarray(dn, dtype=np.float32)
    if arr.ndim < 3:
        raise ConfigError(f"optical array must be [..., C, H, W], got shape {arr.shape}")
    bad = _invalid(arr, nodata)
    if pb04_offset:
        arr = arr - PB04_OFFSET
    arr = _fill_before(arr, bad, p.optical_nan)
    if p.optical_levels is None:
        out = np.clip(arr, 0.0, p.optical_max_dn) / p.optical_divisor
    else:  # in float64, so that a value exactly half-way between two levels stays there
        scaled = np.clip(arr.astype(np.float64), 0.0, p.optical_max_dn) / p.optical_divisor
        out = np.floor(scaled * p.optical_levels + 0.5) / p.optical_levels
    out = _fill_after(out.astype(np.float32, copy=False), bad, p.optical_nan)
    return Normalized(out, ~bad.any(axis=-3))


def normalize_sar(
    db: np.ndarray,
    protocol: str | NormalizationProtocol = "glf_cr",
    *,
    bands: Sequence[str] = S1_NAMES,
    nodata: float | None = None,
) -> Normalized:
    """Scale Sentinel-1 backscatter in dB ``[..., C, H, W]`` (bands named by ``bands``)."""
    p = get_protocol(protocol)
    arr = np.asarray(db, dtype=np.float32)
    if arr.ndim < 3 or arr.shape[-3] != len(bands):
        raise ConfigError(
            f"SAR array must be [..., {len(bands)}, H, W] for bands {list(bands)}, "
            f"got shape {arr.shape}"
        )
    bad = _invalid(arr, nodata)
    arr = _fill_before(arr, bad, p.sar_nan)
    if p.sar_floor_db is not None:
        arr = np.maximum(arr, p.sar_floor_db)
    out = np.empty_like(arr)
    for i, name in enumerate(bands):
        lo, hi = p.sar_range_db(name)
        out[..., i, :, :] = (np.clip(arr[..., i, :, :], lo, hi) - lo) / (hi - lo) * p.sar_max
    out = _fill_after(out, bad, p.sar_nan)
    return Normalized(out, ~bad.any(axis=-3))


def denormalize_optical(x: Any, protocol: str | NormalizationProtocol = "glf_cr") -> Any:
    """Inverse of :func:`normalize_optical` on the clipped range: back to DN (float).

    Works on numpy arrays and torch tensors alike. Values are clipped to [0, 10000] DN.
    """
    p = get_protocol(protocol)
    return (x * p.optical_divisor).clip(0.0, p.optical_max_dn)


#: DN per unit of reflectance (Sentinel-2 L1C/L2A quantification value).
REFLECTANCE_SCALE = 10000.0


def to_reflectance(x: Any, protocol: str | NormalizationProtocol = "glf_cr") -> Any:
    """Optical values in ``protocol``'s scaling as reflectance in [0, 1], the scale every
    metric is computed on (validation, evaluation, report panels).

    Exactly ``denormalize_optical(x, protocol) / 10000`` (back to DN clipped to
    [0, 10000], then divided; same operations in the same order everywhere, so the metrics
    are bit-identical whichever caller computes them). Works on numpy arrays and torch
    tensors alike; the dtype is kept (float32 stays float32).
    """
    return denormalize_optical(x, protocol) / REFLECTANCE_SCALE


def reflectance_factor(protocol: str | NormalizationProtocol = "glf_cr") -> float:
    """The linear factor from ``protocol``'s optical scaling to reflectance
    (``optical_divisor / 10000``; :func:`to_reflectance` without its clip): a predicted
    standard deviation times it, or a variance times its square, is in reflectance units."""
    return get_protocol(protocol).optical_divisor / REFLECTANCE_SCALE


def denormalize_sar(
    x: Any,
    protocol: str | NormalizationProtocol = "glf_cr",
    *,
    bands: Sequence[str] = S1_NAMES,
) -> Any:
    """Inverse of :func:`normalize_sar` on the clipped range: back to dB.

    ``x`` is ``[..., C, H, W]`` (numpy or torch). Values are clipped to each band's range.
    """
    p = get_protocol(protocol)
    if x.shape[-3] != len(bands):
        raise ConfigError(f"expected {len(bands)} SAR channels, got shape {tuple(x.shape)}")
    parts = []
    for i, name in enumerate(bands):
        lo, hi = p.sar_range_db(name)
        parts.append((x[..., i : i + 1, :, :] / p.sar_max).clip(0.0, 1.0) * (hi - lo) + lo)
    if isinstance(x, np.ndarray):
        return np.concatenate(parts, axis=-3)
    import torch

    return torch.cat(parts, dim=-3)
