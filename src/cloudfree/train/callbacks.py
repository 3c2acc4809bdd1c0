"""Callbacks of a training run: last checkpoint, weight export, random-state checkpointing,
and the CSV logger writing ``<run>/metrics.csv``.

Run-directory layout they maintain (see :mod:`cloudfree.train.run`)::

    <run>/checkpoints/last.ckpt     LastCheckpoint: every N steps, after each validation, at the end
    <run>/checkpoints/best.ckpt     Lightning's ModelCheckpoint on val/loss (configured in run.py)
    <run>/weights/best/             ExportWeights: save_pretrained of the best val/loss model
    <run>/weights/final/            ExportWeights: save_pretrained at the end of training
    <run>/metrics.csv               RunCSVLogger

Everything is written by global rank 0 only (Lightning's ``save_checkpoint`` writes on rank 0;
the exports check ``trainer.is_global_zero``).
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from cloudfree.models.hub import WEIGHTS_NAME
from cloudfree.models.loading import BEST_WEIGHTS, FINAL_WEIGHTS, LAST_CKPT

__all__ = ["ExportWeights", "LastCheckpoint", "RNGStateCheckpoint", "RunCSVLogger"]


class RNGStateCheckpoint(Callback):
    """Save the global random states (torch CPU and CUDA, numpy, python) in checkpoints and
    restore them on resume.

    Lightning does not checkpoint them. The model's stochastic layers (e.g. GLF-CR's DropPath)
    draw from torch's global generator; restoring it makes a resumed run draw the same masks as
    the uninterrupted run. (The data pipeline does not use global random state at all, see
    :mod:`cloudfree.train.datamodule`.) The state saved is rank 0's; with the same seed on
    every rank, all ranks' states are equal anyway.
    """

    def state_dict(self) -> dict[str, Any]:
        # the legacy global numpy state is what third-party code may draw from
        kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]  # noqa: NPY002
        # plain types and tensors only, so that checkpoints load with weights_only=True
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": list(random.getstate()),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "torch" in state_dict:
            torch.set_rng_state(torch.as_tensor(state_dict["torch"], dtype=torch.uint8).cpu())
        if "numpy" in state_dict:
            kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
            keys = np.asarray(torch.as_tensor(keys).numpy(), dtype=np.uint32)
            np.random.set_state((kind, keys, int(pos), int(has_gauss), float(gauss)))  # noqa: NPY002
        if "python" in state_dict:
            random.setstate(_as_python_state(state_dict["python"]))
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available():
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([torch.as_tensor(s).cpu() for s in cuda])


def _as_python_state(state: Any) -> tuple[Any, ...]:
    # checkpoints may turn the inner tuple into a list
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class LastCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_steps`` optimizer steps, after each
    validation, at each epoch end and at the step where ``max_steps`` is reached, so a killed
    run can be resumed with little loss and a finished one continued with a larger budget.

    The end of training is saved from the batch-end or epoch-end hook, never from
    ``on_train_end``: Lightning restores loop progress correctly from those points only (a
    checkpoint written in ``on_train_end`` at an epoch boundary resumes with a miscounted
    epoch).

    A :class:`~lightning.pytorch.callbacks.Checkpoint` subclass, so Lightning runs it after
    the other callbacks (in the order given among checkpoint callbacks): place it after the
    ``ModelCheckpoint`` that tracks the best model so that the saved state includes that
    callback's latest best score.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self._last_step_saved = -1

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_CKPT

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def _save(self, trainer: pl.Trainer, *, again: bool = False) -> None:
        if trainer.sanity_checking or (trainer.global_step == self._last_step_saved and not again):
            return
        self._last_step_saved = trainer.global_step
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        n = self.every_n_steps
        step = trainer.global_step
        final = trainer.max_steps is not None and 0 < trainer.max_steps <= step
        if final or (n and step > 0 and step % n == 0):
            self._save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            # supersedes a batch-end save of the same step (validation and best score done)
            self._save(trainer, again=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)


class ExportWeights(Callback):
    """Export the network with :func:`cloudfree.models.save_pretrained` (rank 0 only).

    * ``<weights_dir>/best``: after each validation (not the sanity check) whose ``val/loss``
      is strictly lower than every earlier one (the same rule as the ``ModelCheckpoint`` that
      writes ``best.ckpt``); the best value is saved in checkpoints, so it survives a resume.
      When training ends without any validation, the final weights are written there too
      (with ``"selection": "final (no validation)"``), so a run always has ``weights/best``.
    * ``<weights_dir>/final``: when training ends.

    ``extra`` is merged into each ``config.json`` (the training config, the protocol and band
    set of the data); ``"training"`` also records the step, epoch, selection and val loss.
    """

    def __init__(self, weights_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        self.weights_dir = Path(weights_dir)
        self.extra = dict(extra or {})
        self.best: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")

    def _export(
        self, trainer: pl.Trainer, module: pl.LightningModule, name: str, info: dict
    ) -> None:
        if not trainer.is_global_zero:
            return
        from cloudfree.models import save_pretrained

        extra = dict(self.extra)
        training = dict(extra.get("training", {}))
        training.update(
            {"global_step": int(trainer.global_step), "epoch": int(trainer.current_epoch), **info}
        )
        extra["training"] = training
        conventions = {k: extra.pop(k) for k in ("protocol", "bands") if k in extra}
        save_pretrained(module.model, self.weights_dir / name, extra=extra, **conventions)  # type: ignore[arg-type]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get("val/loss")
        if value is None:
            return
        loss = float(value)
        if math.isnan(loss) or (self.best is not None and not loss < self.best):
            return
        self.best = loss
        info = {"selection": "best val/loss", "val_loss": loss}
        self._export(trainer, pl_module, BEST_WEIGHTS, info)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        info: dict[str, Any] = {"selection": "final"}
        if value is not None:
            info["val_loss"] = float(value)
        self._export(trainer, pl_module, FINAL_WEIGHTS, info)
        has_best = (self.weights_dir / BEST_WEIGHTS / WEIGHTS_NAME).is_file()
        if self.best is None and not has_best:
            self._export(trainer, pl_module, BEST_WEIGHTS, {"selection": "final (no validation)"})


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer that keeps an existing ``metrics.csv`` (resume) instead of
    deleting it, dropping the rows of the part of a killed run that is redone.

    Lightning logs the metrics of the batch that brings ``global_step`` to ``g`` (and of a
    validation run at ``g``) with ``step = g - 1``; a checkpoint taken at ``global_step = g``
    therefore covers the rows with ``step < g``.
    """

    def __init__(self, log_dir: str, resume_step: int | None = None) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._resume_step is None:  # a fresh run: start a new file
            path.unlink()
            return
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _step_of(r) is None or _step_of(r) < self._resume_step]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys


def _step_of(row: dict[str, str]) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


class RunCSVLogger(CSVLogger):
    """:class:`CSVLogger` writing ``<run>/metrics.csv`` directly (no ``version_N`` folder).

    On a resumed run (``resume_step`` = the checkpoint's global step) the existing file is
    kept and continued; rows logged after the checkpoint are dropped first. Rows are flushed
    every ``flush_every`` steps, so a killed run may lose up to that many rows before its
    last checkpoint.
    """

    def __init__(
        self, run_dir: str | Path, *, resume_step: int | None = None, flush_every: int = 50
    ) -> None:
        super().__init__(
            save_dir=str(run_dir), name="", version="", flush_logs_every_n_steps=flush_every
        )
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            Path(self.log_dir).mkdir(parents=True, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._resume_step)
        return self._experiment

    def log_hyperparams(self, params: Any = None) -> None:
        """Not written: ``<run>/config.yaml`` already holds the resolved configuration."""
