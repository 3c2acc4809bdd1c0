"""Sentinel-2 and Sentinel-1 as users have them (`cloudfree.io.bandstack`, `cloudfree.io.bandmap`).

Synthetic ``.SAFE`` products and per-band folders come from `cloudfree.synth.products`; the real
BigEarthNet, Sen1Floods11 and SEN12MS-CR files in ``../shared/data`` are used where present.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.windows import Window
from scipy import ndimage

from cloudfree.bands import S2_L1C, S2_L1C_NAMES
from cloudfree.cli import main
from cloudfree.cloudmask.files import write_cloud_mask_file
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import open_raster, raster_info, read_raster, write_raster
from cloudfree.io.bandmap import (
    DEFAULT_FILL_DN,
    file_band_names,
    map_bands,
    parse_band_fills,
)
from cloudfree.io.bandstack import band_token, stack_folder
from cloudfree.models import create_model, save_pretrained
from cloudfree.predict import PredictOptions, load_model, predict_scene
from cloudfree.synth import generate_scene, write_scene_pair
from cloudfree.synth.products import write_s2_product

L2A_BANDS = tuple(b for b in S2_L1C_NAMES if b != "B10")
FAST = {"tile_size": 64, "overlap": 16, "progress": False}


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    """A 96 x 120 px synthetic scene pair (sides multiples of 6) with its S1 on the S2 grid."""
    return write_scene_pair(
        tmp_path_factory.mktemp("pair"), height=96, width=120, seed=11, cloud_cover=0.4
    )


@pytest.fixture(scope="module")
def products(scene, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("products")
    s = scene.scene
    out = {}
    for layout in ("safe", "bands"):
        for level in ("L1C", "L2A"):
            out[f"{layout}_{level}"] = write_s2_product(
                root / f"{layout}_{level}",
                s.cloudy_dn,
                crs=s.crs,
                transform=s.transform,
                layout=layout,
                level=level,
            )
    return out


@pytest.fixture(scope="module")
def stacked_tif(products, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The L1C SAFE product read whole and written as one 13-band GeoTIFF (the reference)."""
    r = read_raster(products["safe_L1C"])
    path = tmp_path_factory.mktemp("stacked") / "stacked.tif"
    write_raster(
        path,
        r.array,
        crs=r.crs,
        transform=r.transform,
        nodata=r.nodata,
        descriptions=list(r.descriptions),
    )
    return path


def _tiny(in_optical: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("dsen2cr", in_optical=in_optical, width=8, num_blocks=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("weights")
    save_pretrained(_tiny(13), d / "l1c")
    save_pretrained(_tiny(12), d / "l2a", bands=list(L2A_BANDS))
    return {"l1c": d / "l1c", "l2a": d / "l2a"}


def _bilinear_ref(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Pixel-centre aligned bilinear upsampling, edges clamped (GDAL's convention)."""
    h, w = coarse.shape[0] * factor, coarse.shape[1] * factor
    yy = (np.arange(h) + 0.5) / factor - 0.5
    xx = (np.arange(w) + 0.5) / factor - 0.5
    grid = np.meshgrid(yy, xx, indexing="ij")
    return ndimage.map_coordinates(coarse.astype(np.float64), grid, order=1, mode="nearest")


# ------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("T32UNU_20180501T103021_B02.jp2", ("S2", "B02")),
        ("T32UNU_20180501T103021_B8A_20m.jp2", ("S2", "B8A")),
        ("S2A_MSIL2A_20170613T101031_87_48_B12.tif", ("S2", "B12")),
        ("B2.tif", ("S2", "B02")),
        ("scene-b8a.TIF", ("S2", "B8A")),
        ("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VH.tif", ("S1", "VH")),
        ("T32UNU_20180501T103021_TCI.jp2", None),
        ("T32UNU_20180501T103021_SCL_20m.jp2", None),
        ("B04_B03_B02_rgb.tif", None),
        ("labels_metadata.json", None),
        ("B13.tif", None),
        ("AB02.tif", None),
    ],
)
def test_band_token_from_file_names(name: str, token: tuple[str, str] | None) -> None:
    assert band_token(name) == token


def test_gee_descriptions_name_the_bands(tmp_path: Path) -> None:
    """Earth Engine exports (and Sen1Floods11) describe bands as B1 .. B12, B8A, in any order."""
    order = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    shuffled = order[::-1]
    path = tmp_path / "gee.tif"
    arr = np.arange(13, dtype=np.uint16)[:, None, None] * 100 + 100 + np.zeros((13, 4, 4), "u2")
    write_raster(
        path,
        arr,
        crs="EPSG:32632",
        transform=rasterio.Affine(10, 0, 0, 0, -10, 0),
        descriptions=shuffled,
    )
    names = file_band_names(raster_info(path))
    assert names[0] == "B12" and names[-1] == "B01" and names[2] == "B10"
    bm = map_bands(raster_info(path), S2_L1C_NAMES)
    assert bm.positions == tuple(range(12, -1, -1))


# ------------------------------------------------------------------------------- stacking
@pytest.mark.parametrize("kind", ["safe_L1C", "bands_L1C"])
def test_stack_values_exact_at_10m_bilinear_elsewhere(products, scene, kind: str) -> None:
    dn = scene.scene.cloudy_dn
    r = read_raster(products[kind])
    assert r.array.shape == dn.shape and r.array.dtype == np.uint16
    assert r.descriptions == S2_L1C_NAMES
    assert r.crs == scene.scene.crs and r.transform == scene.scene.transform
    assert r.nodata == 0
    for b in S2_L1C:
        got = r.array[b.index]
        f = b.resolution_m // 10
        if f == 1:
            np.testing.assert_array_equal(got, dn[b.index])
        else:
            coarse = (
                dn[b.index]
                .astype(np.float64)
                .reshape(dn.shape[1] // f, f, dn.shape[2] // f, f)
                .mean(axis=(1, 3))
            )
            ref = _bilinear_ref(np.round(coarse), f)
            assert np.abs(got - ref).max() <= 0.5 + 1e-9, b.name


def test_l2a_layout_takes_each_band_at_its_native_resolution(products) -> None:
    stack = stack_folder(products["safe_L2A"])
    assert stack.names == L2A_BANDS
    res = {b.name: int(b.pixel_size) for b in stack.bands}
    assert res == {b.name: b.resolution_m for b in S2_L1C if b.name != "B10"}
    assert stack.tags["PRODUCT_LEVEL"] == "L2A"
    assert stack.tags["PROCESSING_BASELINE"] == "02.07"


@pytest.mark.parametrize("size", [37, 50, 7])
def test_window_reads_equal_the_whole_read(products, size: int) -> None:
    with open_raster(products["safe_L1C"]) as src:
        whole = src.read()
        tiles = np.zeros_like(whole)
        for r in range(0, src.height, size):
            for c in range(0, src.width, size):
                w = Window(c, r, min(size, src.width - c), min(size, src.height - r))
                tiles[:, r : r + w.height, c : c + w.width] = src.read(window=w)
    np.testing.assert_array_equal(tiles, whole)


def test_granule_and_img_data_folders_open_like_the_safe(products) -> None:
    safe = products["safe_L1C"]
    granule = next((safe / "GRANULE").iterdir())
    ref = read_raster(safe).array
    for p in (granule, granule / "IMG_DATA"):
        np.testing.assert_array_equal(read_raster(p).array, ref)


def test_nodata_zero_is_skipped_by_the_bilinear_kernel(tmp_path: Path) -> None:
    """JP2 band files declare no nodata: 0 is taken as S2 nodata and never blended in."""
    t = rasterio.Affine(10, 0, 500000, 0, -10, 5000000)
    fine = np.full((12, 12), 500, np.uint16)
    coarse = np.full((6, 6), 1000, np.uint16)
    coarse[:, :2] = 0
    folder = tmp_path / "p"
    write_raster(folder / "p_B02.tif", fine, crs="EPSG:32632", transform=t)
    write_raster(folder / "p_B05.tif", coarse, crs="EPSG:32632", transform=t * t.scale(2))
    r = read_raster(folder)
    b05 = r.array[1]
    assert set(np.unique(b05)) == {0, 1000}  # no value between 0 and 1000 at the edge
    # fine column 3 (centre 1/4 coarse pixel from valid data) takes its valid neighbour's value
    assert (b05[:, :3] == 0).all() and (b05[:, 3:] == 1000).all()


# ------------------------------------------------------------------------------- errors
def _band(
    folder: Path,
    name: str,
    size: int = 12,
    res: float = 10.0,
    x0: float = 500000.0,
    crs: str = "EPSG:32632",
    count: int = 1,
) -> None:
    t = rasterio.Affine(res, 0, x0, 0, -res, 5000000)
    write_raster(
        folder / f"p_{name}.tif",
        np.ones((count, size, size), np.uint16) * 100,
        crs=crs,
        transform=t,
    )


def test_folder_errors_name_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="holds no band files"):
        raster_info(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _band(mixed, "B02")
    _band(mixed, "VV")
    with pytest.raises(InputFileError, match="mixes Sentinel-2 and Sentinel-1"):
        raster_info(mixed)

    twice = tmp_path / "twice"
    twice.mkdir()
    _band(twice, "B02")
    write_raster(
        twice / "other_B2.tif",
        np.ones((1, 12, 12), np.uint16),
        crs="EPSG:32632",
        transform=rasterio.Affine(10, 0, 500000, 0, -10, 5000000),
    )
    with pytest.raises(InputFileError, match="two files of band B02 at the same resolution"):
        raster_info(twice)

    shifted = tmp_path / "shifted"
    shifted.mkdir()
    _band(shifted, "B02")
    _band(shifted, "B05", size=6, res=20.0, x0=500100.0)
    with pytest.raises(InputFileError, match="must cover the same extent") as e:
        raster_info(shifted)
    assert "p_B05.tif" in str(e.value)

    crs = tmp_path / "crs"
    crs.mkdir()
    _band(crs, "B02")
    _band(crs, "B05", size=6, res=20.0, crs="EPSG:32633")
    with pytest.raises(InputFileError, match="must share one CRS"):
        raster_info(crs)

    multi = tmp_path / "multi"
    multi.mkdir()
    _band(multi, "B02", count=3)
    with pytest.raises(InputFileError, match="holds 3 bands"):
        raster_info(multi)


def test_multi_granule_and_s1_safe_are_refused(products, tmp_path: Path) -> None:
    safe = tmp_path / "S2B_MSIL1C_X.SAFE"
    shutil.copytree(products["safe_L1C"], safe)
    g = next((safe / "GRANULE").iterdir())
    shutil.copytree(g, g.with_name(g.name + "_2"))
    with pytest.raises(InputFileError, match="holds 2 granules"):
        raster_info(safe)
    s1 = tmp_path / "S1A_IW_GRDH_1SDV_20200101.SAFE"
    s1.mkdir()
    with pytest.raises(InputFileError, match="radar geometry"):
        raster_info(s1)


# ------------------------------------------------------------------------------- band fills
def test_parse_band_fills() -> None:
    assert parse_band_fills(["B10"]) == {"B10": DEFAULT_FILL_DN["B10"]}
    assert parse_band_fills(["b10=35", "B9=300"]) == {"B10": 35.0, "B09": 300.0}
    for bad, msg in (
        ("B09", "needs a value"),
        ("B10=0", r"\(0, 10000\]"),
        ("B10=x", "must be a number"),
        ("B13", "unknown band"),
    ):
        with pytest.raises(ConfigError, match=msg):
            parse_band_fills([bad])


def test_fill_only_what_the_file_lacks(products) -> None:
    info = raster_info(products["safe_L1C"])
    with pytest.raises(ConfigError, match="has that band"):
        map_bands(info, S2_L1C_NAMES, fills={"B10": 20.0})
    l2a = raster_info(products["safe_L2A"])
    with pytest.raises(InputFileError, match="--fill-band B10"):
        map_bands(l2a, S2_L1C_NAMES)
    bm = map_bands(l2a, S2_L1C_NAMES, fills={"B10": 20.0})
    assert bm.positions[10] is None and bm.file_positions == list(range(12))
    out = bm.assemble(np.ones((12, 2, 3), np.float32))
    assert out.shape == (13, 2, 3) and (out[10] == 20).all() and (out[:10] == 1).all()


# ------------------------------------------------------------------------------- predict
def test_predict_from_a_safe_equals_predict_from_the_stacked_file(
    products, stacked_tif, scene, weights, tmp_path: Path
) -> None:
    loaded = load_model(weights["l1c"])
    a = predict_scene(
        loaded, products["safe_L1C"], scene.s1, tmp_path / "a.tif", PredictOptions(**FAST)
    )
    b = predict_scene(loaded, stacked_tif, scene.s1, tmp_path / "b.tif", PredictOptions(**FAST))
    np.testing.assert_array_equal(read_raster(a.path).array, read_raster(b.path).array)
    assert a.tags["SOURCE_OPTICAL"] == products["safe_L1C"].name


def test_predict_l2a_with_a_12_band_model_and_with_the_b10_adapter(
    products, scene, weights, tmp_path: Path
) -> None:
    r12 = predict_scene(
        load_model(weights["l2a"]),
        products["safe_L2A"],
        scene.s1,
        tmp_path / "l2a12.tif",
        PredictOptions(**FAST),
    )
    assert r12.bands == L2A_BANDS and "FILLED_BANDS" not in r12.tags
    loaded = load_model(weights["l1c"])
    with pytest.raises(InputFileError, match="lacks band.*B10.*--fill-band B10"):
        predict_scene(
            loaded, products["safe_L2A"], scene.s1, tmp_path / "no.tif", PredictOptions(**FAST)
        )
    assert not (tmp_path / "no.tif").exists()
    r13 = predict_scene(
        loaded,
        products["safe_L2A"],
        scene.s1,
        tmp_path / "l2a13.tif",
        PredictOptions(fill_bands=["B10"], **FAST),
    )
    assert r13.tags["FILLED_BANDS"].startswith("B10 = 20 DN")
    with rasterio.open(r13.path) as src:
        assert src.tags()["FILLED_BANDS"].startswith("B10 = 20 DN")
    # the same as a 13-band file whose B10 holds the constant
    full = read_raster(products["safe_L2A"]).array
    b10 = np.full((1, *full.shape[1:]), 20, np.uint16)
    filled = np.concatenate([full[:10], b10, full[10:]])
    ref = tmp_path / "filled.tif"
    write_raster(ref, filled, crs=scene.scene.crs, transform=scene.scene.transform, nodata=0)
    r_ref = predict_scene(loaded, ref, scene.s1, tmp_path / "ref.tif", PredictOptions(**FAST))
    np.testing.assert_array_equal(read_raster(r13.path).array, read_raster(r_ref.path).array)


def test_predict_keep_clear_on_l2a_uses_the_filled_band_for_the_mask(
    products, scene, weights, tmp_path: Path
) -> None:
    loaded = load_model(weights["l2a"])  # the model needs no B10; the mask does
    with pytest.raises(InputFileError, match="rule-based cloud mask.*--mask"):
        predict_scene(
            loaded,
            products["safe_L2A"],
            scene.s1,
            tmp_path / "k.tif",
            PredictOptions(keep_clear=True, **{**FAST, "tile_size": 96}),
        )
    r = predict_scene(
        loaded,
        products["safe_L2A"],
        scene.s1,
        tmp_path / "k.tif",
        PredictOptions(keep_clear=True, fill_bands=["B10"], **FAST),
    )
    assert 0 < r.replaced_fraction < 1


def test_s1_folder_of_polarisation_files(scene, weights, tmp_path: Path) -> None:
    """A BigEarthNet-S1-style folder (..._VH.tif, ..._VV.tif) reads like the 2-band file."""
    s1 = read_raster(scene.s1)
    folder = tmp_path / "S1A_IW_GRDH_1SDV_x"
    for k, pol in enumerate(("VV", "VH")):
        write_raster(
            folder / f"{folder.name}_{pol}.tif",
            s1.array[k],
            crs=s1.crs,
            transform=s1.transform,
            nodata=s1.nodata,
        )
    assert raster_info(folder).descriptions == ("VV", "VH")
    loaded = load_model(weights["l1c"])
    a = predict_scene(loaded, scene.cloudy, folder, tmp_path / "a.tif", PredictOptions(**FAST))
    b = predict_scene(loaded, scene.cloudy, scene.s1, tmp_path / "b.tif", PredictOptions(**FAST))
    np.testing.assert_array_equal(read_raster(a.path).array, read_raster(b.path).array)


def test_an_output_never_replaces_a_band_file(products, scene, weights) -> None:
    band = next(products["bands_L1C"].glob("*_B02.tif"))
    before = band.read_bytes()
    with pytest.raises(InputFileError, match="would overwrite the input"):
        predict_scene(
            load_model(weights["l1c"]),
            products["bands_L1C"],
            scene.s1,
            band,
            PredictOptions(overwrite=True, **FAST),
        )
    assert band.read_bytes() == before


# ------------------------------------------------------------------------------- cloudmask
def test_cloudmask_of_a_safe_equals_the_stacked_file(products, stacked_tif, tmp_path: Path) -> None:
    a = write_cloud_mask_file(products["safe_L1C"], tmp_path / "a.tif")
    b = write_cloud_mask_file(stacked_tif, tmp_path / "b.tif")
    np.testing.assert_array_equal(read_raster(a.path).array, read_raster(b.path).array)
    assert a.cloud_fraction > 0.05


def test_cloudmask_cli_bands_and_fill(products, stacked_tif, tmp_path: Path) -> None:
    runner = CliRunner()
    l2a = str(products["bands_L2A"])
    res = runner.invoke(main, ["cloudmask", l2a, str(tmp_path / "m.tif")])
    assert res.exit_code == 1 and "--fill-band B10" in res.output
    assert not (tmp_path / "m.tif").exists()
    res = runner.invoke(main, ["cloudmask", l2a, str(tmp_path / "m.tif"), "--fill-band", "B10"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.tags()["filled_bands"] == "B10 = 20 DN"
    # --bands names a 12-band GeoTIFF without descriptions
    arr = read_raster(products["bands_L2A"]).array
    plain = tmp_path / "plain12.tif"
    info = raster_info(stacked_tif)
    write_raster(plain, arr, crs=info.crs, transform=info.transform)
    res = runner.invoke(
        main, ["cloudmask", str(plain), str(tmp_path / "p.tif"), "--fill-band", "B10"]
    )
    assert res.exit_code == 1 and "--bands" in res.output
    res = runner.invoke(
        main,
        [
            "cloudmask",
            str(plain),
            str(tmp_path / "p.tif"),
            "--bands",
            ",".join(L2A_BANDS),
            "--fill-band",
            "B10",
        ],
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(
        read_raster(tmp_path / "p.tif").array, read_raster(tmp_path / "m.tif").array
    )


def test_predict_cli_reads_a_safe(products, scene, weights, tmp_path: Path) -> None:
    out = tmp_path / "cli.tif"
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "--optical",
            str(products["safe_L2A"]),
            "--sar",
            str(scene.s1),
            "--weights",
            str(weights["l1c"]),
            "--out",
            str(out),
            "--fill-band",
            "B10",
            "--tile-size",
            "64",
            "--overlap",
            "16",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert raster_info(out).count == 13


# ------------------------------------------------------------------------------- real data
def test_bigearthnet_folders_predict_with_a_12_band_model(shared_path, weights, tmp_path: Path):
    root = shared_path("data/bigearthnet")
    s2 = sorted((root / "BigEarthNet-S2-Example").iterdir())[0]
    s1 = next(p for p in (root / "BigEarthNet-S1-Example").iterdir() if p.name.endswith("87_48"))
    info = raster_info(s2)
    assert info.count == 12 and (info.height, info.width) == (120, 120)
    assert info.descriptions == L2A_BANDS and info.tags["PRODUCT_LEVEL"] == "L2A"
    r = read_raster(s2).array
    for name in ("B02", "B03", "B04", "B08"):
        f = next(s2.glob(f"*_{name}.tif"))
        np.testing.assert_array_equal(r[L2A_BANDS.index(name)], read_raster(f).array[0])
    coarse = read_raster(next(s2.glob("*_B05.tif"))).array[0]
    ref = _bilinear_ref(coarse, 2)
    assert np.abs(r[L2A_BANDS.index("B05")] - ref).max() <= 0.5 + 1e-9
    out = predict_scene(
        load_model(weights["l2a"]), s2, s1, tmp_path / "ben.tif", PredictOptions(**FAST)
    )
    assert out.valid_fraction == 1.0 and out.bands == L2A_BANDS
    with pytest.raises(InputFileError, match="B10"):
        predict_scene(
            load_model(weights["l1c"]), s2, s1, tmp_path / "x.tif", PredictOptions(**FAST)
        )
    r13 = predict_scene(
        load_model(weights["l1c"]),
        s2,
        s1,
        tmp_path / "ben13.tif",
        PredictOptions(fill_bands=["B10"], **FAST),
    )
    assert r13.valid_fraction == 1.0


def test_sen1floods11_int16_with_nodata_zero(shared_path, weights, tmp_path: Path) -> None:
    """Descriptions B1 .. B12 name the bands; 0 is nodata and stays nodata in the output."""
    d = shared_path("data/sen1floods11")
    s2, s1 = d / "Spain_7370579_S2Hand.tif", d / "Spain_7370579_S1Hand.tif"
    info = raster_info(s2)
    assert info.dtype == "int16" and file_band_names(info) == S2_L1C_NAMES
    src = read_raster(s2).array
    invalid = (src == 0).any(axis=0)
    r = predict_scene(
        load_model(weights["l1c"]), s2, s1, tmp_path / "flood.tif", PredictOptions(**FAST)
    )
    out = read_raster(r.path).array
    assert (out[:, invalid] == 0).all()
    assert r.valid_fraction > 0.5
    m = write_cloud_mask_file(s2, tmp_path / "mask.tif")
    assert m.cloud_fraction < 0.2


def test_sen12mscr_triplet_predicts(shared_path, weights, tmp_path: Path) -> None:
    d = shared_path("data/sen12mscr")
    s2 = d / "ROIs1970_fall_s2_cloudy/s2_cloudy_139/ROIs1970_fall_s2_cloudy_139_p839.tif"
    s1 = d / "ROIs1970_fall_s1/s1_139/ROIs1970_fall_s1_139_p839.tif"
    r = predict_scene(
        load_model(weights["l1c"]), s2, s1, tmp_path / "p.tif", PredictOptions(**FAST)
    )
    assert r.valid_fraction == 1.0 and raster_info(r.path).count == 13


def test_synthetic_scene_of_any_size_can_be_written_as_a_product(tmp_path: Path) -> None:
    s = generate_scene(60, 66, seed=1)
    with pytest.raises(ConfigError, match="multiple of 6"):
        write_s2_product(tmp_path, s.cloudy_dn[:, :59], crs=s.crs, transform=s.transform)
    p = write_s2_product(tmp_path, s.cloudy_dn, crs=s.crs, transform=s.transform, layout="bands")
    assert len(list(p.glob("*.tif"))) == 13


# ------------------------------------------------------------------------------- L2A training
#: The README's two ``--set`` lines for a model trained without B10.
L2A_SET_LINES = [
    "--set",
    "data.bands=B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12",
    "--set",
    "model.kwargs.in_optical=12",
]


def test_readme_l2a_training_lines_give_a_12_band_model_that_reads_l2a(
    products, scene, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert " ".join(L2A_SET_LINES) in " ".join(readme.replace("\\\n", " ").split())
    from cloudfree.synth import write_sen12mscr_synthetic

    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=8, size=32, seed=0)
    run = tmp_path / "run"
    tiny = [
        "model.kwargs.width=16",
        "model.kwargs.num_blocks=1",
        "model.kwargs.layers_per_block=2",
        "model.kwargs.growth=8",
        "data.patch_size=16",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "data.val_patch_size=16",
    ]
    args = [
        "train",
        "--recipe",
        "glf_cr",
        "--data",
        str(root),
        "--out",
        str(run),
        *L2A_SET_LINES,
        "--set",
        *tiny,
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    weights_dir = run / "weights" / "final"
    cfg = json.loads((weights_dir / "config.json").read_text())
    assert cfg["bands"] == ",".join(L2A_BANDS) and cfg["kwargs"]["in_optical"] == 12
    r = predict_scene(
        load_model(weights_dir),
        products["bands_L2A"],
        scene.s1,
        tmp_path / "l2a.tif",
        PredictOptions(**FAST),
    )
    assert r.bands == L2A_BANDS and r.valid_fraction == 1.0
