"""ONNX export of a cloudfree network (issue 18).

:func:`export_onnx` traces a network with ``torch.onnx.export(..., dynamo=True)`` (the
``torch.export`` path; it needs the optional ``onnx`` and ``onnxscript`` packages) with dynamic
batch, height and width (and dates T for a temporal network), and writes the file atomically.

Decisions:

* **What is traced** is :class:`ExportedGraph`: the network called as the model contract calls
  it (:func:`cloudfree.models.api.call_network`), its output reduced to tensors. A network that
  returns a :class:`~cloudfree.models.ModelOutput` therefore exports too; what the file gives is
  ``pred`` (and ``variance`` for a variance head). The training-only parts of the output
  (``stages`` of multi-stage networks, ``extras`` such as attention maps) are not exported.
* **Inputs and outputs** are named as :class:`cloudfree.models.ModelBatch` and
  :class:`cloudfree.models.ModelOutput` name them: ``optical`` (``[B, C, H, W]``, or
  ``[B, T, C, H, W]`` for a temporal network, in the model's protocol scaling), ``sar`` (only
  for a network that takes SAR, same layout), ``dates`` (``[B, T]`` float days since
  :data:`~cloudfree.models.api.DATE_EPOCH`, only for a network that needs dates) and ``pred``
  (plus ``variance``).
* **Time mask**: a temporal file takes every one of its T dates as real; it has no
  ``time_mask`` input (the masked paths select the real frames with data-dependent shapes,
  which an ONNX graph of fixed rank cannot hold for every sample of a batch at once).
  :class:`cloudfree.models.onnx_runtime.OnnxRuntimeModel` runs a padded batch sample by sample
  on its real dates where the network is ``padding_invariant``, and refuses it otherwise.
* **Dynamic sizes**: H and W from :func:`min_export_size` (16 px, or more for a network with a
  ``spatial_multiple``) to 8192 px, multiples of ``spatial_multiple`` (the example input is
  ``size`` px); the batch is dynamic, and so is T (1 .. the network's ``max_dates``, or 64).
* **Metadata** (ONNX ``metadata_props``): the registry name and what the caller adds (the CLI:
  the normalisation protocol, the band set, the weights' SHA-256, the constructor arguments),
  so that a runtime can normalise inputs as the network expects.
* **What cannot be exported** is refused with a :class:`~cloudfree.errors.ConfigError` naming
  the model and the reason, and nothing is written. torch.onnx may fall back to a relaxed
  trace that bakes the example's sizes into reshapes, so every export is **verified**: run by
  onnxruntime (when installed) against the network (1e-4, every output) on a batch of 3 at
  another size (and another T), else at least its batch, height and width must be symbolic.
  Which registered networks export, and why the others do not, is tested per network in
  ``tests/test_onnx_export.py`` and listed in ``docs/performance.md``.
* **Tracing**: the example batch is 2 and a temporal example has 3 dates (torch.export turns
  an axis of size 1 into a constant), and the trace runs with autograd on (under
  ``torch.no_grad()``, torch 2.13 fixed GLF-CR's batch axis in the ONNX graph).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cloudfree.errors import CloudfreeError, ConfigError

__all__ = [
    "MAX_DATES",
    "MAX_SIZE",
    "MIN_SIZE",
    "ExportedGraph",
    "default_export_size",
    "export_onnx",
    "min_export_size",
    "onnx_available",
]

MIN_SIZE = 16
MAX_SIZE = 8192
#: most dates of a temporal export whose network sets no ``max_dates``
MAX_DATES = 64
#: dates of the example series (more than 1: torch.export fixes axes of size 1)
_TRACE_DATES = 3


def onnx_available() -> bool:
    """Whether the optional exporter packages (``onnx``, ``onnxscript``) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def min_export_size(multiple: int) -> int:
    """Smallest side of an export: MIN_SIZE, or two units of the network's
    ``spatial_multiple``. At one unit a U-Net reaches a 1 x 1 bottleneck and GLF-CR's feature
    map is a single window, which it does not shift: other graphs, which torch.export would
    fix the sizes for."""
    return max(MIN_SIZE, 2 * multiple) if multiple > 1 else MIN_SIZE


def default_export_size(multiple: int) -> int:
    """Side of the example input when none is given: 64 px, or :func:`min_export_size`."""
    return max(64, min_export_size(multiple))


class ExportedGraph(nn.Module):
    """What an exported file computes: ``model`` called as the model contract calls it
    (:func:`~cloudfree.models.api.call_network`; a temporal network with every date real),
    its output reduced to ``pred`` or ``(pred, variance)``.

    Args:
        model: a cloudfree network (its ``cloudfree_spec`` says what it takes and gives).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from cloudfree.models.api import spec_of

        self.model = model
        self.spec = spec_of(model)

    @property
    def input_names(self) -> list[str]:
        """``optical``, then ``sar`` and ``dates`` where the network takes them."""
        i = self.spec.inputs
        names = ["optical"]
        if i.needs_sar and (i.sar_channels is None or i.sar_channels > 0):
            names.append("sar")
        if i.temporal and i.needs_dates:
            names.append("dates")
        return names

    @property
    def output_names(self) -> list[str]:
        """``pred``, and ``variance`` for a variance head."""
        return ["pred", "variance"] if self.spec.outputs.has_variance else ["pred"]

    def forward(
        self, optical: Tensor, sar: Tensor | None = None, dates: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        from cloudfree.models.api import ModelBatch, ModelOutput, call_network

        out = call_network(self.model, ModelBatch(optical, sar, dates, None))
        if isinstance(out, ModelOutput):
            if self.spec.outputs.has_variance:
                if out.variance is None:
                    raise ConfigError("the network declares a variance but returned none")
                return out.pred, out.variance
            return out.pred
        return out

    def example(self, batch: int, size: int, dates: int, seed: int = 0) -> dict[str, Tensor]:
        """Random inputs by name: ``batch`` samples of ``size`` px (and ``dates`` dates)."""
        g = torch.Generator().manual_seed(seed)
        i = self.spec.inputs
        lead = (batch, dates) if i.temporal else (batch,)
        channels = {"optical": i.optical_channels, "sar": i.sar_channels}
        out: dict[str, Tensor] = {}
        for name in self.input_names:
            if name == "dates":
                steps = torch.randint(5, 40, (batch, dates), generator=g).cumsum(1)
                out[name] = (torch.randint(0, 3000, (batch, 1), generator=g) + steps).float()
            else:
                out[name] = torch.rand(*lead, channels[name] or 2, size, size, generator=g)
        return out


def _size_dim(axis: str, multiple: int) -> Any:
    """A dynamic image side: :func:`min_export_size` .. MAX_SIZE px, a multiple of
    ``multiple``."""
    if multiple == 1:
        return torch.export.Dim(axis, min=MIN_SIZE, max=MAX_SIZE)
    units = torch.export.Dim(
        f"{axis}_units", min=-(-min_export_size(multiple) // multiple), max=MAX_SIZE // multiple
    )
    return multiple * units


def _tensors(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _verify(path: Path, graph: ExportedGraph, size: int, dates: int, label: str) -> None:
    """Refuse an export that only holds at the traced size: torch.onnx can fall back to a
    relaxed trace that bakes sizes into reshapes. The file is run by onnxruntime (when
    installed) on a batch of 3 at another ``size`` (and ``dates``) and compared with the
    network within 1e-4 on every output; without onnxruntime its declared batch, height and
    width (and T) must at least be symbolic."""
    import onnx

    temporal = graph.spec.inputs.temporal
    for value in onnx.load(str(path)).graph.input:
        dims = value.type.tensor_type.shape.dim
        axes = (0, 1) if value.name == "dates" else (0, 1, 3, 4) if temporal else (0, 2, 3)
        fixed = [i for i in axes if dims[i].HasField("dim_value")]
        if fixed:
            raise ConfigError(
                f"{label} cannot be exported to ONNX here with dynamic sizes (input "
                f"{value.name}: axes {fixed} came out fixed)"
            )
    try:
        import onnxruntime
    except ImportError:
        return
    probe = graph.example(3, size, dates, seed=3)
    with torch.no_grad():
        want = _tensors(graph(**probe))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    where = f"{size} px" + (f", {dates} dates" if temporal else "")
    try:
        got = session.run(None, {k: v.numpy() for k, v in probe.items()})
    except Exception as exc:  # onnxruntime raises its own error types
        raise ConfigError(
            f"{label} cannot be exported to ONNX here with dynamic sizes (the exported file "
            f"fails at {where}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    for name, g, w in zip(graph.output_names, got, want):
        worst = float(abs(torch.from_numpy(g) - w).max()) if g.shape == w.shape else None
        if worst is None or worst > 1e-4:
            found = f"shape {g.shape}" if worst is None else f"max |diff| {worst:.2e}"
            raise ConfigError(
                f"{label} cannot be exported to ONNX here with dynamic sizes (at {where} the "
                f"exported {name} differs from the network: {found})"
            )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    size: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` (a cloudfree network) to the ONNX file ``path``.

    Args:
        model: the network; exported in eval mode on the CPU (its mode and device are
            restored afterwards).
        path: the ``.onnx`` file to write (atomically: :func:`cloudfree.io.atomic.publish`).
        name: its registry name (written to the metadata).
        metadata: further metadata (the CLI: protocol, bands, weights SHA-256, config), as
            JSON values.
        size: side of the example input in px (a multiple of the network's
            ``spatial_multiple``; default :func:`default_export_size`).
        overwrite: replace an existing ``path``.

    Raises:
        ConfigError: the exporter packages are missing, or torch.export cannot trace the
            network with dynamic sizes (the message names the model and the reason).
        InputFileError: ``path`` exists without ``overwrite``, or is a directory.
    """
    from cloudfree.io.atomic import publish, temporary_sibling
    from cloudfree.io.outputs import check_output

    out = check_output(path, overwrite=overwrite, what="ONNX file")
    if not onnx_available():
        raise ConfigError(
            "ONNX export needs the optional packages onnx and onnxscript: "
            "pip install 'cloudfree[onnx]'"
        )
    graph = ExportedGraph(model)
    spec = graph.spec
    label = name or type(model).__name__
    if spec.inputs.optical_channels is None:
        raise ConfigError(f"{label}: its input channels are unknown (not a cloudfree model)")
    multiple = max(1, int(spec.inputs.spatial_multiple or 1))
    smallest = min_export_size(multiple)
    size = default_export_size(multiple) if size is None else size
    if size < smallest or size % multiple:
        raise ConfigError(f"size must be >= {smallest} and a multiple of {multiple}, got {size}")
    temporal = spec.inputs.temporal
    most_dates = spec.inputs.max_dates or MAX_DATES
    trace_dates = min(_TRACE_DATES, most_dates)
    if temporal and trace_dates < 2:
        raise ConfigError(f"{label}: a temporal network of at most 1 date cannot be exported")

    import onnx

    # a batch of 2 (and 3 dates): torch.export specialises axes of size 1 to constants
    example = graph.example(2, size, trace_dates)
    batch = torch.export.Dim("batch", min=1, max=1024)
    h, w = (_size_dim(axis, multiple) for axis in ("h", "w"))
    t = torch.export.Dim("dates", min=1, max=most_dates)
    dynamic: dict[str, Any] = {}
    for key in example:
        if key == "dates":
            dynamic[key] = {0: batch, 1: t}
        else:
            dynamic[key] = {0: batch, 1: t, 3: h, 4: w} if temporal else {0: batch, 2: h, 3: w}
    # the trace sees the inputs as keywords; the graph's inputs keep these names
    names = graph.input_names

    was_training = model.training
    device = next(iter(model.parameters()), torch.empty(0)).device
    chatter = io.StringIO()
    tmp = temporary_sibling(out)
    try:
        model.eval().to("cpu")
        # not under torch.no_grad(): with torch 2.13 that fixes the batch axis of GLF-CR's graph
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph, (), kwargs=example, dynamo=True, input_names=names,
                output_names=graph.output_names, dynamic_shapes=dynamic, optimize=True,
            )  # fmt: skip
        if program is None:  # pragma: no cover - dynamo=True always returns a program
            raise ConfigError(f"{label}: torch.onnx.export returned nothing")
        proto = program.model_proto
        meta = {
            "cloudfree.name": label,
            **{f"cloudfree.{k}": v for k, v in (metadata or {}).items()},
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key = key
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.save(proto, str(tmp))
        other_dates = 2 if trace_dates != 2 else min(most_dates, 4)
        _verify(tmp, graph, size + 2 * max(multiple, 16), other_dates, label)
        publish(tmp, out)
    except CloudfreeError:  # ours (a refused export, a write failure): as they are
        raise
    except Exception as exc:  # torch.export's errors are of many types
        reason = str(exc).strip().splitlines()
        summary = next((line for line in reversed(reason) if line and not line.startswith("(")), "")
        raise ConfigError(
            f"{label} cannot be exported to ONNX here (torch.export: {type(exc).__name__}"
            f"{': ' + summary[:300] if summary else ''})"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training).to(device)
    return out
