"""Training tasks: what the LightningModule does, chosen from the model's spec.

TorchGeo's "trainers" idea: the task, not the user, decides how a model is trained. The task
kinds come from :func:`cloudfree.models.spec_of` (``spec.tasks``) and the ``task`` /
``adversarial`` sections of the config tune them:

* ``regression``: ``loss(pred, batch)`` (the loss receives the bare prediction tensor, exactly
  as before tasks existed), or ``loss(output, batch)`` for a loss that declares
  ``reads_output`` (it reads ``extras``, e.g. ``spa_gan``'s attention map; any task).
* ``uncertainty``: ``loss(output, batch)`` with the whole
  :class:`~cloudfree.models.ModelOutput` (mean ``pred`` and ``variance``); the loss must use
  the variance (``gaussian_nll``) unless ``task.allow_loss_without_variance`` is set.
  Validation also logs ``val/nll`` (the Gaussian NLL of the output, whatever the loss).
* ``multi_stage``: ``sum_k w_k * loss(stage_k, batch)`` over ``stages`` then ``pred``
  (``task.stage_weights``, ``num_stages + 1`` weights, default all 1); each term is logged as
  ``train/loss_stage<k>`` / ``val/loss_stage<k>`` (``k = num_stages`` is ``pred``).
  Combined with ``uncertainty`` it is refused (no model needs it yet).
* ``adversarial``: the above is the generator's reconstruction loss; a discriminator is
  trained against it (:class:`~cloudfree.train.config.AdversarialConfig`, manual optimisation
  with two optimizers, see :mod:`cloudfree.train.module`).
* ``sar_pretrain``: a SAR network pre-trained for a cloud-removal model (paper 002's VQ-VAE
  around the CA-MTCR SAR encoder, ``ca_mtcr_sar_vqvae``), not a cloud-removal model: ``pred``
  is the reconstruction of the input SAR and the loss compares it with the SAR of the
  sample's reference date, batch key ``target_sar`` (Noise2Noise: another noisy observation
  of the same scene; :class:`~cloudfree.data.SEN12MSCRTS` with ``target_sar: true``, checked
  on the first sample before training). The loss is called as ``loss(output_or_pred,
  sar_batch)`` with :func:`sar_reference_batch`, whose ``target`` is ``target_sar`` (so
  ``l1`` / ``mse`` work, and ``vqvae`` adds the network's VQ terms from ``extras``); a loss
  that reads other batch keys (the cloudy optical input, cloud masks) is refused. Validation
  logs ``val/loss``, the reconstruction's ``val/sar_psnr``, ``val/sar_ssim``, ``val/sar_mae``,
  ``val/sar_rmse`` (``metrics.protocol``'s conventions on the protocol's SAR scale, [0, 1]
  under ``uncrtaints``; image means) and the scalar ``extras`` (``val/vq_perplexity`` ...);
  no optical metric.

:func:`resolve_task` checks that the config fits the model (before any training: it is called
by :func:`cloudfree.train.run.check_config` with the spec of the registry entry and again by
the module with the built model's spec) and returns the :class:`TaskPlan` the module follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudfree.errors import ConfigError
from cloudfree.models.api import ModelSpec
from cloudfree.train.config import AdversarialConfig, TrainConfig

__all__ = ["SAR_REFERENCE_KEY", "TaskPlan", "resolve_task", "sar_reference_batch"]

#: Batch key of the SAR the ``sar_pretrain`` task compares the reconstruction with.
SAR_REFERENCE_KEY = "target_sar"


@dataclass(frozen=True)
class TaskPlan:
    """How one model is trained (see the module docstring).

    Attributes:
        tasks: the model's task kinds.
        loss_takes_output: the loss receives the whole output (uncertainty, or a loss with
            ``reads_output``), else ``pred``.
        stage_weights: weights of ``(*stages, pred)`` (multi-stage), else None.
        adversarial: the resolved adversarial settings (optimizer / scheduler filled in from
            the generator's sections), else None.
        discriminator_channels: ``in_channels`` of the discriminator (adversarial), else 0.
    """

    tasks: frozenset[str]
    loss_takes_output: bool
    stage_weights: tuple[float, ...] | None
    adversarial: AdversarialConfig | None
    discriminator_channels: int = 0

    @property
    def uncertainty(self) -> bool:
        return "uncertainty" in self.tasks

    @property
    def sar_pretrain(self) -> bool:
        return "sar_pretrain" in self.tasks


def sar_reference_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sar_pretrain`` task's view of a batch: ``target`` = the reference date's SAR
    (``batch["target_sar"]``) and the batch's ``valid_mask`` (which, with ``target_sar``,
    also excludes pixels where that SAR is missing: :func:`cloudfree.data.normalize_sample`).

    Raises:
        ConfigError: the batch has no ``target_sar``.
    """
    if SAR_REFERENCE_KEY not in batch:
        raise ConfigError(
            f"the sar_pretrain task needs batch key {SAR_REFERENCE_KEY!r} (the SAR of the "
            "reference date); with the sen12mscr_ts dataset set data.options.target_sar: true"
        )
    out = {"target": batch[SAR_REFERENCE_KEY]}
    if batch.get("valid_mask") is not None:
        out["valid_mask"] = batch["valid_mask"]
    return out


def _loss_batch_keys(config: TrainConfig) -> frozenset[str]:
    from cloudfree.losses import build_loss

    loss = build_loss(config.loss.name, **config.loss.kwargs)  # checked by _loss_uses_variance
    keys = getattr(loss, "batch_keys", None)
    return frozenset(keys()) if callable(keys) else frozenset()


def _loss_uses_variance(config: TrainConfig) -> bool:
    from cloudfree.losses import build_loss

    try:
        loss = build_loss(config.loss.name, **config.loss.kwargs)
    except ConfigError as exc:
        raise ConfigError(f"loss: {exc}") from None
    return bool(getattr(loss, "uses_variance", False))


def _loss_reads_output(config: TrainConfig) -> bool:
    from cloudfree.losses import build_loss

    loss = build_loss(config.loss.name, **config.loss.kwargs)  # checked by _loss_uses_variance
    return bool(getattr(loss, "reads_output", False))


def resolve_task(config: TrainConfig, spec: ModelSpec) -> TaskPlan:
    """The :class:`TaskPlan` of ``config`` for a model with ``spec``.

    Raises:
        ConfigError: task settings that do not fit the model's tasks (an ``adversarial``
            section for a model without the adversarial task, ``stage_weights`` of the wrong
            length or for a single-stage model, a loss that ignores the variance of an
            uncertainty model or needs a variance the model does not return, an unknown
            discriminator or GAN loss, bad discriminator arguments).
    """
    name = config.model.name
    tasks = spec.tasks
    kinds = "+".join(sorted(tasks))
    t = config.task
    uses_variance = _loss_uses_variance(config)
    uncertainty = "uncertainty" in tasks
    if uncertainty and "multi_stage" in tasks:
        raise ConfigError(
            f"model {name!r} declares both the uncertainty and the multi_stage task; the trainer "
            "supports one of them at a time"
        )
    if uncertainty:
        if not uses_variance and not t.allow_loss_without_variance:
            raise ConfigError(
                f"loss: model {name!r} is trained for uncertainty (mean and variance) but loss "
                f"{config.loss.name!r} ignores the variance; use a variance loss "
                "(gaussian_nll) or set task.allow_loss_without_variance: true to train the "
                "mean only"
            )
    else:
        if uses_variance:
            raise ConfigError(
                f"loss: {config.loss.name!r} needs a variance output, but model {name!r} "
                f"returns none (tasks: {kinds})"
            )
        if t.allow_loss_without_variance:
            raise ConfigError(
                f"task.allow_loss_without_variance applies to uncertainty models only; model "
                f"{name!r} has tasks {kinds}"
            )
    weights: tuple[float, ...] | None = None
    if "multi_stage" in tasks:
        expected = spec.outputs.num_stages + 1
        weights = tuple(t.stage_weights) if t.stage_weights is not None else (1.0,) * expected
        if len(weights) != expected:
            raise ConfigError(
                f"task.stage_weights: model {name!r} returns {spec.outputs.num_stages} stage "
                f"output(s) and its prediction, so it needs {expected} weights "
                f"(num_stages + 1, stages first), got {len(weights)}"
            )
    elif t.stage_weights is not None:
        raise ConfigError(
            f"task.stage_weights applies to multi-stage models only; model {name!r} has tasks "
            f"{kinds}"
        )
    if "sar_pretrain" in tasks:
        extra = sorted(_loss_batch_keys(config))
        if extra:
            raise ConfigError(
                f"loss: model {name!r} is a SAR pre-training network (task sar_pretrain): its "
                f"loss compares the reconstruction with the reference date's SAR only, but "
                f"loss {config.loss.name!r} reads {', '.join(extra)}; use vqvae, l1 or mse"
            )
    adversarial = None
    channels = 0
    if "adversarial" in tasks:
        adversarial, channels = _resolve_adversarial(config, spec)
    elif config.adversarial is not None:
        raise ConfigError(
            f"adversarial: model {name!r} does not declare the adversarial task (tasks: "
            f"{kinds}); remove the adversarial section"
        )
    takes_output = uncertainty or _loss_reads_output(config)
    return TaskPlan(tasks, takes_output, weights, adversarial, channels)


def _resolve_adversarial(config: TrainConfig, spec: ModelSpec) -> tuple[AdversarialConfig, int]:
    from cloudfree.losses import list_gan_losses
    from cloudfree.models.discriminators import discriminator_min_size

    name = config.model.name
    adv = config.adversarial or AdversarialConfig()
    # copied from the generator's section, the optimizer takes none of its parameter groups
    # (their prefixes name the generator's parameters)
    optimizer = adv.optimizer or config.optimizer.model_copy(update={"param_groups": []})
    adv = adv.model_copy(
        update={"optimizer": optimizer, "scheduler": adv.scheduler or config.scheduler}
    )
    if adv.gan_loss not in list_gan_losses():
        raise ConfigError(
            f"adversarial.gan_loss: unknown GAN loss {adv.gan_loss!r}; valid: "
            f"{', '.join(list_gan_losses())}"
        )
    if "in_channels" in adv.discriminator_kwargs:
        raise ConfigError(
            "adversarial.discriminator_kwargs: in_channels is set by the trainer (conditioning "
            "channels + image channels); remove it"
        )
    i = spec.inputs
    optical, out = i.optical_channels, spec.out_channels
    if optical is None or out is None:
        raise ConfigError(
            f"adversarial: model {name!r} does not declare its channel counts, which the "
            "discriminator needs"
        )
    channels = out
    if adv.condition in ("optical", "optical_sar"):
        channels += optical
    if adv.condition in ("optical_sar", "sar"):
        if not i.needs_sar or not i.sar_channels:
            raise ConfigError(
                f"adversarial.condition: {adv.condition!r} needs a model that uses SAR; model "
                f"{name!r} does not (use 'optical' or 'none')"
            )
        channels += i.sar_channels
    try:
        min_size = discriminator_min_size(
            adv.discriminator, in_channels=channels, **adv.discriminator_kwargs
        )
    except ConfigError as exc:
        raise ConfigError(f"adversarial: {exc}") from None
    crop = config.data.patch_size
    if crop is not None and crop < min_size:
        raise ConfigError(
            f"adversarial: discriminator {adv.discriminator!r} with "
            f"{adv.discriminator_kwargs or 'its defaults'} needs crops of at least {min_size} "
            f"px, but data.patch_size is {crop}; use larger crops or fewer layers "
            "(adversarial.discriminator_kwargs.num_layers)"
        )
    return adv, channels
