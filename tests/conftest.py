"""Shared test fixtures.

Shared reference data (parity fixtures, real patches) lives in ``$CLOUDFREE_SHARED_DATA`` or
``../shared`` next to the repository. Tests that need it take the :func:`shared_dir` fixture
(the folder) or :func:`shared_path` (one file or folder in it). Without the folder they skip.
With ``CLOUDFREE_REQUIRE_SHARED=1`` (set by ``.ci/run``) a skip is turned into a failure
whenever the folder is *present* but what a test needs is missing: a clean clone without
``../shared`` still skips, a clone with an incomplete or broken one fails instead of quietly
skipping the parity tests. (A case that is present but unreadable fails in any mode: the
test reads it and the error propagates.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: environment variable that makes missing shared data a failure where the folder exists
REQUIRE_SHARED_ENV = "CLOUDFREE_REQUIRE_SHARED"


def _candidates() -> list[Path]:
    env = os.environ.get("CLOUDFREE_SHARED_DATA")
    return [*([Path(env)] if env else []), REPO_ROOT.parent / "shared"]


def find_shared_dir() -> Path | None:
    """The shared reference folder: $CLOUDFREE_SHARED_DATA, else ../shared next to the repo."""
    for c in _candidates():
        if (c / "parity").is_dir() or (c / "data").is_dir():
            return c
    return None


def shared_required() -> bool:
    """Whether missing shared data fails (``CLOUDFREE_REQUIRE_SHARED=1``) instead of skipping."""
    return os.environ.get(REQUIRE_SHARED_ENV, "") == "1"


def missing_shared(what: str) -> NoReturn:
    """Skip the test because ``what`` is missing from the shared folder, or fail it when
    :func:`shared_required` (the folder exists, so CI must not pass without the test)."""
    if shared_required():
        pytest.fail(f"{what} is missing from the shared folder ({REQUIRE_SHARED_ENV}=1)")
    pytest.skip(f"{what} not available in the shared folder")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to the shared data (parity fixtures, real patches); skips the test when absent.

    With ``CLOUDFREE_REQUIRE_SHARED=1``, a folder that exists but holds neither ``parity/``
    nor ``data/`` (or a ``$CLOUDFREE_SHARED_DATA`` that names no folder) fails instead.
    """
    d = find_shared_dir()
    if d is not None:
        return d
    present = [c for c in _candidates() if c.is_dir()]
    if shared_required() and (present or os.environ.get("CLOUDFREE_SHARED_DATA")):
        pytest.fail(
            f"shared folder {[str(c) for c in present] or os.environ['CLOUDFREE_SHARED_DATA']} "
            f"has neither parity/ nor data/ ({REQUIRE_SHARED_ENV}=1)"
        )
    pytest.skip("shared reference data not found (set CLOUDFREE_SHARED_DATA or provide ../shared)")


@pytest.fixture(scope="session")
def shared_path(shared_dir: Path) -> Callable[[str], Path]:
    """``shared_path("parity/glf_cr/case.json")``: that path in the shared folder; a missing
    one skips the test (fails it with ``CLOUDFREE_REQUIRE_SHARED=1``: :func:`missing_shared`)."""

    def get(relative: str) -> Path:
        path = shared_dir / relative
        if not path.exists():
            missing_shared(relative)
        return path

    return get


@pytest.fixture
def quiet_lightning() -> None:
    """Lightning's info lines off (tests that train: ``pytest.mark.usefixtures``)."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module: tiny models run fastest on one thread, and it keeps the
    timing steady on a busy machine (several threads per process oversubscribe shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
