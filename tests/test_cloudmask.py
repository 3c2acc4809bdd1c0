"""Tests of cloudfree.cloudmask: official parity, hand-computed pixels, nodata handling."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from cloudfree.cloudmask import (
    CLOUD_MASK_METHODS,
    CloudMaskInputError,
    carf_cloud_mask,
    carf_cloud_score,
    cloud_cover,
    cloud_score,
    compute_cloud_mask,
    rule_based,
    s2cloudless_mask,
    shadow_mask,
)
from cloudfree.cloudmask.rule_based import _box_count
from cloudfree.errors import CloudfreeError, ConfigError

TAGS = ["sen12mscr_ROIs1970_fall_139_p839_cloudy", "synthetic"]


@pytest.fixture(scope="module")
def parity(shared_path):
    from safetensors.numpy import load_file

    return load_file(str(shared_path("parity/cloudmask/io.safetensors")))


def _scene(h: int = 32, w: int = 32, value: int = 500) -> np.ndarray:
    """A uniform 13-band DN image."""
    return np.full((13, h, w), value, dtype=np.uint16)


def _pixel(**bands: float) -> np.ndarray:
    """A 13 x 1 x 1 DN array from reflectances given by band name (others 0.05)."""
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11"]
    names.append("B12")
    refl = np.full(13, 0.05)
    for name, r in bands.items():
        refl[names.index(name)] = r
    return np.round(refl * 10000).astype(np.uint16).reshape(13, 1, 1)


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("tag", TAGS)
def test_rule_based_matches_official_glf_cr(parity, tag):
    x = parity[f"input.{tag}"]
    mask = rule_based(x)
    assert mask.dtype == np.int8 and mask.shape == (256, 256)
    np.testing.assert_array_equal(mask, parity[f"output.{tag}.mask"])
    np.testing.assert_array_equal(compute_cloud_mask(x), parity[f"output.{tag}.mask"])


@pytest.mark.parametrize("tag", TAGS)
def test_shadow_matches_official(parity, tag):
    s = shadow_mask(parity[f"input.{tag}"])
    assert s.dtype == np.int8
    np.testing.assert_array_equal(s, parity[f"output.{tag}.shadow"])


@pytest.mark.parametrize("tag", TAGS)
def test_uncrtaints_variant_matches_official(parity, tag):
    x = parity[f"input.{tag}"]
    ref = parity[f"output.{tag}.mask_uncrtaints_variant"]
    np.testing.assert_array_equal(rule_based(x, variant="uncrtaints"), ref)
    np.testing.assert_array_equal(compute_cloud_mask(x, "rule_based_uncrtaints"), ref)


def test_parity_cover_values(parity):
    """The fixture's documented statistics: 56.0 % cloud (GLF-CR) vs 2.5 % (UnCRtainTS copy)."""
    x = parity[f"input.{TAGS[0]}"]
    assert cloud_cover(rule_based(x)) == pytest.approx(0.560, abs=5e-4)
    assert cloud_cover(rule_based(x, variant="uncrtaints")) == pytest.approx(0.025, abs=5e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_dtype_independent(parity, dtype):
    x = parity[f"input.{TAGS[1]}"]
    np.testing.assert_array_equal(rule_based(x.astype(dtype)), parity[f"output.{TAGS[1]}.mask"])


def test_all_true_valid_mask_changes_nothing(parity):
    x = parity[f"input.{TAGS[0]}"]
    valid = np.ones(x.shape[1:], dtype=bool)
    np.testing.assert_array_equal(rule_based(x, valid=valid), parity[f"output.{TAGS[0]}.mask"])


def test_cloud_score_consistent_with_mask(parity):
    x = parity[f"input.{TAGS[0]}"]
    score = cloud_score(x)
    assert score.dtype == np.float64 and score.shape == (256, 256)
    assert score.min() >= 1e-5 and score.max() <= 1.0
    ref = parity[f"output.{TAGS[0]}.mask"]
    np.testing.assert_array_equal(score >= 0.2, ref == 1)
    for t in (0.1, 0.5):
        np.testing.assert_array_equal(rule_based(x, threshold=t) == 1, score >= t)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31 - 1),
)
def test_box_count_equals_medfilt2d(h, w, p, seed):
    """The count-based 5x5 median equals scipy.signal.medfilt2d on 0/-1 images."""
    cand = np.random.default_rng(seed).random((h, w)) < p
    img = np.where(cand, -1.0, 0.0).astype(np.float32)
    ref = signal.medfilt2d(img, 5)
    ours = np.where(_box_count(cand, 5) > 12, -1.0, 0.0)
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------- hand-made scenes


def test_bright_uniform_scene_is_all_cloud():
    # Reflectance 0.5 everywhere: every brightness term >= 1, NDSI 0 -> snow term 4: score 1.
    # The 7x7 box mean with zero fill leaves 16/49 = 0.33 in the corners, still >= 0.2.
    x = _scene(value=5000)
    score = cloud_score(x)
    assert score[10, 10] == pytest.approx(1.0)
    assert score[0, 0] == pytest.approx(16 / 49)
    assert (rule_based(x) == 1).all()


def test_snow_is_not_cloud():
    # Bright in the visible (0.8) but B11 = 0.1: NDSI = 0.7/0.9 = 0.78 -> (0.78-0.8)/-0.2 = 0.11.
    x = np.tile(_pixel(B01=0.8, B02=0.8, B03=0.8, B04=0.8, B10=0.1, B11=0.1), (1, 20, 20))
    assert cloud_score(x)[10, 10] == pytest.approx((0.7 / 0.9 - 0.8) / -0.2, abs=1e-5)
    assert (rule_based(x) != 1).all()


def test_variants_differ_on_b01_b10():
    # B01 + B10 = 0.3: glf_cr term (0.3-0.15)/0.05 = 3 (no effect); uncrtaints (0.3-0.4)/0.5 < 0.
    x = np.tile(_pixel(B01=0.25, B02=0.6, B03=0.6, B04=0.6, B10=0.05, B11=0.5), (1, 20, 20))
    assert (rule_based(x, variant="glf_cr")[3:-3, 3:-3] == 1).all()
    assert (rule_based(x, variant="uncrtaints") != 1).all()
    assert cloud_score(x, "uncrtaints").max() == pytest.approx(1e-5)


def test_shadow_on_dark_block():
    # A dark block (B02, B08, B11 low) in a bright-ish scene is shadow; the rest is clear.
    x = _scene(40, 40, 1500)
    x[:, 10:30, 10:30] = 200
    s = shadow_mask(x)
    assert (s[12:28, 12:28] == -1).all()
    assert (s[:8] == 0).all() and (s[:, :8] == 0).all()
    mask = rule_based(x)
    assert (mask[12:28, 12:28] == -1).all()


def test_cloud_wins_over_shadow():
    # Shadow thresholds are relative: make B02 low but keep the cloud score high via a low
    # threshold; cloud pixels must be 1 even where the shadow test fires.
    x = _scene(40, 40, 1500)
    x[:, 10:30, 10:30] = 200
    assert (shadow_mask(x)[12:28, 12:28] == -1).all()
    low = rule_based(x, threshold=1e-6)  # every score >= 1e-5 > threshold: all cloud
    assert (low == 1).all()


# --------------------------------------------------------------------------- nodata


def test_nan_pixels_are_clear_and_do_not_spread(parity):
    x = parity[f"input.{TAGS[0]}"].astype(np.float32)
    h, w = x.shape[1:]
    padded = np.concatenate([x, np.full((13, h, 10), np.nan, np.float32)], axis=2)
    mask = rule_based(padded)
    assert (mask[:, w:] == 0).all()
    ref = parity[f"output.{TAGS[0]}.mask"]
    # Shadow statistics exclude the NaN strip and it acts like the median's zero padding: exact.
    np.testing.assert_array_equal(shadow_mask(padded)[:, :w], parity[f"output.{TAGS[0]}.shadow"])
    # Cloud: identical away from the strip (closing reflects at image borders, not at nodata).
    np.testing.assert_array_equal(mask[:, : w - 8], ref[:, : w - 8])
    assert np.isfinite(cloud_score(padded)).all()


def test_valid_argument_excludes_pixels(parity):
    x = parity[f"input.{TAGS[1]}"].copy()
    h, w = x.shape[1:]
    padded = np.concatenate([x, np.zeros((13, h, 12), np.uint16)], axis=2)
    valid = np.ones(padded.shape[1:], bool)
    valid[:, w:] = False
    np.testing.assert_array_equal(
        shadow_mask(padded, valid=valid)[:, :w], parity[f"output.{TAGS[1]}.shadow"]
    )
    # Without the valid mask the zero strip drags min(CSI) and min(B02) down: shadows change.
    assert not np.array_equal(shadow_mask(padded)[:, :w], parity[f"output.{TAGS[1]}.shadow"])
    assert (rule_based(padded, valid=valid)[:, w:] == 0).all()
    assert not carf_cloud_mask(padded, threshold=-10.0, valid=valid)[:, w:].any()


def test_all_invalid_gives_all_clear():
    x = np.full((13, 8, 8), np.nan, np.float32)
    assert (rule_based(x) == 0).all()
    assert (shadow_mask(x) == 0).all()
    assert np.isnan(cloud_cover(rule_based(x), valid=np.zeros((8, 8), bool)))


# --------------------------------------------------------------------------- cloud_cover


def test_cloud_cover():
    m = np.array([[1, 1, 0, -1], [0, 0, -1, -1]], dtype=np.int8)
    assert cloud_cover(m) == pytest.approx(2 / 8)
    assert cloud_cover(m, include_shadow=True) == pytest.approx(5 / 8)
    valid = np.array([[True, False, True, True], [True, True, True, True]])
    assert cloud_cover(m, valid=valid) == pytest.approx(1 / 7)
    assert cloud_cover(np.array([[True, False]])) == 0.5
    assert np.isnan(cloud_cover(np.zeros((0, 0), np.int8)))
    with pytest.raises(ConfigError):
        cloud_cover(m, valid=np.ones((3, 3), bool))


# --------------------------------------------------------------------------- CARF


def test_carf_hand_computed_pixels():
    cloud = _pixel(B01=0.5, B02=0.5, B03=0.5, B04=0.5, B10=0.5, B11=0.5)  # all terms >= 1
    snow = _pixel(B01=0.5, B02=0.5, B03=0.8, B04=0.5, B10=0.5, B11=0.1)  # NDSI 0.78
    # B02 -> -0.125, B01 -> -0.25, B01+B10 = 0.06 -> -1.8 (the minimum), visible 0.15 -> -0.083
    dark = _pixel(B01=0.05, B02=0.05, B03=0.05, B04=0.05, B10=0.01, B11=0.05)
    # B02 0.2 -> 0.25; B01 0.2 -> 0.5; B01+B10 0.25 -> 2; B04+B03+B02 0.6 -> 0.667: S_c = 0.25
    mid = _pixel(B01=0.2, B02=0.2, B03=0.2, B04=0.2, B10=0.05, B11=0.2)
    faint = _pixel(B01=0.2, B02=0.17, B03=0.2, B04=0.2, B10=0.05, B11=0.2)  # S_c = 0.175
    x = np.concatenate([cloud, snow, dark, mid, faint], axis=2)
    s = carf_cloud_score(x)[0]
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [1.0, 1.0, -1.8, 0.25, 0.175], atol=1e-5)
    np.testing.assert_array_equal(carf_cloud_mask(x)[0], [True, False, False, True, False])
    np.testing.assert_array_equal(carf_cloud_mask(x, threshold=0.1)[0], [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(compute_cloud_mask(x, "carf")[0], [1, 0, 0, 1, 0])
    assert compute_cloud_mask(x, "carf").dtype == np.int8


def test_carf_has_no_morphology():
    # One bright pixel in a dark scene: CARF flags it, the rule-based box mean dilutes it away.
    x = _scene(15, 15, 300)
    x[:, 7, 7] = 5000
    carf = carf_cloud_mask(x)
    assert carf.sum() == 1 and carf[7, 7]
    assert (rule_based(x) != 1).all()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", [(12, 8, 8), (13, 8), (8, 8, 13), (13, 0, 4)])
def test_bad_shapes(shape):
    x = np.zeros(shape, np.uint16)
    for fn in (rule_based, cloud_score, shadow_mask, carf_cloud_mask, carf_cloud_score):
        with pytest.raises(CloudMaskInputError, match="shape"):
            fn(x)


def test_bad_arguments():
    x = _scene(8, 8)
    with pytest.raises(ConfigError, match="variant"):
        rule_based(x, variant="dsen2")
    with pytest.raises(ConfigError, match="threshold"):
        rule_based(x, threshold=float("nan"))
    with pytest.raises(ConfigError, match="rule_based"):
        compute_cloud_mask(x, "fmask")
    with pytest.raises(CloudMaskInputError, match="valid mask has shape"):
        rule_based(x, valid=np.ones((4, 4), bool))
    with pytest.raises(CloudMaskInputError, match="boolean"):
        rule_based(x, valid=np.ones((8, 8), np.uint8))
    with pytest.raises(CloudMaskInputError, match="numeric"):
        rule_based(np.full((13, 2, 2), "a"))
    assert issubclass(CloudMaskInputError, CloudfreeError)


def test_methods_registry():
    assert list(CLOUD_MASK_METHODS) == [
        "rule_based",
        "rule_based_uncrtaints",
        "carf",
        "s2cloudless",
    ]


# --------------------------------------------------------------------------- s2cloudless


def test_s2cloudless_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # makes the import fail
    with pytest.raises(CloudfreeError, match=r"pip install 'cloudfree\[cloudmask\]'"):
        s2cloudless_mask(_scene(8, 8))
    with pytest.raises(CloudfreeError, match="s2cloudless"):
        compute_cloud_mask(_scene(8, 8), "s2cloudless")


@pytest.mark.parametrize("tag", TAGS)
def test_s2cloudless_matches_official(parity, tag):
    pytest.importorskip("s2cloudless")
    x = parity[f"input.{tag}"]
    prob, mask = s2cloudless_mask(x)
    assert prob.dtype == np.float32 and mask.dtype == np.uint8 and mask.shape == (256, 256)
    np.testing.assert_allclose(prob, parity[f"output.{tag}.s2cloudless_prob"], atol=1e-5, rtol=0)
    assert np.count_nonzero(mask != parity[f"output.{tag}.s2cloudless_mask"]) <= 5
    prob10, mask10 = s2cloudless_mask(x, all_bands=False)
    np.testing.assert_array_equal(prob10, prob)
    np.testing.assert_array_equal(mask10, mask)
    np.testing.assert_array_equal(compute_cloud_mask(x, "s2cloudless"), mask.astype(np.int8))
