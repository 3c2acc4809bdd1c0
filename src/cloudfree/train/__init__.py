"""Training engine (Lightning): configs and recipes, data module, LightningModule, runs.

>>> from cloudfree.train import build_config, load_recipe, train         # doctest: +SKIP
>>> cfg = build_config(load_recipe("dsen2cr"), {"trainer.max_steps": 100}, data_root="data/")
>>> result = train(cfg)                                                   # doctest: +SKIP
>>> result.best_weights   # load with cloudfree.models.load_pretrained    # doctest: +SKIP

The command line is ``cloudfree train`` and ``cloudfree recipes``. Importing this package needs
the ``train`` extra (``lightning``); :mod:`cloudfree.train.config` alone does not.
"""

from cloudfree.train.config import (
    TrainConfig,
    apply_overrides,
    build_config,
    config_to_yaml,
    list_recipes,
    load_recipe,
    load_yaml_config,
    recipe_text,
)
from cloudfree.train.datamodule import CloudRemovalDataModule, build_datasets
from cloudfree.train.module import CloudRemovalModule
from cloudfree.train.run import PreparedRun, TrainResult, prepare_run, train

__all__ = [
    "CloudRemovalDataModule",
    "CloudRemovalModule",
    "PreparedRun",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_config",
    "build_datasets",
    "config_to_yaml",
    "list_recipes",
    "load_recipe",
    "load_yaml_config",
    "prepare_run",
    "recipe_text",
    "train",
]
