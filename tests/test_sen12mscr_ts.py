"""SEN12MS-CR-TS: the simulator's writer, the dataset, its samplers, pairing files, padding."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.data import SEN12MSCRTS, build_dataset, collate_time_series, list_datasets
from cloudfree.data.sen12mscr_ts import (
    ca_mtcr_sampler,
    fixed_sampler,
    parse_ts_name,
    random_sampler,
    ts_file_name,
)
from cloudfree.data.splits import load_sen12mscr_ts_splits, sen12mscr_ts_rois
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import read_raster
from cloudfree.synth.temporal_writers import TS_MANIFEST_NAME, write_sen12mscr_ts_synthetic

EPOCH = dt.date(2014, 4, 3)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ts") / "SEN12MSCRTS"
    write_sen12mscr_ts_synthetic(out, patches=6, size=32, seed=0, dates=8, change_rate=1.0)
    return out


@pytest.fixture(scope="module")
def manifest(root: Path) -> dict:
    return json.loads((root / TS_MANIFEST_NAME).read_text())


# ------------------------------------------------------------------------------- layout
def test_writer_uses_the_official_names_and_splits(root: Path, manifest: dict) -> None:
    splits = load_sen12mscr_ts_splits("all")
    assert {r["split"] for r in manifest["samples"]} == {"train", "val", "test"}
    for r in manifest["samples"]:
        assert r["roi"] in splits[r["split"]]
        for mod in ("s1", "s2"):
            for t, rel in enumerate(r["files"][mod]):
                path = root / rel
                assert path.is_file()
                rois, roi, folder, tdir, name = rel.split("/")
                assert f"{rois}/{roi}" == r["roi"] and folder == mod.upper() and tdir == str(t)
                # the official loader: date = field 5 of split('_'), patch after 'patch_'
                date = name.split("_")[5]
                want = r["dates" if mod == "s2" else "s1_dates"][t]
                assert date == want
                assert name.split("patch_")[-1].split(".tif")[0] == str(r["patch"])
                assert name == ts_file_name(
                    mod, rois, roi, t, dt.date.fromisoformat(date), r["patch"]
                )
    assert parse_ts_name("s2_ROIs1868_119_ImgNo_3_2018-02-01_patch_12.tif") == {
        "mod": "s2", "rois": "ROIs1868", "roi": "119", "t": 3,
        "date": dt.date(2018, 2, 1), "patch": 12,
    }  # fmt: skip
    assert parse_ts_name("s2_ROIs1868_119_ImgNo_3_2018-02-01_patch_12.tif.aux.xml") is None


def test_official_inventory_and_splits() -> None:
    rois = sen12mscr_ts_rois()
    assert len(rois) == 53
    s = load_sen12mscr_ts_splits()
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (35, 5, 13)
    assert not set(s["train"]) & set(s["test"]) and not set(s["val"]) & set(s["test"])
    assert "ROIs1158/106" in s["test"] and "ROIs2017/22" in s["val"]
    for region in ("africa", "america", "asiaEast", "asiaWest", "europa"):
        r = load_sen12mscr_ts_splits(region)
        assert all(set(v) <= set(rois) for v in r.values())
    with pytest.raises(ConfigError, match="unknown SEN12MS-CR-TS region"):
        load_sen12mscr_ts_splits("mars")


def test_roi_ids_are_matched_exactly(root: Path, tmp_path: Path) -> None:
    """A folder ROIs1868/11 is no test ROI, though '11' is a substring of test ROI 119."""
    copy = tmp_path / "copy"
    shutil.copytree(root / "ROIs1868" / "119", copy / "ROIs1868" / "11")
    with pytest.raises(DatasetError, match="no SEN12MS-CR-TS patch of split 'test'"):
        SEN12MSCRTS(copy, split="test")


# ------------------------------------------------------------------------------- samples
def test_sample_follows_the_batch_contract(root: Path, manifest: dict) -> None:
    ds = SEN12MSCRTS(root, split="train")
    assert "sen12mscr_ts" in list_datasets() and len(ds) == 4
    s = ds[0]
    t = 3
    assert s["optical"].shape == (t, 13, 32, 32) and s["optical"].dtype == torch.float32
    assert s["sar"].shape == (t, 2, 32, 32)
    assert s["dates"].shape == (t,) and s["time_mask"].all()
    assert s["target"].shape == (13, 32, 32)
    assert s["cloud_masks"].shape == s["shadow_masks"].shape == (t, 1, 32, 32)
    assert s["cloud_mask"].shape == (1, 32, 32)  # the region to restore (union here)
    torch.testing.assert_close(s["cloud_mask"][0], s["cloud_masks"].amax(dim=0)[0])
    assert float(s["cloud_cover"]) == pytest.approx(float(s["cover"].mean()))
    assert s["cover"].shape == (t,) and s["valid_mask"].shape == (1, 32, 32)
    rec = next(r for r in manifest["samples"] if r["split"] == "train")
    assert s["id"] == f"{rec['roi'].replace('/', '_')}_p{rec['patch']}"
    # dates: days since 2014-04-03, S1 and S2 averaged
    for k, i in enumerate(s["input_idx"].tolist()):
        d2 = (dt.date.fromisoformat(rec["dates"][i]) - EPOCH).days
        d1 = (dt.date.fromisoformat(rec["s1_dates"][i]) - EPOCH).days
        assert float(s["dates"][k]) == (d1 + d2) / 2
        raw = read_raster(root / rec["files"]["s2"][i]).array.astype(np.float32)
        np.testing.assert_array_equal(s["optical"][k].numpy(), raw)
    assert build_dataset("sen12mscr_ts", root, split="val").__len__() == 1


def test_covers_are_cached(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = SEN12MSCRTS(root, split="train").covers(1)
    monkeypatch.setattr(SEN12MSCRTS, "_labels", lambda *a: (_ for _ in ()).throw(AssertionError))
    again = SEN12MSCRTS(root, split="train")
    np.testing.assert_array_equal(again.covers(1), first)


def test_official_mask_names_are_accepted(root: Path) -> None:
    ds = SEN12MSCRTS(root, split="val", cloud_masks="cloud_cloudshadow_mask")
    assert ds.cloud_masks == "rule_based"


def test_mask_files_give_the_simulator_truth(root: Path, manifest: dict) -> None:
    ds = SEN12MSCRTS(root, split="train", cloud_masks="mask_files")
    rec = next(r for r in manifest["samples"] if r["split"] == "train")
    covers = ds.covers(0)
    for t, c in enumerate(covers):
        mask = read_raster(ds.patches[0].side_file("mask", t)).array[0]
        assert c == float((mask != 0).mean())
        assert c >= rec["covers"][t] - 1e-6  # manifest (rounded): cloud only; here also shadow


def test_changed_fraction_comes_from_the_change_maps(root: Path) -> None:
    ds = SEN12MSCRTS(root, split="train", cloud_masks="mask_files")
    s = ds[0]
    p = ds.patches[0]
    target = int(s["target_idx"])
    for k, t in enumerate(s["input_idx"].tolist()):
        a, b = sorted((t, target))
        maps = [read_raster(p.side_file("change", u)).array[0] > 0 for u in range(a + 1, b + 1)]
        want = float(np.logical_or.reduce(maps).mean()) if maps else 0.0
        assert float(s["changed_fraction"][k]) == pytest.approx(want)


# ------------------------------------------------------------------------------- samplers
def test_fixed_sampler_is_the_official_one() -> None:
    cover = [0.5, 0.0, 0.3, 0.0, 0.9, 0.2]
    # target: the earliest least cloudy (index 1, not 3); inputs: first 3 in [0, 1] = 0, 1, 2
    assert fixed_sampler(cover, 3, 0.0, 1.0, 1e-3) == ([0, 1, 2], 1, True)
    # inputs with cover in [0.1, 0.5]: 0, 2, 5
    assert fixed_sampler(cover, 3, 0.1, 0.5, 1e-3) == ([0, 2, 5], 1, True)
    # too few in range: the first dates other than the target, match False
    assert fixed_sampler(cover, 3, 0.6, 0.8, 1e-3) == ([0, 2, 3], 1, False)
    # the target is not clear: match False
    assert fixed_sampler([0.4, 0.2, 0.6, 0.3], 2, 0.0, 1.0, 1e-3) == ([0, 1], 1, False)


def test_random_sampler_is_the_official_one() -> None:
    cover = [0.5, 0.6, 0.0, 0.3, 0.7, 0.8, 0.9, 0.4]
    inputs, target, match = random_sampler(cover, 3, 1e-3, np.random.default_rng(0))
    # the only clear date is 2; windows of 4 holding 2 start at 0, 1, 2: the middle one starts
    # at 1 -> dates 1..4 without the target
    assert (inputs, target, match) == ([1, 3, 4], 2, True)
    # no clear date: the least cloudy one
    assert random_sampler([0.5, 0.2, 0.9], 1, 1e-3, np.random.default_rng(0))[1] == 1
    # several clear dates: the draw depends on the generator only
    cover = [0.0, 0.5, 0.0, 0.5, 0.0, 0.5]
    draws = {random_sampler(cover, 2, 1e-3, np.random.default_rng(s))[1] for s in range(20)}
    assert draws == {0, 2, 4}


def test_ca_mtcr_sampler() -> None:
    cover = [0.0, 0.6, 0.4, 0.0, 0.8, 0.0, 0.5, 0.7]
    for seed in range(10):
        inputs, ref, match = ca_mtcr_sampler(cover, 2, 0.0, 1.0, 1e-3, np.random.default_rng(seed))
        n = inputs[-1]
        assert match and cover[n] > 1e-3 and cover[ref] < 1e-3 and ref != n
        nearest = min((c for c in (0, 3, 5)), key=lambda c: (abs(c - n), c))
        assert ref == nearest
        aux = inputs[:-1]
        assert len(aux) == 2 and aux == sorted(aux) and n not in aux and ref not in aux
    # the offset window keeps auxiliary dates within 1..2 steps of N
    for seed in range(10):
        inputs, ref, _ = ca_mtcr_sampler(
            cover, 2, 0.0, 1.0, 1e-3, np.random.default_rng(seed), aux_offset_window=(1, 2)
        )
        assert all(1 <= abs(a - inputs[-1]) <= 2 for a in inputs[:-1])
    # no cloud-free date at all: fallback, match False
    inputs, ref, match = ca_mtcr_sampler(
        [0.3, 0.9, 0.5], 1, 0.0, 1.0, 1e-3, np.random.default_rng(0)
    )
    assert not match and inputs[-1] == 1 and ref == 0


def test_dataset_draws_depend_on_seed_epoch_and_index(root: Path) -> None:
    ds = SEN12MSCRTS(root, split="train", sampler="ca_mtcr", cloud_masks="mask_files", seed=3)
    a = [ds.select_dates(i) for i in range(len(ds))]
    assert a == [ds.select_dates(i) for i in range(len(ds))]
    ds.set_epoch(1)
    b = [ds.select_dates(i) for i in range(len(ds))]
    assert a != b
    s = ds[0]
    assert int(s["input_idx"][-1]) != int(s["target_idx"])  # N is an input, the reference not


# ------------------------------------------------------------------------------- pairing files
def test_official_pairing_files_are_used_and_read_safely(root: Path, tmp_path: Path) -> None:
    pairs = {0: {"input": np.array([5, 6, 7]), "target": 2}, 1: {"coverage": [0.5] * 8}}
    folder = tmp_path / "pairs"
    folder.mkdir()
    np.save(folder / "generic_3_train_all_cloud_cloudshadow_mask.npy", pairs, allow_pickle=True)
    ds = SEN12MSCRTS(root, split="train", import_data_path=folder)
    assert ds.select_dates(0) == ([5, 6, 7], 2, True)
    assert ds.select_dates(1)[1] == 0  # fixed sampler on the given covers: the earliest
    assert ds.select_dates(2) == ([5, 6, 7], 2, True)  # wraps around the two pairings

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.npy"
    with open(evil, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|O", "fortran_order": False, "shape": ()}
        )
        pickle.dump(Evil(), fh)
    with pytest.raises(InputFileError, match="refused to load"):
        SEN12MSCRTS(root, split="train", import_data_path=evil)
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------- padding, errors
def test_collate_pads_dates_with_zero_and_a_false_time_mask(root: Path) -> None:
    a = SEN12MSCRTS(root, split="train", n_input_t=2)[0]
    b = SEN12MSCRTS(root, split="train", n_input_t=4)[1]
    batch = collate_time_series([a, b])
    assert batch["optical"].shape == (2, 4, 13, 32, 32)
    assert batch["time_mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert (batch["optical"][0, 2:] == 0).all() and (batch["dates"][0, 2:] == 0).all()
    torch.testing.assert_close(batch["optical"][1], b["optical"])
    assert batch["id"] == [a["id"], b["id"]] and batch["target"].shape == (2, 13, 32, 32)


def test_incomplete_patches_and_bad_options(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    victim = next((copy / "ROIs1868" / "36" / "S1" / "4").glob("*_patch_1.tif"))
    victim.unlink()
    with pytest.raises(DatasetError, match=r"S1/4: no file of patch 1.*--skip-incomplete"):
        SEN12MSCRTS(copy, split="train", index_path=tmp_path / "i.json")
    ds = SEN12MSCRTS(copy, split="train", skip_incomplete=True, index_path=tmp_path / "i.json")
    assert len(ds) == 3
    for kwargs, match in (
        ({"sampler": "best"}, "sampler must be one of"),
        ({"cloud_masks": "fmask"}, "cloud_masks must be one of"),
        ({"n_input_t": 8}, "needs at least 9"),
        ({"min_cov": 0.6, "max_cov": 0.2}, "min_cov"),
        ({"split": "holdout"}, "split must be"),
    ):
        with pytest.raises(ConfigError, match=match):
            SEN12MSCRTS(root, **kwargs)
    with pytest.raises(DatasetError, match="root not found"):
        SEN12MSCRTS(tmp_path / "nowhere")


def test_data_synth_temporal_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ts"
    res = runner.invoke(main, ["data", "synth", str(out), "--temporal", "-n", "3", "-s", "16",
                               "--dates", "4", "--change-rate", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "wrote 3 time series of 4 dates, 16x16 px" in res.output
    assert len(SEN12MSCRTS(out, split="all", n_input_t=2)) == 3
    res = runner.invoke(main, ["data", "synth", str(tmp_path / "x"), "--layout", "sen12mscr_ts"])
    assert res.exit_code == 1 and "add --temporal" in res.output
    res = runner.invoke(
        main, ["data", "synth", str(tmp_path / "y"), "--temporal", "--layout", "flat"]
    )
    assert res.exit_code == 1 and "time series (--temporal) are written as" in res.output
