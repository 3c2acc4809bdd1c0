"""Which bands of the optical file feed the model, and which optical pixels are nodata.

Decisions:

* **Band mapping.** Without ``file_bands`` the optical file must hold the 13 Sentinel-2 L1C
  bands in product order (``B01 .. B12`` with ``B8A`` and ``B10``); the model's band set
  (``config.json``'s ``bands``, or the registry entry's) picks its bands from them. A file with
  another band count needs ``file_bands`` (``--bands``), naming every band of the file in file
  order; the bands are then matched by name. Nothing is guessed: a 12-band file (typically L2A,
  which lacks B10) without a mapping is an error that says so, and a model band missing from
  the file is an error naming the band.
* **Optical nodata.** ``"auto"`` (default) uses the file's declared nodata value; for an integer
  file without one it uses 0, the Sentinel-2 nodata value (a DN of 0 is never a valid L1C
  observation). ``None`` disables it (only NaN is then invalid). A pixel is invalid when any of
  the bands fed to the model is NaN or equals the nodata value (as
  :func:`cloudfree.normalization.normalize_optical` decides).
* **Optical scale.** Before any tile is run, a decimated sample (at most 512 px a side, nearest)
  of the bands fed to the model is checked by :func:`cloudfree.io.checks.check_optical_scale`:
  ``uint8``, 0..1 reflectance and values that are not DN are refused with the fix.
  ``optical_scale="reflectance"`` (``--optical-scale reflectance``) accepts 0..1 floats and
  multiplies them by 10000 when read (the nodata value is scaled with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cloudfree.bands import S2_L1C, BandSet
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import RasterInfo
from cloudfree.io.checks import check_optical_scale, sample_shape
from cloudfree.io.geotiff import describe_read_error

__all__ = [
    "L1C_MAPPING_HINT",
    "band_positions",
    "check_optical_file",
    "optical_factor",
    "file_band_names",
    "parse_band_list",
    "resolve_optical_nodata",
]

#: The ``--bands`` value of a 12-band L2A product (B10 missing).
L1C_MAPPING_HINT = "B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12"


def parse_band_list(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Parse ``"B04,B03,B02"`` (or a sequence) into canonical band names (``B2`` -> ``B02``)."""
    if spec is None:
        return None
    items = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        return None
    return S2_L1C.subset(items).names  # validates names, rejects duplicates


def file_band_names(info: RasterInfo, file_bands: str | Sequence[str] | None) -> tuple[str, ...]:
    """Names of the optical file's bands, in file order (see the module docstring)."""
    count = info.count
    if file_bands is not None and parse_band_list(file_bands) is None:
        file_bands = None  # an empty --bands value
    if file_bands is None:
        if count == len(S2_L1C):
            return S2_L1C.names
        if count == len(S2_L1C) - 1:
            raise InputFileError(
                info.path,
                f"has {count} bands, expected the 13 Sentinel-2 L1C bands "
                f"({' '.join(S2_L1C.names)}); a 12-band file is usually L2A, which has no "
                f"B10: name its bands with --bands, e.g. --bands {L1C_MAPPING_HINT} (the model "
                "must then not need B10)",
            )
        raise InputFileError(
            info.path,
            f"has {count} band(s), expected the 13 Sentinel-2 L1C bands; name the file's bands "
            "in file order with --bands (e.g. --bands B04,B03,B02)",
        )
    names = parse_band_list(file_bands)
    if names is None or len(names) != count:
        n = 0 if names is None else len(names)
        raise InputFileError(
            info.path,
            f"has {count} band(s) but --bands names {n} ({','.join(names or ())}); "
            "name every band of the file, in file order",
        )
    return names


def band_positions(
    info: RasterInfo, model_bands: BandSet, file_bands: str | Sequence[str] | None = None
) -> list[int]:
    """0-based positions in the optical file of the model's bands, in the model's order."""
    names = file_band_names(info, file_bands)
    missing = [b for b in model_bands.names if b not in names]
    if missing:
        raise InputFileError(
            info.path,
            f"lacks band(s) {','.join(missing)} that the model needs (model bands: "
            f"{','.join(model_bands.names)}; file bands: {','.join(names)})",
        )
    return [names.index(b) for b in model_bands.names]


def resolve_optical_nodata(info: RasterInfo, nodata: float | str | None = "auto") -> float | None:
    """The optical nodata value to use (``"auto"``: declared value, else 0 for integer data)."""
    if nodata is None:
        return None
    if isinstance(nodata, str):
        key = nodata.strip().lower()
        if key == "auto":
            if info.nodata is not None:
                return float(info.nodata)
            return 0.0 if np.dtype(info.dtype).kind in "iu" else None
        if key == "none":
            return None
        try:
            return float(key)
        except ValueError:
            raise ConfigError(
                f"optical nodata must be 'auto', 'none' or a number, got {nodata!r}"
            ) from None
    return float(nodata)


def optical_factor(scale: str) -> float:
    """Factor that turns the file's values into DN: 10000 for ``reflectance``, else 1."""
    return 10000.0 if scale == "reflectance" else 1.0


def check_optical_file(
    src: Any, info: RasterInfo, positions: Sequence[int], nodata: float | None, scale: str
) -> None:
    """Check a decimated sample of the bands at ``positions`` (see the module docstring)."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError

    idx = [p + 1 for p in positions]
    try:
        sample = src.read(
            idx,
            out_shape=(len(idx), *sample_shape(info.height, info.width)),
            resampling=Resampling.nearest,
        )
    except RasterioError as exc:
        raise InputFileError(info.path, describe_read_error(exc, info.path)) from None
    check_optical_scale(sample, info.path, nodata, scale, dtype=info.dtype)
