"""The time-series simulator (`cloudfree.synth.timeseries`): dates, phenology, changes, clouds."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.bands import S2_L1C
from cloudfree.errors import ConfigError
from cloudfree.synth.landcover import LandCover
from cloudfree.synth.timeseries import CHANGE_KINDS, generate_time_series

B04, B08 = S2_L1C.position("B04"), S2_L1C.position("B08")


@pytest.fixture(scope="module")
def series():
    return generate_time_series(96, 96, n_dates=20, seed=6, change_rate=1.5)


def test_same_seed_same_series_other_seed_other(series) -> None:
    again = generate_time_series(96, 96, n_dates=20, seed=6, change_rate=1.5)
    for name in ("clear_dn", "cloudy_dn", "sar_db", "landcover", "change_event", "cloud_mask"):
        np.testing.assert_array_equal(getattr(series, name), getattr(again, name))
    assert series.dates == again.dates and series.events == again.events
    other = generate_time_series(96, 96, n_dates=20, seed=7, change_rate=1.5)
    assert not np.array_equal(series.clear_dn, other.clear_dn)


def test_shapes_dates_and_covers(series) -> None:
    t, h, w = 20, 96, 96
    assert series.clear_dn.shape == series.cloudy_dn.shape == (t, 13, h, w)
    assert series.sar_db.shape == (t, 2, h, w) and series.landcover.shape == (t, h, w)
    assert all(b > a for a, b in zip(series.dates, series.dates[1:]))
    gaps = [(b - a).days for a, b in zip(series.dates, series.dates[1:])]
    assert min(gaps) >= 5 and max(gaps) <= 12
    assert all(abs((a - b).days) <= 2 for a, b in zip(series.dates, series.s1_dates))
    # clouds differ per date, from clear to heavily cloudy
    assert series.covers.min() == 0.0 and series.covers.max() > 0.5
    assert len(set(np.round(series.covers, 3))) > 5


def test_each_change_is_visible_in_optical_truth_and_sar_after_it(series) -> None:
    """Every event of this seed: where it happened, the truth (by > 50 DN) and the SAR (by
    > 0.5 dB) change between the date before and the dates after, in some band, by more than
    five standard errors beyond what the unchanged pixels did."""
    assert {e.kind for e in series.events} == set(CHANGE_KINDS)
    checked = 0
    for k, e in enumerate(series.events, start=1):
        t = e.date_index
        area = series.change_event[t] == k
        assert area.sum() <= e.pixels  # a later event of the same date may take some
        area &= ~series.changed_between(t, series.n_dates - 1)  # untouched since
        if area.sum() < 20 or t + 1 >= series.n_dates:
            continue
        still = ~series.changed_between(t - 1, series.n_dates - 1)
        for after in (t, t + 1):
            for image, floor in ((series.clear_dn, 50.0), (series.sar_db, 0.5)):
                d = image[after].astype(np.float64) - image[t - 1]  # [bands, H, W]
                # the change against what every unchanged pixel did between the two dates
                # (atmosphere, phenology, speckle), band by band
                shift = np.abs(d[:, area].mean(axis=1) - d[:, still].mean(axis=1))
                noise = d[:, still].std(axis=1) / np.sqrt(area.sum())
                assert (shift > 5 * noise).any() and shift.max() > floor, (e, after, shift)
        checked += 1
    assert checked >= 3


def test_change_rate_zero_changes_nothing_and_rate_scales_events() -> None:
    calm = generate_time_series(48, 48, n_dates=10, seed=2, change_rate=0.0)
    assert calm.events == [] and not calm.change.any()
    assert (calm.landcover == calm.landcover[0]).all()
    busy = generate_time_series(48, 48, n_dates=10, seed=2, change_rate=3.0)
    assert len(busy.events) > 10 and busy.change.any()


def test_phenology_follows_a_season_on_crops_not_on_water() -> None:
    ts = generate_time_series(128, 128, n_dates=30, seed=2, change_rate=0.0)
    lc = ts.landcover[0]
    red = ts.clear_dn[:, B04].astype(np.float64)
    nir = ts.clear_dn[:, B08].astype(np.float64)
    ndvi = (nir - red) / (nir + red)
    crops = np.isin(lc, (LandCover.CROP_DENSE, LandCover.CROP_YOUNG))
    water = lc == LandCover.WATER
    assert crops.sum() > 100
    crop_curve = ndvi[:, crops].mean(axis=1)
    assert crop_curve.max() - crop_curve.min() > 0.05
    if water.sum() > 20:
        water_curve = ndvi[:, water].mean(axis=1)
        assert water_curve.max() - water_curve.min() < 0.5 * (crop_curve.max() - crop_curve.min())


def test_cloudy_dates_differ_from_the_truth_only_under_clouds(series) -> None:
    for t in range(series.n_dates):
        diff = np.abs(series.cloudy_dn[t].astype(np.float64) - series.clear_dn[t]).mean(axis=0)
        clear = ~series.cloud_mask[t] & ~series.shadow_mask[t]
        if series.cloud_mask[t].sum() > 50 and clear.sum() > 50:
            assert diff[series.cloud_mask[t]].mean() > 1.5 * diff[clear].mean()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_dates": 1}, "n_dates"),
        ({"n_dates": 31}, "n_dates"),
        ({"n_dates": 3, "change_rate": -1}, "change_rate"),
        ({"n_dates": 3, "change_size": 0}, "change_size"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_time_series(16, 16, seed=0, **kwargs)


def test_change_kinds_are_the_documented_ones() -> None:
    assert CHANGE_KINDS == ("harvest", "plough", "building", "flood", "fire")
