"""Real full and read-only file systems for the tests of failed writes (not a test module).

A small tmpfs needs root (and a kernel that lets the container mount one): tests skip with the
reason where it cannot be had. :func:`read_only_dir` gives a read-only directory for any user:
``chmod 555`` for a normal user, a tmpfs remounted read-only for root (root ignores modes).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "64k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` for the duration (skip when impossible)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(disk: Path) -> None:
    """Fill ``disk`` to the last byte (unbuffered writes until ENOSPC)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)


def remount_read_only(disk: Path) -> None:
    res = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {res.stderr.strip()}")


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """``path`` (an empty directory is created) made read-only for the duration."""
    if os.name != "posix":
        pytest.skip("read-only directories are tested on POSIX systems")
    if os.geteuid() == 0:
        with tmpfs(path) as disk:
            remount_read_only(disk)
            yield disk
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)
