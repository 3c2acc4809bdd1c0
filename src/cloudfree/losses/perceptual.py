"""VGG16 perceptual (feature reconstruction) and style losses, and CA-MTCR's loss (paper 002).

Paper 002 (CA-MTCR, section 3.4) trains with ``L = lambda1 L_l1 + lambda2 L_fr + lambda3 L_sr``,
``lambda = 2, 1, 250`` (eq. 16, section 4.1):

* ``L_l1 = ||I_hat - I_cf||_1`` (eq. 13);
* ``L_fr = sum_l ||Phi_l(I_hat) - Phi_l(I_cf)||_1`` over VGG16 ``relu1_1 ... relu5_1``
  (eq. 14; "L within L_fr and L_sr is set to 5");
* ``L_sr = sum_{l=4}^{L} ||G(Phi_l(I_hat)) - G(Phi_l(I_cf))||_1`` (eq. 15), while the text
  calls it "the squared Frobenius norm of the difference between the Gram matrices".

What the paper leaves open or states twice, and what we decided (all are options):

* **Style layers** (``style_layers``): eq. 15 sums ``l = 4 ... L`` with ``L = 5``, i.e.
  ``relu4_1`` and ``relu5_1``; one can also read the text's "L within L_fr and L_sr is set to
  5" as "all five layers in both". Default: eq. 15's two layers. The equation is the only
  place that writes the range of the style sum, its lower bound 4 differs on purpose from
  eq. 14's 1, and the text's ``L = 5`` is the upper bound that both equations share, which
  eq. 15 does not contradict. The text's reading is ``style_layers: [relu1_1, relu2_1,
  relu3_1, relu4_1, relu5_1]``.
* **Style norm** (``style_norm``): ``"l1"`` (eq. 15, default) or ``"frobenius2"`` (the text's
  squared Frobenius norm). Both are *per-element means* over the ``B x C x C`` Gram entries
  (``||dG||_1 / C^2`` and ``||dG||_F^2 / C^2`` per image, averaged over the batch), like the
  feature term's mean. The literal sums would be ``C^2`` (262,144 at ``relu4_1``) times
  larger. The weights 1 (features) and 250 (style), the five ``relu*_1`` feature layers and the
  ``C H W``-normalised Gram are those of EdgeConnect's losses (knazeri/edge-connect,
  ``src/loss.py`` and ``config.yml.example``: mean L1 of the features, mean L1 of the Grams,
  style weight 250), which paper 002's loss matches up to its VGG16 (EdgeConnect: VGG19)
  and its style layers. That is why the L1 mean is the default.
* **Gram normalisation**: ``G = F F^T / (C H W)`` for the features ``F`` of one image reshaped to
  ``[C, H W]`` (EdgeConnect's and Johnson et al.'s normalisation), so a layer's Gram does not
  grow with the image size.
* **Feature term**: per layer, the mean of ``|Phi_l(pred) - Phi_l(target)|`` over batch,
  channels and positions, summed over the layers with weight 1 each.
* **Which bands feed VGG16** (``vgg_bands``): VGG16 takes 3 channels; default B04, B03, B02 as
  R, G, B (true colour, the channels ImageNet weights know). Names are resolved in ``bands``
  (default: the 13 Sentinel-2 L1C bands in product order, what ``ca_mtcr`` predicts, where
  B04, B03, B02 are channels 3, 2, 1); a loss does not see the data's band set, so a recipe
  that trains on a band subset sets ``loss.kwargs.bands`` to ``data.bands`` (the loss then
  checks that the prediction has that many bands) or gives ``vgg_bands`` as channel indices.
* **VGG input normalisation**: reflectance in [0, 1] (the ``uncrtaints`` protocol's S2 / 10000,
  paper 002's scaling) is taken as an RGB image in [0, 1] (``vgg_input_scale`` 1, an option
  to brighten the dark reflectance) and normalised with ImageNet's mean (0.485, 0.456, 0.406)
  and std (0.229, 0.224, 0.225), the preprocessing torchvision's VGG16 weights were trained
  with (``vgg_normalize: imagenet``, default); ``none`` feeds the scaled values as they are
  (EdgeConnect's practice). Values are not clipped (a clip would stop the gradient).
* **Frozen VGG16**: ImageNet weights from a file the user supplies (``vgg_weights``,
  :mod:`cloudfree.losses.vgg`); without one the loss cannot be built (a one-line
  :class:`~cloudfree.errors.ConfigError` says which file and where it is usually found; the
  training engine builds the loss in its config check, before any data is read).
* **Invalid pixels** (``valid_mask``): as in every loss (:mod:`cloudfree.losses._common`),
  prediction and target are zeroed there; the L1 term is a mean over valid pixels. The VGG
  input is additionally set to 0 *after* the ImageNet normalisation at invalid pixels (so they
  look like the convolutions' zero padding), identically for prediction and target. The VGG
  terms are global (means over all feature positions, Grams over whole images), so an invalid
  pixel contributes only through the receptive fields of valid neighbours and the prediction's
  gradient there is exactly 0; a batch without a valid pixel gives 0.

Where the VGG16 lives: the loss keeps the extractor *outside* the module tree (it is not a
registered submodule), so it appears in neither ``parameters()`` nor ``state_dict()`` of the
loss or of the training module that holds the loss: it is never optimised, never written into
a run's checkpoints or exported weights, and never counted in model summaries. It follows the
prediction's device and dtype at each call instead (moved once, on the first call). Resuming
a run rebuilds it from the same ``vgg_weights`` file. The move runs outside inference mode,
so a first call from a validation loop (inference mode) leaves weights that training steps can
use. Target features are computed without autograd; the VGG forward runs in float32 (float64
for float64 predictions) with autocast off, like every loss of :mod:`cloudfree.losses`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss
from cloudfree.losses.vgg import (
    VGG16_FILE_NAME,
    VGG16_TAPS,
    VGG16_WEIGHTS_HINT,
    VGG16Features,
    load_vgg16_features,
    parse_vgg16_layers,
)

__all__ = [
    "ALL_VGG_LAYERS",
    "CAMTCRLoss",
    "DEFAULT_STYLE_LAYERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PerceptualLoss",
    "STYLE_NORMS",
    "StyleLoss",
    "gram_matrix",
]

#: ``relu1_1 ... relu5_1``: the feature layers of eq. 14 (and the text's style layers).
ALL_VGG_LAYERS: tuple[str, ...] = tuple(VGG16_TAPS)
#: eq. 15's style layers ``l = 4 ... 5``.
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu4_1", "relu5_1")
#: ``style_norm`` values: eq. 15's L1 and the text's squared Frobenius norm (both as means).
STYLE_NORMS: tuple[str, ...] = ("l1", "frobenius2")
VGG_NORMALIZE: tuple[str, ...] = ("imagenet", "none")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Default VGG input: true colour from the 13 L1C bands.
DEFAULT_VGG_BANDS: tuple[str, ...] = ("B04", "B03", "B02")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``G = F F^T / (C H W)`` per image: ``[B, C, H, W] -> [B, C, C]``."""
    if features.ndim != 4:
        raise ConfigError(f"gram_matrix needs [B, C, H, W] features, got {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * h * w)


def _usual_location() -> Path:
    return Path.home() / ".cache" / "torch" / "hub" / "checkpoints" / VGG16_FILE_NAME


def _missing_weights(owner: str, problem: str) -> ConfigError:
    found = _usual_location()
    extra = f"; a copy exists at {found}" if found.is_file() else ""
    return ConfigError(
        f"loss {owner!r}: {problem}: set loss.kwargs.vgg_weights=PATH (--set "
        f"loss.kwargs.vgg_weights=PATH) to {VGG16_WEIGHTS_HINT}{extra}"
    )


def _layers(owner: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, str) and not (
        isinstance(value, Iterable) and all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(
            f"loss {owner!r}: {key} must be a list of VGG16 layer names "
            f"({', '.join(VGG16_TAPS)}), got {value!r}"
        )
    try:
        return parse_vgg16_layers(value)
    except ConfigError as exc:
        raise ConfigError(f"loss {owner!r}: {key}: {exc}") from None


def _choice(owner: str, key: str, value: Any, choices: Sequence[str]) -> str:
    v = value.strip().lower() if isinstance(value, str) else value
    if v not in choices:
        raise ConfigError(
            f"loss {owner!r}: {key} must be one of {', '.join(choices)}, got {value!r}"
        )
    return v


def _resolve_bands(
    owner: str, vgg_bands: Any, bands: Any
) -> tuple[tuple[int, int, int], tuple[str, ...] | None]:
    """Channel indices of ``vgg_bands`` and the band names the prediction must have (None:
    any prediction with enough channels, for indices without ``bands``)."""
    from cloudfree.bands import get_band_set

    if isinstance(vgg_bands, str):
        vgg_bands = (
            DEFAULT_VGG_BANDS
            if vgg_bands.strip().lower() == "rgb"
            else [s for s in vgg_bands.split(",") if s.strip()]
        )
    ok = isinstance(vgg_bands, Sequence) and all(
        isinstance(b, str) or (isinstance(b, int) and not isinstance(b, bool)) for b in vgg_bands
    )
    if not ok or len(vgg_bands) != 3:
        raise ConfigError(
            f"loss {owner!r}: vgg_bands must be 3 band names or channel indices (R, G, B fed "
            f"to VGG16, e.g. [B04, B03, B02] or [3, 2, 1]), got {vgg_bands!r}"
        )
    try:
        band_set = get_band_set(bands)
    except ConfigError as exc:
        raise ConfigError(f"loss {owner!r}: bands: {exc}") from None
    names = band_set.names
    idx: list[int] = []
    for b in vgg_bands:
        if isinstance(b, str):
            try:
                idx.append(band_set.position(b))
            except ConfigError as exc:
                raise ConfigError(
                    f"loss {owner!r}: vgg_bands: {exc}; set loss.kwargs.bands to the data's "
                    "bands or give vgg_bands as channel indices"
                ) from None
        else:
            if b < 0 or (bands is not None and b >= len(names)):
                where = (
                    f"the {len(names)} bands {list(names)}" if bands is not None else "0, 1, ..."
                )
                raise ConfigError(f"loss {owner!r}: vgg_bands index {b} is outside {where}")
            idx.append(b)
    uses_names = any(isinstance(b, str) for b in vgg_bands)
    expected = names if (bands is not None or uses_names) else None
    return (idx[0], idx[1], idx[2]), expected


class _VGGLoss(CloudRemovalLoss):
    """Shared part of the VGG16 losses: options, the hidden frozen extractor, its inputs."""

    _vgg: VGG16Features  # set with object.__setattr__: not a submodule

    def __init__(
        self,
        *,
        vgg_weights: str | os.PathLike[str] | None,
        layers: tuple[str, ...],
        vgg_bands: Sequence[str | int],
        bands: str | Sequence[str] | None,
        vgg_input_scale: float,
        vgg_normalize: str,
    ) -> None:
        super().__init__()
        owner = self.name
        self.vgg_bands, self._expected_bands = _resolve_bands(owner, vgg_bands, bands)
        self.vgg_input_scale = check_float(
            owner, "vgg_input_scale", vgg_input_scale, low=0.0, low_open=True
        )
        self.vgg_normalize = _choice(owner, "vgg_normalize", vgg_normalize, VGG_NORMALIZE)
        if vgg_weights is None:
            raise _missing_weights(owner, "no VGG16 weights given")
        if not isinstance(vgg_weights, (str, os.PathLike)) or not str(vgg_weights).strip():
            raise ConfigError(
                f"loss {owner!r}: vgg_weights must be a file path, got {vgg_weights!r}"
            )
        path = Path(vgg_weights).expanduser()
        if not path.is_file():
            raise _missing_weights(owner, f"VGG16 weights file {path} not found")
        self.vgg_weights = str(path)
        try:
            vgg = load_vgg16_features(path, layers)
        except InputFileError as exc:
            raise ConfigError(f"loss {owner!r}: vgg_weights: {exc}") from None
        # outside the module tree on purpose: no parameters, no state dict (module docstring)
        object.__setattr__(self, "_vgg", vgg)

    @property
    def vgg(self) -> VGG16Features:
        """The frozen extractor (not a submodule: see the module docstring)."""
        return self._vgg

    def _base_repr(self) -> str:
        return (
            f"vgg_weights={self.vgg_weights!r}, vgg_bands={list(self.vgg_bands)}, "
            f"vgg_input_scale={self.vgg_input_scale}, vgg_normalize={self.vgg_normalize!r}"
        )

    def _vgg_input(self, image: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        x = image[:, list(self.vgg_bands)] * self.vgg_input_scale
        if self.vgg_normalize == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        if valid is not None:
            x = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
        return x

    def _check_channels(self, c: int) -> None:
        owner = self.name
        expected = self._expected_bands
        if expected is not None and c != len(expected):
            raise ConfigError(
                f"loss {owner!r}: vgg_bands are taken from the band set {list(expected)} "
                f"({len(expected)} bands), but the prediction has {c} bands; set "
                "loss.kwargs.bands to the data's bands (data.bands) or give vgg_bands as "
                "channel indices"
            )
        if max(self.vgg_bands) >= c:
            raise ConfigError(
                f"loss {owner!r}: vgg_bands {list(self.vgg_bands)} need at least "
                f"{max(self.vgg_bands) + 1} prediction bands, got {c}"
            )

    def features(self, x: PreparedBatch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """VGG16 features of the prediction (with autograd) and of the target (without)."""
        self._check_channels(x.pred.shape[1])
        vgg = self._vgg
        p = next(vgg.parameters())
        if p.device != x.pred.device or p.dtype != x.pred.dtype:
            # never as inference tensors: the first call may come from Lightning's validation
            # (inference mode), and autograd refuses inference-mode weights in training steps
            with torch.inference_mode(False):
                vgg.to(device=x.pred.device, dtype=x.pred.dtype)
        try:
            pred_features = vgg(self._vgg_input(x.pred, x.valid))
            with torch.no_grad():
                target_features = vgg(self._vgg_input(x.target, x.valid))
        except ConfigError as exc:
            raise ConfigError(f"loss {self.name!r}: {exc}") from None
        return pred_features, target_features


def _feature_term(
    pf: dict[str, torch.Tensor], tf: dict[str, torch.Tensor], layers: tuple[str, ...]
) -> torch.Tensor:
    return torch.stack([(pf[k] - tf[k]).abs().mean() for k in layers]).sum()


def _style_term(
    pf: dict[str, torch.Tensor], tf: dict[str, torch.Tensor], layers: tuple[str, ...], norm: str
) -> torch.Tensor:
    terms = []
    for k in layers:
        d = gram_matrix(pf[k]) - gram_matrix(tf[k])
        terms.append(d.abs().mean() if norm == "l1" else (d * d).mean())
    return torch.stack(terms).sum()


@register_loss("perceptual")
class PerceptualLoss(_VGGLoss):
    """VGG16 feature reconstruction loss ``sum_l mean |Phi_l(pred) - Phi_l(target)|``
    (paper 002's eq. 14; decisions in :mod:`cloudfree.losses.perceptual`).

    Args:
        vgg_weights: path of torchvision's ImageNet ``vgg16`` state dict file
            (``vgg16-397923af.pth``); required (nothing is downloaded).
        perceptual_layers: VGG16 layers (default ``relu1_1 ... relu5_1``).
        vgg_bands: the 3 bands fed to VGG16 as R, G, B: names in ``bands`` or channel indices
            of the prediction (default B04, B03, B02; ``"rgb"`` is the same).
        bands: the prediction's band set, where ``vgg_bands`` names are looked up (default:
            the 13 L1C bands); the prediction must then have exactly that many bands.
        vgg_input_scale: factor on the reflectance before the normalisation (default 1).
        vgg_normalize: ``"imagenet"`` (the mean/std of torchvision's weights, default) or
            ``"none"``.

    Batch keys: ``target`` (``valid_mask`` optional). Terms logged: ``perceptual``.
    """

    def __init__(
        self,
        vgg_weights: str | os.PathLike[str] | None = None,
        perceptual_layers: Sequence[str] = ALL_VGG_LAYERS,
        vgg_bands: Sequence[str | int] = DEFAULT_VGG_BANDS,
        bands: str | Sequence[str] | None = None,
        vgg_input_scale: float = 1.0,
        vgg_normalize: str = "imagenet",
    ) -> None:
        layers = _layers(self.name, "perceptual_layers", perceptual_layers)
        super().__init__(
            vgg_weights=vgg_weights,
            layers=layers,
            vgg_bands=vgg_bands,
            bands=bands,
            vgg_input_scale=vgg_input_scale,
            vgg_normalize=vgg_normalize,
        )
        self.perceptual_layers = layers

    def extra_repr(self) -> str:
        return f"perceptual_layers={list(self.perceptual_layers)}, {self._base_repr()}"

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pf, tf = self.features(x)
        loss = _feature_term(pf, tf, self.perceptual_layers)
        return loss, {"perceptual": loss}


@register_loss("style")
class StyleLoss(_VGGLoss):
    """VGG16 style loss ``sum_l mean |G(Phi_l(pred)) - G(Phi_l(target))|`` (or the mean
    squared difference) with ``G = F F^T / (C H W)`` (paper 002's eq. 15; decisions in
    :mod:`cloudfree.losses.perceptual`).

    Args:
        style_layers: VGG16 layers (default eq. 15's ``relu4_1``, ``relu5_1``; the text's
            reading is all five).
        style_norm: ``"l1"`` (eq. 15, default) or ``"frobenius2"`` (the text), both as means
            over the Gram entries.
        vgg_weights, vgg_bands, bands, vgg_input_scale, vgg_normalize: as for
            :class:`PerceptualLoss`.

    Batch keys: ``target`` (``valid_mask`` optional). Terms logged: ``style``.
    """

    def __init__(
        self,
        vgg_weights: str | os.PathLike[str] | None = None,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        style_norm: str = "l1",
        vgg_bands: Sequence[str | int] = DEFAULT_VGG_BANDS,
        bands: str | Sequence[str] | None = None,
        vgg_input_scale: float = 1.0,
        vgg_normalize: str = "imagenet",
    ) -> None:
        layers = _layers(self.name, "style_layers", style_layers)
        norm = _choice(self.name, "style_norm", style_norm, STYLE_NORMS)
        super().__init__(
            vgg_weights=vgg_weights,
            layers=layers,
            vgg_bands=vgg_bands,
            bands=bands,
            vgg_input_scale=vgg_input_scale,
            vgg_normalize=vgg_normalize,
        )
        self.style_layers = layers
        self.style_norm = norm

    def extra_repr(self) -> str:
        return (
            f"style_layers={list(self.style_layers)}, style_norm={self.style_norm!r}, "
            f"{self._base_repr()}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pf, tf = self.features(x)
        loss = _style_term(pf, tf, self.style_layers, self.style_norm)
        return loss, {"style": loss}


@register_loss("ca_mtcr")
class CAMTCRLoss(_VGGLoss):
    """CA-MTCR's loss ``l1_weight L1 + perceptual_weight L_fr + style_weight L_sr`` (paper
    002, eq. 16; 2, 1 and 250 by default, section 4.1).

    ``L1`` is :class:`~cloudfree.losses.PixelL1Loss` over all bands (the mean absolute error
    over valid pixels); ``L_fr`` is :class:`PerceptualLoss` and ``L_sr`` :class:`StyleLoss` on
    the ``vgg_bands``, computed from one VGG16 pass per image up to the deepest layer of
    either. Decisions and their sources: :mod:`cloudfree.losses.perceptual`.

    Args:
        l1_weight: ``lambda1`` (2.0).
        perceptual_weight: ``lambda2`` (1.0).
        style_weight: ``lambda3`` (250.0).
        perceptual_layers: layers of ``L_fr`` (``relu1_1 ... relu5_1``).
        style_layers: layers of ``L_sr`` (eq. 15's ``relu4_1``, ``relu5_1``).
        style_norm: ``"l1"`` (eq. 15, default) or ``"frobenius2"`` (the text).
        vgg_weights, vgg_bands, bands, vgg_input_scale, vgg_normalize: as for
            :class:`PerceptualLoss` (the recipe passes ``vgg_weights``).

    Batch keys: ``target`` (``valid_mask`` optional). Terms logged (unweighted): ``l1``,
    ``perceptual``, ``style``.
    """

    def __init__(
        self,
        vgg_weights: str | os.PathLike[str] | None = None,
        l1_weight: float = 2.0,
        perceptual_weight: float = 1.0,
        style_weight: float = 250.0,
        perceptual_layers: Sequence[str] = ALL_VGG_LAYERS,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        style_norm: str = "l1",
        vgg_bands: Sequence[str | int] = DEFAULT_VGG_BANDS,
        bands: str | Sequence[str] | None = None,
        vgg_input_scale: float = 1.0,
        vgg_normalize: str = "imagenet",
    ) -> None:
        owner = self.name
        weights = (
            check_float(owner, "l1_weight", l1_weight, low=0.0),
            check_float(owner, "perceptual_weight", perceptual_weight, low=0.0),
            check_float(owner, "style_weight", style_weight, low=0.0),
        )
        p_layers = _layers(owner, "perceptual_layers", perceptual_layers)
        s_layers = _layers(owner, "style_layers", style_layers)
        norm = _choice(owner, "style_norm", style_norm, STYLE_NORMS)
        union = tuple(t for t in VGG16_TAPS if t in p_layers or t in s_layers)
        super().__init__(
            vgg_weights=vgg_weights,
            layers=union,
            vgg_bands=vgg_bands,
            bands=bands,
            vgg_input_scale=vgg_input_scale,
            vgg_normalize=vgg_normalize,
        )
        self.l1_weight, self.perceptual_weight, self.style_weight = weights
        self.perceptual_layers = p_layers
        self.style_layers = s_layers
        self.style_norm = norm

    def extra_repr(self) -> str:
        return (
            f"l1_weight={self.l1_weight}, perceptual_weight={self.perceptual_weight}, "
            f"style_weight={self.style_weight}, perceptual_layers={list(self.perceptual_layers)}, "
            f"style_layers={list(self.style_layers)}, style_norm={self.style_norm!r}, "
            f"{self._base_repr()}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        l1 = x.mean((x.pred - x.target).abs())
        pf, tf = self.features(x)
        perceptual = _feature_term(pf, tf, self.perceptual_layers)
        style = _style_term(pf, tf, self.style_layers, self.style_norm)
        loss = self.l1_weight * l1 + self.perceptual_weight * perceptual + self.style_weight * style
        return loss, {"l1": l1, "perceptual": perceptual, "style": style}
