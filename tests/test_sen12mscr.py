"""SEN12MS-CR dataset on generated data (and on the real patch when ../shared exists)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.data import SEN12MSCR, assign_cover_bins, find_triplets, stratified_indices
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import read_raster, write_raster
from cloudfree.synth import write_sen12mscr_synthetic


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sen12mscr")
    write_sen12mscr_synthetic(root, patches=12, size=64, seed=3, layout="both")
    return root


def _official_paths(root: Path, season: str, scene: int, patch: int) -> list[Path]:
    return [
        root / f"{season}_s1" / f"s1_{scene}" / f"{season}_s1_{scene}_p{patch}.tif",
        root / f"{season}_s2" / f"s2_{scene}" / f"{season}_s2_{scene}_p{patch}.tif",
        root
        / f"{season}_s2_cloudy"
        / f"s2_cloudy_{scene}"
        / f"{season}_s2_cloudy_{scene}_p{patch}.tif",
    ]


def _copy_triplet(src_root: Path, dst_root: Path, season: str, scene: int, patch: int) -> None:
    """Place the first generated triplet under the given (season, scene, patch) name."""
    first = find_triplets(src_root, layout="official")[0]
    for src, dst in zip(
        (first.s1, first.s2, first.s2_cloudy), _official_paths(dst_root, season, scene, patch)
    ):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)


def test_generated_data_gives_non_empty_standard_splits(synth_root):
    sizes = {s: len(SEN12MSCR(synth_root, split=s)) for s in ("train", "val", "test")}
    assert all(n > 0 for n in sizes.values()), sizes
    assert len(SEN12MSCR(synth_root, split="all")) == 12 == sum(sizes.values())


def test_sample_format(synth_root):
    ds = SEN12MSCR(synth_root, split="test", protocol="glf_cr")
    s = ds[0]
    assert s["optical"].shape == s["target"].shape == (13, 64, 64)
    assert s["sar"].shape == (2, 64, 64)
    for key in ("optical", "sar", "target", "cloud_mask", "shadow_mask"):
        assert s[key].dtype == torch.float32, key
    assert s["cloud_mask"].shape == s["valid_mask"].shape == (1, 64, 64)
    assert s["valid_mask"].dtype == torch.bool and bool(s["valid_mask"].all())
    assert 0.0 <= float(s["optical"].min()) and float(s["optical"].max()) <= 1.0
    assert 0.0 <= float(s["sar"].min()) and float(s["sar"].max()) <= 1.0
    assert set(torch.unique(s["cloud_mask"]).tolist()) <= {0.0, 1.0}
    assert float(s["cloud_cover"]) == pytest.approx(float(s["cloud_mask"].mean()))
    assert s["id"] == ds.triplets[0].id and s["id"].startswith("ROIs")
    # the values are the file's DN scaled by the protocol
    dn = read_raster(ds.triplets[0].s2_cloudy).array.astype(np.float32)
    np.testing.assert_allclose(s["optical"].numpy(), np.clip(dn, 0, 10000) / 1e4, rtol=1e-6)


def test_default_is_raw_data(synth_root):
    ds = SEN12MSCR(synth_root, split="test")
    s = ds[0]
    assert ds.protocol is None and "protocol=None" in repr(ds)
    t = ds.triplets[0]
    np.testing.assert_array_equal(s["optical"].numpy(), read_raster(t.s2_cloudy).array)
    np.testing.assert_array_equal(s["target"].numpy(), read_raster(t.s2).array)
    np.testing.assert_array_equal(s["sar"].numpy(), read_raster(t.s1).array)
    assert float(s["sar"].max()) < 0.0 and float(s["optical"].max()) > 1.0  # dB and DN
    glf = SEN12MSCR(synth_root, split="test", protocol="glf_cr")[0]
    assert list(glf) == list(s)  # the same keys, normalised or not
    for key in ("cloud_mask", "shadow_mask", "valid_mask", "cloud_cover"):
        assert torch.equal(glf[key], s[key]), key


def test_protocol_band_subset_crop_and_resize(synth_root):
    ds = SEN12MSCR(
        synth_root, split="train", protocol="dsen2cr", bands="rgb", crop_size=32, crop="center"
    )
    s = ds[0]
    assert s["optical"].shape == (3, 32, 32) and s["cloud_mask"].shape == (1, 32, 32)
    full = SEN12MSCR(synth_root, split="train", protocol="dsen2cr")[0]
    torch.testing.assert_close(s["optical"], full["optical"][[3, 2, 1], 16:48, 16:48])
    assert float(full["sar"].max()) > 1.0  # DSen2-CR SAR is in [0, 2]
    resized = SEN12MSCR(synth_root, split="train", resize=32)[0]
    assert resized["optical"].shape == (13, 32, 32) and resized["valid_mask"].dtype == torch.bool


def test_seeded_random_crop_is_reproducible(synth_root):
    a = SEN12MSCR(synth_root, split="train", crop_size=16, seed=5)
    b = SEN12MSCR(synth_root, split="train", crop_size=16, seed=5)
    torch.testing.assert_close(a[1]["optical"], b[1]["optical"])
    offsets = {a._crop_window(i, 64, 64)[:2] for i in range(len(a))}
    assert len(offsets) > 1  # different samples get different crops


def test_flat_layout_reads_the_csv_split(synth_root):
    flat = synth_root / "flat"
    for split in ("train", "val", "test"):
        official_ids = set(SEN12MSCR(synth_root, split=split).ids)
        assert set(SEN12MSCR(flat, split=split).ids) == official_ids
        assert set(SEN12MSCR(flat, split=split, split_source="standard").ids) == official_ids
    s = SEN12MSCR(flat, split="test")[0]
    assert s["optical"].shape == (13, 64, 64)


def test_exact_roi_matching_does_not_leak_test_rois(synth_root, tmp_path):
    # s1_1 is a train ROI; s1_106, s1_123 and s1_140 are test ROIs whose names contain "s1_1".
    for scene in (1, 106, 123, 140):
        _copy_triplet(synth_root, tmp_path, "ROIs1158_spring", scene, 7)
    train = SEN12MSCR(tmp_path, split="train")
    test = SEN12MSCR(tmp_path, split="test")
    assert train.ids == ["ROIs1158_spring_1_p7"]
    assert sorted(test.ids) == sorted(f"ROIs1158_spring_{s}_p7" for s in (106, 123, 140))
    with pytest.raises(DatasetError, match="'val' split is empty"):
        SEN12MSCR(tmp_path, split="val")


def test_season_filter(synth_root):
    all_ds = SEN12MSCR(synth_root, split="all")
    seasons = {t.season for t in all_ds.triplets}
    one = sorted(seasons)[0]
    ds = SEN12MSCR(synth_root, split="all", seasons=[one.split("_")[1]])
    assert {t.season for t in ds.triplets} == {one}
    with pytest.raises(ConfigError, match="unknown season"):
        SEN12MSCR(synth_root, split="all", seasons=["monsoon"])


def test_cover_index_is_cached_and_reused(synth_root, tmp_path, monkeypatch):
    index = tmp_path / "cover.json"
    ds = SEN12MSCR(synth_root, split="all", index_path=index)
    covers = ds.cloud_covers(progress=False)
    assert index.is_file() and covers.shape == (12,)
    assert np.all((covers >= 0) & (covers <= 1))

    def fail(*args, **kwargs):
        raise AssertionError("cover recomputed although it is cached")

    again = SEN12MSCR(synth_root, split="all", index_path=index)
    monkeypatch.setattr(again, "_mask", fail)
    np.testing.assert_array_equal(again.cloud_covers(progress=False), covers)
    # a different threshold is a different measurement: not taken from the cache
    other = SEN12MSCR(synth_root, split="all", index_path=index, cloud_threshold=0.5)
    assert other._index.get(ds.ids[0]) is None


def test_stratified_sampling_by_cover_bin():
    covers = np.array([0.0, 0.1, 0.19, 0.2, 0.3, 0.5, 0.55, 0.7, 0.9, 1.0, 1.0, 0.85])
    np.testing.assert_array_equal(assign_cover_bins(covers), [0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 4])
    picked = stratified_indices(covers, per_bin=2, seed=1)
    bins = assign_cover_bins(covers[picked])
    assert list(np.bincount(bins, minlength=5)) == [2, 2, 2, 1, 2]  # bin 60-80 has one sample
    assert picked == stratified_indices(covers, per_bin=2, seed=1)
    with pytest.raises(DatasetError, match="60-80"):
        stratified_indices(covers, per_bin=2, strict=True)


def test_dataset_stratified_indices(synth_root, tmp_path):
    ds = SEN12MSCR(synth_root, split="all", index_path=tmp_path / "i.json")
    idx = ds.stratified_indices(per_bin=1, seed=0)
    bins = assign_cover_bins(ds.cloud_covers(progress=False)[idx])
    assert len(set(bins.tolist())) == len(bins)  # one per populated bin


# ------------------------------------------------------------------------------ bad input
def test_missing_root_and_unknown_layout(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        SEN12MSCR(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no SEN12MS-CR data found"):
        SEN12MSCR(tmp_path)


def test_missing_file_in_triplet(synth_root, tmp_path):
    _copy_triplet(synth_root, tmp_path, "ROIs1158_spring", 1, 3)
    _copy_triplet(synth_root, tmp_path, "ROIs1158_spring", 1, 4)
    gone = _official_paths(tmp_path, "ROIs1158_spring", 1, 4)[2]
    gone.unlink()
    with pytest.raises(InputFileError, match=r"s2_cloudy_1_p4\.tif: file not found"):
        SEN12MSCR(tmp_path, split="train")
    with pytest.warns(UserWarning, match="incomplete"):
        ds = SEN12MSCR(tmp_path, split="train", skip_incomplete=True)
    assert ds.ids == ["ROIs1158_spring_1_p3"]


def test_wrong_band_count_and_size_mismatch(synth_root, tmp_path):
    _copy_triplet(synth_root, tmp_path, "ROIs1158_spring", 1, 3)
    s1, s2, s2c = _official_paths(tmp_path, "ROIs1158_spring", 1, 3)
    r = read_raster(s2c)
    write_raster(s2c, r.array[:12], crs=r.crs, transform=r.transform)
    ds = SEN12MSCR(tmp_path, split="train")
    with pytest.raises(InputFileError, match=r"s2_cloudy_1_p3\.tif: has 12 band\(s\), expected 13"):
        ds[0]
    write_raster(s2c, r.array, crs=r.crs, transform=r.transform)
    r1 = read_raster(s1)
    write_raster(s1, r1.array[:, :32, :32], crs=r1.crs, transform=r1.transform)
    with pytest.raises(InputFileError, match="different sizes"):
        ds[0]


def test_unreadable_file(synth_root, tmp_path):
    _copy_triplet(synth_root, tmp_path, "ROIs1158_spring", 1, 3)
    _official_paths(tmp_path, "ROIs1158_spring", 1, 3)[1].write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="not a readable raster"):
        SEN12MSCR(tmp_path, split="train")[0]


def test_bad_flat_csv(synth_root, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(synth_root / "flat", flat)
    csv_path = next(flat.glob("*.csv"))
    csv_path.write_text(csv_path.read_text() + "4, s1, s2_cloudfree, s2_cloudy, x.tif\n")
    with pytest.raises(InputFileError, match="split code '4'"):
        SEN12MSCR(flat, split="train")


def test_bad_options(synth_root):
    with pytest.raises(ConfigError, match="unknown split"):
        SEN12MSCR(synth_root, split="holdout")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="larger than"):
        SEN12MSCR(synth_root, split="train", crop_size=128)[0]


# ------------------------------------------------------------------------------ real data
def test_real_patch_is_in_the_test_split(shared_path, tmp_path):
    root = shared_path("data/sen12mscr")
    ds = SEN12MSCR(root, split="test", index_path=tmp_path / "i.json", crop_size=128, crop="center")
    assert ds.ids == ["ROIs1970_fall_139_p839"]
    s = ds[0]
    assert s["optical"].shape == (13, 128, 128)
    # the GLF-CR detector flags 56 % cloud on this patch (parity/cloudmask case notes)
    assert float(s["cloud_cover"]) == pytest.approx(0.560, abs=0.001)
    with pytest.raises(DatasetError, match="'train' split is empty"):
        SEN12MSCR(root, split="train", index_path=tmp_path / "i.json")
