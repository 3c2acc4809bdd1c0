"""Shared machinery of the loss modules: input checks, invalid-pixel handling, masked means.

Invalid pixels
--------------
Every loss treats a pixel whose ``valid_mask`` is False as absent:

1. Before anything is computed, ``pred``, ``target`` and (where used) the cloudy ``optical``
   input are set to 0 at invalid pixels with :func:`torch.where`. So neither a value of ``pred``
   there nor a NaN in ``target`` / ``optical`` there can reach the loss or its gradient (the
   gradient of ``pred`` at an invalid pixel is exactly 0). For SSIM terms this makes an invalid
   pixel look like the zero padding outside the image border.
2. Every mean is a masked mean: ``sum over valid pixels and all bands / (n_valid * C)``, so
   per-pixel terms at invalid pixels get weight 0 (for SSIM: the SSIM map is masked).

A batch without a single valid pixel gives a loss of exactly 0 (still attached to the graph,
with zero gradient) rather than NaN. Without a ``valid_mask`` key every pixel counts.

Model outputs
-------------
A loss is called as ``loss(output, batch)``. ``output`` is the model's
:class:`~cloudfree.models.ModelOutput` (any object with a ``pred`` tensor and optionally a
``variance`` tensor of the same shape) or a bare prediction tensor, which counts as an output
with ``pred`` only. Losses whose :attr:`CloudRemovalLoss.uses_variance` is True (the Gaussian
NLL) need the variance and raise :class:`ConfigError` without one; every other loss reads
``pred`` only. (The output type is duck-typed so that this layer does not import
:mod:`cloudfree.models`.) An invalid pixel's variance is set to 1 before use, so that neither
its value nor a NaN there reaches the loss.

Precision
---------
Losses are computed in ``float64`` for ``float64`` predictions and in ``float32`` otherwise
(``float16``/``bfloat16`` predictions are upcast), with autocast disabled so that the SSIM
convolutions never run in half precision.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.metrics.ssim import ssim_map

__all__ = ["CloudRemovalLoss", "PreparedBatch", "masked_mean", "split_output"]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        return contextlib.nullcontext()


def masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values [B, C, H, W]`` over all elements whose pixel is valid.

    ``valid`` is a boolean ``[B, 1, H, W]`` (broadcast over the bands) or None (all valid).
    Returns ``sum(values[valid]) / (n_valid_pixels * C)``; 0 when no pixel is valid.
    """
    if valid is None:
        return values.mean()
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    num = torch.where(valid, values, zero).sum()
    den = valid.sum().to(values.dtype) * values.shape[1]
    return num / den.clamp_min(1.0)


@dataclass
class PreparedBatch:
    """Checked, upcast inputs of one loss evaluation (invalid pixels already zeroed)."""

    pred: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor | None  # bool [B, 1, H, W] or None (every pixel valid)
    batch: Mapping[str, Any]
    loss_name: str
    variance: torch.Tensor | None = None  # same shape as pred, 1 where invalid (or not asked)

    def _get(self, key: str) -> torch.Tensor:
        if key not in self.batch:
            raise ConfigError(
                f"loss {self.loss_name!r} needs batch key {key!r}; the batch has "
                f"{', '.join(map(repr, self.batch))}"
            )
        value = self.batch[key]
        if not isinstance(value, torch.Tensor):
            raise ConfigError(
                f"batch[{key!r}] must be a tensor for loss {self.loss_name!r}, "
                f"got {type(value).__name__}"
            )
        return value

    def image(self, key: str) -> torch.Tensor:
        """Batch image ``key`` (same shape as ``pred``), in the work dtype, 0 where invalid."""
        x = self._get(key)
        if x.shape != self.pred.shape:
            raise ConfigError(
                f"loss {self.loss_name!r}: batch[{key!r}] has shape {tuple(x.shape)} but the "
                f"prediction has shape {tuple(self.pred.shape)}"
            )
        x = x.to(device=self.pred.device, dtype=self.pred.dtype)
        if self.valid is not None:
            x = torch.where(self.valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
        return x

    def binary_mask(self, key: str) -> torch.Tensor:
        """Batch mask ``key`` as a 0/1 ``[B, 1, H, W]`` tensor in the work dtype (``> 0.5``)."""
        m = _check_mask(self._get(key), key, self.pred, self.loss_name)
        return (m > 0.5).to(self.pred.dtype)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Masked mean of ``values`` over the valid pixels (see :func:`masked_mean`)."""
        return masked_mean(values, self.valid)

    def one_minus_ssim(self, data_range: float, denominator_eps: float = 0.0) -> torch.Tensor:
        """Per-pixel, per-band ``1 - SSIM`` map ``[B, C, H, W]`` of ``pred`` and ``target``.

        11x11 Gaussian window (sigma 1.5) centred at index 5, zero padding,
        ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` (:func:`cloudfree.metrics.ssim_map`).
        """
        smap = ssim_map(
            self.pred,
            self.target,
            window_size=11,
            sigma=1.5,
            padding="zero",
            data_range=data_range,
            denominator_eps=denominator_eps,
        )
        return 1.0 - smap


def _check_mask(m: torch.Tensor, key: str, pred: torch.Tensor, loss_name: str) -> torch.Tensor:
    b, _, h, w = pred.shape
    if m.ndim == 3:
        m = m.unsqueeze(1)
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, b) or tuple(m.shape[2:]) != (h, w):
        raise ConfigError(
            f"loss {loss_name!r}: batch[{key!r}] must have shape [B, 1, H, W] = "
            f"[{b}, 1, {h}, {w}], got {tuple(m.shape)}"
        )
    return m.to(pred.device)


def split_output(output: Any) -> tuple[Any, Any]:
    """``(pred, variance)`` of a model output (see "Model outputs" above); a tensor is
    ``(output, None)``."""
    if isinstance(output, torch.Tensor) or not hasattr(output, "pred"):
        return output, None  # anything else is rejected by prepare with its type named
    variance = getattr(output, "variance", None)
    return output.pred, variance


def prepare(
    pred: torch.Tensor,
    batch: Mapping[str, Any],
    loss_name: str,
    variance: torch.Tensor | None = None,
) -> PreparedBatch:
    """Check ``pred`` and ``batch['target']``, upcast, and zero both at invalid pixels; a
    given ``variance`` is checked against ``pred``'s shape, upcast and set to 1 there."""
    if not isinstance(pred, torch.Tensor) or pred.ndim != 4 or not pred.is_floating_point():
        desc = (
            f"shape {tuple(pred.shape)}, dtype {pred.dtype}"
            if isinstance(pred, torch.Tensor)
            else type(pred).__name__
        )
        raise ConfigError(f"loss {loss_name!r} needs a float [B, C, H, W] prediction, got {desc}")
    if not isinstance(batch, Mapping):
        raise ConfigError(
            f"loss {loss_name!r} needs the batch as a mapping, got {type(batch).__name__}"
        )
    pred = pred.to(_work_dtype(pred.dtype))
    valid = None
    if batch.get("valid_mask") is not None:
        v = _check_mask(batch["valid_mask"], "valid_mask", pred, loss_name)
        valid = (v if v.dtype == torch.bool else v > 0.5).expand(pred.shape[0], 1, *pred.shape[2:])
        pred = torch.where(valid, pred, torch.zeros((), dtype=pred.dtype, device=pred.device))
    prepared = PreparedBatch(pred=pred, target=pred, valid=valid, batch=batch, loss_name=loss_name)
    prepared.target = prepared.image("target")
    if variance is not None:
        if not isinstance(variance, torch.Tensor) or variance.shape != pred.shape:
            got = tuple(variance.shape) if isinstance(variance, torch.Tensor) else variance
            raise ConfigError(
                f"loss {loss_name!r}: the variance has shape {got} but the prediction has "
                f"shape {tuple(pred.shape)}"
            )
        variance = variance.to(device=pred.device, dtype=pred.dtype)
        if valid is not None:
            one = torch.ones((), dtype=variance.dtype, device=variance.device)
            variance = torch.where(valid, variance, one)
        prepared.variance = variance
    return prepared


def check_float(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """``float(value)`` after checking it is a finite real number in ``[low, high]``.

    ``low_open`` makes the lower bound exclusive. Raises :class:`ConfigError` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"loss {owner!r}: {name} must be a number, got {value!r} ({type(value).__name__})"
        )
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad = bad or (v <= low if low_open else v < low)
    if high is not None:
        bad = bad or v > high
    if bad:
        lo = "(" if low_open else "["
        rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"loss {owner!r}: {name} must be a finite number in {rng}, got {value!r}")
    return v


class CloudRemovalLoss(nn.Module):
    """Base class: ``forward(output, batch) -> scalar`` on a collated dataset batch.

    ``output`` is a model output or a bare prediction tensor (see "Model outputs" above).
    Subclasses implement :meth:`compute`, which receives a :class:`PreparedBatch` and returns
    the loss and a dict of its (undetached) component terms; the detached terms of the last
    call are kept in :attr:`last_terms` for logging. Subclasses that read
    ``PreparedBatch.variance`` set :attr:`uses_variance`.
    """

    name: ClassVar[str] = ""
    #: the loss needs the output's ``variance`` (uncertainty models); the trainer checks it
    uses_variance: ClassVar[bool] = False
    #: the loss reads more of the model output than ``pred`` (e.g. an ``extras`` map): the
    #: trainer then passes it the whole output for every task (``spa_gan``'s attention map)
    reads_output: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.last_terms: dict[str, torch.Tensor] = {}

    def batch_keys(self) -> frozenset[str]:
        """Batch keys this loss reads besides ``target`` and ``valid_mask`` (e.g.
        ``cloud_mask``); the data module computes cloud masks only when a loss reads them.
        A subclass that reads a key through :class:`PreparedBatch` must declare it here
        (``tests/test_losses.py`` calls every loss with exactly the declared keys)."""
        return frozenset()

    def compute(self, x: PreparedBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, output: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        name = self.name or type(self).__name__
        pred, variance = split_output(output)
        if self.uses_variance and variance is None:
            raise ConfigError(
                f"loss {name!r} needs the model's variance output (a model output with "
                "'variance'), got a prediction only"
            )
        device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
        with _autocast_off(device):
            x = prepare(pred, batch, name, variance if self.uses_variance else None)
            loss, terms = self.compute(x)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        return loss
