"""DSen2-CR's cloud-adaptive regularised loss, CARL (Meraner et al. 2020; SPEC 5.6)."""

from __future__ import annotations

import torch

from cloudfree.errors import ConfigError
from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["CARLLoss"]


@register_loss("carl")
class CARLLoss(CloudRemovalLoss):
    """CARL: ``mean(clear |pred - cloudy| + cloud |pred - target|) + lambda mean|pred - target|``.

    As DSen2-CR's ``carl_error``: ``cloud`` is the binary cloud-or-shadow mask, ``clear =
    1 - cloud``, ``cloudy`` is the cloudy optical input (``batch["optical"]``, same scaling as
    the prediction), and both means run over every band of every pixel (the first is *not*
    normalised by the cloud or clear area). Clear pixels are pulled towards the input,
    covered ones towards the cloud-free target; the second term regularises towards the
    target everywhere.

    Args:
        lambda_reg: weight ``lambda`` of the regulariser ``mean |pred - target|`` (1.0).
        include_shadow: ``cloud = cloud_mask OR shadow_mask`` (True, DSen2-CR) or
            ``cloud_mask`` alone (False).

    Masks are binarised with ``> 0.5``. Batch keys: ``target``, ``optical``, ``cloud_mask``,
    ``shadow_mask`` (when ``include_shadow``), ``valid_mask`` (optional). Invalid pixels are
    zeroed in ``pred``, ``target`` and ``optical`` and left out of both means (the element
    count is ``n_valid_pixels * C``).
    """

    def __init__(self, lambda_reg: float = 1.0, include_shadow: bool = True) -> None:
        super().__init__()
        self.lambda_reg = check_float("carl", "lambda_reg", lambda_reg, low=0.0)
        if not isinstance(include_shadow, bool):
            raise ConfigError(f"loss 'carl': include_shadow must be a bool, got {include_shadow!r}")
        self.include_shadow = include_shadow

    def extra_repr(self) -> str:
        return f"lambda_reg={self.lambda_reg}, include_shadow={self.include_shadow}"

    def batch_keys(self) -> frozenset[str]:
        keys = {"optical", "cloud_mask"} | ({"shadow_mask"} if self.include_shadow else set())
        return frozenset(keys)

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cloud = x.binary_mask("cloud_mask")
        if self.include_shadow:
            cloud = torch.maximum(cloud, x.binary_mask("shadow_mask"))
        clear = 1.0 - cloud
        cloudy = x.image("optical")
        err_target = (x.pred - x.target).abs()
        adaptive = x.mean(clear * (x.pred - cloudy).abs() + cloud * err_target)
        l1 = x.mean(err_target)
        loss = adaptive + self.lambda_reg * l1
        return loss, {"cloud_adaptive": adaptive, "l1": l1}
