"""CARF's cloud-aware losses (Bui & Le 2025, paper 004; SPEC 5.2).

Two forms are offered, the paper's as the default recipe choice:

* ``carf`` (:class:`CARFLoss`), paper eq. 17-18: a per-pixel weight
  ``w = alpha M' + (1 - alpha)(1 - M')`` (alpha 0.8) on ``lambda1 MSE + lambda2 (1 - SSIM)``
  (lambda1 = lambda2 = 0.5), ``M'`` the CARF cloud mask (eq. 13-16).
* ``carf_code`` (:class:`CARFCodeLoss`), what the public code ``thoailt/Cloud-Removal``
  trains with: ``2 L1(pred M, gt M) + 0.5 L1(pred, gt) + 0.5 (1 - SSIM(pred, gt))`` with
  ``M`` the rule-based *cloud* mask (shadows zeroed).

Both read their mask from ``batch["cloud_mask"]`` (``mask_key``); which detector produced it
is the dataset's choice, set by the training recipe (see each class).
"""

from __future__ import annotations

import torch

from cloudfree.errors import ConfigError
from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["CARFCodeLoss", "CARFLoss"]


def _check_key(owner: str, mask_key: str) -> str:
    if not isinstance(mask_key, str) or not mask_key:
        raise ConfigError(f"loss {owner!r}: mask_key must be a non-empty string, got {mask_key!r}")
    return mask_key


@register_loss("carf")
class CARFLoss(CloudRemovalLoss):
    """CARF paper loss: ``mean(w * (lambda1 (pred - target)^2 + lambda2 (1 - SSIM_map)))``.

    ``w = alpha M + (1 - alpha) (1 - M)`` per pixel (paper eq. 17), ``M`` the binary cloud
    mask ``batch[mask_key]`` (``> 0.5``): cloudy pixels get weight ``alpha`` (0.8), clear ones
    ``1 - alpha`` (0.2). ``SSIM_map`` is the per-pixel, per-band SSIM map of the metric
    (11x11 Gaussian, sigma 1.5, centred, zero padding, ``C1 = (0.01 L)^2``,
    ``C2 = (0.03 L)^2``), so the structural term is weighted pixel by pixel like the MSE.

    **The mask**: the paper weights with its own mask ``M'`` (CARF cloud score > 0.2 and
    NDSI < 0.6, :func:`cloudfree.cloudmask.carf_cloud_mask`). This loss reads
    ``batch["cloud_mask"]``; a CARF recipe must therefore build the dataset with
    ``cloud_mask_method="carf"`` so that ``cloud_mask`` *is* ``M'`` (shadow pixels are not
    part of ``M'``; ``shadow_mask`` is ignored). With another detector the loss is the same
    formula on that detector's cloud mask.

    **Decisions** (the OCR-damaged paper, eq. 18, writes
    ``L_final = W_cloud (lambda1 L_MSE + lambda2 L_SSIM)`` and says nothing more):

    * *No normalisation of the weights* by default: the paper does not divide by the mean
      weight, so the weighted loss is averaged over all elements as written. Its scale
      therefore moves with cloud cover (between 0.2x and 0.8x the unweighted loss);
      ``normalize_weights=True`` divides by the mean weight instead
      (``sum(w l) / sum(w)`` over valid elements), which keeps the scale of the
      unweighted loss.
    * *Bands*: ``w`` depends on the pixel only, so it is broadcast over the bands and the
      mean runs over bands and pixels. This is identical to averaging the per-band terms over
      bands first and then weighting per pixel.
    * ``L_SSIM`` is taken per pixel (``1 - SSIM_map``), not as one number per image, since
      eq. 18 multiplies it by a per-pixel weight.

    Args:
        alpha: weight of cloudy pixels (0.8); clear pixels get ``1 - alpha``.
        lambda1: weight of the squared error (0.5).
        lambda2: weight of ``1 - SSIM`` (0.5).
        data_range: SSIM data range ``L`` (1.0 for [0, 1] data).
        normalize_weights: divide by the mean weight (see above; default False).
        mask_key: batch key of the mask ``M`` (``"cloud_mask"``).

    Invalid pixels: zeroed in ``pred`` and ``target`` before the SSIM map is computed, and
    given weight 0 in the mean. Batch keys: ``target``, ``mask_key``, ``valid_mask``
    (optional).
    """

    def __init__(
        self,
        alpha: float = 0.8,
        lambda1: float = 0.5,
        lambda2: float = 0.5,
        data_range: float = 1.0,
        normalize_weights: bool = False,
        mask_key: str = "cloud_mask",
    ) -> None:
        super().__init__()
        self.alpha = check_float("carf", "alpha", alpha, low=0.0, high=1.0)
        self.lambda1 = check_float("carf", "lambda1", lambda1, low=0.0)
        self.lambda2 = check_float("carf", "lambda2", lambda2, low=0.0)
        self.data_range = check_float("carf", "data_range", data_range, low=0.0, low_open=True)
        if not isinstance(normalize_weights, bool):
            raise ConfigError(
                f"loss 'carf': normalize_weights must be a bool, got {normalize_weights!r}"
            )
        self.normalize_weights = normalize_weights
        self.mask_key = _check_key("carf", mask_key)

    def batch_keys(self) -> frozenset[str]:
        return frozenset({self.mask_key})

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, lambda1={self.lambda1}, lambda2={self.lambda2}, "
            f"data_range={self.data_range}, normalize_weights={self.normalize_weights}, "
            f"mask_key={self.mask_key!r}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = x.binary_mask(self.mask_key)
        w = self.alpha * m + (1.0 - self.alpha) * (1.0 - m)  # [B, 1, H, W]
        d = x.pred - x.target
        sq = d * d
        one_minus_ssim = x.one_minus_ssim(self.data_range)
        weighted = x.mean(w * (self.lambda1 * sq + self.lambda2 * one_minus_ssim))
        w_mean = x.mean(w)
        if self.normalize_weights:
            tiny = torch.finfo(w_mean.dtype).tiny
            loss = weighted / w_mean.clamp_min(tiny)
        else:
            loss = weighted
        terms = {
            "mse": x.mean(sq),
            "one_minus_ssim": x.mean(one_minus_ssim),
            "weight_mean": w_mean,
        }
        return loss, terms


@register_loss("carf_code")
class CARFCodeLoss(CloudRemovalLoss):
    """The public CARF code's loss (``thoailt/Cloud-Removal``, ``models/model_CR_net.py``).

    ``mask_weight * mean(M |pred - target|) + pixel_weight * pixel(pred, target)
    + ssim_weight * (1 - SSIM(pred, target))`` with defaults 2.0, 0.5, 0.5, where

    * ``M`` is the binary cloud mask ``batch[mask_key]`` (``> 0.5``), broadcast over bands.
      The first term is the official ``L1(pred * M, gt * M)``: its mean runs over **all**
      (valid) elements, not only the masked ones, so it scales with cloud cover.
    * ``pixel`` is the mean absolute (``pixel_loss="l1"``, alias ``"mae"``, the official
      default) or squared (``"mse"``) error over all (valid) elements.
    * SSIM is the metric's (11x11 Gaussian, sigma 1.5, centred, zero padding,
      ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``) with ``denominator_eps`` (1e-8, as the
      official ``SSIM``) added to the denominator, averaged over bands and valid pixels.

    **The mask**: the official code uses the rule-based detector (threshold 0.2) with shadows
    zeroed, i.e. clouds only. Our datasets' ``cloud_mask`` from the rule-based detector is
    exactly that (cloud wins over shadow, shadows are in ``shadow_mask``, which is ignored
    here), so a recipe reproducing the code keeps ``cloud_mask_method="rule_based"``.

    Args:
        mask_weight: weight of the masked L1 term (official ``lambda_masked`` 2.0).
        pixel_weight: weight of the pixel term (official ``lambda_mae``/``lambda_mse`` 0.5).
        ssim_weight: weight of ``1 - SSIM`` (official ``lambda_ssim`` 0.5).
        pixel_loss: ``"l1"`` (or ``"mae"``) or ``"mse"`` (official ``pixel_loss_type``).
        data_range: SSIM data range ``L`` (1.0; the official code fixes it to 1).
        denominator_eps: added to the SSIM denominator (1e-8).
        mask_key: batch key of the mask ``M`` (``"cloud_mask"``).

    Invalid pixels: zeroed in ``pred`` and ``target`` before anything is computed and left
    out of every mean. Batch keys: ``target``, ``mask_key``, ``valid_mask`` (optional).
    """

    def __init__(
        self,
        mask_weight: float = 2.0,
        pixel_weight: float = 0.5,
        ssim_weight: float = 0.5,
        pixel_loss: str = "l1",
        data_range: float = 1.0,
        denominator_eps: float = 1e-8,
        mask_key: str = "cloud_mask",
    ) -> None:
        super().__init__()
        self.mask_weight = check_float("carf_code", "mask_weight", mask_weight, low=0.0)
        self.pixel_weight = check_float("carf_code", "pixel_weight", pixel_weight, low=0.0)
        self.ssim_weight = check_float("carf_code", "ssim_weight", ssim_weight, low=0.0)
        kind = pixel_loss.lower() if isinstance(pixel_loss, str) else pixel_loss
        if kind not in ("l1", "mae", "mse"):
            raise ConfigError(
                f"loss 'carf_code': pixel_loss must be 'l1' (or 'mae') or 'mse', got {pixel_loss!r}"
            )
        self.pixel_loss = "l1" if kind == "mae" else kind
        self.data_range = check_float("carf_code", "data_range", data_range, low=0.0, low_open=True)
        self.denominator_eps = check_float("carf_code", "denominator_eps", denominator_eps, low=0.0)
        self.mask_key = _check_key("carf_code", mask_key)

    def batch_keys(self) -> frozenset[str]:
        return frozenset({self.mask_key})

    def extra_repr(self) -> str:
        return (
            f"mask_weight={self.mask_weight}, pixel_weight={self.pixel_weight}, "
            f"ssim_weight={self.ssim_weight}, pixel_loss={self.pixel_loss!r}, "
            f"data_range={self.data_range}, denominator_eps={self.denominator_eps}, "
            f"mask_key={self.mask_key!r}"
        )

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = x.binary_mask(self.mask_key)
        d = x.pred - x.target
        ad = d.abs()
        masked_l1 = x.mean(m * ad)
        pixel = x.mean(ad) if self.pixel_loss == "l1" else x.mean(d * d)
        one_minus_ssim = x.mean(x.one_minus_ssim(self.data_range, self.denominator_eps))
        loss = (
            self.mask_weight * masked_l1
            + self.pixel_weight * pixel
            + self.ssim_weight * one_minus_ssim
        )
        return loss, {
            "masked_l1": masked_l1,
            f"pixel_{self.pixel_loss}": pixel,
            "one_minus_ssim": one_minus_ssim,
        }
