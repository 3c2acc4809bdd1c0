"""Time-series scene prediction (`cloudfree.predict.timeseries`, `cloudfree predict` with
several dates): dates, grids, composites against direct computation, networks, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject

from cloudfree.cli import main
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import read_raster, write_raster
from cloudfree.models import create_model, save_pretrained
from cloudfree.predict import PredictOptions, load_model
from cloudfree.predict.timeseries import (
    CompositePredictor,
    acquisition_date,
    dated_inputs,
    predict_time_series,
    read_series_csv,
)
from cloudfree.synth.temporal_writers import write_time_series_scene

FAST = {"tile_size": 64, "overlap": 16, "progress": False}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return write_time_series_scene(
        tmp_path_factory.mktemp("series"), height=90, width=110, n_dates=4, seed=5
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(create_model("standin_temporal"), tmp_path_factory.mktemp("n") / "n")


def _csv(tmp: Path, scene: list[dict], masks: bool = True) -> Path:
    lines = ["date,optical,sar" + (",mask" if masks else "")]
    for r in scene:
        row = f"{r['date']},{r['s2']},{r['s1']}" + (f",{r['mask']}" if masks else "")
        lines.append(row)
    path = tmp / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------- dates
def test_acquisition_dates_from_tags_and_names(scene, tmp_path: Path) -> None:
    assert acquisition_date(scene[0]["s2"]) == dt.date.fromisoformat(scene[0]["date"])
    for name, want in (
        ("S2A_MSIL1C_20180601T103021_N0206_R108_T32UNU_20180601T124300.tif", dt.date(2018, 6, 1)),
        ("area_2019_07_15_b.tif", dt.date(2019, 7, 15)),
        ("x-2020-02-29.tif", dt.date(2020, 2, 29)),
    ):
        p = tmp_path / name
        write_raster(p, np.ones((1, 4, 4), np.uint16), crs="EPSG:32632",
                     transform=rasterio.Affine(10, 0, 0, 0, -10, 0))  # fmt: skip
        assert acquisition_date(p) == want
    nodate = tmp_path / "scene.tif"
    write_raster(nodate, np.ones((1, 4, 4), np.uint16), crs="EPSG:32632",
                 transform=rasterio.Affine(10, 0, 0, 0, -10, 0))  # fmt: skip
    assert acquisition_date(nodate) is None
    with pytest.raises(InputFileError, match=r"scene\.tif: has no acquisition date"):
        dated_inputs([nodate], [scene[0]["s1"]])


def test_series_order_lengths_and_duplicates(scene) -> None:
    s2 = [r["s2"] for r in scene]
    s1 = [r["s1"] for r in scene]
    items, note = dated_inputs(s2[::-1], s1[::-1])
    assert [it.optical for it in items] == s2 and "sorted" in note
    assert dated_inputs(s2, s1)[1] is None
    with pytest.raises(ConfigError, match="4 optical file.*3 SAR"):
        dated_inputs(s2, s1[:3])
    with pytest.raises(InputFileError, match="has the date .* too"):
        dated_inputs([s2[0], s2[0]], [s1[0], s1[1]])


# ------------------------------------------------------------------------------- composites
@pytest.mark.parametrize("name", ["least_cloudy", "mosaic", "most_recent_clear"])
def test_composites_equal_the_direct_computation(scene, tmp_path: Path, name: str) -> None:
    """With the simulator's true masks (CSV mask column), the tiled composite equals the
    composite of the whole arrays (DN clipped to 0..10000), to the output's rounding."""
    from cloudfree.models.composites import COMPOSITES

    items, _ = read_series_csv(_csv(tmp_path, scene))
    r = predict_time_series(CompositePredictor(name), items, tmp_path / "o.tif",
                            PredictOptions(**FAST))  # fmt: skip
    got = read_raster(r.path).array.astype(np.float64)
    dn = np.stack([read_raster(x["s2"]).array for x in scene]).astype(np.float32)
    cloudy = np.stack([read_raster(x["mask"]).array[0] != 0 for x in scene])
    opt = torch.from_numpy(np.clip(dn, 0, 10000) / 10000)[None]
    days = torch.tensor([[(dt.date.fromisoformat(x["date"]) - dt.date(2014, 4, 3)).days
                          for x in scene]], dtype=torch.float32)  # fmt: skip
    fn = COMPOSITES[name]
    args = (opt, torch.from_numpy(cloudy)[None, :, None], None)
    want = (fn(*args, days) if name == "most_recent_clear" else fn(*args))[0][0].numpy()
    want = np.clip(np.round(want.astype(np.float64) * 10000), 1, 10000)
    assert np.abs(got - want).max() <= 1
    assert r.tags["METHOD"].startswith(f"temporal composite {name}")
    assert r.tags["TARGET_DATE"] == scene[-1]["date"] and r.valid_fraction == 1.0


def test_all_cloudy_stack_says_which_pixels_had_no_clear_observation(scene, tmp_path) -> None:
    masks = []
    for r in scene:
        p = tmp_path / f"cloud_{r['date']}.tif"
        info = read_raster(r["mask"])
        write_raster(p, np.ones_like(info.array), crs=info.crs, transform=info.transform)
        masks.append(p)
    items, _ = dated_inputs([r["s2"] for r in scene], [r["s1"] for r in scene], masks=masks)
    res = predict_time_series(CompositePredictor("mosaic"), items, tmp_path / "o.tif",
                              PredictOptions(**FAST))  # fmt: skip
    assert res.tags["NO_CLEAR_FRACTION"] == "1.0000"
    out = read_raster(res.path).array
    assert (out > 0).all()  # the least cloudy date's values, never zeros
    side = read_raster(tmp_path / "o_no_clear.tif")
    assert side.array.dtype == np.uint8 and (side.array == 1).all()
    (tmp_path / "o2_no_clear.tif").write_bytes(b"keep")  # a user's file of the sidecar's name
    with pytest.raises(InputFileError, match="--overwrite"):
        predict_time_series(CompositePredictor("mosaic"), items, tmp_path / "o2.tif",
                            PredictOptions(**FAST))  # fmt: skip
    assert (tmp_path / "o2_no_clear.tif").read_bytes() == b"keep"
    assert not (tmp_path / "o2.tif").exists()


# ------------------------------------------------------------------------------- networks
def test_a_temporal_network_predicts_any_date_of_the_series(scene, net, tmp_path) -> None:
    items, _ = dated_inputs([r["s2"] for r in scene], [r["s1"] for r in scene])
    loaded = load_model(net, temporal=True)
    r = predict_time_series(loaded, items, tmp_path / "o.tif", PredictOptions(**FAST),
                            target_date=scene[1]["date"])  # fmt: skip
    assert r.tags["TARGET_DATE"] == scene[1]["date"]
    assert r.tags["DATES_USED"] == ",".join(x["date"] for x in scene)
    with rasterio.open(r.path) as src:
        assert src.count == 13 and src.tags()["MODEL"] == "standin_temporal"
        assert (src.height, src.width) == (90, 110)
    with pytest.raises(ConfigError, match="none of the S2 dates"):
        predict_time_series(loaded, items, tmp_path / "x.tif", PredictOptions(**FAST),
                            target_date="2017-01-01")  # fmt: skip
    with pytest.raises(ConfigError, match="mono-temporal"):
        load_model(save_pretrained(create_model("dsen2cr", width=8, num_blocks=1),
                                   tmp_path / "mono"), temporal=True)  # fmt: skip


def test_dates_on_other_grids_are_warped_onto_the_target(scene, net, tmp_path) -> None:
    """Date 0 in EPSG:4326: warped onto the target grid; a date elsewhere: an error."""
    src = read_raster(scene[0]["s2"])
    dst_crs = "EPSG:4326"
    bounds = rasterio.transform.array_bounds(src.height, src.width, src.transform)
    tr, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *bounds)
    dst = np.zeros((13, h, w), np.uint16)
    reproject(src.array, dst, src_transform=src.transform, src_crs=src.crs, dst_transform=tr,
              dst_crs=dst_crs, resampling=Resampling.bilinear, dst_nodata=0)  # fmt: skip
    geo = tmp_path / f"geo_{scene[0]['date']}.tif"
    write_raster(geo, dst, crs=dst_crs, transform=tr, nodata=0)
    s2 = [geo, *(r["s2"] for r in scene[1:])]
    items, _ = dated_inputs(s2, [r["s1"] for r in scene])
    r = predict_time_series(load_model(net, temporal=True), items, tmp_path / "o.tif",
                            PredictOptions(**FAST))  # fmt: skip
    assert r.valid_fraction > 0.95
    far = tmp_path / f"far_{scene[0]['date']}.tif"
    write_raster(far, src.array, crs=src.crs,
                 transform=src.transform * rasterio.Affine.translation(100000, 0))  # fmt: skip
    items, _ = dated_inputs([far, *s2[1:]], [r["s1"] for r in scene])
    out = tmp_path / "never.tif"
    with pytest.raises(InputFileError, match=r"far_.*does not overlap"):
        predict_time_series(load_model(net, temporal=True), items, out, PredictOptions(**FAST))
    assert not out.exists()


# ------------------------------------------------------------------------------- CLI
def test_cli_series_modes(scene, net, tmp_path: Path) -> None:
    runner = CliRunner()
    pairs = []
    for r in scene[::-1]:
        pairs += ["--optical", str(r["s2"]), "--sar", str(r["s1"])]
    out = tmp_path / "cli.tif"
    res = runner.invoke(main, ["predict", *pairs, "--weights", str(net), "--out", str(out),
                               "--tile-size", "64", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "from 4 dates" in res.output and "were sorted" in res.output
    csv_path = _csv(tmp_path, scene, masks=False)
    res = runner.invoke(main, ["predict", "--series", str(csv_path), "--composite", "mosaic",
                               "--out", str(tmp_path / "m.tif"), "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mosaic composite" in res.output
    both = ["--composite", "mosaic", "--weights", str(net), "--out", str(tmp_path / "z.tif")]
    res = runner.invoke(main, ["predict", "--series", str(csv_path), *both])
    assert res.exit_code == 1 and "either --weights" in res.output
    res = runner.invoke(main, ["predict", *pairs[:4], "--optical", str(scene[0]["s2"]),
                               "--weights", str(net), "--out",
                               str(tmp_path / "y.tif")])  # fmt: skip
    assert res.exit_code == 1 and "2 optical file(s) but 1 SAR file(s)" in res.output, res.output
    res = runner.invoke(main, ["predict", *pairs, "--composite", "mosaic", "--out",
                               str(scene[0]["s2"]), "--overwrite"])  # fmt: skip
    assert res.exit_code == 1 and "would overwrite the input" in res.output
