"""Registry entries of the official building blocks of paper 000's networks (MMCANet / MPIR,
which have no official code): KBNet's ``MFF`` and ``KBBlock_s``
(:mod:`cloudfree.models.layers.kbnet`) and MPRNet's ``CAB`` and ``ORB``
(:mod:`cloudfree.models.layers.mprnet`).

``kbnet_mff``, ``kbnet_kbblock_s``, ``mprnet_cab`` and ``mprnet_orb`` are blocks (tag
:data:`~cloudfree.models._registry.BLOCK_TAG`: never listed by ``list_models()``), built with the
official constructor arguments and called as the official modules (``y = block(x)`` on a
feature map ``[B, C, H, W]``). ``load_official_checkpoint(name, path, **kwargs)`` reads a bare
official state dict (``torch.save(block.state_dict())``) or the usual wrappers; the keys are
the official ones, loaded strictly. For ``mprnet_orb`` the converter also checks that the
copies of MPRNet's single shared PReLU (one key per CAB) agree, since they load into one
parameter. The registry's ``protocol`` is nominal (``glf_cr``, SEN12MS-CR scaling): blocks take
features, not images. Default widths: KBNet-L's ``dim=48``, KBNet-S's ``c=64``, MPRNet
(Deraining)'s ``n_feat=40``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from cloudfree.models._registry import BLOCK_TAG, register_model
from cloudfree.models.api import InputSpec, ModelSpec, OutputSpec
from cloudfree.models.layers.kbnet import MFF, KBBlockS
from cloudfree.models.layers.mprnet import CAB, ORB, check_shared_copies

__all__ = ["kbnet_kbblock_s", "kbnet_mff", "mprnet_cab", "mprnet_orb"]

_KBNET = "Zhang et al., KBNet: Kernel Basis Network for Image Restoration (2023)"
_MPRNET = "Zamir et al., Multi-Stage Progressive Image Restoration (CVPR 2021)"
#: an ORB's CAB activations: ``body.<i>.body.1.<param>`` (the same shared module in every CAB)
_ORB_ACT_KEY = re.compile(r"^body\.\d+\.body\.1\.(.+)$")


def _feature_spec(width_arg: str) -> Callable[[Mapping[str, Any]], ModelSpec]:
    """The spec of a block on feature maps of ``kwargs[width_arg]`` channels (no SAR)."""

    def spec(kwargs: Mapping[str, Any]) -> ModelSpec:
        width = kwargs.get(width_arg)
        return ModelSpec(
            inputs=InputSpec(
                temporal=False, needs_sar=False, optical_channels=width, sar_channels=None
            ),
            outputs=OutputSpec(channels=width),
        )

    return spec


def _official_orb_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The official ORB keys are ours; the per-CAB copies of the shared act must be equal."""
    groups: dict[str, list[str]] = {}
    for key in state:
        found = _ORB_ACT_KEY.match(key)
        if found:
            groups.setdefault(found.group(1), []).append(key)
    check_shared_copies(state, groups.values())
    return dict(state)


@register_model(
    "kbnet_mff",
    paper=_KBNET,
    protocol="glf_cr",
    description="KBNet-L MFF block with kernel basis attention (building block; KBNet parity)",
    default_kwargs={"dim": 48},
    official_converter=dict,  # the official keys are ours (the strict load names any mismatch)
    official_repo="zhangyi-3/KBNet",
    spec=_feature_spec("dim"),
    model_class=MFF,
    tags={BLOCK_TAG},
)
def kbnet_mff(**kwargs: Any) -> MFF:
    """KBNet-L's MFF (a building block, called as the official one)."""
    return MFF(**kwargs)


@register_model(
    "kbnet_kbblock_s",
    paper=_KBNET,
    protocol="glf_cr",
    description="KBNet-S block KBBlock_s (building block; KBNet parity)",
    default_kwargs={"c": 64},
    official_converter=dict,
    official_repo="zhangyi-3/KBNet",
    spec=_feature_spec("c"),
    model_class=KBBlockS,
    tags={BLOCK_TAG},
)
def kbnet_kbblock_s(**kwargs: Any) -> KBBlockS:
    """KBNet-S's KBBlock_s (a building block, called as the official one)."""
    return KBBlockS(**kwargs)


@register_model(
    "mprnet_cab",
    paper=_MPRNET,
    protocol="glf_cr",
    description="MPRNet channel-attention block CAB with a PReLU (building block; MPRNet parity)",
    default_kwargs={"n_feat": 40},
    official_converter=dict,
    official_repo="swz30/MPRNet",
    spec=_feature_spec("n_feat"),
    model_class=CAB,
    tags={BLOCK_TAG},
)
def mprnet_cab(**kwargs: Any) -> CAB:
    """MPRNet's CAB with ``act=nn.PReLU()`` (a building block, called as the official one)."""
    return CAB(**kwargs)


@register_model(
    "mprnet_orb",
    paper=_MPRNET,
    protocol="glf_cr",
    description="MPRNet original-resolution block ORB, one PReLU shared by its CABs "
    "(building block; MPRNet parity)",
    default_kwargs={"n_feat": 40},
    official_converter=_official_orb_keys,
    official_repo="swz30/MPRNet",
    spec=_feature_spec("n_feat"),
    model_class=ORB,
    tags={BLOCK_TAG},
)
def mprnet_orb(**kwargs: Any) -> ORB:
    """MPRNet's ORB, one ``nn.PReLU()`` shared by its CABs (a building block)."""
    return ORB(**kwargs)
