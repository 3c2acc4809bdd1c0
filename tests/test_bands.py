import numpy as np
import pytest

from cloudfree.bands import S1_GRD, S2_L1C, S2_RGB, get_band_set, harmonize_pb04
from cloudfree.errors import ConfigError


def test_l1c_has_13_bands_in_product_order():
    assert S2_L1C.names == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07",
        "B08", "B8A", "B09", "B10", "B11", "B12",
    )  # fmt: skip
    assert S2_L1C.indices == tuple(range(13))
    assert all(b.scale == 1e-4 for b in S2_L1C)


def test_rgb_is_b04_b03_b02():
    assert S2_RGB.names == ("B04", "B03", "B02")
    assert S2_RGB.indices == (3, 2, 1)
    assert get_band_set("rgb") == S2_RGB
    assert get_band_set(None) == S2_L1C
    assert get_band_set("all") == S2_L1C


def test_subset_by_name_is_case_insensitive_and_ordered():
    bs = get_band_set("b8a, B2 ,B11")
    assert bs.names == ("B8A", "B02", "B11")
    assert bs.indices == (8, 1, 11)
    arr = np.arange(13)[:, None, None] * np.ones((13, 2, 2))
    np.testing.assert_array_equal(bs.select(arr)[:, 0, 0], [8, 1, 11])


def test_unknown_and_duplicate_bands_are_errors():
    with pytest.raises(ConfigError, match="unknown band 'B13'"):
        get_band_set(["B13"])
    with pytest.raises(ConfigError, match="duplicate"):
        get_band_set(["B02", "b2"])


def test_s1_bands():
    assert S1_GRD.names == ("VV", "VH")
    assert S1_GRD.position("vh") == 1


def test_pb04_harmonisation_is_explicit_and_keeps_nodata():
    dn = np.array([[[0, 500, 1000, 3500]]], dtype=np.uint16)
    out = harmonize_pb04(dn)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0, 2500])
    assert out.dtype == np.float32


@pytest.mark.parametrize(("name", "expected"), [("B2", 1), ("b02", 1), (" b8a ", 8), ("B12", 12)])
def test_position_accepts_the_names_subset_accepts(name, expected):
    assert S2_L1C.position(name) == expected
    assert S2_L1C.subset([name]).indices == (expected,)  # the same name, the same band


def test_position_of_a_band_outside_the_set_names_it():
    with pytest.raises(ConfigError, match=r"band 'B8' is not in this .* \['B04', 'B03', 'B02'\]"):
        S2_RGB.position("B8")
