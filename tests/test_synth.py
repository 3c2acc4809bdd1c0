"""Tests of the synthetic scene generator (cloudfree.synth) and `cloudfree data synth`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from cloudfree.bands import S1_NAMES, S2_L1C_NAMES
from cloudfree.cli import main
from cloudfree.data.splits import load_sen12mscr_splits
from cloudfree.errors import ConfigError, DatasetError
from cloudfree.io import read_raster
from cloudfree.synth import (
    CLASS_SAR_DB,
    FLAT_CSV_NAME,
    MANIFEST_NAME,
    LandCover,
    generate_scene,
    plan_sen12mscr_samples,
    roi_georeference,
    write_scene_pair,
    write_sen12mscr_synthetic,
)
from cloudfree.synth.clouds import THICK_CLOUD_THICKNESS, VISIBLE_THICKNESS

B = {name: i for i, name in enumerate(S2_L1C_NAMES)}
VEGETATION = (LandCover.FOREST, LandCover.GRASSLAND, LandCover.CROP_DENSE, LandCover.CROP_YOUNG)
FIELDS = (
    LandCover.GRASSLAND,
    LandCover.CROP_DENSE,
    LandCover.CROP_YOUNG,
    LandCover.CROP_HARVESTED,
    LandCover.BARE_SOIL,
)
ARRAYS = (
    "landcover",
    "parcel_id",
    "clear_dn",
    "cloudy_dn",
    "sar_db",
    "cloud_thickness",
    "cloud_mask",
    "shadow_mask",
    "shadow_strength",
)


@pytest.fixture(scope="module")
def clear_pool() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class: (clear DN [13, N], SAR dB [2, N]) pooled over several cloud-free scenes."""
    dn: dict[int, list[np.ndarray]] = {}
    sar: dict[int, list[np.ndarray]] = {}
    for seed in range(8):
        sc = generate_scene(96, 96, seed=seed, cloud_cover=0.0)
        for k in range(len(LandCover)):
            m = sc.landcover == k
            if m.any():
                dn.setdefault(k, []).append(sc.clear_dn[:, m])
                sar.setdefault(k, []).append(sc.sar_db[:, m])
    return {k: (np.concatenate(dn[k], 1), np.concatenate(sar[k], 1)) for k in dn}


# ---------------------------------------------------------------------------------------------
# generate_scene: determinism, types, validation


def test_same_seed_gives_identical_arrays_and_different_seeds_differ() -> None:
    a = generate_scene(40, 56, seed=5, cloud_cover=0.4)
    b = generate_scene(40, 56, seed=5, cloud_cover=0.4)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = generate_scene(40, 56, seed=6, cloud_cover=0.4)
    assert not np.array_equal(a.clear_dn, c.clear_dn)
    assert not np.array_equal(a.sar_db, c.sar_db)
    d = generate_scene(40, 56, seed=(5, 1), cloud_cover=0.4)
    assert not np.array_equal(a.clear_dn, d.clear_dn)


def test_cover_changes_only_the_clouds() -> None:
    a = generate_scene(48, 48, seed=3, cloud_cover=0.2)
    b = generate_scene(48, 48, seed=3, cloud_cover=0.7)
    np.testing.assert_array_equal(a.clear_dn, b.clear_dn)
    np.testing.assert_array_equal(a.sar_db, b.sar_db)
    np.testing.assert_array_equal(a.landcover, b.landcover)
    assert not np.array_equal(a.cloudy_dn, b.cloudy_dn)


def test_dtypes_shapes_and_value_ranges() -> None:
    sc = generate_scene(40, 72, seed=11, cloud_cover=0.5)
    assert sc.landcover.dtype == np.uint8 and sc.landcover.shape == (40, 72)
    assert sc.landcover.max() < len(LandCover)
    assert sc.parcel_id.dtype == np.int32 and sc.parcel_id.shape == (40, 72)
    for arr in (sc.clear_dn, sc.cloudy_dn):
        assert arr.dtype == np.uint16 and arr.shape == (13, 40, 72)
        assert arr.min() >= 1  # 0 is the Sentinel-2 nodata value
    assert sc.sar_db.dtype == np.float32 and sc.sar_db.shape == (2, 40, 72)
    assert np.isfinite(sc.sar_db).all()
    assert -40.0 <= sc.sar_db.min() and sc.sar_db.max() < 25.0
    assert sc.cloud_thickness.dtype == np.float32
    assert 0.0 <= sc.cloud_thickness.min() and sc.cloud_thickness.max() <= 1.0
    assert sc.cloud_mask.dtype == bool and sc.shadow_mask.dtype == bool
    assert not (sc.cloud_mask & sc.shadow_mask).any()
    np.testing.assert_array_equal(sc.cloud_mask, sc.cloud_thickness >= THICK_CLOUD_THICKNESS)
    assert set(np.unique(sc.mask)) <= {-1, 0, 1}
    assert sum(sc.class_fractions().values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cloud_cover": -0.1},
        {"cloud_cover": 1.5},
        {"seed": -1},
        {"seed": "x"},
        {"cloud_type": "fog"},
        {"height": 4},
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict) -> None:
    args = {"height": 32, "width": 32, "seed": 0, **kwargs}
    with pytest.raises(ConfigError):
        generate_scene(args.pop("height"), args.pop("width"), **args)


# ---------------------------------------------------------------------------------------------
# optical realism


def test_class_spectra_have_realistic_magnitudes(clear_pool) -> None:
    med = {k: np.median(v[0].astype(np.float64), axis=1) for k, v in clear_pool.items()}
    for k in VEGETATION + (LandCover.URBAN,):
        assert k in med, f"class {LandCover(k).name} missing from the pooled scenes"
    land = [k for k in med if k != LandCover.WATER]
    for k in land:
        assert 1100 <= med[k][B["B01"]] <= 1800, LandCover(k).name  # aerosol path in B01
        assert 3 <= med[k][B["B10"]] <= 35, LandCover(k).name  # cirrus band over clear land
    for k in (LandCover.FOREST, LandCover.CROP_DENSE):  # red edge / NIR plateau
        for band in ("B07", "B08", "B8A"):
            assert 2500 <= med[k][B[band]] <= 4200, (LandCover(k).name, band)
        assert med[k][B["B08"]] > 3 * med[k][B["B04"]]  # NDVI > 0.5
    if LandCover.WATER in med:
        w = med[LandCover.WATER]
        assert w[B["B08"]] < 600 and w[B["B11"]] < 300 and w[B["B12"]] < 200
        assert w[B["B08"]] < 0.3 * min(med[k][B["B08"]] for k in VEGETATION)
    soil = med[LandCover.BARE_SOIL]
    assert soil[B["B02"]] < soil[B["B04"]] < soil[B["B08"]] < soil[B["B11"]]  # rising
    urban = med[LandCover.URBAN]
    vis_nir = urban[[B["B02"], B["B03"], B["B04"], B["B08"]]]
    assert vis_nir.max() / vis_nir.min() < 1.5  # bright and flat
    assert urban[B["B02"]] > med[LandCover.FOREST][B["B02"]]


def test_texture_within_classes() -> None:
    sc = generate_scene(96, 96, seed=2, cloud_cover=0.0)
    nir = sc.clear_dn[B["B08"]].astype(np.float64)
    for k in np.unique(sc.landcover):
        m = sc.landcover == k
        if m.sum() > 200:
            assert nir[m].std() > 0.01 * nir[m].mean(), LandCover(k).name  # not flat colour


# ---------------------------------------------------------------------------------------------
# clouds and shadows


@pytest.mark.parametrize("cover", [0.2, 0.5, 0.8])
def test_cloud_cover_is_close_to_requested(cover: float) -> None:
    for seed in range(3):
        sc = generate_scene(64, 64, seed=seed, cloud_cover=cover)
        assert sc.cloud_cover == pytest.approx(cover, abs=0.1)
        assert np.mean(sc.cloud_thickness >= VISIBLE_THICKNESS) == pytest.approx(cover, abs=0.1)


def test_zero_cover_has_no_clouds_and_full_cover_is_overcast() -> None:
    clear = generate_scene(48, 48, seed=4, cloud_cover=0.0, radiometric_jitter=False)
    assert clear.cloud_type == "none"
    assert not clear.cloud_thickness.any() and not clear.cloud_mask.any()
    assert not clear.shadow_mask.any()
    np.testing.assert_array_equal(clear.cloudy_dn, clear.clear_dn)
    full = generate_scene(48, 48, seed=4, cloud_cover=1.0)
    assert full.cloud_type == "overcast"
    assert (full.cloud_thickness >= VISIBLE_THICKNESS).all()
    assert full.cloud_mask.mean() > 0.95
    assert np.median(full.cloudy_dn[B["B02"]]) > 4000


def test_cover_drawn_from_seed_fills_all_bins() -> None:
    covers = [generate_scene(16, 16, seed=s).requested_cover for s in range(60)]
    counts = np.histogram(covers, bins=5, range=(0.0, 1.0))[0]
    assert (counts > 0).all(), counts
    again = [generate_scene(16, 16, seed=s).requested_cover for s in range(5)]
    assert again == covers[:5]


def test_cloudy_equals_clear_outside_clouds_and_shadows() -> None:
    for jitter in (False, True):
        sc = generate_scene(64, 64, seed=7, cloud_cover=0.25, radiometric_jitter=jitter)
        untouched = (sc.cloud_thickness == 0) & (sc.shadow_strength == 0)
        assert untouched.mean() > 0.15
        clear = sc.clear_dn[:, untouched].astype(np.float64)
        cloudy = sc.cloudy_dn[:, untouched].astype(np.float64)
        if not jitter:
            np.testing.assert_array_equal(cloudy, clear)
        else:
            diff = np.abs(cloudy - clear)
            assert (diff <= 0.08 * clear + 15).mean() > 0.999  # documented tolerance
            assert (diff > 0).mean() > 0.5  # identity is not perfect


def test_thick_clouds_are_bright_and_flat_and_shadows_darken() -> None:
    sc = generate_scene(96, 96, seed=1, cloud_cover=0.4, cloud_type="cumulus")
    core = sc.cloud_thickness >= 0.9
    assert core.sum() > 50
    dn = np.median(sc.cloudy_dn[:, core].astype(np.float64), axis=1)
    assert dn[B["B02"]] > 4000 and dn[B["B01"]] > 4000
    vis_nir = dn[[B["B02"], B["B03"], B["B04"], B["B08"]]]
    assert vis_nir.max() / vis_nir.min() < 1.2
    assert dn[B["B12"]] < dn[B["B11"]] < dn[B["B08"]]  # lower in SWIR
    shadow = sc.shadow_mask
    assert shadow.sum() > 50
    ratio = sc.cloudy_dn[:, shadow].astype(np.float64) / sc.clear_dn[:, shadow]
    assert np.median(ratio[B["B08"]]) < 0.8 and np.median(ratio[B["B11"]]) < 0.8
    assert np.median(ratio[B["B02"]]) < 1.0
    dy, dx = sc.params["shadow_offset_px"]
    assert (dy, dx) != (0, 0)


def test_high_and_low_clouds_differ_in_cirrus_band() -> None:
    cirrus = generate_scene(64, 64, seed=2, cloud_cover=0.8, cloud_type="cirrus")
    low = generate_scene(64, 64, seed=2, cloud_cover=0.8, cloud_type="cumulus")
    b10 = B["B10"]
    assert np.median(cirrus.cloudy_dn[b10][cirrus.cloud_mask]) > 300
    assert np.median(low.cloudy_dn[b10][low.cloud_mask]) < 400
    assert np.median(low.clear_dn[b10]) < 35


def test_rule_based_detector_sees_synthetic_clouds() -> None:
    from cloudfree.cloudmask import rule_based

    cloudy = generate_scene(64, 64, seed=8, cloud_cover=0.6)
    flagged = (rule_based(cloudy.cloudy_dn) == 1).mean()
    assert flagged > 0.3, (flagged, cloudy.cloud_type)
    for seed in range(3):
        clear = generate_scene(64, 64, seed=seed, cloud_cover=0.0)
        assert (rule_based(clear.cloudy_dn) == 1).mean() < 0.1


# ---------------------------------------------------------------------------------------------
# SAR


def test_sar_class_means_are_ordered(clear_pool) -> None:
    vv = {k: float(np.mean(v[1][0])) for k, v in clear_pool.items() if v[1].shape[1] > 200}
    vh = {k: float(np.mean(v[1][1])) for k, v in clear_pool.items() if v[1].shape[1] > 200}
    assert LandCover.WATER in vv and LandCover.URBAN in vv
    assert min(vv, key=vv.get) == LandCover.WATER
    assert max(vv, key=vv.get) == LandCover.URBAN
    assert min(vh, key=vh.get) == LandCover.WATER
    assert vv[LandCover.WATER] < -15 and vh[LandCover.WATER] < -23
    fields = [vv[k] for k in FIELDS if k in vv]
    assert vv[LandCover.FOREST] > np.mean(fields)
    assert vh[LandCover.FOREST] > vh[LandCover.CROP_HARVESTED] + 5
    # the table itself: every pair of classes differs by >= 1 dB in VV or VH
    for i in range(len(CLASS_SAR_DB)):
        for j in range(i + 1, len(CLASS_SAR_DB)):
            assert np.abs(CLASS_SAR_DB[i] - CLASS_SAR_DB[j]).max() >= 1.0


def _nearest_class_mean_accuracy(sc) -> tuple[float, float, list[int]]:
    """Accuracy and balanced accuracy of a nearest-class-mean classifier on 5x5-mean SAR."""
    feats = np.stack([ndimage.uniform_filter(b, 5) for b in sc.sar_db])
    lc = sc.landcover
    classes = [k for k in range(len(LandCover)) if (lc == k).sum() >= 100]
    means = np.array([feats[:, lc == k].mean(axis=1) for k in classes])
    keep = np.isin(lc, classes)
    x = feats[:, keep].T
    pred = np.array(classes)[((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)]
    truth = lc[keep]
    balanced = np.mean([(pred[truth == k] == k).mean() for k in classes])
    return float((pred == truth).mean()), float(balanced), classes


def test_sar_recovers_land_cover_well_above_chance() -> None:
    tested = 0
    for seed in range(40):
        sc = generate_scene(96, 96, seed=seed, cloud_cover=0.0)
        acc, balanced, classes = _nearest_class_mean_accuracy(sc)
        if len(classes) < 4:
            continue
        assert acc > 0.6, (seed, classes, acc)
        assert balanced > 0.55, (seed, classes, balanced)  # chance: 1 / len(classes) <= 0.25
        tested += 1
        if tested == 3:
            break
    assert tested == 3


def test_sar_carries_within_class_vegetation_state() -> None:
    """VH follows crop vigour (also seen in NIR): SAR informs on the ground beyond the class."""
    r = []
    for seed in range(6):
        sc = generate_scene(96, 96, seed=seed, cloud_cover=0.0)
        vh = ndimage.uniform_filter(sc.sar_db[1], 5)
        nir = ndimage.uniform_filter(sc.clear_dn[B["B08"]].astype(np.float32), 5)
        for k in (LandCover.CROP_DENSE, LandCover.CROP_YOUNG, LandCover.GRASSLAND):
            m = ndimage.binary_erosion(sc.landcover == k, iterations=3)
            if m.sum() > 300:
                r.append(np.corrcoef(vh[m], nir[m])[0, 1])
    assert len(r) >= 3
    assert np.median(r) > 0.2, r


def test_sar_is_blind_to_clouds() -> None:
    a = generate_scene(48, 48, seed=9, cloud_cover=0.0)
    b = generate_scene(48, 48, seed=9, cloud_cover=0.9)
    np.testing.assert_array_equal(a.sar_db, b.sar_db)


# ---------------------------------------------------------------------------------------------
# georeferencing and sample planning


def test_roi_georeference_is_plausible_and_deterministic() -> None:
    crs, t1 = roi_georeference("ROIs1158_spring/s1_106", 1, 256)
    assert crs == roi_georeference("ROIs1158_spring/s1_106", 1, 256)[0]
    epsg = int(crs.split(":")[1])
    assert 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760
    assert (t1.a, t1.b, t1.d, t1.e) == (10.0, 0.0, 0.0, -10.0)
    _, t2 = roi_georeference("ROIs1158_spring/s1_106", 2, 256)
    assert t2.c - t1.c == pytest.approx(2560.0) and t2.f == t1.f  # neighbouring patch
    other, _ = roi_georeference("ROIs1970_fall/s1_139", 1, 256)
    assert roi_georeference("ROIs1970_fall/s1_139", 1, 256)[0] == other


@pytest.mark.parametrize("n", [3, 4, 5, 7, 10, 31])
def test_plan_uses_real_rois_and_fills_every_split(n: int) -> None:
    splits = load_sen12mscr_splits()
    plans = plan_sen12mscr_samples(n, seed=2)
    assert len(plans) == n
    assert [p.index for p in plans] == list(range(n))
    assert {p.split for p in plans} == {"train", "val", "test"}
    assert len({p.id for p in plans}) == n
    for p in plans:
        assert p.roi in splits[p.split]
        assert p.roi == f"{p.season}/s1_{p.scene}"
        assert 0.0 <= p.cloud_cover < 1.0
    assert plans == plan_sen12mscr_samples(n, seed=2)
    if n >= 30:
        train = [p for p in plans if p.split == "train"]
        assert 0.6 <= len(train) / n <= 0.8
        per_roi = {r: sum(p.roi == r for p in plans) for r in {p.roi for p in plans}}
        assert max(per_roi.values()) >= 2  # several patches per ROI
        bins = np.histogram([p.cloud_cover for p in plans], bins=5, range=(0, 1))[0]
        assert (bins > 0).all()


# ---------------------------------------------------------------------------------------------
# writers


def _check_triplet(files: dict[str, Path], size: int) -> None:
    s1 = read_raster(files["s1"])
    s2 = read_raster(files["s2"])
    cloudy = read_raster(files["s2_cloudy"])
    assert s1.array.dtype == np.float32 and s1.array.shape == (2, size, size)
    assert s1.descriptions == S1_NAMES
    for r in (s2, cloudy):
        assert r.array.dtype == np.uint16 and r.array.shape == (13, size, size)
        assert r.descriptions == S2_L1C_NAMES
    assert s1.crs == s2.crs == cloudy.crs and s1.crs.to_epsg() // 100 in (326, 327)
    assert s1.transform == s2.transform == cloudy.transform
    assert s2.transform.a == 10.0 and s2.transform.e == -10.0


def test_write_official_layout(tmp_path: Path) -> None:
    records = write_sen12mscr_synthetic(tmp_path / "ds", patches=5, size=32, seed=1)
    root = tmp_path / "ds"
    assert {r["split"] for r in records} == {"train", "val", "test"}
    for r in records:
        season, scene, patch = r["season"], r["scene"], r["patch"]
        files = r["paths"]["official"]
        assert set(r["paths"]) == {"official"}
        assert files["s1"] == (
            root / f"{season}_s1" / f"s1_{scene}" / f"{season}_s1_{scene}_p{patch}.tif"
        )
        assert files["s2"] == (
            root / f"{season}_s2" / f"s2_{scene}" / f"{season}_s2_{scene}_p{patch}.tif"
        )
        assert files["s2_cloudy"] == (
            root
            / f"{season}_s2_cloudy"
            / f"s2_cloudy_{scene}"
            / f"{season}_s2_cloudy_{scene}_p{patch}.tif"
        )
        _check_triplet(files, 32)
        crs, transform = roi_georeference(r["roi"], patch, 32)
        assert read_raster(files["s2"]).crs.to_string() == crs
        assert read_raster(files["s2"]).transform == transform
        # the files hold exactly the scene generated from (seed, index)
        sc = generate_scene(32, 32, seed=(1, r["index"]), cloud_cover=r["requested_cover"])
        np.testing.assert_array_equal(read_raster(files["s2_cloudy"]).array, sc.cloudy_dn)
        np.testing.assert_array_equal(read_raster(files["s1"]).array, sc.sar_db)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert (manifest["seed"], manifest["size"], manifest["patches"]) == (1, 32, 5)
    assert len(manifest["samples"]) == 5
    for m, r in zip(manifest["samples"], records):
        assert m["cloud_cover"] == pytest.approx(r["cloud_cover"])
        assert sum(m["class_fractions"].values()) == pytest.approx(1.0)
        assert (root / m["paths"]["official"]["s2"]).is_file()
    assert not (root / FLAT_CSV_NAME).exists()
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert not leftovers


def test_write_flat_layout_and_csv(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    records = write_sen12mscr_synthetic(root, patches=7, size=16, seed=4, layout="flat")
    rows = list(csv.reader((root / FLAT_CSV_NAME).read_text().splitlines()))
    assert len(rows) == 7  # no header row, like GLF-CR's data.csv
    assert {row[0] for row in rows} == {"1", "2", "3"}
    for row, r in zip(rows, records):
        code, s1_dir, clear_dir, cloudy_dir, name = row
        assert (s1_dir, clear_dir, cloudy_dir) == ("s1", "s2_cloudfree", "s2_cloudy")
        assert int(code) == {"train": 1, "val": 2, "test": 3}[r["split"]]
        assert name == f"{r['season']}_{r['scene']}_p{r['patch']}.tif"
        for d in (s1_dir, clear_dir, cloudy_dir):
            assert (root / d / name).is_file()
        _check_triplet(r["paths"]["flat"], 16)
    assert not any(p.name.endswith("_s1") for p in root.iterdir())


def test_write_both_layouts_and_reproducibility(tmp_path: Path) -> None:
    a = write_sen12mscr_synthetic(tmp_path / "a", patches=3, size=16, seed=9, layout="both")
    b = write_sen12mscr_synthetic(tmp_path / "b", patches=3, size=16, seed=9, layout="both")
    assert (tmp_path / "a" / "flat" / FLAT_CSV_NAME).is_file()
    for ra, rb in zip(a, b):
        assert set(ra["paths"]) == {"official", "flat"}
        assert ra["paths"]["flat"]["s2"].parent == tmp_path / "a" / "flat" / "s2_cloudfree"
        for key in ("s1", "s2", "s2_cloudy"):
            x = read_raster(ra["paths"]["official"][key]).array
            np.testing.assert_array_equal(x, read_raster(ra["paths"]["flat"][key]).array)
            np.testing.assert_array_equal(x, read_raster(rb["paths"]["official"][key]).array)
    ma = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    mb = json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())
    assert ma == mb and ma["flat_root"] == "flat"


def test_generated_dataset_reads_with_the_standard_split(tmp_path: Path) -> None:
    from cloudfree.data.sen12mscr import find_triplets

    records = write_sen12mscr_synthetic(tmp_path, patches=6, size=16, seed=3, layout="both")
    expected = {r["id"]: r["split"] for r in records}
    for root, layout in ((tmp_path, "official"), (tmp_path / "flat", "flat")):
        found = {t.id: t.split for t in find_triplets(root, layout=layout)}
        assert found == expected


def test_writer_validates_arguments_and_refuses_non_empty_dirs(tmp_path: Path) -> None:
    for kwargs in ({"patches": 2}, {"size": 17}, {"size": 8}, {"seed": -1}, {"layout": "tree"}):
        with pytest.raises(ConfigError):
            write_sen12mscr_synthetic(tmp_path / "x", **{"patches": 3, "size": 16, **kwargs})
    assert not (tmp_path / "x").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        write_sen12mscr_synthetic(tmp_path / "busy", patches=3, size=16)
    write_sen12mscr_synthetic(tmp_path / "busy", patches=3, size=16, exist_ok=True)
    assert (tmp_path / "busy" / MANIFEST_NAME).is_file()


def test_write_scene_pair(tmp_path: Path) -> None:
    paths = write_scene_pair(tmp_path, height=40, width=48, seed=2, cloud_cover=0.5, prefix="t")
    sc = paths.scene
    cloudy, clear = read_raster(paths.cloudy), read_raster(paths.clear)
    s1, lc, mask = read_raster(paths.s1), read_raster(paths.landcover), read_raster(paths.mask)
    np.testing.assert_array_equal(cloudy.array, sc.cloudy_dn)
    np.testing.assert_array_equal(clear.array, sc.clear_dn)
    np.testing.assert_array_equal(s1.array, sc.sar_db)
    np.testing.assert_array_equal(lc.array[0], sc.landcover)
    np.testing.assert_array_equal(mask.array[0], sc.mask)
    for r in (cloudy, clear, s1, lc, mask):
        assert r.crs == cloudy.crs and r.transform == cloudy.transform
        assert r.height == 40 and r.width == 48
    assert "0=water" in lc.tags["CLASSES"]
    assert cloudy.descriptions == S2_L1C_NAMES and s1.descriptions == S1_NAMES


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_synth_writes_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "synth", str(out), "--patches", "4", "--size", "16", "--seed", "2"]
    res = CliRunner().invoke(main, [*args, "--layout", "flat"])
    assert res.exit_code == 0, res.output
    for split in ("train", "val", "test"):
        assert f"{split}: " in res.output
    assert len((out / FLAT_CSV_NAME).read_text().splitlines()) == 4
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["layout"] == "flat" and manifest["seed"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patches", "2"], "'--patches' / '-n': 2 is not in the range x>=3"),
        (["--size", "15"], "'--size' / '-s': 15 is not in the range x>=16"),
        (["--size", "18", "--size", "17"], "'--size' / '-s': must be a multiple of 2, got 17"),
        (["--seed", "-3"], "'--seed': -3 is not in the range x>=0"),
        (["--layout", "tree"], "'--layout': 'tree' is not one of 'official', 'flat', 'both'"),
    ],
)
def test_cli_synth_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["data", "synth", str(tmp_path / "o"), *args])
    assert res.exit_code == 2  # click's usage error, before anything is generated
    assert f"Error: Invalid value for {message}" in res.output
    assert not (tmp_path / "o").exists()


def test_cli_synth_refuses_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    res = CliRunner().invoke(main, ["data", "synth", str(tmp_path), "-n", "3", "-s", "16"])
    assert res.exit_code == 1
    assert "Error:" in res.output and "not empty" in res.output
