"""The LightningModule: any registered cloud-removal model, a loss, an optimizer and a schedule.

Decisions:

* The network is built with :func:`cloudfree.models.create_model` (or passed in, e.g. with
  ``init_weights`` already loaded) and kept as ``module.model``, so its state dict (and the
  exported ``weights/*`` directories) carry the model's own keys; the Lightning checkpoint
  prefixes them with ``model.``.
* Validation metrics are computed on reflectance in [0, 1]
  (:func:`cloudfree.normalization.to_reflectance`), whatever the model's scaling, with
  :func:`cloudfree.metrics.image_metrics` under ``config.metrics.protocol`` over valid pixels,
  then averaged over all images of the epoch (:class:`torchmetrics.MeanMetric`, synced over
  ranks; an image whose metric is NaN or infinite, e.g. without a valid pixel or with zero
  error, is left out). ``val/loss`` is logged with ``sync_dist=True``, Lightning weighting the
  per-batch means by batch size.
* Loss components (``loss.last_terms`` of :mod:`cloudfree.losses`) are logged as
  ``train/<term>`` next to ``train/loss``, plus ``train/lr`` (the main parameter group's) and
  ``train/lr_<prefix>`` for each of ``optimizer.param_groups`` (:func:`parameter_groups`).
  (For a multi-stage model the terms are those of the last call, the final ``pred``.)
* The training task comes from the model's spec (:mod:`cloudfree.train.tasks`): regression,
  uncertainty and multi-stage models differ only in how the loss is computed from the
  :class:`~cloudfree.models.ModelOutput`; regression runs the same code, logs and random draws
  as before tasks existed. ``sar_pretrain`` networks compare their SAR reconstruction with the
  batch's ``target_sar`` and are validated on SAR metrics only (``val/sar_psnr`` ...).
* **Adversarial** models (``adversarial`` task) train with Lightning's manual optimisation:
  per batch the generator's output is computed once, then the discriminator takes one step on
  ``gan.discriminator(D(real), D(fake.detach()))`` and the generator one step on
  ``reconstruction + weight * gan.generator(D(fake))`` (pix2pix's order), each with the other
  network's parameters frozen (``toggled_optimizer``). Real and generated images and the
  conditioning inputs are zeroed at invalid pixels first (as the losses do), so the
  discriminator cannot tell them apart there and NaNs cannot reach it. Only the generator's
  step counts as an optimizer step (``trainer.global_step``, ``max_steps``,
  ``checkpoint_every_n_steps`` and the ``metrics.csv`` steps count batches as for the other
  tasks): the discriminator steps through the strategy directly (precision plugin and scaler
  included). Both schedulers are stepped by the module (per step, or at the last batch of an
  epoch for ``interval: epoch``, before that batch's checkpoint is written) and both
  optimizers, schedulers and networks are in the Lightning checkpoint, so a resumed run
  continues exactly. ``trainer.gradient_clip_val`` clips both networks (by norm, manually).
  Logged: ``train/loss`` (the generator's total), ``train/loss_reconstruction``,
  ``train/loss_adversarial`` (the generator's unweighted GAN term),
  ``train/loss_discriminator``, ``train/lr`` and ``train/lr_discriminator``. ``val/loss`` and
  the validation metrics are those of the reconstruction, so model selection (``best``) does
  not depend on the discriminator.
* The exported ``weights/*`` hold the generator (``module.model``) only; the discriminator
  (``module.discriminator``) lives in the Lightning checkpoints (keys ``discriminator.*``).
  Under DDP the discriminator step leaves the generator's parameters unused: use
  ``trainer.strategy: ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.train.config import (
    OptimizerConfig,
    SchedulerConfig,
    TrainConfig,
    resolve_config,
)
from cloudfree.train.tasks import TaskPlan, resolve_task, sar_reference_batch

__all__ = [
    "CloudRemovalModule",
    "build_optimizer",
    "build_scheduler",
    "optimizer_from_section",
    "parameter_groups",
    "scheduler_from_section",
]

#: Validation metrics logged as ``val/<name>`` (besides ``val/loss``).
VAL_METRICS = ("psnr", "ssim", "mae")
#: Validation metrics of ``sar_pretrain`` networks: ``val/sar_<name>`` of the reconstruction.
SAR_VAL_METRICS = ("psnr", "ssim", "mae", "rmse")


def parameter_groups(
    section: OptimizerConfig, module: nn.Module, owner: str = "model"
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups of ``module``'s trainable parameters under
    ``section.param_groups`` (:class:`~cloudfree.train.config.OptimizerConfig`).

    Group 0 is the main group (the parameters no prefix matches, at ``section.lr``; left out
    when every parameter matched a prefix); then one group per prefix, in the configured order,
    with its ``lr`` (and ``weight_decay`` where given) and ``name`` = the prefix. A parameter
    joins the first group whose prefix its name starts with. Without ``param_groups``: one
    group of all parameters.

    Raises:
        ConfigError: a prefix that matches no trainable parameter (the message lists the
            module's top-level parameter prefixes).
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    groups = section.param_groups
    if not groups:
        return [{"params": [p for _, p in named]}]
    members: list[list[nn.Parameter]] = [[] for _ in groups]
    rest: list[nn.Parameter] = []
    for n, p in named:
        for k, g in enumerate(groups):
            if n.startswith(g.prefix):
                members[k].append(p)
                break
        else:
            rest.append(p)
    for k, g in enumerate(groups):
        if not members[k]:
            tops = sorted({n.split(".")[0] + "." for n, _ in named})
            raise ConfigError(
                f"optimizer.param_groups[{k}].prefix: {g.prefix!r} matches no trainable "
                f"parameter of the {owner} (or only ones an earlier prefix took); its "
                f"parameters start with {', '.join(tops) or 'nothing'}"
            )
    out: list[dict[str, Any]] = [{"params": rest}] if rest else []
    for g, params in zip(groups, members):
        entry: dict[str, Any] = {"params": params, "lr": g.lr, "name": g.prefix}
        if g.weight_decay is not None:
            entry["weight_decay"] = g.weight_decay
        out.append(entry)
    return out


def build_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """The optimizer of ``config.optimizer`` over ``params`` (parameters, or the groups of
    :func:`parameter_groups`)."""
    return optimizer_from_section(config.optimizer, params)


def optimizer_from_section(o: OptimizerConfig, params: Any) -> torch.optim.Optimizer:
    """The optimizer of one ``optimizer`` section (also the discriminator's) over ``params``."""
    betas = tuple(o.betas)
    if o.name == "adam":
        return torch.optim.Adam(
            params, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay
        )
    if o.name == "adamw":
        return torch.optim.AdamW(
            params, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay
        )
    if o.name == "nadam":
        return torch.optim.NAdam(
            params,
            lr=o.lr,
            betas=betas,
            eps=o.eps,
            weight_decay=o.weight_decay,
            momentum_decay=o.momentum_decay,
        )
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise ConfigError(f"optimizer.name: unknown optimizer {o.name!r}")  # pragma: no cover


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int | None = None
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` dict for ``config.scheduler`` (None for ``none``).

    ``total_steps`` (the trainer's estimated optimizer steps) sizes a cosine schedule stepped
    per step when ``scheduler.t_max`` is null.
    """
    return scheduler_from_section(
        config.scheduler, optimizer, max_epochs=config.trainer.max_epochs, total_steps=total_steps
    )


def scheduler_from_section(
    s: SchedulerConfig,
    optimizer: torch.optim.Optimizer,
    *,
    max_epochs: int | None,
    total_steps: int | None,
    name: str = "lr",
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` dict of one ``scheduler`` section (see
    :func:`build_scheduler`), logged under ``name``."""
    if s.name == "none":
        return None
    if s.name == "step":
        sched: Any = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=s.step_size, gamma=s.gamma
        )
    elif s.name == "multistep":
        assert s.milestones  # the config requires them
        sched = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(s.milestones), gamma=s.gamma
        )
    elif s.name == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=s.gamma)
    else:
        t_max = s.t_max
        if t_max is None:
            t_max = max_epochs if s.interval == "epoch" else total_steps
        if not t_max or t_max < 1:
            raise ConfigError(
                "scheduler.t_max is needed for a cosine schedule here (no trainer.max_epochs for "
                "interval 'epoch', or no finite step count for interval 'step')"
            )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(t_max), eta_min=s.eta_min
        )
    return {"scheduler": sched, "interval": s.interval, "frequency": 1, "name": name}


def _group_key(prefix: str) -> str:
    """``train/lr_<key>`` of a parameter group: its prefix without the trailing dot, other
    dots as underscores (``sar_encoder.`` -> ``sar_encoder``)."""
    return prefix.rstrip(".").replace(".", "_") or "group"


def _scalar_extras(output: Any) -> dict[str, torch.Tensor]:
    """The one-element tensors of ``output.extras``, detached (logged by ``sar_pretrain``)."""
    return {
        k: v.detach().float().reshape(())
        for k, v in getattr(output, "extras", {}).items()
        if isinstance(v, torch.Tensor) and v.numel() == 1
    }


class CloudRemovalModule(pl.LightningModule):
    """Train a registered cloud-removal model (see the module docstring for the decisions).

    Args:
        config: the resolved training config (a :class:`TrainConfig` or its dict form, as
            stored in the checkpoint's hyper-parameters).
        model: the network; None builds ``create_model(config.model.name,
            **config.model.kwargs)``.

    The batch is a collated sample dict of :mod:`cloudfree.data` (``optical``, ``sar``,
    ``target``, masks, ``id``); the model is called through
    :func:`cloudfree.models.run_model` (inputs checked against its spec) and the loss
    receives the prediction (or, for uncertainty models, the whole output) and the batch.
    ``module.task_plan`` is the :class:`~cloudfree.train.tasks.TaskPlan` it follows.

    Raises:
        ConfigError: task settings that do not fit the model (see
            :func:`~cloudfree.train.tasks.resolve_task`).
    """

    def __init__(self, config: TrainConfig | dict[str, Any], model: nn.Module | None = None):
        super().__init__()
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config)
        cfg = resolve_config(cfg)  # data.protocol / data.bands default to the model's
        self.config = cfg
        self.save_hyperparameters({"config": cfg.model_dump(mode="json")})
        if model is None:
            from cloudfree.models import create_model

            model = create_model(cfg.model.name, **cfg.model.kwargs)
        self.model = model
        from cloudfree.losses import build_loss
        from cloudfree.models import spec_of

        self.task_plan: TaskPlan = resolve_task(cfg, spec_of(model))
        self.loss_fn = build_loss(cfg.loss.name, **cfg.loss.kwargs)
        # image means that ignore NaN (an image without a valid pixel) and sync over ranks
        names = (
            [f"sar_{n}" for n in SAR_VAL_METRICS] if self.task_plan.sar_pretrain else VAL_METRICS
        )
        self.val_metrics = nn.ModuleDict(
            {name: torchmetrics.MeanMetric(nan_strategy="ignore") for name in names}
        )
        if self.task_plan.uncertainty:
            self.nll_fn = build_loss("gaussian_nll")
        adv = self.task_plan.adversarial
        if adv is not None:
            from cloudfree.losses import build_gan_loss
            from cloudfree.models.discriminators import create_discriminator

            self.automatic_optimization = False
            self.discriminator = create_discriminator(
                adv.discriminator,
                in_channels=self.task_plan.discriminator_channels,
                **adv.discriminator_kwargs,
            )
            self.gan_loss = build_gan_loss(adv.gan_loss)

    def forward(self, batch: dict[str, Any]) -> Any:
        """The model's :class:`~cloudfree.models.ModelOutput` for a collated batch."""
        from cloudfree.models import ModelBatch, run_model

        return run_model(self.model, ModelBatch.from_sample(batch))

    # ----------------------------------------------------------------------- losses
    def task_loss(self, output: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        """The task's loss of ``output`` (a ModelOutput) on ``batch`` and its extra logged
        terms (``loss_stage<k>`` of multi-stage models; see :mod:`cloudfree.train.tasks`)."""
        plan = self.task_plan
        if plan.sar_pretrain:
            batch = sar_reference_batch(batch)
        if plan.stage_weights is not None:
            parts = (*output.stages, output.pred)
            losses = [self.loss_fn(p, batch) for p in parts]
            total = plan.stage_weights[0] * losses[0]
            for w, value in zip(plan.stage_weights[1:], losses[1:], strict=True):
                total = total + w * value
            return total, {f"loss_stage{k}": v.detach() for k, v in enumerate(losses)}
        if plan.loss_takes_output:
            return self.loss_fn(output, batch), {}
        return self.loss_fn(output.pred, batch), {}

    # ----------------------------------------------------------------------- steps
    def _log_train(self, loss: torch.Tensor, extra: dict[str, torch.Tensor], n: int) -> None:
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        terms = getattr(self.loss_fn, "last_terms", None) or {}
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=n)
        for name, value in extra.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=n)
        if self._trainer is not None:
            for k, suffix in enumerate(("", "_discriminator")[: len(self.trainer.optimizers)]):
                groups = self.trainer.optimizers[k].param_groups
                lr = groups[0]["lr"]
                self.log(f"train/lr{suffix}", float(lr), on_step=True, on_epoch=False, batch_size=n)
                for group in groups:
                    if "name" in group:  # an optimizer.param_groups entry
                        key = f"train/lr{suffix}_{_group_key(group['name'])}"
                        self.log(
                            key, float(group["lr"]), on_step=True, on_epoch=False, batch_size=n
                        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.task_plan.adversarial is not None:
            return self._adversarial_step(batch)
        output = self(batch)
        loss, extra = self.task_loss(output, batch)
        if self.task_plan.sar_pretrain:  # e.g. the codebook's perplexity
            terms = getattr(self.loss_fn, "last_terms", None) or {}
            extra = {**{k: v for k, v in _scalar_extras(output).items() if k not in terms}, **extra}
        self._log_train(loss, extra, int(batch["optical"].shape[0]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        from cloudfree.normalization import to_reflectance

        output = self(batch)
        loss, extra = self.task_loss(output, batch)
        pred = output.pred
        n = int(batch["optical"].shape[0])
        self.log(
            "val/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=n,
        )
        if self.task_plan.uncertainty:
            extra = {**extra, "nll": self.nll_fn(output, batch).detach()}
        if self.task_plan.sar_pretrain:
            extra = {**extra, **_scalar_extras(output)}
        for name, value in extra.items():
            self.log(f"val/{name}", value, on_epoch=True, sync_dist=True, batch_size=n)
        if self.task_plan.sar_pretrain:
            self._update_metrics(pred.detach().float(), sar_reference_batch(batch), "sar_")
            return loss
        protocol = self.config.data.protocol
        pred01 = to_reflectance(pred.detach().float(), protocol)
        target01 = to_reflectance(batch["target"].float(), protocol)
        self._update_metrics(pred01, {**batch, "target": target01}, "")
        return loss

    def _update_metrics(self, pred: torch.Tensor, batch: dict[str, Any], prefix: str) -> None:
        """Update and log the validation metrics (``val/<prefix><name>``) of ``pred`` against
        ``batch["target"]`` (same scale) over ``batch["valid_mask"]``."""
        from cloudfree.metrics import image_metrics

        target = batch["target"].to(pred.device).float()
        values = image_metrics(
            pred, target, self.config.metrics.protocol, mask=batch.get("valid_mask")
        )
        for name, metric in self.val_metrics.items():
            v = values[name.removeprefix(prefix)].float()
            metric.update(torch.where(torch.isfinite(v), v, torch.full_like(v, float("nan"))))
            self.log(f"val/{name}", metric, on_epoch=True, prog_bar=name == f"{prefix}psnr")

    # ----------------------------------------------------------------------- adversarial
    def discriminator_inputs(
        self, batch: dict[str, Any], fake: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(real, fake, condition)`` for the discriminator: the target, the generated image
        and the condition per ``adversarial.condition``: ``cat(optical, sar)``, ``optical``,
        ``sar`` or None (``none``), each 0 at invalid pixels."""
        adv = self.task_plan.adversarial
        assert adv is not None
        real = batch["target"].to(fake.dtype)
        parts: list[torch.Tensor] = []
        if adv.condition in ("optical", "optical_sar"):
            parts.append(batch["optical"].to(fake.dtype))
        if adv.condition in ("optical_sar", "sar"):
            parts.append(batch["sar"].to(fake.dtype))
        condition = torch.cat(parts, dim=1) if parts else None
        valid = batch.get("valid_mask")
        if valid is not None:
            keep = (valid if valid.dtype == torch.bool else valid > 0.5).to(fake.device)
            if keep.ndim == 3:
                keep = keep[:, None]
            zero = torch.zeros((), dtype=fake.dtype, device=fake.device)
            real = torch.where(keep, real, zero)
            fake = torch.where(keep, fake, zero)
            if condition is not None:
                condition = torch.where(keep, condition, zero)
        return real, fake, condition

    def _clip(self, optimizer: Any) -> None:
        clip = self.config.trainer.gradient_clip_val
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    def _adversarial_step(self, batch: dict[str, Any]) -> torch.Tensor:
        adv = self.task_plan.adversarial
        assert adv is not None
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        output = self(batch)
        real, fake, condition = self.discriminator_inputs(batch, output.pred)
        # discriminator step (not counted as an optimizer step: see the module docstring)
        with self.toggled_optimizer(opt_d):
            loss_d = self.gan_loss.discriminator(
                self.discriminator(real, condition), self.discriminator(fake.detach(), condition)
            )
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            self._clip(opt_d)
            self.trainer.strategy.optimizer_step(opt_d.optimizer, lambda: None, model=self)
        # generator step
        with self.toggled_optimizer(opt_g):
            reconstruction, extra = self.task_loss(output, batch)
            adversarial = self.gan_loss.generator(self.discriminator(fake, condition))
            loss = reconstruction + adv.weight * adversarial
            opt_g.zero_grad()
            self.manual_backward(loss)
            self._clip(opt_g)
            opt_g.step()
        extra = {
            "loss_reconstruction": reconstruction.detach(),
            "loss_adversarial": adversarial.detach(),
            "loss_discriminator": loss_d.detach(),
            **extra,
        }
        self._log_train(loss.detach(), extra, int(batch["optical"].shape[0]))  # lr before step
        self._step_schedulers()
        return loss.detach()

    def _step_schedulers(self) -> None:
        """Manual optimisation: step per-step schedulers now and per-epoch ones at the last
        batch of an epoch (before that batch's checkpoint, so a resume sees the stepped
        state)."""
        for cfg in self.trainer.lr_scheduler_configs:
            if cfg.interval == "step" or self.trainer.is_last_batch:
                cfg.scheduler.step()  # type: ignore[call-arg]

    # ----------------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(
            self.config, parameter_groups(self.config.optimizer, self.model)
        )
        total = None
        adv = self.task_plan.adversarial
        sections = [self.config.scheduler] + ([adv.scheduler] if adv is not None else [])
        if any(s is not None and s.name == "cosine" and s.t_max is None for s in sections):
            est = self.trainer.estimated_stepping_batches
            total = int(est) if est != float("inf") else None
        scheduler = build_scheduler(self.config, optimizer, total)
        if adv is None:
            if scheduler is None:
                return optimizer
            return {"optimizer": optimizer, "lr_scheduler": scheduler}
        assert adv.optimizer is not None and adv.scheduler is not None  # resolve_task fills them
        d_params = parameter_groups(adv.optimizer, self.discriminator, "discriminator")
        d_optimizer = optimizer_from_section(adv.optimizer, d_params)
        d_scheduler = scheduler_from_section(
            adv.scheduler,
            d_optimizer,
            max_epochs=self.config.trainer.max_epochs,
            total_steps=total,
            name="lr_discriminator",
        )
        out = []
        for opt, sched in ((optimizer, scheduler), (d_optimizer, d_scheduler)):
            out.append(
                {"optimizer": opt} if sched is None else {"optimizer": opt, "lr_scheduler": sched}
            )
        return out
