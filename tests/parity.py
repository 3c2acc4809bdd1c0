"""Generic reader of the reference-parity fixtures (``<shared>/parity/<case>/``).

A case is a directory with ``case.json`` (metadata: kind, our registry name, our constructor
kwargs, the tolerance), ``io.safetensors`` (tensors ``input.<name>`` / ``output.<name>``) and,
for models and blocks, ``checkpoint.pth`` in the official layout; ``index.json`` lists every
case with the size and sha256 of its files (see ``parity/README.md``).

Decisions:

* A model case runs through the same path a user takes: ``load_official_checkpoint(model,
  checkpoint, **case["kwargs"])`` then :func:`cloudfree.models.run_model`.
* Case input names map onto ``run_model`` arguments by :data:`RUN_MODEL_ARGUMENT`
  (``cloudy``/``optical`` -> optical, ``sar`` -> sar, ``dates``/``batch_positions`` -> dates,
  ``pad_mask`` -> ``time_mask = ~pad_mask``); inputs that feed a loss, not the network
  (:data:`NOT_NETWORK_INPUTS`), are left out. An input name outside both is an error, so a new
  fixture layout cannot be silently half-used.
* Case outputs map onto :class:`~cloudfree.models.ModelOutput` fields by
  :data:`MODEL_OUTPUT_FIELD` (``pred``/``mean``/``out`` -> pred, ``variance``); other outputs
  (attention maps, losses) are left to the family's own tests. A reference with a singleton
  time axis (``[B, 1, C, H, W]``, UnCRtainTS) is compared without it, and a ``[B, 1, C, H, W]``
  input given to a mono-temporal model loses its T axis.
* The case directory name is the case; its ``name`` field is our registry name, except where
  :data:`MODEL_OF_CASE` says the case exercises a registered model under another name.
* An input named ``*_bgr`` holds images in the official BGR channel order (SpA-GAN reads
  OpenCV images); our models take RGB, so such an input is given with its channels reversed
  and the image outputs (:data:`MODEL_OUTPUT_FIELD`) are reversed back before comparing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from cloudfree.models import ModelBatch, ModelOutput, spec_of

__all__ = [
    "MODEL_OF_CASE",
    "MODEL_OUTPUT_FIELD",
    "NOT_NETWORK_INPUTS",
    "RUN_MODEL_ARGUMENT",
    "ParityCase",
    "case_names",
    "file_sha256",
    "load_case",
]

#: parity cases that exercise a registered model under another case name
MODEL_OF_CASE: dict[str, str] = {"glf_cr_resize": "glf_cr"}

#: case input name -> run_model argument
RUN_MODEL_ARGUMENT: dict[str, str] = {
    "cloudy": "optical",
    "optical": "optical",
    "cloudy_bgr": "optical",
    "sar": "sar",
    "dates": "dates",
    "batch_positions": "dates",
    "pad_mask": "time_mask",  # inverted: True marks padding in the official code
}

#: case inputs that are not network inputs (loss targets)
NOT_NETWORK_INPUTS: frozenset[str] = frozenset({"target"})

#: case output name -> ModelOutput field
MODEL_OUTPUT_FIELD: dict[str, str] = {
    "pred": "pred",
    "mean": "pred",
    "out": "pred",
    "variance": "variance",
}


def case_names(shared_dir: Path | None, kind: str | None = None) -> list[str]:
    """The cases of ``<shared_dir>/parity`` (every directory holding a ``case.json``), only
    those of ``kind`` (``model``, ``block``, ``metric``, ``cloudmask``) when given; empty when
    the folder is absent."""
    if shared_dir is None or not (shared_dir / "parity").is_dir():
        return []
    names = []
    for path in sorted((shared_dir / "parity").glob("*/case.json")):
        if kind is None or json.loads(path.read_text()).get("kind") == kind:
            names.append(path.parent.name)
    return names


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ParityCase:
    """One parity case directory."""

    case: str
    directory: Path
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def model_name(self) -> str:
        """Our registry name for the case."""
        return MODEL_OF_CASE.get(self.case, str(self.meta["name"]))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.meta.get("kwargs") or {})

    @property
    def checkpoint_path(self) -> Path | None:
        name = self.meta.get("checkpoint")
        return None if name is None else self.directory / name

    @cached_property
    def tensors(self) -> dict[str, Tensor]:
        return load_file(str(self.directory / "io.safetensors"))

    def inputs(self) -> dict[str, Tensor]:
        return {k[len("input.") :]: v for k, v in self.tensors.items() if k.startswith("input.")}

    def outputs(self) -> dict[str, Tensor]:
        return {k[len("output.") :]: v for k, v in self.tensors.items() if k.startswith("output.")}

    def checkpoint(self) -> Any:
        """The checkpoint as stored (official wrapper dicts included), read the safe way."""
        if self.checkpoint_path is None:
            raise ValueError(f"parity case {self.case} has no checkpoint")
        return torch.load(self.checkpoint_path, weights_only=True, map_location="cpu")

    @property
    def bgr(self) -> bool:
        """The official images are BGR (an input named ``*_bgr``)."""
        return any(name.endswith("_bgr") for name in self.meta.get("inputs", {}))

    def tolerance(self, output: str) -> dict[str, float]:
        """``{"atol", "rtol"}`` for ``output`` (``tolerance_per_output`` over ``tolerance``)."""
        per = self.meta.get("tolerance_per_output") or {}
        tol = per.get(output, self.meta["tolerance"])
        if not isinstance(tol, dict):
            raise ValueError(f"parity case {self.case}: output {output!r} has tolerance {tol!r}")
        return {"atol": float(tol["atol"]), "rtol": float(tol["rtol"])}

    def model_batch(self, model: torch.nn.Module) -> ModelBatch:
        """The case's inputs as the ``run_model`` arguments of ``model``."""
        args: dict[str, Tensor] = {}
        for name, tensor in self.inputs().items():
            if name in NOT_NETWORK_INPUTS:
                continue
            if name not in RUN_MODEL_ARGUMENT:
                raise KeyError(
                    f"parity case {self.case}: input {name!r} has no run_model argument; add it "
                    "to tests/parity.py RUN_MODEL_ARGUMENT or NOT_NETWORK_INPUTS"
                )
            arg = RUN_MODEL_ARGUMENT[name]
            if name.endswith("_bgr"):
                tensor = tensor.flip(-3)  # BGR -> RGB
            args[arg] = ~tensor.to(torch.bool) if name == "pad_mask" else tensor
        if not spec_of(model).inputs.temporal:
            for arg in ("optical", "sar"):
                x = args.get(arg)
                if x is not None and x.ndim == 5 and x.shape[1] == 1:
                    args[arg] = x[:, 0]
            args.pop("dates", None)
            args.pop("time_mask", None)
        return ModelBatch(
            args["optical"], args.get("sar"), args.get("dates"), args.get("time_mask")
        )

    def compare(self, out: ModelOutput) -> list[str]:
        """Compare ``out`` with the case's outputs (those in :data:`MODEL_OUTPUT_FIELD`) under
        their tolerances; returns the names compared (raises on a mismatch)."""
        compared = []
        for name, ref in self.outputs().items():
            field = MODEL_OUTPUT_FIELD.get(name)
            if field is None:
                continue
            got = getattr(out, field)
            assert got is not None, f"{self.case}: the model returned no {field} for {name!r}"
            if self.bgr:
                got = got.flip(-3)  # our RGB output in the official BGR order
            if ref.ndim == got.ndim + 1 and ref.shape[1] == 1:
                ref = ref[:, 0]  # singleton time axis of the reference
            torch.testing.assert_close(
                got, ref, **self.tolerance(name), msg=lambda m, n=name: f"{self.case}.{n}: {m}"
            )
            compared.append(name)
        return compared


def load_case(shared_dir: Path, case: str) -> ParityCase:
    """The case directory ``<shared_dir>/parity/<case>`` and its ``case.json``."""
    directory = shared_dir / "parity" / case
    meta = json.loads((directory / "case.json").read_text())
    return ParityCase(case, directory, meta)
