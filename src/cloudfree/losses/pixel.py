"""Pixel-wise losses: L1 and MSE averaged over all valid elements."""

from __future__ import annotations

import torch

from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch
from cloudfree.losses._registry import register_loss

__all__ = ["PixelL1Loss", "PixelL2Loss", "PixelMSELoss"]


@register_loss("l1")
class PixelL1Loss(CloudRemovalLoss):
    """``mean |pred - target|`` over every band of every valid pixel of the batch.

    Equal to :class:`torch.nn.L1Loss` when every pixel is valid. Invalid pixels
    (``valid_mask`` False) are left out of the sum and of the element count.
    Batch keys: ``target`` (``valid_mask`` optional).
    """

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = x.mean((x.pred - x.target).abs())
        return loss, {"l1": loss}


@register_loss("mse")
class PixelMSELoss(CloudRemovalLoss):
    """``mean (pred - target)^2`` over every band of every valid pixel of the batch.

    Equal to :class:`torch.nn.MSELoss` when every pixel is valid. Invalid pixels
    (``valid_mask`` False) are left out of the sum and of the element count.
    Batch keys: ``target`` (``valid_mask`` optional).
    """

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        d = x.pred - x.target
        loss = x.mean(d * d)
        return loss, {"mse": loss}


@register_loss("l2")
class PixelL2Loss(PixelMSELoss):
    """UnCRtainTS's name (``--loss l2``, ``nn.MSELoss``) for :class:`PixelMSELoss`: the same
    loss, registered under the official name so its configurations read as they are."""
