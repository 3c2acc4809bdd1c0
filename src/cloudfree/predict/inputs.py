"""Which bands of the optical file feed the model, and which optical pixels are nodata.

Decisions:

* **Band mapping** (:mod:`cloudfree.io.bandmap`): the model's band set (``config.json``'s
  ``bands``, or the registry entry's) is matched by name to the file's bands (``--bands``, else
  the band descriptions, else the 13 L1C bands in product order); a missing band is an error
  unless ``--fill-band`` fills it (the documented B10 adapter for L2A).
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

from typing import Any

import numpy as np

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import RasterInfo
from cloudfree.io.bandmap import BandMap
from cloudfree.io.checks import check_optical_scale, sample_shape
from cloudfree.io.geotiff import describe_read_error

__all__ = [
    "check_optical_file",
    "optical_factor",
    "resolve_optical_nodata",
]


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
    src: Any, info: RasterInfo, bandmap: BandMap, nodata: float | None, scale: str
) -> None:
    """Check a decimated sample of the file's bands that ``bandmap`` reads (module docstring)."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError

    idx = [p + 1 for p in bandmap.file_positions]
    try:
        sample = src.read(
            idx,
            out_shape=(len(idx), *sample_shape(info.height, info.width)),
            resampling=Resampling.nearest,
        )
    except RasterioError as exc:
        raise InputFileError(info.path, describe_read_error(exc, info.path)) from None
    check_optical_scale(sample, info.path, nodata, scale, dtype=info.dtype)
