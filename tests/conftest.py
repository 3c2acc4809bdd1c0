"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_dir() -> Path | None:
    """The shared reference folder: $CLOUDFREE_SHARED_DATA, else ../shared next to the repo."""
    env = os.environ.get("CLOUDFREE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if (c / "parity").is_dir() or (c / "data").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to the shared data (parity fixtures, real patches); skips the test when absent."""
    d = find_shared_dir()
    if d is None:
        pytest.skip(
            "shared reference data not found (set CLOUDFREE_SHARED_DATA or provide ../shared)"
        )
    return d
