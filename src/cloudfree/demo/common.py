"""What the demo and the synthetic benchmark share: their output-directory housekeeping, quiet
training, and the shipped budget of compact models (``resources/synthetic_benchmark.yaml``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["budget_overrides", "load_synthetic_spec", "quiet_training", "remove_owned"]


def load_synthetic_spec() -> dict[str, Any]:
    """The shipped ``synthetic_benchmark.yaml`` (budget, data sizes, families)."""
    text = (
        resources.files("cloudfree.demo")
        .joinpath("resources/synthetic_benchmark.yaml")
        .read_text(encoding="utf-8")
    )
    return yaml.safe_load(text)


def remove_owned(out: Path, names: tuple[str, ...]) -> None:
    """Remove the files and folders ``names`` of ``out`` that an earlier run wrote."""
    for name in names:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


@contextmanager
def quiet_training(threads: int) -> Iterator[None]:
    """Torch threads for the demo, with Lightning's noise off (:func:`quiet_lightning`)."""
    import torch

    from cloudfree.train.run import quiet_lightning

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with quiet_lightning():
            yield
    finally:
        torch.set_num_threads(old_threads)


def budget_overrides(
    budget: Mapping[str, Any],
    entry: Mapping[str, Any],
    temporal: bool,
    ts_options: Mapping[str, Any],
    device: str,
    progress: bool,
) -> dict[str, Any]:
    """Training-config overrides that train ``entry`` (a family of the synthetic benchmark's
    YAML: ``model``, ``kwargs``, ``overrides``) under ``budget`` (``steps``, ``batch_size``,
    ``crop``, ``lr``, ``seed``): cosine decay per step, no validation, no checkpoints but the
    final weights; a temporal model on the time series with ``ts_options``."""
    settings: dict[str, Any] = {
        "model.name": entry["model"],
        "model.kwargs": dict(entry.get("kwargs") or {}),
        "data.patch_size": budget["crop"],
        "data.val_patch_size": None,
        "data.batch_size": budget["batch_size"],
        "data.num_workers": 0,
        "optimizer.lr": budget["lr"],
        "scheduler": {"name": "cosine", "interval": "step"},
        "trainer.max_epochs": None,
        "trainer.max_steps": budget["steps"],
        "trainer.accelerator": "gpu" if device.startswith("cuda") else "cpu",
        "trainer.val_check_interval": None,
        "trainer.check_val_every_n_epoch": 100000,  # no validation: the final weights count
        "trainer.num_sanity_val_steps": 0,
        "trainer.checkpoint_every_n_steps": None,
        "trainer.log_every_n_steps": 10,
        "trainer.enable_progress_bar": progress,
        "seed": budget["seed"],
    }
    if temporal:
        settings["data.options"] = dict(ts_options)
        settings["data.train_options"] = {}
        settings["data.val_options"] = {}
    settings.update(entry.get("overrides") or {})
    return settings
