import numpy as np
import pytest
import rasterio
import rasterio.errors
from rasterio.transform import from_origin

from cloudfree.errors import InputFileError
from cloudfree.io import RasterWriter, Window, raster_info, read_raster, write_raster

CRS = "EPSG:32650"
TRANSFORM = from_origin(500000, 4000000, 10, 10)


def _array(c=3, h=40, w=50):
    return np.arange(c * h * w, dtype=np.uint16).reshape(c, h, w)


def test_write_read_round_trip_keeps_metadata(tmp_path):
    arr = _array()
    out = write_raster(
        tmp_path / "a.tif",
        arr,
        crs=CRS,
        transform=TRANSFORM,
        nodata=0,
        descriptions=["B04", "B03", "B02"],
        tags={"model": "x"},
    )
    r = read_raster(out)
    np.testing.assert_array_equal(r.array, arr)
    assert r.crs.to_epsg() == 32650
    assert r.transform == TRANSFORM
    assert r.nodata == 0
    assert r.descriptions == ("B04", "B03", "B02")
    assert r.tags["model"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]  # no temporary left over


def test_windowed_read_and_band_subset(tmp_path):
    arr = _array()
    write_raster(tmp_path / "a.tif", arr, crs=CRS, transform=TRANSFORM)
    r = read_raster(tmp_path / "a.tif", bands=[2, 0], window=Window(5, 10, 20, 15))
    np.testing.assert_array_equal(r.array, arr[[2, 0], 10:25, 5:25])
    assert r.transform.c == TRANSFORM.c + 5 * 10 and r.transform.f == TRANSFORM.f - 10 * 10


def test_windowed_writer_is_atomic(tmp_path):
    arr = _array(h=300, w=280)
    path = tmp_path / "tiles.tif"
    with RasterWriter(
        path, count=3, height=300, width=280, dtype="uint16", crs=CRS, transform=TRANSFORM
    ) as w:
        for top in range(0, 300, 128):
            for left in range(0, 280, 128):
                win = Window(left, top, min(128, 280 - left), min(128, 300 - top))
                w.write(arr[:, top : top + win.height, left : left + win.width], win)
        assert not path.exists()  # only the temporary exists while writing
    np.testing.assert_array_equal(read_raster(path).array, arr)


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "broken.tif"
    with pytest.raises(RuntimeError):
        with RasterWriter(
            path, count=1, height=8, width=8, dtype="float32", crs=CRS, transform=TRANSFORM
        ) as w:
            w.write(np.zeros((1, 8, 8)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_cog_output(tmp_path):
    arr = _array(c=2, h=600, w=600).astype(np.float32)
    path = write_raster(tmp_path / "c.tif", arr, crs=CRS, transform=TRANSFORM, cog=True)
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1)
    np.testing.assert_array_equal(read_raster(path).array, arr)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match=r"missing\.tif: file not found"):
        read_raster(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(InputFileError, match=r"bad\.tif: not a readable raster"):
        read_raster(bad)
    write_raster(tmp_path / "a.tif", _array(), crs=CRS, transform=TRANSFORM)
    with pytest.raises(InputFileError, match=r"a\.tif: has 3 band\(s\), expected 13"):
        read_raster(tmp_path / "a.tif", expected_count=13)
    assert raster_info(tmp_path / "a.tif").shape == (3, 40, 50)


def test_atomic_text_and_json(tmp_path, monkeypatch):
    import json

    from cloudfree.io import atomic

    path = atomic.atomic_write_json(tmp_path / "sub" / "a.json", {"x": float("nan"), "y": 1})
    assert json.loads(path.read_text())["y"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    from cloudfree.errors import InputFileError

    with pytest.raises(InputFileError, match=r"b\.txt: could not write the file \(disk full\)"):
        atomic.atomic_write_text(tmp_path / "sub" / "b.txt", "hello")
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no partial or temp file


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_usual_file_mode(tmp_path, umask):
    """Atomic writers publish with 0666 minus the umask, as open() would, not mkstemp's 0600."""
    import os

    from PIL import Image

    from cloudfree.io.atomic import atomic_write_text
    from cloudfree.models import create_model, save_pretrained
    from cloudfree.predict.quicklook import save_png

    model = create_model("glf_cr", width=16, num_blocks=1, layers_per_block=1, growth=8)
    old = os.umask(umask)
    try:
        paths = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            write_raster(tmp_path / "a.tif", _array(), crs=CRS, transform=TRANSFORM),
            save_png(Image.new("RGB", (4, 4)), tmp_path / "a.png"),
            save_pretrained(model, tmp_path / "w") / "model.safetensors",
        ]
    finally:
        os.umask(old)
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_atomic_csv_round_trips_floats_exactly(tmp_path):
    import csv
    import math

    from cloudfree.io.atomic import atomic_write_csv

    rows = [{"id": "a", "x": 0.1 + 0.2, "y": float("nan")}, {"id": "b", "x": 1e-300, "y": 3}]
    path = atomic_write_csv(tmp_path / "t.csv", ["id", "x", "y"], rows)
    back = list(csv.DictReader(open(path, newline="")))
    assert [r["id"] for r in back] == ["a", "b"]
    assert float(back[0]["x"]) == 0.1 + 0.2 and math.isnan(float(back[0]["y"]))
    assert float(back[1]["x"]) == 1e-300 and back[1]["y"] == "3.0"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_json_compatible_converts_numpy_paths_and_nonfinite():
    import json
    import math
    from pathlib import Path

    from cloudfree.io.atomic import json_compatible

    value = {1: (np.float32(1.5), np.int64(3), np.bool_(True)), "p": Path("a/b"), "n": math.nan}
    out = json_compatible(value)
    assert out == {"1": [1.5, 3, True], "p": "a/b", "n": out["n"]} and math.isnan(out["n"])
    assert type(out["1"][1]) is int and type(out["1"][2]) is bool
    strict = json_compatible(value, nonfinite_as_none=True)
    assert strict["n"] is None
    json.dumps(strict, allow_nan=False)  # strict JSON


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crs": "not a crs"}, "WKT could not be parsed"),  # rasterio.open rejects the CRS
        ({"dtype": "complex256"}, "invalid dtype"),  # no GDAL data type for it
        ({"blocksize": 20, "height": 40, "width": 40}, "multiples of 16"),  # bad tile blocks
    ],
)
def test_failed_open_leaves_nothing(tmp_path, kwargs, message):
    """A writer whose ``__enter__`` fails removes its temporary file (nothing is left)."""
    args = {"count": 1, "height": 8, "width": 8, "dtype": "float32", "crs": CRS}
    args.update(kwargs)
    path = tmp_path / "never.tif"
    with pytest.raises((ValueError, TypeError, rasterio.errors.RasterioError), match=message):
        with RasterWriter(path, transform=TRANSFORM, **args):
            pytest.fail("the with block must not run")
    assert list(tmp_path.iterdir()) == []


def test_json_outputs_are_strict_json(tmp_path):
    """NaN and infinities are written as null, never the bare NaN / Infinity of Python's json."""
    import json

    from cloudfree.io.atomic import atomic_write_json

    path = atomic_write_json(
        tmp_path / "s.json", {"psnr": float("inf"), "sam": float("nan"), "n": [1.5, float("-inf")]}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(text, parse_constant=refuse) == {"psnr": None, "sam": None, "n": [1.5, None]}
