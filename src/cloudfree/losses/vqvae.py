"""The VQ-VAE objective of paper 002's SAR pre-training (You et al. 2026, eq. 9):

    L_pre = ||y2 - y^1||_2 + alpha ||sg[z_e] - e_c||_2^2 + beta ||z_e - sg[e_c]||_2^2

with alpha = 1 (the codebook term, VQ-VAE's second term) and beta = 0.1 (the commitment
term, VQ-VAE's third, 0.25 in van den Oord et al.). The two VQ terms come from the network
(``output.extras``: ``ca_mtcr_sar_vqvae`` returns them unweighted); the reconstruction term
compares ``pred`` with the batch's ``target``, which the ``sar_pretrain`` task sets to the SAR
of the reference date (Noise2Noise: y2 is another noisy observation of the scene).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from cloudfree.errors import ConfigError
from cloudfree.losses._common import CloudRemovalLoss, PreparedBatch, check_float
from cloudfree.losses._registry import register_loss

__all__ = ["VQVAELoss"]

#: ``reconstruction`` modes of :class:`VQVAELoss`.
RECONSTRUCTIONS = ("rmse", "l2_norm")


@register_loss("vqvae")
class VQVAELoss(CloudRemovalLoss):
    """``recon + alpha * extras["vq_codebook"] + beta * extras["vq_commitment"]``.

    **Reconstruction term** (eq. 9's ``||y2 - y^1||_2``: an L2 *norm*, not squared), per
    sample over its valid pixels (``valid_mask``) and all bands, then averaged over the samples
    of the batch that have a valid pixel (0 for a batch without any):

    * ``reconstruction="rmse"`` (default, **Decision**): ``sqrt(sum d^2 / n + eps)`` with ``n``
      the sample's valid elements (pixels x bands), i.e. the norm divided by ``sqrt(n)``: the
      term no longer grows with the patch size (crops, 256 x 256), and it stays on the scale of
      the VQ terms, which are per-element means, so that alpha and beta keep the balance they
      have in VQ-VAE;
    * ``reconstruction="l2_norm"``: ``sqrt(sum d^2 + eps)``, the literal norm of eq. 9 (on a
      256 x 256 x 2 patch about 360 times the RMSE).

    ``eps`` (1e-12) keeps the gradient finite at a zero error. The VQ terms are read as the
    network returns them (means over the latent elements, see
    :mod:`cloudfree.models.ca_mtcr_pretrain`).

    Args:
        alpha: weight of the codebook term ``||sg[z_e] - e||^2`` (paper 002: 1).
        beta: weight of the commitment term ``||z_e - sg[e]||^2`` (paper 002: 0.1).
        reconstruction: ``"rmse"`` or ``"l2_norm"`` (above).
        eps: added under the square root.
        codebook_key, commitment_key: the ``extras`` keys of the two VQ terms.

    The loss reads the whole model output (:attr:`reads_output`) and raises
    :class:`ConfigError` for a bare prediction or an output without the two terms. Batch keys:
    ``target`` (``valid_mask`` optional). Terms logged: ``reconstruction``, ``vq_codebook``,
    ``vq_commitment`` (unweighted).
    """

    reads_output: ClassVar[bool] = True

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.1,
        reconstruction: str = "rmse",
        eps: float = 1e-12,
        codebook_key: str = "vq_codebook",
        commitment_key: str = "vq_commitment",
    ) -> None:
        super().__init__()
        self.alpha = check_float("vqvae", "alpha", alpha, low=0.0)
        self.beta = check_float("vqvae", "beta", beta, low=0.0)
        if reconstruction not in RECONSTRUCTIONS:
            raise ConfigError(
                f"loss 'vqvae': reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, "
                f"got {reconstruction!r}"
            )
        self.reconstruction = reconstruction
        self.eps = check_float("vqvae", "eps", eps, low=0.0, low_open=True)
        for name, key in (("codebook_key", codebook_key), ("commitment_key", commitment_key)):
            if not isinstance(key, str) or not key:
                raise ConfigError(f"loss 'vqvae': {name} must be a non-empty string, got {key!r}")
        self.codebook_key, self.commitment_key = codebook_key, commitment_key
        self._vq: tuple[torch.Tensor, torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, reconstruction={self.reconstruction!r}, "
            f"eps={self.eps}"
        )

    def forward(self, output: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        extras = getattr(output, "extras", None)
        keys = (self.codebook_key, self.commitment_key)
        terms = [extras.get(k) if isinstance(extras, Mapping) else None for k in keys]
        if not all(isinstance(t, torch.Tensor) and t.numel() == 1 for t in terms):
            got = (
                "a bare prediction tensor"
                if isinstance(output, torch.Tensor)
                else f"an output whose extras hold {sorted(extras) if extras else 'nothing'}"
            )
            raise ConfigError(
                f"loss 'vqvae' needs the network's VQ terms (output.extras[{keys[0]!r}] and "
                f"[{keys[1]!r}], scalars, as ca_mtcr_sar_vqvae returns them); got {got}"
            )
        self._vq = (terms[0].reshape(()), terms[1].reshape(()))  # type: ignore[union-attr]
        try:
            return super().forward(output, batch)
        finally:
            self._vq = None

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert self._vq is not None  # set by forward
        d = x.pred - x.target  # both 0 at invalid pixels
        sq = (d * d).flatten(1).sum(1)
        b, c = x.pred.shape[:2]
        if x.valid is None:
            n = torch.full((b,), float(c * x.pred.shape[-2] * x.pred.shape[-1]), dtype=sq.dtype)
            n = n.to(sq.device)
        else:
            n = x.valid.flatten(1).sum(1).to(sq.dtype) * c
        per_sample = torch.sqrt(
            (sq / n.clamp_min(1.0) if self.reconstruction == "rmse" else sq) + self.eps
        )
        has = n > 0
        zero = torch.zeros((), dtype=sq.dtype, device=sq.device)
        recon = torch.where(has, per_sample, zero).sum() / has.sum().clamp_min(1).to(sq.dtype)
        codebook = self._vq[0].to(sq.dtype)
        commitment = self._vq[1].to(sq.dtype)
        loss = recon + self.alpha * codebook + self.beta * commitment
        return loss, {
            "reconstruction": recon,
            "vq_codebook": codebook,
            "vq_commitment": commitment,
        }
