"""Atomic writes: a temporary file in the target directory, renamed onto the final name only
when complete, so a reader never sees a partial file.

:func:`temporary_sibling` and :func:`publish` are the two halves every writer of the package
uses (GeoTIFFs, PNGs, weights, text); :func:`atomic_write_text` / :func:`atomic_write_json`
do both for small text files. ``tempfile.mkstemp`` creates its file with mode 0600; the
published file gets the mode a plain ``open(path, "w")`` would give it (0666 minus the umask),
so outputs stay readable by the user's group as usual.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "json_compatible",
    "publish",
    "temporary_sibling",
]


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_sibling(final: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new empty hidden file ``.<name>.<random><suffix>`` next to ``final`` (its directory
    is created) for a writer to fill before :func:`publish`."""
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def publish(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Give the complete temporary file ``tmp`` the usual file mode and rename it onto
    ``final`` (atomic on one file system); return ``final``."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)
    return Path(final)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    final = Path(path)
    tmp = temporary_sibling(final)
    try:
        tmp.write_bytes(data)
        publish(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, no newline translation) to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
) -> Path:
    """Write ``rows`` (dicts keyed by ``columns``) as CSV atomically; return the path.

    Strings are written as they are, every other value as ``repr(float(value))``: the
    shortest text that reads back to the same float (``nan`` and ``inf`` as such).
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([v if isinstance(v := row[c], str) else repr(float(v)) for c in columns])
    return atomic_write_text(path, buffer.getvalue())


def json_compatible(value: Any, *, nonfinite_as_none: bool = False) -> Any:
    """``value`` with what JSON cannot hold converted: dict keys to ``str``, tuples to lists,
    numpy scalars to Python numbers, other objects (paths, dtypes) to ``str``; with
    ``nonfinite_as_none``, NaN and infinities become None (strict JSON, ``null``)."""
    if isinstance(value, dict):
        return {
            str(k): json_compatible(v, nonfinite_as_none=nonfinite_as_none)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [json_compatible(v, nonfinite_as_none=nonfinite_as_none) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalar
    if isinstance(value, float):
        return None if nonfinite_as_none and not math.isfinite(value) else value
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def atomic_write_json(path: str | os.PathLike[str], payload: Any, *, indent: int = 2) -> Path:
    """Write ``payload`` as JSON (NaN and infinity allowed, as Python writes them) atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=indent, allow_nan=True) + "\n")
