"""SSIM losses: ``1 - SSIM`` and the MMCANet loss ``L1 + (1 - SSIM)`` (SPEC 5.3)."""

from __future__ import annotations

import torch

from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["L1SSIMLoss", "SSIMLoss"]


@register_loss("ssim")
class SSIMLoss(CloudRemovalLoss):
    """``1 - mean SSIM(pred, target)``, SSIM as the metric defines it (SPEC section 4).

    11x11 Gaussian window (sigma 1.5) centred at index 5, zero padding,
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with data range ``L = data_range``; the SSIM map
    (per pixel and band, :func:`cloudfree.metrics.ssim_map`) is averaged over the bands and
    the valid pixels of the whole batch. For [0, 1] data with every pixel valid this is
    ``1 - mean(image_metrics(pred, target, "uncrtaints")["ssim"])``.

    Args:
        data_range: ``L``, the dynamic range of the data: 1.0 for reflectance in [0, 1]
            (``glf_cr``/``uncrtaints`` scaling), 5.0 for the ``dsen2cr`` /2000 scaling.

    Invalid pixels: ``pred`` and ``target`` are set to 0 there before the SSIM map is
    computed (so they act like the zero padding at the border) and the map is masked to the
    valid pixels. Batch keys: ``target`` (``valid_mask`` optional).
    """

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = check_float("ssim", "data_range", data_range, low=0.0, low_open=True)

    def extra_repr(self) -> str:
        return f"data_range={self.data_range}"

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = x.mean(x.one_minus_ssim(self.data_range))
        return loss, {"one_minus_ssim": loss}


@register_loss("l1_ssim")
class L1SSIMLoss(CloudRemovalLoss):
    """``l1_weight * L1 + ssim_weight * (1 - SSIM)``: the MMCANet / MPIR loss (SPEC 5.3).

    ``L1`` is :class:`~cloudfree.losses.PixelL1Loss` and ``1 - SSIM`` is
    :class:`~cloudfree.losses.SSIMLoss` (same window, constants and invalid-pixel handling).

    Args:
        l1_weight: weight of the L1 term (default 1.0).
        ssim_weight: weight of the ``1 - SSIM`` term (default 1.0).
        data_range: SSIM data range ``L`` (1.0 for [0, 1] data, 5.0 for ``dsen2cr``).
    """

    def __init__(
        self, l1_weight: float = 1.0, ssim_weight: float = 1.0, data_range: float = 1.0
    ) -> None:
        super().__init__()
        self.l1_weight = check_float("l1_ssim", "l1_weight", l1_weight, low=0.0)
        self.ssim_weight = check_float("l1_ssim", "ssim_weight", ssim_weight, low=0.0)
        self.data_range = check_float("l1_ssim", "data_range", data_range, low=0.0, low_open=True)

    def extra_repr(self) -> str:
        return (
            f"l1_weight={self.l1_weight}, ssim_weight={self.ssim_weight}, "
            f"data_range={self.data_range}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        l1 = x.mean((x.pred - x.target).abs())
        one_minus_ssim = x.mean(x.one_minus_ssim(self.data_range))
        loss = self.l1_weight * l1 + self.ssim_weight * one_minus_ssim
        return loss, {"l1": l1, "one_minus_ssim": one_minus_ssim}
