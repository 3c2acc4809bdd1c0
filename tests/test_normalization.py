import numpy as np
import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.normalization import (
    PROTOCOLS,
    denormalize_optical,
    denormalize_sar,
    get_protocol,
    normalize_optical,
    normalize_sar,
)


def _sar():
    vv = np.array([[-30.0, -25.0, -12.5, 0.0, 3.0]], dtype=np.float32)
    vh = np.array([[-40.0, -32.5, -16.25, 0.0, -25.0]], dtype=np.float32)
    return np.stack([vv, vh])


def test_every_registered_model_names_a_known_protocol():
    """The registry and the protocol table agree: the protocol each registered model (stand-ins
    included) declares resolves, and normalises a DN image to finite values in its range."""
    from cloudfree.models import get_model_info, list_models

    dn = np.array([[[0, 2000, 10000, 15000]]], dtype=np.uint16)
    for name in list_models(include_standins=True):
        protocol = get_protocol(get_model_info(name).protocol)
        assert protocol is PROTOCOLS[protocol.name]
        lo, hi = protocol.optical_range
        out = normalize_optical(dn, protocol).array
        assert np.isfinite(out).all() and lo <= out.min() and out.max() <= hi, name
    with pytest.raises(ConfigError, match="unknown normalisation protocol 'foo'"):
        get_protocol("foo")


@pytest.mark.parametrize(
    "protocol,divisor", [("glf_cr", 1e4), ("uncrtaints", 1e4), ("dsen2cr", 2e3), ("allclear", 1e4)]
)
def test_optical_scaling(protocol, divisor):
    dn = np.array([[[0, 2000, 10000, 15000]]], dtype=np.uint16)
    out = normalize_optical(dn, protocol)
    np.testing.assert_allclose(out.array[0, 0], np.array([0, 2000, 10000, 10000]) / divisor)
    assert out.array.dtype == np.float32
    assert out.valid.all()


def test_sar_glf_cr_uses_per_band_ranges():
    out = normalize_sar(_sar(), "glf_cr").array
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(out[1, 0], [0.0, 0.0, 0.5, 1.0, 7.5 / 32.5])


def test_sar_uncrtaints_clips_both_bands_to_minus25():
    out = normalize_sar(_sar(), "uncrtaints").array
    np.testing.assert_allclose(out[1, 0], [0.0, 0.0, 1 - 16.25 / 25, 1.0, 0.0])


def test_sar_dsen2cr_range_is_0_to_2():
    out = normalize_sar(_sar(), "dsen2cr").array
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 1.0, 2.0, 2.0])


def test_allclear_nan_fills():
    dn = np.array([[[np.nan, 5000.0]]], dtype=np.float32)
    opt = normalize_optical(dn, "allclear")
    np.testing.assert_allclose(opt.array[0, 0], [0.0, 0.5])
    np.testing.assert_array_equal(opt.valid[0], [False, True])
    sar = _sar()
    sar[1, 0, 2] = np.nan
    out = normalize_sar(sar, "allclear")
    assert out.array[1, 0, 2] == -1.0
    assert out.array[0, 0, 2] == 0.5  # the other band is scaled normally
    assert not out.valid[0, 2] and out.valid[0, 1]


def test_glf_cr_fills_nan_with_image_nanmean():
    dn = np.array([[[np.nan, 2000.0, 4000.0]]], dtype=np.float32)
    out = normalize_optical(dn, "glf_cr")
    np.testing.assert_allclose(out.array[0, 0], [0.3, 0.2, 0.4])
    np.testing.assert_array_equal(out.valid[0], [False, True, True])


def test_uncrtaints_nan_becomes_zero_and_nodata_is_invalid():
    dn = np.array([[[np.nan, 0, 4000.0]]], dtype=np.float32)
    out = normalize_optical(dn, "uncrtaints", nodata=0)
    np.testing.assert_allclose(out.array[0, 0], [0.0, 0.0, 0.4])
    np.testing.assert_array_equal(out.valid[0], [False, False, True])


def test_pb04_offset_option():
    dn = np.array([[[1000, 3000]]], dtype=np.uint16)
    np.testing.assert_allclose(normalize_optical(dn, pb04_offset=True).array[0, 0], [0.0, 0.2])
    np.testing.assert_allclose(normalize_optical(dn).array[0, 0], [0.1, 0.3])


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_round_trip_numpy_and_torch(protocol):
    """Exact inside the protocol's clip range, up to half a level for a quantising one."""
    rng = np.random.default_rng(0)
    p = PROTOCOLS[protocol]
    dn = rng.uniform(0, p.optical_max_dn, size=(2, 13, 4, 4)).astype(np.float32)
    levels = p.optical_levels
    atol = 1e-2 if levels is None else 0.5 * p.optical_max_dn / levels * (1 + 1e-5)
    x = normalize_optical(dn, protocol).array
    np.testing.assert_allclose(denormalize_optical(x, protocol), dn, rtol=1e-5, atol=atol)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(denormalize_optical(t, protocol).numpy(), dn, rtol=1e-5, atol=atol)
    db = np.stack([rng.uniform(-25, 0, (4, 4)), rng.uniform(-25, 0, (4, 4))]).astype(np.float32)
    s = normalize_sar(db, protocol).array
    np.testing.assert_allclose(denormalize_sar(s, protocol), db, atol=1e-4)
    np.testing.assert_allclose(
        denormalize_sar(torch.from_numpy(s), protocol).numpy(), db, atol=1e-4
    )


def test_bad_sar_shape():
    with pytest.raises(ConfigError, match=r"\[\.\.\., 2, H, W\]"):
        normalize_sar(np.zeros((3, 4, 4)), "glf_cr")
