"""Training configuration: pydantic models, YAML loading, dotted overrides and shipped recipes.

A configuration is a YAML mapping with the sections below (every section rejects unknown keys;
the error names the bad key and lists the valid keys of its section):

``model``      ``name`` (registered model), ``kwargs`` (constructor arguments), ``init_weights``
               (a pretrained directory or an official checkpoint to start from),
               ``init_submodules`` (submodule name -> run / weights directory whose weights of
               that submodule are copied in, or ``none``), ``sar_encoder_init`` (the same for
               ``sar_encoder``: CA-MTCR's stage 2)
``data``       dataset root and sampling: ``root``, ``dataset``, ``protocol``, ``bands``,
               ``patch_size``, ``val_patch_size``, ``batch_size``, ``val_batch_size``,
               ``num_workers``, ``masks``, ``cloud_mask_method``, ``cloud_threshold``, ``augment``
               {``hflip``, ``vflip``, ``rot90``}, ``seasons``, ``train_split``, ``val_split``,
               ``limit_train``, ``limit_val``, ``layout``, ``csv_path``, ``skip_incomplete``
``loss``       ``name`` (see :func:`cloudfree.losses.list_losses`), ``kwargs``
``optimizer``  ``name`` (adam, adamw, nadam, sgd), ``lr``, ``betas``, ``eps``,
               ``weight_decay``, ``momentum_decay`` (NAdam), ``momentum`` (SGD),
               ``param_groups`` (a list of {``prefix``, ``lr``, ``weight_decay``}: parameters
               whose name starts with ``prefix`` get that learning rate)
``scheduler``  ``name`` (none, step, multistep, cosine, exponential), ``step_size``,
               ``milestones``, ``gamma``, ``interval`` (epoch, step), ``t_max``, ``eta_min``
``trainer``    Lightning Trainer settings: ``max_steps``, ``max_epochs``, ``devices``,
               ``num_nodes``, ``accelerator``, ``strategy``, ``precision``,
               ``val_check_interval``, ``check_val_every_n_epoch``, ``log_every_n_steps``,
               ``limit_val_batches``, ``gradient_clip_val``, ``deterministic``,
               ``checkpoint_every_n_steps``, ``num_sanity_val_steps``, ``enable_progress_bar``
``metrics``    ``protocol``: metric protocol of the validation PSNR / SSIM / MAE
``task``       settings of the training task the model's spec selects (see
               :mod:`cloudfree.train.tasks`): ``stage_weights`` (multi-stage models: weights of
               the per-stage losses, stages first, then ``pred``; null = all 1),
               ``allow_loss_without_variance`` (uncertainty models: allow a loss that ignores
               the variance, e.g. ``l1`` on the mean)
``adversarial`` GAN training of models that declare the ``adversarial`` task (null or absent:
               the defaults below; an error for any other model): ``discriminator``
               (:func:`cloudfree.models.list_discriminators`, default ``patchgan``),
               ``discriminator_kwargs`` (``in_channels`` is set by the trainer),
               ``condition`` (optical_sar, optical, sar, none: what the discriminator sees
               next to the image), ``gan_loss`` (lsgan, bce, hinge), ``weight`` (of the
               adversarial term in the generator loss, 0.01), ``optimizer`` and ``scheduler``
               of the discriminator (null: the same settings as the generator's sections)
top level      ``name`` (run name), ``description``, ``seed``, ``out``

Overrides use dotted keys, ``--set optimizer.lr=5e-4`` or ``--set model.kwargs.width=32`` (the
value is read as a YAML scalar; a ``model.kwargs`` / ``loss.kwargs`` key is created when
absent). Overrides are applied to the raw mapping before validation, so a misspelt key gets the
same "unknown key" error as one in a file.

Validation happens in two stages, both before any training: :func:`build_config` checks the
shape and value ranges (pydantic), :func:`cloudfree.train.run.prepare_run` checks what needs
the registries and the file system (model and loss names, data root) and then builds the
datasets and the model.
"""

from __future__ import annotations

import difflib
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cloudfree.configfile import (
    ConfigSection,
    apply_overrides,
    load_yaml_config,
    section_class,
    set_dotted,
)
from cloudfree.configfile import validation_error_message as _validation_error_message
from cloudfree.errors import ConfigError

__all__ = [
    "AdversarialConfig",
    "AugmentConfig",
    "DataConfig",
    "LossConfig",
    "MetricsConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ParamGroupConfig",
    "SchedulerConfig",
    "TaskConfig",
    "TrainConfig",
    "TrainerConfig",
    "apply_overrides",
    "build_config",
    "config_to_yaml",
    "list_recipes",
    "load_recipe",
    "load_yaml_config",
    "model_info",
    "describe_keys",
    "recipe_path",
    "recipe_text",
    "resolve_config",
    "set_dotted",
    "validation_error_message",
]

#: Lightning precision strings accepted by ``trainer.precision``.
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64")


_Section = ConfigSection  # every section rejects unknown keys


#: Value of ``model.init_submodules.<name>`` / ``model.sar_encoder_init`` that trains the
#: submodule from its own initialisation, explicitly (case-insensitive).
SUBMODULE_INIT_NONE = "none"
#: The placeholder a recipe puts where a submodule's weights must be given (``ca_mtcr``).
SUBMODULE_INIT_REQUIRED = "REQUIRED"


class ModelConfig(_Section):
    """``model``: which registered network to train and where its initial weights come from.

    ``init_weights`` is a pretrained directory (``save_pretrained`` output: its config must name
    the same model) or an official checkpoint file (converted with
    :func:`cloudfree.models.load_official_checkpoint`); null starts from the model's own
    initialisation.

    ``init_submodules`` maps a submodule name of the model (``sar_encoder``) to a training run
    directory or a pretrained weights directory of *any* model that has a submodule of that
    name: its weights are copied into the new model's submodule before training (strictly: same
    keys and shapes; everything else of the source model, e.g. a VQ-VAE's codebook and decoder,
    is dropped), after ``init_weights``. ``none`` trains that submodule from scratch on purpose;
    the placeholder ``REQUIRED`` (a recipe's way of saying "must be given") or a path that does
    not exist is an error before training. ``sar_encoder_init`` is paper 002's spelling of
    ``init_submodules: {sar_encoder: ...}`` (CA-MTCR's stage 2 loads the encoder pre-trained by
    the ``ca_mtcr_sar_pretrain`` recipe); giving both for ``sar_encoder`` is an error.
    :meth:`submodule_inits` merges them.
    """

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init_weights: str | None = None
    init_submodules: dict[str, str] = Field(default_factory=dict)
    sar_encoder_init: str | None = None

    @field_validator("init_submodules")
    @classmethod
    def _submodule_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not name or any(not part for part in name.split(".")):
                raise ValueError(f"bad submodule name {name!r} (e.g. 'sar_encoder')")
            if not str(source).strip():
                raise ValueError(f"{name}: give a run directory, a weights directory or 'none'")
        return value

    @field_validator("sar_encoder_init")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not str(value).strip():
            raise ValueError("give a run directory, a weights directory or 'none'")
        return value

    @model_validator(mode="after")
    def _one_spelling(self) -> ModelConfig:
        if self.sar_encoder_init is not None and "sar_encoder" in self.init_submodules:
            raise ValueError(
                "model.sar_encoder_init and model.init_submodules.sar_encoder both set the "
                "sar_encoder's weights; keep one"
            )
        return self

    def submodule_inits(self) -> dict[str, tuple[str, str]]:
        """``{submodule: (config key, value)}`` of ``init_submodules`` and
        ``sar_encoder_init`` (the key names the setting in error messages)."""
        out = {
            name: (f"model.init_submodules.{name}", v) for name, v in self.init_submodules.items()
        }
        if self.sar_encoder_init is not None:
            out["sar_encoder"] = ("model.sar_encoder_init", self.sar_encoder_init)
        return out


class AugmentConfig(_Section):
    """``data.augment``: random flips and 90-degree rotations of training crops (DSen2-CR).

    Each is applied with probability 1/2 (``rot90``: k uniform in 0..3), identically to every
    image and mask of a sample.
    """

    hflip: bool = False
    vflip: bool = False
    rot90: bool = False


class DataConfig(_Section):
    """``data``: the dataset and how batches are drawn from it.

    ``dataset`` names a registered dataset (:func:`cloudfree.data.list_datasets`). ``protocol``
    and ``bands`` default (null) to the model's registry entry, so a recipe whose model is
    replaced (``--set model.name=...``) takes the new model's normalisation unless the
    protocol is set explicitly; :func:`resolve_config` fills them in (the run's stored
    ``config.yaml`` holds the resolved values). ``masks`` computes the cloud / shadow masks
    (true), never (false), or only when the loss reads them (null, the default: the CARL and
    CARF losses do, L1 / MSE / SSIM do not, and validation uses ``valid_mask`` only).
    ``patch_size`` is the random training crop (null: whole patches); ``val_patch_size`` the
    centre crop used for validation (null: whole patches). ``cloud_threshold`` null uses the
    method's default.
    ``limit_train`` / ``limit_val`` keep the first N samples of a split (smoke runs).
    ``options`` are further constructor options of the dataset for both splits, and
    ``train_options`` / ``val_options`` override them for one split (time series:
    ``options: {n_input_t: 3}``, ``train_options: {sampler: random}``, ``val_options: {sampler:
    fixed}``, as UnCRtainTS trains); a name the dataset does not take is an error.
    """

    root: str | None = None
    dataset: str = "sen12mscr"
    protocol: str | None = None
    bands: str | list[str] | None = None
    patch_size: PositiveInt | None = 128
    val_patch_size: PositiveInt | None = None
    batch_size: PositiveInt = 1
    val_batch_size: PositiveInt | None = None
    num_workers: NonNegativeInt = 4
    masks: bool | None = None
    cloud_mask_method: str = "rule_based"
    cloud_threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    seasons: list[str] | None = None
    train_split: Literal["train", "val", "test", "all"] = "train"
    val_split: Literal["train", "val", "test", "all"] = "val"
    limit_train: PositiveInt | None = None
    limit_val: PositiveInt | None = None
    layout: Literal["auto", "official", "flat"] = "auto"
    csv_path: str | None = None
    #: Skip samples with a missing file (warning) instead of failing (``--skip-incomplete``).
    skip_incomplete: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    train_options: dict[str, Any] = Field(default_factory=dict)
    val_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("seasons", mode="before")
    @classmethod
    def _seasons_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("dataset")
    @classmethod
    def _registered_dataset(cls, value: str) -> str:
        from cloudfree.data import get_dataset  # importing cloudfree.data registers them

        try:
            get_dataset(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class LossConfig(_Section):
    """``loss``: a name of :func:`cloudfree.losses.build_loss` and its keyword arguments."""

    name: str = "l1"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ParamGroupConfig(_Section):
    """One entry of ``optimizer.param_groups``: the parameters whose name (in the network's
    ``named_parameters``, e.g. ``sar_encoder.convs.0.weight``) starts with ``prefix`` are
    optimised with learning rate ``lr`` (and ``weight_decay`` when given, else the section's).
    """

    prefix: str = Field(min_length=1)
    lr: PositiveFloat
    weight_decay: NonNegativeFloat | None = None


class OptimizerConfig(_Section):
    """``optimizer``: torch optimizer and its hyper-parameters.

    ``nadam`` is :class:`torch.optim.NAdam`, whose ``momentum_decay`` is Keras' Nadam
    ``schedule_decay`` (0.004 in DSen2-CR): both use ``mu_t = beta1 (1 - 0.5 * 0.96^(t psi))``.
    ``momentum`` is only used by ``sgd``; ``betas`` by the Adam family.

    ``param_groups`` gives parts of the network their own learning rate (CA-MTCR fine-tunes
    its pre-trained SAR encoder at 1e-5 and the rest at 1e-4: ``[{prefix: "sar_encoder.", lr:
    1e-5}]``). A parameter joins the first group whose prefix its name starts with; the others
    form the main group, at ``lr`` (group 0 of the optimizer, logged as ``train/lr``; group
    ``k`` is logged as ``train/lr_<prefix>``). A prefix that matches no trainable parameter is
    an error before training (:func:`cloudfree.train.module.parameter_groups`). Every schedule
    scales each group's own rate by the same factor (``step``, ``multistep``, ``exponential``;
    ``cosine`` anneals every group to the same ``eta_min``, so only with ``eta_min: 0`` by the
    same factor). The discriminator's optimizer of GAN training (``adversarial.optimizer``) has
    its own groups; copied from this section (null) it takes none.
    """

    name: Literal["adam", "adamw", "nadam", "sgd"] = "adam"
    lr: PositiveFloat = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    momentum_decay: NonNegativeFloat = 0.004
    momentum: NonNegativeFloat = 0.9
    param_groups: list[ParamGroupConfig] = Field(default_factory=list)

    @field_validator("param_groups")
    @classmethod
    def _distinct_prefixes(cls, value: list[ParamGroupConfig]) -> list[ParamGroupConfig]:
        seen: set[str] = set()
        for group in value:
            if group.prefix in seen:
                raise ValueError(f"prefix {group.prefix!r} is given twice")
            seen.add(group.prefix)
        return value

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")
        return value


class SchedulerConfig(_Section):
    """``scheduler``: learning-rate schedule.

    ``step``: :class:`~torch.optim.lr_scheduler.StepLR` (``lr *= gamma`` every ``step_size``
    intervals); ``multistep``: :class:`~torch.optim.lr_scheduler.MultiStepLR` (``lr *= gamma``
    when ``milestones`` intervals have passed: with ``interval: epoch`` and milestone ``m`` the
    rate changes from epoch ``m + 1`` on, counting epochs from 1; paper 002's "decay by 50%
    every 5 epochs following the initial 10 epochs" is ``milestones: [10, 15, 20, 25]``, see the
    ``ca_mtcr`` recipe); ``cosine``: :class:`~torch.optim.lr_scheduler.CosineAnnealingLR` over
    ``t_max`` intervals (null: ``trainer.max_epochs`` for ``interval: epoch``, the trainer's
    total optimizer steps for ``interval: step``) down to ``eta_min``; ``exponential``:
    :class:`~torch.optim.lr_scheduler.ExponentialLR` (``lr *= gamma`` every interval; paper
    003's "decays exponentially by a factor of 0.8" with ``interval: epoch``).
    """

    name: Literal["none", "step", "multistep", "cosine", "exponential"] = "none"
    step_size: PositiveInt = 5
    milestones: list[PositiveInt] | None = None
    gamma: PositiveFloat = 0.5
    interval: Literal["epoch", "step"] = "epoch"
    t_max: PositiveInt | None = None
    eta_min: NonNegativeFloat = 0.0

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("must be strictly increasing")
        return value

    @model_validator(mode="after")
    def _milestones_for_multistep(self) -> SchedulerConfig:
        if self.name == "multistep" and not self.milestones:
            raise ValueError(
                "the multistep schedule needs scheduler.milestones (e.g. [10, 15, 20, 25])"
            )
        return self


class TrainerConfig(_Section):
    """``trainer``: Lightning Trainer settings (see :class:`lightning.pytorch.Trainer`).

    At least one of ``max_steps`` / ``max_epochs`` must be set (training stops at whichever
    comes first). ``devices`` > 1 or ``num_nodes`` > 1 with ``strategy: auto`` runs DDP.
    ``checkpoint_every_n_steps`` also writes ``checkpoints/last.ckpt`` every N optimizer steps
    (besides after each validation), so a killed run loses at most N steps; null disables it.
    """

    max_steps: PositiveInt | None = None
    max_epochs: PositiveInt | None = None
    devices: PositiveInt | Literal["auto"] = 1
    num_nodes: PositiveInt = 1
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = "auto"
    precision: str = "32-true"
    val_check_interval: PositiveInt | PositiveFloat | None = None
    check_val_every_n_epoch: PositiveInt | None = 1
    log_every_n_steps: PositiveInt = 50
    limit_val_batches: NonNegativeInt | NonNegativeFloat | None = None
    gradient_clip_val: PositiveFloat | None = None
    deterministic: bool = False
    checkpoint_every_n_steps: PositiveInt | None = 1000
    num_sanity_val_steps: NonNegativeInt = 2
    enable_progress_bar: bool = True

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> str:
        text = str(value)
        if text not in PRECISIONS:
            raise ValueError(f"must be one of {', '.join(PRECISIONS)}, got {value!r}")
        return text

    @model_validator(mode="after")
    def _some_limit(self) -> TrainerConfig:
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("set trainer.max_steps or trainer.max_epochs (or both)")
        return self


class MetricsConfig(_Section):
    """``metrics``: metric protocol of the validation PSNR / SSIM / MAE
    (:data:`cloudfree.metrics.METRIC_PROTOCOLS`; default ``uncrtaints``)."""

    protocol: str = "uncrtaints"


class TaskConfig(_Section):
    """``task``: settings of the training task that the model's spec selects
    (:mod:`cloudfree.train.tasks`; settings that do not apply to the model are errors).

    ``stage_weights``: multi-stage models only: one weight per stage output and one for the
    final ``pred`` (``num_stages + 1`` values, stages first); null weighs every term 1.
    ``allow_loss_without_variance``: uncertainty models only: train with a loss that reads
    ``pred`` only (the variance head then gets no gradient); without it such a loss is an error.
    """

    stage_weights: list[NonNegativeFloat] | None = None
    allow_loss_without_variance: bool = False

    @field_validator("stage_weights")
    @classmethod
    def _some_weight(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not any(w > 0 for w in value):
            raise ValueError("needs at least one weight > 0")
        return value


class AdversarialConfig(_Section):
    """``adversarial``: GAN training (models with the ``adversarial`` task only).

    The generator (the model) minimises ``loss + weight * gan_loss.generator(D(fake))``; the
    discriminator ``D`` (``discriminator`` with ``discriminator_kwargs``; its ``in_channels``
    are set from the model: the conditioning channels plus the image channels) minimises
    ``gan_loss.discriminator(D(real), D(fake))``. ``condition``: what ``D`` sees next to the
    image: the cloudy optical input and SAR (``optical_sar``, needs a model that uses SAR), the
    optical input only, SAR only (``sar``, needs a model that uses SAR: the input of a
    SAR-to-optical generator such as ``sar2opt``), or nothing (an unconditional GAN).
    ``optimizer`` / ``scheduler`` of the discriminator default (null) to the generator's
    sections. ``weight: 0`` trains the generator on the reconstruction loss alone (the
    discriminator still learns).
    """

    discriminator: str = "patchgan"
    discriminator_kwargs: dict[str, Any] = Field(default_factory=dict)
    condition: Literal["optical_sar", "optical", "sar", "none"] = "optical_sar"
    gan_loss: str = "lsgan"
    weight: NonNegativeFloat = 0.01
    optimizer: OptimizerConfig | None = None
    scheduler: SchedulerConfig | None = None


class TrainConfig(_Section):
    """A complete training configuration (see the module docstring)."""

    name: str | None = None
    description: str | None = None
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    trainer: TrainerConfig
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    adversarial: AdversarialConfig | None = None
    seed: NonNegativeInt = 0
    out: str | None = None

    @property
    def run_name(self) -> str:
        """The recipe / run name, else the model name (used for the default run directory)."""
        return self.name or self.model.name


# --------------------------------------------------------------------------- error messages
def validation_error_message(
    exc: ValidationError,
    source: str | None = None,
    *,
    root: type[BaseModel] | None = None,
    what: str = "training configuration",
) -> str:
    """One readable line from a pydantic :class:`ValidationError` of a training configuration
    (:func:`cloudfree.configfile.validation_error_message` with :class:`TrainConfig` as the
    default ``root``)."""
    return _validation_error_message(exc, source, root=root or TrainConfig, what=what)


def build_config(
    raw: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    source: str | None = None,
) -> TrainConfig:
    """Validate ``raw`` (after ``overrides``, then ``data_root`` / ``out``) into a config.

    ``data_root`` and ``out`` (the CLI's ``--data`` / ``--out``) win over the file and
    over ``--set``. ``source`` names the file or recipe in error messages.

    Raises:
        ConfigError: one line naming every invalid or unknown key (with the valid keys of its
            section) and bad value.
    """
    merged = apply_overrides(raw, overrides or {})
    if data_root is not None:
        set_dotted(merged, "data.root", str(data_root))
    if out is not None:
        merged["out"] = str(out)
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(validation_error_message(exc, source)) from None


def config_to_yaml(config: TrainConfig) -> str:
    """The configuration as YAML (section order kept), as written to ``<run>/config.yaml``."""
    data = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# --------------------------------------------------------------------------- defaults
def resolve_config(config: TrainConfig) -> TrainConfig:
    """A copy with the defaults that depend on the model filled in: ``data.protocol`` and
    ``data.bands`` (from the model's registry entry), an absolute ``data.root``."""
    info = model_info(config.model.name)
    data = config.data.model_copy(
        update={
            "protocol": config.data.protocol or info.protocol,
            "bands": config.data.bands if config.data.bands is not None else info.bands,
            "root": str(Path(config.data.root).expanduser().resolve())
            if config.data.root
            else None,
        }
    )
    return config.model_copy(update={"data": data})


def model_info(name: str) -> Any:
    """The registry entry of model ``name`` (:class:`ConfigError` listing the registered ones
    when unknown)."""
    from cloudfree.models import get_model_info, list_models

    # stand-ins train too (tests), and so do pre-training networks (ca_mtcr_sar_vqvae)
    if name not in list_models(include_standins=True, include_pretrain=True):
        raise ConfigError(
            f"model.name: unknown model {name!r}; registered models: {', '.join(list_models())}"
        )
    return get_model_info(name)


# --------------------------------------------------------------------------- recipes
_RECIPE_SUFFIX = ".yaml"


def _recipes_dir() -> Any:
    return importlib.resources.files("cloudfree.train").joinpath("recipes")


def list_recipes() -> dict[str, str]:
    """Shipped recipe names mapped to their one-line description (sorted by name)."""
    out: dict[str, str] = {}
    for entry in sorted(_recipes_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(_RECIPE_SUFFIX) and not entry.name.startswith("."):
            raw = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
            out[entry.name[: -len(_RECIPE_SUFFIX)]] = str(raw.get("description") or "")
    return out


def recipe_path(name: str) -> Any:
    """The resource (a path-like :class:`importlib.resources.abc.Traversable`) of recipe
    ``name``.

    Raises:
        ConfigError: no such recipe (the message lists the shipped ones).
    """
    entry = _recipes_dir().joinpath(f"{name}{_RECIPE_SUFFIX}")
    if not name or "/" in name or not entry.is_file():
        known = ", ".join(list_recipes()) or "none"
        hint = difflib.get_close_matches(name, list(list_recipes()), n=1)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"unknown recipe {name!r}{did_you_mean}; shipped recipes: {known}")
    return entry


def recipe_text(name: str) -> str:
    """The YAML text of recipe ``name`` (comments included, as ``cloudfree recipes show``)."""
    return recipe_path(name).read_text(encoding="utf-8")


def load_recipe(name: str) -> dict[str, Any]:
    """The raw mapping of recipe ``name`` (validate with :func:`build_config`)."""
    raw = yaml.safe_load(recipe_text(name)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {name!r} is not a YAML mapping")
    return raw


def describe_keys(section: str | None = None) -> list[str]:
    """Valid dotted keys of ``section`` (all sections when None), for help texts."""
    cls = TrainConfig if section is None else section_class(tuple(section.split(".")), TrainConfig)
    if cls is None:
        raise ConfigError(f"{section!r} is not a configuration section")
    prefix = f"{section}." if section else ""
    keys: list[str] = []
    for name in cls.model_fields:
        sub = section_class((*section.split("."), name) if section else (name,), TrainConfig)
        if sub is not None:
            keys.extend(describe_keys(f"{prefix}{name}"))
        else:
            keys.append(f"{prefix}{name}")
    return keys
