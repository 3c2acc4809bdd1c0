"""Gaussian negative log-likelihood of a mean + variance prediction (uncertainty models)."""

from __future__ import annotations

from typing import ClassVar

import torch

from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["GaussianNLLLoss"]


@register_loss("gaussian_nll")
class GaussianNLLLoss(CloudRemovalLoss):
    """``mean 0.5 * (log var + (target - pred)^2 / var)`` over every band of every valid pixel.

    The negative log-likelihood of the target under independent Gaussians per pixel and band
    (diagonal covariance) with mean ``output.pred`` and variance ``output.variance``, without
    the constant ``0.5 log(2 pi)`` (it changes neither the gradient nor the ranking of
    models). The loss needs the model output's ``variance``: called with a bare tensor it
    raises :class:`~cloudfree.errors.ConfigError`.

    Args:
        min_variance: the variance is clamped to at least this value (1e-6) before use, so
            that a collapsing variance head cannot divide by zero; gradients below the clamp
            are zero. Must be > 0.

    Invalid pixels (``valid_mask`` False) get mean = target = 0 and variance = 1 and are left
    out of the mean. Batch keys: ``target`` (``valid_mask`` optional). Terms: ``nll`` (the
    loss) and ``variance`` (the mean predicted variance over valid elements).
    """

    uses_variance: ClassVar[bool] = True

    def __init__(self, min_variance: float = 1e-6) -> None:
        super().__init__()
        self.min_variance = check_float(
            "gaussian_nll", "min_variance", min_variance, low=0.0, low_open=True
        )

    def extra_repr(self) -> str:
        return f"min_variance={self.min_variance}"

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert x.variance is not None  # CloudRemovalLoss.forward checks it
        var = x.variance.clamp_min(self.min_variance)
        d = x.target - x.pred
        loss = x.mean(0.5 * (torch.log(var) + d * d / var))
        return loss, {"nll": loss, "variance": x.mean(var)}
