"""Gaussian negative log-likelihoods of a mean + variance prediction (uncertainty models):
``gaussian_nll`` (per band), ``gnll`` (UnCRtainTS's univariate form, as its code computes it)
and ``mgnll`` (UnCRtainTS's multivariate form)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float, masked_mean
from cloudfree.losses._registry import register_loss

__all__ = ["GaussianNLLLoss", "MultivariateGaussianNLLLoss", "OfficialGaussianNLLLoss"]


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


@register_loss("gnll")
class OfficialGaussianNLLLoss(CloudRemovalLoss):
    """UnCRtainTS's ``GNLL`` (``--loss GNLL``, covmode ``uni``): the univariate Gaussian NLL as
    its ``losses.GaussianNLLLoss`` (torch's ``gaussian_nll_loss``, ``full=True``, ``eps`` 1e-8,
    mean reduction) computes it, on the values scaled by ``scale`` (the official ``scale_by``:
    mean and target times ``scale``, variance times ``scale**2``)::

        mean over valid elements of 0.5 * (log v + (y - mu)^2 / v) + 0.5 * log(2 pi)

    As officially, the variance is clamped to at least ``eps`` **without** blocking its
    gradient (the official code clamps in place under ``no_grad``: a straight-through clamp),
    unlike :class:`GaussianNLLLoss` (``gaussian_nll``), whose clamp zeroes the gradient and
    which leaves out the constant. Batch keys: ``target`` (``valid_mask`` optional); terms
    ``nll`` and ``variance`` (mean predicted variance, unscaled).
    """

    uses_variance: ClassVar[bool] = True

    def __init__(self, scale: float = 1.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.scale = check_float("gnll", "scale", scale, low=0.0, low_open=True)
        self.eps = check_float("gnll", "eps", eps, low=0.0, low_open=True)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, eps={self.eps}"

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert x.variance is not None  # CloudRemovalLoss.forward checks it
        v = x.variance * self.scale**2
        v = v + (v.clamp_min(self.eps) - v).detach()  # clamped value, identity gradient
        d = (x.target - x.pred) * self.scale
        loss = x.mean(0.5 * (torch.log(v) + d * d / v)) + 0.5 * math.log(2 * math.pi)
        return loss, {"nll": loss, "variance": x.mean(x.variance)}


@register_loss("mgnll")
class MultivariateGaussianNLLLoss(CloudRemovalLoss):
    """UnCRtainTS's MGNLL with a diagonal covariance: per pixel, ``-log N(y; mu, diag(v))``.

    With ``mu = scale * pred``, ``v = scale**2 * variance`` and ``y = scale * target`` (``scale``
    is UnCRtainTS's ``scale_by``, 10 in its README run; 1 leaves the values as they are)::

        L(b, h, w) = C/2 log(2 pi) + 1/2 sum_c log v[b, c, h, w]
                     + 1/2 max(sum_c (mu - y)^2 / v, 1e-9)

    averaged over the valid pixels. ``official_batch_logdet=True`` reproduces the official code
    exactly, whose per-pixel ``vmap`` sums the log-determinant over the **batch** and the bands
    (``var.log().sum()`` on ``[B, C]``), so for a batch of B samples the log-determinant term is
    counted B times: ``L_official = L + (B - 1)/2 * mean_{b,h,w} sum_c log v``. The default is the
    per-sample form (the likelihood of each sample on its own), for new training; the official
    form is for reproducing its numbers (parity cases ``uncrtaints``, ``uncrtaints_mono``).

    Args:
        scale: factor applied to mean, target (and squared to the variance) first.
        min_variance: the variance is clamped to at least this (1e-8, the official eps).
        official_batch_logdet: see above.

    Batch keys: ``target`` (``valid_mask`` optional); terms ``nll``, ``logdet``, ``mahalanobis``.
    """

    uses_variance: ClassVar[bool] = True

    def __init__(
        self, scale: float = 1.0, min_variance: float = 1e-8, official_batch_logdet: bool = False
    ) -> None:
        super().__init__()
        self.scale = check_float("mgnll", "scale", scale, low=0.0, low_open=True)
        self.min_variance = check_float(
            "mgnll", "min_variance", min_variance, low=0.0, low_open=True
        )
        self.official_batch_logdet = bool(official_batch_logdet)

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, min_variance={self.min_variance}, "
            f"official_batch_logdet={self.official_batch_logdet}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert x.variance is not None  # CloudRemovalLoss.forward checks it
        s = self.scale
        var = (x.variance * s * s).clamp_min(self.min_variance)
        d = (x.target - x.pred) * s
        c = x.pred.shape[1]
        logdet = torch.log(var).sum(dim=1, keepdim=True)  # [B, 1, H, W]
        maha = (d * d / var).sum(dim=1, keepdim=True).clamp_min(1e-9)
        const = 0.5 * c * math.log(2 * math.pi)
        per_pixel = const + 0.5 * logdet + 0.5 * maha  # [B, 1, H, W]
        loss = masked_mean(per_pixel, x.valid)
        logdet_mean = masked_mean(logdet, x.valid)
        if self.official_batch_logdet:
            loss = loss + 0.5 * (x.pred.shape[0] - 1) * logdet_mean
        return loss, {"nll": loss, "logdet": logdet_mean, "mahalanobis": masked_mean(maha, x.valid)}
