"""Stand-in networks: small models that prove each part of the model contract (temporal
inputs, variance outputs, stage outputs, adversarial training) before the real families arrive.

They are registered with the ``standin`` tag, so :func:`cloudfree.models.list_models` leaves
them out unless ``include_standins=True``; the shared model tests, the training-task tests and
the evaluation tests use them. They are not published networks: no paper, no recipe of their
own (they train with the generic recipes named in their entries).

* ``standin_temporal``: a time series ``[B, T, C, H, W]`` with SAR and dates. Each date gets a
  per-pixel score from a 1x1 convolution of its optical and SAR channels plus a learned
  function of its date (``a * sin(2 pi d / 365.25) + b * cos(...)``, the season); padded dates
  (``time_mask`` False) get ``-inf``, so they never contribute. The output is the
  softmax-weighted mean of the optical dates plus a 3x3 convolution of the weighted features.
* ``standin_uncertainty``: mono-temporal; ``pred = optical + conv(cat)`` and
  ``variance = softplus(conv(cat)) + 1e-3``.
* ``standin_multistage``: mono-temporal, two steps; ``stages = (optical + conv1(cat),)`` and
  ``pred = stage1 + conv2(cat[stage1, sar])``.
* ``standin_generator``: mono-temporal residual network (regression), declared
  ``adversarial``: the generator of the adversarial-task tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.models._registry import STANDIN_TAG, register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelOutput, ModelSpec, OutputSpec

__all__ = ["StandinGenerator", "StandinMultiStage", "StandinTemporal", "StandinUncertainty"]

_NOTE = "stand-in network of the model contract (not a published model)"


class _Mono(CloudRemovalModel):
    """Shared parts of the mono-temporal stand-ins."""

    def __init__(self, in_optical: int = 13, in_sar: int = 2, width: int = 8) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 0)
        self.width = self.check_int("width", width, 1)

    def _cat(self, optical: Tensor, sar: Tensor | None) -> Tensor:
        self.check_image("optical", optical, self.in_optical)
        if self.in_sar == 0:
            return optical
        if sar is None:
            raise ValueError(f"{type(self).__name__}: needs a SAR input")
        self.check_image("sar", sar, self.in_sar, like=optical)
        return torch.cat([optical, sar.to(optical.dtype)], dim=1)

    def _branch(self, c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, self.width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(self.width, c_out, 3, padding=1),
        )


class StandinUncertainty(_Mono):
    """Mean and variance (see the module docstring)."""

    def __init__(self, in_optical: int = 13, in_sar: int = 2, width: int = 8) -> None:
        super().__init__(in_optical, in_sar, width)
        self.mean = self._branch(in_optical + in_sar, in_optical)
        self.var = self._branch(in_optical + in_sar, in_optical)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> ModelOutput:
        x = self._cat(optical, sar)
        return ModelOutput(pred=optical + self.mean(x), variance=F.softplus(self.var(x)) + 1e-3)


class StandinMultiStage(_Mono):
    """Two steps, the first returned as a stage (see the module docstring)."""

    def __init__(self, in_optical: int = 13, in_sar: int = 2, width: int = 8) -> None:
        super().__init__(in_optical, in_sar, width)
        self.stage1 = self._branch(in_optical + in_sar, in_optical)
        self.stage2 = self._branch(in_optical + in_sar, in_optical)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> ModelOutput:
        first = optical + self.stage1(self._cat(optical, sar))
        second = first + self.stage2(self._cat(first, sar))
        return ModelOutput(pred=second, stages=(first,))


class StandinGenerator(_Mono):
    """A residual image-to-image generator (see the module docstring)."""

    def __init__(self, in_optical: int = 13, in_sar: int = 2, width: int = 8) -> None:
        super().__init__(in_optical, in_sar, width)
        self.body = self._branch(in_optical + in_sar, in_optical)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        return optical + self.body(self._cat(optical, sar))


class StandinTemporal(CloudRemovalModel):
    """Attention over dates with a seasonal date term (see the module docstring)."""

    temporal_forward = True

    def __init__(
        self, in_optical: int = 13, in_sar: int = 2, width: int = 8, max_dates: int = 8
    ) -> None:
        super().__init__()
        self.in_optical = self.check_int("in_optical", in_optical, 1)
        self.in_sar = self.check_int("in_sar", in_sar, 1)
        self.width = self.check_int("width", width, 1)
        self.max_dates = self.check_int("max_dates", max_dates, 1)
        self.score = nn.Conv2d(in_optical + in_sar, 1, 1)
        self.season = nn.Parameter(torch.zeros(2))
        self.refine = nn.Sequential(
            nn.Conv2d(in_optical + in_sar, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, in_optical, 3, padding=1),
        )

    def forward(
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> ModelOutput:
        if sar is None or dates is None:
            raise ValueError("StandinTemporal: needs sar and dates")
        b, t, c, h, w = optical.shape
        if time_mask is None:
            time_mask = torch.ones((b, t), dtype=torch.bool, device=optical.device)
        x = torch.cat([optical, sar.to(optical.dtype)], dim=2)  # [B, T, C+S, H, W]
        # padded frames may hold anything (even NaN): zero them before any arithmetic
        real = time_mask[:, :, None, None, None]
        x = torch.where(real, x, torch.zeros((), dtype=x.dtype, device=x.device))
        score = self.score(x.flatten(0, 1)).view(b, t, 1, h, w)
        phase = 2 * math.pi * dates.to(optical.dtype) / 365.25
        season = self.season[0] * torch.sin(phase) + self.season[1] * torch.cos(phase)
        score = score + season[:, :, None, None, None]
        score = score.masked_fill(~real, float("-inf"))
        weight = torch.softmax(score, dim=1)  # [B, T, 1, H, W]
        fused = (weight * x).sum(dim=1)  # [B, C+S, H, W]
        pred = fused[:, :c] + self.refine(fused)
        return ModelOutput(pred=pred, extras={"date_weights": weight[:, :, 0]})


# ------------------------------------------------------------------------------ registry
def _mono_spec(tasks: set[str], **outputs: Any):  # noqa: ANN202 - a spec factory
    def spec(kwargs: Mapping[str, Any]) -> ModelSpec:
        return ModelSpec(
            InputSpec(
                optical_channels=kwargs["in_optical"],
                sar_channels=kwargs["in_sar"],
                needs_sar=kwargs["in_sar"] > 0,
            ),
            OutputSpec(**outputs),
            frozenset(tasks),
        )

    return spec


def _temporal_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(
        InputSpec(
            temporal=True,
            max_dates=kwargs["max_dates"],
            needs_sar=True,
            needs_dates=True,
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
        )
    )


_STANDIN = dict(paper=_NOTE, protocol="uncrtaints", bands="all", tags={STANDIN_TAG})


@register_model(
    "standin_temporal",
    description="stand-in: attention over dates with a seasonal date term",
    spec=_temporal_spec,
    model_class=StandinTemporal,
    **_STANDIN,  # type: ignore[arg-type]
)
def standin_temporal(**kwargs: Any) -> StandinTemporal:
    """Temporal stand-in; kwargs go to :class:`StandinTemporal`."""
    return StandinTemporal(**kwargs)


@register_model(
    "standin_uncertainty",
    description="stand-in: mean and variance outputs (uncertainty task)",
    spec=_mono_spec({"uncertainty"}, has_variance=True),
    model_class=StandinUncertainty,
    **_STANDIN,  # type: ignore[arg-type]
)
def standin_uncertainty(**kwargs: Any) -> StandinUncertainty:
    """Uncertainty stand-in; kwargs go to :class:`StandinUncertainty`."""
    return StandinUncertainty(**kwargs)


@register_model(
    "standin_multistage",
    description="stand-in: two steps, the first returned as a stage (multi-stage task)",
    spec=_mono_spec({"regression", "multi_stage"}, num_stages=1),
    model_class=StandinMultiStage,
    **_STANDIN,  # type: ignore[arg-type]
)
def standin_multistage(**kwargs: Any) -> StandinMultiStage:
    """Multi-stage stand-in; kwargs go to :class:`StandinMultiStage`."""
    return StandinMultiStage(**kwargs)


@register_model(
    "standin_generator",
    description="stand-in: residual generator trained adversarially (adversarial task)",
    spec=_mono_spec({"regression", "adversarial"}),
    model_class=StandinGenerator,
    **_STANDIN,  # type: ignore[arg-type]
)
def standin_generator(**kwargs: Any) -> StandinGenerator:
    """Generator stand-in; kwargs go to :class:`StandinGenerator`."""
    return StandinGenerator(**kwargs)
