"""AllClear: the simulator's layout against AllClear's parsing rules, and the dataset."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.data import AllClear, build_dataset, collate_time_series
from cloudfree.data.allclear import cld_shdw_path
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.evaluate import evaluate_checkpoints
from cloudfree.io import read_raster, write_raster
from cloudfree.models import create_model, save_pretrained
from cloudfree.synth.temporal_writers import write_allclear_synthetic


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("allclear") / "ac"
    write_allclear_synthetic(out, patches=6, size=32, seed=1, dates=6, change_rate=1.0)
    return out


def test_layout_follows_allclears_parsing_rules(root: Path) -> None:
    meta = json.loads((root / "allclear_train_tx3.json").read_text())
    assert meta
    for e in meta.values():
        assert set(e) == {"roi", "s2_toa", "s1", "target"} and len(e["s2_toa"]) == 3
        for stamp, path in [*e["s2_toa"], *e["target"], *e["s1"]]:
            when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
            parts = path.split("_")  # AllClear: the date is in the last four fields
            assert dt.date(int(parts[-4]), int(parts[-3]), int(parts[-2])) == when.date()
            assert (root / path).is_file()
        for _, path in e["s2_toa"]:
            cld = root / cld_shdw_path(path)
            assert cld.is_file() and read_raster(cld).count == 5
        assert e["target"][0][1] not in [p for _, p in e["s2_toa"]]


def test_sample_contract_and_masks(root: Path) -> None:
    ds = AllClear(root, split="train")
    s = ds[0]
    assert s["optical"].shape == (3, 13, 32, 32) and s["sar"].shape == (3, 2, 32, 32)
    assert s["cloud_masks"].shape == (3, 1, 32, 32) and s["time_mask"].all()
    assert (s["dates"][1:] > s["dates"][:-1]).all()
    meta = json.loads(ds.metadata_path.read_text())[s["id"]]
    for k, (_, path) in enumerate(sorted(meta["s2_toa"])):
        cld = read_raster(root / cld_shdw_path(path)).array
        np.testing.assert_array_equal(s["cloud_masks"][k, 0].numpy() > 0.5, cld[1] > 0.5)
    tgt = read_raster(root / cld_shdw_path(meta["target"][0][1])).array
    np.testing.assert_array_equal(s["score_mask"][0].numpy(), (tgt[1] < 0.5) & (tgt[4] < 0.5))
    # the input nearest in time to the target gives the region to restore
    nearest = int(torch.argmin((s["dates"] - s["target_date"]).abs()))
    torch.testing.assert_close(s["cloud_mask"], s["cloud_masks"][nearest])
    assert len(build_dataset("allclear", root, split="test")) >= 1
    batch = collate_time_series([ds[0], ds[1]])
    assert batch["optical"].shape[:2] == (2, 3)


def test_s1_is_matched_within_two_days_else_missing(root: Path, tmp_path: Path) -> None:
    meta = json.loads((root / "allclear_train_tx3.json").read_text())
    sid = next(iter(meta))
    entry = meta[sid]
    first = dt.datetime.strptime(sorted(entry["s2_toa"])[0][0], "%Y-%m-%d %H:%M:%S")
    far = (first - dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    near = (first + dt.timedelta(days=1, hours=12)).strftime("%Y-%m-%d %H:%M:%S")
    s1_path = str(root / entry["s1"][0][1])
    for stamp, expect_nan in ((far, True), (near, False)):
        edited = {sid: {**entry, "s1": [[stamp, s1_path]]}}
        path = tmp_path / f"m_{expect_nan}.json"
        path.write_text(json.dumps(edited))
        s = AllClear(root, metadata=path)[0]
        assert bool(torch.isnan(s["sar"][0]).all()) is expect_nan


def test_centre_crop_of_larger_images(tmp_path: Path) -> None:
    """A 300 px image is cut to its centre 256 px at (W // 2 - 128, H // 2 - 128)."""
    rng = np.random.default_rng(0)
    dn = rng.integers(1, 5000, size=(13, 300, 300), dtype=np.uint16)
    tr = __import__("rasterio").Affine(10, 0, 0, 0, -10, 0)
    entry: dict = {"roi": ["roi1", [0, 0]], "s2_toa": [], "s1": [], "target": []}
    for k, day in enumerate((1, 5, 9, 13)):
        name = f"roi1/s2_toa/roi1_s2_toa_2020_01_{day:02d}_p0.tif"
        write_raster(tmp_path / name, dn + k, crs="EPSG:32632", transform=tr)
        write_raster(tmp_path / cld_shdw_path(name), np.zeros((5, 300, 300), np.float32),
                     crs="EPSG:32632", transform=tr)  # fmt: skip
        key = "target" if k == 3 else "s2_toa"
        entry[key].append([f"2020-01-{day:02d} 10:00:00", name])
    (tmp_path / "m.json").write_text(json.dumps({"a": entry}))
    s = AllClear(tmp_path, metadata=tmp_path / "m.json")[0]
    assert s["optical"].shape[-2:] == (256, 256)
    np.testing.assert_array_equal(s["optical"][0].numpy(), dn[:, 22:278, 22:278])
    assert torch.isnan(s["sar"]).all()  # no S1 listed: missing, never a number


def test_metadata_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected one metadata JSON with 'holdout'"):
        AllClear(root, split="holdout")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match="not readable JSON"):
        AllClear(root, metadata=bad)
    meta = json.loads((root / "allclear_train_tx3.json").read_text())
    sid = next(iter(meta))
    with pytest.raises(InputFileError, match="expected tx=4"):
        AllClear(root, split="train", tx=4)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({sid: {**meta[sid], "target": [["2020/01/01", "x.tif"]]}}))
    with pytest.raises(DatasetError, match="time stamp '2020/01/01'"):
        AllClear(root, metadata=odd)[0]
    with pytest.raises(ConfigError, match="tx must be"):
        AllClear(root, split="train", tx=0)


def test_evaluation_scores_only_target_clear_pixels(root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    w = save_pretrained(create_model("standin_temporal"), tmp_path / "w")
    res = evaluate_checkpoints(
        {"t": w}, root, split="train", out_dir=None, progress=False, dataset="allclear",
        protocol="allclear",
    )  # fmt: skip
    assert res.summary["dataset_name"] == "allclear"
    assert {"mosaic", "least_cloudy"} <= set(res.summary["models"])
    assert res.summary["n_images"] == len(AllClear(root, split="train"))


def test_data_synth_allclear_cli(tmp_path: Path) -> None:
    args = ["data", "synth", str(tmp_path / "ac"), "--temporal", "--layout", "allclear",
            "-n", "3", "-s", "16", "--dates", "4"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "(layout: allclear)" in res.output
    assert len(AllClear(tmp_path / "ac", split="val")) == 1
