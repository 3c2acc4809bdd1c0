"""Season domains of the mono-temporal simulator (cloudfree.synth.domains) and their writers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cloudfree.bands import S2_L1C_NAMES
from cloudfree.cli import main
from cloudfree.data.splits import load_sen12mscr_splits
from cloudfree.errors import ConfigError
from cloudfree.io import read_raster
from cloudfree.synth import (
    MANIFEST_NAME,
    SEASON_DOMAINS,
    LandCover,
    generate_scene,
    plan_season_samples,
    plan_sen12mscr_samples,
    resolve_season,
    write_sen12mscr_synthetic,
)
from cloudfree.synth.clouds import choose_cloud_type
from cloudfree.synth.writers import parse_season_patches, season_patch_counts

B = {name: i for i, name in enumerate(S2_L1C_NAMES)}
VEGETATION = (LandCover.FOREST, LandCover.GRASSLAND, LandCover.CROP_DENSE, LandCover.CROP_YOUNG)
ORDER = ("summer", "spring", "fall", "winter")  # vigour / clear sky: most to least


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# no domain = the simulator as it was

# sha256 prefixes of the arrays of generate_scene(32, 32, **kwargs), computed with the code as it
# was *before* season domains were added (numpy 2 / scipy on x86-64 Linux).
_BEFORE = [
    (
        {"seed": 0},
        {
            "landcover": "651170a2d3204da9",
            "clear_dn": "0241d8c2b5e7454b",
            "cloudy_dn": "26e8af30c6a3fbd8",
            "sar_db": "899bb0a5da889539",
            "cloud_thickness": "c27bebcd24b1c9c1",
        },
    ),
    (
        {"seed": 1},
        {
            "landcover": "e79aa84f22ecf065",
            "clear_dn": "109093a744bf9708",
            "cloudy_dn": "131617ae05578114",
            "sar_db": "08b697c51d1d923a",
            "cloud_thickness": "3f0c9d2af09388bb",
        },
    ),
    (
        {"seed": (3, 4), "cloud_cover": 0.6},
        {
            "landcover": "aa6106fe07e36eae",
            "clear_dn": "18f19ab86e01ebf3",
            "cloudy_dn": "8a57a4aa733671e2",
            "sar_db": "3f8af88fe089db95",
            "cloud_thickness": "f14360d1f50c1dc5",
        },
    ),
]
# sha256 prefix of "\n".join(str(p) for p in plan_sen12mscr_samples(30, 2)), from before too.
_PLAN_30_2 = "b41e24c74a5e896a"


@pytest.mark.parametrize(("kwargs", "hashes"), _BEFORE)
def test_no_domain_and_spring_are_bit_identical_to_the_simulator_before_domains(
    kwargs: dict, hashes: dict[str, str]
) -> None:
    for domain in (None, "spring", "ROIs1158_spring"):
        sc = generate_scene(32, 32, domain=domain, **kwargs)
        assert {f: _sha(getattr(sc, f)) for f in hashes} == hashes, domain
        assert sc.params["domain"] == (None if domain is None else "spring")


def test_standard_plan_is_unchanged() -> None:
    text = "\n".join(str(p) for p in plan_sen12mscr_samples(30, 2))
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == _PLAN_30_2


# ---------------------------------------------------------------------------------------------
# the shifts


def test_domain_names_and_the_documented_factors() -> None:
    assert resolve_season("WINTER") is resolve_season("ROIs2017_winter") is SEASON_DOMAINS["winter"]
    for bad in ("autumn", "ROIs1158_winter", "", 3):
        with pytest.raises(ConfigError, match="unknown season domain"):
            resolve_season(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown season domain"):
        generate_scene(16, 16, seed=0, domain="monsoon")
    spring = SEASON_DOMAINS["spring"]
    assert spring.is_reference
    np.testing.assert_array_equal(spring.path_gain(), 1.0)
    np.testing.assert_array_equal(spring.surface_gain(), 1.0)
    assert spring.shadow_scale == 1.0 and spring.cover_from_uniform(0.37) == 0.37
    # the module docstring's table, from 45 deg N at 10:30 (independent arithmetic)
    winter = SEASON_DOMAINS["winter"]
    m_ref, m_w = 1 / np.cos(np.radians(40.0)), 1 / np.cos(np.radians(69.0))
    assert winter.air_mass == pytest.approx(2.790, abs=1e-3)
    assert winter.path_gain()[B["B01"]] == pytest.approx((m_w / m_ref) ** (1 / 3), rel=1e-6)
    assert winter.path_gain()[B["B01"]] == pytest.approx(1.288, abs=1e-3)
    assert winter.path_gain()[B["B09"]] == pytest.approx(1.288 * 1.1, abs=2e-3)
    gain = winter.surface_gain()
    assert gain[LandCover.URBAN, B["B02"]] == pytest.approx(0.789 * 0.92, abs=1e-3)
    assert gain[LandCover.URBAN, B["B08"]] == pytest.approx(0.928 * 0.92, abs=1e-3)
    fall_tint = SEASON_DOMAINS["fall"].surface_gain()
    ratio = fall_tint[LandCover.CROP_DENSE] / fall_tint[LandCover.URBAN]  # the tint alone
    assert ratio[B["B04"]] == pytest.approx(1.15) and ratio[B["B12"]] == pytest.approx(1.10)
    assert SEASON_DOMAINS["winter"].shadow_scale == pytest.approx(1.762, abs=1e-3)
    assert SEASON_DOMAINS["summer"].cover_from_uniform(0.5) == pytest.approx(0.5**1.5)


def _clear_stats(season: str) -> dict[str, float]:
    ndvi, dn, b01_low, vv_soil, vh_crop = [], [], [], [], []
    for seed in range(4):  # pixels of every class used below (bare soil only in seed 3)
        sc = generate_scene(48, 48, seed=(20, seed), cloud_cover=0.0, domain=season)
        c = sc.clear_dn.astype(np.float64)
        veg = np.isin(sc.landcover, VEGETATION)
        ndvi.append(((c[B["B08"]] - c[B["B04"]]) / (c[B["B08"]] + c[B["B04"]]))[veg])
        dn.append(c.ravel())
        b01_low.append(np.percentile(c[B["B01"]], 1))
        vv_soil.append(sc.sar_db[0][sc.landcover == LandCover.BARE_SOIL])
        vh_crop.append(sc.sar_db[1][sc.landcover == LandCover.CROP_DENSE])
    assert min(np.concatenate(v).size for v in (ndvi, vv_soil, vh_crop)) > 500
    return {
        "ndvi": float(np.concatenate(ndvi).mean()),
        "dn": float(np.concatenate(dn).mean()),
        "path": float(np.mean(b01_low)),
        "vv_soil": float(np.concatenate(vv_soil).mean()),
        "vh_crop": float(np.concatenate(vh_crop).mean()),
    }


def test_seasons_keep_the_ground_and_shift_vegetation_brightness_and_sar() -> None:
    ref = generate_scene(48, 48, seed=(20, 0), cloud_cover=0.0)
    for season in ("summer", "fall", "winter"):
        sc = generate_scene(48, 48, seed=(20, 0), cloud_cover=0.0, domain=season)
        np.testing.assert_array_equal(sc.landcover, ref.landcover)  # same ground, no extra draws
        np.testing.assert_array_equal(sc.parcel_id, ref.parcel_id)
        assert not np.array_equal(sc.clear_dn, ref.clear_dn)
    stats = {s: _clear_stats(s) for s in ORDER}
    ndvi = [stats[s]["ndvi"] for s in ORDER]
    assert all(a > b + 0.015 for a, b in zip(ndvi, ndvi[1:])), ndvi  # summer > ... > winter
    assert ndvi[-1] > 0.4  # moderate: winter vegetation is still vegetation
    dn = [stats[s]["dn"] for s in ORDER]
    assert all(a > b for a, b in zip(dn, dn[1:])), dn  # low sun: darker overall
    assert 0.8 < dn[-1] / dn[1] < 0.97
    path = [stats[s]["path"] for s in ORDER]
    assert all(a < b for a, b in zip(path, path[1:])), path  # ... but more path radiance
    vh = [stats[s]["vh_crop"] for s in ORDER]
    assert all(a > b for a, b in zip(vh, vh[1:])), vh  # vigour: volume scattering
    vv = {s: stats[s]["vv_soil"] for s in ORDER}
    assert vv["winter"] > vv["fall"] > vv["spring"] > vv["summer"]  # soil moisture


def test_sar_follows_the_state_shift_in_db() -> None:
    # bare soil: +0.9 dB VV per unit of Q, winter shifts Q by +1.2; the speckle and every other
    # SAR term come from the same draws, so the per-pixel difference is 1.08 dB away from
    # parcel edges (blurred) and from the Q clip (+-3.5, rarely reached).
    soil, fixed = [], []
    for seed in range(4):
        spring = generate_scene(64, 64, seed=(21, seed), cloud_cover=0.0)
        winter = generate_scene(64, 64, seed=(21, seed), cloud_cover=0.0, domain="winter")
        diff = winter.sar_db[0] - spring.sar_db[0]
        soil.append(diff[spring.landcover == LandCover.BARE_SOIL])
        fixed.append(diff[np.isin(spring.landcover, (LandCover.WATER, LandCover.URBAN))])
    d, u = np.concatenate(soil), np.concatenate(fixed)
    assert d.size > 200 and u.size > 200
    assert np.median(d) == pytest.approx(0.9 * 1.2, abs=0.05)
    # water and urban have no state sensitivity: unchanged up to blur leakage from neighbours
    assert np.median(np.abs(u)) < 0.05


def test_season_cover_distribution_type_mix_and_shadow_length() -> None:
    seasons = ("summer", "spring", "winter")  # fall lies between (unit-tested above)
    covers: dict[str, list[float]] = {s: [] for s in seasons}
    types: dict[str, list[str]] = {s: [] for s in seasons}
    for seed in range(60):
        for s in seasons:
            sc = generate_scene(16, 16, seed=(22, seed), domain=s)
            covers[s].append(sc.requested_cover)
            types[s].append(sc.cloud_type)
    c = {s: np.array(v) for s, v in covers.items()}
    # the same seed: the spring draw u mapped to u ** g (monotone), so per scene
    assert (c["summer"] <= c["spring"]).all() and (c["spring"] <= c["winter"]).all()
    np.testing.assert_allclose(c["winter"], c["spring"] ** 0.6)
    assert c["winter"].mean() - c["spring"].mean() > 0.08
    assert c["spring"].mean() - c["summer"].mean() > 0.06
    stratiform = {s: sum(t in ("haze", "overcast") for t in types[s]) for s in seasons}
    assert stratiform["winter"] > stratiform["spring"] > stratiform["summer"], stratiform
    cumulus = {s: types[s].count("cumulus") for s in seasons}
    assert cumulus["summer"] > cumulus["spring"] > cumulus["winter"], cumulus
    # shadows: the displacement distance is scaled by sqrt(tan ratio), same direction
    for seed in range(4):
        kw = {"seed": (23, seed), "cloud_cover": 0.3, "cloud_type": "cumulus"}
        dy, dx = generate_scene(24, 24, **kw).params["shadow_offset_px"]
        wy, wx = generate_scene(24, 24, domain="winter", **kw).params["shadow_offset_px"]
        assert np.hypot(wy, wx) == pytest.approx(1.762 * np.hypot(dy, dx), abs=1.5)
        assert dy * wy >= 0 and dx * wx >= 0


def test_cloud_type_weights_against_hand_computed_probabilities() -> None:
    # cover bin [0.3, 0.75): cumulus .25, mixed .35, haze .2, cirrus .2; winter weights
    # cumulus 0.5, haze 1.8, cirrus 0.8 -> .125, .35, .36, .16 (sum .995)
    rng = np.random.default_rng(5)
    weights = SEASON_DOMAINS["winter"].cloud_type_weights
    draws = [choose_cloud_type(0.5, rng, weights) for _ in range(4000)]
    for name, expected in (("cumulus", 0.125), ("mixed", 0.35), ("haze", 0.36), ("cirrus", 0.16)):
        assert draws.count(name) / len(draws) == pytest.approx(expected / 0.995, abs=0.025), name
    # one uniform draw per call with or without weights: the streams stay aligned
    a, b = np.random.default_rng(6), np.random.default_rng(6)
    choose_cloud_type(0.5, a)
    choose_cloud_type(0.5, b, weights)
    assert a.random() == b.random()
    # full cover is overcast whatever the season
    assert {choose_cloud_type(1.0, rng, weights) for _ in range(20)} == {"overcast"}


def test_explicit_cover_and_type_are_used_as_given() -> None:
    sc = generate_scene(32, 32, seed=3, cloud_cover=0.4, cloud_type="haze", domain="winter")
    assert sc.requested_cover == 0.4 and sc.cloud_type == "haze"
    assert sc.cloud_cover == pytest.approx(0.4, abs=0.02)


# ---------------------------------------------------------------------------------------------
# planning per season


def test_plan_season_samples_counts_pools_and_determinism() -> None:
    request = {"spring": 10, "summer": (0, 0, 4), "ROIs1970_fall": (0, 0, 3), "winter": (1, 0, 2)}
    plans = plan_season_samples(request, seed=1)
    pools = load_sen12mscr_splits()
    got: dict[tuple[str, str], int] = {}
    for p in plans:
        got[(p.season, p.split)] = got.get((p.season, p.split), 0) + 1
        assert p.roi in pools[p.split] and p.roi.startswith(p.season + "/")
    assert got == {
        ("ROIs1158_spring", "train"): 6,  # 10 -> 70 / 15 / 15 %, at least one each
        ("ROIs1158_spring", "val"): 2,
        ("ROIs1158_spring", "test"): 2,
        ("ROIs1868_summer", "test"): 4,
        ("ROIs1970_fall", "test"): 3,
        ("ROIs2017_winter", "train"): 1,
        ("ROIs2017_winter", "test"): 2,
    }
    assert [p.index for p in plans] == list(range(len(plans)))
    assert len({p.id for p in plans}) == len(plans)
    assert plans == plan_season_samples(request, seed=1)
    assert plans != plan_season_samples(request, seed=2)
    summer = sorted(p.cloud_cover for p in plans if p.season == "ROIs1868_summer")
    assert [int(4 * c) for c in summer] == [0, 1, 2, 3]  # stratified per group


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, "non-empty mapping"),
        ({"spring": 2}, "at least 3"),
        ({"spring": (1, 2)}, "three integers"),
        ({"spring": (1, -1, 0)}, "at least 0"),
        ({"spring": (0, 0, 0)}, "no patch at all"),
        ({"spring": 3, "ROIs1158_spring": 3}, "twice"),
        ({"mars": 3}, "unknown season domain"),
    ],
)
def test_season_patch_counts_rejects_bad_requests(request_: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        season_patch_counts(request_)


def test_parse_season_patches() -> None:
    assert parse_season_patches("spring=10, winter=0:0:2") == {
        "ROIs1158_spring": (6, 2, 2),
        "ROIs2017_winter": (0, 0, 2),
    }
    for bad in ("spring", "spring=1:2", "spring=x", "spring=-3", "spring=3,spring=0:0:1"):
        with pytest.raises(ConfigError):
            parse_season_patches(bad)


def test_plan_refuses_a_season_missing_from_a_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudfree.synth.writers as writers

    pools = load_sen12mscr_splits()
    no_winter_test = {**pools, "test": tuple(r for r in pools["test"] if "winter" not in r)}
    monkeypatch.setattr(writers, "load_sen12mscr_splits", lambda: no_winter_test)
    with pytest.raises(ConfigError, match="no ROIs2017_winter ROI"):
        plan_season_samples({"winter": (0, 0, 1)}, seed=0)


def test_plan_season_samples_with_other_roi_lists(tmp_path: Path) -> None:
    std = load_sen12mscr_splits()
    spring_train = [r for r in std["train"] if r.startswith("ROIs1158_spring/")]
    winter_any = [r for split in std.values() for r in split if r.startswith("ROIs2017_winter/")]
    lists = {
        "train": spring_train,
        "val": ["ROIs1158_spring/s1_106"],  # a standard test ROI, here val
        "test": ["ROIs1158_spring/s1_31", *winter_any],  # winter ROIs of every standard split
    }
    request = {"spring": (3, 1, 1), "winter": (0, 0, 9)}
    plans = plan_season_samples(request, seed=3, splits=lists)
    for p in plans:
        assert p.roi in lists[p.split]
    assert {p.roi for p in plans if p.split == "val"} == {"ROIs1158_spring/s1_106"}
    assert len({p.roi for p in plans if p.season == "ROIs2017_winter"}) == 3  # 9 / 3 per ROI
    records = write_sen12mscr_synthetic(
        tmp_path / "ds", size=16, seed=3, season_patches=request, splits=lists
    )
    assert [r["roi"] for r in records] == [p.roi for p in plans]
    manifest = json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text())
    assert manifest["splits"]["val"] == ["ROIs1158_spring/s1_106"]
    bad = [
        ({"train": ["ROIs1158_spring/s1_1"], "test": ["ROIs1158_spring/s1_1"]}, "both"),
        ({"train": ["spring/1"]}, "malformed SEN12MS-CR ROI id"),
        ({"holdout": []}, "must map some of"),
        ({"test": "ROIs1158_spring/s1_31"}, "list of ROI ids"),
        ({**lists, "test": lists["test"][:1]}, "given test split has no ROIs2017_winter ROI"),
    ]
    for splits, message in bad:
        with pytest.raises(ConfigError, match=message):
            plan_season_samples(request, seed=3, splits=splits)
    with pytest.raises(ConfigError, match="give season_patches too"):
        write_sen12mscr_synthetic(tmp_path / "x", size=16, splits=lists)


# ---------------------------------------------------------------------------------------------
# writer and CLI


def test_writer_season_domains_renders_each_plan_season(tmp_path: Path) -> None:
    request = {"spring": (2, 1, 1), "summer": (0, 0, 1), "winter": (0, 0, 1)}
    plain = write_sen12mscr_synthetic(tmp_path / "a", size=16, seed=4, season_patches=request)
    shifted = write_sen12mscr_synthetic(
        tmp_path / "b", size=16, seed=4, season_patches=request, season_domains=True
    )
    assert [r["id"] for r in plain] == [r["id"] for r in shifted]  # same plan
    assert {r["season"] for r in shifted} == {
        "ROIs1158_spring",
        "ROIs1868_summer",
        "ROIs2017_winter",
    }
    for a, b in zip(plain, shifted):
        short = b["season"].split("_")[1]
        assert a["domain"] is None and b["domain"] == short
        u = a["requested_cover"]
        assert b["requested_cover"] == pytest.approx(SEASON_DOMAINS[short].cover_from_uniform(u))
        ra = read_raster(a["paths"]["official"]["s2"])
        rb = read_raster(b["paths"]["official"]["s2"])
        assert rb.tags["DOMAIN"] == short and "DOMAIN" not in ra.tags
        sb = read_raster(b["paths"]["official"]["s1"]).array
        sa = read_raster(a["paths"]["official"]["s1"]).array
        if short == "spring":  # spring is the reference: the same pixels as without domains
            np.testing.assert_array_equal(ra.array, rb.array)
            np.testing.assert_array_equal(sa, sb)
        else:
            assert not np.array_equal(ra.array, rb.array)
        # the file holds generate_scene with that domain
        sc = generate_scene(
            16, 16, seed=(4, b["index"]), cloud_cover=b["requested_cover"], domain=short
        )
        np.testing.assert_array_equal(
            read_raster(b["paths"]["official"]["s2_cloudy"]).array, sc.cloudy_dn
        )
    manifest = json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())
    assert manifest["season_domains"] is True and manifest["patches"] == 6
    assert manifest["season_patches"] == {
        "ROIs1158_spring": [2, 1, 1],
        "ROIs1868_summer": [0, 0, 1],
        "ROIs2017_winter": [0, 0, 1],
    }
    assert [m["domain"] for m in manifest["samples"]] == [r["domain"] for r in shifted]
    default = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert default["season_domains"] is False and default["splits"] is None


def test_writer_season_arguments_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        write_sen12mscr_synthetic(tmp_path / "x", patches=5, season_patches={"spring": 3})
    with pytest.raises(ConfigError, match="season_domains"):
        write_sen12mscr_synthetic(tmp_path / "x", size=16, season_domains="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 3"):
        write_sen12mscr_synthetic(tmp_path / "x", size=16, season_patches={"winter": 1})
    assert not (tmp_path / "x").exists()  # checked before anything is written


def test_cli_season_domains_and_season_patches(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "synth", str(out), "--size", "16", "--seed", "1", "--season-domains"]
    res = CliRunner().invoke(main, [*args, "--season-patches", "spring=3,fall=0:0:1"])
    assert res.exit_code == 0, res.output
    assert "ROIs1158_spring: train 1, val 1, test 1 (season domain)" in res.output
    assert "ROIs1970_fall: test 1 (season domain)" in res.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["season_domains"] is True and manifest["patches"] == 4
    assert [s["domain"] for s in manifest["samples"]] == ["spring"] * 3 + ["fall"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temporal", "--season-domains"], "not to --temporal"),
        (["--patches", "5", "--season-patches", "spring=3"], "not both"),
        (["--season-patches", "spring=3:1"], "bad season patches item"),
        (["--season-patches", "autumn=3"], "unknown season domain"),
    ],
)
def test_cli_rejects_bad_season_options(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["data", "synth", str(tmp_path / "o"), "-s", "16", *args])
    assert res.exit_code == 1, res.output
    assert "Error:" in res.output and message in res.output
    assert not (tmp_path / "o").exists()
