"""Tests of `cloudfree cloudmask` on small GeoTIFFs written here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from cloudfree.bands import harmonize_pb04
from cloudfree.cli import main
from cloudfree.cloudmask import carf_cloud_mask, rule_based

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 4600000.0, 10.0, 10.0)


def _scene(bands: int = 13, size: int = 64, seed: int = 0) -> np.ndarray:
    """Farmland-like DN with a bright cloud block and a dark (shadow-like) block."""
    rng = np.random.default_rng(seed)
    x = rng.integers(600, 1800, size=(bands, size, size)).astype(np.uint16)
    x[:, 8:28, 8:28] = rng.integers(5000, 6000, size=(bands, 20, 20))
    x[:, 40:56, 36:56] = rng.integers(100, 250, size=(bands, 16, 20))
    return x


def _write(path: Path, array: np.ndarray, nodata: float | None = None) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=array.shape[0],
        height=array.shape[1],
        width=array.shape[2],
        dtype=array.dtype,
        crs=CRS,
        transform=TRANSFORM,
        nodata=nodata,
    ) as dst:
        dst.write(array)
    return path


def _run(*args: str):
    return CliRunner().invoke(main, ["cloudmask", *args])


def test_writes_georeferenced_int8_mask(tmp_path):
    x = _scene()
    src = _write(tmp_path / "cloudy.tif", x)
    out = tmp_path / "sub" / "mask.tif"
    res = _run(str(src), str(out))
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "int8"
        assert ds.crs.to_string() == CRS
        assert ds.transform == TRANSFORM
        assert ds.descriptions == ("cloud_mask",)
        tags = ds.tags()
        mask = ds.read(1)
    assert tags["encoding"] == "-1 shadow, 0 clear, 1 cloud"
    assert tags["method"] == "rule_based"
    assert float(tags["threshold"]) == 0.2
    expected = rule_based(x)
    np.testing.assert_array_equal(mask, expected)
    assert (mask[12:24, 12:24] == 1).all()  # the bright block is cloud
    assert (mask == -1).any()  # and the dark block shadow
    cloud = np.mean(expected == 1) * 100
    shadow = np.mean(expected == -1) * 100
    assert f"cloud {cloud:.2f} %" in res.output
    assert f"shadow {shadow:.2f} %" in res.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["mask.tif"]  # no temp file left


@pytest.mark.parametrize(
    ("method", "threshold", "reference"),
    [
        ("rule_based", "0.5", lambda x: rule_based(x, threshold=0.5)),
        ("rule_based_uncrtaints", None, lambda x: rule_based(x, variant="uncrtaints")),
        ("carf", None, lambda x: carf_cloud_mask(x).astype(np.int8)),
        ("carf", "0.6", lambda x: carf_cloud_mask(x, threshold=0.6).astype(np.int8)),
    ],
)
def test_methods_and_threshold(tmp_path, method, threshold, reference):
    x = _scene(seed=1)
    src = _write(tmp_path / "cloudy.tif", x)
    out = tmp_path / "mask.tif"
    args = [str(src), str(out), "--method", method]
    if threshold is not None:
        args += ["--threshold", threshold]
    res = _run(*args)
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), reference(x))
        assert ds.tags()["method"] == method
        assert float(ds.tags()["threshold"]) == float(threshold or 0.2)


def test_pb04_offset(tmp_path):
    x = _scene(seed=2)
    x[:, 30:40, :] = np.uint16(2000)  # moderately bright: cloud only while the +1000 is kept
    shifted = x + np.uint16(1000)
    src = _write(tmp_path / "pb04.tif", shifted)
    out_h = tmp_path / "harmonized.tif"
    out_raw = tmp_path / "raw.tif"
    assert _run(str(src), str(out_h), "--pb04-offset").exit_code == 0
    assert _run(str(src), str(out_raw)).exit_code == 0
    with rasterio.open(out_h) as a, rasterio.open(out_raw) as b:
        harmonized, raw = a.read(1), b.read(1)
        assert a.tags()["pb04_offset"] == "True"
    np.testing.assert_array_equal(harmonized, rule_based(harmonize_pb04(shifted)))
    np.testing.assert_array_equal(harmonized, rule_based(x))
    np.testing.assert_array_equal(raw, rule_based(shifted))
    assert (raw == 1).sum() > (harmonized == 1).sum()


def test_wrong_band_count_fails_cleanly(tmp_path):
    src = _write(tmp_path / "twelve.tif", _scene(bands=12))
    out = tmp_path / "mask.tif"
    res = _run(str(src), str(out))
    assert res.exit_code == 1
    assert "twelve.tif" in res.output and "12 band" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twelve.tif"]


def test_missing_input_fails_cleanly(tmp_path):
    out = tmp_path / "mask.tif"
    res = _run(str(tmp_path / "nope.tif"), str(out))
    assert res.exit_code == 1
    assert "nope.tif" in res.output and "not found" in res.output
    assert not out.exists()


def test_unreadable_input_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a tiff")
    out = tmp_path / "mask.tif"
    res = _run(str(bad), str(out))
    assert res.exit_code == 1 and "bad.tif" in res.output
    assert not out.exists()


def test_refuses_to_overwrite_input(tmp_path):
    x = _scene()
    src = _write(tmp_path / "cloudy.tif", x)
    res = _run(str(src), str(src))
    assert res.exit_code == 1 and "overwrite the input" in res.output
    with rasterio.open(src) as ds:
        np.testing.assert_array_equal(ds.read(), x)


def test_unknown_method_is_rejected(tmp_path):
    src = _write(tmp_path / "cloudy.tif", _scene())
    res = _run(str(src), str(tmp_path / "m.tif"), "--method", "fmask")
    assert res.exit_code == 2 and "fmask" in res.output
    assert not (tmp_path / "m.tif").exists()


def test_s2cloudless_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "s2cloudless", None)
    src = _write(tmp_path / "cloudy.tif", _scene())
    out = tmp_path / "mask.tif"
    res = _run(str(src), str(out), "--method", "s2cloudless")
    assert res.exit_code == 1
    assert "pip install" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_nodata_pixels_are_clear_and_excluded(tmp_path):
    x = _scene(seed=3)
    x[:, :, :6] = 0  # a nodata border
    src = _write(tmp_path / "border.tif", x, nodata=0)
    out = tmp_path / "mask.tif"
    res = _run(str(src), str(out))
    assert res.exit_code == 0, res.output
    valid = np.ones(x.shape[1:], bool)
    valid[:, :6] = False
    with rasterio.open(out) as ds:
        mask = ds.read(1)
        assert ds.nodata == -128  # nodata pixels are declared, not "clear"
    assert (mask[:, :6] == -128).all()
    expected = rule_based(x, valid=valid)
    expected[~valid] = -128
    np.testing.assert_array_equal(mask, expected)
    # without the nodata declaration the zero border drags the shadow thresholds down
    assert not np.array_equal(mask, rule_based(x))


def test_s2cloudless_method(tmp_path):
    pytest.importorskip("s2cloudless")
    from cloudfree.cloudmask import s2cloudless_mask

    x = _scene(seed=4)
    src = _write(tmp_path / "cloudy.tif", x)
    out = tmp_path / "mask.tif"
    res = _run(str(src), str(out), "--method", "s2cloudless")
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert float(ds.tags()["threshold"]) == 0.4
        np.testing.assert_array_equal(ds.read(1), s2cloudless_mask(x)[1].astype(np.int8))
