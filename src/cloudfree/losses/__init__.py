"""Training losses for cloud removal (SPEC sections 5.2, 5.3, 5.6).

Every loss is an :class:`torch.nn.Module` called as ``loss(pred, batch) -> scalar`` with
``pred`` the model output ``[B, C, H, W]`` and ``batch`` the collated dataset sample dict
(``target``, ``optical``, ``cloud_mask``, ``shadow_mask``, ``valid_mask``; each loss reads only
the keys it needs). Build them by name with :func:`build_loss`:

============  ====================================================================
name          loss
============  ====================================================================
``l1``        mean absolute error (:class:`PixelL1Loss`)
``mse``       mean squared error (:class:`PixelMSELoss`)
``ssim``      ``1 - SSIM`` (:class:`SSIMLoss`)
``l1_ssim``   ``L1 + (1 - SSIM)``, MMCANet / MPIR (:class:`L1SSIMLoss`)
``carl``      DSen2-CR's cloud-adaptive regularised loss (:class:`CARLLoss`)
``carf``      CARF paper's cloud-weighted MSE + (1 - SSIM) (:class:`CARFLoss`)
``carf_code`` CARF public code's masked L1 + L1 + (1 - SSIM) (:class:`CARFCodeLoss`)
============  ====================================================================

Pixels where ``valid_mask`` is False never contribute (see :mod:`cloudfree.losses._common`):
inputs are zeroed there and every mean is over valid pixels only. After a call,
``loss.last_terms`` holds the detached component terms for logging.
"""

from cloudfree.losses._common import CloudRemovalLoss, masked_mean
from cloudfree.losses._registry import LOSSES, build_loss, list_losses, register_loss
from cloudfree.losses.carf import CARFCodeLoss, CARFLoss
from cloudfree.losses.carl import CARLLoss
from cloudfree.losses.pixel import PixelL1Loss, PixelMSELoss
from cloudfree.losses.ssim import L1SSIMLoss, SSIMLoss

__all__ = [
    "CARFCodeLoss",
    "CARFLoss",
    "CARLLoss",
    "CloudRemovalLoss",
    "L1SSIMLoss",
    "LOSSES",
    "PixelL1Loss",
    "PixelMSELoss",
    "SSIMLoss",
    "build_loss",
    "list_losses",
    "masked_mean",
    "register_loss",
]
