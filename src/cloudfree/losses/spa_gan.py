"""SpA-GAN's reconstruction loss: weighted L1 plus the attention map's squared error against a
mask derived from the images (Pan 2020; official ``Penn000/SpA-GAN_for_cloud_removal``).

The official generator objective (``train.py``) is::

    loss_g = softplus(-D(cloudy, fake)) / (B h w) summed   # the GAN term
             + lamb * L1(fake, target)                     # lamb = 100 (config.yml)
             + MSE(attention[:, 0], M)                     # the last attention map A_4
    M = clip(sum over channels of (target - cloudy), 0, 1) # data_manager.py, on 8-bit values

This module is the reconstruction part (:class:`SpAGANLoss`, registered as ``spa_gan``); the
GAN term is the trainer's ``adversarial.gan_loss`` (see the class docstring for how the
official softplus form maps onto ``bce``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from cloudfree.errors import ConfigError
from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["SpAGANLoss"]


@register_loss("spa_gan")
class SpAGANLoss(CloudRemovalLoss):
    """``l1_weight * mean|pred - target| + attention_weight * mean (A - M)^2``.

    ``A`` is the model's attention map ``output.extras[attention_key]`` ``[B, 1, H, W]`` (the
    SpA-GAN generator's last map), ``M = clip(mask_scale * sum_c (target - optical), 0, 1)``
    per pixel, from the batch's cloud-free ``target`` and cloudy ``optical`` input. The loss
    therefore needs the whole model output (:attr:`reads_output`; the trainer passes it) and
    raises :class:`ConfigError` for a bare prediction or an output without that map.

    **Official facts.** ``l1_weight`` 100 is the official ``lamb``; the attention term has
    weight 1. Both means run over all elements (``nn.L1Loss`` / ``nn.MSELoss``); here over
    the valid pixels (``valid_mask``), with ``pred``, ``target``, ``optical`` and ``A`` zeroed
    elsewhere. The official ``M`` is computed on the 8-bit values (0-255) *before* they are
    divided by 255, so on inputs in [0, 1] it is ``clip(255 * sum_c (target - cloudy), 0, 1)``:
    ``mask_scale`` 255 (default) reproduces it for 8-bit inputs / 255 (protocol
    ``spa_gan_8bit``). On reflectance (S2 / 10000, ``glf_cr``), one 8-bit level of the
    ``spa_gan_8bit`` mapping is 1 / (255 * 3.5), so ``mask_scale: 892.5`` gives the official
    mask of those 8-bit images (up to their rounding and saturation); the ``spa_gan`` recipe
    sets it. ``M`` is 1 where the target is brighter than the cloudy input (summed over
    bands), not a cloud mask; we keep the official sign.

    **GAN term.** The official discriminator loss is ``mean softplus(D(fake)) + mean
    softplus(-D(real))`` and the generator's ``mean softplus(-D(fake))`` (its ``sum / B / w /
    h`` is the mean over the one-channel logits). ``softplus(-x)`` is binary cross-entropy
    on logits with target 1 and ``softplus(x)`` with target 0, so ``adversarial.gan_loss:
    bce`` with ``adversarial.weight: 1`` is the official generator term exactly, and the
    ``bce`` discriminator loss is half the official one (``cloudfree.losses.adversarial``
    halves every discriminator loss). Under Adam that factor only interacts with the weight
    decay (1e-5) and ``eps``.

    Args:
        l1_weight: weight of the L1 term (official ``lamb`` 100).
        attention_weight: weight of the attention term (official 1).
        mask_scale: factor on ``sum_c (target - optical)`` before the clip (see above; 255).
        attention_key: the ``extras`` key of the attention map (``"attention"``).

    Batch keys: ``target``, ``optical``, ``valid_mask`` (optional). Terms logged:
    ``l1`` and ``attention_mse`` (unweighted).
    """

    reads_output: ClassVar[bool] = True

    def __init__(
        self,
        l1_weight: float = 100.0,
        attention_weight: float = 1.0,
        mask_scale: float = 255.0,
        attention_key: str = "attention",
    ) -> None:
        super().__init__()
        self.l1_weight = check_float("spa_gan", "l1_weight", l1_weight, low=0.0)
        self.attention_weight = check_float(
            "spa_gan", "attention_weight", attention_weight, low=0.0
        )
        self.mask_scale = check_float("spa_gan", "mask_scale", mask_scale, low=0.0, low_open=True)
        if not isinstance(attention_key, str) or not attention_key:
            raise ConfigError(
                f"loss 'spa_gan': attention_key must be a non-empty string, got {attention_key!r}"
            )
        self.attention_key = attention_key
        self._attention: torch.Tensor | None = None

    def batch_keys(self) -> frozenset[str]:
        return frozenset({"optical"})

    def extra_repr(self) -> str:
        return (
            f"l1_weight={self.l1_weight}, attention_weight={self.attention_weight}, "
            f"mask_scale={self.mask_scale}, attention_key={self.attention_key!r}"
        )

    def forward(self, output: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        extras = getattr(output, "extras", None)
        attention = extras.get(self.attention_key) if isinstance(extras, Mapping) else None
        if not isinstance(attention, torch.Tensor):
            got = (
                "a bare prediction tensor"
                if isinstance(output, torch.Tensor)
                else f"an output whose extras hold {sorted(extras) if extras else 'nothing'}"
            )
            raise ConfigError(
                f"loss 'spa_gan' needs the model's attention map (output.extras"
                f"[{self.attention_key!r}], [B, 1, H, W], as the spa_gan generator returns it); "
                f"got {got}"
            )
        self._attention = attention
        try:
            return super().forward(output, batch)
        finally:
            self._attention = None

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        attention = self._attention
        assert attention is not None  # set by forward
        b, _, h, w = x.pred.shape
        if attention.ndim != 4 or tuple(attention.shape) != (b, 1, h, w):
            raise ConfigError(
                f"loss 'spa_gan': the attention map has shape {tuple(attention.shape)}, "
                f"expected [B, 1, H, W] = [{b}, 1, {h}, {w}]"
            )
        a = attention.to(device=x.pred.device, dtype=x.pred.dtype)
        if x.valid is not None:
            a = torch.where(x.valid, a, torch.zeros((), dtype=a.dtype, device=a.device))
        mask = (self.mask_scale * (x.target - x.image("optical")).sum(1, keepdim=True)).clamp(
            0.0, 1.0
        )
        l1 = x.mean((x.pred - x.target).abs())
        d = a - mask
        attention_mse = x.mean(d * d)
        loss = self.l1_weight * l1 + self.attention_weight * attention_mse
        return loss, {"l1": l1, "attention_mse": attention_mse}
