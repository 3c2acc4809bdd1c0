"""Tests of cloudfree.losses: hand-computed values, masking, gradients, registry errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError
from cloudfree.losses import (
    GAN_LOSSES,
    LOSSES,
    CARFCodeLoss,
    CARFLoss,
    CARLLoss,
    GaussianNLLLoss,
    L1SSIMLoss,
    PixelL1Loss,
    PixelMSELoss,
    SSIMLoss,
    build_gan_loss,
    build_loss,
    list_gan_losses,
    list_losses,
)
from cloudfree.metrics import image_metrics
from cloudfree.models import ModelOutput

#: losses of the prediction alone (called with a bare tensor); gaussian_nll needs a variance
PRED_ONLY = ["carf", "carf_code", "carl", "l1", "l1_ssim", "l2", "mse", "ssim"]
#: losses that need the VGG16 weights file (tests/test_losses_vgg.py)
NEEDS_VGG = ["ca_mtcr", "perceptual", "style"]
#: gaussian_nll needs a variance, spa_gan an attention map (tests/test_spa_gan.py), vqvae the
#: VQ terms of ca_mtcr_sar_vqvae (tests/test_ca_mtcr_training.py)
ALL = sorted([*PRED_ONLY, *NEEDS_VGG, "gaussian_nll", "gnll", "mgnll", "spa_gan", "vqvae"])


def make_batch(
    b: int = 2,
    c: int = 13,
    h: int = 17,
    w: int = 23,
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    invalid_fraction: float = 0.0,
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "target": torch.rand(b, c, h, w, generator=g, dtype=dtype),
        "optical": torch.rand(b, c, h, w, generator=g, dtype=dtype),
        "sar": torch.rand(b, 2, h, w, generator=g, dtype=dtype),
        "cloud_mask": (torch.rand(b, 1, h, w, generator=g) < 0.4).float(),
        "shadow_mask": (torch.rand(b, 1, h, w, generator=g) < 0.15).float(),
        "valid_mask": torch.rand(b, 1, h, w, generator=g) >= invalid_fraction,
    }


def ref_ssim_map(x: torch.Tensor, y: torch.Tensor, eps: float = 0.0, L: float = 1.0):
    """Independent SSIM map: full 2-D 11x11 Gaussian (sigma 1.5, centre 5), zero padding."""
    x, y = x.double(), y.double()
    k = torch.arange(11, dtype=torch.float64)
    g = torch.exp(-((k - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    c = x.shape[1]
    win = torch.outer(g, g).expand(c, 1, 11, 11)

    def conv(t):
        return F.conv2d(t, win, padding=5, groups=c)

    mx, my = conv(x), conv(y)
    vx, vy, cxy = conv(x * x) - mx**2, conv(y * y) - my**2, conv(x * y) - mx * my
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2) + eps)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_loss():
    assert list_losses() == ALL
    assert set(LOSSES) == set(ALL)
    assert LOSSES["carl"] is CARLLoss and LOSSES["carf"] is CARFLoss
    for name in ALL:
        if name in NEEDS_VGG:  # cannot be built without vgg_weights
            with pytest.raises(ConfigError, match="vgg_weights"):
                build_loss(name)
            assert LOSSES[name].name == name
            continue
        loss = build_loss(name)
        assert isinstance(loss, LOSSES[name]) and isinstance(loss, torch.nn.Module)
        assert loss.name == name


def test_build_loss_normalises_names_and_passes_kwargs():
    loss = build_loss("L1-SSIM", ssim_weight=0.25)
    assert isinstance(loss, L1SSIMLoss) and loss.ssim_weight == 0.25
    assert build_loss("carf", alpha=0.7).alpha == 0.7


def test_build_loss_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        build_loss("huber")
    for name in ALL:
        assert name in str(e.value)


def test_build_loss_bad_kwarg_is_named():
    with pytest.raises(ConfigError, match="'lambda_1'") as e:
        build_loss("carf", lambda_1=0.5)
    assert "lambda1" in str(e.value)  # valid arguments are listed
    with pytest.raises(ConfigError, match="'data_range'"):
        build_loss("l1", data_range=1.0)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("carf", {"alpha": 1.5}),
        ("carf", {"lambda1": -1}),
        ("carf", {"normalize_weights": "yes"}),
        ("carf", {"mask_key": ""}),
        ("carf_code", {"pixel_loss": "huber"}),
        ("carf_code", {"mask_weight": float("nan")}),
        ("ssim", {"data_range": 0.0}),
        ("l1_ssim", {"l1_weight": "1"}),
        ("carl", {"lambda_reg": True}),
        ("carl", {"include_shadow": 1}),
    ],
)
def test_build_loss_bad_values(name, kwargs):
    with pytest.raises(ConfigError):
        build_loss(name, **kwargs)


def test_build_loss_non_string_name():
    with pytest.raises(ConfigError):
        build_loss(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hand values


def _tiny():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    return torch.zeros_like(target), {"target": target}


def test_l1_mse_hand_values_and_valid_mask():
    pred, batch = _tiny()
    assert build_loss("l1")(pred, batch).item() == pytest.approx(2.5)
    assert build_loss("mse")(pred, batch).item() == pytest.approx(7.5)
    batch["valid_mask"] = torch.tensor([[[[True, True], [True, False]]]])
    assert build_loss("l1")(pred, batch).item() == pytest.approx(2.0)
    assert build_loss("mse")(pred, batch).item() == pytest.approx(14.0 / 3.0)


def test_pixel_losses_match_torch_when_all_valid():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    torch.testing.assert_close(
        PixelL1Loss()(pred, batch), F.l1_loss(pred, batch["target"]), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(
        PixelMSELoss()(pred, batch), F.mse_loss(pred, batch["target"]), rtol=1e-6, atol=0
    )


def _carl_batch():
    # B=1, C=2, 1x4 pixels: pixel 0 cloud, pixel 1 shadow, pixels 2-3 clear.
    shape = (1, 2, 1, 4)
    batch = {
        "target": torch.ones(shape),
        "optical": torch.full(shape, 3.0),
        "cloud_mask": torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]]),
        "shadow_mask": torch.tensor([[[[0.0, 1.0, 0.0, 0.0]]]]),
        "valid_mask": torch.ones(1, 1, 1, 4, dtype=torch.bool),
    }
    return torch.zeros(shape), batch


def test_carl_hand_values():
    pred, batch = _carl_batch()
    # cloud|shadow: 2 px x 2 bands with |pred - target| = 1; clear: 2 px x 2 bands with
    # |pred - optical| = 3; mean over the 8 elements = 2; + 1.0 * mean|pred - target| = 1.
    assert CARLLoss()(pred, batch).item() == pytest.approx(3.0)
    # Shadow not counted as cloud: (1 px * 2 * 1 + 3 px * 2 * 3) / 8 = 2.5, + 1.
    assert CARLLoss(include_shadow=False)(pred, batch).item() == pytest.approx(3.5)
    assert CARLLoss(lambda_reg=0.5)(pred, batch).item() == pytest.approx(2.5)
    # Invalid clear pixel 3: (2 px * 2 * 1 + 1 px * 2 * 3) / 6 = 5/3, + 1.
    batch["valid_mask"][..., 3] = False
    assert CARLLoss()(pred, batch).item() == pytest.approx(5.0 / 3.0 + 1.0)


def test_carl_is_zero_when_prediction_matches_target_and_input():
    batch = make_batch()
    batch["optical"] = batch["target"].clone()
    assert CARLLoss()(batch["target"].clone(), batch).item() == 0.0


def _mask_quarter(b=1, h=4, w=4):
    m = torch.zeros(b, 1, h, w)
    m[:, :, :2, :2] = 1.0  # 4 of 16 pixels: cloud fraction 1/4
    return m


def test_carf_weights_with_known_mask_fraction():
    shape = (1, 3, 4, 4)
    pred = torch.zeros(shape)
    batch = {"target": torch.full(shape, 0.5), "cloud_mask": _mask_quarter()}
    # mean weight = 0.25 * 0.8 + 0.75 * 0.2 = 0.35; squared error 0.25 everywhere.
    mse_only = CARFLoss(lambda1=1.0, lambda2=0.0)
    assert mse_only(pred, batch).item() == pytest.approx(0.25 * 0.35)
    assert mse_only.last_terms["weight_mean"].item() == pytest.approx(0.35)
    normed = CARFLoss(lambda1=1.0, lambda2=0.0, normalize_weights=True)
    assert normed(pred, batch).item() == pytest.approx(0.25)
    # The full paper loss against an independent SSIM map.
    w = 0.8 * batch["cloud_mask"] + 0.2 * (1 - batch["cloud_mask"])
    smap = ref_ssim_map(pred, batch["target"])
    expected = (w.double() * (0.5 * 0.25 + 0.5 * (1 - smap))).mean()
    assert CARFLoss()(pred, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_carf_uniform_weight_normalisation():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    plain = CARFLoss(alpha=0.5)(pred, batch)
    normed = CARFLoss(alpha=0.5, normalize_weights=True)(pred, batch)
    torch.testing.assert_close(normed, 2 * plain)
    unweighted = 0.5 * PixelMSELoss()(pred, batch) + 0.5 * SSIMLoss()(pred, batch)
    torch.testing.assert_close(normed, unweighted, rtol=1e-5, atol=1e-7)


def test_carf_reads_mask_key():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    batch["carf_mask"] = 1 - batch["cloud_mask"]
    a = CARFLoss(mask_key="carf_mask")(pred, batch)
    b = CARFLoss(alpha=0.2)(pred, batch)  # swapping M and 1 - M is alpha -> 1 - alpha
    torch.testing.assert_close(a, b)


def test_carf_code_masked_term_averages_over_all_pixels():
    shape = (1, 3, 4, 4)
    pred = torch.zeros(shape)
    batch = {"target": torch.ones(shape), "cloud_mask": _mask_quarter()}
    loss = CARFCodeLoss(ssim_weight=0.0)
    # 2.0 * (1/4 of the elements have error 1 -> 0.25) + 0.5 * 1.0
    assert loss(pred, batch).item() == pytest.approx(1.0)
    assert loss.last_terms["masked_l1"].item() == pytest.approx(0.25)
    batch["target"] = torch.full(shape, 2.0)
    mse = CARFCodeLoss(ssim_weight=0.0, pixel_loss="mse")
    assert mse(pred, batch).item() == pytest.approx(2.0 * 0.5 + 0.5 * 4.0)
    assert CARFCodeLoss(pixel_loss="MAE").pixel_loss == "l1"


def test_carf_code_matches_official_formula():
    batch = make_batch(b=2, c=13, h=17, w=23, dtype=torch.float64)
    pred = torch.rand_like(batch["target"])
    gt, m = batch["target"], (batch["cloud_mask"] != 0).double().expand_as(pred)
    expected = (
        2.0 * F.l1_loss(pred * m, gt * m)
        + 0.5 * F.l1_loss(pred, gt)
        + 0.5 * (1 - ref_ssim_map(pred, gt, eps=1e-8).mean())
    )
    torch.testing.assert_close(CARFCodeLoss()(pred, batch), expected, rtol=1e-10, atol=1e-12)
    # Shadows are not part of M.
    batch["shadow_mask"] = torch.ones_like(batch["shadow_mask"])
    torch.testing.assert_close(CARFCodeLoss()(pred, batch), expected, rtol=1e-10, atol=1e-12)


def test_ssim_loss_equals_one_minus_metric():
    batch = make_batch(dtype=torch.float64)
    pred = (batch["target"] + 0.1 * torch.randn_like(batch["target"])).clamp(0, 1)
    metric = image_metrics(pred, batch["target"], protocol="uncrtaints")["ssim"].mean()
    torch.testing.assert_close(SSIMLoss()(pred, batch), 1 - metric, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        SSIMLoss()(pred, batch), 1 - ref_ssim_map(pred, batch["target"]).mean()
    )


def test_ssim_data_range():
    batch = make_batch(dtype=torch.float64)
    pred = torch.rand_like(batch["target"])
    b5 = {"target": 5 * batch["target"]}
    # SSIM is invariant to a common rescaling when L is rescaled with the data.
    torch.testing.assert_close(SSIMLoss(data_range=5.0)(5 * pred, b5), SSIMLoss()(pred, batch))


def test_l1_ssim_is_weighted_sum():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    l1, ssim = PixelL1Loss()(pred, batch), SSIMLoss()(pred, batch)
    torch.testing.assert_close(L1SSIMLoss()(pred, batch), l1 + ssim)
    torch.testing.assert_close(
        L1SSIMLoss(l1_weight=2.0, ssim_weight=0.5)(pred, batch), 2 * l1 + 0.5 * ssim
    )


# --------------------------------------------------------------------------- generic properties


@pytest.mark.parametrize("name", ["l1", "mse", "ssim", "l1_ssim", "carf"])
def test_zero_for_identical_images(name):
    batch = make_batch(invalid_fraction=0.1)
    assert build_loss(name)(batch["target"].clone(), batch).item() == 0.0


def test_carf_code_near_zero_for_identical_images():
    batch = make_batch()
    # The official +1e-8 in the SSIM denominator keeps 1 - SSIM slightly above 0.
    assert 0.0 <= CARFCodeLoss()(batch["target"].clone(), batch).item() < 1e-5


@pytest.mark.parametrize("name", PRED_ONLY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_flow_and_dtype(name, dtype):
    batch = make_batch(b=2, c=13, h=17, w=23, dtype=dtype, invalid_fraction=0.1)
    pred = torch.rand(2, 13, 17, 23, dtype=dtype, requires_grad=True)
    loss = build_loss(name)(pred, batch)
    assert loss.ndim == 0 and loss.dtype == dtype and torch.isfinite(loss)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    valid = batch["valid_mask"].expand_as(pred)
    assert pred.grad[valid].abs().sum() > 0
    assert (pred.grad[~valid] == 0).all()


@pytest.mark.parametrize("name", PRED_ONLY)
def test_float32_and_float64_agree(name):
    b64 = make_batch(dtype=torch.float64, invalid_fraction=0.1)
    b32 = {k: v.float() if v.is_floating_point() else v for k, v in b64.items()}
    pred = torch.rand(2, 13, 17, 23, dtype=torch.float64)
    loss = build_loss(name)
    torch.testing.assert_close(
        loss(pred.float(), b32).double(), loss(pred, b64), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("name", PRED_ONLY)
def test_invalid_pixels_are_ignored(name):
    batch = make_batch(invalid_fraction=0.2, seed=3)
    pred = torch.rand_like(batch["target"])
    loss = build_loss(name)
    ref = loss(pred, batch)
    invalid = ~batch["valid_mask"].expand_as(pred)
    assert invalid.any()
    changed = pred.clone()
    changed[invalid] = 100.0
    torch.testing.assert_close(loss(changed, batch), ref, rtol=0, atol=0)
    # NaN anywhere in an invalid pixel (prediction, target, cloudy input) changes nothing.
    nan_batch = dict(batch)
    for key in ("target", "optical"):
        t = batch[key].clone()
        t[invalid] = math.nan
        nan_batch[key] = t
    p = pred.clone()
    p[invalid] = math.nan
    p.requires_grad_(True)
    out = loss(p, nan_batch)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out.backward()
    assert torch.isfinite(p.grad).all() and (p.grad[invalid] == 0).all()


@pytest.mark.parametrize("name", PRED_ONLY)
def test_missing_valid_mask_means_all_valid(name):
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    without = {k: v for k, v in batch.items() if k != "valid_mask"}
    as_float = dict(batch, valid_mask=batch["valid_mask"].float())
    loss = build_loss(name)
    torch.testing.assert_close(loss(pred, without), loss(pred, batch))
    torch.testing.assert_close(loss(pred, as_float), loss(pred, batch))


@pytest.mark.parametrize("name", PRED_ONLY)
def test_no_valid_pixel_gives_zero(name):
    batch = make_batch()
    batch["valid_mask"] = torch.zeros_like(batch["valid_mask"])
    pred = torch.rand_like(batch["target"], requires_grad=True)
    loss = build_loss(name)(pred, batch)
    assert loss.item() == 0.0
    loss.backward()
    assert (pred.grad == 0).all()


@pytest.mark.parametrize("name", PRED_ONLY)
def test_half_precision_prediction(name):
    batch = make_batch()
    pred = torch.rand_like(batch["target"]).bfloat16().requires_grad_(True)
    loss = build_loss(name)(pred, batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert pred.grad.dtype == torch.bfloat16 and torch.isfinite(pred.grad.float()).all()


def test_masks_as_bool_or_3d_and_soft_masks_binarised():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    ref = CARLLoss()(pred, batch)
    alt = dict(batch, cloud_mask=batch["cloud_mask"].bool(), shadow_mask=batch["shadow_mask"][:, 0])
    torch.testing.assert_close(CARLLoss()(pred, alt), ref)
    soft = dict(batch, cloud_mask=batch["cloud_mask"] * 0.9, shadow_mask=batch["shadow_mask"] * 0.6)
    torch.testing.assert_close(CARLLoss()(pred, soft), ref)


def test_missing_key_and_bad_shapes_raise_config_error():
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    with pytest.raises(ConfigError, match="'optical'"):
        CARLLoss()(pred, {k: v for k, v in batch.items() if k != "optical"})
    with pytest.raises(ConfigError, match="'cloud_mask'"):
        CARFLoss()(pred, {"target": batch["target"]})
    with pytest.raises(ConfigError, match="target"):
        PixelL1Loss()(pred[:, :3], batch)
    with pytest.raises(ConfigError, match="cloud_mask"):
        CARFLoss()(pred, dict(batch, cloud_mask=batch["cloud_mask"][..., :5]))
    with pytest.raises(ConfigError):
        PixelL1Loss()(pred[0], batch)


def test_last_terms_are_detached_components():
    batch = make_batch()
    pred = torch.rand_like(batch["target"], requires_grad=True)
    loss = CARFCodeLoss()
    total = loss(pred, batch)
    terms = loss.last_terms
    assert set(terms) == {"masked_l1", "pixel_l1", "one_minus_ssim"}
    assert all(not t.requires_grad for t in terms.values())
    recomposed = 2.0 * terms["masked_l1"] + 0.5 * terms["pixel_l1"] + 0.5 * terms["one_minus_ssim"]
    torch.testing.assert_close(total.detach(), recomposed)


@pytest.mark.parametrize("name", ["ssim", "carf"])
def test_autocast_does_not_lower_precision(name):
    batch = make_batch()
    pred = torch.rand_like(batch["target"])
    loss = build_loss(name)
    ref = loss(pred, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(pred, batch)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


# --------------------------------------------------------------------------- model outputs
@pytest.mark.parametrize("name", PRED_ONLY)
def test_model_output_is_read_as_its_prediction(name):
    """``loss(output, batch)`` with a ModelOutput equals ``loss(output.pred, batch)``; a
    variance (or stages) the loss does not use changes nothing."""
    batch = make_batch(invalid_fraction=0.1)
    pred = torch.rand_like(batch["target"])
    loss = build_loss(name)
    ref = loss(pred, batch)
    out = ModelOutput(pred=pred, variance=torch.rand_like(pred), stages=(pred * 2,))
    torch.testing.assert_close(loss(out, batch), ref, rtol=0, atol=0)


# --------------------------------------------------------------------------- gaussian nll
def _nll_batch():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mean = torch.tensor([[[[0.0, 2.0], [1.0, 4.0]]]])
    var = torch.tensor([[[[1.0, 0.5], [2.0, 4.0]]]])
    return ModelOutput(pred=mean, variance=var), {"target": target}


def test_gaussian_nll_hand_values():
    out, batch = _nll_batch()
    # 0.5 (log var + d^2 / var): (0 + 1) / 2, (log .5 + 0) / 2, (log 2 + 2) / 2, (log 4 + 0) / 2
    per = [0.5, 0.5 * math.log(0.5), 0.5 * (math.log(2.0) + 2.0), 0.5 * math.log(4.0)]
    loss = build_loss("gaussian_nll")
    assert loss(out, batch).item() == pytest.approx(sum(per) / 4)
    assert loss.last_terms["variance"].item() == pytest.approx(7.5 / 4)
    batch["valid_mask"] = torch.tensor([[[[True, False], [True, True]]]])
    assert loss(out, batch).item() == pytest.approx((per[0] + per[2] + per[3]) / 3)
    clamped = GaussianNLLLoss(min_variance=2.0)(out, {"target": batch["target"]})
    per_clamped = [0.5 * (math.log(2.0) + 0.5), 0.5 * math.log(2.0), per[2], per[3]]
    assert clamped.item() == pytest.approx(sum(per_clamped) / 4)


def test_gaussian_nll_invalid_pixels_gradients_and_errors():
    batch = make_batch(invalid_fraction=0.2, seed=5)
    mean = torch.rand_like(batch["target"])
    var = torch.rand_like(mean) + 0.05
    loss = build_loss("gaussian_nll")
    ref = loss(ModelOutput(pred=mean, variance=var), batch)
    invalid = ~batch["valid_mask"].expand_as(mean)
    m, v = mean.clone(), var.clone()
    m[invalid], v[invalid] = math.nan, math.nan
    m.requires_grad_(True)
    v.requires_grad_(True)
    out = loss(ModelOutput(pred=m, variance=v), batch)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out.backward()
    for g in (m.grad, v.grad):
        assert torch.isfinite(g).all() and (g[invalid] == 0).all() and g[~invalid].abs().sum() > 0
    with pytest.raises(ConfigError, match="'gaussian_nll' needs the model's variance output"):
        loss(mean, batch)
    with pytest.raises(ConfigError, match="'gaussian_nll' needs the model's variance output"):
        loss(ModelOutput(pred=mean), batch)
    with pytest.raises(ConfigError, match="the variance has shape"):
        loss(ModelOutput(pred=mean, variance=var[:, :3]), batch)
    with pytest.raises(ConfigError, match="min_variance"):
        build_loss("gaussian_nll", min_variance=0.0)
    assert GaussianNLLLoss.uses_variance and not PixelL1Loss.uses_variance


# --------------------------------------------------------------------------- GAN losses
def test_gan_losses_hand_values():
    assert list_gan_losses() == ["bce", "hinge", "lsgan"] == sorted(GAN_LOSSES)
    real = torch.tensor([[[[2.0, 0.0]]]])
    fake = torch.tensor([[[[-1.0, 0.5]]]])
    ls = build_gan_loss("lsgan")
    # D: 0.5 (mean((2-1)^2, (0-1)^2) + mean(1, 0.25)) = 0.5 (1 + 0.625); G: mean(4, 0.25)
    assert ls.discriminator(real, fake).item() == pytest.approx(0.5 * (1.0 + 0.625))
    assert ls.generator(fake).item() == pytest.approx(2.125)
    hinge = build_gan_loss("hinge")
    # D: 0.5 (mean(relu(-1), relu(1)) + mean(relu(0), relu(1.5))) = 0.5 (0.5 + 0.75)
    assert hinge.discriminator(real, fake).item() == pytest.approx(0.625)
    assert hinge.generator(fake).item() == pytest.approx(0.25)
    bce = build_gan_loss("BCE")

    def sp(x):  # softplus: -log sigmoid(-x)
        return math.log1p(math.exp(x))

    d = 0.5 * ((sp(-2.0) + sp(0.0)) / 2 + (sp(-1.0) + sp(0.5)) / 2)
    assert bce.discriminator(real, fake).item() == pytest.approx(d)
    assert bce.generator(fake).item() == pytest.approx((sp(1.0) + sp(-0.5)) / 2)
    with pytest.raises(ConfigError, match="unknown GAN loss 'wgan'; valid: bce, hinge, lsgan"):
        build_gan_loss("wgan")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ls.generator(fake.bfloat16()).dtype == torch.float32


# --------------------------------------------------------------------------- declared keys
_KEY_VARIANTS = {
    "carl": [{}, {"include_shadow": False}],
    "carf": [{}, {"mask_key": "shadow_mask"}],
    "carf_code": [{}],
}


@pytest.mark.parametrize("name", PRED_ONLY)
def test_each_loss_reads_exactly_its_declared_batch_keys(name):
    """The data module decides from ``batch_keys()`` whether to run the cloud detector, so a
    loss must work with target, valid_mask and its declared keys only, and fail without any
    of the declared ones."""
    full = make_batch()
    pred = torch.rand_like(full["target"])
    for kwargs in _KEY_VARIANTS.get(name, [{}]):
        loss = build_loss(name, **kwargs)
        keys = loss.batch_keys()
        assert keys <= set(full), keys
        batch = {k: full[k] for k in {"target", "valid_mask", *keys}}
        assert torch.isfinite(loss(pred, batch))
        for key in keys:
            short = {k: v for k, v in batch.items() if k != key}
            with pytest.raises(ConfigError, match=f"needs batch key '{key}'"):
                loss(pred, short)


def test_mask_reading_losses_declare_the_masks():
    assert build_loss("carl").batch_keys() == {"optical", "cloud_mask", "shadow_mask"}
    assert build_loss("carl", include_shadow=False).batch_keys() == {"optical", "cloud_mask"}
    assert build_loss("carf").batch_keys() == {"cloud_mask"}
    for name in ("l1", "mse", "ssim", "l1_ssim", "gaussian_nll"):
        assert build_loss(name).batch_keys() == frozenset(), name


def test_gnll_is_torchs_full_gaussian_nll_on_scaled_values():
    """The official GNLL is torch's gaussian_nll_loss (full, eps 1e-8) on scale_by-scaled
    values; its clamp lets the gradient through (straight-through), gaussian_nll's does not."""
    batch = make_batch(seed=3)
    mean = torch.rand_like(batch["target"])
    var = torch.rand_like(mean) * 0.01 + 1e-4
    for scale in (1.0, 10.0):
        ref = F.gaussian_nll_loss(
            scale * mean, scale * batch["target"], scale**2 * var, full=True, eps=1e-8
        )
        got = build_loss("gnll", scale=scale)(ModelOutput(pred=mean, variance=var), batch)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    tiny = torch.full_like(mean, 1e-12, requires_grad=True)
    build_loss("gnll")(ModelOutput(pred=mean, variance=tiny), batch).backward()
    assert tiny.grad is not None and bool((tiny.grad != 0).all())
    with pytest.raises(ConfigError, match="scale"):
        build_loss("gnll", scale=0.0)


def test_l2_is_the_official_name_of_mse():
    batch = make_batch(invalid_fraction=0.1, seed=4)
    pred = torch.rand_like(batch["target"])
    assert build_loss("l2")(pred, batch) == build_loss("mse")(pred, batch)
