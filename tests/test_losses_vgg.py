"""VGG16 feature extractor, perceptual / style losses and CA-MTCR's loss (paper 002).

The VGG16 weights are random (kaiming-normal, so activations keep their scale through the 13
convolutions), written in torchvision's ``vgg16`` layout with a fake classifier key. References
are written here independently: a plain ``nn.Sequential`` from VGG16's layer list, Gram
matrices with ``einsum`` and the ImageNet normalisation by hand.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.losses import CAMTCRLoss, PerceptualLoss, StyleLoss, build_loss
from cloudfree.losses.perceptual import gram_matrix
from cloudfree.losses.vgg import (
    VGG16_CONV_INDICES,
    VGG16Features,
    load_vgg16_features,
    read_vgg16_weights,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALL5 = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
#: VGG16 ("D"): conv widths, "M" = 2x2 max-pool; written out independently of the package
LAYER_LIST = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
#: the tapped ReLU's index in torchvision's features
TAP_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 18, "relu5_1": 25}
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)


def _random_vgg_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    vgg = VGG16Features(complete=True)
    for m in vgg.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.normal_(m.bias, std=0.05)
    return {k: v.clone() for k, v in vgg.state_dict().items()}


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    return _random_vgg_state()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory, vgg_state) -> Path:
    """torchvision's layout: ``features.*`` plus the classifier (one fake key)."""
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save({**vgg_state, "classifier.0.weight": torch.zeros(4, 8)}, path)
    return path


def reference_sequential(state: dict[str, torch.Tensor], depth: int) -> nn.Sequential:
    """VGG16's first ``depth`` layers as a plain Sequential, weights by torchvision index."""
    layers: list[nn.Module] = []
    c = 3
    for v in LAYER_LIST:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            conv = nn.Conv2d(c, v, 3, padding=1)
            i = len(layers)
            with torch.no_grad():
                conv.weight.copy_(state[f"features.{i}.weight"])
                conv.bias.copy_(state[f"features.{i}.bias"])
            layers += [conv, nn.ReLU()]
            c = v
    return nn.Sequential(*layers[:depth]).double()


def reference_features(state, x: torch.Tensor, taps) -> dict[str, torch.Tensor]:
    seq = reference_sequential(state, max(TAP_INDEX[t] for t in taps) + 1)
    out, h = {}, x.double()
    for i, layer in enumerate(seq):
        h = layer(h)
        for t in taps:
            if TAP_INDEX[t] == i:
                out[t] = h
    return out


def ref_gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    return torch.einsum("bchw,bdhw->bcd", f, f) / (c * h * w)


def ref_vgg_input(img: torch.Tensor, bands=(3, 2, 1), scale=1.0, imagenet=True):
    x = img[:, list(bands)].double() * scale
    return (x - MEAN) / STD if imagenet else x


def make_batch(b=2, c=13, h=16, w=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, c, h, w, generator=g, dtype=dtype)
    pred = (target + 0.1 * torch.randn(b, c, h, w, generator=g, dtype=dtype)).clamp(0, 1)
    return pred, {"target": target}


# --------------------------------------------------------------------------- the extractor


def test_state_dict_is_torchvisions_features_layout():
    vgg = VGG16Features(complete=True)
    keys = list(vgg.state_dict())
    assert keys == [f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")]
    assert VGG16_CONV_INDICES == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert len(vgg.features) == 31
    # torchvision's vgg16 has 138,357,544 parameters, 14,714,688 of them in ``features``
    assert sum(p.numel() for p in vgg.parameters()) == 14_714_688
    shapes = {k: tuple(v.shape) for k, v in vgg.state_dict().items()}
    assert shapes["features.0.weight"] == (64, 3, 3, 3)
    assert shapes["features.28.weight"] == (512, 512, 3, 3)
    assert isinstance(vgg.features[30], nn.MaxPool2d)


def test_only_layers_up_to_the_deepest_tap_are_built():
    assert len(VGG16Features(["relu2_1"]).features) == 7
    assert len(VGG16Features("relu4_1,relu1_1").features) == 19
    assert len(VGG16Features().features) == 26  # relu5_1 is index 25
    assert [k for k in VGG16Features(["relu3_1"]).state_dict()][-1] == "features.10.bias"


def test_taps_match_an_independent_sequential(vgg_state):
    vgg = VGG16Features(ALL5)
    vgg.load_state_dict({k: vgg_state[k] for k in vgg.state_dict()})
    vgg.double()
    x = torch.randn(1, 3, 16, 32, dtype=torch.float64)
    ours = vgg(x)
    ref = reference_features(vgg_state, x, ALL5)
    assert list(ours) == ALL5
    for t in ALL5:
        torch.testing.assert_close(ours[t], ref[t], rtol=1e-10, atol=1e-10)
    assert ours["relu5_1"].shape == (1, 512, 1, 2)
    assert ours["relu3_1"].shape == (1, 256, 4, 8)
    # a shorter extractor gives the same activations
    short = VGG16Features(["relu2_1"])
    short.load_state_dict({k: vgg_state[k] for k in short.state_dict()})
    torch.testing.assert_close(short.double()(x)["relu2_1"], ref["relu2_1"])


def test_frozen_and_always_in_eval_mode():
    vgg = VGG16Features(["relu1_1"])
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    vgg(x)["relu1_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_input_shape_and_minimum_size():
    vgg = VGG16Features()
    with pytest.raises(ConfigError, match=r"\[B, 3, H, W\]"):
        vgg(torch.rand(1, 4, 16, 16))
    with pytest.raises(ConfigError, match="at least 16 x 16 pixels"):
        vgg(torch.rand(1, 3, 8, 16))
    with pytest.raises(ConfigError, match="unknown VGG16 layer 'relu6_1'"):
        VGG16Features(["relu6_1"])


# --------------------------------------------------------------------------- the weights file


def test_reads_torchvision_file_ignoring_the_classifier(vgg_file, vgg_state):
    weights = read_vgg16_weights(vgg_file)
    assert set(weights) == set(vgg_state)  # classifier.0.weight dropped
    vgg = load_vgg16_features(vgg_file, ["relu3_1"])
    for k, v in vgg.state_dict().items():
        assert torch.equal(v, vgg_state[k]), k
    assert not any(p.requires_grad for p in vgg.parameters())


def test_reads_legacy_serialisation_and_wrapped_state(tmp_path, vgg_state):
    # torchvision's 2017 files predate the zip format
    legacy = tmp_path / "legacy.pth"
    torch.save(vgg_state, legacy, _use_new_zipfile_serialization=False)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in vgg_state.items()}}, wrapped)
    for path in (legacy, wrapped):
        got = load_vgg16_features(path, ["relu1_1"]).state_dict()
        assert torch.equal(got["features.0.weight"], vgg_state["features.0.weight"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("features.28.weight"), r"missing 1 key \(features\.28\.weight\)"),
        (
            lambda s: s.__setitem__("features.0.weight", torch.zeros(64, 4, 3, 3)),
            r"features\.0\.weight: file \[64, 4, 3, 3\], model \[64, 3, 3, 3\]",
        ),
        (
            lambda s: s.__setitem__("features.1.running_mean", torch.zeros(64)),
            "vgg16_bn",
        ),
    ],
)
def test_wrong_keys_or_shapes_are_refused_naming_the_file(tmp_path, vgg_state, edit, match):
    state = dict(vgg_state)
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(InputFileError, match=match) as e:
        read_vgg16_weights(path)
    assert str(e.value).startswith(str(path.resolve()))
    assert "vgg16-397923af.pth" in str(e.value)
    with pytest.raises(ConfigError, match=f"loss 'ca_mtcr': vgg_weights: .*bad.pth.*{match}"):
        build_loss("ca_mtcr", vgg_weights=str(path))


def test_unreadable_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match="junk.pth: not a readable PyTorch checkpoint"):
        build_loss("perceptual", vgg_weights=junk)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(ConfigError, match="resnet.pth: not torchvision's VGG16 state dict"):
        build_loss("style", vgg_weights=other)


def test_missing_weights_say_which_file_and_where(tmp_path):
    for kwargs in ({}, {"vgg_weights": None}, {"vgg_weights": str(tmp_path / "nope.pth")}):
        for name in ("ca_mtcr", "perceptual", "style"):
            with pytest.raises(ConfigError) as e:
                build_loss(name, **kwargs)
            msg = str(e.value)
            assert "\n" not in msg
            assert f"loss {name!r}" in msg and "vgg16-397923af.pth" in msg
            assert "~/.cache/torch/hub/checkpoints/" in msg
            assert 'torchvision.models.vgg16(weights="IMAGENET1K_V1")' in msg
            assert "loss.kwargs.vgg_weights=PATH" in msg
    with pytest.raises(ConfigError, match="nope.pth not found"):
        build_loss("ca_mtcr", vgg_weights=str(tmp_path / "nope.pth"))


# --------------------------------------------------------------------------- Gram and values


def test_gram_matrix_hand_values():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # B=1, C=2, H=1, W=2
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4.0  # / (C H W)
    torch.testing.assert_close(gram_matrix(f), expected)
    g = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(g), ref_gram(g))
    with pytest.raises(ConfigError):
        gram_matrix(torch.zeros(2, 3, 4))


def test_perceptual_value_against_reference(vgg_file, vgg_state):
    pred, batch = make_batch(dtype=torch.float64)
    loss = PerceptualLoss(vgg_weights=vgg_file)
    pf = reference_features(vgg_state, ref_vgg_input(pred), ALL5)
    tf = reference_features(vgg_state, ref_vgg_input(batch["target"]), ALL5)
    expected = sum((pf[t] - tf[t]).abs().mean() for t in ALL5)
    out = loss(pred, batch)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=0)
    assert set(loss.last_terms) == {"perceptual"}
    assert loss(batch["target"], batch).item() == 0.0


@pytest.mark.parametrize("norm", ["l1", "frobenius2"])
@pytest.mark.parametrize("layers", [["relu4_1", "relu5_1"], ALL5])
def test_style_value_both_norms_and_layer_sets(vgg_file, vgg_state, norm, layers):
    pred, batch = make_batch(dtype=torch.float64, seed=1)
    loss = StyleLoss(vgg_weights=vgg_file, style_layers=layers, style_norm=norm)
    pf = reference_features(vgg_state, ref_vgg_input(pred), layers)
    tf = reference_features(vgg_state, ref_vgg_input(batch["target"]), layers)
    diffs = [ref_gram(pf[t]) - ref_gram(tf[t]) for t in layers]
    if norm == "l1":
        expected = sum(d.abs().sum() / d.numel() for d in diffs)
    else:
        expected = sum((d**2).sum() / d.numel() for d in diffs)
    torch.testing.assert_close(loss(pred, batch), expected, rtol=1e-9, atol=0)


def test_style_defaults_are_eq15_l1():
    for cls in (StyleLoss, CAMTCRLoss):
        params = inspect.signature(cls.__init__).parameters
        assert tuple(params["style_layers"].default) == ("relu4_1", "relu5_1")
        assert params["style_norm"].default == "l1"
    assert tuple(
        inspect.signature(PerceptualLoss.__init__).parameters["perceptual_layers"].default
    ) == tuple(ALL5)


def test_ca_mtcr_is_2_l1_plus_perceptual_plus_250_style(vgg_file):
    pred, batch = make_batch(seed=2)
    full = CAMTCRLoss(vgg_weights=vgg_file)
    assert (full.l1_weight, full.perceptual_weight, full.style_weight) == (2.0, 1.0, 250.0)
    total = full(pred, batch)
    l1 = (pred - batch["target"]).abs().mean()
    perceptual = PerceptualLoss(vgg_weights=vgg_file)(pred, batch)
    style = StyleLoss(vgg_weights=vgg_file)(pred, batch)
    terms = full.last_terms
    assert set(terms) == {"l1", "perceptual", "style"}
    torch.testing.assert_close(terms["l1"], l1)
    torch.testing.assert_close(terms["perceptual"], perceptual)
    torch.testing.assert_close(terms["style"], style)
    torch.testing.assert_close(total, 2 * l1 + perceptual + 250 * style)
    assert style > 0 and perceptual > 0
    other = build_loss(
        "ca_mtcr",
        vgg_weights=vgg_file,
        l1_weight=0.5,
        perceptual_weight=3.0,
        style_weight=10.0,
        style_layers=ALL5,
        style_norm="frobenius2",
    )
    style5 = StyleLoss(vgg_weights=vgg_file, style_layers=ALL5, style_norm="frobenius2")
    torch.testing.assert_close(
        other(pred, batch), 0.5 * l1 + 3.0 * perceptual + 10.0 * style5(pred, batch)
    )


def test_ca_mtcr_builds_vgg_only_as_deep_as_its_layers(vgg_file):
    shallow = CAMTCRLoss(
        vgg_weights=vgg_file, perceptual_layers=["relu1_1"], style_layers=["relu2_1"]
    )
    assert len(shallow.vgg.features) == 7
    assert len(CAMTCRLoss(vgg_weights=vgg_file).vgg.features) == 26
    pred, batch = make_batch(h=4, w=4)  # 2 px per side suffice for relu2_1
    assert torch.isfinite(shallow(pred, batch))


# --------------------------------------------------------------------------- bands, inputs


def test_only_the_vgg_bands_feed_vgg(vgg_file):
    pred, batch = make_batch(seed=3)
    loss = PerceptualLoss(vgg_weights=vgg_file)
    base = loss(pred, batch)
    other = pred.clone()
    other[:, [0, 4, 5, 6, 7, 8, 9, 10, 11, 12]] = torch.rand(2, 10, 16, 16)
    torch.testing.assert_close(loss(other, batch), base, rtol=0, atol=0)
    changed = pred.clone()
    changed[:, 2] += 0.2  # B03
    assert loss(changed, batch) != base
    by_index = PerceptualLoss(vgg_weights=vgg_file, vgg_bands=[3, 2, 1])
    assert by_index.vgg_bands == loss.vgg_bands == (3, 2, 1)
    torch.testing.assert_close(by_index(pred, batch), base, rtol=0, atol=0)
    assert PerceptualLoss(vgg_weights=vgg_file, vgg_bands="rgb").vgg_bands == (3, 2, 1)


def test_normalisation_and_scale_options(vgg_file, vgg_state):
    pred, batch = make_batch(dtype=torch.float64, seed=4)
    for scale, imagenet in ((1.0, True), (3.0, True), (2.0, False)):
        loss = PerceptualLoss(
            vgg_weights=vgg_file,
            perceptual_layers=["relu1_1"],
            vgg_bands=[7, 3, 2],
            vgg_input_scale=scale,
            vgg_normalize="imagenet" if imagenet else "none",
        )
        f = [
            reference_features(vgg_state, ref_vgg_input(x, (7, 3, 2), scale, imagenet), ["relu1_1"])
            for x in (pred, batch["target"])
        ]
        expected = (f[0]["relu1_1"] - f[1]["relu1_1"]).abs().mean()
        torch.testing.assert_close(loss(pred, batch), expected, rtol=1e-9, atol=0)


def test_band_set_of_a_subset_and_absent_bands(vgg_file):
    sub = PerceptualLoss(vgg_weights=vgg_file, bands="B02,B03,B04,B08")
    assert sub.vgg_bands == (2, 1, 0)
    pred4, batch4 = make_batch(c=4)
    assert torch.isfinite(sub(pred4, batch4))
    pred13, batch13 = make_batch()
    with pytest.raises(ConfigError, match="prediction has 13 bands; set loss.kwargs.bands"):
        sub(pred13, batch13)
    # default names are looked up in the 13 L1C bands: a 4-band prediction is refused
    with pytest.raises(ConfigError, match=r"band set \['B01', .*\(13 bands\).*has 4 bands"):
        PerceptualLoss(vgg_weights=vgg_file)(pred4, batch4)
    with pytest.raises(ConfigError, match="band 'B11' is not in this S2_L1C band set"):
        PerceptualLoss(vgg_weights=vgg_file, vgg_bands=["B08", "B04", "B11"], bands="B02,B04,B08")
    with pytest.raises(ConfigError, match="need at least 13 prediction bands, got 4"):
        PerceptualLoss(vgg_weights=vgg_file, vgg_bands=[12, 1, 0])(pred4, batch4)
    with pytest.raises(ConfigError, match="outside"):
        PerceptualLoss(vgg_weights=vgg_file, vgg_bands=[4, 1, 0], bands="B02,B03,B04,B08")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("ca_mtcr", {"style_norm": "l2"}, "style_norm must be one of l1, frobenius2"),
        ("style", {"style_layers": ["relu6_1"]}, "style_layers: unknown VGG16 layer"),
        ("perceptual", {"perceptual_layers": ["relu1_1", "relu1_1"]}, "listed twice"),
        ("perceptual", {"perceptual_layers": []}, "at least one VGG16 layer"),
        ("perceptual", {"perceptual_layers": [1, 2]}, "list of VGG16 layer names"),
        ("ca_mtcr", {"vgg_bands": ["B04", "B03"]}, "vgg_bands must be 3"),
        ("ca_mtcr", {"vgg_bands": [True, 2, 1]}, "vgg_bands must be 3"),
        ("ca_mtcr", {"vgg_bands": [-1, 2, 1]}, "outside"),
        ("ca_mtcr", {"bands": "B04,B99"}, "bands: unknown band 'B99'"),
        ("ca_mtcr", {"style_weight": -1.0}, "style_weight"),
        ("ca_mtcr", {"l1_weight": "2"}, "l1_weight must be a number"),
        ("ca_mtcr", {"vgg_input_scale": 0.0}, "vgg_input_scale"),
        ("style", {"vgg_normalize": "caffe"}, "vgg_normalize must be one of imagenet, none"),
        ("ca_mtcr", {"vgg_weights": 3}, "vgg_weights must be a file path"),
    ],
)
def test_bad_options(vgg_file, name, kwargs, match):
    kwargs = {"vgg_weights": str(vgg_file), **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_loss(name, **kwargs)


def test_small_images_are_a_config_error(vgg_file):
    pred, batch = make_batch(h=8, w=8)
    with pytest.raises(ConfigError, match="loss 'ca_mtcr': VGG16 layer relu5_1 needs .* 16 x 16"):
        CAMTCRLoss(vgg_weights=vgg_file)(pred, batch)


# --------------------------------------------------------------------------- gradients, masks


def test_gradients_reach_pred_only_and_vgg_is_not_a_parameter(vgg_file):
    loss = CAMTCRLoss(vgg_weights=vgg_file)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    assert list(loss.children()) == []
    pred, batch = make_batch(seed=5)
    pred.requires_grad_(True)
    loss(pred, batch).backward()
    assert pred.grad is not None and pred.grad[:, [3, 2, 1]].abs().sum() > 0
    assert pred.grad[:, 0].abs().sum() > 0  # the L1 term reaches every band
    assert all(p.grad is None and not p.requires_grad for p in loss.vgg.parameters())
    assert "vgg_weights=" in repr(loss) and "style_weight=250.0" in repr(loss)


def test_invalid_pixels(vgg_file):
    loss = CAMTCRLoss(vgg_weights=vgg_file)
    pred, batch = make_batch(seed=6)
    valid = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    valid[:, :, 4:9, 2:7] = False
    batch["valid_mask"] = valid
    base = loss(pred, batch)
    other = pred.clone()
    other[~valid.expand_as(pred)] = 7.0  # prediction values there never count
    noisy_target = dict(batch, target=batch["target"].masked_fill(~valid, float("nan")))
    torch.testing.assert_close(loss(other, noisy_target), base, rtol=0, atol=0)
    p = pred.clone().requires_grad_(True)
    loss(p, batch).backward()
    assert p.grad is not None and p.grad.masked_select(~valid.expand_as(p)).abs().max() == 0
    batch["valid_mask"] = torch.zeros_like(valid)
    q = pred.clone().requires_grad_(True)
    zero = loss(q, batch)
    assert zero.item() == 0.0
    zero.backward()
    assert q.grad is not None and q.grad.abs().max() == 0


def test_float64_and_autocast(vgg_file):
    loss = CAMTCRLoss(vgg_weights=vgg_file)
    pred, batch = make_batch(seed=7)
    ref = loss(pred, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(pred, batch)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out64 = loss(pred.double(), {"target": batch["target"].double()})
    assert out64.dtype == torch.float64
    assert next(loss.vgg.parameters()).dtype == torch.float64  # follows the prediction
    torch.testing.assert_close(out64.float(), ref, rtol=1e-4, atol=0)


def test_first_call_in_inference_mode_leaves_usable_weights(vgg_file):
    """Lightning's sanity validation (inference mode) may be the first call that moves the
    extractor (to the GPU; here to float64): later training steps must still backpropagate."""
    loss = CAMTCRLoss(vgg_weights=vgg_file)
    pred, batch = make_batch(seed=8, dtype=torch.float64)
    with torch.inference_mode():
        loss(pred, batch)
    assert not any(p.is_inference() for p in loss.vgg.parameters())
    p = pred.clone().requires_grad_(True)
    loss(p, batch).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


# --------------------------------------------------------------------------- training engine


def test_train_fails_before_training_without_vgg_weights(tmp_path):
    from cloudfree.train import train
    from train_helpers import tiny_config

    (tmp_path / "data").mkdir()
    for kwargs in ({}, {"vgg_weights": str(tmp_path / "missing.pth")}):
        cfg = tiny_config(
            tmp_path / "data", tmp_path / "run", loss__name="ca_mtcr", loss__kwargs=kwargs
        )
        with pytest.raises(ConfigError, match=r"^loss: loss 'ca_mtcr': .*vgg16-397923af\.pth"):
            train(cfg)
        assert not (tmp_path / "run").exists()


def test_training_module_holds_no_vgg_weights(tmp_path, vgg_file):
    from cloudfree.train.module import CloudRemovalModule
    from train_helpers import tiny_config

    cfg = tiny_config(
        tmp_path,
        tmp_path / "run",
        loss__name="ca_mtcr",
        loss__kwargs={"vgg_weights": str(vgg_file)},
    )
    module = CloudRemovalModule(cfg)
    assert isinstance(module.loss_fn, CAMTCRLoss)
    assert not [k for k in module.state_dict() if not k.startswith("model.")]
    n_model = sum(p.numel() for p in module.model.parameters())
    assert sum(p.numel() for p in module.parameters()) == n_model
    module.double()  # moving the module leaves the hidden extractor alone until it is used
    assert next(module.loss_fn.vgg.parameters()).dtype == torch.float32


@pytest.mark.usefixtures("quiet_lightning")
def test_tiny_training_logs_the_terms_and_checkpoints_no_vgg(tmp_path, vgg_file):
    import csv

    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.train import train
    from train_helpers import tiny_config

    root = tmp_path / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=6, size=16, seed=0)
    cfg = tiny_config(
        root,
        tmp_path / "run",
        loss__name="ca_mtcr",
        loss__kwargs={"vgg_weights": str(vgg_file)},
        trainer__max_steps=2,
    )
    run = train(cfg)
    with open(run.run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"train/loss", "train/l1", "train/perceptual", "train/style"} <= set(rows[0])
    ckpt = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"] and all(k.startswith("model.") for k in ckpt["state_dict"])
