"""A frozen VGG16 feature extractor in torchvision's key layout, for the perceptual losses.

:class:`VGG16Features` is our own module (no torchvision import): the convolutional part of
VGG16 (configuration "D" of Simonyan & Zisserman: 13 3x3 convolutions with padding 1, each
followed by a ReLU, and a 2x2 max-pool of stride 2 after the 2nd, 4th, 7th, 10th and 13th)
held as ``self.features``, an :class:`torch.nn.Sequential` whose indices are torchvision's.
Its state dict therefore uses torchvision's keys ``features.<i>.weight`` / ``features.<i>.bias``
for the convolutions at indices 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26 and 28, and loads
torchvision's ``vgg16`` ImageNet state dict (file ``vgg16-397923af.pth``).

Taps (:data:`VGG16_TAPS`) are the outputs of the first ReLU of each block: ``relu1_1`` (index
1), ``relu2_1`` (6), ``relu3_1`` (11), ``relu4_1`` (18) and ``relu5_1`` (25). The module is
built only up to the deepest tap asked for, so the layers after it are never computed (and
their weights never loaded); ``complete=True`` builds all 31 layers (torchvision's whole
``features``), e.g. to write a file in torchvision's layout.

Weights come only from a file the user supplies (:func:`read_vgg16_weights`); nothing is ever
downloaded. torchvision's file also holds ``classifier.*`` (the fully connected head): every
key outside ``features.*`` is ignored. A file whose ``features.*`` keys or shapes are not
VGG16's (another VGG depth, the batch-normalised ``vgg16_bn``, another network) is refused with
an :class:`~cloudfree.errors.InputFileError` naming the file and the mismatch.

The module is frozen: its parameters have ``requires_grad`` False and it stays in eval mode
(``train()`` is a no-op; VGG16's convolutional part has neither dropout nor batch norm, so
this only documents intent). Gradients still flow through it to its input.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from cloudfree.errors import ConfigError, InputFileError

__all__ = [
    "VGG16_CONV_INDICES",
    "VGG16_FILE_NAME",
    "VGG16_TAPS",
    "VGG16_WEIGHTS_HINT",
    "VGG16Features",
    "load_vgg16_features",
    "parse_vgg16_layers",
    "read_vgg16_weights",
]

#: torchvision's VGG16 configuration "D": output channels of each 3x3 conv, ``"M"`` = max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip

#: Tap name -> index in ``features`` of the ReLU whose output is tapped.
VGG16_TAPS: dict[str, int] = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu3_1": 11,
    "relu4_1": 18,
    "relu5_1": 25,
}

#: Indices of the 13 convolutions in torchvision's ``vgg16().features``.
VGG16_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

#: The file name torchvision gives its ImageNet VGG16 weights (``IMAGENET1K_V1``).
VGG16_FILE_NAME = "vgg16-397923af.pth"

#: Where the weights come from, for error messages (one line).
VGG16_WEIGHTS_HINT = (
    f"torchvision's ImageNet VGG16 state dict ({VGG16_FILE_NAME}), usually found in "
    "~/.cache/torch/hub/checkpoints/ after running "
    'torchvision.models.vgg16(weights="IMAGENET1K_V1") once on a machine with internet access '
    "(cloudfree never downloads it)"
)


def _vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_channels = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            # inplace like torchvision: every tapped ReLU output is read only by the next
            # conv or pool, which never modify their input, so the taps stay intact
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return layers


def parse_vgg16_layers(taps: str | Iterable[str]) -> tuple[str, ...]:
    """Tap names (a sequence or a comma-separated string, case-insensitive) as a tuple in the
    given order. Raises :class:`ConfigError` for an unknown or repeated name or none at all."""
    items = [t for t in taps.split(",")] if isinstance(taps, str) else list(taps)
    out: list[str] = []
    for t in items:
        key = t.strip().lower() if isinstance(t, str) else t
        if key not in VGG16_TAPS:
            raise ConfigError(f"unknown VGG16 layer {t!r}; valid layers: {', '.join(VGG16_TAPS)}")
        if key in out:
            raise ConfigError(f"VGG16 layer {key!r} is listed twice in {items}")
        out.append(key)
    if not out:
        raise ConfigError(
            f"at least one VGG16 layer is needed; valid layers: {', '.join(VGG16_TAPS)}"
        )
    return tuple(out)


class VGG16Features(nn.Module):
    """The convolutional part of VGG16, frozen, returning the activations of ``taps``.

    Args:
        taps: tap names (:data:`VGG16_TAPS`; a sequence or a comma-separated string). The
            module ends at the deepest one (unless ``complete``).
        complete: build all 31 layers of torchvision's ``features`` (its state dict is then
            exactly the ``features.*`` part of torchvision's ``vgg16`` state dict).

    ``forward(x [B, 3, H, W]) -> {tap: [B, C_tap, H / 2^k, W / 2^k]}`` with ``k`` the number of
    max-pools before the tap (0 for ``relu1_1`` ... 4 for ``relu5_1``); ``H`` and ``W`` must be
    at least ``2^k`` of the deepest tap. The input is used as given: scaling and ImageNet
    normalisation are the caller's (see :mod:`cloudfree.losses.perceptual`). Weights are
    PyTorch's default initialisation until loaded (:func:`load_vgg16_features`).
    """

    def __init__(self, taps: str | Iterable[str] = tuple(VGG16_TAPS), complete: bool = False):
        super().__init__()
        self.taps = parse_vgg16_layers(taps)
        self.tap_indices = {VGG16_TAPS[t]: t for t in self.taps}
        last = max(self.tap_indices)
        layers = _vgg16_layers()
        self.features = nn.Sequential(*(layers if complete else layers[: last + 1]))
        self._last_tap = last
        #: max-pools before the deepest tap: inputs need at least 2**pools pixels per side
        self.pools = sum(isinstance(m, nn.MaxPool2d) for m in layers[:last])
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        """Always eval mode (the extractor is frozen); ``mode`` is ignored."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"taps={list(self.taps)}"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ConfigError(f"VGG16 needs a [B, 3, H, W] input, got shape {tuple(x.shape)}")
        side = 2**self.pools
        if x.shape[2] < side or x.shape[3] < side:
            raise ConfigError(
                f"VGG16 layer {self.tap_indices[self._last_tap]} needs images of at least "
                f"{side} x {side} pixels ({self.pools} max-pools), got "
                f"{x.shape[2]} x {x.shape[3]}"
            )
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.tap_indices:
                out[self.tap_indices[i]] = x
            if i == self._last_tap:
                break
        return out


@functools.lru_cache(maxsize=2)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    from cloudfree.models.official import read_official_state_dict
    from cloudfree.models.state import describe_state_mismatch

    state = read_official_state_dict(path, map_location="cpu")  # weights_only=True
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    with torch.device("meta"):
        reference = VGG16Features(complete=True)
    problem = describe_state_mismatch(reference, features)
    if problem is None:
        bad = [k for k, v in features.items() if not v.is_floating_point()]
        problem = f"non-float tensors {bad[:4]}" if bad else None
    if problem is not None:
        hint = (
            " (batch-norm statistics: a vgg16_bn file?)"
            if any(k.endswith(("running_mean", "running_var")) for k in features)
            else ""
        )
        raise InputFileError(
            path,
            f"not torchvision's VGG16 state dict: its features.* part {problem}{hint}; "
            f"expected {VGG16_WEIGHTS_HINT}",
        )
    # own float32 copies: the rest of the file (the 123 M classifier weights) is released
    return {k: v.detach().to(torch.float32).clone() for k, v in features.items()}


def read_vgg16_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The 26 ``features.*`` tensors (float32, CPU) of a torchvision ``vgg16`` state dict file.

    Read with ``torch.load(path, map_location="cpu", weights_only=True)`` (through
    :func:`cloudfree.models.official.read_official_state_dict`, which also unwraps ``{"state_dict":
    ...}`` and ``module.`` prefixes); keys outside ``features.*`` (``classifier.*``) are
    ignored. The result is cached per (path, modification time, size), at most two files, so
    that the several places of a training run that build the loss read the file once; callers
    must not modify the returned tensors (:func:`load_vgg16_features` copies them).

    Raises:
        InputFileError: the file is missing, unreadable, or its ``features.*`` keys or shapes
            are not VGG16's (the message names the file and the mismatch).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputFileError(p, f"VGG16 weights file not found; expected {VGG16_WEIGHTS_HINT}")
    st = p.stat()
    return _read_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def load_vgg16_features(
    path: str | os.PathLike[str], taps: str | Iterable[str] = tuple(VGG16_TAPS)
) -> VGG16Features:
    """A frozen :class:`VGG16Features` for ``taps`` with the weights of the file ``path``
    (:func:`read_vgg16_weights`), on the CPU in float32. Only the layers up to the deepest
    tap are loaded. Raises :class:`InputFileError` as :func:`read_vgg16_weights` does.

    The module is built on the meta device and given its own copies of the (cached) weights,
    so no random initialisation is computed: a training run builds its loss several times."""
    weights: Mapping[str, torch.Tensor] = read_vgg16_weights(path)
    with torch.device("meta"):
        vgg = VGG16Features(taps)
    state = {k: weights[k].clone() for k in vgg.state_dict()}
    vgg.load_state_dict(state, strict=True, assign=True)
    return vgg.requires_grad_(False)
