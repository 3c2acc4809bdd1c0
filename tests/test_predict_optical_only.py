"""`cloudfree predict` without ``--sar``: optical-only models (spa_gan, a temporal U-TAE without
SAR, composites) read no S1 at all; a model that needs SAR is refused with one clear line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import read_raster
from cloudfree.models import create_model, load_official_checkpoint, save_pretrained
from cloudfree.models.api import ModelBatch, run_model
from cloudfree.normalization import denormalize_optical, normalize_optical
from cloudfree.predict import (
    PredictOptions,
    SarOnGrid,
    load_model,
    predict_scene,
    read_scene_list,
)
from cloudfree.predict.timeseries import (
    CompositePredictor,
    dated_inputs,
    predict_time_series,
    read_series_csv,
)
from cloudfree.synth import write_scene_pair
from cloudfree.synth.temporal_writers import write_time_series_scene

TILE = ["--tile-size", "64", "--overlap", "8", "--quiet"]  # one tile: the whole scene
UTAE_SMALL = dict(encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16], n_head=4, d_model=16)


def _run(*args: str):
    return CliRunner().invoke(main, ["predict", *args])


def _no_output_left(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}*"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    return write_scene_pair(
        tmp_path_factory.mktemp("scene"), height=40, width=56, seed=4, cloud_cover=0.4
    )


@pytest.fixture(scope="module")
def spa_gan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(create_model("spa_gan", width=4), tmp_path_factory.mktemp("sg") / "w")


@pytest.fixture(scope="module")
def dsen2cr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("dsen2cr", width=8, num_blocks=1)
    return save_pretrained(model, tmp_path_factory.mktemp("ds") / "w")


@pytest.fixture
def sar_opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every S1 file the pipeline opens (opening one fails the run: nothing may be opened)."""
    opened: list[Path] = []

    def refuse(self: SarOnGrid) -> None:
        opened.append(self.path)
        raise AssertionError(f"S1 opened: {self.path}")

    monkeypatch.setattr(SarOnGrid, "open", refuse)
    return opened


def _partial_s1(scene, path: Path, cols: int) -> Path:
    """The scene's S1 with its first ``cols`` columns NaN (declared nodata)."""
    with rasterio.open(scene.s1) as src:
        arr = src.read()
        profile = {**src.profile, "nodata": float("nan")}
    arr[:, :, :cols] = np.nan
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


# ------------------------------------------------------------------------------- one scene
def test_official_spa_gan_predicts_without_sar(shared_path, scene, tmp_path, sar_opened) -> None:
    """The official RICE1 weights on a 13-band scene and no --sar: the output equals a direct
    ``run_model(optical=..., sar=None)`` of the same model on the spa_gan_8bit input, every
    optical pixel is predicted and no S1 is opened."""
    ckpt = shared_path("parity/spa_gan_rice1/checkpoint.pth")
    out = tmp_path / "pred.tif"
    res = _run("--optical", str(scene.cloudy), "--weights", str(ckpt), "--model", "spa_gan",
               "--out", str(out), *TILE)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sar_opened == [] and "100.0 % valid" in res.output and "note:" not in res.output
    with rasterio.open(out) as ds:
        tags = ds.tags()
        got = ds.read().astype(np.float64)
    assert tags["SOURCE_SAR"] == "none" and tags["SAR_RESAMPLING"] == "none (no SAR)"
    assert tags["NORMALIZATION_PROTOCOL"] == "spa_gan_8bit"
    dn = read_raster(scene.cloudy).array[[3, 2, 1]]
    x = torch.from_numpy(normalize_optical(dn, "spa_gan_8bit").array)[None]
    model = load_official_checkpoint("spa_gan", ckpt).eval()
    with torch.no_grad():
        pred = run_model(model, optical=x, sar=None).pred[0].numpy()
    want = np.clip(np.round(denormalize_optical(pred, "spa_gan_8bit")), 1, 10000)
    np.testing.assert_allclose(got, want, atol=1.0)


def test_given_sar_is_checked_and_limits_the_output(scene, spa_gan_dir, tmp_path) -> None:
    """The decision for S1 given to an optical-only model: read, checked and aligned as for any
    model (its footprint limits the output; a note says so), its values never used: where both
    runs predict, they agree exactly."""
    s1 = _partial_s1(scene, tmp_path / "s1_half.tif", cols=20)
    without, with_sar = tmp_path / "a.tif", tmp_path / "b.tif"
    res = _run("--optical", str(scene.cloudy), "--weights", str(spa_gan_dir), "--out",
               str(without), *TILE)  # fmt: skip
    assert res.exit_code == 0, res.output
    res = _run("--optical", str(scene.cloudy), "--sar", str(s1), "--weights", str(spa_gan_dir),
               "--out", str(with_sar), *TILE)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "uses no SAR" in res.output and "covers only" in res.output
    a, b = read_raster(without).array, read_raster(with_sar).array
    assert (a > 0).all()
    assert (b[:, :, :20] == 0).all() and (b[:, :, 20:] > 0).all()
    np.testing.assert_array_equal(a[:, :, 20:], b[:, :, 20:])
    with rasterio.open(with_sar) as ds:
        assert ds.tags()["SOURCE_SAR"] == "s1_half.tif"
    junk = tmp_path / "junk.tif"
    junk.write_text("not a GeoTIFF")
    out = tmp_path / "c.tif"
    res = _run("--optical", str(scene.cloudy), "--sar", str(junk), "--weights", str(spa_gan_dir),
               "--out", str(out), *TILE)  # fmt: skip
    assert res.exit_code == 1 and "junk.tif" in res.output and _no_output_left(out)


def test_model_that_needs_sar_is_refused_without_it(scene, dsen2cr_dir, tmp_path) -> None:
    out = tmp_path / "out" / "pred.tif"
    res = _run("--optical", str(scene.cloudy), "--weights", str(dsen2cr_dir), "--out", str(out),
               *TILE)  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "model 'dsen2cr' needs Sentinel-1" in lines[0] and "--sar" in lines[0]
    assert _no_output_left(out)
    with pytest.raises(ConfigError, match="'dsen2cr' needs Sentinel-1"):
        predict_scene(load_model(dsen2cr_dir), scene.cloudy, None, out, PredictOptions())
    assert _no_output_left(out)
    # a forgotten --out is reported before any model is loaded, and names --sar as well
    res = _run("--optical", str(scene.cloudy), "--weights", str(tmp_path / "nowhere"))
    assert res.exit_code == 1 and "--out" in res.output and "--sar unless" in res.output


def test_api_without_sar_for_an_optical_only_network(scene, tmp_path, sar_opened) -> None:
    """``predict_scene(..., sar=None)`` with ``dsen2cr_no_sar`` (the 13-band no-SAR
    ablation): an identity network (zeroed tail) gives the input back on every pixel."""
    model = create_model("dsen2cr_no_sar", width=8, num_blocks=1)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    loaded = load_model(save_pretrained(model, tmp_path / "w"))
    opts = PredictOptions(tile_size=32, overlap=8, progress=False)
    r = predict_scene(loaded, scene.cloudy, None, tmp_path / "o.tif", opts)
    assert sar_opened == [] and r.sar_coverage is None and r.valid_fraction == 1.0
    assert r.tiles == 4 and r.tiles_run == 4
    np.testing.assert_array_equal(read_raster(r.path).array, read_raster(scene.cloudy).array)


# ------------------------------------------------------------------------------- list mode
def test_scene_list_sar_column_is_optional(tmp_path: Path) -> None:
    csv = tmp_path / "l.csv"
    csv.write_text("optical,sar\na.tif,\nb.tif,s1.tif\n")
    jobs = read_scene_list(csv, tmp_path / "o")
    assert [j.sar for j in jobs] == [None, tmp_path / "s1.tif"]
    csv.write_text("optical,out\na.tif,x.tif\n")
    (job,) = read_scene_list(csv, tmp_path / "o")
    assert job.sar is None and job.out == tmp_path / "o" / "x.tif"
    csv.write_text("optical,s1\na.tif,b.tif\n")
    with pytest.raises(InputFileError, match="missing sar; unknown s1"):
        read_scene_list(csv, tmp_path)


def test_list_mode_without_sar(scene, spa_gan_dir, dsen2cr_dir, tmp_path, sar_opened) -> None:
    """spa_gan: an empty sar column and an absent one give the single-scene output; a model
    that needs SAR refuses the whole list up front (no scene is written)."""
    single = tmp_path / "single.tif"
    res = _run("--optical", str(scene.cloudy), "--weights", str(spa_gan_dir), "--out",
               str(single), *TILE)  # fmt: skip
    assert res.exit_code == 0, res.output
    want = read_raster(single).array
    for header, row in (("optical,sar,out", f"{scene.cloudy},,p.tif"),
                        ("optical,out", f"{scene.cloudy},p.tif")):  # fmt: skip
        csv = tmp_path / "scenes.csv"
        csv.write_text(f"{header}\n{row}\n")
        out_dir = tmp_path / header.replace(",", "_")
        res = _run("--list", str(csv), "--out-dir", str(out_dir), "--weights",
                   str(spa_gan_dir), *TILE)  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "1 scene(s) predicted" in res.output
        np.testing.assert_array_equal(read_raster(out_dir / "p.tif").array, want)
    assert sar_opened == []
    csv = tmp_path / "mixed.csv"
    csv.write_text(f"optical,sar,out\n{scene.cloudy},{scene.s1},a.tif\n{scene.cloudy},,b.tif\n")
    out_dir = tmp_path / "ds"
    res = _run("--list", str(csv), "--out-dir", str(out_dir), "--weights", str(dsen2cr_dir), *TILE)
    assert res.exit_code == 1
    last = res.output.strip().splitlines()[-1]
    assert "model 'dsen2cr' needs Sentinel-1" in last and "line(s) 3" in last, last
    assert not out_dir.exists() or not list(out_dir.iterdir())


# ------------------------------------------------------------------------------- time series
@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return write_time_series_scene(
        tmp_path_factory.mktemp("ts"), height=40, width=48, n_dates=3, seed=2
    )


def test_temporal_network_without_sar(series, tmp_path, sar_opened) -> None:
    """U-TAE built with ``in_sar=0`` (needs_sar False) on three dates without --sar: the output
    equals a direct ``run_model`` with ``sar=None`` on the whole series; no S1 is opened."""
    torch.manual_seed(0)
    model = create_model("utae_cr", in_sar=0, **UTAE_SMALL).eval()
    weights = save_pretrained(model, tmp_path / "w")
    args = []
    for r in series:
        args += ["--optical", str(r["s2"])]
    out = tmp_path / "o.tif"
    res = _run(*args, "--weights", str(weights), "--out", str(out), *TILE)
    assert res.exit_code == 0, res.output
    assert sar_opened == [] and "from 3 dates" in res.output
    with rasterio.open(out) as ds:
        assert ds.tags()["SOURCE_SAR"] == "none"
        got = ds.read().astype(np.float64)
    x = np.stack([normalize_optical(read_raster(r["s2"]).array, "uncrtaints").array
                  for r in series])[None]  # fmt: skip
    days = [(dt.date.fromisoformat(r["date"]) - dt.date(2014, 4, 3)).days for r in series]
    batch = ModelBatch(torch.from_numpy(x), None, torch.tensor([days], dtype=torch.float32),
                       torch.ones(1, 3, dtype=torch.bool))  # fmt: skip
    with torch.no_grad():
        pred = run_model(model, batch).pred[0].numpy()
    want = np.clip(np.round(denormalize_optical(pred, "uncrtaints")), 1, 10000)
    np.testing.assert_allclose(got, want, atol=1.0)


def test_series_sar_rules(series, tmp_path: Path) -> None:
    """A network that needs SAR is refused without it; S1 on some dates only is refused; a
    composite runs without S1 and gives what it gives with S1 (it never reads S1 values)."""
    s2 = [r["s2"] for r in series]
    items, _ = dated_inputs(s2, [])
    assert all(it.sar is None for it in items)
    with pytest.raises(ConfigError, match="on every date or on none"):
        dated_inputs(s2, [series[0]["s1"], "", ""])
    torch.manual_seed(0)
    net = load_model(save_pretrained(create_model("standin_temporal"), tmp_path / "n"),
                     temporal=True)  # fmt: skip
    out = tmp_path / "never.tif"
    with pytest.raises(ConfigError, match="'standin_temporal' needs Sentinel-1.*--sar"):
        predict_time_series(net, items, out, PredictOptions(tile_size=64, progress=False))
    assert _no_output_left(out)
    csv = tmp_path / "series.csv"
    csv.write_text("date,optical,mask\n" + "".join(
        f"{r['date']},{r['s2']},{r['mask']}\n" for r in series))  # fmt: skip
    no_s1, _ = read_series_csv(csv)
    assert all(it.sar is None for it in no_s1)
    with_s1, _ = dated_inputs(s2, [r["s1"] for r in series], masks=[r["mask"] for r in series])
    opts = PredictOptions(tile_size=64, overlap=8, progress=False)
    a = predict_time_series(CompositePredictor("mosaic"), no_s1, tmp_path / "a.tif", opts)
    b = predict_time_series(CompositePredictor("mosaic"), with_s1, tmp_path / "b.tif", opts)
    assert a.tags["SOURCE_SAR"] == "none" and a.sar_coverage is None
    np.testing.assert_array_equal(read_raster(a.path).array, read_raster(b.path).array)
