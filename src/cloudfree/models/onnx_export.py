"""ONNX export of a mono-temporal network (issue 18, first part: export only).

:func:`export_onnx` traces a network with ``torch.onnx.export(..., dynamo=True)`` (the
``torch.export`` path; it needs the optional ``onnx`` and ``onnxscript`` packages) with dynamic
batch, height and width, and writes the file atomically.

Decisions:

* **Inputs and outputs** are named ``optical`` (``[B, C, H, W]``, the model's protocol scaling),
  ``sar`` (only for a network that takes SAR) and ``pred`` (the cloud-free estimate; a network
  with a variance head also gives ``variance``), as :class:`cloudfree.models.ModelBatch` and
  :class:`cloudfree.models.ModelOutput` name them.
* **Dynamic sizes**: H and W from :func:`min_export_size` (16 px, or more for a network with a
  ``spatial_multiple``) to 8192 px, multiples of ``spatial_multiple`` (the example input is
  ``size`` px); the batch is dynamic too.
* **Metadata** (ONNX ``metadata_props``): the registry name and what the caller adds (the CLI:
  the normalisation protocol, the band set, the weights' SHA-256), so that a runtime can normalise
  inputs as the network expects.
* **What cannot be exported** is refused with a :class:`~cloudfree.errors.ConfigError` naming
  the model and the reason, and nothing is written. torch.onnx may fall back to a relaxed
  trace that bakes the example's sizes into reshapes, so every export is **verified**: run by
  onnxruntime (when installed) on a batch of 3 at another size against the network (1e-4),
  else at least its batch, height and width must be symbolic. Tested: ``dsen2cr``,
  ``sar_opt_cgan`` and ``glf_cr`` export and verify. Which registered networks export, and
  why the others do not, is measured by ``benchmarks/models.py`` (``docs/performance.md``);
  temporal networks are not supported by this function yet.
* **Tracing**: the example batch is 2 (torch.export turns an axis of size 1 into a constant)
  and the trace runs with autograd on (under ``torch.no_grad()``, torch 2.13 fixed GLF-CR's
  batch axis in the ONNX graph).
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
from torch import nn

from cloudfree.errors import CloudfreeError, ConfigError

__all__ = ["MAX_SIZE", "MIN_SIZE", "export_onnx", "min_export_size", "onnx_available"]

MIN_SIZE = 16
MAX_SIZE = 8192


def onnx_available() -> bool:
    """Whether the optional exporter packages (``onnx``, ``onnxscript``) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def min_export_size(multiple: int) -> int:
    """Smallest side of an export: the largest of MIN_SIZE, one unit of the network's
    ``spatial_multiple``, and two units up to 64 px. The two units are for GLF-CR (unit 16 px):
    at one unit its feature map is a single window, which it does not shift (another graph);
    a U-Net of 8 levels (unit 256 px) keeps its one unit."""
    return max(MIN_SIZE, multiple, min(2 * multiple, 64)) if multiple > 1 else MIN_SIZE


def _size_dim(axis: str, multiple: int) -> Any:
    """A dynamic image side: :func:`min_export_size` .. MAX_SIZE px, a multiple of
    ``multiple``."""
    if multiple == 1:
        return torch.export.Dim(axis, min=MIN_SIZE, max=MAX_SIZE)
    units = torch.export.Dim(
        f"{axis}_units", min=-(-min_export_size(multiple) // multiple), max=MAX_SIZE // multiple
    )
    return multiple * units


def _verify(
    path: Path, model: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], size: int,
    label: str,
) -> None:  # fmt: skip
    """Refuse an export that only holds at the traced size: torch.onnx can fall back to a
    relaxed trace that bakes sizes into reshapes. The file is run by onnxruntime (when
    installed) on a batch of 3 at another ``size`` and compared with the network within 1e-4;
    without onnxruntime its declared batch, height and width must at least be symbolic."""
    import onnx

    graph_inputs = onnx.load(str(path)).graph.input
    for value in graph_inputs:
        dims = value.type.tensor_type.shape.dim
        fixed = [i for i in (0, 2, 3) if dims[i].HasField("dim_value")]
        if fixed:
            raise ConfigError(
                f"{label} cannot be exported to ONNX here with dynamic sizes (input "
                f"{value.name}: axes {fixed} came out fixed)"
            )
    try:
        import onnxruntime
    except ImportError:
        return
    probe = tuple(torch.rand(3, a.shape[1], size, size) for a in args)
    with torch.no_grad():
        want = model(*probe)
    want = want if isinstance(want, torch.Tensor) else want[0]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        got = session.run(None, {k: v.numpy() for k, v in zip(names, probe)})[0]
    except Exception as exc:  # onnxruntime raises its own error types
        raise ConfigError(
            f"{label} cannot be exported to ONNX here with dynamic sizes (the exported file "
            f"fails at {size} px: {str(exc).splitlines()[0][:200]})"
        ) from exc
    worst = float(abs(torch.from_numpy(got) - want).max()) if got.shape == want.shape else None
    if worst is None or worst > 1e-4:
        raise ConfigError(
            f"{label} cannot be exported to ONNX here with dynamic sizes (at {size} px the "
            f"exported file differs from the network: "
            f"{'shape ' + str(got.shape) if worst is None else f'max |diff| {worst:.2e}'})"
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    size: int = 64,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` (a mono-temporal cloudfree network) to the ONNX file ``path``.

    Args:
        model: the network; exported in eval mode on the CPU (its mode and device are
            restored afterwards).
        path: the ``.onnx`` file to write (atomically: :func:`cloudfree.io.atomic.publish`).
        name: its registry name (written to the metadata).
        metadata: further metadata (the CLI: protocol, bands, weights SHA-256), as JSON
            values.
        size: side of the example input in px (a multiple of the network's
            ``spatial_multiple``).
        overwrite: replace an existing ``path``.

    Raises:
        ConfigError: the exporter packages are missing, the network is temporal, or
            torch.export cannot trace it (the message names the model and the reason).
        InputFileError: ``path`` exists without ``overwrite``, or is a directory.
    """
    from cloudfree.io.atomic import publish, temporary_sibling
    from cloudfree.io.outputs import check_output
    from cloudfree.models.api import spec_of

    out = check_output(path, overwrite=overwrite, what="ONNX file")
    if not onnx_available():
        raise ConfigError(
            "ONNX export needs the optional packages onnx and onnxscript: "
            "pip install 'cloudfree[onnx]'"
        )
    spec = spec_of(model)
    label = name or type(model).__name__
    if spec.inputs.optical_channels is None:
        raise ConfigError(f"{label}: its input channels are unknown (not a cloudfree model)")
    if spec.inputs.temporal:
        raise ConfigError(f"{label}: ONNX export of temporal networks is not supported yet")
    multiple = max(1, int(spec.inputs.spatial_multiple or 1))
    smallest = min_export_size(multiple)
    if size < smallest or size % multiple:
        raise ConfigError(f"size must be >= {smallest} and a multiple of {multiple}, got {size}")

    import onnx

    # a batch of 2: torch.export specialises axes of size 1 to constants
    optical = torch.rand(2, spec.inputs.optical_channels, size, size)
    names = ["optical"]
    args: tuple[torch.Tensor, ...] = (optical,)
    if spec.inputs.needs_sar:
        args = (optical, torch.rand(2, spec.inputs.sar_channels, size, size))
        names.append("sar")
    batch = torch.export.Dim("batch", min=1, max=1024)
    h, w = (_size_dim(axis, multiple) for axis in ("h", "w"))
    dynamic = {k: {0: batch, 2: h, 3: w} for k in names}
    outputs = ["pred", "variance"] if spec.outputs.has_variance else ["pred"]

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
                model, args, dynamo=True, input_names=names, output_names=outputs,
                dynamic_shapes=dynamic, optimize=True,
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
        _verify(tmp, model, args, names, size + 2 * max(multiple, 16), label)
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
