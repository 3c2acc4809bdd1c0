"""The benchmark's work cells: one (entry, shard) pair each, stored so that a killed benchmark
resumes where it stopped and ranks of a ``torchrun`` job share the work.

Decisions:

* **Shards** are consecutive runs of ``shard_size`` images of the evaluated dataset
  (:func:`cloudfree.distributed.shard_ranges`), dealt round-robin to the ranks; every shard is
  scored with the same batches whatever the number of processes, so a sharded run computes
  exactly the values of one process, and the merged tables are byte-identical.
* **A cell** is the per-image values of one entry (model or baseline) on one shard, under every
  configured metric protocol: ``<out>/cells/shard_<i>/<entry>.json``. Python's ``json``
  writes floats in their shortest round-trip form (and NaN as ``NaN``), so a value read back
  is the value measured, bit for bit. Cells are written atomically, one as soon as its shard
  is scored, so a kill loses at most the shard in progress.
* **Fingerprints.** Each cell records a SHA-256 of everything its values depend on: the
  dataset section (root resolved), the number of images, the batch and shard size, the
  metric protocols and bands, the device type, the cloudfree and torch versions, and the
  entry itself (a model's registry name, constructor arguments, normalisation, bands and the
  SHA-256 of its weights; a baseline's name and the first model's normalisation and bands,
  in which baselines are computed). A cell whose fingerprint, shard range or format differs,
  or which cannot be read, is stale: it is scored again and replaced (the ``cells`` folder is
  the benchmark's own working state, not a user's file). So adding a model to a finished
  benchmark scores only that model, and changing its weights re-scores only it.
* Cells stay after the run (they are small: a few floats per image, metric, region and
  protocol); delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudfree.evaluate.model_eval import ImageScores

__all__ = [
    "CELLS_DIR",
    "CELL_FORMAT",
    "CellStore",
    "fingerprint",
]

CELLS_DIR = "cells"
CELL_FORMAT = 1


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _safe(entry: str) -> str:
    """A file name for an entry key: its safe characters, plus a short hash when any were
    replaced (two keys never share a file)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", entry)
    if clean != entry or clean.startswith("."):
        clean = f"{clean}-{hashlib.sha256(entry.encode()).hexdigest()[:8]}"
    return clean


@dataclass
class CellStore:
    """The cells of one benchmark output directory (module docstring).

    Attributes:
        root: the ``cells`` folder.
        fingerprints: entry -> fingerprint of its cells.
        shards: ``[start, stop)`` of every shard.
    """

    root: Path
    fingerprints: dict[str, str]
    shards: list[tuple[int, int]]

    def path(self, shard: int, entry: str) -> Path:
        return self.root / f"shard_{shard:05d}" / f"{_safe(entry)}.json"

    def read(self, shard: int, entry: str) -> ImageScores | None:
        """The stored values of ``entry`` on ``shard``, or None when the cell is missing or
        stale (module docstring)."""
        path = self.path(shard, entry)
        try:
            cell = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        start, stop = self.shards[shard]
        try:
            if (
                cell.get("format") != CELL_FORMAT
                or cell.get("entry") != entry
                or cell.get("fingerprint") != self.fingerprints[entry]
                or cell.get("range") != [start, stop]
            ):
                return None
            s = cell["scores"]
            scores = ImageScores(
                [str(i) for i in s["ids"]],
                [float(c) for c in s["covers"]],
                [float(c) for c in s["changed"]],
                {p: {entry: v} for p, v in s["values"].items()},
                {p: {entry: u} for p, u in s["uncertainty"].items()},
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if len(scores.ids) != stop - start:
            return None
        return scores

    def missing(self, shard: int, entries: Sequence[str]) -> list[str]:
        """The entries of ``entries`` without a valid cell on ``shard``."""
        return [e for e in entries if self.read(shard, e) is None]

    def write(self, shard: int, scores: ImageScores, *, rank: int = 0) -> list[Path]:
        """One cell per entry of ``scores`` (values of ``shard``), each written atomically
        (``rank``: the process that scored it, recorded for the record only)."""
        from cloudfree.io.atomic import atomic_write_text

        start, stop = self.shards[shard]
        written = []
        for entry in scores.entries:
            one = scores.only(entry)
            cell = {
                "format": CELL_FORMAT,
                "entry": entry,
                "fingerprint": self.fingerprints[entry],
                "range": [start, stop],
                "scored_by_rank": rank,
                "scores": {
                    "ids": one.ids,
                    "covers": one.covers,
                    "changed": one.changed,
                    "values": {p: v[entry] for p, v in one.values.items()},
                    "uncertainty": {p: u[entry] for p, u in one.uncertainty.items()},
                },
            }
            path = self.path(shard, entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(atomic_write_text(path, json.dumps(cell, allow_nan=True) + "\n"))
        return written

    def gather(self, entries: Sequence[str]) -> ImageScores:
        """Every shard of every entry as one :class:`ImageScores` (all cells must be valid).

        Raises:
            RuntimeError: a cell is missing or stale (another rank failed, or the folder
                changed under the run).
        """
        per_shard = []
        for i in range(len(self.shards)):
            parts = []
            for entry in entries:
                scores = self.read(i, entry)
                if scores is None:
                    raise RuntimeError(
                        f"benchmark cell {self.path(i, entry)} is missing or stale after "
                        "every rank finished; run the benchmark again (it resumes)"
                    )
                parts.append(scores)
            per_shard.append(ImageScores.combine(parts))
        return ImageScores.join(per_shard)
