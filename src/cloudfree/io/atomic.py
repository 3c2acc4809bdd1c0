"""Atomic writes: a temporary file in the target directory, renamed onto the final name only
when complete, so a reader never sees a partial file.

:func:`temporary_sibling` and :func:`publish` are the two halves every writer of the package
uses (GeoTIFFs, PNGs, weights, text); :func:`atomic_write_text` / :func:`atomic_write_json`
do both for small text files. ``tempfile.mkstemp`` creates its file with mode 0600; the
published file gets the mode a plain ``open(path, "w")`` would give it (0666 minus the umask),
so outputs stay readable by the user's group as usual.

Decisions:

* **Our temporaries have one pattern**: ``.<final name>.<8 random characters><suffix>``, the
  suffix starting with ``.tmp`` (``.tmp``, ``.tmp.tif``, ``.tmp.png``). A run killed with
  SIGKILL leaves such files behind; the next write of the same final name removes them
  (:func:`remove_stale_temporaries`, called by :func:`temporary_sibling` unless told not to),
  and nothing else: any other file, hidden or not, is left alone. Two processes writing the
  same final name at once are not supported (the second would remove the first's temporary).
* **Durable before visible**: :func:`publish` flushes the temporary file to disk (``fsync``)
  before the rename, so a late write error (full disk, I/O error) fails the write instead of
  leaving an empty or partial file under the final name.
* **Failures name the file**: an ``OSError`` while creating, writing or publishing is raised
  as :class:`~cloudfree.errors.InputFileError` naming the final file
  (:func:`cloudfree.io.outputs.write_failure`); the temporary file is removed.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cloudfree.io.outputs import write_failure

__all__ = [
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "json_compatible",
    "publish",
    "remove_stale_temporaries",
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


#: ``tempfile.mkstemp``'s random part: 8 characters of this alphabet.
_RANDOM = r"[a-z0-9_]{8}"


def _temporary_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.{_RANDOM}\.tmp(\.[A-Za-z0-9]+)?")


def remove_stale_temporaries(final: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of ``final`` left by a killed run (our naming pattern only,
    regular files only); return what was removed. Unremovable ones are left in place."""
    target = Path(final)
    pattern = _temporary_pattern(target.name)
    removed: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob.escape(target.name)}.*"))
    except OSError:
        return removed
    for p in candidates:
        if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except OSError:
                continue
            removed.append(p)
    return removed


def temporary_sibling(
    final: str | os.PathLike[str], suffix: str = ".tmp", *, clean_stale: bool = True
) -> Path:
    """A new empty hidden file ``.<name>.<random><suffix>`` next to ``final`` (its directory
    is created) for a writer to fill before :func:`publish`.

    ``clean_stale`` first removes temporaries of ``final`` left by a killed run
    (:func:`remove_stale_temporaries`); a writer that needs a second temporary for the same
    file while the first is open passes False.
    """
    if not suffix.startswith(".tmp"):
        raise ValueError(f"temporary suffixes start with '.tmp', got {suffix!r}")
    target = Path(final)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if clean_stale:
            remove_stale_temporaries(target)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise write_failure(target, exc) from None
    try:
        os.close(fd)
    except BaseException:  # e.g. SystemExit from the CLI's SIGTERM handler: leave nothing
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def publish(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Flush the complete temporary file ``tmp`` to disk, give it the usual file mode and
    rename it onto ``final`` (atomic on one file system); return ``final``."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except OSError as exc:
        raise write_failure(final, exc) from None
    return Path(final)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    final = Path(path)
    tmp = temporary_sibling(final)
    try:
        tmp.write_bytes(data)
        publish(tmp, final)
    except OSError as exc:
        raise write_failure(final, exc) from None
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
    """Write ``payload`` atomically as strict JSON, which every JSON reader reads: NaN and
    infinities become ``null`` (:func:`json_compatible` with ``nonfinite_as_none``), never the
    bare ``NaN`` / ``Infinity`` that Python's ``json`` writes by default."""
    strict = json_compatible(payload, nonfinite_as_none=True)
    return atomic_write_text(path, json.dumps(strict, indent=indent, allow_nan=False) + "\n")
