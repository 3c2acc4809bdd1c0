"""Tests of cloudfree.metrics: parity with official metric code, cross-checks, conventions."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.metrics import (
    METRIC_NAMES,
    METRIC_PROTOCOLS,
    MetricProtocol,
    gaussian_window_1d,
    get_metric_protocol,
    image_metrics,
    spectral_angle,
    ssim_map,
)

ALL_PROTOCOLS = sorted(METRIC_PROTOCOLS)


def _pair(b=2, c=13, h=24, w=20, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, c, h, w, generator=g, dtype=torch.float64) * 0.6 + 0.05
    p = (t + noise * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return p, t


# --------------------------------------------------------------------------- parity fixture


@pytest.fixture(scope="module")
def parity(shared_path):
    from safetensors.torch import load_file

    case = json.loads(shared_path("parity/metrics/case.json").read_text())
    io = load_file(str(shared_path("parity/metrics/io.safetensors")))
    return case, io


# Official protocol names in the fixture -> ours.
_FIXTURE_PROTOCOLS = {
    "uncrtaints": "uncrtaints",
    "glfcr": "glf_cr",
    "thoailt": "carf",
    "allclear": "allclear",
}


def _ours(io, fixture_protocol):
    pred, target = io["input.pred"], io["input.target"]
    mask = None
    if fixture_protocol == "allclear":
        mask = ~(io["input.cloud_mask"].bool() | io["input.shadow_mask"].bool())
    out = image_metrics(pred, target, _FIXTURE_PROTOCOLS[fixture_protocol], mask=mask)
    out["mse"] = out["rmse"] ** 2
    return out


def _reference_sam_over_defined_pixels(pred, target):
    """SAM in degrees by the plain acos formula over pixels non-zero in both images."""
    p, t = pred.double(), target.double()
    dot = (p * t).sum(1)
    npn, ntn = p.norm(dim=1), t.norm(dim=1)
    ok = (npn > 0) & (ntn > 0)
    cos = (dot / (npn * ntn)).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos))
    return torch.stack([ang[i][ok[i]].mean() for i in range(p.shape[0])])


def test_parity_every_output_within_tolerance(parity):
    case, io = parity
    results = {name: _ours(io, name) for name in _FIXTURE_PROTOCOLS}
    assert set(case["outputs"]) <= {f"{p}.{m}" for p in results for m in results[p]}
    for key in case["outputs"]:
        proto, metric = key.split(".")
        expected = io[f"output.{key}"]
        got = results[proto][metric]
        assert got.dtype == torch.float64 and got.shape == expected.shape
        tol = case.get("tolerance_per_output", {}).get(key, case["tolerance"])
        if key == "uncrtaints.sam":
            # Documented exception: official NaN from all-zero pixels; ours is finite.
            nan = torch.isnan(expected)
            assert nan.any(), "fixture should contain an image with all-zero pixels"
            torch.testing.assert_close(got[~nan], expected[~nan], **tol)
            assert torch.isfinite(got[nan]).all()
            ref = _reference_sam_over_defined_pixels(io["input.pred"], io["input.target"])
            torch.testing.assert_close(got[nan], ref[nan], atol=1e-9, rtol=1e-9)
            continue
        torch.testing.assert_close(got, expected, equal_nan=True, msg=key, **tol)


def test_parity_allclear_fully_cloudy_image_is_nan(parity):
    _, io = parity
    out = _ours(io, "allclear")
    full_cloud = io["input.cloud_mask"].flatten(1).min(dim=1).values > 0
    assert full_cloud.any()
    for k in METRIC_NAMES:
        assert torch.isnan(out[k][full_cloud]).all()
        assert torch.isfinite(out[k][~full_cloud]).all()


def test_parity_aggregate_matches_allclear_note(parity):
    # case.json quotes AllClear's evaluate_aggregate() (nanmean over images).
    _, io = parity
    out = _ours(io, "allclear")
    expected = {"mae": 0.0194522, "rmse": 0.0238641, "psnr": 37.5399, "sam": 4.57917}
    for k, v in expected.items():
        assert float(out[k].nanmean()) == pytest.approx(v, rel=2e-5)
    assert float(out["ssim"].nanmean()) == pytest.approx(0.958219, abs=2e-6)


def test_allclear_sam_is_taken_along_height_not_bands(parity):
    # The official AllClear SAM normalises over dim 2 (height). A spectral angle does not
    # reproduce the stored numbers; allclear_spectral gives the spectral one.
    _, io = parity
    mask = ~(io["input.cloud_mask"].bool() | io["input.shadow_mask"].bool())
    expected = io["output.allclear.sam"]
    spectral = image_metrics(io["input.pred"], io["input.target"], "allclear_spectral", mask)
    assert (spectral["sam"][:3] - expected[:3]).abs().min() > 0.01
    official_style = image_metrics(io["input.pred"], io["input.target"], "allclear", mask)
    for k in ("mae", "rmse", "psnr", "ssim"):
        torch.testing.assert_close(spectral[k], official_style[k], equal_nan=True)


# --------------------------------------------------------------------------- cross-checks


def test_sam_and_psnr_match_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image")
    p, t = _pair(b=3)
    ours = image_metrics(p, t, "uncrtaints")
    sam_ref = torch.rad2deg(tm.spectral_angle_mapper(p, t, reduction="none").mean(dim=(1, 2)))
    torch.testing.assert_close(ours["sam"], sam_ref, atol=1e-9, rtol=1e-9)
    psnr_ref = tm.peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    # torchmetrics converts with log(10) taken in float32: relative error ~5e-8.
    torch.testing.assert_close(ours["psnr"], psnr_ref, atol=0, rtol=2e-7)
    # dsen2cr: radians and the same PSNR.
    d = image_metrics(p, t, "dsen2cr")
    torch.testing.assert_close(d["sam"], torch.deg2rad(sam_ref), atol=1e-11, rtol=1e-9)
    torch.testing.assert_close(d["psnr"], ours["psnr"], atol=0, rtol=0)


def test_dsen2cr_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    p, t = _pair(b=2, h=40, w=33)
    ours = image_metrics(p, t, "dsen2cr")["ssim"]
    ref = [
        skm.structural_similarity(
            p[i].numpy(),
            t[i].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=0,
        )
        for i in range(2)
    ]
    # skimage filters the whole image and crops 5 border pixels: identical to VALID padding.
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12, rtol=0)


def test_uncrtaints_ssim_equals_direct_2d_convolution():
    # Independent of the separable implementation: a plain 2-D window with zero padding.
    p, t = _pair(b=1, c=2, h=16, w=16)
    for center, protocol in ((5.0, "uncrtaints"), (5.5, "glf_cr")):
        x = torch.exp(-((torch.arange(11, dtype=torch.float64) - center) ** 2) / 4.5)
        x = x / x.sum()
        win = (x[:, None] * x[None, :]).expand(2, 1, 11, 11)

        def conv(a, win=win):
            return torch.nn.functional.conv2d(a, win, padding=5, groups=2)

        mu1, mu2 = conv(p), conv(t)
        s1, s2, s12 = conv(p * p) - mu1**2, conv(t * t) - mu2**2, conv(p * t) - mu1 * mu2
        smap = ((2 * mu1 * mu2 + 1e-4) * (2 * s12 + 9e-4)) / (
            (mu1**2 + mu2**2 + 1e-4) * (s1 + s2 + 9e-4)
        )
        got = image_metrics(p, t, protocol)["ssim"]
        torch.testing.assert_close(got, smap.mean().reshape(1), atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_identical_images(protocol):
    _, t = _pair()
    out = image_metrics(t, t.clone(), protocol)
    assert torch.all(out["sam"] == 0)
    assert torch.all(out["mae"] == 0) and torch.all(out["rmse"] == 0)
    if protocol == "carf":  # its +1e-8 keeps SSIM a hair below 1
        torch.testing.assert_close(
            out["ssim"], torch.ones(2, dtype=torch.float64), atol=1e-3, rtol=0
        )
        assert torch.all(out["ssim"] < 1)
    else:
        torch.testing.assert_close(
            out["ssim"], torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0
        )
    expected_psnr = 100.0 if protocol in ("glf_cr", "carf") else math.inf
    assert torch.all(out["psnr"] == expected_psnr)


def test_known_values_constant_offset():
    t = torch.full((1, 4, 12, 12), 0.3, dtype=torch.float64)
    p = t + 0.1
    u = image_metrics(p, t)
    torch.testing.assert_close(u["mae"], torch.tensor([0.1], dtype=torch.float64))
    torch.testing.assert_close(u["rmse"], torch.tensor([0.1], dtype=torch.float64))
    torch.testing.assert_close(u["psnr"], torch.tensor([20.0], dtype=torch.float64))
    assert float(u["sam"]) == pytest.approx(0.0, abs=1e-6)  # parallel spectra
    d = image_metrics(p, t, "dsen2cr")
    torch.testing.assert_close(d["mae"], torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(d["rmse"], torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(d["psnr"], torch.tensor([20.0], dtype=torch.float64))


def test_known_spectral_angle():
    t = torch.zeros(1, 2, 12, 12, dtype=torch.float64)
    p = torch.zeros_like(t)
    t[:, 0] = 1.0
    p[:, 0] = 1.0
    p[:, 1] = 1.0  # 45 degrees everywhere
    assert float(image_metrics(p, t)["sam"]) == pytest.approx(45.0, abs=1e-12)
    assert float(image_metrics(p, t, "dsen2cr")["sam"]) == pytest.approx(math.pi / 4, abs=1e-14)


def test_all_zero_pixels_excluded_or_counted_as_90():
    p, t = _pair(b=1, c=5, h=8, w=8)
    p[..., 2, 3] = 0
    t[..., 2, 3] = 0
    p[..., 5, 5] = 0  # zero in pred only
    keep = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    keep[..., 2, 3] = False
    keep[..., 5, 5] = False
    out = image_metrics(p, t, "uncrtaints")
    ref = image_metrics(p, t, "uncrtaints", mask=keep)
    assert torch.isfinite(out["sam"]).all()
    torch.testing.assert_close(out["sam"], ref["sam"])
    ang, defined = spectral_angle(p, t, zero_pixels="exclude")
    assert defined.sum() == 62 and ang[~defined].eq(0).all()
    # AllClear-style (epsilon) spectral angle: those two pixels count as 90 degrees.
    spec = image_metrics(p, t, "allclear_spectral")
    expected = (ref["sam"] * 62 + 2 * 90.0) / 64
    torch.testing.assert_close(spec["sam"], expected)


def test_image_without_defined_angle_gives_nan_sam():
    z = torch.zeros(1, 3, 12, 12, dtype=torch.float64)
    out = image_metrics(z, z.clone())
    assert torch.isnan(out["sam"]).all()
    assert out["mae"].item() == 0 and out["psnr"].item() == math.inf


def test_mask_selects_pixels_like_a_crop():
    p, t = _pair(b=2, h=30, w=28)
    mask = torch.zeros(2, 1, 30, 28, dtype=torch.bool)
    mask[:, :, 4:19, 7:25] = True
    crop = (slice(None), slice(None), slice(4, 19), slice(7, 25))
    for protocol in ("uncrtaints", "glf_cr", "dsen2cr", "allclear_spectral"):
        masked = image_metrics(p, t, protocol, mask=mask)
        cropped = image_metrics(p[crop], t[crop], protocol)
        for k in ("mae", "rmse", "psnr", "sam"):
            torch.testing.assert_close(masked[k], cropped[k], atol=1e-12, rtol=1e-12)
    # SSIM with a mask = the full-image SSIM map averaged over the masked pixels.
    smap = ssim_map(p, t)
    expected = smap[crop].mean(dim=(1, 2, 3))
    torch.testing.assert_close(image_metrics(p, t, mask=mask)["ssim"], expected)
    # dsen2cr (valid padding): only masked pixels 5 or more from the border.
    vmap = ssim_map(p, t, padding="valid")  # covers pixels 5..24 x 5..22
    expected = vmap[:, :, 0:14, 2:18].mean(dim=(1, 2, 3))
    torch.testing.assert_close(image_metrics(p, t, "dsen2cr", mask=mask)["ssim"], expected)


def test_allclear_ssim_uses_masked_inputs_and_ignores_outside():
    p, t = _pair(b=1, c=3, h=20, w=20)
    mask = torch.zeros(1, 1, 20, 20, dtype=torch.bool)
    mask[..., 3:15, 2:12] = True
    smap = ssim_map(p * mask, t * mask)
    expected = smap[..., 3:15, 2:12].mean().reshape(1)
    torch.testing.assert_close(image_metrics(p, t, "allclear", mask=mask)["ssim"], expected)
    # Values outside the mask do not matter at all under allclear.
    p2 = p.clone()
    p2[..., 16:, :] = 0.9
    for k, v in image_metrics(p2, t, "allclear", mask=mask).items():
        if k != "sam":  # AllClear's column-wise SAM sees whole columns
            torch.testing.assert_close(v, image_metrics(p, t, "allclear", mask=mask)[k])


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_empty_mask_gives_nan(protocol):
    p, t = _pair(b=2)
    mask = torch.ones(2, 1, 24, 20, dtype=torch.bool)
    mask[1] = False
    out = image_metrics(p, t, protocol, mask=mask)
    for k in METRIC_NAMES:
        assert torch.isfinite(out[k][0]) and torch.isnan(out[k][1]), (protocol, k)


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_batch_equals_images_one_by_one(protocol):
    p, t = _pair(b=3, seed=3)
    batch = image_metrics(p, t, protocol)
    for i in range(3):
        single = image_metrics(p[i : i + 1], t[i : i + 1], protocol)
        for k in METRIC_NAMES:
            torch.testing.assert_close(batch[k][i : i + 1], single[k], atol=1e-13, rtol=1e-13)


def test_output_type_and_float32_input():
    p, t = _pair()
    out = image_metrics(p.float(), t.float())
    assert list(out) == list(METRIC_NAMES)
    for v in out.values():
        assert v.dtype == torch.float64 and v.shape == (2,) and v.device == p.device
    ref = image_metrics(p.float().double(), t.float().double())
    for k in METRIC_NAMES:
        torch.testing.assert_close(out[k], ref[k])
    # numpy arrays are accepted
    out_np = image_metrics(p.numpy(), t.numpy())
    torch.testing.assert_close(out_np["ssim"], image_metrics(p, t)["ssim"])


def test_glf_cr_window_is_half_a_pixel_off_centre():
    g = gaussian_window_1d(11, 1.5)
    assert float(g.sum()) == pytest.approx(1.0) and int(g.argmax()) == 5
    torch.testing.assert_close(g, g.flip(0))
    g55 = gaussian_window_1d(11, 1.5, 5.5)
    assert g55[5] == g55[6] and g55[0] < g55[10]
    p, t = _pair(b=1)
    assert image_metrics(p, t, "glf_cr")["ssim"] != image_metrics(p, t, "uncrtaints")["ssim"]


def test_protocol_registry():
    assert {"uncrtaints", "glf_cr", "carf", "dsen2cr", "allclear"} <= set(METRIC_PROTOCOLS)
    assert get_metric_protocol("glf_cr").center_crop == 128
    assert get_metric_protocol("uncrtaints").center_crop is None
    custom = dataclasses.replace(get_metric_protocol("uncrtaints"), name="x", center_crop=64)
    assert get_metric_protocol(custom) is custom
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.name = "y"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unknown metric protocol 'nope'"):
        get_metric_protocol("nope")
    with pytest.raises(ConfigError, match="padding"):
        MetricProtocol("bad", "bad", ssim_padding="reflect")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pred_shape,target_shape,match",
    [
        ((13, 8, 8), (13, 8, 8), r"pred must be a \[B, C, H, W\] tensor, got shape \(13, 8, 8\)"),
        ((1, 13, 8, 8), (1, 12, 8, 8), "same shape"),
        ((2, 13, 8, 8), (1, 13, 8, 8), "same shape"),
    ],
)
def test_bad_shapes_raise(pred_shape, target_shape, match):
    with pytest.raises(ConfigError, match=match):
        image_metrics(torch.rand(pred_shape), torch.rand(target_shape))


def test_bad_inputs_raise():
    p, t = _pair(b=2, h=8, w=8)
    with pytest.raises(ConfigError, match="floating-point"):
        image_metrics((p * 10000).to(torch.int32), (t * 10000).to(torch.int32))
    with pytest.raises(ConfigError, match="boolean"):
        image_metrics(p, t, mask=torch.ones(2, 1, 8, 8))
    with pytest.raises(ConfigError, match=r"mask must have shape \[B, 1, H, W\]"):
        image_metrics(p, t, mask=torch.ones(2, 1, 8, 9, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"mask must have shape"):
        image_metrics(p, t, mask=torch.ones(3, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ConfigError, match="at least 11x11"):
        image_metrics(p, t, "dsen2cr")  # 8x8 is too small for VALID SSIM
    with pytest.raises(ConfigError, match="torch tensor"):
        image_metrics([1.0], [1.0])  # type: ignore[arg-type]
    # [B, H, W] and [1, 1, H, W] masks are accepted
    m = torch.ones(2, 8, 8, dtype=torch.bool)
    out = image_metrics(p, t, mask=m)
    torch.testing.assert_close(out["ssim"], image_metrics(p, t, mask=m[:1, None])["ssim"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu():
    p, t = _pair(b=2, h=32, w=32)
    mask = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.3
    for protocol in ALL_PROTOCOLS:
        cpu = image_metrics(p, t, protocol, mask)
        gpu = image_metrics(p.cuda().float(), t.cuda().float(), protocol, mask.cuda())
        for k in METRIC_NAMES:
            assert gpu[k].device.type == "cuda" and gpu[k].dtype == torch.float64
            torch.testing.assert_close(
                gpu[k].cpu(),
                image_metrics(p.float(), t.float(), protocol, mask)[k],
                atol=1e-9,
                rtol=1e-9,
            )
            torch.testing.assert_close(gpu[k].cpu(), cpu[k], atol=1e-5, rtol=1e-5)
