"""Sampling helpers: stratification by cloud-cover bin."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloudfree.errors import ConfigError, DatasetError

__all__ = [
    "COVER_BINS",
    "COVER_BIN_SETS",
    "MMCANET_COVER_BINS",
    "cover_bin_labels",
    "assign_cover_bins",
    "get_cover_bins",
    "stratified_indices",
]

#: The GLF-CR test protocol's cover bins: 0-20, 20-40, 40-60, 60-80, 80-100 % (GLF-CR paper,
#: Sec. 5.1: 800 test samples drawn from each; Sec. 5.3 / Fig. 6 report per bin).
COVER_BINS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

#: Paper 000's (MMCANet) six cloud-cover scenarios: 0-10, 10-20, 20-40, 40-60, 60-80,
#: 80-100 % (its Fig. 6, qualitative only: the paper publishes no per-bin numbers).
MMCANET_COVER_BINS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)

#: Named cover bin sets (the benchmark's ``strata.cover_bins``).
COVER_BIN_SETS: dict[str, tuple[float, ...]] = {
    "glf_cr": COVER_BINS,
    "mmcanet": MMCANET_COVER_BINS,
}


def get_cover_bins(name: str) -> tuple[float, ...]:
    """The edges of the named cover bin set (:data:`COVER_BIN_SETS`).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    try:
        return COVER_BIN_SETS[name]
    except (KeyError, TypeError):
        known = ", ".join(COVER_BIN_SETS)
        raise ConfigError(f"unknown cover bin set {name!r}; known: {known}") from None


def cover_bin_labels(bins: Sequence[float] = COVER_BINS) -> list[str]:
    """Human labels of the bins, e.g. ``["0-20", "20-40", ...]``."""
    return [f"{round(lo * 100):d}-{round(hi * 100):d}" for lo, hi in zip(bins[:-1], bins[1:])]


def assign_cover_bins(covers: np.ndarray, bins: Sequence[float] = COVER_BINS) -> np.ndarray:
    """Bin number of each cover value. Bins are half-open ``[lo, hi)`` except the last, which
    includes its upper edge (so 100 % cover falls in 80-100 and 20 % exactly in 20-40)."""
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"cover bins must be increasing edges, got {list(bins)}")
    c = np.asarray(covers, dtype=np.float64)
    idx = np.searchsorted(edges, c, side="right") - 1
    idx[c == edges[-1]] = len(edges) - 2
    idx[(c < edges[0]) | (c > edges[-1])] = -1
    return idx


def stratified_indices(
    covers: np.ndarray,
    *,
    per_bin: int,
    bins: Sequence[float] = COVER_BINS,
    seed: int = 0,
    strict: bool = False,
) -> list[int]:
    """Draw ``per_bin`` sample indices from each cover bin without replacement (seeded).

    A bin with fewer samples contributes all it has, unless ``strict`` is set, in which case
    it is an error. The result is sorted by bin, then by index within the bin.
    """
    if per_bin < 1:
        raise ConfigError(f"per_bin must be >= 1, got {per_bin}")
    labels = assign_cover_bins(covers, bins)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    names = cover_bin_labels(bins)
    for b, name in enumerate(names):
        members = np.flatnonzero(labels == b)
        if len(members) < per_bin and strict:
            raise DatasetError(f"cover bin {name} % has {len(members)} samples, need {per_bin}")
        take = rng.choice(members, size=min(per_bin, len(members)), replace=False)
        chosen.extend(sorted(int(i) for i in take))
    return chosen
