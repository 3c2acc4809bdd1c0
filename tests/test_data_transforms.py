"""Raw samples, the normalisation transform, crops / resizes, masks-off mode and the dataset
registry, on generated SEN12MS-CR triplets that have NaN and nodata pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.bands import get_band_set
from cloudfree.data import (
    SEN12MSCR,
    NormalizeSample,
    build_dataset,
    find_triplets,
    get_dataset,
    list_datasets,
    normalize_sample,
    register_dataset,
)
from cloudfree.data import registry as data_registry
from cloudfree.data.transforms import center_crop_sample, crop_sample, resize_sample
from cloudfree.errors import ConfigError
from cloudfree.io import read_raster, write_raster
from cloudfree.normalization import PROTOCOLS, normalize_optical, normalize_sar
from cloudfree.synth import write_sen12mscr_synthetic

PROTOCOL_NAMES = sorted(PROTOCOLS)
SAR_NODATA = -9999.0


@pytest.fixture(scope="module")
def damaged_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 48 px triplets with missing values: NaN in the SAR, and a -9999 nodata stripe in
    every other SAR file (those with the nodata tag), 0 = nodata blocks in the cloudy S2
    (tagged), NaN in one band of the float-written clear S2."""
    root = tmp_path_factory.mktemp("damaged")
    write_sen12mscr_synthetic(root, patches=6, size=48, seed=5)
    for k, t in enumerate(find_triplets(root)):
        r1 = read_raster(t.s1)
        sar = r1.array.copy()
        sar[0, 3:9, 5:20] = np.nan
        nodata = SAR_NODATA if k % 2 else None
        if nodata is not None:  # an undeclared -9999 fill is refused (cloudfree.io.checks)
            sar[1, 40:44, :] = SAR_NODATA
        write_raster(t.s1, sar, crs=r1.crs, transform=r1.transform, nodata=nodata)
        r2 = read_raster(t.s2_cloudy)
        cloudy = r2.array.copy()
        cloudy[2, 10:30, 10:12] = 0
        cloudy[:, 36:, 40:] = 0
        write_raster(t.s2_cloudy, cloudy, crs=r2.crs, transform=r2.transform, nodata=0)
        r3 = read_raster(t.s2)
        clear = r3.array.astype(np.float32)
        clear[5, 0:5, :] = np.nan
        write_raster(t.s2, clear, crs=r3.crs, transform=r3.transform)
    return root


def _reference(
    ds: SEN12MSCR, index: int, protocol: str, bands: Any, pb04: bool
) -> dict[str, torch.Tensor]:
    """The normalised images of the pre-transform code path: the normalisers called on the
    file arrays (band subset first) with each file's nodata value."""
    t = ds.triplets[index]
    s1, s2, s2c = (read_raster(p) for p in (t.s1, t.s2, t.s2_cloudy))
    sel = list(get_band_set(bands).indices)
    opt = normalize_optical(s2c.array[sel], protocol, pb04_offset=pb04, nodata=s2c.nodata)
    tgt = normalize_optical(s2.array[sel], protocol, pb04_offset=pb04, nodata=s2.nodata)
    sar = normalize_sar(s1.array, protocol, nodata=s1.nodata)
    valid = opt.valid & tgt.valid & sar.valid
    return {
        "optical": torch.from_numpy(opt.array),
        "target": torch.from_numpy(tgt.array),
        "sar": torch.from_numpy(sar.array),
        "valid_mask": torch.from_numpy(valid[None]),
    }


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Same keys in the same order, and every tensor bit-identical (dtype, shape, values)."""
    assert list(a) == list(b)
    for key, x in a.items():
        y = b[key]
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape, key
            assert torch.equal(x, y), key
        else:
            assert x == y, key


# --------------------------------------------------------------------------- raw samples
def test_raw_sample_is_the_files_dn_and_db(damaged_root: Path) -> None:
    ds = SEN12MSCR(damaged_root, split="all")
    assert ds.protocol is None
    for i in range(2):  # one SAR file with the nodata tag, one without
        s = ds[i]
        t = ds.triplets[i]
        assert list(s) == [
            "optical",
            "sar",
            "target",
            "cloud_mask",
            "shadow_mask",
            "valid_mask",
            "cloud_cover",
            "id",
        ]
        assert "dates" not in s  # SEN12MS-CR has no acquisition dates
        cloudy = read_raster(t.s2_cloudy).array.astype(np.float32)
        expected = np.where(cloudy == 0, np.nan, cloudy)
        np.testing.assert_array_equal(s["optical"].numpy(), expected)
        np.testing.assert_array_equal(
            s["target"].numpy(), read_raster(t.s2).array.astype(np.float32)
        )
        sar = read_raster(t.s1)
        want = sar.array.copy()
        if sar.nodata is not None:
            want[want == sar.nodata] = np.nan
        np.testing.assert_array_equal(s["sar"].numpy(), want)
        assert s["optical"].dtype == s["sar"].dtype == s["target"].dtype == torch.float32
        missing = np.isnan(expected).any(0) | np.isnan(s["target"].numpy()).any(0)
        missing |= np.isnan(want).any(0)
        np.testing.assert_array_equal(s["valid_mask"].numpy()[0], ~missing)
        assert 0 < int((~s["valid_mask"]).sum()) < 48 * 48


def test_raw_band_subset(damaged_root: Path) -> None:
    full = SEN12MSCR(damaged_root, split="all")[0]
    rgb = SEN12MSCR(damaged_root, split="all", bands="rgb")[0]
    torch.testing.assert_close(rgb["optical"], full["optical"][[3, 2, 1]], equal_nan=True)


# --------------------------------------------------------------------------- the transform
@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
@pytest.mark.parametrize("bands", [None, "rgb", "B08,B02"])
def test_transform_equals_the_protocol_path(damaged_root: Path, protocol: str, bands: Any) -> None:
    raw = SEN12MSCR(damaged_root, split="all")
    with_protocol = SEN12MSCR(damaged_root, split="all", protocol=protocol, bands=bands)
    transform = NormalizeSample(protocol, bands)
    for i in range(len(raw)):
        got = transform(raw[i])
        _assert_same(got, with_protocol[i])
        _assert_same(got, normalize_sample(raw[i], protocol, bands))
        ref = _reference(raw, i, protocol, bands, pb04=False)
        for key, value in ref.items():
            assert torch.equal(got[key], value), (key, i)
        assert not any(torch.isnan(got[k]).any() for k in ("optical", "target", "sar"))
        assert not bool(got["valid_mask"].all())


@pytest.mark.parametrize("protocol", ["glf_cr", "uncrtaints"])
def test_transform_with_pb04_offset(damaged_root: Path, protocol: str) -> None:
    raw = SEN12MSCR(damaged_root, split="all", pb04_offset=True)
    with_protocol = SEN12MSCR(damaged_root, split="all", protocol=protocol, pb04_offset=True)
    got = normalize_sample(raw[1], protocol, pb04_offset=True)
    _assert_same(got, with_protocol[1])
    ref = _reference(raw, 1, protocol, None, pb04=True)
    assert torch.equal(got["optical"], ref["optical"])
    assert not torch.equal(got["optical"], normalize_sample(raw[1], protocol)["optical"])


def test_transform_leaves_its_input_alone(damaged_root: Path) -> None:
    raw = SEN12MSCR(damaged_root, split="all")[0]
    before = {k: v.clone() for k, v in raw.items() if isinstance(v, torch.Tensor)}
    out = normalize_sample(raw, "dsen2cr", "rgb")
    assert out["optical"].shape == (3, 48, 48)
    for key, value in before.items():
        torch.testing.assert_close(raw[key], value, equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
def test_crops_and_resizes_normalise_the_whole_patch_first(
    damaged_root: Path, protocol: str
) -> None:
    raw = SEN12MSCR(damaged_root, split="all")
    centre = SEN12MSCR(damaged_root, split="all", protocol=protocol, crop_size=24, crop="center")
    resized = SEN12MSCR(damaged_root, split="all", protocol=protocol, resize=32)
    both = SEN12MSCR(
        damaged_root, split="all", protocol=protocol, crop_size=40, crop="center", resize=20
    )
    seeded = SEN12MSCR(damaged_root, split="all", protocol=protocol, crop_size=16, seed=3)
    for i in range(len(raw)):
        whole = normalize_sample(raw[i], protocol)
        _assert_same(centre[i], center_crop_sample(whole, 24))
        _assert_same(resized[i], resize_sample(whole, 32))
        _assert_same(both[i], resize_sample(center_crop_sample(whole, 40), 20))
        top, left, h, w = seeded._crop_window(i, 48, 48)
        _assert_same(seeded[i], crop_sample(whole, top, left, h, w))
    assert centre[0]["cloud_mask"].shape == (1, 24, 24)
    assert resized[0]["valid_mask"].dtype == torch.bool
    assert resized[0]["cloud_mask"].shape == (1, 32, 32)


def test_cropping_raw_first_changes_only_the_nanmean_fill(damaged_root: Path) -> None:
    """Why the order matters: glf_cr fills NaN with the patch mean, so a crop normalised on
    its own gets another fill at invalid pixels (valid pixels are the same)."""
    s = SEN12MSCR(damaged_root, split="all")[0]
    right = center_crop_sample(normalize_sample(s, "glf_cr"), 40)
    early = normalize_sample(center_crop_sample(s, 40), "glf_cr")
    valid = right["valid_mask"].expand_as(right["optical"])
    assert torch.equal(right["valid_mask"], early["valid_mask"])
    assert torch.equal(right["optical"][valid], early["optical"][valid])
    assert not torch.equal(right["optical"][~valid], early["optical"][~valid])


def test_transform_errors(damaged_root: Path) -> None:
    rgb = SEN12MSCR(damaged_root, split="all", bands="rgb")[0]
    with pytest.raises(ConfigError, match="has 3 bands; a band selection .* pass bands=None"):
        normalize_sample(rgb, "glf_cr", "rgb")
    with pytest.raises(ConfigError, match="unknown normalisation protocol 'glfcr'"):
        NormalizeSample("glfcr")
    with pytest.raises(ConfigError, match="needs an 'optical' entry"):
        normalize_sample({"sar": rgb["sar"]}, "glf_cr")
    with pytest.raises(ConfigError, match="crop_size 64 is larger than the 48x48 patch"):
        center_crop_sample(rgb, 64)
    assert repr(NormalizeSample("dsen2cr", "rgb")) == (
        "NormalizeSample(protocol='dsen2cr', bands='B04,B03,B02', pb04_offset=False)"
    )


# --------------------------------------------------------------------------- masks off
def test_masks_off_skips_the_detector(damaged_root: Path, tmp_path: Path, monkeypatch) -> None:
    index = tmp_path / "cover.json"
    ds = SEN12MSCR(damaged_root, split="all", protocol="glf_cr", masks=False, index_path=index)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cloud detector ran although masks=False")

    monkeypatch.setattr(ds, "_mask", fail)
    s = ds[0]
    assert list(s) == ["optical", "sar", "target", "valid_mask", "id"]
    full = SEN12MSCR(damaged_root, split="all", protocol="glf_cr", index_path=index)[0]
    for key in s:
        assert torch.equal(s[key], full[key]) if key != "id" else s[key] == full[key]
    assert not index.exists()  # the cover index is opened lazily and only saved on request
    monkeypatch.undo()
    assert ds.cloud_cover(0) == pytest.approx(float(full["cloud_cover"]))  # still on demand
    assert index.is_file()


# --------------------------------------------------------------------------- registry
def test_sen12mscr_is_registered(damaged_root: Path) -> None:
    assert "sen12mscr" in list_datasets()
    info = get_dataset("sen12mscr")
    assert info.dataset_class is SEN12MSCR and not info.temporal and info.description
    assert {"split", "protocol", "bands", "crop_size", "masks", "layout"} <= set(info.options())
    ds = build_dataset("sen12mscr", damaged_root, split="test", protocol="glf_cr")
    assert isinstance(ds, SEN12MSCR) and ds.protocol == "glf_cr" and len(ds) > 0


def test_registry_errors(damaged_root: Path, monkeypatch) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown dataset 'sen12mcr' \(did you mean 'sen12mscr'\?\); registered datasets: ",
    ):
        get_dataset("sen12mcr")
    with pytest.raises(ConfigError, match="dataset 'sen12mscr' takes no option 'frames'; its"):
        build_dataset("sen12mscr", damaged_root, frames=3)
    with pytest.raises(ConfigError, match="must be lower-case letters"):
        register_dataset("Bad-Name", description="x")
    monkeypatch.setattr(data_registry, "_DATASETS", dict(data_registry._DATASETS))

    @register_dataset("toy_ts", description="a toy temporal dataset", temporal=True)
    class ToyTS(torch.utils.data.Dataset):
        def __init__(self, root: Any, split: str = "train", protocol: str | None = None):
            self.root = root

    assert "toy_ts" in list_datasets() and get_dataset("toy_ts").temporal
    assert build_dataset("toy_ts", "/r", split="val").root == "/r"
    with pytest.raises(ConfigError, match="'sen12mscr' is already registered to SEN12MSCR"):
        register_dataset("sen12mscr", description="another")(ToyTS)


# --------------------------------------------------------------------------- training data
def _train_config(root: Path, recipe: str, **overrides: Any) -> Any:
    from cloudfree.train import build_config, load_recipe

    base = {
        "model.kwargs": {"width": 8, "num_blocks": 1},
        "data.patch_size": 16,
        "data.val_patch_size": 24,
        "data.num_workers": 0,
        "trainer.max_steps": 1,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(load_recipe(recipe), base, data_root=root)


@pytest.mark.parametrize("recipe", ["dsen2cr", "carf"])
def test_data_module_samples_equal_the_protocol_path(damaged_root: Path, recipe: str) -> None:
    """The data module reads raw samples and normalises them itself: its batches are those of
    the dataset's own protocol path (whole patch normalised, then the seeded crop and flips)."""
    from cloudfree.train.augment import SampleAugment
    from cloudfree.train.config import resolve_config
    from cloudfree.train.datamodule import TrainSampleDataset, build_datasets

    cfg = resolve_config(_train_config(damaged_root, recipe, data__limit_val=1))
    d = cfg.data
    train, val = build_datasets(cfg)
    options = {"protocol": d.protocol, "cloud_mask_method": d.cloud_mask_method}
    before = TrainSampleDataset(
        SEN12MSCR(damaged_root, split="train", **options),
        SampleAugment(16, d.augment.hflip, d.augment.vflip, d.augment.rot90),
        cfg.seed,
    )
    assert len(train) == len(before) > 0
    for i in range(len(train)):
        for epoch in (0, 3):
            _assert_same(train[(i, epoch)], before[(i, epoch)])
    centre = SEN12MSCR(damaged_root, split="val", crop_size=24, crop="center", **options)
    assert len(val) == 1
    _assert_same(val[0], centre[0])


def test_masks_off_is_refused_for_a_loss_that_reads_them(damaged_root: Path, tmp_path) -> None:
    from cloudfree.train import prepare_run

    carl = _train_config(damaged_root, "dsen2cr", data__masks=False)
    with pytest.raises(ConfigError, match="data.masks is false .* loss 'carl' reads them"):
        prepare_run(carl, run_dir=tmp_path / "carl")
    l1 = _train_config(damaged_root, "dsen2cr", data__masks=False, loss__name="l1", loss__kwargs={})
    prepared = prepare_run(l1, run_dir=tmp_path / "l1")
    assert "cloud_mask" not in prepared.train_dataset[0]
    assert "cloud_mask" not in prepared.val_dataset[0]


def test_masks_are_computed_only_when_the_loss_reads_them(damaged_root: Path, tmp_path) -> None:
    """data.masks null (the default): CARL reads the masks, so they are computed; L1 does not,
    so the cloud detector never runs for it."""
    from cloudfree.train import prepare_run

    carl = prepare_run(_train_config(damaged_root, "dsen2cr"), run_dir=tmp_path / "carl")
    assert {"cloud_mask", "shadow_mask"} <= set(carl.train_dataset[0])
    cfg = _train_config(damaged_root, "dsen2cr", loss__name="l1", loss__kwargs={})
    assert cfg.data.masks is None
    l1 = prepare_run(cfg, run_dir=tmp_path / "l1")
    assert "cloud_mask" not in l1.train_dataset[0] and "cloud_mask" not in l1.val_dataset[0]
    forced = _train_config(
        damaged_root, "dsen2cr", data__masks=True, loss__name="l1", loss__kwargs={}
    )
    assert "cloud_mask" in prepare_run(forced, run_dir=tmp_path / "forced").train_dataset[0]
