"""CA-MTCR's SAR pre-training network: the SAR encoder as the encoder of a VQ-VAE trained with
Noise2Noise (You et al., Sci China Inf Sci 2026, paper 002, Sec. 3.2 and eq. 9).

Paper 002 pre-trains its SAR encoder F_sar "with an SAR denoising network prior to its
integration": a VQ-VAE [van den Oord et al. 2017] whose encoder is F_sar (three convolutions and
two MBConv blocks), trained Noise2Noise-style to reconstruct the SAR of one date from the SAR
of another date of the same scene ("SAR pairs that correspond to selected cloudy and cloud-free
optical image pairs with minimal temporal variation"), with

    L_pre = ||y2 - y^1||_2 + alpha ||sg[z_e] - e_c||_2^2 + beta ||z_e - sg[e_c]||_2^2,
    alpha = 1, beta = 0.1, 50 epochs, lr 2e-4.

"After training, only the encoder is retained ... while the decoder and other components are
discarded": the ``ca_mtcr`` model copies the ``sar_encoder.*`` weights of this network
(``model.sar_encoder_init``, :mod:`cloudfree.train.run`) and uses z_e without quantisation.

**Which term is which.** In the VQ-VAE paper the objective is ``log p(x|z_q) +
||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2``: the second term (weight 1) moves the *codebook*
towards the encoder outputs, the third (weight beta, 0.25 there) is the *commitment* term that
keeps the encoder close to its codes. Eq. 9 keeps that order and names: ``alpha`` (1) weighs
the codebook term, ``beta`` (0.1) the commitment term. This network returns both terms
unweighted (``extras["vq_codebook"]``, ``extras["vq_commitment"]``); the ``vqvae`` loss
(:class:`cloudfree.losses.VQVAELoss`) weighs them and adds the reconstruction norm.

Decisions (the paper states none of these):

* **Input and pair.** The network is mono-temporal: ``forward(optical, sar)`` reconstructs
  ``sar [B, C, H, W]`` (``optical`` is ignored: the spec says ``needs_optical=False``). On a
  time series the trainer shows it the last input date
  (:class:`~cloudfree.data.SingleDateView`), which under the ``ca_mtcr`` sampler is the cloudy
  date N to restore; the ``sar_pretrain`` task (:mod:`cloudfree.train.tasks`) compares the
  reconstruction with the SAR of the sampler's cloud-free reference date (batch key
  ``target_sar``). So y1 = SAR(N), y2 = SAR(reference), one direction (no random swap).
* **Encoder** = :class:`~cloudfree.models.ca_mtcr.CAMTCRSAREncoder` (the very module the main
  network holds, stored as ``sar_encoder``, so its state-dict keys are ``sar_encoder.*`` in both
  networks), built as the ``ca_mtcr`` model builds it: its arguments carry the ``ca_mtcr``
  model's names and defaults (``in_sar`` 2, ``sar_width`` 32, ``sar_channels`` 64,
  ``patch_size`` 4 = the encoder's ``in_channels``, ``width``, ``out_channels``,
  ``downsample``), so both stages take the same ``--set model.kwargs.*`` values; a mismatch is
  a one-line error at stage 2 naming the shapes.
* **Codebook**: ``num_codes`` K = 512 codes of dimension D = ``sar_channels`` (the VQ-VAE
  paper's ImageNet / audio setting; paper 002 gives neither), initialised uniformly in
  ``[-1/K, 1/K]`` (the common PyTorch VQ-VAE initialisation). Each latent position ``z`` picks
  the code nearest in squared Euclidean distance (computed in float32 without gradient; ties:
  the lowest index); the decoder receives ``z_q = z_e + sg[e - z_e]``, i.e. the code's value
  with the **straight-through** gradient to the encoder. The codebook therefore learns only
  from the codebook term, as in VQ-VAE (not from the reconstruction).
* **VQ terms**: ``||.||_2^2`` is taken as the mean over all latent elements
  (``B * D * h * w``), as ``F.mse_loss`` in VQ-VAE implementations (the per-element scale keeps
  alpha and beta independent of the latent size); they run over the whole (padded) latent grid,
  without ``valid_mask``.
* **Dead-code guard** (``dead_code_steps`` N = 100; 0 disables it): in training mode every
  forward counts, per code, the consecutive forward passes in which no latent position chose it
  (buffer ``codebook.steps_unused``, saved with the weights and in checkpoints, so a resumed
  run continues exactly); a code unused for N passes is re-seeded with an encoder output z_e of
  the current batch, drawn at random without replacement (with replacement when more codes
  than positions are dead) from torch's global generator, hence deterministic under the run's
  seed (and restored on resume). Its counter restarts at 0; the optimizer's moment estimates
  for that row are kept. Under DDP the counts are summed over the ranks and rank 0's
  replacement vectors are broadcast, so every rank keeps the same codebook. Eval mode never
  changes the codebook.
* **Decoder** = mirror of the encoder: two MBConv blocks (UnCRtainTS's, GroupNorm 4) on the
  latent, then three stages that undo the encoder's strides in reverse order, each a
  nearest-neighbour upsampling by that stride followed by a 3x3 convolution (reflect padding;
  upsample + conv avoids the checkerboard of transposed convolutions): ``sar_channels ->
  sar_width``, GELU, ``sar_width -> sar_width``, GELU, ``sar_width -> in_sar``. No output
  activation (the target is the protocol's scaled SAR, [0, 1] under ``uncrtaints``, regressed
  directly).
* **Any size**: H and W are padded at the bottom / right to a multiple of ``patch_size``
  (:func:`~cloudfree.models.layers.padding.pad_bottom_right`) and the output is cropped back;
  the MBConv's reflect padding needs a latent of at least 2 x 2, i.e. H, W >= 2 * patch_size.

``extras`` of the output: ``vq_codebook`` and ``vq_commitment`` (scalars with gradient),
``vq_perplexity`` (exp of the entropy of the code usage of the batch) and ``vq_codes_used``
(distinct codes chosen), detached, and ``codes`` ``[B, h, w]`` (int64).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import PRETRAIN_TAG, register_model
from cloudfree.models.api import (
    CloudRemovalModel,
    InputSpec,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    check_int,
)
from cloudfree.models.ca_mtcr import CAMTCR, CAMTCRSAREncoder
from cloudfree.models.layers.mbconv import MBConv
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

__all__ = ["CAMTCRSARDecoder", "CAMTCRSARVQVAE", "VQResult", "VectorQuantizer"]

_PAPER = (
    "You et al., Change-aware multi-temporal cloud removal, Sci China Inf Sci 2026 (paper 002): "
    "SAR encoder pre-training (VQ-VAE, Noise2Noise)"
)

#: The ``ca_mtcr`` model's defaults of the arguments it builds its SAR encoder with (this
#: network's defaults follow them, so a default stage 1 fits a default stage 2).
_CA_MTCR_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(CAMTCR).parameters.items()
    if p.default is not inspect.Parameter.empty
}


@dataclass
class VQResult:
    """What :class:`VectorQuantizer` returns for ``z_e [B, D, h, w]``.

    Attributes:
        quantized: ``z_e + sg[e - z_e]`` (the codes' values, straight-through gradient).
        codes: chosen code per position ``[B, h, w]`` (int64).
        codebook_loss: ``mean (sg[z_e] - e)^2`` (moves the codes; alpha's term).
        commitment_loss: ``mean (z_e - sg[e])^2`` (moves the encoder; beta's term).
        perplexity: ``exp(-sum_k p_k log p_k)`` of the batch's code usage (detached).
        codes_used: number of distinct codes chosen in the batch (detached).
    """

    quantized: Tensor
    codes: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    codes_used: Tensor


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class VectorQuantizer(nn.Module):
    """VQ-VAE codebook with straight-through gradients and a dead-code guard (see the module
    docstring for every decision).

    Args:
        num_codes: codebook size K.
        dim: code dimension D (the encoder's output channels).
        dead_code_steps: re-seed a code unused for this many consecutive training forwards
            (0: never).

    Parameters / buffers: ``weight [K, D]`` (the codes), ``steps_unused [K]`` (int64).
    """

    def __init__(self, num_codes: int = 512, dim: int = 64, dead_code_steps: int = 100) -> None:
        super().__init__()
        self.num_codes = check_int("VectorQuantizer", "num_codes", num_codes, 1)
        self.dim = check_int("VectorQuantizer", "dim", dim, 1)
        self.dead_code_steps = check_int("VectorQuantizer", "dead_code_steps", dead_code_steps, 0)
        bound = 1.0 / self.num_codes
        self.weight = nn.Parameter(torch.empty(self.num_codes, self.dim).uniform_(-bound, bound))
        self.register_buffer("steps_unused", torch.zeros(self.num_codes, dtype=torch.int64))

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, dead_code_steps={self.dead_code_steps}"

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean distance, float32, no gradient;
        ties: the lowest index) for every row of ``flat [N, D]``."""
        with torch.no_grad():
            z = flat.detach().float()
            e = self.weight.detach().float()
            dist = (z * z).sum(1, keepdim=True) - 2.0 * (z @ e.t()) + (e * e).sum(1)[None]
            return dist.argmin(dim=1)

    def forward(self, z_e: Tensor) -> VQResult:
        if z_e.ndim != 4 or z_e.shape[1] != self.dim:
            raise ConfigError(
                f"VectorQuantizer: z_e must be [B, {self.dim}, h, w], got {tuple(z_e.shape)}"
            )
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat)
        e = F.embedding(codes, self.weight).view(b, h, w, d).permute(0, 3, 1, 2)
        z32, e32 = z_e.float(), e.float()
        codebook_loss = F.mse_loss(e32, z32.detach())
        commitment_loss = F.mse_loss(z32, e32.detach())
        quantized = z_e + (e.to(z_e.dtype) - z_e).detach()
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.num_codes)
            p = counts.float() / max(int(codes.numel()), 1)
            perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
            codes_used = (counts > 0).sum()
        if self.training and self.dead_code_steps > 0:
            self._reseed_dead_codes(flat.detach(), counts)
        return VQResult(
            quantized=quantized,
            codes=codes.view(b, h, w),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity,
            codes_used=codes_used,
        )

    @torch.no_grad()
    def _reseed_dead_codes(self, flat: Tensor, counts: Tensor) -> None:
        """The dead-code guard (module docstring): update the counters with this forward's
        ``counts [K]`` and re-seed every code unused for ``dead_code_steps`` forwards with
        random rows of ``flat [N, D]`` (this batch's encoder outputs)."""
        counts = counts.clone()
        if _distributed():
            torch.distributed.all_reduce(counts)
        unused = torch.where(counts > 0, torch.zeros_like(self.steps_unused), self.steps_unused + 1)
        self.steps_unused.copy_(unused)
        dead = torch.nonzero(self.steps_unused >= self.dead_code_steps).flatten()
        k = int(dead.numel())
        if k == 0:
            return
        n = int(flat.shape[0])
        if k <= n:
            pick = torch.randperm(n, device=flat.device)[:k]
        else:
            pick = torch.randint(n, (k,), device=flat.device)
        new = flat[pick].to(self.weight.dtype).contiguous()
        if _distributed():
            torch.distributed.broadcast(new, src=0)
        self.weight[dead] = new
        self.steps_unused[dead] = 0


def _up(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Nearest-neighbour upsampling by ``stride`` (none for 1), then a 3x3 conv (reflect)."""
    layers: list[nn.Module] = []
    if stride > 1:
        layers.append(nn.Upsample(scale_factor=stride, mode="nearest"))
    layers.append(nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"))
    return nn.Sequential(*layers)


class CAMTCRSARDecoder(nn.Module):
    """The VQ-VAE decoder: the encoder mirrored (module docstring).

    ``MBConv -> MBConv -> up(s3): in_channels -> width -> GELU -> up(s2): width -> width ->
    GELU -> up(s1): width -> out_channels`` for the encoder's strides ``(s1, s2, s3)``.

    Args:
        out_channels: SAR bands reconstructed (the encoder's ``in_channels``).
        width: channels of the two inner stages (the encoder's ``width``).
        in_channels: latent channels (the encoder's ``out_channels``, a multiple of 4).
        strides: the encoder's three strides.
    """

    def __init__(
        self,
        out_channels: int = 2,
        width: int = 32,
        in_channels: int = 64,
        strides: tuple[int, int, int] = (1, 2, 2),
    ) -> None:
        super().__init__()
        s1, s2, s3 = (int(s) for s in strides)
        self.blocks = nn.Sequential(
            MBConv(in_channels, 2, "group"), MBConv(in_channels, 2, "group")
        )
        self.ups = nn.Sequential(
            _up(in_channels, width, s3),
            nn.GELU(),
            _up(width, width, s2),
            nn.GELU(),
            _up(width, out_channels, s1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.ups(self.blocks(z))


class CAMTCRSARVQVAE(CloudRemovalModel):
    """VQ-VAE around CA-MTCR's SAR encoder, for Noise2Noise pre-training (module docstring).

    ``sar [B, in_sar, H, W] -> sar_encoder -> z_e [B, sar_channels, H/p, W/p] -> codebook
    -> z_q -> decoder -> [B, in_sar, H, W]`` (p = ``patch_size``; padded and cropped).

    Args:
        in_sar: SAR bands (2: VV, VH).
        sar_width, sar_channels, patch_size: the
            :class:`~cloudfree.models.ca_mtcr.CAMTCRSAREncoder`'s ``width``, ``out_channels``
            and ``downsample``, named and defaulted as in the ``ca_mtcr`` model; the decoder
            mirrors the encoder.
        num_codes: codebook size K (512).
        dead_code_steps: the dead-code guard's patience N (100 training forwards; 0: off).

    Submodules: ``sar_encoder`` (kept by stage 2), ``codebook`` (:class:`VectorQuantizer`),
    ``decoder`` (:class:`CAMTCRSARDecoder`); both of the latter are discarded by stage 2.
    """

    def __init__(
        self,
        in_sar: int = _CA_MTCR_DEFAULTS.get("in_sar", 2),
        sar_width: int = _CA_MTCR_DEFAULTS.get("sar_width", 32),
        sar_channels: int = _CA_MTCR_DEFAULTS.get("sar_channels", 64),
        patch_size: int = _CA_MTCR_DEFAULTS.get("patch_size", 4),
        num_codes: int = 512,
        dead_code_steps: int = 100,
    ) -> None:
        super().__init__()
        self.in_channels = self.check_int("in_sar", in_sar, 1)
        self.sar_encoder = CAMTCRSAREncoder(in_sar, sar_width, sar_channels, patch_size)
        self.downsample = int(self.sar_encoder.downsample)
        self.codebook = VectorQuantizer(
            num_codes, int(self.sar_encoder.out_channels), dead_code_steps
        )
        self.decoder = CAMTCRSARDecoder(
            out_channels=in_sar,
            width=sar_width,
            in_channels=int(self.sar_encoder.out_channels),
            strides=tuple(self.sar_encoder.strides),  # type: ignore[arg-type]
        )

    def reconstruct(self, sar: Tensor) -> tuple[Tensor, VQResult]:
        """The reconstruction ``[B, in_sar, H, W]`` of ``sar`` and the codebook's result."""
        self.check_image("sar", sar, self.in_channels)
        h, w = sar.shape[-2:]
        minimum = 2 * self.downsample
        if h < minimum or w < minimum:
            raise ConfigError(
                f"CAMTCRSARVQVAE: H and W must be at least 2 * patch_size = {minimum}, got {h}x{w}"
            )
        ph = padding_to_multiple(int(h), self.downsample)
        pw = padding_to_multiple(int(w), self.downsample)
        z_e = self.sar_encoder(pad_bottom_right(sar, ph, pw))
        vq = self.codebook(z_e)
        out = self.decoder(vq.quantized)
        return out[..., :h, :w], vq

    def forward(self, optical: Tensor | None = None, sar: Tensor | None = None) -> ModelOutput:
        """``ModelOutput(pred=reconstructed sar, extras=VQ terms)``; ``optical`` is ignored."""
        if sar is None:
            raise ConfigError("CAMTCRSARVQVAE needs sar [B, C, H, W], got none")
        pred, vq = self.reconstruct(sar)
        return ModelOutput(
            pred=pred,
            extras={
                "vq_codebook": vq.codebook_loss,
                "vq_commitment": vq.commitment_loss,
                "vq_perplexity": vq.perplexity,
                "vq_codes_used": vq.codes_used,
                "codes": vq.codes,
            },
        )


def _spec(kw: Mapping[str, Any]) -> ModelSpec:
    c = int(kw["in_sar"])
    return ModelSpec(
        inputs=InputSpec(
            temporal=False,
            needs_sar=True,
            needs_optical=False,
            optical_channels=None,
            sar_channels=c,
            spatial_multiple=int(kw["patch_size"]),
        ),
        outputs=OutputSpec(channels=c),
        tasks=frozenset({"sar_pretrain"}),
    )


@register_model(
    "ca_mtcr_sar_vqvae",
    default_recipe="ca_mtcr_sar_pretrain",
    paper=_PAPER,
    protocol="uncrtaints",
    description="CA-MTCR SAR encoder pre-training: VQ-VAE, Noise2Noise (paper 002; not a "
    "cloud-removal model)",
    spec=_spec,
    model_class=CAMTCRSARVQVAE,
    tags={PRETRAIN_TAG},
)
def ca_mtcr_sar_vqvae(**kwargs: Any) -> CAMTCRSARVQVAE:
    """The VQ-VAE that pre-trains CA-MTCR's SAR encoder (Noise2Noise)."""
    return CAMTCRSARVQVAE(**kwargs)
