"""Adversarial (GAN) losses: the discriminator's and the generator's objective on patch logits.

A GAN loss is not a reconstruction loss: it does not see the batch but the discriminator's
logits (any shape, e.g. PatchGAN's ``[B, 1, h, w]``, every element one patch decision).
:func:`build_gan_loss` builds one by name; the training engine's adversarial task adds
``weight * loss.generator(D(fake))`` to the generator's reconstruction loss and trains the
discriminator on ``loss.discriminator(D(real), D(fake))``.

==========  ===========================================  ==================================
name        discriminator loss                           generator loss
==========  ===========================================  ==================================
``lsgan``   ``0.5 (mean (r - 1)^2 + mean f^2)``          ``mean (f - 1)^2`` (Mao et al.)
``bce``     ``0.5 (BCE(r, 1) + BCE(f, 0))``              ``BCE(f, 1)`` (non-saturating)
``hinge``   ``0.5 (mean relu(1 - r) + mean relu(1 + f))`` ``-mean f``
==========  ===========================================  ==================================

``r`` / ``f`` are the logits of real / generated images; BCE is on logits. The discriminator
loss is halved for every kind (pix2pix's convention), which only scales its gradient. Logits
are upcast to float32 (float64 stays) with autocast off.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError
from cloudfree.losses._common import _autocast_off, _work_dtype

__all__ = ["GAN_LOSSES", "GANLoss", "build_gan_loss", "list_gan_losses"]


class GANLoss(abc.ABC):
    """The two objectives of one GAN formulation (see the module docstring)."""

    name: ClassVar[str] = ""

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss on the logits of real and of generated images."""
        with _autocast_off(real.device):
            return 0.5 * self._discriminator(_up(real), _up(fake))

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss on the logits of its generated images."""
        with _autocast_off(fake.device):
            return self._generator(_up(fake))

    @abc.abstractmethod
    def _discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _generator(self, fake: torch.Tensor) -> torch.Tensor: ...


def _up(x: torch.Tensor) -> torch.Tensor:
    return x.to(_work_dtype(x.dtype))


class LSGANLoss(GANLoss):
    """Least squares GAN (targets 1 for real, 0 for generated)."""

    name = "lsgan"

    def _discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return ((real - 1.0) ** 2).mean() + (fake**2).mean()

    def _generator(self, fake: torch.Tensor) -> torch.Tensor:
        return ((fake - 1.0) ** 2).mean()


class BCEGANLoss(GANLoss):
    """The original GAN with the non-saturating generator loss (binary cross-entropy on
    logits)."""

    name = "bce"

    def _discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))

    def _generator(self, fake: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


class HingeGANLoss(GANLoss):
    """Hinge loss (geometric GAN / SAGAN)."""

    name = "hinge"

    def _discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def _generator(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


#: Registered GAN losses, ``name -> class``.
GAN_LOSSES: dict[str, type[GANLoss]] = {
    cls.name: cls for cls in (LSGANLoss, BCEGANLoss, HingeGANLoss)
}


def list_gan_losses() -> list[str]:
    """Names of the GAN losses, sorted."""
    return sorted(GAN_LOSSES)


def build_gan_loss(name: str) -> GANLoss:
    """The GAN loss ``name`` (:class:`ConfigError` listing the valid names when unknown)."""
    cls = GAN_LOSSES.get(str(name).strip().lower())
    if cls is None:
        raise ConfigError(f"unknown GAN loss {name!r}; valid: {', '.join(list_gan_losses())}")
    return cls()
