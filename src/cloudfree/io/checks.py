"""Value checks of input rasters: is this Sentinel-1 in dB, is this Sentinel-2 in L1C DN?

One place for the checks that turn a wrongly scaled input into a clear error instead of a
plausible wrong image. Used by ``predict`` (:mod:`cloudfree.predict`), ``cloudmask``, directory
evaluation and the SEN12MS-CR dataset.

Decisions (every rule looks only at **finite, valid** values: NaN, +-inf and the declared or
given nodata value are removed first; with fewer than :data:`MIN_VALUES` such values nothing is
decided and the input is accepted, the callers' own "no valid pixel" errors apply):

* **SAR units** (:func:`detect_sar_units`). Sentinel-1 GRD backscatter in dB lies in about
  [-50, +20] and is mostly negative (VH is almost always below -10 dB, VV mostly below 0);
  linear power (sigma0) is never negative and mostly below 1. The rule, on VV and VH pooled:

  1. any value with ``|v| > 1000`` is not backscatter in either unit (a fill value such as
     -9999 or -32768, or garbage such as 1e30): ``"fill"`` (the most frequent such value is
     reported, to be declared with ``--sar-nodata``);
  2. no negative value and a median below 1: ``"linear"`` (dB data with no negative value at
     all would be a scene brighter than 0 dB everywhere, which does not occur);
  3. at least half of the values negative and all within [-100, 60]: ``"db"``;
  4. anything else: ``"unknown"`` (for example amplitude DN, mostly >= 1), refused as well.

* **SAR band order** (:func:`sar_band_order`). Band descriptions are honoured: ``VV``/``VH``
  in either order are put into the VV, VH order the models expect. ``HH``/``HV`` (dual-pol
  over sea ice / polar regions) are refused unless the caller names the file's bands
  explicitly (``--sar-bands HH,HV``): HH then takes the place of VV (co-polarisation) and HV
  that of VH (cross-polarisation), an approximation since the models were trained on VV/VH.
  Descriptions that name no polarisation (``None``, ``Band 1``) are taken as VV, VH.

* **Optical scale** (:func:`check_optical_scale`). The models and detectors expect Sentinel-2
  L1C DN (reflectance x 10000, +1000 from processing baseline 04.00 on): uint16, int16,
  or float holding DN. Refused: ``uint8`` (an 8-bit visual product has lost the scale); values
  whose 99th percentile is at most 2 (reflectance in 0..1: the fix is
  ``--optical-scale reflectance``, which multiplies by 10000); values whose median exceeds
  20000 or with more than 1 % negative values (not DN at all). With
  ``scale="reflectance"`` the check is the reverse one: the values must look like 0..1
  reflectance (99th percentile at most 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np

from cloudfree.errors import ConfigError, InputFileError

__all__ = [
    "MIN_VALUES",
    "OPTICAL_SCALES",
    "SAR_UNITS",
    "SarUnits",
    "check_optical_dtype",
    "check_optical_scale",
    "check_sar_units",
    "detect_sar_units",
    "linear_to_db",
    "parse_sar_bands",
    "sample_shape",
    "sar_band_order",
    "valid_values",
]

#: Fewer finite valid values than this: no decision (the input is accepted).
MIN_VALUES = 64
#: ``--sar-units`` choices.
SAR_UNITS: tuple[str, ...] = ("db", "linear")
#: ``--optical-scale`` choices.
OPTICAL_SCALES: tuple[str, ...] = ("dn", "reflectance")
#: Largest side of the decimated sample that the file checks read.
SAMPLE_SIDE = 512

_FILL_ABS = 1000.0
_DB_RANGE = (-100.0, 60.0)
_REFLECTANCE_P99 = 2.0
_DN_MAX_MEDIAN = 20000.0
_MAX_NEGATIVE_FRACTION = 0.01
_POLS = ("VV", "VH", "HH", "HV")


def sample_shape(height: int, width: int, side: int = SAMPLE_SIDE) -> tuple[int, int]:
    """Shape of a decimated read of at most ``side`` pixels per dimension (aspect kept)."""
    f = max(1.0, max(height, width) / side)
    return max(1, int(round(height / f))), max(1, int(round(width / f)))


def valid_values(array: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """The finite values of ``array`` (any shape) that differ from ``nodata``, as float64."""
    a = np.asarray(array).ravel()
    if np.issubdtype(a.dtype, np.floating):
        a = a[np.isfinite(a)]
    if nodata is not None and not np.isnan(nodata):
        a = a[a != nodata]
    return a.astype(np.float64, copy=False)


# ----------------------------------------------------------------------------- SAR
@dataclass(frozen=True)
class SarUnits:
    """What :func:`detect_sar_units` found."""

    units: str  # "db", "linear", "fill", "unknown" or "undecided" (too few values)
    median: float = float("nan")
    negative_fraction: float = float("nan")
    fill_value: float | None = None
    fill_count: int = 0
    n: int = 0


def detect_sar_units(array: np.ndarray, nodata: float | None = None) -> SarUnits:
    """Classify Sentinel-1 values as dB, linear power, fill-polluted or unknown (module rule)."""
    v = valid_values(array, nodata)
    n = int(v.size)
    if n < MIN_VALUES:
        return SarUnits("undecided", n=n)
    huge = np.abs(v) > _FILL_ABS
    if huge.any():
        vals, counts = np.unique(v[huge], return_counts=True)
        k = int(np.argmax(counts))
        return SarUnits("fill", fill_value=float(vals[k]), fill_count=int(huge.sum()), n=n)
    median = float(np.median(v))
    neg = float((v < 0).mean())
    if neg == 0.0 and median < 1.0:
        return SarUnits("linear", median, neg, n=n)
    if neg >= 0.5 and v.min() >= _DB_RANGE[0] and v.max() <= _DB_RANGE[1]:
        return SarUnits("db", median, neg, n=n)
    return SarUnits("unknown", median, neg, n=n)


def linear_to_db(array: np.ndarray) -> np.ndarray:
    """``10 * log10(x)`` in float32; values <= 0 or not finite become NaN (invalid)."""
    a = np.asarray(array, dtype=np.float32)
    out = np.full(a.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(a) & (a > 0)
    out[ok] = np.float32(10.0) * np.log10(a[ok])
    return out


def check_sar_units(
    array: np.ndarray,
    path: str | PathLike[str],
    nodata: float | None = None,
    units: str = "db",
    *,
    nodata_fix: str = "pass --sar-nodata {value}",
    units_fix: str = "pass --sar-units linear (converts with 10*log10)",
) -> SarUnits:
    """Raise :class:`InputFileError` unless ``array`` looks like Sentinel-1 in ``units``.

    ``nodata_fix`` (with a ``{value}`` placeholder) / ``units_fix`` tell the caller's user how
    to declare a fill value or convert linear units (CLI flags for ``predict``; other words for a
    dataset). Returns the detection.
    """
    if units not in SAR_UNITS:
        raise ConfigError(f"SAR units must be one of {list(SAR_UNITS)}, got {units!r}")
    d = detect_sar_units(array, nodata)
    if d.units == "undecided":
        return d
    if d.units == "fill":
        fv = d.fill_value
        raise InputFileError(
            path,
            f"holds {d.fill_count} value(s) of magnitude > {_FILL_ABS:g} (most often "
            f"{fv:g}), which is no Sentinel-1 backscatter: a fill value without declared "
            f"nodata? {nodata_fix.format(value=f'{fv:g}')}",
        )
    if units == "db":
        if d.units == "db":
            return d
        if d.units == "linear":
            raise InputFileError(
                path,
                f"looks like Sentinel-1 in linear power, not dB (no negative value, median "
                f"{d.median:.3g}); {units_fix}",
            )
        raise InputFileError(
            path,
            f"does not look like Sentinel-1 backscatter in dB ({100 * d.negative_fraction:.0f} "
            f"% negative values, median {d.median:.3g}; dB backscatter is mostly in "
            "[-35, +5]); give VV, VH in dB",
        )
    if d.units != "linear":
        raise InputFileError(
            path,
            f"does not look like Sentinel-1 in linear power ({100 * d.negative_fraction:.0f} "
            f"% negative values, median {d.median:.3g}); drop the linear-units option if it "
            "is already in dB",
        )
    return d


def parse_sar_bands(spec: str | Sequence[str] | None) -> tuple[str, str] | None:
    """``"VH,VV"`` -> ``("VH", "VV")``: the polarisations of an S1 file's two bands."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(s.strip().upper() for s in items if s.strip())
    if not names:
        return None
    if len(names) != 2 or set(names) not in ({"VV", "VH"}, {"HH", "HV"}):
        raise ConfigError(
            f"SAR bands must name the file's two bands in file order, VV,VH or VH,VV "
            f"(or HH,HV / HV,HH), got {','.join(names)}"
        )
    return names[0], names[1]


def _pol_of(description: str | None) -> str | None:
    if not description:
        return None
    text = description.upper()
    found = [p for p in _POLS if p in text.replace("-", "_").replace(" ", "_").split("_")]
    if not found:
        found = [p for p in _POLS if p in text]
    return found[0] if len(found) == 1 else None


def sar_band_order(
    descriptions: Sequence[str | None],
    path: str | PathLike[str],
    sar_bands: str | Sequence[str] | None = None,
) -> list[int]:
    """0-based band positions of (co-pol, cross-pol) = (VV, VH) in the S1 file (module rule).

    ``sar_bands`` (``--sar-bands``) names the file's bands and overrides the descriptions;
    HH/HV is used only when named there.
    """
    given = parse_sar_bands(sar_bands)
    if given is not None:
        co = "VV" if "VV" in given else "HH"
        cross = "VH" if co == "VV" else "HV"
        return [given.index(co), given.index(cross)]
    pols = [_pol_of(d) for d in descriptions]
    if all(p is None for p in pols):
        return [0, 1]
    if sorted(p or "?" for p in pols) == ["VH", "VV"]:
        return [pols.index("VV"), pols.index("VH")]
    names = ",".join(str(d) for d in descriptions)
    if set(pols) <= {"HH", "HV"} and None not in pols and len(set(pols)) == 2:
        raise InputFileError(
            path,
            f"holds {names} polarisations; the models were trained on VV, VH. Pass "
            f"--sar-bands {','.join(p or '' for p in pols)} to use HH as VV and HV as VH "
            "(an approximation)",
        )
    raise InputFileError(
        path,
        f"band descriptions {names} do not name VV and VH; name the file's bands with "
        "--sar-bands (e.g. --sar-bands VV,VH)",
    )


# ----------------------------------------------------------------------------- optical
def check_optical_dtype(dtype: str | np.dtype, path: str | PathLike[str]) -> None:
    """Refuse data types that cannot hold L1C DN (``uint8``, booleans, complex)."""
    dt = np.dtype(dtype)
    if dt == np.uint8 or dt.kind in "bc" or dt == np.int8:
        raise InputFileError(
            path,
            f"is {dt.name}, which cannot hold Sentinel-2 L1C DN (reflectance x 10000, up to "
            "10000 and more): an 8-bit visual product has lost the scale; use the 16-bit "
            "product (uint16 DN) or float reflectance with --optical-scale reflectance",
        )


def check_optical_scale(
    array: np.ndarray,
    path: str | PathLike[str],
    nodata: float | None = None,
    scale: str = "dn",
    *,
    dtype: str | np.dtype | None = None,
    scale_fix: str = "pass --optical-scale reflectance to multiply it by 10000",
) -> None:
    """Raise :class:`InputFileError` unless ``array`` looks like Sentinel-2 at ``scale``.

    ``array`` is (a sample of) the file's values; ``dtype`` the file's data type when
    ``array`` was already cast (default: the array's). See the module docstring for the rule.
    """
    if scale not in OPTICAL_SCALES:
        raise ConfigError(f"optical scale must be one of {list(OPTICAL_SCALES)}, got {scale!r}")
    check_optical_dtype(dtype if dtype is not None else np.asarray(array).dtype, path)
    v = valid_values(array, nodata)
    if v.size < MIN_VALUES:
        return
    p99 = float(np.percentile(v, 99))
    if scale == "reflectance":
        if p99 > _REFLECTANCE_P99:
            raise InputFileError(
                path,
                f"does not look like reflectance in 0..1 (99th percentile {p99:.4g}); it is "
                "probably DN already: drop the reflectance-scale option",
            )
        return
    if p99 <= _REFLECTANCE_P99:
        raise InputFileError(
            path,
            f"looks like reflectance in 0..1 (99th percentile {p99:.4g}), not Sentinel-2 L1C "
            f"DN (reflectance x 10000); {scale_fix}",
        )
    median = float(np.median(v))
    negative = float((v < 0).mean())
    if median > _DN_MAX_MEDIAN or negative > _MAX_NEGATIVE_FRACTION:
        raise InputFileError(
            path,
            f"does not look like Sentinel-2 L1C DN (median {median:.4g}, "
            f"{100 * negative:.1f} % negative values; DN are reflectance x 10000, mostly "
            "0..10000, +1000 from baseline 04.00: see --pb04-offset); check the file's scale "
            "and its nodata value",
        )
