"""Band specifications for Sentinel-2 L1C and Sentinel-1 GRD (SPEC section 1).

A :class:`BandSet` is an ordered tuple of :class:`Band` entries, each knowing its name, its index
in the full product, the scale that turns stored values into physical units and an additive
offset. Models and checkpoints record the band set they were trained with by name, so a 13-band
L1C model can never silently receive RGB or a 12-band L2A product.

Sentinel-2 L1C stores reflectance x 10000 as uint16 DN. From processing baseline 04.00 (products
after 25 January 2022) DN carry a +1000 offset (``RADIO_ADD_OFFSET = -1000``). SEN12MS-CR and
SEN12MS-CR-TS (2018) do not. :func:`harmonize_pb04` removes the offset; it is never applied
silently: callers pass ``pb04_offset=True`` explicitly where their data need it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cloudfree.errors import ConfigError

__all__ = [
    "Band",
    "BandSet",
    "S2_L1C",
    "S2_RGB",
    "S1_GRD",
    "S2_L1C_NAMES",
    "S1_NAMES",
    "PB04_OFFSET",
    "get_band_set",
    "harmonize_pb04",
]

#: Additive DN offset of Sentinel-2 products from processing baseline 04.00 on.
PB04_OFFSET = 1000


@dataclass(frozen=True)
class Band:
    """One spectral or polarisation channel.

    ``physical = stored * scale + offset``; for S2 L1C ``scale = 1e-4`` and ``offset = 0``
    (reflectance), for S1 ``scale = 1`` and ``offset = 0`` (already in dB).
    """

    name: str
    index: int  # position in the full product (0-based)
    scale: float = 1.0
    offset: float = 0.0
    wavelength_nm: float | None = None
    resolution_m: int | None = None


@dataclass(frozen=True)
class BandSet:
    """An ordered selection of bands from one sensor product."""

    sensor: str
    bands: tuple[Band, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def indices(self) -> tuple[int, ...]:
        """Positions of these bands in the full product (use to slice a full array)."""
        return tuple(b.index for b in self.bands)

    def __len__(self) -> int:
        return len(self.bands)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.bands)

    def position(self, name: str) -> int:
        """Position of band ``name`` inside this set (names canonicalised as in :meth:`subset`:
        case-insensitive, ``B2`` is ``B02``)."""
        try:
            return self.names.index(_canonical(name))
        except ValueError:
            raise ConfigError(
                f"band {name!r} is not in this {self.sensor} band set {list(self.names)}"
            ) from None

    def subset(self, names: Iterable[str]) -> BandSet:
        """The bands named ``names``, in that order (case-insensitive, ``B8A`` or ``B8a``)."""
        lookup = {b.name: b for b in self.bands}
        chosen = []
        for raw in names:
            key = _canonical(raw)
            if key not in lookup:
                raise ConfigError(
                    f"unknown band {raw!r} for {self.sensor}; valid names: {list(self.names)}"
                )
            chosen.append(lookup[key])
        if not chosen:
            raise ConfigError("a band subset needs at least one band")
        if len(set(b.name for b in chosen)) != len(chosen):
            raise ConfigError(f"duplicate band names in {list(names)}")
        return BandSet(self.sensor, tuple(chosen))

    def select(self, array: np.ndarray, axis: int = 0) -> np.ndarray:
        """Slice a full-product array (all bands of the sensor) down to this set."""
        return np.take(array, list(self.indices), axis=axis)


def _canonical(name: str) -> str:
    n = name.strip().upper()
    if n.startswith("B") and n[1:].isdigit() and len(n) == 2:
        n = f"B0{n[1:]}"  # B2 -> B02
    return n


_S2_TABLE = [
    # name, central wavelength (nm), resolution (m)
    ("B01", 443, 60),
    ("B02", 490, 10),
    ("B03", 560, 10),
    ("B04", 665, 10),
    ("B05", 705, 20),
    ("B06", 740, 20),
    ("B07", 783, 20),
    ("B08", 842, 10),
    ("B8A", 865, 20),
    ("B09", 945, 60),
    ("B10", 1375, 60),
    ("B11", 1610, 20),
    ("B12", 2190, 20),
]

#: Sentinel-2 L1C, 13 bands in product order, DN = reflectance x 10000.
S2_L1C = BandSet(
    "S2_L1C",
    tuple(
        Band(name, i, scale=1e-4, offset=0.0, wavelength_nm=wl, resolution_m=res)
        for i, (name, wl, res) in enumerate(_S2_TABLE)
    ),
)
S2_L1C_NAMES: tuple[str, ...] = S2_L1C.names

#: True-colour RGB = (B04, B03, B02).
S2_RGB = S2_L1C.subset(["B04", "B03", "B02"])

#: Sentinel-1 GRD backscatter in dB, VV then VH.
S1_GRD = BandSet("S1_GRD", (Band("VV", 0), Band("VH", 1)))
S1_NAMES: tuple[str, ...] = S1_GRD.names

_NAMED_SETS = {"all": S2_L1C, "l1c": S2_L1C, "13": S2_L1C, "rgb": S2_RGB}


def get_band_set(spec: str | Sequence[str] | BandSet | None) -> BandSet:
    """Resolve an optical band selection.

    ``None``, ``"all"``, ``"l1c"`` or ``"13"`` give all 13 L1C bands; ``"rgb"`` gives
    (B04, B03, B02); a comma-separated string or a sequence of names gives that subset.
    """
    if spec is None:
        return S2_L1C
    if isinstance(spec, BandSet):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in _NAMED_SETS:
            return _NAMED_SETS[key]
        return S2_L1C.subset([s for s in spec.split(",") if s.strip()])
    return S2_L1C.subset(spec)


def harmonize_pb04(dn: np.ndarray, offset: int = PB04_OFFSET) -> np.ndarray:
    """Remove the processing-baseline 04.00 offset: ``max(dn - offset, 0)`` as float32.

    Zero stays zero (it is the Sentinel-2 nodata value), everything else is shifted.
    """
    arr = np.asarray(dn, dtype=np.float32)
    out = np.clip(arr - float(offset), 0.0, None)
    out[arr == 0] = 0.0
    return out
