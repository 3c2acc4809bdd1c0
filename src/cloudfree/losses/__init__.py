"""Training losses for cloud removal (SPEC sections 5.2, 5.3, 5.6).

Every reconstruction loss is an :class:`torch.nn.Module` called as ``loss(output, batch) ->
scalar``. ``output`` is the model's :class:`~cloudfree.models.ModelOutput` (``pred``
``[B, C, H, W]``, optionally ``variance`` of the same shape) or a bare prediction tensor,
which is treated as an output with ``pred`` only, so ``loss(pred, batch)`` keeps working.
``batch`` is the collated dataset sample dict (``target``, ``optical``, ``cloud_mask``,
``shadow_mask``, ``valid_mask``; each loss reads only the keys it needs). Losses that need the
variance (``uses_variance``: the Gaussian NLL) raise :class:`~cloudfree.errors.ConfigError`
when given a tensor. Build them by name with :func:`build_loss`:

================  ====================================================================
name              loss
================  ====================================================================
``l1``            mean absolute error (:class:`PixelL1Loss`)
``mse``           mean squared error (:class:`PixelMSELoss`)
``ssim``          ``1 - SSIM`` (:class:`SSIMLoss`)
``l1_ssim``       ``L1 + (1 - SSIM)``, MMCANet / MPIR (:class:`L1SSIMLoss`)
``carl``          DSen2-CR's cloud-adaptive regularised loss (:class:`CARLLoss`)
``carf``          CARF paper's cloud-weighted MSE + (1 - SSIM) (:class:`CARFLoss`)
``carf_code``     CARF public code's masked L1 + L1 + (1 - SSIM) (:class:`CARFCodeLoss`)
``gaussian_nll``  Gaussian NLL of mean + variance outputs (:class:`GaussianNLLLoss`)
``spa_gan``       SpA-GAN's 100 L1 + attention-map MSE (:class:`SpAGANLoss`)
``perceptual``    VGG16 feature L1, relu1_1 ... relu5_1 (:class:`PerceptualLoss`)
``style``         VGG16 Gram-matrix style loss (:class:`StyleLoss`)
``ca_mtcr``       CA-MTCR's 2 L1 + 1 perceptual + 250 style (:class:`CAMTCRLoss`)
``vqvae``         CA-MTCR's SAR pretraining: Noise2Noise L2 + VQ terms (:class:`VQVAELoss`)
================  ====================================================================

Pixels where ``valid_mask`` is False never contribute (see :mod:`cloudfree.losses._common`):
inputs are zeroed there and every mean is over valid pixels only. After a call,
``loss.last_terms`` holds the detached component terms for logging.

The adversarial objectives of GAN training (``lsgan``, ``bce``, ``hinge``) act on
discriminator logits, not on batches: :func:`build_gan_loss` (:mod:`cloudfree.losses.adversarial`).

The VGG16 losses (``perceptual``, ``style``, ``ca_mtcr``) need torchvision's ImageNet VGG16
state dict as a file (``vgg_weights``; nothing is downloaded) and keep the frozen extractor out
of their parameters and state dict (:mod:`cloudfree.losses.perceptual`,
:mod:`cloudfree.losses.vgg`).
"""

from cloudfree.losses._common import CloudRemovalLoss, masked_mean
from cloudfree.losses._registry import LOSSES, build_loss, list_losses, register_loss
from cloudfree.losses.adversarial import GAN_LOSSES, GANLoss, build_gan_loss, list_gan_losses
from cloudfree.losses.carf import CARFCodeLoss, CARFLoss
from cloudfree.losses.carl import CARLLoss
from cloudfree.losses.gaussian import GaussianNLLLoss
from cloudfree.losses.perceptual import CAMTCRLoss, PerceptualLoss, StyleLoss
from cloudfree.losses.pixel import PixelL1Loss, PixelMSELoss
from cloudfree.losses.spa_gan import SpAGANLoss
from cloudfree.losses.ssim import L1SSIMLoss, SSIMLoss
from cloudfree.losses.vqvae import VQVAELoss

__all__ = [
    "CAMTCRLoss",
    "CARFCodeLoss",
    "CARFLoss",
    "CARLLoss",
    "CloudRemovalLoss",
    "GAN_LOSSES",
    "GANLoss",
    "GaussianNLLLoss",
    "L1SSIMLoss",
    "LOSSES",
    "PerceptualLoss",
    "PixelL1Loss",
    "PixelMSELoss",
    "SSIMLoss",
    "SpAGANLoss",
    "StyleLoss",
    "VQVAELoss",
    "build_gan_loss",
    "build_loss",
    "list_gan_losses",
    "list_losses",
    "masked_mean",
    "register_loss",
]
