"""The LightningModule: any registered cloud-removal model, a loss, an optimizer and a schedule.

Decisions:

* The network is built with :func:`cloudfree.models.create_model` (or passed in, e.g. with
  ``init_weights`` already loaded) and kept as ``module.model``, so its state dict (and the
  exported ``weights/*`` directories) carry the model's own keys; the Lightning checkpoint
  prefixes them with ``model.``.
* Validation metrics are computed on reflectance in [0, 1] (``denormalize_optical(x,
  protocol) / 10000``, clipped to the valid DN range), whatever the model's scaling, with
  :func:`cloudfree.metrics.image_metrics` under ``config.metrics.protocol`` over valid pixels,
  then averaged over all images of the epoch (:class:`torchmetrics.MeanMetric`, synced over
  ranks; an image whose metric is NaN or infinite, e.g. without a valid pixel or with zero
  error, is left out). ``val/loss`` is logged with ``sync_dist=True``, Lightning weighting the
  per-batch means by batch size.
* Loss components (``loss.last_terms`` of :mod:`cloudfree.losses`) are logged as
  ``train/<term>`` next to ``train/loss``, plus ``train/lr``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.train.config import TrainConfig, resolve_config

__all__ = ["CloudRemovalModule", "build_optimizer", "build_scheduler"]

#: Validation metrics logged as ``val/<name>`` (besides ``val/loss``).
VAL_METRICS = ("psnr", "ssim", "mae")


def build_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """The optimizer of ``config.optimizer`` over ``params``."""
    o = config.optimizer
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
    s = config.scheduler
    if s.name == "none":
        return None
    if s.name == "step":
        sched: Any = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=s.step_size, gamma=s.gamma
        )
    else:
        t_max = s.t_max
        if t_max is None:
            t_max = config.trainer.max_epochs if s.interval == "epoch" else total_steps
        if not t_max or t_max < 1:
            raise ConfigError(
                "scheduler.t_max is needed for a cosine schedule here (no trainer.max_epochs for "
                "interval 'epoch', or no finite step count for interval 'step')"
            )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(t_max), eta_min=s.eta_min
        )
    return {"scheduler": sched, "interval": s.interval, "frequency": 1, "name": "lr"}


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
    receives the prediction and the batch.
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

        self.loss_fn = build_loss(cfg.loss.name, **cfg.loss.kwargs)
        # image means that ignore NaN (an image without a valid pixel) and sync over ranks
        self.val_metrics = nn.ModuleDict(
            {name: torchmetrics.MeanMetric(nan_strategy="ignore") for name in VAL_METRICS}
        )

    def forward(self, batch: dict[str, Any]) -> Any:
        """The model's :class:`~cloudfree.models.ModelOutput` for a collated batch."""
        from cloudfree.models import ModelBatch, run_model

        return run_model(self.model, ModelBatch.from_sample(batch))

    # ----------------------------------------------------------------------- steps
    def _shared_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self(batch).pred
        loss = self.loss_fn(pred, batch)
        return pred, loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, loss = self._shared_step(batch)
        n = int(batch["optical"].shape[0])
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        terms = getattr(self.loss_fn, "last_terms", None) or {}
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=n)
        if self._trainer is not None:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", float(lr), on_step=True, on_epoch=False, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        from cloudfree.metrics import image_metrics
        from cloudfree.normalization import denormalize_optical

        pred, loss = self._shared_step(batch)
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
        protocol = self.config.data.protocol
        pred01 = denormalize_optical(pred.detach().float(), protocol) / 10000.0
        target01 = denormalize_optical(batch["target"].float(), protocol) / 10000.0
        values = image_metrics(
            pred01, target01, self.config.metrics.protocol, mask=batch.get("valid_mask")
        )
        for name, metric in self.val_metrics.items():
            v = values[name].float()
            metric.update(torch.where(torch.isfinite(v), v, torch.full_like(v, float("nan"))))
            self.log(f"val/{name}", metric, on_epoch=True, prog_bar=name == "psnr")
        return loss

    # ----------------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.config, params)
        total = None
        if self.config.scheduler.name == "cosine" and self.config.scheduler.t_max is None:
            est = self.trainer.estimated_stepping_batches
            total = int(est) if est != float("inf") else None
        scheduler = build_scheduler(self.config, optimizer, total)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
