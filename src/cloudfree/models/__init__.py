"""Model zoo: a registry of SAR-optical cloud-removal networks and their weights.

>>> from cloudfree.models import create_model, list_models
>>> model = create_model("glf_cr", width=32, num_blocks=2)        # doctest: +SKIP
>>> pred = model(optical=cloudy, sar=sar)                          # doctest: +SKIP

Every mono-temporal model is called as ``model(optical=..., sar=...)`` with ``[B, C, H, W]``
tensors in its normalisation protocol's scaling (``get_model_info(name).protocol``) and returns
the cloud-free optical tensor ``[B, C_opt, H, W]``; any H and W work.
"""

from cloudfree.models import dsen2cr, glf_cr  # noqa: F401  (registers the models)
from cloudfree.models._registry import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from cloudfree.models.hub import (
    load_pretrained,
    read_pretrained_config,
    save_pretrained,
    weights_sha256,
)
from cloudfree.models.official import load_official_checkpoint, read_official_state_dict

__all__ = [
    "ModelInfo",
    "create_model",
    "get_model_info",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained",
    "read_official_state_dict",
    "read_pretrained_config",
    "register_model",
    "save_pretrained",
    "weights_sha256",
]
