"""Paper 000's data and evaluation protocol: the MMCANet / MPIR recipes and spring split, seeded
season samples in `cloudfree evaluate`, metric band subsets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import Subset, default_collate

from cloudfree.cli import main
from cloudfree.data import SEN12MSCR
from cloudfree.data.splits import (
    load_mmcanet_splits,
    load_sen12mscr_splits,
    mmcanet_out_of_domain_sizes,
    mmcanet_split_version,
    parse_roi_id,
)
from cloudfree.errors import ConfigError
from cloudfree.evaluate import IDENTITY_NAME, REGIONS, evaluate_checkpoints, evaluate_models
from cloudfree.metrics import METRIC_NAMES, image_metrics
from cloudfree.models import ModelBatch, create_model, run_model, save_pretrained
from cloudfree.normalization import to_reflectance
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.synth.writers import official_paths
from cloudfree.train.config import build_config, load_recipe, resolve_config

RECIPES = ("mmcanet", "mmcanet_l", "mpir1", "mpir2", "mpir3", "mpir4")
SPRING = "ROIs1158_spring"
RGB_POSITIONS = [3, 2, 1]  # B04, B03, B02 in the 13 L1C bands


# ----------------------------------------------------------------------------- helpers
def _relocate(root: Path, places: list[tuple[str, int, int]]) -> None:
    """Move the synthetic triplets under ``root`` (dataset order) to ``(season, scene,
    patch)``: the reader pairs files by name alone, so this puts them in any ROI."""
    triplets = SEN12MSCR(root, split="all", masks=False).triplets
    assert len(triplets) == len(places)
    for t, (season, scene, patch) in zip(triplets, places):
        new = official_paths(root, season, scene, patch)
        for old, key in ((t.s1, "s1"), (t.s2, "s2"), (t.s2_cloudy, "s2_cloudy")):
            new[key].parent.mkdir(parents=True, exist_ok=True)
            old.rename(new[key])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _dsen2cr(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("dsen2cr", width=8, num_blocks=1).eval()


def _rgb_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    small = dict(widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), nset=4, aspp_width=8)
    return create_model("mmcanet", **small, decoder_depth=1).eval()


# Seasons of the evaluation dataset: 3 spring, 5 summer, 2 fall, 2 winter images.
SEASON_PLACES = [
    (SPRING, 1, 10),
    (SPRING, 1, 11),
    (SPRING, 17, 12),
    *[("ROIs1868_summer", 119, p) for p in (1, 2, 3)],
    *[("ROIs1868_summer", 73, p) for p in (4, 5)],
    ("ROIs1970_fall", 139, 6),
    ("ROIs1970_fall", 65, 7),
    ("ROIs2017_winter", 108, 8),
    ("ROIs2017_winter", 63, 9),
]


@pytest.fixture(scope="module")
def season_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seasons")
    write_sen12mscr_synthetic(root, patches=len(SEASON_PLACES), size=32, seed=3)
    _relocate(root, SEASON_PLACES)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_pretrained(_dsen2cr(0), tmp_path_factory.mktemp("w") / "dsen2cr")


# ----------------------------------------------------------------------------- the split
def test_mmcanet_split_is_spring_37_2_2_from_the_standard_rois():
    splits = load_mmcanet_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 37, "val": 2, "test": 2}
    rois = [r for v in splits.values() for r in v]
    assert len(set(rois)) == len(rois)  # disjoint
    assert all(parse_roi_id(r)[0] == SPRING for r in rois)
    standard = load_sen12mscr_splits()
    spring = {s: {r for r in v if r.startswith(SPRING)} for s, v in standard.items()}
    assert set(rois) == set().union(*spring.values())  # all 41 spring ROIs of the lists
    assert set(splits["test"]) == {f"{SPRING}/s1_31", f"{SPRING}/s1_44"}
    assert set(splits["val"]) == {f"{SPRING}/s1_17", f"{SPRING}/s1_106"}
    # test and val are never in the standard train split
    assert not (set(splits["test"]) | set(splits["val"])) & set(standard["train"])
    assert mmcanet_split_version() == "mmcanet_spring v1"
    sizes = mmcanet_out_of_domain_sizes()
    assert sizes == {"ROIs1868_summer": 951, "ROIs1970_fall": 1514, "ROIs2017_winter": 954}


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", RECIPES)
def test_paper_000_recipes(name: str):
    c = build_config(load_recipe(name), data_root="/d")
    assert c.model.name == name and c.model.kwargs == {}
    d = c.data
    assert d.dataset == "sen12mscr" and d.seasons == ["spring"]
    assert (d.patch_size, d.val_patch_size, d.batch_size) == (None, None, 32)
    assert not (d.augment.hflip or d.augment.vflip or d.augment.rot90)
    assert (d.train_split, d.val_split) == ("train", "val")
    assert d.options["resize"] == 128 and d.options["split_source"] == "standard"
    expected = {k: list(v) for k, v in load_mmcanet_splits().items()}
    assert d.options["splits"] == expected  # the recipe mirrors the shipped resource
    assert (c.loss.name, c.loss.kwargs) == ("l1_ssim", {"l1_weight": 1.0, "ssim_weight": 1.0})
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.weight_decay) == ("adam", 1e-4, 0.0)
    s = c.scheduler
    assert (s.name, s.step_size, s.gamma, s.interval) == ("step", 25, 0.1, "epoch")
    assert c.trainer.max_epochs == 50 and c.trainer.max_steps is None
    assert c.metrics.protocol == "uncrtaints"
    assert c.task.stage_weights is None  # multi-stage models: every output weighted 1
    resolved = resolve_config(c).data
    assert (resolved.protocol, resolved.bands) == ("glf_cr", "rgb")
    # the paper cites NAdam: a valid override
    assert build_config(load_recipe(name), {"optimizer.name": "nadam"}).optimizer.name == "nadam"


def test_mmcanet_recipe_reads_spring_rgb_at_128(tmp_path):
    """The recipe's datasets on synthetic data placed in its ROIs: train / val hold only their
    spring ROIs (not summer, not a spring ROI outside the lists), RGB resized to 128."""
    from cloudfree.train.datamodule import build_datasets

    places = [
        (SPRING, 1, 1),  # train
        (SPRING, 147, 2),  # train
        (SPRING, 17, 3),  # val
        (SPRING, 31, 4),  # test
        (SPRING, 2, 5),  # a spring ROI in no list
        ("ROIs1868_summer", 1, 6),  # another season
    ]
    write_sen12mscr_synthetic(tmp_path, patches=len(places), size=32, seed=1)
    _relocate(tmp_path, places)
    cfg = build_config(load_recipe("mmcanet"), data_root=tmp_path)
    train, val = build_datasets(cfg)
    assert len(train) == 2 and len(val) == 1
    ids = {train[i]["id"] for i in range(len(train))}
    assert ids == {f"{SPRING}_1_p1", f"{SPRING}_147_p2"}
    sample = val[0]
    assert sample["id"] == f"{SPRING}_17_p3"
    assert tuple(sample["optical"].shape) == (3, 128, 128)
    assert tuple(sample["target"].shape) == (3, 128, 128)
    assert tuple(sample["sar"].shape) == (2, 128, 128)
    assert tuple(train[0]["optical"].shape) == (3, 128, 128)


# ----------------------------------------------------------------------------- season samples
def _season_ids(root: Path, season: str) -> list[str]:
    return SEN12MSCR(root, split="all", seasons=[season], masks=False).ids


def test_season_sample_is_seeded_and_of_the_season(season_root, weights):
    summer = _season_ids(season_root, "summer")
    assert len(summer) == 5

    def run(seed: int | None) -> tuple[list[str], dict]:
        res = evaluate_checkpoints(
            [weights], season_root, out_dir=None, progress=False, season="summer", sample=3,
            seed=seed,
        )  # fmt: skip
        return [r["id"] for r in res.rows], res.summary

    ids, s = run(1)
    assert len(ids) == 3 and len(set(ids)) == 3 and set(ids) <= set(summer)
    assert ids == [i for i in summer if i in ids]  # evaluated in dataset order
    drawn = sorted(np.random.default_rng(1).choice(5, size=3, replace=False))
    assert ids == [summer[i] for i in drawn]  # the documented draw
    assert s["season"] == "ROIs1868_summer" and s["split"] == "all" and s["n_images"] == 3
    assert {k: s["sample"][k] for k in ("n", "seed", "population")} == {
        "n": 3,
        "seed": 1,
        "population": 5,
    }
    assert "default_rng(seed)" in s["sample"]["method"]
    assert run(1)[0] == ids  # deterministic
    default_ids, default = run(None)
    assert default["sample"]["seed"] == 0
    assert default_ids == [summer[i] for i in (2, 3, 4)] != ids  # the seed matters


def test_season_without_sample_is_the_whole_season(season_root, weights):
    res = evaluate_checkpoints(
        [weights], season_root, out_dir=None, progress=False, season="ROIs2017_winter"
    )
    assert [r["id"] for r in res.rows] == _season_ids(season_root, "winter")
    assert res.summary["sample"] is None and res.summary["season"] == "ROIs2017_winter"
    # a split can still be chosen: the standard test ROIs of winter (108 and 63)
    test = evaluate_checkpoints(
        [weights], season_root, out_dir=None, progress=False, season="winter", split="test"
    )
    assert test.summary["split"] == "test" and test.summary["n_images"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"season": "fall", "sample": 3}, r"sample=3 asks for more images than the 'all' split "
         r"of ROIs1970_fall holds \(2\)"),
        ({"season": "autumn", "sample": 1}, "unknown season 'autumn'"),
        ({"season": "summer", "sample": 0}, "sample must be a positive integer"),
        ({"season": "summer", "sample": 2, "limit": 1}, "not both"),
        ({"season": "summer", "seed": 3}, "give sample=N with it"),
        ({"sample": 2, "seed": -1}, "seed must be an integer >= 0"),
        ({"season": "summer", "dataset_options": {"seasons": ["fall"]}}, "give the season once"),
        ({"season": "summer", "dataset": "sen12mscr_ts"}, "has no seasons option"),
    ],
)  # fmt: skip
def test_season_sample_errors(season_root, weights, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        evaluate_checkpoints([weights], season_root, out_dir=None, progress=False, **kwargs)


def test_cli_season_sample_resize_and_metric_bands(season_root, weights, tmp_path):
    out = tmp_path / "ood"
    args = ["evaluate", "--checkpoint", str(weights), "--data", str(season_root), "--out",
            str(out), "--season", "winter", "--sample", "2", "--seed", "5", "--resize", "16",
            "--metric-bands", "rgb"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "all split of ROIs2017_winter, 2 images (drawn at random from 2, seed 5)" in res.output
    assert "metrics:  on bands B04,B03,B02 only" in res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["season"] == "ROIs2017_winter" and s["sample"]["n"] == 2 and s["sample"]["seed"] == 5
    assert s["metric_bands"] == ["B04", "B03", "B02"] and len(s["bands"]) == 13
    assert s["dataset"]["resize"] == 16 and s["dataset_options"]["seasons"] == ["ROIs2017_winter"]
    bad = CliRunner().invoke(main, [*args[:5], "--season", "summer", "--seed", "1"])
    assert bad.exit_code != 0 and "give sample=N with it" in bad.output


# ----------------------------------------------------------------------------- metric bands
def _direct(model: nn.Module, sample: dict, protocol: str) -> dict[str, dict[str, float]]:
    """The RGB metrics of ``model`` and of the identity on one sample (a dataset normalised
    with ``protocol``), by hand: reflectance, bands B04, B03, B02, image_metrics per region."""
    batch = default_collate([sample])
    with torch.no_grad():
        pred = run_model(model, ModelBatch.from_sample(batch)).pred

    def rgb(x: torch.Tensor) -> torch.Tensor:
        return to_reflectance(x.float(), protocol)[:, RGB_POSITIONS]

    valid = batch["valid_mask"].bool()
    cloud, shadow = batch["cloud_mask"] > 0.5, batch["shadow_mask"] > 0.5
    regions = {
        "overall": valid,
        "inside_clouds": cloud & valid,
        "outside_clouds": ~cloud & ~shadow & valid,
    }
    y = rgb(batch["target"])
    out = {}
    for name, p in (("model", rgb(pred)), (IDENTITY_NAME, rgb(batch["optical"]))):
        out[name] = {
            r: {k: float(v[0]) for k, v in image_metrics(p, y, "uncrtaints", m).items()}
            for r, m in regions.items()
        }
    return out


def test_metric_bands_score_the_rgb_bands_of_13_band_predictions(season_root):
    data = Subset(SEN12MSCR(season_root, split="all", protocol="dsen2cr", crop="center"), range(6))
    model = _dsen2cr(2)
    full = evaluate_models({"m": model}, data, batch_size=3, progress=False)
    rgb = evaluate_models({"m": model}, data, batch_size=3, progress=False, metric_bands="rgb")
    assert full.summary["metric_bands"] is None
    assert rgb.summary["metric_bands"] == ["B04", "B03", "B02"]
    assert len(rgb.summary["bands"]) == 13  # the model still sees 13 bands
    for i in (0, 5):
        expected = _direct(model, data[i], "dsen2cr")
        row = rgb.rows[i]
        for key, name in (("m", "model"), (IDENTITY_NAME, IDENTITY_NAME)):
            for region in REGIONS:
                for m in METRIC_NAMES:
                    got, want = row[f"{key}_{region}_{m}"], expected[name][region][m]
                    assert got == pytest.approx(want, rel=1e-6, nan_ok=True), (i, key, region, m)
    # three bands score differently from thirteen
    for key in ("m", IDENTITY_NAME):
        for m in ("psnr", "ssim", "sam"):
            a = [r[f"{key}_overall_{m}"] for r in rgb.rows]
            b = [r[f"{key}_overall_{m}"] for r in full.rows]
            assert a != b, (key, m)


def test_metric_bands_leave_an_rgb_model_unchanged(season_root):
    raw = Subset(SEN12MSCR(season_root, split="all", crop="center"), [0, 4, 9])
    model = _rgb_model(0)
    plain = evaluate_models({"m": model}, raw, batch_size=3, progress=False)
    rgb = evaluate_models({"m": model}, raw, batch_size=3, progress=False, metric_bands="rgb")
    assert plain.summary["bands"] == ["B04", "B03", "B02"]
    assert json.dumps(plain.summary["models"]) == json.dumps(rgb.summary["models"])
    for r1, r2 in zip(plain.rows, rgb.rows):
        assert all(_same(r1[k], r2[k]) for k in plain.columns[3:])
    # the band order of the selection does not matter
    bgr = evaluate_models(
        {"m": model}, raw, batch_size=3, progress=False, metric_bands="B02,B03,B04"
    )
    for r1, r2 in zip(plain.rows, bgr.rows):
        for k in plain.columns[3:]:
            assert r1[k] == pytest.approx(r2[k], rel=1e-9, nan_ok=True)


def test_metric_bands_errors(season_root):
    raw = SEN12MSCR(season_root, split="all", crop="center")
    with pytest.raises(ConfigError, match="'m' predicts B04,B03,B02, without B08"):
        evaluate_models({"m": _rgb_model()}, raw, progress=False, metric_bands="B04,B08")
    with pytest.raises(ConfigError, match="unknown band 'B99'"):
        evaluate_models({"m": _dsen2cr()}, raw, progress=False, metric_bands="B99")
