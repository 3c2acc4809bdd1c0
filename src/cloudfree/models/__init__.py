"""Model zoo: a registry of SAR-optical cloud-removal networks and their weights.

>>> from cloudfree.models import create_model, run_model
>>> model = create_model("glf_cr", width=32, num_blocks=2)        # doctest: +SKIP
>>> pred = run_model(model, optical=cloudy, sar=sar).pred          # doctest: +SKIP

Every network is called through :func:`run_model` (``run_model(model, optical=..., sar=...,
dates=None, time_mask=None) -> ModelOutput``), which checks the inputs against the model's
spec (:class:`ModelSpec`, ``get_model_info(name).resolve_spec(kwargs)``); inputs are in the
model's normalisation protocol's scaling (``get_model_info(name).protocol``); any H and W work.
See ``docs/architecture.md`` for the contract.
"""

from cloudfree.models import (  # noqa: F401  (registers the models)
    blocks_000,
    ca_mtcr,
    ca_mtcr_pretrain,
    dsen2cr,
    glf_cr,
    mmcanet,
    mpir,
    pix2pix,
    sgbaf,
    spa_gan,
    standins,
    uncrtaints,
    utae,
)
from cloudfree.models._registry import (
    STANDIN_TAG,
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from cloudfree.models.api import (
    DATE_EPOCH,
    TASK_KINDS,
    CloudRemovalModel,
    InputSpec,
    ModelBatch,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    days_since_epoch,
    run_model,
    spec_of,
)
from cloudfree.models.discriminators import create_discriminator, list_discriminators
from cloudfree.models.hub import (
    load_pretrained,
    read_pretrained_config,
    save_pretrained,
    weights_sha256,
)
from cloudfree.models.loading import LoadedModel, RunLayout, load_model, resolve_weights_dir
from cloudfree.models.official import load_official_checkpoint, read_official_state_dict

__all__ = [
    "DATE_EPOCH",
    "STANDIN_TAG",
    "TASK_KINDS",
    "CloudRemovalModel",
    "InputSpec",
    "LoadedModel",
    "ModelBatch",
    "ModelInfo",
    "ModelOutput",
    "ModelSpec",
    "OutputSpec",
    "RunLayout",
    "days_since_epoch",
    "run_model",
    "spec_of",
    "create_discriminator",
    "create_model",
    "list_discriminators",
    "get_model_info",
    "list_models",
    "load_model",
    "load_official_checkpoint",
    "load_pretrained",
    "read_official_state_dict",
    "read_pretrained_config",
    "register_model",
    "resolve_weights_dir",
    "save_pretrained",
    "weights_sha256",
]
