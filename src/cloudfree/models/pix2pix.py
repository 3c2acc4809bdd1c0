"""The pix2pix U-Net generator and the two cloud-removal GANs built on it: SAR-Opt-cGAN
("McGAN", SAR + optical in) and SAR2OPT (SAR in).

Sources:

* pix2pix: P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-image translation with
  conditional adversarial networks", CVPR 2017 (appendix 6.1: the U-Net and the PatchGAN) and
  its official code ``junyanz/pytorch-CycleGAN-and-pix2pix`` (``models/networks.py``:
  ``UnetGenerator``, ``UnetSkipConnectionBlock``, ``init_weights``; ``unet_256`` is
  ``num_downs=8``), read for the facts below; this module is an independent re-implementation
  (no parity fixture: the official code ships no weights for these inputs).
* SAR-Opt-cGAN: C. Grohnfeldt, M. Schmitt, X. X. Zhu, "A conditional generative adversarial
  network to fuse SAR and multispectral optical data for cloud removal from Sentinel-2
  images", IGARSS 2018, pp. 1726-1729: pix2pix's U-Net generator and PatchGAN discriminator on
  all 13 Sentinel-2 bands concatenated with the 2 Sentinel-1 bands (VV, VH), 256 x 256 patches,
  13 bands out. Papers 000 and 003 compare against it as "McGAN" (paper 000 miscites it as
  Mroueh et al.; audit row B-3), paper 001 (GLF-CR) as "SAR-Opt-cGAN". The IGARSS text is not
  in this project's paper collection: what is taken from it is what papers 000 / 001 / 003
  and SPEC section 5.6 state (the inputs, the U-Net, the PatchGAN); every other setting below
  is pix2pix's or a **Decision**.
* SAR2OPT: J. D. Bermudez, P. N. Happ, D. A. B. Oliveira, R. Q. Feitosa, "SAR to optical image
  synthesis for cloud removal with generative adversarial networks", ISPRS Annals IV-1 (2018)
  5-11: a pix2pix translation from SAR alone to the optical image. Paper 001 (GLF-CR, Table 1)
  trains it with "the same generator architecture" as SAR-Opt-cGAN, which is what is built
  here (audit row B-6: none of papers 000 / 002 / 003 uses it).

The U-Net (:class:`UNetGenerator`, facts of the official code unless marked)::

    level j = 0 .. n-1 (n = num_downs), width w_j = ngf * min(2**j, 8)
    down_0     = Conv4x4/2(C_in -> w_0)                          (no norm: outermost)
    down_j     = LeakyReLU(0.2), Conv4x4/2(w_{j-1} -> w_j), Norm  (0 < j < n-1)
    down_{n-1} = LeakyReLU(0.2), Conv4x4/2(w_{n-2} -> w_{n-1})    (no norm: innermost)
    up_{n-1}   = ReLU, ConvT4x4/2(w_{n-1} -> w_{n-2}), Norm
    up_j       = ReLU, ConvT4x4/2(2 w_j -> w_{j-1}), Norm [, Dropout(0.5)]  on cat(d_j, u_{j+1})
    up_0       = ReLU, ConvT4x4/2(2 w_0 -> C_out)                (then the output activation)

with padding 1 everywhere, so a ``2**n``-pixel side reaches 1 pixel at the bottleneck (256 px
with pix2pix's ``unet_256``). The skip concatenation puts the encoder feature first
(``cat([x, block(x)])``). The official block starts with an in-place LeakyReLU that also
rewrites the tensor kept for the skip; the decoder's ReLU follows it at once and
``ReLU(LeakyReLU(d)) = ReLU(d)``, so keeping the skip before the activation (as here) gives
the same numbers. ``num_downs`` below 5 (the official code always builds its five outer levels)
builds the first ``num_downs`` levels of the same layout.

Decisions and quirks, each an option:

* **Norm** (``norm``): ``"instance"`` by default, ``"batch"`` (pix2pix's default) and
  ``"none"`` available. pix2pix trains with batch size 1, where a training-mode BatchNorm *is*
  a per-sample (instance) norm with an affine scale, and its ``test.py`` keeps the network in
  training mode unless ``--eval`` is given, so the published results never used BatchNorm's
  running averages; here ``model.eval()`` is the rule (the engine validates and predicts in
  eval mode), where BatchNorm would switch to running statistics pix2pix never tested with.
  InstanceNorm (affine-free as pix2pix's ``--norm instance``; no running statistics) computes
  the same in training and evaluation, for any batch size and under DDP, as this code base's
  PatchGAN does by default.
* **Biases** follow the official rule: no conv bias with ``norm="batch"`` (including the
  outermost down-conv, which no norm follows: an official quirk kept for its layout and
  parameter count), biases everywhere with ``"instance"`` (redundant before an affine-free
  norm, kept for the same reason), and the outermost up-conv always has one. With ``"none"``
  every conv has a bias (the official rule, which tests for InstanceNorm, would drop them all;
  a network without norms needs them: **Decision**).
* **Dropout** (``dropout``, 0.5; 0 disables): ``dropout_layout="official"`` puts it after the
  up-conv norm of the ``num_downs - 5`` levels between the innermost one and the four outer
  ones (decoder layers 2-4 counted from the bottleneck at 256 px, 3 layers; none below
  ``num_downs=6``); ``"paper"`` follows the paper's appendix 6.1.1 (``CD512-CD1024-CD1024``:
  the first three decoder layers, the innermost up-conv included; at most ``num_downs - 1``).
  The paper also keeps dropout on at test time as the generator's noise (and so does the
  official ``test.py`` without ``--eval``); here dropout is off in eval mode (deterministic
  predictions) unless ``dropout_at_eval=True`` (the faithful form).
* **Weights**: N(0, 0.02) for every (transposed) conv, zero biases, BatchNorm scales N(1, 0.02)
  and shifts 0 (pix2pix's ``init_type='normal'``, ``init_gain=0.02``).
* **Value range.** pix2pix normalises its images to [-1, 1] and ends in Tanh. The inputs here
  are in the ``glf_cr`` protocol's [0, 1] (optical DN / 10000; VV [-25, 0] and VH
  [-32.5, 0] dB to [0, 1]), so (**Decision**) every input is mapped to pix2pix's range
  (``2 x - 1``, its ``Normalize(0.5, 0.5)``) and the Tanh output back (``pred = (v + 1) / 2``,
  in (0, 1)): exactly pix2pix's function on [0, 1] data. ``output_activation="none"`` leaves
  the last layer linear (``pred = (v + 1) / 2`` unbounded). With another protocol (e.g.
  ``dsen2cr``'s [0, 5]) the mapping does not fit: keep ``glf_cr``.
* **Global residual** (``residual``, SAR-Opt-cGAN only): off, as in pix2pix and (by papers
  000 / 001 / 003's descriptions) Grohnfeldt et al.; ``residual=True`` reads the last layer's
  value as a correction of the cloudy input, ``pred = optical + v`` (with Tanh a correction in
  (-1, 1), the range of a difference of two [0, 1] images).
* **Input order**: optical bands first, then VV, VH (as DSen2-CR and this code base).
* **Any H and W**: the U-Net needs sides that are multiples of ``2**num_downs``; inputs are
  padded at the bottom and right to the next multiple (at least ``2**num_downs``) with
  reflection (:func:`~cloudfree.models.layers.padding.pad_bottom_right`; replication where
  the pad reaches the image side) and the output is cropped back. Reflection continues the
  image instead of adding the [-1, 1] domain's extreme -1 (zero in [0, 1]) as a border.
  Inputs smaller than ``2**num_downs`` are accepted, not refused (tiles clipped at a scene
  border and the shared test sizes must run) and depth is not reduced (that would drop trained
  innermost levels and change the function): such an input is mostly padding, so train and
  predict on tiles of at least ``2**num_downs`` pixels (choose ``num_downs=7``, pix2pix's
  ``unet_128``, for 128 px crops).
* **SAR2OPT and the optical input**: its spec declares ``needs_optical=False``
  (:class:`~cloudfree.models.api.InputSpec`): ``optical`` is still passed (it fixes the band
  set and size of the output and is the cloudy reference of the losses and metrics) but never
  read; ``in_optical`` is the number of output bands.

Bands: all 13 Sentinel-2 L1C bands by default (Grohnfeldt et al.); ``in_optical=3`` with
``data.bands=rgb`` gives the RGB set paper 000 trains its baselines on (the output always
has the optical band set's channels).

Sizes (defaults, ``ngf=64``, ``num_downs=8``; multiply-accumulates at 256 x 256, torch's
``FlopCounterMode`` / 2): SAR-Opt-cGAN (15 -> 13) 54,442,381 parameters, 6.59 G MACs; SAR2OPT
(2 -> 13) 54,429,069 parameters, 6.37 G MACs (most parameters sit in the ``8 ngf`` levels
at 1-16 px, so few MACs per parameter). pix2pix's own ``unet_256`` (3 -> 3, BatchNorm) has
54,413,955 (its "54.414 M"); with ``norm="batch"`` the two models have 54,446,733 and
54,433,421.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelSpec, OutputSpec
from cloudfree.models.layers.norm import norm_layer
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

__all__ = [
    "DROPOUT_LAYOUTS",
    "NORMS",
    "OUTPUT_ACTIVATIONS",
    "SAR2OPT",
    "SAROptCGAN",
    "UNetGenerator",
    "dropout_levels",
    "sar2opt",
    "sar_opt_cgan",
]

#: Norms of :class:`UNetGenerator` (a subset of :data:`cloudfree.models.layers.norm.NORMS`).
NORMS = ("instance", "batch", "none")
#: Where the decoder's dropout goes (see the module docstring).
DROPOUT_LAYOUTS = ("official", "paper")
#: Activations of the generator's last layer.
OUTPUT_ACTIVATIONS = ("tanh", "none")


def _choice(owner: str, name: str, value: object, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ConfigError(f"{owner}: {name} must be one of {', '.join(valid)}, got {value!r}")
    return str(value)


def dropout_levels(num_downs: int, layout: str = "official") -> tuple[int, ...]:
    """The U-Net levels ``j`` (0 = outermost) whose up-convolution is followed by dropout:
    ``official``: ``4 .. num_downs - 2`` (the ``num_downs - 5`` middle levels); ``paper``: the
    three innermost levels, at most ``num_downs - 1`` (never the output layer)."""
    check = _choice("dropout_levels", "layout", layout, DROPOUT_LAYOUTS)
    if check == "official":
        return tuple(range(4, num_downs - 1))
    return tuple(range(max(1, num_downs - 3), num_downs))


class _EvalDropout(nn.Dropout):
    """Dropout that stays active in eval mode (pix2pix's test-time noise)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=True, inplace=False)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net (see the module docstring for the layout and the decisions).

    A plain network: ``x [B, in_channels, H, W]`` with ``H`` and ``W`` multiples of
    ``2**num_downs`` (no padding, no value mapping) -> the last transposed convolution's
    output ``[B, out_channels, H, W]`` *before* the output activation (the cloud-removal models
    apply Tanh or nothing).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        num_downs: stride-2 levels (8 for 256 px: pix2pix's ``unet_256``; 7: ``unet_128``).
        ngf: width of the outermost level (64); level ``j`` has ``ngf * min(2**j, 8)``.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        dropout: dropout probability in the decoder (0.5; 0 for none).
        dropout_layout: ``"official"`` or ``"paper"`` (:func:`dropout_levels`).
        dropout_at_eval: keep the dropout active in eval mode (pix2pix's test-time noise).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: float = 0.5,
        dropout_layout: str = "official",
        dropout_at_eval: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value, minimum in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("num_downs", num_downs, 1),
            ("ngf", ngf, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
        self.norm = _choice(owner, "norm", norm, NORMS)
        self.dropout_layout = _choice(owner, "dropout_layout", dropout_layout, DROPOUT_LAYOUTS)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0.0 <= float(dropout) < 1.0
        ):
            raise ConfigError(f"{owner}: dropout must be a number in [0, 1), got {dropout!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_downs, self.ngf = num_downs, ngf
        self.dropout = float(dropout)
        self.dropout_at_eval = bool(dropout_at_eval)

        n = num_downs
        widths = [ngf * min(2**j, 8) for j in range(n)]
        bias = self.norm != "batch"  # the official use_bias rule ("none": module docstring)
        dropped = set(dropout_levels(n, self.dropout_layout)) if self.dropout > 0 else set()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for j in range(n):
            cin = in_channels if j == 0 else widths[j - 1]
            down: list[nn.Module] = [] if j == 0 else [nn.LeakyReLU(0.2)]
            down.append(nn.Conv2d(cin, widths[j], 4, stride=2, padding=1, bias=bias))
            if 0 < j < n - 1:
                down += self._norm(widths[j])
            self.downs.append(nn.Sequential(*down))

            up_in = widths[j] if j == n - 1 else 2 * widths[j]
            up_out = out_channels if j == 0 else widths[j - 1]
            up: list[nn.Module] = [
                nn.ReLU(),
                nn.ConvTranspose2d(up_in, up_out, 4, stride=2, padding=1, bias=bias or j == 0),
            ]
            if j > 0:
                up += self._norm(up_out)
            if j in dropped:
                up.append((_EvalDropout if self.dropout_at_eval else nn.Dropout)(self.dropout))
            self.ups.append(nn.Sequential(*up))
        self.reset_parameters()

    def _norm(self, channels: int) -> list[nn.Module]:
        layer = norm_layer(self.norm, channels)
        return [] if layer is None else [layer]

    @property
    def multiple(self) -> int:
        """The side multiple the network needs: ``2**num_downs``."""
        return 2**self.num_downs

    def reset_parameters(self) -> None:
        """pix2pix's ``init_weights('normal', 0.02)`` (module docstring)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """The last up-convolution's output (before the activation) of ``x``."""
        m = self.multiple
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-2] % m or x.shape[-1] % m:
            raise ConfigError(
                f"UNetGenerator: expects [B, {self.in_channels}, H, W] with H and W multiples "
                f"of {m} (2**num_downs), got {tuple(x.shape)}"
            )
        skips: list[Tensor] = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        for j in range(self.num_downs - 1, -1, -1):
            if j < self.num_downs - 1:
                h = torch.cat([skips[j], h], dim=1)  # encoder feature first, as the official
            h = self.ups[j](h)
        return h


class _Pix2PixModel(CloudRemovalModel):
    """Shared parts of the two cloud-removal GANs: the U-Net, padding, value mapping."""

    def _build(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int,
        ngf: int,
        norm: str,
        dropout: float,
        dropout_layout: str,
        dropout_at_eval: bool,
        output_activation: str,
    ) -> None:
        self.output_activation = _choice(
            type(self).__name__, "output_activation", output_activation, OUTPUT_ACTIVATIONS
        )
        self.unet = UNetGenerator(
            in_channels,
            out_channels,
            num_downs=num_downs,
            ngf=ngf,
            norm=norm,
            dropout=dropout,
            dropout_layout=dropout_layout,
            dropout_at_eval=dropout_at_eval,
        )

    def generate(self, x: Tensor) -> Tensor:
        """The activated last layer ``v`` for inputs ``x`` in [0, 1] of any size: mapped to
        [-1, 1], padded to the U-Net's multiple, run, cropped back."""
        h, w = x.shape[-2:]
        m = self.unet.multiple
        ph, pw = padding_to_multiple(h, m, minimum=m), padding_to_multiple(w, m, minimum=m)
        z = self.unet(pad_bottom_right(2.0 * x - 1.0, ph, pw))[..., :h, :w]
        return torch.tanh(z) if self.output_activation == "tanh" else z


class SAROptCGAN(_Pix2PixModel):
    """SAR-Opt-cGAN / McGAN (Grohnfeldt et al., IGARSS 2018): the pix2pix U-Net on
    ``cat(optical, sar)``, the optical bands out (see the module docstring).

    Args:
        in_optical: optical channels (13), also the output channels.
        in_sar: SAR channels (2: VV, VH); 0 builds an optical-only pix2pix.
        num_downs: U-Net levels (8 for 256 px).
        ngf: width of the outermost level (64).
        norm: ``"instance"`` (default), ``"batch"`` (pix2pix's) or ``"none"``.
        dropout: decoder dropout probability (0.5).
        dropout_layout: ``"official"`` (default) or ``"paper"``.
        dropout_at_eval: dropout also in eval mode (pix2pix's test-time noise; default off).
        output_activation: ``"tanh"`` (pix2pix) or ``"none"``.
        residual: ``pred = optical + v`` instead of ``(v + 1) / 2`` (off: not in pix2pix).

    Inputs in the ``glf_cr`` scaling ([0, 1]); the output ``[B, in_optical, H, W]`` in the
    same scaling.
    """

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: float = 0.5,
        dropout_layout: str = "official",
        dropout_at_eval: bool = False,
        output_activation: str = "tanh",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 0)
        if not isinstance(residual, bool):
            raise ConfigError(f"SAROptCGAN: residual must be true or false, got {residual!r}")
        self.residual = residual
        self._build(
            in_optical + in_sar, in_optical, num_downs, ngf, norm, dropout, dropout_layout,
            dropout_at_eval, output_activation,
        )  # fmt: skip

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        """The cloud-free estimate from ``cat(optical, sar)`` (``sar`` ignored when
        ``in_sar == 0``)."""
        self.check_image("optical", optical, self.in_optical)
        x = optical
        if self.in_sar > 0:
            if sar is None:
                raise ConfigError("SAROptCGAN: this model needs a SAR input (in_sar > 0)")
            self.check_image("sar", sar, self.in_sar, like=optical)
            x = torch.cat([optical, sar.to(optical.dtype)], dim=1)
        v = self.generate(x)
        return optical + v if self.residual else 0.5 * (v + 1.0)


class SAR2OPT(_Pix2PixModel):
    """SAR2OPT (Bermudez et al., ISPRS Annals 2018): the pix2pix U-Net on SAR alone, the
    optical bands out; ``optical`` is accepted and ignored (see the module docstring).

    Args:
        in_optical: output channels (the optical band set: 13).
        in_sar: SAR channels (2: VV, VH).
        num_downs, ngf, norm, dropout, dropout_layout, dropout_at_eval, output_activation:
            as :class:`SAROptCGAN`.
    """

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: float = 0.5,
        dropout_layout: str = "official",
        dropout_at_eval: bool = False,
        output_activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 1)
        self._build(
            in_sar, in_optical, num_downs, ngf, norm, dropout, dropout_layout, dropout_at_eval,
            output_activation,
        )  # fmt: skip

    def forward(self, optical: Tensor | None = None, sar: Tensor | None = None) -> Tensor:
        """The optical image synthesised from ``sar``; ``optical`` (the band set and size
        reference) is checked when given but not read."""
        if sar is None:
            raise ConfigError("SAR2OPT: this model needs a SAR input")
        if optical is not None:
            self.check_image("optical", optical, self.in_optical)
            self.check_image("sar", sar, self.in_sar, like=optical)
        else:
            self.check_image("sar", sar, self.in_sar)
        dtype = optical.dtype if optical is not None else sar.dtype
        return 0.5 * (self.generate(sar.to(dtype)) + 1.0)


# ------------------------------------------------------------------------------ registry
_TASKS = frozenset({"regression", "adversarial"})


def sar_opt_cgan_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of :class:`SAROptCGAN` built with ``kwargs``: mono-temporal, ``in_optical``
    channels in and out, SAR when ``in_sar > 0``, padded to ``2**num_downs``, adversarial."""
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            needs_sar=kwargs["in_sar"] > 0,
            spatial_multiple=2 ** int(kwargs["num_downs"]),
        ),
        OutputSpec(channels=kwargs["in_optical"]),
        _TASKS,
    )


def sar2opt_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of :class:`SAR2OPT`: SAR in, no optical (``needs_optical=False``; the
    optical input only names the ``in_optical`` output bands), adversarial."""
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            needs_sar=True,
            needs_optical=False,
            spatial_multiple=2 ** int(kwargs["num_downs"]),
        ),
        OutputSpec(channels=kwargs["in_optical"]),
        _TASKS,
    )


@register_model(
    "sar_opt_cgan",
    paper="Grohnfeldt, Schmitt, Zhu, IGARSS 2018 (SAR-Opt-cGAN, 'McGAN'); pix2pix U-Net",
    protocol="glf_cr",
    bands="all",
    description="SAR-Opt-cGAN / McGAN: pix2pix U-Net (ngf 64, 8 levels) on S2 + S1, PatchGAN",
    spec=sar_opt_cgan_spec,
    model_class=SAROptCGAN,
    default_recipe="sar_opt_cgan",
)
def sar_opt_cgan(**kwargs: Any) -> SAROptCGAN:
    """SAR-Opt-cGAN (McGAN); kwargs go to :class:`SAROptCGAN`."""
    return SAROptCGAN(**kwargs)


@register_model(
    "sar2opt",
    paper="Bermudez et al., ISPRS Annals 2018 (SAR2OPT); pix2pix U-Net",
    protocol="glf_cr",
    bands="all",
    description="SAR2OPT: pix2pix U-Net from S1 alone to the S2 bands, PatchGAN",
    spec=sar2opt_spec,
    model_class=SAR2OPT,
    default_recipe="sar2opt",
)
def sar2opt(**kwargs: Any) -> SAR2OPT:
    """SAR2OPT; kwargs go to :class:`SAR2OPT`."""
    return SAR2OPT(**kwargs)
