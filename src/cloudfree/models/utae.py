"""U-TAE (Garnot & Landrieu, ICCV 2021): a U-Net whose encoder is shared over the dates and whose
skip connections are aggregated over time with the L-TAE's attention.

:class:`UTAE` is the backbone of ``VSainteuf/utae-paps`` (``src/backbones/utae.py``), with the same
constructor arguments, state-dict keys and numerics (parity case ``utae``), called as the
official one: ``out = model(x, batch_positions=...)``, ``out, attn = model(x, batch_positions,
return_att=True)``; ``x`` is ``[B, T, C, H, W]``, ``batch_positions`` ``[B, T]``.

* **Padded dates** are the frames whose every value equals ``pad_value`` (0): the shared
  convolution blocks are run on the other frames only and write ``pad_value`` for them
  (:func:`_shared`; as officially, every block looks at its own input frames again), the L-TAE
  masks them in its attention (its input GroupNorm still sees their zero features), and the
  skip aggregation weights them 0. :meth:`UTAE.features` also takes the pad mask explicitly.
* **Encoder**: ``in_conv`` (two 3x3 conv + GroupNorm(4) + ReLU), then per stage a strided 4x4 conv
  and a residual pair of 3x3 convs (``DownConvBlock``); GroupNorm by default (``encoder_norm``).
* **Temporal encoder**: :class:`~cloudfree.models.layers.ltae.LTAE2d` on the deepest features
  (``mlp = [d_model, encoder_widths[-1]]``, attention returned).
* **Decoder**: per stage a transposed 4x4 conv, the skip (attention-aggregated over time, the
  attention bilinearly resized to its resolution, per channel group: :func:`temporal_aggregate`,
  which also takes the wide images the official code cannot) through a 1x1 conv, two 3x3 convs
  (BatchNorm); ``out_conv`` is a conv block **with** BatchNorm + ReLU after its last conv, as the
  official ``ConvBlock([32, 20])`` (so its outputs are >= 0).

**The UnCRtainTS variant.** ``PatrickTUM/UnCRtainTS`` (``model/src/backbones/utae.py``) trains
its U-TAE baseline (``--model utae``) with its own modified copy of the class. The constructor
options below switch our :class:`UTAE` to it; their defaults are the utae-paps behaviour (the
``utae`` block and its parity are unchanged), :data:`UNCRTAINTS_LAYOUT` holds the UnCRtainTS
values, and the state-dict keys are those of the official class of each variant:

* ``in_conv_style="uncrtaints"``: ``in_conv`` is **one 1x1** conv + ``encoder_norm`` + ReLU
  (``ConvBlock([input_dim, w0], k=1, p=0)``), not two 3x3 convs;
* ``residual_relu=False``: ``conv2`` of every down and up block ends without its ReLU (its output
  is added onto the residual path);
* ``norm_skip`` / ``norm_up`` (both ``"batch"`` in UnCRtainTS, as utae-paps hard-codes): the norm
  after the skip's 1x1 conv and after the transposed conv (``"none"``: conv + ReLU);
  ``decoder_norm`` the norm of the decoder's 3x3 convs (``"batch"``);
* ``positional_encoding`` (True): the L-TAE's date encoding;
* ``out_conv_style="uncrtaints"``: ``out_conv`` is 1x1 convs **without** norm and without the
  last ReLU (``ConvBlock(..., k=1, p=0, norm='none', last_relu=False)``).

The official class's output head (``scale_by * sigmoid`` on the first 13 channels, softplus on
the rest, ``[B, 1, C, H, W]``) is not part of :class:`UTAE`: :class:`UTAECR` applies it (on
``in_optical`` channels instead of a hard-coded 13). Its ``TemporallySharedBlock`` also runs
every shared block once on an all-zero dummy batch per call, only to learn the output shape
(a quirk: with ``encoder_norm="batch"`` in training mode that would feed zeros into the
running statistics); we do not, which changes nothing with the default GroupNorm.

The U-TAE backbone is registered as the building block ``utae`` (tag ``block``: not a
cloud-removal model by itself, hidden from ``list_models()``);
``load_official_checkpoint("utae", path, **kwargs)`` reads the official ``{'state_dict': ...}``
files. The cloud-removal model :class:`UTAECR` is registered as ``utae_cr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import BLOCK_TAG, register_model
from cloudfree.models.api import (
    CloudRemovalModel,
    InputSpec,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    check_int,
)
from cloudfree.models.layers.ltae import LTAE2d
from cloudfree.models.layers.norm import NORMS, norm_layer
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

__all__ = ["UNCRTAINTS_LAYOUT", "UTAE", "UTAECR", "temporal_aggregate"]

#: ``in_conv_style`` / ``out_conv_style`` values: the utae-paps or the UnCRtainTS layout.
CONV_STYLES = ("paps", "uncrtaints")
#: The options that make :class:`UTAE` UnCRtainTS's modified U-TAE (module docstring).
UNCRTAINTS_LAYOUT: dict[str, Any] = {
    "in_conv_style": "uncrtaints",
    "out_conv_style": "uncrtaints",
    "residual_relu": False,
}


def _check_choice(option: str, value: object, valid: Sequence[object]) -> None:
    if value not in valid:
        raise ConfigError(f"U-TAE: {option} must be one of {list(valid)}, got {value!r}")


class _ConvLayer(nn.Module):
    """Convolutions, each followed by a norm and a ReLU (the last ReLU optional); the layers
    sit in ``self.conv`` (state-dict keys ``conv.<i>``)."""

    def __init__(
        self,
        nkernels: Sequence[int],
        norm: str | None = "batch",
        k: int = 3,
        s: int = 1,
        p: int = 1,
        last_relu: bool = True,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n = len(nkernels) - 1
        for i in range(n):
            layers.append(
                nn.Conv2d(
                    nkernels[i], nkernels[i + 1], k, stride=s, padding=p, padding_mode=padding_mode
                )  # fmt: skip
            )
            nl = norm_layer(norm, nkernels[i + 1])
            if nl is not None:
                layers.append(nl)
            if last_relu or i < n - 1:
                layers.append(nn.ReLU())
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _shared(
    block: nn.Module, x: Tensor, pad_value: float | None, padded: Tensor | None = None
) -> Tensor:
    """``block`` applied to every frame of ``x [B, T, C, H, W]``; padded frames are not run
    and come out as ``pad_value`` (0 when None). The padded frames are ``padded [B, T]`` when
    given, else (with ``pad_value``) the frames holding only that value, as officially."""
    if x.ndim == 4:
        return block(x)
    b, t = x.shape[:2]
    flat = x.reshape(b * t, *x.shape[2:])
    if padded is not None:
        skip: Tensor | None = padded.reshape(b * t)
    elif pad_value is not None:
        skip = (flat == pad_value).flatten(1).all(dim=1)
    else:
        skip = None
    fill = 0.0 if pad_value is None else float(pad_value)
    if skip is not None and torch.compiler.is_exporting():
        # traced for export: every frame is run and the padded ones are then filled, the same
        # values (the blocks are per frame, and an export is in eval mode) without the
        # data-dependent branch below, which torch.export cannot trace
        out = block(flat)
        keep = ~skip.view(-1, *([1] * (out.ndim - 1)))
        out = torch.where(keep, out, torch.full((), fill, dtype=out.dtype))
    elif skip is not None and skip.any():
        real = block(flat[~skip])
        out = real.new_full((b * t, *real.shape[1:]), fill)
        out[~skip] = real
    else:
        out = block(flat)
    return out.reshape(b, t, *out.shape[1:])


class _ConvBlock(nn.Module):
    def __init__(self, nkernels: Sequence[int], pad_value: float | None = None,
                 norm: str | None = "batch", last_relu: bool = True, k: int = 3, s: int = 1,
                 p: int = 1, padding_mode: str = "reflect") -> None:  # fmt: skip
        super().__init__()
        self.pad_value = pad_value
        self.conv = _ConvLayer(nkernels, norm=norm, k=k, s=s, p=p, last_relu=last_relu,
                               padding_mode=padding_mode)  # fmt: skip

    def forward(self, x: Tensor, padded: Tensor | None = None) -> Tensor:
        return _shared(self.conv, x, self.pad_value, padded)


class _DownBlock(nn.Module):
    """Strided conv, then ``conv1`` and a residual ``conv2`` (its last ReLU optional)."""

    def __init__(self, d_in: int, d_out: int, k: int, s: int, p: int,
                 pad_value: float | None, norm: str, padding_mode: str,
                 residual_relu: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.pad_value = pad_value
        self.down = _ConvLayer([d_in, d_in], norm=norm, k=k, s=s, p=p, padding_mode=padding_mode)
        self.conv1 = _ConvLayer([d_in, d_out], norm=norm, padding_mode=padding_mode)
        self.conv2 = _ConvLayer([d_out, d_out], norm=norm, padding_mode=padding_mode,
                                last_relu=residual_relu)  # fmt: skip

    def _frame(self, x: Tensor) -> Tensor:
        out = self.conv1(self.down(x))
        return out + self.conv2(out)

    def forward(self, x: Tensor, padded: Tensor | None = None) -> Tensor:
        return _shared(self._frame, x, self.pad_value, padded)  # type: ignore[arg-type]


def _conv_norm_relu(conv: nn.Module, norm: str | None, channels: int) -> nn.Sequential:
    """``conv``, the norm (left out for ``"none"``), ReLU: keys ``0`` (conv) and ``1`` (norm)."""
    nl = norm_layer(norm, channels)
    return nn.Sequential(conv, *([] if nl is None else [nl]), nn.ReLU())


class _UpBlock(nn.Module):
    """Transposed conv, concatenation with the (1x1-conv'd) skip, ``conv1`` and a residual
    ``conv2`` (its last ReLU optional)."""

    def __init__(self, d_in: int, d_out: int, k: int, s: int, p: int, norm: str,
                 d_skip: int | None, padding_mode: str, norm_skip: str = "batch",
                 norm_up: str = "batch", residual_relu: bool = True) -> None:  # fmt: skip
        super().__init__()
        d = d_out if d_skip is None else d_skip
        self.skip_conv = _conv_norm_relu(nn.Conv2d(d, d, 1), norm_skip, d)
        self.up = _conv_norm_relu(
            nn.ConvTranspose2d(d_in, d_out, k, stride=s, padding=p), norm_up, d_out
        )
        self.conv1 = _ConvLayer([d_out + d, d_out], norm=norm, padding_mode=padding_mode)
        self.conv2 = _ConvLayer([d_out, d_out], norm=norm, padding_mode=padding_mode,
                                last_relu=residual_relu)  # fmt: skip

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        out = torch.cat([self.up(x), self.skip_conv(skip)], dim=1)
        out = self.conv1(out)
        return out + self.conv2(out)


def temporal_aggregate(
    x: Tensor, attn: Tensor, pad_mask: Tensor | None, mode: str = "att_group"
) -> Tensor:
    """Aggregate ``x [B, T, C, H, W]`` over time with the L-TAE attention ``[heads, B, T, h,
    w]``, padded dates weighted 0: ``att_group`` (channel group g with head g), ``att_mean``
    (heads averaged; attention resized bilinearly) or ``mean`` (plain mean of the real dates).

    ``att_group`` resizes the attention as the official code: bilinearly when the features'
    **height** exceeds the attention's **width** (the official comparison, a quirk: it mixes
    the two axes), else average-pooled with kernel ``w // H``. For a U-TAE skip (always larger
    than the attention) the pooling branch is only reached by wide images, where the official
    code fails (the pooled map does not have the skip's size); there the attention is resized
    bilinearly instead (our extension: identical results wherever the official code runs)."""
    real = None if pad_mask is None else (~pad_mask).to(x.dtype)
    if mode == "mean":
        if real is None:
            return x.mean(dim=1)
        return (x * real[:, :, None, None, None]).sum(dim=1) / real.sum(dim=1)[:, None, None, None]
    n_heads, b, t, h, w = attn.shape
    if mode == "att_mean":
        a = F.interpolate(attn.mean(dim=0), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if real is not None:
            a = a * real[:, :, None, None]
        return (x * a[:, :, None]).sum(dim=1)
    if mode != "att_group":
        raise ConfigError(f"unknown aggregation mode {mode!r}; valid: att_group, att_mean, mean")
    size = tuple(x.shape[-2:])
    a = attn.reshape(n_heads * b, t, h, w)
    kernel = w // size[0] if size[0] <= w else 0
    if kernel and (h // kernel, w // kernel) == size:
        a = F.avg_pool2d(a, kernel_size=kernel)
    else:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    a = a.view(n_heads, b, t, *size)
    if real is not None:
        a = a * real[None, :, :, None, None]
    groups = torch.stack(x.chunk(n_heads, dim=2))  # [heads, B, T, C / heads, H, W]
    out = (a[:, :, :, None] * groups).sum(dim=2)
    return torch.cat(list(out), dim=1)


class UTAE(nn.Module):
    """The U-TAE backbone (module docstring); argument names as the official constructors
    (utae-paps' and, for the options of the UnCRtainTS variant, UnCRtainTS')."""

    def __init__(
        self,
        input_dim: int,
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] | None = (32, 32, 64, 128),
        out_conv: Sequence[int] = (32, 20),
        str_conv_k: int = 4,
        str_conv_s: int = 2,
        str_conv_p: int = 1,
        agg_mode: str = "att_group",
        encoder_norm: str = "group",
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        encoder: bool = False,
        return_maps: bool = False,
        pad_value: float = 0,
        padding_mode: str = "reflect",
        norm_skip: str = "batch",
        norm_up: str = "batch",
        decoder_norm: str = "batch",
        positional_encoding: bool = True,
        in_conv_style: str = "paps",
        out_conv_style: str = "paps",
        residual_relu: bool = True,
    ) -> None:
        super().__init__()
        enc = list(encoder_widths)
        dec = list(decoder_widths) if decoder_widths is not None else enc
        if len(enc) != len(dec) or enc[-1] != dec[-1]:
            raise ConfigError(
                "U-TAE: encoder_widths and decoder_widths need equal length and last width, "
                f"got {enc} and {dec}"
            )
        _check_choice("agg_mode", agg_mode, ("att_group", "att_mean", "mean"))
        _check_choice("in_conv_style", in_conv_style, CONV_STYLES)
        _check_choice("out_conv_style", out_conv_style, CONV_STYLES)
        for option, value in (("encoder_norm", encoder_norm), ("norm_skip", norm_skip),
                              ("norm_up", norm_up), ("decoder_norm", decoder_norm)):  # fmt: skip
            _check_choice(option, value, (*NORMS, None))
        self.n_stages = len(enc)
        self.encoder, self.return_maps = encoder, return_maps or encoder
        self.pad_value, self.agg_mode = pad_value, agg_mode
        if in_conv_style == "paps":  # two 3x3 conv + norm + ReLU
            self.in_conv = _ConvBlock([input_dim, enc[0], enc[0]], pad_value=pad_value,
                                      norm=encoder_norm, padding_mode=padding_mode)  # fmt: skip
        else:  # one 1x1 conv + norm + ReLU
            self.in_conv = _ConvBlock([input_dim, enc[0]], pad_value=pad_value, norm=encoder_norm,
                                      k=1, p=0, padding_mode=padding_mode)  # fmt: skip
        self.down_blocks = nn.ModuleList(
            _DownBlock(
                enc[i],
                enc[i + 1],
                str_conv_k,
                str_conv_s,
                str_conv_p,
                pad_value,
                encoder_norm,
                padding_mode,
                residual_relu,
            )  # fmt: skip
            for i in range(self.n_stages - 1)
        )
        self.up_blocks = nn.ModuleList(
            _UpBlock(
                dec[i],
                dec[i - 1],
                str_conv_k,
                str_conv_s,
                str_conv_p,
                decoder_norm,
                enc[i - 1],
                padding_mode,
                norm_skip,
                norm_up,
                residual_relu,
            )  # fmt: skip
            for i in range(self.n_stages - 1, 0, -1)
        )
        self.temporal_encoder = LTAE2d(
            in_channels=enc[-1], d_model=d_model, n_head=n_head, mlp=[d_model, enc[-1]],
            return_att=True, d_k=d_k, positional_encoding=positional_encoding,
        )  # fmt: skip
        if out_conv_style == "paps":  # 3x3 convs, each with BatchNorm + ReLU
            self.out_conv = _ConvBlock([dec[0], *out_conv], padding_mode=padding_mode)
        else:  # 1x1 convs, no norm, no ReLU after the last
            self.out_conv = _ConvBlock([dec[0], *out_conv], norm="none", last_relu=False, k=1,
                                       p=0, padding_mode=padding_mode)  # fmt: skip

    def features(
        self, x: Tensor, batch_positions: Tensor | None = None, pad_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Encoder, L-TAE and decoder on ``x [B, T, C, H, W]``: the decoder output before
        ``out_conv`` ``[B, decoder_widths[0], H, W]``, the attention ``[n_head, B, T, h, w]``
        and the decoder's maps (deepest first).

        ``pad_mask [B, T]`` (True on padded dates) overrides the official rule (frames that
        hold only ``pad_value``, looked for again at every shared block): the shared blocks
        then skip exactly those dates, and a real frame is always run even where its features
        happen to be all ``pad_value``."""
        padded = pad_mask
        if pad_mask is None:
            pad_mask = (x == self.pad_value).flatten(2).all(dim=2)  # [B, T]
        maps = [self.in_conv(x, padded)]
        for block in self.down_blocks:
            maps.append(block(maps[-1], padded))
        out, att = self.temporal_encoder(maps[-1], batch_positions=batch_positions,
                                         pad_mask=pad_mask)  # fmt: skip
        decoded = [out]
        for i, block in enumerate(self.up_blocks):
            skip = temporal_aggregate(maps[-(i + 2)], att, pad_mask, self.agg_mode)
            out = block(out, skip)
            decoded.append(out)
        return out, att, decoded

    def forward(
        self, x: Tensor, batch_positions: Tensor | None = None, return_att: bool = False
    ) -> Tensor | tuple[Tensor, Tensor] | tuple[Tensor, list[Tensor]]:
        out, att, decoded = self.features(x, batch_positions)
        if self.encoder:
            return out, decoded
        out = self.out_conv(out)
        if return_att:
            return out, att
        if self.return_maps:
            return out, decoded
        return out


def _same_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The official key names are ours (the strict load names any mismatch)."""
    return dict(state)


def _utae_spec(kwargs: dict) -> ModelSpec:
    return ModelSpec(
        inputs=InputSpec(
            temporal=True,
            needs_sar=False,
            optical_channels=kwargs["input_dim"],
            sar_channels=None,
            needs_dates=True,
        ),  # fmt: skip
        outputs=OutputSpec(channels=list(kwargs["out_conv"])[-1]),
    )


@register_model(
    "utae",
    paper="Garnot & Landrieu, Panoptic segmentation of satellite image time series with "
    "convolutional temporal attention networks (ICCV 2021)",
    protocol="uncrtaints",
    description="U-TAE backbone (building block; utae-paps parity)",
    default_kwargs={"input_dim": 15},
    official_converter=_same_keys,
    official_repo="VSainteuf/utae-paps",
    spec=_utae_spec,
    model_class=UTAE,
    tags={BLOCK_TAG},
)
def utae(**kwargs: object) -> UTAE:
    """U-TAE backbone of utae-paps (a building block, called as the official one)."""
    return UTAE(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------- U-TAE for cloud removal
_OWNER = "UTAECR"


def _widths(name: str, value: Sequence[int]) -> list[int]:
    widths = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    if not widths:
        raise ConfigError(f"{_OWNER}: {name} must be a non-empty list of integers, got {value!r}")
    for w in widths:
        check_int(_OWNER, name, w, 1)
    return widths


def _divisible(name: str, value: int | Sequence[int], by: int, why: str) -> None:
    """ConfigError unless ``value`` (one width or a list of widths) is divisible by ``by``."""
    values = [value] if isinstance(value, int) else list(value)
    if any(v % by for v in values):
        what = "a multiple" if isinstance(value, int) else "multiples"
        shown = value if isinstance(value, int) else values
        raise ConfigError(f"{_OWNER}: {name} must be {what} of {by} ({why}), got {shown}")


class UTAECR(UTAE, CloudRemovalModel):
    """U-TAE as a cloud-removal model, as UnCRtainTS's repository builds and trains its U-TAE
    baseline (``--model utae``; ``model/src/model_utils.py``, ``train_reconstruct.py``,
    ``parse_args.py``, ``src/backbones/base_model.py``).

    * **Network**: :class:`UTAE` with :data:`UNCRTAINTS_LAYOUT` (module docstring), the
      UnCRtainTS configuration by default: ``input_dim = in_sar + in_optical`` (15: with
      ``--use_sar`` as in the README's training command; ``in_sar=0`` is the run without it),
      ``encoder_widths = decoder_widths = [64, 64, 64, 128]`` (the ``--encoder_widths`` /
      ``--decoder_widths`` help: "[64,64,64,128] for U-TAE"), 4x4 strided convs (stride 2,
      padding 1), ``n_head`` 16, ``d_model`` 256, ``d_k`` 4, ``agg_mode`` att_group,
      ``encoder_norm`` group, ``norm_skip`` / ``norm_up`` / ``decoder_norm`` batch,
      ``padding_mode`` reflect, ``pad_value`` 0, dates encoded (``positional_encoding``).
      State-dict keys as UnCRtainTS's ``utae.UTAE`` (after the ``netG.`` prefix of its
      checkpoints): ``load_official_checkpoint("utae_cr", path)``.
    * **Inputs** (model contract, ``uncrtaints`` protocol): ``cat(sar, optical)`` (S1
      **first**) times ``scale_by`` (1, the ``--scale_by`` default; ``BaseModel.set_input``).
      With a ``time_mask`` (always, through :func:`~cloudfree.models.run_model`), padded dates
      have their frames and dates zeroed (so NaN never enters) and the pad mask is
      ``~time_mask``, as our UnCRtainTS; without one, the official rule (frames that are all
      0) applies.
    * **Outputs**: ``pred = sigmoid(raw[:C])`` (the official mean head ``scale_by *
      sigmoid``, ``--mean_nonLinearity`` on by default, divided back by ``scale_by`` as
      ``BaseModel.rescale``). ``covmode=None`` (default) is the official baseline:
      ``train_reconstruct.py`` forces ``loss = 'l2'`` for utae, so ``out_conv`` stays
      ``[13]`` and there is no variance head. ``covmode="diag"`` adds ``C`` channels and
      ``variance = softplus(raw[C:]) / scale_by**2`` (the official class's ``out_var``
      softplus, rescaled as ``BaseModel``; no eps is added, as in the official U-TAE head:
      positive, though a raw value below about -103 underflows to 0 in float32), tasks
      ``{"uncertainty"}``; the official script never trains this head.
    * **Sizes**: the official network takes H and W that are multiples of ``2 ** (stages -
      1)`` (8) and at least twice that (16: the reflect-padded 3x3 convs of the deepest stage
      need 2 pixels); other sizes are padded at the bottom and right (reflect; replicate
      where a pad is as large as the image) and the outputs cropped back, i.e. the result is
      the crop of the network's result on the padded image (our extension; the padded border
      enters the per-frame GroupNorm statistics like any pixel).
    * **Padded dates** change the output: as officially, the L-TAE's input GroupNorm
      normalises over all dates, the padded ones' zero features included (``padding_invariant
      = False``); everything else ignores them (attention -1e3 before the softmax, weight 0 in
      the skip aggregation, shared blocks not run). What padded frames hold never matters.
    * **Initialisation**: PyTorch's defaults, as our UnCRtainTS (the official script applies
      its ``weight_init``, Xavier-normal convs with N(0, 1) biases, before training).

    Parameters at the defaults: 1,261,069 (``covmode="diag"``: 1,261,914), 142 state-dict
    entries, as the official class.

    Numerical check against the official class (UnCRtainTS ``utae.UTAE`` built as
    ``model_utils.get_generator`` builds it, random BatchNorm statistics and norm affines, its
    state dict loaded strictly into ours, eval mode, input ``[1, 3, 15, 64, 64]`` with the
    last date zero-padded, run through ``run_model`` with ``time_mask`` and directly without):
    max abs difference of the mean 1.2e-7 (``covmode=None``, ``scale_by`` 1 and 10); with
    ``covmode="diag"``, ``scale_by`` 10: mean 1.2e-7, variance 1.9e-9 (relative 2.6e-7). At
    72 x 40 and 40 x 72 (batch 2, one padded date): 1.2e-7; 16 x 64 and 8 x 8, which the
    official code cannot take, run here (see Sizes).

    Args:
        in_optical, in_sar: input channels (13, 2; ``in_sar = 0``: optical only).
        encoder_widths, decoder_widths: stage widths, top to bottom (equal length and last
            width; multiples of 4 where a norm is ``"group"`` (GroupNorm(4)) and, for the L-TAE
            and the att_group skip aggregation, encoder widths multiples of ``n_head``).
        n_head, d_model, d_k: the L-TAE (16, 256, 4).
        agg_mode: skip aggregation (att_group, att_mean, mean).
        encoder_norm, decoder_norm: norms of the encoder (group) and decoder (batch) convs.
        padding_mode: spatial padding of the convs (reflect).
        positional_encoding: encode the dates (True).
        scale_by: the official input/output scale factor (1).
        covmode: None (mean only, the official L2 baseline) or ``"diag"`` (a variance per band).
    """

    temporal_forward = True

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] = (64, 64, 64, 128),
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        agg_mode: str = "att_group",
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        padding_mode: str = "reflect",
        positional_encoding: bool = True,
        scale_by: float = 1.0,
        covmode: str | None = None,
    ) -> None:
        check_int(_OWNER, "in_optical", in_optical, 1)
        check_int(_OWNER, "in_sar", in_sar, 0)
        check_int(_OWNER, "n_head", n_head, 1)
        check_int(_OWNER, "d_model", d_model, 1)
        check_int(_OWNER, "d_k", d_k, 1)
        if covmode not in ("diag", None):
            raise ConfigError(f"{_OWNER}: covmode must be 'diag' or None, got {covmode!r}")
        if isinstance(scale_by, bool) or not isinstance(scale_by, (int, float)) or scale_by <= 0:
            raise ConfigError(f"{_OWNER}: scale_by must be a number > 0, got {scale_by!r}")
        enc = _widths("encoder_widths", encoder_widths)
        dec = _widths("decoder_widths", decoder_widths)
        if len(enc) != len(dec) or enc[-1] != dec[-1]:
            raise ConfigError(
                f"{_OWNER}: encoder_widths and decoder_widths need equal length and last width, "
                f"got {enc} and {dec}"
            )
        _divisible("d_model", d_model, n_head, "the L-TAE heads")
        _divisible("encoder_widths[-1]", enc[-1], n_head, "the L-TAE GroupNorms")
        if agg_mode == "att_group":
            _divisible("encoder_widths", enc, n_head, "the att_group skip aggregation")
        if encoder_norm == "group":
            _divisible("encoder_widths", enc, 4, "GroupNorm(4) of encoder_norm 'group'")
        if decoder_norm == "group":
            _divisible("decoder_widths", dec, 4, "GroupNorm(4) of decoder_norm 'group'")
        out_channels = in_optical * (2 if covmode == "diag" else 1)
        super().__init__(
            input_dim=in_sar + in_optical, encoder_widths=enc, decoder_widths=dec,
            out_conv=[out_channels], str_conv_k=4, str_conv_s=2, str_conv_p=1,
            agg_mode=agg_mode, encoder_norm=encoder_norm, n_head=n_head, d_model=d_model,
            d_k=d_k, pad_value=0, padding_mode=padding_mode, norm_skip="batch",
            norm_up="batch", decoder_norm=decoder_norm,
            positional_encoding=positional_encoding, **UNCRTAINTS_LAYOUT,
        )  # fmt: skip
        self.in_optical, self.in_sar = in_optical, in_sar
        self.scale_by, self.covmode = float(scale_by), covmode
        # channels-last convolution weights (as UnCRtainTS): the feature maps follow and
        # oneDNN does not reorder them around every convolution; the forward (T = 3, two CPU
        # threads) about 1.4x faster at 128 and 256 px (1.2-1.4x over two side-by-side runs at
        # 256), outputs within float rounding (2.4e-7). The layout survives load_state_dict;
        # saved weights are made contiguous. (The ``utae`` building block keeps the default
        # layout.)
        self.to(memory_format=torch.channels_last)

    @property
    def size_multiple(self) -> int:
        """H and W the network takes without padding are multiples of this (8 at 4 stages)."""
        return 2 ** (self.n_stages - 1)

    def forward(  # type: ignore[override]
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> ModelOutput:
        """``optical [B, T, C, H, W]``, ``sar [B, T, in_sar, H, W]``, ``dates [B, T]``,
        ``time_mask [B, T]`` (True on real dates) -> ``pred`` (and ``variance``) ``[B, C, H,
        W]`` (class docstring)."""
        if self.in_sar:
            if sar is None:
                raise ConfigError(f"{_OWNER}: needs a SAR input [B, T, {self.in_sar}, H, W]")
            x = torch.cat([sar.to(optical.dtype), optical], dim=2)  # S1 first, as officially
        else:
            x = optical
        x = x * self.scale_by
        pad_mask = None
        if time_mask is not None:
            pad_mask = ~time_mask.to(torch.bool)
            x = x.masked_fill(pad_mask[:, :, None, None, None], 0.0)
            if dates is not None:
                dates = dates.masked_fill(pad_mask, 0)
        h, w = x.shape[-2:]
        m = self.size_multiple
        least = 2 * m if self.n_stages > 1 else 1
        x = pad_bottom_right(x, padding_to_multiple(h, m, least), padding_to_multiple(w, m, least))
        out, _, _ = self.features(x, batch_positions=dates, pad_mask=pad_mask)
        raw = self.out_conv(out)[..., :h, :w]
        c = self.in_optical
        pred = torch.sigmoid(raw[:, :c])  # scale_by * sigmoid, divided back by scale_by
        variance = None
        if self.covmode == "diag":
            variance = F.softplus(raw[:, c:], beta=1, threshold=20) / self.scale_by**2
        return ModelOutput(pred=pred, variance=variance)


def _utae_cr_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    diag = kwargs["covmode"] == "diag"
    return ModelSpec(
        InputSpec(
            temporal=True,
            needs_sar=kwargs["in_sar"] > 0,
            needs_dates=bool(kwargs["positional_encoding"]),
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            spatial_multiple=2 ** (len(list(kwargs["encoder_widths"])) - 1),
            padding_invariant=False,  # the L-TAE's GroupNorm sees padded frames, as officially
        ),
        OutputSpec(has_variance=diag),
        frozenset({"uncertainty"} if diag else {"regression"}),
    )


@register_model(
    "utae_cr",
    paper="Garnot & Landrieu, Panoptic segmentation of satellite image time series with "
    "convolutional temporal attention networks (ICCV 2021); the cloud-removal baseline of Ebel "
    "et al., UnCRtainTS (CVPRW 2023)",
    protocol="uncrtaints",
    description="U-TAE cloud removal, UnCRtainTS's baseline (L2-trained, mean only)",
    default_recipe="utae_cr",
    official_converter=_same_keys,
    official_repo="PatrickTUM/UnCRtainTS",
    spec=_utae_cr_spec,
    model_class=UTAECR,
)
def utae_cr(**kwargs: Any) -> UTAECR:
    """U-TAE for multi-temporal cloud removal, as UnCRtainTS's repository builds its baseline."""
    return UTAECR(**kwargs)


def _ltae_spec(kwargs: dict) -> ModelSpec:
    return ModelSpec(
        inputs=InputSpec(
            temporal=True,
            needs_sar=False,
            optical_channels=kwargs["in_channels"],
            sar_channels=None,
            needs_dates=bool(kwargs["positional_encoding"]),
        ),  # fmt: skip
        outputs=OutputSpec(channels=list(kwargs["mlp"])[-1]),
    )


@register_model(
    "ltae2d",
    paper="Garnot & Landrieu, Lightweight temporal self-attention for classifying satellite "
    "image time series (2020)",
    protocol="uncrtaints",
    description="L-TAE 2-D block (building block; utae-paps parity)",
    official_converter=_same_keys,
    official_repo="VSainteuf/utae-paps",
    spec=_ltae_spec,
    model_class=LTAE2d,
    tags={BLOCK_TAG},
)
def ltae2d(**kwargs: object) -> LTAE2d:
    """The 2-D L-TAE of utae-paps (a building block, called as the official one)."""
    return LTAE2d(**kwargs)  # type: ignore[arg-type]
