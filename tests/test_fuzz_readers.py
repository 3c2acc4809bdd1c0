"""Fuzz the raster and weights readers (issue 11): whatever bytes a file holds, reading it
either succeeds or raises one of cloudfree's own errors (a :class:`CloudfreeError` naming the
file, one line), never another exception, and never writes a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from cloudfree.errors import CloudfreeError
from cloudfree.io import Window, raster_info, read_raster, write_raster
from cloudfree.models import (
    create_model,
    load_official_checkpoint,
    load_pretrained,
    save_pretrained,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TINY_DSEN2CR = {"width": 4, "num_blocks": 1}


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in d.rglob("*")
        if p.is_file()
    }


@contextmanager
def _sandbox(name: str, content: bytes) -> Iterator[Path]:
    """``content`` written to ``name`` in a fresh directory; the test fails when reading it
    added, removed or changed any file there (the current directory included)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        before, cwd_before = _snapshot(d), sorted(os.listdir("."))
        yield path
        assert _snapshot(d) == before, "a reader wrote a file"
        assert sorted(os.listdir(".")) == cwd_before


def _expect_ours(read: Callable[[], Any], path: Path) -> Any:
    """``read()`` returns, or raises a CloudfreeError whose message is one line naming ``path``."""
    try:
        return read()
    except CloudfreeError as exc:
        message = str(exc)
        assert path.name in message and "\n" not in message, message
        assert "See previous exception" not in message and "weights_only" not in message
        return None


# --------------------------------------------------------------------------- rasters
def _geotiff_bytes(tiled: bool) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    size = 512 if tiled else 48
    arr = rng.integers(0, 10000, (3, size, size), dtype=np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.tif"
        write_raster(path, arr, crs="EPSG:32632", transform=from_origin(0, 0, 10, 10), nodata=0)
        return path.read_bytes(), arr


VALID = {tiled: _geotiff_bytes(tiled) for tiled in (False, True)}


def _read_all(path: Path) -> Any:
    info = raster_info(path)
    full = read_raster(path)
    window = read_raster(path, bands=[0], window=Window(3, 5, 7, 9))
    return info, full, window


@FUZZ
@given(content=st.binary(max_size=4096))
def test_random_bytes_as_a_raster(content: bytes) -> None:
    with _sandbox("random.tif", content) as path:
        assert _expect_ours(lambda: _read_all(path), path) is None


@FUZZ
@given(tiled=st.booleans(), fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_geotiff(tiled: bool, fraction: float) -> None:
    data, arr = VALID[tiled]
    cut = data[: int(len(data) * fraction)]
    with _sandbox("cut.tif", cut) as path:
        result = _expect_ours(lambda: read_raster(path), path)
        if result is not None:  # a cut that keeps every byte read must give the same pixels
            assert np.array_equal(result.array, arr)


@FUZZ
@given(
    tiled=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), min_size=1, max_size=12),
)
def test_random_tiff_headers(tiled: bool, edits: list[tuple[int, int]]) -> None:
    """Bytes of the header and the first directory (offsets, counts, tags) overwritten."""
    data = bytearray(VALID[tiled][0])
    for offset, value in edits:
        data[offset] = value
    with _sandbox("header.tif", bytes(data)) as path:
        _expect_ours(lambda: _read_all(path), path)


@FUZZ
@given(magic=st.sampled_from([b"II*\x00", b"MM\x00*", b"II+\x00"]), rest=st.binary(max_size=512))
def test_tiff_magic_with_random_content(magic: bytes, rest: bytes) -> None:
    with _sandbox("magic.tif", magic + rest) as path:
        _expect_ours(lambda: _read_all(path), path)


# --------------------------------------------------------------------------- weights
def _official_bytes() -> bytes:
    model = create_model("dsen2cr", **TINY_DSEN2CR)
    official = {}
    for key, value in model.state_dict().items():  # our names -> the official port's
        part, _, rest = key.partition(".")
        if part == "blocks":
            _, conv, rest = rest.split(".", 2)
            key = f"model.2.conv_block.{0 if conv == 'conv1' else 2}.{rest}"
        else:
            key = f"model.{0 if part == 'head' else 3}.{rest}"
        official[key] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pth"
        torch.save(official, path)
        assert load_official_checkpoint("dsen2cr", path, **TINY_DSEN2CR) is not None
        return path.read_bytes()


def _pretrained_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        d = save_pretrained(create_model("dsen2cr", **TINY_DSEN2CR), Path(tmp) / "w")
        return {p.name: p.read_bytes() for p in d.iterdir()}


OFFICIAL = _official_bytes()
PRETRAINED = _pretrained_files()


def _load_official(path: Path) -> Any:
    return load_official_checkpoint("dsen2cr", path, **TINY_DSEN2CR)


@contextmanager
def _pretrained_sandbox(weights: bytes) -> Iterator[Path]:
    with _sandbox("w/model.safetensors", weights) as path:
        (path.parent / "config.json").write_bytes(PRETRAINED["config.json"])
        yield path
        (path.parent / "config.json").unlink()  # ours, not the reader's


@FUZZ
@given(content=st.binary(max_size=4096))
def test_random_bytes_as_weights(content: bytes) -> None:
    with _sandbox("random.pth", content) as path:
        assert _expect_ours(lambda: _load_official(path), path) is None
    with _pretrained_sandbox(content) as path:
        _expect_ours(lambda: load_pretrained(path.parent), path)


@FUZZ
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_pth(fraction: float) -> None:
    with _sandbox("cut.pth", OFFICIAL[: int(len(OFFICIAL) * fraction)]) as path:
        assert _expect_ours(lambda: _load_official(path), path) is None


@FUZZ
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_safetensors(fraction: float) -> None:
    data = PRETRAINED["model.safetensors"]
    with _pretrained_sandbox(data[: int(len(data) * fraction)]) as path:
        assert _expect_ours(lambda: load_pretrained(path.parent), path) is None


@FUZZ
@given(
    header=st.one_of(
        st.binary(max_size=64),
        st.dictionaries(
            st.text(max_size=8),
            st.fixed_dictionaries(
                {
                    "dtype": st.sampled_from(["F32", "F16", "I64", "BOOL", "X"]),
                    "shape": st.lists(st.integers(-2, 10**6), max_size=3),
                    "data_offsets": st.lists(st.integers(-1, 10**6), max_size=3),
                }
            ),
            max_size=3,
        ),
    ),
    tail=st.binary(max_size=64),
)
def test_random_safetensors_headers(header: bytes | dict[str, Any], tail: bytes) -> None:
    """The 8-byte header length, then a (random or structured) JSON header, then data."""
    import json

    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    content = len(raw).to_bytes(8, "little") + raw + tail
    with _pretrained_sandbox(content) as path:
        _expect_ours(lambda: load_pretrained(path.parent), path)


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_the_valid_files_load(kind: str) -> None:
    """The fuzzed originals themselves load (so the tests above start from good files)."""
    if kind == "pth":
        with _sandbox("c.pth", OFFICIAL) as path:
            assert _load_official(path) is not None
    else:
        with _pretrained_sandbox(PRETRAINED["model.safetensors"]) as path:
            assert load_pretrained(path.parent) is not None
