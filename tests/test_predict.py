"""Tests of scene prediction (`cloudfree.predict`): tiling, alignment, nodata, outputs.

Models are tiny DSen2-CR networks (width 8, one block). The *identity* model has its tail conv
zeroed, so its output is exactly its optical input (DSen2-CR's long skip): any seam, shift or
rounding error of the tiling shows up as a difference from the input.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from cloudfree import __version__
from cloudfree.bands import S2_L1C_NAMES
from cloudfree.cli import main
from cloudfree.cloudmask import compute_cloud_mask
from cloudfree.errors import ConfigError
from cloudfree.io import raster_info
from cloudfree.models import create_model, save_pretrained, weights_sha256
from cloudfree.predict import (
    PredictOptions,
    RowAccumulator,
    SarOnGrid,
    TileGrid,
    blend_weights,
    load_model,
    predict_scene,
    tile_starts,
)
from cloudfree.synth import write_scene_pair
from official_layouts import official_dsen2cr_checkpoint

TILE = ["--tile-size", "64", "--overlap", "16", "--quiet"]


# ------------------------------------------------------------------------------- fixtures
def _tiny(identity: bool, seed: int = 0, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("dsen2cr", width=8, num_blocks=1, **kwargs)
    if identity:
        with torch.no_grad():
            model.tail.weight.zero_()
            model.tail.bias.zero_()
    return model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    save_pretrained(_tiny(True), d / "identity")
    save_pretrained(_tiny(False), d / "tiny")
    return d


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory):
    """A 150 x 173 scene (not a multiple of the tile step 48) with S1 on the S2 grid."""
    return write_scene_pair(
        tmp_path_factory.mktemp("small"), height=150, width=173, seed=4, cloud_cover=0.4
    )


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory):
    """1000 x 1000 scene whose S1 is in EPSG:4326 at 20 m."""
    return write_scene_pair(
        tmp_path_factory.mktemp("big"),
        height=1000,
        width=1000,
        seed=7,
        cloud_cover=0.3,
        s1_crs="EPSG:4326",
        s1_resolution=20.0,
    )


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _run(*args: str):
    return CliRunner().invoke(main, ["predict", *args])


def _predict(scene, weights: Path, out: Path, *extra: str, sar: Path | None = None):
    res = _run(
        "--optical",
        str(scene.cloudy),
        "--sar",
        str(sar or scene.s1),
        "--weights",
        str(weights),
        "--out",
        str(out),
        *TILE,
        *extra,
    )
    assert res.exit_code == 0, res.output
    return res


# ------------------------------------------------------------------------------- tiling
@pytest.mark.parametrize(("length", "tile", "step"), [(173, 64, 48), (64, 64, 48), (300, 256, 224)])
def test_tile_starts_cover_and_end_at_edge(length: int, tile: int, step: int) -> None:
    starts = tile_starts(length, tile, step)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(b - a <= step for a, b in zip(starts, starts[1:]))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()


def test_blend_weights_positive_symmetric() -> None:
    w = blend_weights(64, 40, 16)
    assert w.shape == (64, 40) and (w > 0).all() and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert (blend_weights(8, 8, 0) == 1).all()


def test_tile_grid_small_scene_and_bad_overlap() -> None:
    g = TileGrid(30, 500, 64, 16)
    assert (g.tile_h, g.tile_w) == (30, 64) and g.row_starts == [0]
    with pytest.raises(ConfigError, match="overlap"):
        TileGrid(100, 100, 64, 40)


def _position_model(row: int, col: int, h: int, w: int, channels: int) -> np.ndarray:
    """A stand-in network whose output depends on the absolute pixel *and* on the tile: the
    value at scene pixel (y, x) of the tile at (row, col) mixes y, x with the tile's own
    offset, so two tiles covering the same pixel disagree there."""
    y = (row + np.arange(h))[:, None].astype(np.float64)
    x = (col + np.arange(w))[None, :].astype(np.float64)
    out = [
        np.sin(0.05 * y * (k + 1)) + 0.01 * x * (k + 2) + 0.3 * math.cos(row + 2.0 * col + k)
        for k in range(channels)
    ]
    return np.stack(out).astype(np.float32)


def _pixel_flags(row: int, col: int, h: int, w: int) -> np.ndarray:
    y = (row + np.arange(h))[:, None]
    x = (col + np.arange(w))[None, :]
    return ((3 * y + 5 * x) % 7).astype(np.uint8)


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap", "block", "piece"),
    [
        (300, 170, 64, 16, 32, 50),  # last row and column tiles shifted; 50-column pieces
        (45, 203, 64, 16, 16, 203),  # scene lower than a tile (tile_h = 45), whole width
        (257, 129, 64, 0, 64, 64),  # no overlap: weights 1, the shifted tile still overlaps
        (200, 200, 48, 24, 32, 37),  # overlap at its maximum (half the tile)
    ],
)
def test_row_accumulator_matches_brute_force_blend(
    height: int, width: int, tile: int, overlap: int, block: int, piece: int
) -> None:
    """Production's use of RowAccumulator (add a row band; while ready: blended/flags_of in
    column pieces, then release) equals sum(w * pred) / sum(w) over the whole scene computed
    naively with full-size arrays, for a model whose overlapping tiles disagree."""
    g = TileGrid(height, width, tile, overlap)
    assert g.row_starts[-1] == height - g.tile_h and g.col_starts[-1] == width - g.tile_w
    channels, w = 2, g.weights().astype(np.float64)
    num = np.zeros((channels, height, width))
    den = np.zeros((height, width))
    for r in g.row_starts:
        for c in g.col_starts:
            num[:, r : r + g.tile_h, c : c + g.tile_w] += w * _position_model(
                r, c, g.tile_h, g.tile_w, channels
            )
            den[r : r + g.tile_h, c : c + g.tile_w] += w
    expected = num / den

    acc = RowAccumulator(channels, width, g.tile_h, block, height)
    got = np.full((channels, height, width), np.nan, np.float32)
    flags = np.zeros((height, width), np.uint8)
    writes = np.zeros(height, int)
    rows = g.row_starts
    for k, (r, cols) in enumerate(g.row_bands()):
        for c in cols:
            pred = _position_model(r, c, g.tile_h, g.tile_w, channels)
            acc.add(pred, g.weights(), _pixel_flags(r, c, g.tile_h, g.tile_w), r, c)
        nxt = rows[k + 1] if k + 1 < len(rows) else None
        while (n := acc.ready(nxt)) > 0:
            top = acc.top
            assert top % block == 0 and ((top + n) % block == 0 or top + n == height)
            for c0 in range(0, width, piece):
                c1 = min(width, c0 + piece)
                got[:, top : top + n, c0:c1] = acc.blended(n, c0, c1)
                flags[top : top + n, c0:c1] = acc.flags_of(n, c0, c1)
            writes[top : top + n] += 1
            acc.release(n)
    assert (writes == 1).all()  # every row written once, none left behind
    assert acc.top == height
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(flags, _pixel_flags(0, 0, height, width))
    # the check has teeth: one tile alone (no blending) differs from the blend in overlaps
    if overlap:
        first = _position_model(0, 0, g.tile_h, g.tile_w, channels)
        assert (
            np.abs(
                first[:, : g.tile_h, g.step : g.tile_w] - got[:, : g.tile_h, g.step : g.tile_w]
            ).max()
            > 0.01
        )


def test_row_accumulator_refuses_a_tile_outside_its_rows() -> None:
    acc = RowAccumulator(1, 100, 32, 16, 200)
    ones = np.ones((32, 32), np.float32)
    with pytest.raises(
        RuntimeError, match=r"tile at row 20 outside the accumulator's rows \[0, 48\)"
    ):
        acc.add(np.ones((1, 32, 32), np.float32), ones, ones.astype(np.uint8), 20, 0)
    with pytest.raises(RuntimeError, match="not covered by any tile"):
        acc.blended(4)


# ------------------------------------------------------------------------------- identity
def test_identity_model_round_trip_is_exact(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "id.tif"
    _predict(small_scene, models_dir / "identity", out)
    cloudy = _read(small_scene.cloudy)
    got = _read(out)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, cloudy)  # no seam, no shift, exact DN round trip


def test_identity_float32_is_reflectance(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "id32.tif"
    _predict(small_scene, models_dir / "identity", out, "--dtype", "float32", "--batch-size", "3")
    got = _read(out)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _read(small_scene.cloudy) / 10000.0, rtol=0, atol=1e-6)
    with rasterio.open(out) as ds:
        assert np.isnan(ds.nodata)


def test_pb04_offset_is_removed(small_scene, models_dir: Path, tmp_path: Path) -> None:
    dn = _read(small_scene.cloudy)
    shifted = tmp_path / "pb04.tif"
    with rasterio.open(small_scene.cloudy) as src:
        profile = src.profile
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(dn + 1000)
    out = tmp_path / "out.tif"
    res = _run(
        "--optical", str(shifted), "--sar", str(small_scene.s1), "--weights",
        str(models_dir / "identity"), "--out", str(out), "--pb04-offset", *TILE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(_read(out), dn)
    with rasterio.open(out) as ds:
        assert ds.tags()["PB04_OFFSET_REMOVED"] == "True"


# ------------------------------------------------------------------------------- real data
def test_real_sen12mscr_patch(shared_path, models_dir: Path, tmp_path: Path) -> None:
    root = shared_path("data/sen12mscr")
    cloudy = root / "ROIs1970_fall_s2_cloudy/s2_cloudy_139/ROIs1970_fall_s2_cloudy_139_p839.tif"
    s1 = root / "ROIs1970_fall_s1/s1_139/ROIs1970_fall_s1_139_p839.tif"
    out = tmp_path / "real.tif"
    res = _run(
        "--optical", str(cloudy), "--sar", str(s1), "--weights", str(models_dir / "tiny"),
        "--out", str(out), "--quicklook", str(tmp_path / "real.png"), *TILE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    src = raster_info(cloudy)
    with rasterio.open(out) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform
        assert (ds.height, ds.width, ds.count) == (256, 256, 13)
        assert ds.dtypes == ("uint16",) * 13 and ds.nodata == 0
        assert ds.descriptions == S2_L1C_NAMES
        tags = ds.tags()
        data = ds.read()
    assert tags["MODEL"] == "dsen2cr"
    assert tags["WEIGHTS_SHA256"] == weights_sha256(models_dir / "tiny")
    assert tags["NORMALIZATION_PROTOCOL"] == "dsen2cr"
    assert tags["CLOUDFREE_VERSION"] == __version__
    assert (tags["TILE_SIZE"], tags["OVERLAP"]) == ("64", "16")
    assert tags["SAR_RESAMPLING"] == "none (same grid)"
    assert (data > 0).all()  # every pixel valid in this patch
    image = pytest.importorskip("PIL.Image")
    assert image.open(tmp_path / "real.png").size == (2 * 256 + 4, 256)


# ------------------------------------------------------------------------------- S1 on another grid
def test_synth_writes_s1_on_another_grid(big_scene) -> None:
    s1, s2 = raster_info(big_scene.s1), raster_info(big_scene.cloudy)
    assert s1.crs.to_epsg() == 4326 and s2.crs.to_epsg() == 32632
    assert abs(s1.transform.e) * 111_320 == pytest.approx(20.0, rel=1e-3)
    assert raster_info(big_scene.clear).transform == s2.transform


def test_sar_warp_matches_source(big_scene) -> None:
    """Window-by-window warp == whole-scene reproject, and aligned with the original S1."""
    info = raster_info(big_scene.cloudy)
    with SarOnGrid(big_scene.s1, info) as sar:
        assert not sar.same_grid
        parts = [sar.read(Window(c, r, 256, 256)) for r in (0, 256) for c in (0, 256)]
        warped = sar.read(Window(0, 0, 1000, 1000))
    np.testing.assert_allclose(parts[3], warped[:, 256:512, 256:512], atol=1e-4)
    assert np.isfinite(warped).all(0).mean() > 0.99
    # independent bilinear interpolation at random pixel centres (pixel-centre convention)
    with rasterio.open(big_scene.s1) as src:
        s1, inv = src.read(), ~src.transform
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(50, 950, 500), rng.integers(50, 950, 500)
    xs, ys = info.transform * (cols + 0.5, rows + 0.5)
    lon, lat = warp_transform(info.crs, "EPSG:4326", xs, ys)
    u, v = inv * (np.asarray(lon), np.asarray(lat))
    u, v = u - 0.5, v - 0.5
    c0, r0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - c0, v - r0
    ref = (
        s1[:, r0, c0] * (1 - fu) * (1 - fv) + s1[:, r0, c0 + 1] * fu * (1 - fv)
        + s1[:, r0 + 1, c0] * (1 - fu) * fv + s1[:, r0 + 1, c0 + 1] * fu * fv
    )  # fmt: skip
    np.testing.assert_allclose(warped[:, rows, cols], ref, atol=2e-3)
    # 10 x 10 block means of the warped and the original S1 agree (no shift, no flip)
    orig = big_scene.scene.sar_db

    def blocks(a: np.ndarray) -> np.ndarray:
        return np.nanmean(a[:, 20:980, 20:980].reshape(2, 96, 10, 96, 10), axis=(2, 4))

    for b in range(2):
        assert np.corrcoef(blocks(warped)[b].ravel(), blocks(orig)[b].ravel())[0, 1] > 0.95


def _s1_neighbourhood_valid(s1_path: Path, s2_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """For each S2 pixel: (all of its 3x3 S1 neighbourhood valid, none of it valid)."""
    info = raster_info(s2_path)
    with rasterio.open(s1_path) as ds:
        s1ok = np.isfinite(ds.read()).all(0)
        inv = ~ds.transform
        crs = ds.crs
    rows, cols = np.mgrid[0 : info.height, 0 : info.width]
    xs, ys = info.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    lon, lat = warp_transform(info.crs, crs, xs, ys)
    c, r = inv * (np.asarray(lon), np.asarray(lat))
    c, r = np.floor(c).astype(int), np.floor(r).astype(int)
    padded = np.pad(s1ok, 2, constant_values=False)
    all_ok = np.ones(c.shape, bool)
    any_ok = np.zeros(c.shape, bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rr, cc = (
                np.clip(r + dr + 2, 0, padded.shape[0] - 1),
                np.clip(c + dc + 2, 0, padded.shape[1] - 1),
            )
            v = padded[rr, cc]
            all_ok &= v
            any_ok |= v
    shape = (info.height, info.width)
    return all_ok.reshape(shape), (~any_ok).reshape(shape)


def test_big_scene_s1_in_epsg4326(big_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "big.tif"
    res = _run(
        "--optical", str(big_scene.cloudy), "--sar", str(big_scene.s1), "--weights",
        str(models_dir / "tiny"), "--out", str(out), "--tile-size", "256", "--overlap", "32",
        "--batch-size", "4", "--dtype", "float32", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    s2 = raster_info(big_scene.cloudy)
    with rasterio.open(out) as ds:
        assert ds.crs == s2.crs and ds.transform == s2.transform
        assert (ds.width, ds.height) == (1000, 1000)
        assert "bilinear" in ds.tags()["SAR_RESAMPLING"]
        data = ds.read()
    valid = ~np.isnan(data).any(0)
    assert (np.isnan(data).all(0) == ~valid).all()  # nodata in all bands or none
    assert np.isfinite(data[:, valid]).all() and valid.mean() > 0.99
    must_be_valid, must_be_nodata = _s1_neighbourhood_valid(big_scene.s1, big_scene.cloudy)
    assert valid[must_be_valid].all()  # nodata only where S1's kernel touches S1 nodata
    assert not valid[must_be_nodata].any()
    assert (~valid).sum() > 0  # S1's NaN corners (its grid is rotated against UTM)


def test_partial_overlap_in_other_crs(big_scene, models_dir: Path, tmp_path: Path) -> None:
    """S1 (EPSG:4326) cropped to its western half: nodata east of it, predictions west."""
    part = tmp_path / "s1_west.tif"
    with rasterio.open(big_scene.s1) as src:
        win = Window(0, 0, src.width // 2, src.height)
        profile = {**src.profile, "width": win.width, "transform": src.window_transform(win)}
        with rasterio.open(part, "w", **profile) as dst:
            dst.write(src.read(window=win))
    out = tmp_path / "west.tif"
    args = ["--tile-size", "256", "--overlap", "32", "--batch-size", "2"]
    _predict(big_scene, models_dir / "identity", out, *args, sar=part)
    valid = (_read(out) > 0).all(0)
    must_be_valid, must_be_nodata = _s1_neighbourhood_valid(part, big_scene.cloudy)
    assert 0.4 < valid.mean() < 0.6
    assert valid[must_be_valid].all()
    assert not valid[must_be_nodata].any()


def test_partial_overlap_exact_on_aligned_grid(small_scene, models_dir, tmp_path) -> None:
    """S1 on the same CRS and pixel grid but covering columns < 120 only: exact footprint."""
    part = tmp_path / "s1_part.tif"
    with rasterio.open(small_scene.s1) as src:
        win = Window(0, 0, 120, src.height)
        profile = {**src.profile, "width": 120, "transform": src.window_transform(win)}
        with rasterio.open(part, "w", **profile) as dst:
            dst.write(src.read(window=win))
    out = tmp_path / "part.tif"
    _predict(small_scene, models_dir / "identity", out, sar=part)
    got = _read(out)
    assert (got[:, :, 120:] == 0).all()
    np.testing.assert_array_equal(got[:, :, :120], _read(small_scene.cloudy)[:, :, :120])


# ------------------------------------------------------------------------------- nodata
def test_nan_and_nodata_inputs_give_nodata(small_scene, models_dir: Path, tmp_path: Path) -> None:
    dn = _read(small_scene.cloudy)
    dn[:, 10:20, 30:45] = 0  # optical nodata (0 for an integer file without declared nodata)
    dn[5, 100:104, 100:104] = 0  # one band only: still invalid
    opt = tmp_path / "opt.tif"
    with rasterio.open(small_scene.cloudy) as src:
        profile = src.profile
    with rasterio.open(opt, "w", **profile) as dst:
        dst.write(dn)
    db = _read(small_scene.s1)
    db[:, 60:70, 140:160] = np.nan
    db[1, 120:125, 5:9] = -9999.0
    sar = tmp_path / "s1.tif"
    with rasterio.open(small_scene.s1) as src:
        profile = {**src.profile, "nodata": -9999.0}
    with rasterio.open(sar, "w", **profile) as dst:
        dst.write(db)
    out = tmp_path / "out.tif"
    res = _run(
        "--optical", str(opt), "--sar", str(sar), "--weights", str(models_dir / "identity"),
        "--out", str(out), *TILE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    got = _read(out)
    bad = np.zeros(dn.shape[1:], bool)
    bad[10:20, 30:45] = bad[100:104, 100:104] = bad[60:70, 140:160] = bad[120:125, 5:9] = True
    assert (got[:, bad] == 0).all()
    np.testing.assert_array_equal(got[:, ~bad], dn[:, ~bad])  # neighbours unaffected (identity)


# ------------------------------------------------------------------------------- keep-clear
def test_keep_clear_keeps_clear_pixels_exactly(small_scene, models_dir, tmp_path) -> None:
    plain, kept = tmp_path / "plain.tif", tmp_path / "kept.tif"
    _predict(small_scene, models_dir / "tiny", plain)
    _predict(small_scene, models_dir / "tiny", kept, "--keep-clear", "--mask-dilation", "1")
    dn, p, k = _read(small_scene.cloudy), _read(plain), _read(kept)
    from scipy.ndimage import binary_dilation

    cloud = compute_cloud_mask(dn, "rule_based") == 1
    replace = binary_dilation(cloud, structure=np.ones((3, 3), bool), iterations=1)
    assert 0.05 < replace.mean() < 0.95
    np.testing.assert_array_equal(k[:, ~replace], dn[:, ~replace])
    np.testing.assert_array_equal(k[:, replace], p[:, replace])
    assert not np.array_equal(p[:, ~replace], dn[:, ~replace])  # the model does change pixels
    with rasterio.open(kept) as ds:
        assert ds.tags()["KEEP_CLEAR"].startswith("True: rule_based (cloud")


def test_keep_clear_with_mask_file(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kept.tif"
    _predict(small_scene, models_dir / "tiny", out, "--keep-clear", "--mask", str(small_scene.mask))
    dn, k = _read(small_scene.cloudy), _read(out)
    replace = _read(small_scene.mask)[0] != 0
    np.testing.assert_array_equal(k[:, ~replace], dn[:, ~replace])
    assert (k[:, replace] != dn[:, replace]).any()


# ------------------------------------------------------------------------------- outputs
def test_cog_output_and_quicklook(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "cog.tif", tmp_path / "ql" / "look.png"
    _predict(small_scene, models_dir / "identity", out, "--cog", "--quicklook", str(png))
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.descriptions == S2_L1C_NAMES
        np.testing.assert_array_equal(ds.read(), _read(small_scene.cloudy))
    img = pytest.importorskip("PIL.Image").open(png)
    assert img.format == "PNG" and img.size == (2 * 173 + 4, 150) and img.mode == "RGB"
    arr = np.asarray(img)
    np.testing.assert_array_equal(arr[:, :173], arr[:, 177:])  # identity: same panels
    assert arr[:, :173].std() > 10


def test_band_mapping_and_rgb_model(small_scene, tmp_path: Path) -> None:
    """An RGB model fed from a 3-band file stored B02,B03,B04 (mapped with --bands)."""
    weights = tmp_path / "rgb"
    save_pretrained(_tiny(True, in_optical=3), weights, bands="rgb")
    dn = _read(small_scene.cloudy)
    bgr = dn[[1, 2, 3]]  # B02, B03, B04
    opt = tmp_path / "bgr.tif"
    with rasterio.open(small_scene.cloudy) as src:
        profile = {**src.profile, "count": 3}
    with rasterio.open(opt, "w", **profile) as dst:
        dst.write(bgr)
    out = tmp_path / "rgb.tif"
    args = ["--optical", str(opt), "--sar", str(small_scene.s1), "--weights", str(weights)]
    res = _run(*args, "--out", str(out), "--bands", "B2,B03,b04", *TILE)
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("B04", "B03", "B02")
        np.testing.assert_array_equal(ds.read(), dn[[3, 2, 1]])
    res = _run(*args, "--out", str(tmp_path / "x.tif"), *TILE)
    assert res.exit_code == 1 and "bgr.tif" in res.output and "--bands" in res.output


def test_official_checkpoint_weights(small_scene, tmp_path: Path) -> None:
    ckpt = official_dsen2cr_checkpoint(_tiny(True), tmp_path / "dsen2cr.pth")
    out = tmp_path / "off.tif"
    args = ["--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1)]
    res = _run(*args, "--weights", str(ckpt), "--out", str(out), *TILE)
    assert res.exit_code == 1 and "--model" in res.output and not out.exists()
    res = _run(
        *args, "--weights", str(ckpt), "--model", "dsen2cr", "--arg", "width=8",
        "--arg", "num_blocks=1", "--out", str(out), *TILE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(_read(out), _read(small_scene.cloudy))
    with rasterio.open(out) as ds:
        assert ds.tags()["WEIGHTS_SOURCE"] == "official"
        assert ds.tags()["WEIGHTS_SHA256"] == weights_sha256(ckpt)


def test_model_name_must_match_pretrained(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    res = _run(
        "--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1), "--weights",
        str(models_dir / "tiny"), "--model", "glf_cr", "--out", str(out), *TILE,
    )  # fmt: skip
    assert res.exit_code == 1 and "does not match" in res.output and not out.exists()


# ------------------------------------------------------------------------------- atomicity
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_run_leaves_no_file(small_scene, models_dir, tmp_path, exc) -> None:
    loaded = load_model(models_dir / "identity")
    out = tmp_path / "sub" / "out.tif"

    def stop(done: int) -> None:
        if done >= 6:
            raise exc("stop")

    opts = PredictOptions(tile_size=64, overlap=16, batch_size=2, progress=False)
    with pytest.raises(exc):
        predict_scene(loaded, small_scene.cloudy, small_scene.s1, out, opts, on_tile=stop)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_existing_output_needs_overwrite(small_scene, models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    out.write_bytes(b"old")
    args = ["--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1)]
    res = _run(*args, "--weights", str(models_dir / "identity"), "--out", str(out), *TILE)
    assert res.exit_code == 1 and "--overwrite" in res.output and out.read_bytes() == b"old"
    res = _run(
        *args, "--weights", str(models_dir / "identity"), "--out", str(out), "--overwrite", *TILE
    )
    assert res.exit_code == 0 and raster_info(out).count == 13


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_is_clear_error(small_scene, models_dir: Path, tmp_path: Path) -> None:
    res = _run(
        "--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1), "--weights",
        str(models_dir / "tiny"), "--out", str(tmp_path / "o.tif"), "--device", "cuda", *TILE,
    )  # fmt: skip
    assert res.exit_code == 1 and "CUDA is not available" in res.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(small_scene, models_dir: Path, tmp_path: Path) -> None:
    outs = []
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.tif"
        _predict(small_scene, models_dir / "identity", out, "--device", dev)
        outs.append(_read(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_glf_cr_runs_on_odd_tiles(small_scene, tmp_path: Path) -> None:
    """A tiny GLF-CR (glf_cr protocol, internal padding) through the tiled pipeline."""
    torch.manual_seed(0)
    model = create_model(
        "glf_cr", width=8, num_blocks=1, layers_per_block=1, growth=8, num_heads=2,
        window_size=4, dyn_kernel=3,
    )  # fmt: skip
    weights = save_pretrained(model, tmp_path / "glf")
    out = tmp_path / "glf.tif"
    args = ["--tile-size", "100", "--overlap", "16", "--dtype", "float32", "--quiet"]
    res = _run(
        "--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1), "--weights",
        str(weights), "--out", str(out), *args,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        data = ds.read()
        assert ds.tags()["NORMALIZATION_PROTOCOL"] == "glf_cr" and ds.tags()["MODEL"] == "glf_cr"
    assert np.isfinite(data).all() and ((data >= 0) & (data <= 1)).all()


def test_real_sen1floods11_epsg4326_int16(shared_path, models_dir: Path, tmp_path) -> None:
    """Real S2 int16 (nodata 0) and S1 (NaN nodata) in EPSG:4326: grid kept, identity exact."""
    root = shared_path("data/sen1floods11")
    s2, s1 = root / "Spain_7370579_S2Hand.tif", root / "Spain_7370579_S1Hand.tif"
    out = tmp_path / "floods.tif"
    res = _run(
        "--optical", str(s2), "--sar", str(s1), "--weights", str(models_dir / "identity"),
        "--out", str(out), "--tile-size", "128", "--overlap", "16", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    src = raster_info(s2)
    with rasterio.open(out) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.crs.to_epsg() == 4326
        got = ds.read()
    dn = _read(s2)
    valid = (dn != 0).all(0) & np.isfinite(_read(s1)).all(0)
    np.testing.assert_array_equal(got[:, valid], dn[:, valid])
    assert (got[:, ~valid] == 0).all()


def test_single_scene_mode_runs_on_rank_zero_only(small_scene, models_dir, tmp_path) -> None:
    out = tmp_path / "o.tif"
    res = CliRunner().invoke(
        main,
        [
            "predict", "--optical", str(small_scene.cloudy), "--sar", str(small_scene.s1),
            "--weights", str(models_dir / "identity"), "--out", str(out), *TILE,
        ],
        env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},
    )  # fmt: skip
    assert res.exit_code == 0 and "rank 1" in res.output and not out.exists()
