"""Run a training: validate the config, build data and model, assemble the Lightning Trainer.

:func:`prepare_run` does every check that can fail *before* training starts, in order of cost:

1. the config alone (:func:`check_config`): model and loss names, data root, protocols, band
   set, cloud-mask method, ``init_weights`` path, the ``init_submodules`` /
   ``sar_encoder_init`` directories, run-directory state (a fresh run refuses a directory that
   already holds a run; ``resume`` needs ``checkpoints/last.ckpt``);
2. the datasets: both splits are built (an empty split raises :class:`DatasetError`) and their
   first samples are read (unreadable files, a crop larger than the patches; a
   ``sar_pretrain`` network needs ``target_sar`` in them);
3. the model: built, its optical input width compared with the band set, ``init_weights``
   loaded (a pretrained directory of another model, or an official checkpoint that does not
   convert, raises :class:`ConfigError`), then the submodule weights
   (:func:`load_submodule_inits`), and ``optimizer.param_groups`` matched against its
   parameters.

:func:`train` then seeds everything (``pl.seed_everything(seed, workers=True)``, before the
model is built), writes ``<run>/config.yaml`` (the resolved config) and fits. Layout of a run
directory (other tools, e.g. ``cloudfree evaluate --checkpoint RUN``, rely on it)::

    <run>/config.yaml                                   resolved config
    <run>/weights/best/{model.safetensors,config.json}  best val/loss weights (save_pretrained)
    <run>/weights/final/{model.safetensors,config.json} weights at the end
    <run>/checkpoints/last.ckpt, best.ckpt              Lightning checkpoints (resume)
    <run>/metrics.csv                                   CSVLogger
    <run>/tensorboard/                                  only when tensorboard is installed

Reproducibility: the same config and seed give bit-identical weights on CPU (same machine,
same torch thread count; GPU kernels may be non-deterministic unless
``trainer.deterministic``), whatever ``data.num_workers``; a run resumed from
``checkpoints/last.ckpt``, even one killed mid-epoch, continues exactly as the uninterrupted
run (weights and ``metrics.csv`` rows), see :mod:`cloudfree.train.datamodule` and
:class:`~cloudfree.train.callbacks.RNGStateCheckpoint`.

Multi-process: ``devices > 1`` (or ``num_nodes > 1``) uses DDP; Lightning re-launches the
command line for the other local ranks (``python -m cloudfree train ...`` works), and under
``torchrun`` it picks up the torchelastic environment (``trainer.devices`` then defaults to
``LOCAL_WORLD_SIZE``; ``trainer.num_nodes`` must match). Only global rank 0 writes files.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import Dataset

from cloudfree.distributed import global_rank
from cloudfree.errors import CloudfreeError, ConfigError, DatasetError, InputFileError
from cloudfree.io.atomic import atomic_write_text
from cloudfree.models.hub import WEIGHTS_NAME
from cloudfree.models.loading import BEST_CKPT_NAME, CONFIG_FILE, RunLayout
from cloudfree.train.config import (
    TrainConfig,
    build_config,
    config_to_yaml,
    load_yaml_config,
    model_info,
    resolve_config,
)
from cloudfree.train.datamodule import (
    CloudRemovalDataModule,
    TrainSampleDataset,
    build_datasets,
    masks_needed,
)

__all__ = [
    "PreparedRun",
    "TrainResult",
    "build_trainer",
    "check_config",
    "default_run_dir",
    "holds_training_state",
    "load_init_weights",
    "load_submodule_inits",
    "load_run_config",
    "prepare_run",
    "train",
]

#: Environment variable through which rank 0 hands its run directory to the DDP processes
#: Lightning re-launches (their default ``runs/<name>-<timestamp>`` could differ).
RUN_DIR_ENV = "CLOUDFREE_TRAIN_RUN_DIR"

#: The recipe that trains the weights of a submodule named in ``model.init_submodules`` /
#: ``model.sar_encoder_init`` (named by the error when they are missing).
SUBMODULE_RECIPES = {"sar_encoder": "ca_mtcr_sar_pretrain"}


# --------------------------------------------------------------------------- helpers
def _env_rank_is_zero() -> bool:
    """Global rank 0 according to the launcher's environment, before Lightning starts
    (:func:`cloudfree.distributed.global_rank`)."""
    return global_rank() == 0


def _is_launched_child() -> bool:
    """A process re-launched by Lightning's DDP launcher (it sets LOCAL_RANK > 0)."""
    return int(os.environ.get("LOCAL_RANK", 0)) > 0 and "TORCHELASTIC_RUN_ID" not in os.environ


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>`` (``name``: the recipe or the model).

    DDP processes re-launched by Lightning take rank 0's directory from :data:`RUN_DIR_ENV`;
    with several SLURM tasks the job id, under torchrun the rendezvous id replace the
    timestamp (they are the same in every process); torchrun without an id needs ``--out``.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and _is_launched_child():
        return Path(inherited)
    if int(os.environ.get("SLURM_NTASKS", 1)) > 1 and "SLURM_JOB_ID" in os.environ:
        return Path("runs") / f"{config.run_name}-slurm{os.environ['SLURM_JOB_ID']}"
    if "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        run_id = os.environ["TORCHELASTIC_RUN_ID"]
        if run_id and run_id != "none":
            return Path("runs") / f"{config.run_name}-{run_id}"
        raise ConfigError(
            "under torchrun without a rendezvous id, pass --out RUN (the same path on every node)"
        )
    return Path("runs") / f"{config.run_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_config(config: TrainConfig) -> None:
    """Checks that need the registries or the file system but no data loading or model
    building (see the module docstring). Raises :class:`ConfigError` / :class:`DatasetError`."""
    from cloudfree.bands import get_band_set
    from cloudfree.cloudmask.dispatch import CLOUD_MASK_METHODS
    from cloudfree.losses import build_loss
    from cloudfree.metrics import get_metric_protocol
    from cloudfree.normalization import get_protocol

    info = model_info(config.model.name)
    from cloudfree.data import get_dataset

    if info.temporal and not get_dataset(config.data.dataset).temporal:
        raise ConfigError(
            f"model.name: {config.model.name!r} is a multi-temporal model, but data.dataset "
            f"{config.data.dataset!r} holds single dates; use a time-series dataset "
            "(sen12mscr_ts, allclear) or a mono-temporal model"
        )
    try:
        build_loss(config.loss.name, **config.loss.kwargs)
    except ConfigError as exc:
        raise ConfigError(f"loss: {exc}") from None
    masks_needed(config)  # data.masks: false with a loss that reads the masks
    from cloudfree.train.tasks import resolve_task

    resolve_task(config, info.resolve_spec(config.model.kwargs))  # task settings vs the model
    d = config.data
    if d.root is None:
        raise ConfigError("data.root is not set; pass --data ROOT (or set data.root)")
    if not Path(d.root).is_dir():
        raise ConfigError(f"data.root: {d.root} does not exist or is not a directory")
    for key, check, value in (
        ("data.protocol", get_protocol, d.protocol or info.protocol),
        ("data.bands", get_band_set, d.bands if d.bands is not None else info.bands),
        ("metrics.protocol", get_metric_protocol, config.metrics.protocol),
    ):
        try:
            check(value)
        except CloudfreeError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if d.cloud_mask_method not in CLOUD_MASK_METHODS:
        raise ConfigError(
            f"data.cloud_mask_method: unknown method {d.cloud_mask_method!r}; valid: "
            f"{', '.join(CLOUD_MASK_METHODS)}"
        )
    if config.model.init_weights is not None and not Path(config.model.init_weights).exists():
        raise ConfigError(f"model.init_weights: {config.model.init_weights} does not exist")
    for name, (key, value) in config.model.submodule_inits().items():
        _submodule_weights_dir(name, key, value)
    if config.data.augment.rot90 and config.data.patch_size is None:
        # whole SEN12MS-CR patches are square, but other data may not be: require a crop
        raise ConfigError("data.augment.rot90 needs a square training crop: set data.patch_size")


def load_init_weights(model: nn.Module, config: TrainConfig) -> None:
    """Load ``config.model.init_weights`` into ``model`` (strictly).

    A directory (pretrained weights, or a training run: its ``weights/best``, else
    ``weights/final``) is read by :func:`~cloudfree.models.load_model` and must name
    ``config.model.name``; a file is converted with
    :func:`~cloudfree.models.load_official_checkpoint` for that model.

    Raises:
        ConfigError: weights of another model, a checkpoint that does not convert, or weights
            whose shapes do not fit ``model.kwargs``.
    """
    from cloudfree.models import load_model, read_pretrained_config, resolve_weights_dir

    name = config.model.name
    path = Path(str(config.model.init_weights))
    if not (path.is_dir() or path.is_file()):
        raise ConfigError(f"model.init_weights: {path} does not exist")
    try:  # only errors of the loaders are wrapped; this function's own are raised outside
        is_dir = path.is_dir()
        saved_name = read_pretrained_config(resolve_weights_dir(path))["name"] if is_dir else name
        if saved_name == name:  # the one loader (cloudfree.models.load_model)
            source = load_model(
                path,
                name=name,
                kwargs=None if is_dir else config.model.kwargs,
                bands=None if is_dir else config.data.bands,
            ).model
    except (ConfigError, InputFileError) as exc:
        problem = exc.problem if isinstance(exc, InputFileError) else str(exc)
        raise ConfigError(
            f"model.init_weights: {path} is not usable for model {name!r}: {problem}"
        ) from None
    if saved_name != name:
        raise ConfigError(
            f"model.init_weights: {path} holds weights of model {saved_name!r}, "
            f"but model.name is {name!r}"
        )
    from cloudfree.models.state import load_state_dict_strict

    try:
        load_state_dict_strict(model, source.state_dict())
    except ConfigError as exc:
        raise ConfigError(
            f"model.init_weights: the weights in {path} do not fit model {name!r} with "
            f"kwargs {config.model.kwargs}: {exc}"
        ) from None


def _submodule_hint(name: str, key: str) -> str:
    recipe = SUBMODULE_RECIPES.get(name)
    first = (
        f"run the {recipe} recipe first (cloudfree train --recipe {recipe} --data ROOT) and "
        f"pass its run directory (--set {key}=RUN)"
        if recipe
        else f"pass the run or weights directory of a model with a {name!r} submodule "
        f"(--set {key}=RUN)"
    )
    return f"{first}, or --set {key}=none to train {name!r} from scratch"


def _submodule_weights_dir(name: str, key: str, value: str) -> Path | None:
    """The pretrained directory of one ``init_submodules`` entry (None for ``none``).

    Raises:
        ConfigError: the recipe's placeholder, a missing path, or a path without weights (one
            line that says what to pass instead).
    """
    from cloudfree.models import resolve_weights_dir
    from cloudfree.train.config import SUBMODULE_INIT_NONE, SUBMODULE_INIT_REQUIRED

    text = str(value).strip()
    if text.lower() == SUBMODULE_INIT_NONE:
        return None
    if text == SUBMODULE_INIT_REQUIRED:
        raise ConfigError(
            f"{key}: not set (the recipe's placeholder {SUBMODULE_INIT_REQUIRED}): "
            f"{_submodule_hint(name, key)}"
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist; {_submodule_hint(name, key)}")
    try:
        return resolve_weights_dir(path)
    except InputFileError as exc:
        raise ConfigError(f"{key}: {path} {exc.problem}; {_submodule_hint(name, key)}") from None


def load_submodule_inits(model: nn.Module, config: TrainConfig) -> dict[str, Path]:
    """Copy the weights of each ``model.init_submodules`` / ``model.sar_encoder_init`` entry
    into ``model``'s submodule of that name (entries ``none`` are skipped).

    The source directory (a run directory: its ``weights/best``, else ``weights/final``; or a
    pretrained directory) is loaded with :func:`~cloudfree.models.load_model` (on the CPU),
    whatever model it holds (``ca_mtcr_sar_vqvae`` for ``sar_encoder``); the state dict of its
    submodule ``name`` is loaded strictly into ``model.<name>``; the rest of the source model
    is dropped. Returns ``{submodule: directory loaded}``.

    Raises:
        ConfigError: a bad path (see :func:`check_config`), a model without that submodule, a
            source without it, or weights whose keys or shapes do not fit (the message names
            them and the source model's arguments).
    """
    from cloudfree.models import load_model
    from cloudfree.models.state import load_state_dict_strict

    loaded: dict[str, Path] = {}
    for name, (key, value) in config.model.submodule_inits().items():
        wdir = _submodule_weights_dir(name, key, value)
        if wdir is None:
            continue
        try:
            target = model.get_submodule(name)
        except AttributeError:
            tops = ", ".join(n for n, _ in model.named_children()) or "none"
            raise ConfigError(
                f"{key}: model {config.model.name!r} has no submodule {name!r} (its "
                f"submodules: {tops})"
            ) from None
        try:
            source = load_model(wdir, device="cpu")
        except (ConfigError, InputFileError) as exc:
            problem = exc.problem if isinstance(exc, InputFileError) else str(exc)
            raise ConfigError(f"{key}: {wdir} is not usable: {problem}") from None
        try:
            part = source.model.get_submodule(name)
        except AttributeError:
            raise ConfigError(
                f"{key}: {wdir} holds a {source.name!r} model, which has no submodule {name!r}; "
                f"{_submodule_hint(name, key)}"
            ) from None
        try:
            load_state_dict_strict(target, part.state_dict())
        except ConfigError as exc:
            kwargs = getattr(source.model, "cloudfree_config", {}).get("kwargs", {})
            raise ConfigError(
                f"{key}: the {name!r} weights in {wdir} (a {source.name!r} model with kwargs "
                f"{kwargs}) do not fit model {config.model.name!r} with kwargs "
                f"{config.model.kwargs}: {exc}"
            ) from None
        loaded[name] = wdir
    return loaded


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw ``config.yaml`` of an existing run (the base config of ``--resume``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CONFIG_FILE}; is this a cloudfree training run?")
    return load_yaml_config(path)


# --------------------------------------------------------------------------- preparation
@dataclass
class PreparedRun:
    """Everything :func:`train` needs, checked and built."""

    config: TrainConfig
    run_dir: Path
    model: nn.Module
    train_dataset: TrainSampleDataset
    val_dataset: Dataset
    resume_from: Path | None

    @property
    def layout(self) -> RunLayout:
        """Where the run's files go (:class:`cloudfree.models.loading.RunLayout`)."""
        return RunLayout(self.run_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.layout.checkpoint_dir

    @property
    def weights_dir(self) -> Path:
        return self.layout.weights_dir


def holds_training_state(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds something a run trained: a Lightning checkpoint
    (``checkpoints/*.ckpt``) or exported weights (``weights/*/model.safetensors``).

    A run directory holding only ``config.yaml`` (and logs) is what an attempt leaves when it
    failed before its first checkpoint (for example on a corrupt training file): there is
    nothing to keep or resume, so :func:`prepare_run` may start it afresh.
    """
    layout = RunLayout(Path(run_dir))
    if layout.checkpoint_dir.is_dir() and any(layout.checkpoint_dir.glob("*.ckpt")):
        return True
    return layout.weights_dir.is_dir() and any(layout.weights_dir.glob(f"*/{WEIGHTS_NAME}"))


def _check_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from, or ``None`` for a run that starts from step 0.

    Decisions (a failed attempt must be retryable): a fresh run refuses a directory that
    :func:`holds_training_state` (``--resume`` or another ``--out``); a directory with only
    the ``config.yaml`` (and logs) of an attempt that stopped before its first checkpoint is
    started afresh, both by a plain retry and by ``--resume`` (which then has nothing to
    resume; the CLI says so). ``--resume`` of a directory with checkpoints but no
    ``last.ckpt`` is refused.
    """
    last = RunLayout(run_dir).last_checkpoint
    if resume and not last.is_file() and not holds_training_state(run_dir):
        if RunLayout(run_dir).config_file.is_file():
            return None  # nothing was trained: start afresh
    if resume:
        if not last.is_file():
            raise ConfigError(f"--resume: {last} not found (nothing to resume in {run_dir})")
        saved_path = RunLayout(run_dir).config_file
        if saved_path.is_file():
            saved = build_config(load_yaml_config(saved_path), source=str(saved_path))
            if (saved.model.name, saved.model.kwargs) != (config.model.name, config.model.kwargs):
                raise ConfigError(
                    f"--resume: {run_dir} trained model {saved.model.name!r} with kwargs "
                    f"{saved.model.kwargs}; the config asks for {config.model.name!r} with "
                    f"{config.model.kwargs}"
                )
        return last
    # other ranks start while (or after) rank 0 writes config.yaml: only rank 0 checks
    fresh_check = _env_rank_is_zero()
    if fresh_check and run_dir.exists() and (last.exists() or holds_training_state(run_dir)):
        raise ConfigError(
            f"{run_dir} already holds a training run; pass --resume to continue it or choose "
            "another --out"
        )
    return None


def prepare_run(
    config: TrainConfig, *, resume: bool = False, run_dir: str | Path | None = None
) -> PreparedRun:
    """Check ``config``, build the datasets and the model (see the module docstring).

    ``run_dir`` defaults to ``config.out``, else :func:`default_run_dir`. Seeds everything
    with ``config.seed`` before building the model, so the initial weights are reproducible.
    """
    cfg = resolve_config(config)
    check_config(cfg)
    out = Path(run_dir) if run_dir is not None else Path(cfg.out or default_run_dir(cfg))
    cfg = cfg.model_copy(update={"out": str(out)})
    resume_from = _check_run_dir(out, cfg, resume)

    train_ds, val_ds = build_datasets(cfg)
    sar_pretrain = "sar_pretrain" in model_info(cfg.model.name).resolve_spec(cfg.model.kwargs).tasks
    for name, ds in (("training", train_ds), ("validation", val_ds)):
        try:
            first = ds[0]
        except ConfigError as exc:
            raise ConfigError(f"{name} data: {exc}") from None
        except CloudfreeError as exc:
            raise DatasetError(f"{name} data: {exc}") from None
        if sar_pretrain:
            from cloudfree.train.tasks import sar_reference_batch

            try:
                sar_reference_batch(first)
            except ConfigError as exc:
                raise ConfigError(f"{name} data: {exc}") from None
    interval = cfg.trainer.val_check_interval
    batches = math.ceil(len(train_ds) / cfg.data.batch_size)  # type: ignore[arg-type]
    if isinstance(interval, int) and interval > batches:
        raise ConfigError(
            f"trainer.val_check_interval: {interval} steps is more than the {batches} training "
            f"batch(es) of an epoch ({len(train_ds)} samples, batch {cfg.data.batch_size}); "  # type: ignore[arg-type]
            f"set it to at most {batches} (or a fraction of an epoch, e.g. 0.5)"
        )

    from cloudfree.bands import get_band_set
    from cloudfree.models import create_model, spec_of

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    band_names = get_band_set(cfg.data.bands).names
    try:
        spec_of(model).check_bands(band_names)
    except ConfigError as exc:
        raise ConfigError(
            f"data.bands: model {cfg.model.name!r}: {exc}; set "
            f"model.kwargs.in_optical={len(band_names)} or change data.bands"
        ) from None
    if cfg.model.init_weights is not None and resume_from is None:
        load_init_weights(model, cfg)
    if resume_from is None:  # a resumed run's checkpoint holds the fine-tuned weights
        load_submodule_inits(model, cfg)
    from cloudfree.train.module import parameter_groups

    parameter_groups(cfg.optimizer, model)  # prefixes that match nothing fail here
    return PreparedRun(cfg, out, model, train_ds, val_ds, resume_from)


# --------------------------------------------------------------------------- trainer
def _devices_and_strategy(config: TrainConfig) -> tuple[Any, str, int]:
    t = config.trainer
    devices: Any = t.devices
    num_nodes = t.num_nodes
    strategy = t.strategy
    if "TORCHELASTIC_RUN_ID" in os.environ and "WORLD_SIZE" in os.environ:
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if devices in (1, "auto"):
            devices = local
        if devices * num_nodes != world:
            raise ConfigError(
                f"torchrun started {world} processes ({local} per node) but trainer.devices="
                f"{devices} x trainer.num_nodes={num_nodes} = {devices * num_nodes}; set "
                f"trainer.num_nodes={world // max(local, 1)}"
            )
    many = (isinstance(devices, int) and devices > 1) or num_nodes > 1
    if strategy == "auto" and many:
        strategy = "ddp"
    return devices, strategy, num_nodes


def _tensorboard_available() -> bool:
    """Whether ``tensorboard`` (the optional ``tb`` extra) imports."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _checkpoint_step(path: Path) -> int:
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt.get("global_step", 0))


def build_trainer(prepared: PreparedRun) -> pl.Trainer:
    """The Lightning Trainer of a prepared run (loggers, callbacks, devices, limits)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from cloudfree.train.callbacks import (
        ExportWeights,
        LastCheckpoint,
        RNGStateCheckpoint,
        RunCSVLogger,
    )

    cfg = prepared.config
    t = cfg.trainer
    run_dir = prepared.run_dir
    resume_step = _checkpoint_step(prepared.resume_from) if prepared.resume_from else None
    loggers: list[Any] = [
        RunCSVLogger(run_dir, resume_step=resume_step, flush_every=t.log_every_n_steps)
    ]
    if _tensorboard_available():
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    extra = {
        "protocol": cfg.data.protocol,
        "bands": cfg.data.bands,
        "training": {
            "run_dir": str(run_dir),
            "recipe": cfg.name,
            "config": cfg.model_dump(mode="json"),
        },
    }
    callbacks: list[Any] = [
        ExportWeights(prepared.weights_dir, extra=extra),
        RNGStateCheckpoint(),
        ModelCheckpoint(
            dirpath=str(prepared.checkpoint_dir),
            filename=BEST_CKPT_NAME,
            monitor="val/loss",
            mode="min",
            save_top_k=1,
            save_last=False,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        ),
        LastCheckpoint(prepared.checkpoint_dir, every_n_steps=t.checkpoint_every_n_steps),
    ]
    devices, strategy, num_nodes = _devices_and_strategy(cfg)
    from cloudfree.models import spec_of

    clip = t.gradient_clip_val
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=t.precision,  # type: ignore[arg-type]
        max_steps=t.max_steps if t.max_steps is not None else -1,
        max_epochs=t.max_epochs if t.max_epochs is not None else -1,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps,
        limit_val_batches=t.limit_val_batches,
        # adversarial training optimises manually and clips in the module
        gradient_clip_val=None if "adversarial" in spec_of(prepared.model).tasks else clip,
        deterministic=t.deterministic,
        num_sanity_val_steps=t.num_sanity_val_steps,
        enable_progress_bar=t.enable_progress_bar,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        enable_checkpointing=True,
        enable_model_summary=False,  # `cloudfree train` prints the parameter count itself
    )


@dataclass
class TrainResult:
    """Where a finished run's outputs are (``is_global_zero``: this process wrote them)."""

    run_dir: Path
    best_weights: Path
    final_weights: Path
    last_checkpoint: Path
    global_step: int
    is_global_zero: bool
    module: Any = None  # the trained CloudRemovalModule (its ``.model`` is the network)
    #: The last validation's metrics (``val/loss``, ``val/psnr``, ...); empty if none ran.
    val_metrics: dict[str, float] = field(default_factory=dict)
    #: Number of training processes (DDP ranks) that took part.
    world_size: int = 1


#: Lightning and PyTorch messages that say nothing about the run: Lightning's tips (litlogger,
#: litmodels), a deprecation inside Lightning itself, advice about logging intervals and
#: loader workers for tiny datasets, and the resume case's "checkpoint directory not empty".
LIGHTNING_NOISE: tuple[str, ...] = (
    r".*LeafSpec.*",
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*Checkpoint directory .* is not empty.*",  # also "... exists and is not empty"
    r".*worker processes in total.*",
)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines (device lines, tips, "fit stopped") and :data:`LIGHTNING_NOISE`
    off for the duration; warnings and errors still show."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _val_metrics(trainer: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in trainer.callback_metrics.items():
        if str(key).startswith("val/"):
            try:
                out[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
    return dict(sorted(out.items()))


def train(
    config: TrainConfig | None = None,
    *,
    prepared: PreparedRun | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``config`` (or an already :func:`prepare_run`-ed run) to the end.

    Writes ``<run>/config.yaml`` (rank 0) before fitting; with ``resume`` continues from
    ``<run>/checkpoints/last.ckpt`` (optimizer, scheduler, loop counters, random states and
    the data position included).
    """
    if prepared is None:
        if config is None:
            raise ConfigError("train() needs a config or a prepared run")
        prepared = prepare_run(config, resume=resume)
    from cloudfree.train.module import CloudRemovalModule

    cfg = prepared.config
    layout = prepared.layout
    if _env_rank_is_zero():
        atomic_write_text(layout.config_file, config_to_yaml(cfg))
    os.environ[RUN_DIR_ENV] = str(prepared.run_dir)
    module = CloudRemovalModule(cfg, model=prepared.model)
    datamodule = CloudRemovalDataModule(
        cfg, train_dataset=prepared.train_dataset, val_dataset=prepared.val_dataset
    )
    ckpt = str(prepared.resume_from) if prepared.resume_from is not None else None
    with quiet_lightning():  # resuming into a directory with checkpoints is the point of it
        trainer = build_trainer(prepared)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    return TrainResult(
        run_dir=prepared.run_dir,
        best_weights=layout.best_weights,
        final_weights=layout.final_weights,
        last_checkpoint=layout.last_checkpoint,
        global_step=int(trainer.global_step),
        is_global_zero=bool(trainer.is_global_zero),
        module=module,
        val_metrics=_val_metrics(trainer),
        world_size=int(trainer.world_size),
    )
