"""How a loaded network is run for inference: numeric precision and torch.compile.

:func:`for_inference` wraps a network in :class:`InferenceModel`, which keeps the network's
contract (its spec and ``cloudfree_config`` travel with it, so :func:`~cloudfree.models.run_model`,
``cloudfree predict`` and ``cloudfree evaluate`` use it unchanged) and changes only how the
forward pass is computed.

Decisions:

* **Precision** ``"32"`` (default: float32, the wrapper is not used at all), ``"bf16"`` or
  ``"16"``: the forward runs under :func:`torch.autocast` with bfloat16 or float16 on the
  inputs' device type (CPU included: torch 2.13 autocasts both on CPU). Convolutions and
  matrix products run in the low precision; what autocast keeps in float32 (norms, softmax,
  reductions) stays so. The outputs (``pred``, ``variance``, ``stages``, tensor ``extras``)
  are cast back to float32, so everything downstream (un-normalisation, blending, metrics,
  writing) is float32 as usual. The weights are not converted.
* **Compile** (``compile=True``): the network call is compiled with :func:`torch.compile`
  (default inductor backend; on CPU it needs a C++ compiler). The first call of each new input
  shape compiles (seconds to minutes); tiled prediction uses one tile shape, so it compiles
  once or twice per scene size. A compilation failure is reported as a
  :class:`~cloudfree.errors.ConfigError` naming the model, with the advice to run without
  ``--compile``.
* The **accuracy cost** of each precision against float32 is measured by
  ``benchmarks/precision_accuracy.py`` and stated in ``docs/performance.md``.
* An :class:`~cloudfree.models.onnx_runtime.OnnxRuntimeModel` runs the exported float32 graph
  as it is: neither option applies to it (refused).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from cloudfree.errors import ConfigError

if TYPE_CHECKING:
    from cloudfree.models.loading import LoadedModel

__all__ = [
    "PRECISIONS",
    "InferenceModel",
    "InferenceOptions",
    "describe_runtime",
    "for_inference",
    "loaded_for_inference",
]

#: Accepted precisions and the autocast dtype of each (``None``: plain float32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "bf16": torch.bfloat16,
    "16": torch.float16,
}

#: Attributes of a network that its wrapper carries (the contract and what outputs record).
_CARRIED = ("cloudfree_spec", "cloudfree_config", "cloudfree_weights_dir")


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a network for inference (``--precision``, ``--compile``).

    Args:
        precision: ``"32"``, ``"bf16"`` or ``"16"`` (see the module docstring).
        compile: compile the network call with :func:`torch.compile`.
    """

    precision: str = "32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def plain(self) -> bool:
        """Whether the network runs as it is (float32, not compiled)."""
        return self.precision == "32" and not self.compile

    def describe(self) -> str:
        """Short text for output tags and logs, e.g. ``bf16 autocast, compiled``."""
        parts = ["float32" if self.precision == "32" else f"{self.precision} autocast"]
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)


def _float32(x: Any) -> Any:
    if isinstance(x, Tensor) and x.is_floating_point() and x.dtype != torch.float32:
        return x.float()
    return x


def _outputs_float32(raw: Any) -> Any:
    from cloudfree.models.api import ModelOutput

    if isinstance(raw, ModelOutput):
        return ModelOutput(
            pred=_float32(raw.pred),
            variance=_float32(raw.variance),
            stages=tuple(_float32(s) for s in raw.stages),
            extras={k: _float32(v) for k, v in raw.extras.items()},
        )
    return _float32(raw)


class InferenceModel(nn.Module):
    """``model`` run in another precision and/or compiled (see the module docstring).

    Its forward takes the network's keywords (``optical``, ``sar``, and for temporal networks
    ``dates``, ``time_mask``) and returns the network's output in float32. Call it through
    :func:`~cloudfree.models.run_model` like any network.
    """

    def __init__(self, model: nn.Module, options: InferenceOptions) -> None:
        super().__init__()
        from cloudfree.models.onnx_runtime import OnnxRuntimeModel

        if isinstance(model, OnnxRuntimeModel):
            raise ConfigError(
                "--precision and --compile apply to torch networks; an ONNX file runs with "
                "onnxruntime as exported (float32)"
            )
        self.inner = model
        self.options = options
        for attr in _CARRIED:
            if hasattr(model, attr):
                object.__setattr__(self, attr, getattr(model, attr))
        self._call = torch.compile(self._network_call) if options.compile else self._network_call

    def _network_call(
        self,
        optical: Tensor,
        sar: Tensor | None,
        dates: Tensor | None,
        time_mask: Tensor | None,
    ) -> Any:
        from cloudfree.models.api import ModelBatch, call_network

        return call_network(self.inner, ModelBatch(optical, sar, dates, time_mask))

    def forward(
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> Any:
        dtype = PRECISIONS[self.options.precision]
        try:
            with torch.autocast(optical.device.type, dtype=dtype, enabled=dtype is not None):
                raw = self._call(optical, sar, dates, time_mask)
        except Exception as exc:
            if self.options.compile and type(exc).__module__.startswith("torch._"):
                name = dict(getattr(self, "cloudfree_config", {}) or {}).get("name", "model")
                first = str(exc).strip().splitlines()
                raise ConfigError(
                    f"torch.compile failed for {name!r} ({type(exc).__name__}: "
                    f"{first[0][:200] if first else ''}); run without --compile"
                ) from exc
            raise
        return _outputs_float32(raw)


def describe_runtime(model: nn.Module | None) -> str:
    """How ``model`` runs, for output tags: ``torch, float32``, ``torch, bf16 autocast,
    torch.compile``, ``onnxruntime, float32`` or ``none`` (no network: a composite)."""
    from cloudfree.models.onnx_runtime import OnnxRuntimeModel

    if model is None:
        return "none"
    if isinstance(model, OnnxRuntimeModel):
        return "onnxruntime, float32"
    if isinstance(model, InferenceModel):
        return f"torch, {model.options.describe()}"
    return "torch, float32"


def for_inference(model: nn.Module, options: InferenceOptions | None) -> nn.Module:
    """``model`` itself when ``options`` are plain (or None), else an :class:`InferenceModel`.

    Raises:
        ConfigError: options for an ONNX runtime model.
    """
    if options is None or options.plain:
        return model
    return InferenceModel(model, options)


def loaded_for_inference(loaded: LoadedModel, options: InferenceOptions | None) -> LoadedModel:
    """A copy of ``loaded`` whose network runs with ``options`` (:func:`for_inference`)."""
    model = for_inference(loaded.model, options)
    return loaded if model is loaded.model else replace(loaded, model=model)
