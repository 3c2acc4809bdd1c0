"""Small training configurations shared by the training tests (not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudfree.train import build_config, load_recipe
from cloudfree.train.config import TrainConfig

#: a DSen2-CR small enough for CPU smoke runs
TINY_DSEN2CR: dict[str, Any] = {"model.kwargs": {"width": 8, "num_blocks": 1}}


def tiny_config(
    data_root: Path, out: Path | None, model: dict[str, Any] = TINY_DSEN2CR, **overrides: Any
) -> TrainConfig:
    """The dsen2cr recipe shrunk to a CPU smoke run (epochs of a few batches of 2 crops of
    16 px, validation and a checkpoint every 2 steps, 5 steps); ``model`` holds ``model.*``
    overrides and ``overrides`` any other dotted key with ``__`` for the dots."""
    base: dict[str, Any] = {
        **model,
        "data.patch_size": 16,
        "data.batch_size": 2,
        "data.num_workers": 0,
        "trainer.max_steps": 5,
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 1,
        "trainer.val_check_interval": 2,
        "trainer.checkpoint_every_n_steps": 2,
        "trainer.enable_progress_bar": False,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(load_recipe("dsen2cr"), base, data_root=data_root, out=out)
