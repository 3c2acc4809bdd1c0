"""Discriminators for adversarial training, in a small registry of their own.

A discriminator maps an image (optionally with its conditioning inputs) to real/fake logits.
They live apart from the model registry because they are no cloud-removal models: they take
no :class:`~cloudfree.models.ModelBatch`, have no spec, no weights of their own to publish and
are only built by the training engine's adversarial task.

* :func:`register_discriminator` registers a class under a name,
  :func:`create_discriminator` builds one (arguments checked against the constructor's
  signature first, with a :class:`~cloudfree.errors.ConfigError` naming the valid ones),
  :func:`check_discriminator_kwargs` checks arguments without building (no random numbers
  drawn), :func:`discriminator_min_size` gives the smallest input it takes (so that a crop
  too small is refused before training), :func:`list_discriminators` lists the names.
* ``patchgan``: :class:`PatchGANDiscriminator`, the N-layer PatchGAN of pix2pix (Isola et al.,
  CVPR 2017), written from the paper's description.
* ``spa_gan``: :class:`SpAGANDiscriminator`, SpA-GAN's conditional discriminator (official
  ``models/dis/dis.py``), two input branches for the condition and the image (see the class).

Choices for ``patchgan`` (documented here because they differ between pix2pix variants):

* layers: ``conv 4x4 stride 2`` + LeakyReLU(0.2) without normalisation, then
  ``num_layers - 1`` blocks ``conv 4x4 stride 2`` + norm + LeakyReLU(0.2) doubling the width
  (capped at 8x), one ``conv 4x4 stride 1`` + norm + LeakyReLU(0.2) and a final
  ``conv 4x4 stride 1`` to one channel: one logit per overlapping patch (70x70 receptive field
  for ``num_layers=3``). Padding 1 everywhere.
* ``norm="instance"`` by default (InstanceNorm without affine parameters, as CycleGAN): it does
  not depend on the batch size (batches of 1-2 crops, per-rank batches under DDP) and keeps no
  running statistics; ``"batch"`` (pix2pix's default) and ``"none"`` are available. Convolutions
  before a batch norm have no bias.
* weights drawn from N(0, 0.02), biases 0, batch-norm scales from N(1, 0.02) (pix2pix's
  ``init_type='normal'``).
* input: ``cat([condition, image], dim=1)`` (conditional GAN: the cloudy optical input, with
  SAR when the model uses it, then the real or generated image); ``in_channels`` is their
  total. Inputs smaller than ``3 * 2**num_layers`` pixels are refused (the last two stride-1
  convolutions would have nothing left to look at).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from cloudfree.errors import ConfigError

__all__ = [
    "PatchGANDiscriminator",
    "SpAGANDiscriminator",
    "check_discriminator_kwargs",
    "create_discriminator",
    "discriminator_min_size",
    "list_discriminators",
    "register_discriminator",
]

_DISCRIMINATORS: dict[str, type[nn.Module]] = {}

_D = TypeVar("_D", bound=type[nn.Module])

_NORMS = ("instance", "batch", "none")


def register_discriminator(name: str) -> Callable[[_D], _D]:
    """Class decorator registering a discriminator class under ``name``."""

    def decorator(cls: _D) -> _D:
        if name in _DISCRIMINATORS:
            raise ConfigError(f"discriminator {name!r} is already registered")
        _DISCRIMINATORS[name] = cls
        return cls

    return decorator


def list_discriminators() -> list[str]:
    """Registered discriminator names, sorted."""
    return sorted(_DISCRIMINATORS)


def _get(name: str) -> type[nn.Module]:
    cls = _DISCRIMINATORS.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown discriminator {name!r}; registered: {', '.join(list_discriminators())}"
        )
    return cls


def check_discriminator_kwargs(name: str, **kwargs: Any) -> None:
    """Raise :class:`ConfigError` for an unknown ``name`` or arguments its constructor does not
    take (or required ones missing), naming the valid arguments; builds nothing."""
    cls = _get(name)
    sig = inspect.signature(cls.__init__)
    try:
        sig.bind(None, **kwargs)
    except TypeError as exc:
        valid = [p for p in sig.parameters if p != "self"]
        raise ConfigError(
            f"bad arguments for discriminator {name!r}: {exc}; valid arguments: {', '.join(valid)}"
        ) from None


def discriminator_min_size(name: str, **kwargs: Any) -> int:
    """The smallest input height / width discriminator ``name`` built with ``kwargs`` takes
    (a class's ``min_input_size(**kwargs)`` static method; 1 when it has none)."""
    check_discriminator_kwargs(name, **kwargs)
    fn = getattr(_get(name), "min_input_size", None)
    if fn is None:
        return 1
    params = inspect.signature(fn).parameters
    return int(fn(**{k: v for k, v in kwargs.items() if k in params}))


def create_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Build registered discriminator ``name`` (see :func:`check_discriminator_kwargs`)."""
    check_discriminator_kwargs(name, **kwargs)
    return _get(name)(**kwargs)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"PatchGANDiscriminator: {name} must be an integer >= 1, got {value!r}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


@register_discriminator("patchgan")
class PatchGANDiscriminator(nn.Module):
    """pix2pix's N-layer PatchGAN (see the module docstring for the design).

    Args:
        in_channels: channels of ``cat([condition, image])``.
        width: channels of the first convolution (64 in pix2pix).
        num_layers: stride-2 convolutions (3 in pix2pix: 70x70 patches).
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
    """

    def __init__(
        self, in_channels: int, width: int = 64, num_layers: int = 3, norm: str = "instance"
    ) -> None:
        super().__init__()
        for arg, value in (
            ("in_channels", in_channels),
            ("width", width),
            ("num_layers", num_layers),
        ):
            _check_positive(arg, value)
        if norm not in _NORMS:
            raise ConfigError(
                f"PatchGANDiscriminator: norm must be one of {', '.join(_NORMS)}, got {norm!r}"
            )
        self.in_channels = in_channels
        self.num_layers = num_layers
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, num_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < num_layers else 1
            layers += [
                nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
                _norm(norm, width * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self._init_weights()

    @staticmethod
    def min_input_size(num_layers: int = 3) -> int:
        """The smallest input height / width with ``num_layers`` (one logit comes out)."""
        _check_positive("num_layers", num_layers)
        return 3 * 2**num_layers

    @property
    def min_size(self) -> int:
        """:meth:`min_input_size` of this discriminator."""
        return self.min_input_size(self.num_layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        """Patch logits ``[B, 1, h, w]`` of ``cat([condition, image])``."""
        x = image if condition is None else torch.cat([condition, image.to(condition.dtype)], 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"PatchGANDiscriminator: expects [B, {self.in_channels}, H, W] = "
                f"cat([condition, image]), got {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ConfigError(
                f"PatchGANDiscriminator with num_layers={self.num_layers} needs inputs of at "
                f"least {self.min_size}x{self.min_size} pixels, got {tuple(x.shape[-2:])}; "
                "use larger crops or fewer layers"
            )
        return self.net(x)


_SPA_GAN_HALVINGS = 4  # c0 (both branches), c1, c2, c3: 4x4 convs of stride 2


@register_discriminator("spa_gan")
class SpAGANDiscriminator(nn.Module):
    """SpA-GAN's discriminator (official ``models/dis/dis.py``, ``_Discriminator``).

    The input ``cat([condition, image])`` is split again: the condition (the cloudy input,
    ``adversarial.condition: optical``, as the official ``train.py`` feeds ``cat(real_a,
    fake_b)``) and the image each go through a ``conv 4x4 stride 2`` (to ``width`` channels,
    with bias) + LeakyReLU(0.2) without normalisation; the two maps are concatenated
    (condition first) and go through three ``conv 4x4 stride 2`` + norm + LeakyReLU(0.2)
    blocks (``2 width -> 4 width -> 8 width -> 16 width``: 64 -> 128 -> 256 -> 512 for the
    official ``width`` 32; these convolutions keep their bias before the norm, as the
    official ones) and a final ``conv 3x3 stride 1`` (padding 1) to one logit per patch:
    ``[B, 1, H/16, W/16]`` (floor at each halving).

    Official facts kept: batch norm (``norm="batch"``, affine), LeakyReLU slope 0.2, the
    official ``weights_init`` (conv weights from N(0, 0.02), conv biases left at PyTorch's
    default, batch-norm scales from N(1, 0.02) and shifts 0). ``norm`` may also be
    ``"instance"`` (no affine parameters) or ``"none"``. 2,762,945 parameters for
    ``in_channels=6`` (RGB condition and image) and ``width=32``.

    Args:
        in_channels: channels of ``cat([condition, image])`` (set by the trainer).
        image_channels: channels of the image (the generator's output); None: half of
            ``in_channels`` (a condition with the image's bands, the official 3 + 3). The
            rest is the condition, which must have at least one channel (this discriminator
            is conditional).
        width: channels of each input branch (official 32).
        norm: ``"batch"`` (official), ``"instance"`` or ``"none"``.

    Inputs smaller than :meth:`min_input_size` are refused: 16 pixels without a norm (four
    halvings leave one logit), 32 with one, so that the last norm layer sees at least 2 x 2
    values per channel (instance norm needs more than one, batch norm too at the official
    batch size of 1).
    """

    def __init__(
        self,
        in_channels: int,
        image_channels: int | None = None,
        width: int = 32,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        owner = "SpAGANDiscriminator"
        for arg, value in (("in_channels", in_channels), ("width", width)):
            _check_positive(arg, value)
        if image_channels is None:
            if in_channels % 2:
                raise ConfigError(
                    f"{owner}: in_channels {in_channels} is odd, so the image's share cannot be "
                    "inferred; set discriminator_kwargs.image_channels (the generator's output "
                    "channels)"
                )
            image_channels = in_channels // 2
        _check_positive("image_channels", image_channels)
        if image_channels >= in_channels:
            raise ConfigError(
                f"{owner}: is conditional: in_channels ({in_channels}) must exceed "
                f"image_channels ({image_channels}) by the condition's channels (set "
                "adversarial.condition: optical)"
            )
        if norm not in _NORMS:
            raise ConfigError(f"{owner}: norm must be one of {', '.join(_NORMS)}, got {norm!r}")
        self.in_channels = in_channels
        self.image_channels = image_channels
        self.condition_channels = in_channels - image_channels
        self.norm = norm
        slope = 0.2
        self.condition_in = nn.Sequential(
            nn.Conv2d(self.condition_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
        )
        self.image_in = nn.Sequential(
            nn.Conv2d(image_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
        )
        layers: list[nn.Module] = []
        for mult in (2, 4, 8):  # 2 width -> 4 width -> 8 width -> 16 width
            layers += [
                nn.Conv2d(mult * width, 2 * mult * width, 4, stride=2, padding=1),
                _norm(norm, 2 * mult * width),
                nn.LeakyReLU(slope, inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(16 * width, 1, 3, stride=1, padding=1)
        self._init_weights()

    @staticmethod
    def min_input_size(norm: str = "batch") -> int:
        """The smallest input height / width (see the class docstring)."""
        one_logit = 2**_SPA_GAN_HALVINGS
        return one_logit if norm == "none" else 2 * one_logit

    @property
    def min_size(self) -> int:
        """:meth:`min_input_size` of this discriminator."""
        return self.min_input_size(self.norm)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        """Patch logits ``[B, 1, H/16, W/16]`` of the image given its condition."""
        owner = "SpAGANDiscriminator"
        if condition is None:
            raise ConfigError(
                f"{owner}: needs the condition (the cloudy input, adversarial.condition: "
                "optical) next to the image"
            )
        condition = condition.to(image.dtype)
        if (
            image.ndim != 4
            or condition.ndim != 4
            or image.shape[1] != self.image_channels
            or condition.shape[1] != self.condition_channels
        ):
            raise ConfigError(
                f"{owner}: expects an image [B, {self.image_channels}, H, W] and a condition "
                f"[B, {self.condition_channels}, H, W], got {tuple(image.shape)} and "
                f"{tuple(condition.shape)}"
            )
        if min(image.shape[-2:]) < self.min_size:
            raise ConfigError(
                f"{owner} with norm={self.norm!r} needs inputs of at least "
                f"{self.min_size}x{self.min_size} pixels, got {tuple(image.shape[-2:])}; "
                "use larger crops"
            )
        h = torch.cat([self.condition_in(condition), self.image_in(image)], dim=1)
        return self.head(self.body(h))
