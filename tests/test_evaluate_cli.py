"""Tests of directory evaluation (cloudfree.evaluate) and `cloudfree evaluate`."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin

from cloudfree.cli import main
from cloudfree.errors import DatasetError, InputFileError
from cloudfree.evaluate import CSV_COLUMNS, center_crop, evaluate_directories
from cloudfree.io import write_raster
from cloudfree.metrics import METRIC_NAMES, get_metric_protocol, image_metrics
from cloudfree.normalization import normalize_optical

CRS = "EPSG:32632"
TRANSFORM = from_origin(600000, 5000000, 10, 10)
NAMES = ("ROIs1970_fall_139_p839", "ROIs2017_winter_112_p797", "scene_c")


def _write(path: Path, arr: np.ndarray, nodata: float | None = None) -> Path:
    return write_raster(path, arr, crs=CRS, transform=TRANSFORM, nodata=nodata)


def _dn_pair(seed: int, c: int = 13, h: int = 32, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(300, 6000, size=(c, h, w)).astype(np.uint16)
    noise = rng.normal(0, 400, size=(c, h, w))
    pred = np.clip(target + noise, 0, 12000).astype(np.uint16)  # some values above 10000
    return pred, target


@pytest.fixture
def dirs(tmp_path):
    """pred/ flat, target/ nested (pairing is by name, recursively); 3 images 13x32x32."""
    pred_dir, target_dir = tmp_path / "pred", tmp_path / "target"
    arrays = {}
    for i, name in enumerate(NAMES):
        p, t = _dn_pair(i)
        _write(pred_dir / f"{name}.tif", p)
        _write(target_dir / f"sub{i % 2}" / f"{name}.tif", t)
        arrays[name] = (p, t)
    _write(target_dir / "unused_extra.tif", _dn_pair(9)[1])  # targets without pred: ignored
    return pred_dir, target_dir, arrays


def _direct(p, t, protocol="uncrtaints", mask=None, nodata=None):
    """image_metrics on DN scaled as the evaluator documents (clip [0, 10000] / 10000)."""

    def scale(a):
        return torch.from_numpy(normalize_optical(a, "uncrtaints", nodata=nodata).array)[None]

    return image_metrics(scale(p), scale(t), protocol, mask)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_csv_that_round_trips(dirs, tmp_path):
    pred_dir, target_dir, arrays = dirs
    out = tmp_path / "reports" / "per_image.csv"
    res = CliRunner().invoke(
        main, ["evaluate", "--pred", str(pred_dir), "--target", str(target_dir), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "protocol: uncrtaints" in res.output
    assert "images:   3" in res.output
    assert str(out.resolve()) in res.output
    rows = _read_csv(out)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["id"] for r in rows] == sorted(NAMES)
    per_metric = {k: [] for k in METRIC_NAMES}
    for r in rows:
        p, t = arrays[r["id"]]
        direct = _direct(p, t)
        for k in METRIC_NAMES:
            assert float(r[k]) == float(direct[k][0])  # repr round-trips exactly
            per_metric[k].append(float(direct[k][0]))
    # The printed means equal the means of image_metrics computed directly.
    for k, label in zip(METRIC_NAMES, ("PSNR (dB)", "SSIM", "SAM (deg)", "MAE", "RMSE")):
        line = next(li for li in res.output.splitlines() if li.startswith(label))
        assert float(line.split()[-1]) == pytest.approx(np.mean(per_metric[k]), abs=6e-5)
    assert [p.name for p in out.parent.iterdir()] == ["per_image.csv"]  # no temp files


def test_evaluate_directories_returns_rows_and_means(dirs, tmp_path):
    pred_dir, target_dir, arrays = dirs
    rows, means = evaluate_directories(pred_dir, target_dir, out_csv=tmp_path / "m.csv")
    assert [r["id"] for r in rows] == sorted(NAMES)
    for k in METRIC_NAMES:
        direct = [float(_direct(*arrays[r["id"]])[k][0]) for r in rows]
        assert means[k] == pytest.approx(float(np.mean(direct)), rel=1e-12)
        assert [r[k] for r in rows] == direct
    saved = _read_csv(tmp_path / "m.csv")
    assert [float(r["sam"]) for r in saved] == [r["sam"] for r in rows]
    # no out_csv: nothing written
    rows2, _ = evaluate_directories(pred_dir, target_dir, protocol="dsen2cr")
    assert rows2[0]["mae"] == pytest.approx(5 * rows[0]["mae"], rel=1e-12)


def test_directory_evaluation_shows_a_progress_bar(dirs, capsys):
    pred_dir, target_dir, _ = dirs
    rows, _ = evaluate_directories(pred_dir, target_dir, progress=True)
    err = capsys.readouterr().err
    assert "evaluate" in err and f"{len(rows)}/{len(rows)}" in err and "image" in err
    evaluate_directories(pred_dir, target_dir)
    assert capsys.readouterr().err == ""


def test_default_out_is_in_current_directory(dirs, tmp_path, monkeypatch):
    pred_dir, target_dir, _ = dirs
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = ["evaluate", "--pred", str(pred_dir), "--target", str(target_dir)]
    res = CliRunner().invoke(main, [*args, "--protocol", "allclear"])
    assert res.exit_code == 0, res.output
    assert "protocol: allclear" in res.output
    written = cwd / "evaluation_per_image.csv"
    assert written.exists() and len(_read_csv(written)) == 3
    assert str(written) in res.output


def test_missing_target_fails_cleanly_without_csv(dirs, tmp_path):
    pred_dir, target_dir, _ = dirs
    (target_dir / "sub0" / f"{NAMES[0]}.tif").unlink()
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(
        main, ["evaluate", "--pred", str(pred_dir), "--target", str(target_dir), "--out", str(out)]
    )
    assert res.exit_code == 1
    assert f"{NAMES[0]}.tif" in res.output
    assert "no target file for 1 of 3" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.csv*"))


def test_failure_keeps_an_existing_csv_untouched(dirs, tmp_path):
    pred_dir, target_dir, _ = dirs
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    # A band-count mismatch discovered on the last pair (after two pairs were evaluated).
    _write(pred_dir / f"{NAMES[2]}.tif", _dn_pair(5, c=12)[0])
    args = ["--pred", str(pred_dir), "--target", str(target_dir), "--out", str(out)]
    res = CliRunner().invoke(main, ["evaluate", *args, "--overwrite"])  # replacing is allowed
    assert res.exit_code == 1 and NAMES[2] in res.output and "12" in res.output
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "pred", "target"]


def test_band_or_shape_mismatch_names_both_files(dirs):
    pred_dir, target_dir, _ = dirs
    _write(pred_dir / f"{NAMES[1]}.tif", _dn_pair(5, c=12)[0])
    with pytest.raises(InputFileError) as exc:
        evaluate_directories(pred_dir, target_dir)
    msg = str(exc.value)
    assert str(pred_dir / f"{NAMES[1]}.tif") in msg
    assert str(target_dir / "sub1" / f"{NAMES[1]}.tif") in msg
    assert "12 band(s)" in msg and "13 band(s)" in msg
    _write(pred_dir / f"{NAMES[1]}.tif", _dn_pair(5, h=30)[0])
    with pytest.raises(InputFileError, match="30x32 pixels but its target .* 32x32"):
        evaluate_directories(pred_dir, target_dir)


def test_missing_directories_and_empty_pred(tmp_path, dirs):
    pred_dir, target_dir, _ = dirs
    with pytest.raises(InputFileError, match="prediction directory not found"):
        evaluate_directories(tmp_path / "nope", target_dir)
    with pytest.raises(InputFileError, match="target directory not found"):
        evaluate_directories(pred_dir, tmp_path / "nope")
    empty = tmp_path / "empty"
    (empty / "deep").mkdir(parents=True)
    (empty / "deep" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"no \.tif or \.tiff files"):
        evaluate_directories(empty, target_dir)
    res = CliRunner().invoke(
        main, ["evaluate", "--pred", str(tmp_path / "nope"), "--target", str(target_dir)]
    )
    assert res.exit_code == 1 and "nope: prediction directory not found" in res.output


def test_missing_targets_are_listed_up_to_five(tmp_path):
    pred_dir, target_dir = tmp_path / "p", tmp_path / "t"
    target_dir.mkdir()
    arr = _dn_pair(0, c=2, h=4, w=4)[0]
    for i in range(7):
        _write(pred_dir / f"img{i}.tif", arr)
    with pytest.raises(DatasetError) as exc:
        evaluate_directories(pred_dir, target_dir)
    msg = str(exc.value)
    assert "img0.tif, img1.tif, img2.tif, img3.tif, img4.tif and 2 more" in msg
    assert "img5.tif" not in msg


def test_duplicate_names_are_rejected(dirs):
    pred_dir, target_dir, arrays = dirs
    _write(pred_dir / "again" / f"{NAMES[0]}.tif", arrays[NAMES[0]][0])
    with pytest.raises(DatasetError, match="two files are named"):
        evaluate_directories(pred_dir, target_dir)


def test_cli_requires_both_pred_and_target(dirs):
    pred_dir, _, _ = dirs
    res = CliRunner().invoke(main, ["evaluate", "--pred", str(pred_dir)])
    assert res.exit_code == 2
    assert "missing --target" in res.output
    res = CliRunner().invoke(main, ["evaluate"])
    assert res.exit_code == 2 and "--pred and --target" in res.output
    res = CliRunner().invoke(main, ["evaluate", "--pred", "a", "--target", "b", "--protocol", "x"])
    assert res.exit_code == 2 and "Invalid value for '--protocol': 'x' is not one of" in res.output


def test_center_crop_is_applied(dirs):
    pred_dir, target_dir, arrays = dirs
    # GLF-CR's 128 crop on 32x32 images keeps them whole (as its loader does).
    rows, _ = evaluate_directories(pred_dir, target_dir, protocol="glf_cr")
    p, t = arrays[rows[0]["id"]]
    assert rows[0]["ssim"] == float(_direct(p, t, "glf_cr")["ssim"][0])
    crop16 = dataclasses.replace(get_metric_protocol("glf_cr"), name="glf_cr16", center_crop=16)
    rows, _ = evaluate_directories(pred_dir, target_dir, protocol=crop16)
    expected = _direct(p[:, 8:24, 8:24], t[:, 8:24, 8:24], "glf_cr")
    for k in METRIC_NAMES:
        assert rows[0][k] == float(expected[k][0])
    a = np.arange(2 * 7 * 9).reshape(2, 7, 9)
    np.testing.assert_array_equal(center_crop(a, 4), a[:, 1:5, 2:6])
    assert center_crop(a, None) is a


def test_band_selection(dirs, tmp_path):
    pred_dir, target_dir, arrays = dirs
    rows, _ = evaluate_directories(pred_dir, target_dir, bands="rgb")
    p, t = arrays[rows[0]["id"]]
    expected = _direct(p[[3, 2, 1]], t[[3, 2, 1]])
    assert rows[0]["sam"] == float(expected["sam"][0])
    # 3-band files are taken as already holding the selected bands
    p3, t3 = tmp_path / "p3", tmp_path / "t3"
    _write(p3 / "a.tif", p[[3, 2, 1]])
    _write(t3 / "a.tif", t[[3, 2, 1]])
    rows3, _ = evaluate_directories(p3, t3, bands="B04,B03,B02")
    assert rows3[0]["sam"] == rows[0]["sam"]
    with pytest.raises(InputFileError, match="has 3 band"):
        evaluate_directories(p3, t3, bands=["B02", "B03"])


def test_nodata_pixels_are_excluded(tmp_path):
    p, t = _dn_pair(3)
    t = t.copy()
    t[:, 5:9, 10:20] = 65535
    _write(tmp_path / "p" / "x.tif", p)
    _write(tmp_path / "t" / "x.tif", t, nodata=65535)
    rows, _ = evaluate_directories(tmp_path / "p", tmp_path / "t")
    mask = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    mask[..., 5:9, 10:20] = False
    expected = _direct(p, t, mask=mask, nodata=65535)  # nodata filled with 0, then masked
    for k in METRIC_NAMES:
        assert rows[0][k] == float(expected[k][0])
        assert math.isfinite(rows[0][k])
    # the pixel-wise metrics do not depend on the fill
    unfilled = _direct(p, t, mask=mask)
    for k in ("mae", "rmse", "psnr", "sam"):
        assert rows[0][k] == pytest.approx(float(unfilled[k][0]), rel=1e-12)
