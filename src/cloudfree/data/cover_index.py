"""A small JSON cache of per-sample cloud cover, so stratified sampling needs no re-detection.

The index file records how the cover was measured (mask method, threshold, PB 04.00 offset and
the index format version); an index measured differently is ignored and rebuilt. It lives next to
the data (``<root>/.cloudfree/cover_<method>_t<threshold>.json``) when the root is writable,
otherwise in ``$XDG_CACHE_HOME/cloudfree`` (default ``~/.cache/cloudfree``) under a name derived
from the root's absolute path. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cloudfree.io.atomic import atomic_write_text

__all__ = ["CoverIndex", "INDEX_VERSION"]

INDEX_VERSION = 1


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudfree"


class CoverIndex:
    """Maps sample id -> cloud cover fraction for one measurement configuration."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self._covers: dict[str, float] = {}
        self._dirty = False
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            if data.get("meta") == meta:
                self._covers = {str(k): float(v) for k, v in data.get("covers", {}).items()}

    @classmethod
    def for_dataset(
        cls,
        root: Path,
        *,
        method: str,
        threshold: float,
        pb04_offset: bool = False,
        path: str | Path | None = None,
    ) -> CoverIndex:
        meta = {
            "version": INDEX_VERSION,
            "method": method,
            "threshold": float(threshold),
            "pb04_offset": bool(pb04_offset),
        }
        name = f"cover_{method}_t{threshold:g}{'_pb04' if pb04_offset else ''}.json"
        if path is None:
            local = root / ".cloudfree"
            if os.access(root, os.W_OK) and (not local.exists() or os.access(local, os.W_OK)):
                path = local / name
            else:
                digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
                path = _cache_home() / digest / name
        return cls(Path(path), meta)

    def get(self, sample_id: str) -> float | None:
        return self._covers.get(sample_id)

    def put(self, sample_id: str, cover: float) -> None:
        self._covers[sample_id] = float(cover)
        self._dirty = True

    def __len__(self) -> int:
        return len(self._covers)

    def save(self) -> None:
        """Write the index atomically (no-op when nothing changed)."""
        if not self._dirty:
            return
        payload = {"meta": self.meta, "covers": self._covers}
        atomic_write_text(self.path, json.dumps(payload, indent=0, sort_keys=True))
        self._dirty = False
