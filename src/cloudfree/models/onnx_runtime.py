"""Run a network exported by ``cloudfree models export`` with onnxruntime, behind the model
contract (``cloudfree predict --runtime onnxruntime``, ``cloudfree evaluate --checkpoint
FILE.onnx``).

:func:`load_onnx` opens the file and returns a :class:`~cloudfree.models.loading.LoadedModel`
whose ``model`` is an :class:`OnnxRuntimeModel`: a torch module that carries the exported
network's spec and config and whose forward feeds onnxruntime. Tiling, warping, blending,
writing and scoring therefore take the same path as with the torch network.

Decisions:

* **What the file must hold**: the metadata written by
  :func:`cloudfree.models.onnx_export.export_onnx` through the CLI (``cloudfree.name``,
  ``cloudfree.protocol``, ``cloudfree.bands``; ``cloudfree.config`` with the constructor
  arguments when present). A file without them, or one that onnxruntime cannot open, is an
  :class:`~cloudfree.errors.InputFileError` naming the file: the scaling of its inputs would be
  unknown.
* **Spec**: the registry entry of ``cloudfree.name`` resolved with the recorded constructor
  arguments; the graph's declared input channels must agree with it.
* **Temporal networks**: the file takes every date as real (it has no ``time_mask``
  input; :mod:`cloudfree.models.onnx_export`). A batch with padded dates is run sample by
  sample on the real dates of each, which is the network's own result where it is
  ``padding_invariant`` (its spec); for a network that is not, such a batch is refused.
* **Sizes**: a file takes multiples of the network's ``spatial_multiple`` from two of them up
  (:func:`~cloudfree.models.onnx_export.min_export_size`). Other sizes are padded at the
  bottom and right as the network pads them itself
  (:func:`~cloudfree.models.layers.padding.pad_bottom_right`) and the output is cropped, which
  gives the network's own result; an input below the smallest size is refused with the size
  named.
* **Device**: onnxruntime's CUDA provider is used for CUDA inputs when that provider is
  installed, else the CPU provider (the outputs are moved back to the inputs' device). The CPU
  provider uses as many threads as torch (``torch.get_num_threads()``), so that runtimes are
  compared on equal terms.
* ``weights_sha256`` of the loaded model is the ONNX file's own SHA-256; the SHA-256 of the
  weights it was exported from stays in its metadata (``cloudfree.weights_sha256``), and the
  output tags record both.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models.layers.padding import pad_bottom_right, padding_to_multiple

if TYPE_CHECKING:
    from cloudfree.models.loading import LoadedModel

__all__ = ["ONNX_SUFFIX", "OnnxRuntimeModel", "is_onnx_file", "load_onnx", "onnxruntime_available"]

ONNX_SUFFIX = ".onnx"


def is_onnx_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ONNX_SUFFIX


def onnxruntime_available() -> bool:
    """Whether the optional package onnxruntime is installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxRuntimeModel(nn.Module):
    """An exported network run by onnxruntime (see the module docstring).

    Args:
        path: the ONNX file.
        config: the network's ``cloudfree_config`` (name, kwargs, protocol, bands).
        input_names: the graph's inputs (``optical``; ``sar`` for a SAR network, ``dates``
            for a temporal network with a date encoding).
        output_names: its outputs (``pred``, and ``variance`` for a variance head).
    """

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        input_names: list[str],
        output_names: list[str],
    ) -> None:
        super().__init__()
        from cloudfree.models._registry import get_model_info

        self.path = path
        self.input_names = input_names
        self.output_names = output_names
        self.cloudfree_config = config
        spec = get_model_info(str(config["name"])).resolve_spec(dict(config.get("kwargs") or {}))
        # the file gives pred (and variance); a multi-stage network's stages are not exported
        self.cloudfree_spec = replace(
            spec,
            outputs=replace(spec.outputs, num_stages=0),
            tasks=spec.tasks - {"multi_stage"},
        )
        #: SHA-256 of the weights the file was exported from (its metadata), if recorded
        self.exported_from_sha256: str | None = None
        self._sessions: dict[str, Any] = {}

    def session(self, device: torch.device) -> Any:
        """The onnxruntime session for inputs on ``device`` (created once per device type)."""
        import onnxruntime

        kind = "cuda" if device.type == "cuda" else "cpu"
        if kind not in self._sessions:
            providers = ["CPUExecutionProvider"]
            if kind == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            self._sessions[kind] = _open_session(self.path, providers)
        return self._sessions[kind]

    def forward(
        self,
        optical: Tensor,
        sar: Tensor | None = None,
        dates: Tensor | None = None,
        time_mask: Tensor | None = None,
    ) -> Any:
        """The exported network on these inputs (``dates`` and ``time_mask`` for a temporal
        one; a padded batch runs sample by sample on its real dates, see the module
        docstring)."""
        from cloudfree.models.api import ModelOutput

        if self.cloudfree_spec.inputs.temporal and time_mask is not None:
            real = time_mask.to(torch.bool)
            if not bool(real.all()):
                return self._padded(optical, sar, dates, real)
        h, w = optical.shape[-2:]
        ph, pw = self._padding(h, w)
        feeds = {"optical": _host(pad_bottom_right(optical, ph, pw))}
        if "sar" in self.input_names:
            if sar is None:
                raise ConfigError(f"{self.path}: the exported network needs a SAR input")
            feeds["sar"] = _host(pad_bottom_right(sar, ph, pw))
        if "dates" in self.input_names:
            if dates is None:
                raise ConfigError(f"{self.path}: the exported network needs dates [B, T]")
            feeds["dates"] = _host(dates)
        outs = self.session(optical.device).run(self.output_names, feeds)
        tensors = [torch.from_numpy(o[..., :h, :w]).to(optical.device) for o in outs]
        if len(tensors) > 1:
            return ModelOutput(pred=tensors[0], variance=tensors[1])
        return tensors[0]

    def _padding(self, h: int, w: int) -> tuple[int, int]:
        """Rows and columns that bring an ``h x w`` input to a size the file takes (a
        multiple of the network's ``spatial_multiple``); an input below the file's smallest
        size is refused."""
        from cloudfree.models.onnx_export import min_export_size

        multiple = max(1, int(self.cloudfree_spec.inputs.spatial_multiple or 1))
        smallest = min_export_size(multiple)
        if min(h, w) < smallest:
            raise ConfigError(
                f"{self.path}: the exported {self.cloudfree_config['name']!r} takes images of "
                f"at least {smallest} x {smallest} px, got {h} x {w} (predict with a larger "
                "--tile, or run the torch network)"
            )
        return padding_to_multiple(h, multiple), padding_to_multiple(w, multiple)

    def _padded(
        self, optical: Tensor, sar: Tensor | None, dates: Tensor | None, real: Tensor
    ) -> Any:
        """A batch with padded dates: each sample on its real dates only, which gives the
        network's result where a padded date changes nothing (``padding_invariant``)."""
        from cloudfree.models.api import ModelOutput

        if not self.cloudfree_spec.inputs.padding_invariant:
            raise ConfigError(
                f"{self.path}: the exported {self.cloudfree_config['name']!r} takes every date "
                "as real, and a padded date changes its result (it is not padding-invariant): "
                "give series without padded dates, or run the torch network"
            )
        outs = []
        for i, keep in enumerate(real):
            one = [None if x is None else x[i : i + 1, keep] for x in (optical, sar, dates)]
            outs.append(self(*one))
        if isinstance(outs[0], ModelOutput):
            return ModelOutput(
                pred=torch.cat([o.pred for o in outs]),
                variance=torch.cat([o.variance for o in outs]),
            )
        return torch.cat(outs)


def _host(x: Tensor) -> np.ndarray:
    """``x`` as a contiguous float32 numpy array on the host (what onnxruntime is fed)."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


def _open_session(path: Path, providers: list[str]) -> Any:
    """An onnxruntime session of ``path`` with as many threads as torch."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own error types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        problem = f"onnxruntime cannot open it as an ONNX model ({first})"
        raise InputFileError(path, problem) from None


def _metadata(path: Path, session: Any) -> dict[str, Any]:
    raw = dict(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in ("name", "protocol", "bands") if f"cloudfree.{k}" not in raw]
    if missing:
        raise InputFileError(
            path,
            f"no cloudfree metadata ({', '.join('cloudfree.' + k for k in missing)} missing): "
            "export the network with `cloudfree models export NAME --weights DIR --format onnx "
            "OUT` so that its input scaling and bands are recorded",
        )
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("cloudfree."):
            try:
                meta[key.removeprefix("cloudfree.")] = json.loads(value)
            except json.JSONDecodeError:
                meta[key.removeprefix("cloudfree.")] = value
    return meta


def load_onnx(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Open the exported network ``path`` for inference with onnxruntime.

    Args:
        path: an ONNX file written by ``cloudfree models export``.
        name: the registry name the caller expects (``--model``; optional, checked).
        device: where inputs will be (CUDA uses onnxruntime's CUDA provider when installed).

    Returns:
        A :class:`~cloudfree.models.loading.LoadedModel` (``source="onnx"``).

    Raises:
        ConfigError: onnxruntime is not installed; ``name`` differs from the file's.
        InputFileError: the file is missing, not an ONNX model, or lacks cloudfree's metadata.
    """
    from cloudfree.bands import get_band_set
    from cloudfree.models.hub import weights_sha256
    from cloudfree.models.loading import LoadedModel

    p = Path(path)
    if not onnxruntime_available():
        raise ConfigError(
            "--runtime onnxruntime needs the optional package onnxruntime: "
            "pip install 'cloudfree[onnx]'"
        )
    if not p.is_file():
        raise InputFileError(p, "ONNX file not found" if not p.exists() else "is not a file")
    session = _open_session(p, ["CPUExecutionProvider"])
    meta = _metadata(p, session)
    if name is not None and name != meta["name"]:
        raise ConfigError(
            f"model {name!r} (--model) does not match {p}, which holds a {meta['name']!r} "
            "network (leave the name out)"
        )
    config = dict(meta.get("config") or {})
    config.update(name=meta["name"], protocol=meta["protocol"], bands=meta["bands"])
    config.setdefault("kwargs", {})
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if "optical" not in inputs or "pred" not in outputs:
        raise InputFileError(
            p, f"unexpected graph (inputs {inputs}, outputs {outputs}); export it with cloudfree"
        )
    try:
        model = OnnxRuntimeModel(p, config, inputs, outputs)
    except ConfigError as exc:
        raise InputFileError(p, str(exc)) from None
    declared = session.get_inputs()[inputs.index("optical")].shape[1]
    channels = model.cloudfree_spec.inputs.optical_channels
    if isinstance(declared, int) and channels is not None and declared != channels:
        raise InputFileError(
            p, f"its optical input has {declared} channels but {meta['name']!r} takes {channels}"
        )
    model._sessions["cpu"] = session  # the file is read once: its CPU session is kept
    model.exported_from_sha256 = meta.get("weights_sha256")
    dev = torch.device(device)
    return LoadedModel(
        model=model.eval(),
        name=str(meta["name"]),
        protocol=str(meta["protocol"]),
        bands=get_band_set(meta["bands"]),
        weights_path=p,
        weights_sha256=weights_sha256(p),
        source="onnx",
        device=dev,
    )
