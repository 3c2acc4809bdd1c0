"""Model registry: every architecture registers a builder under a name (timm style).

A registered entry records what a user needs to run the model correctly besides its weights:
the paper, the normalisation protocol its inputs use, the optical band set, and (optionally) a
converter that turns a state dict in the official repository's layout into ours, with the
protocol the official weights expect when it is not the one we train with
(``official_protocol``: SpA-GAN's weights read 8-bit images).

Each entry also carries the model's contract (:class:`~cloudfree.models.api.ModelSpec`: input
spec, output spec, task kinds), as a fixed spec or as a function of the constructor arguments
(channel counts, ablations that drop SAR), and the name of its default training recipe.
:func:`create_model` resolves the spec for the arguments it builds with and attaches it to the
model as ``model.cloudfree_spec``; :func:`cloudfree.models.run_model` validates every call
against it.

Model modules register their builders at import time with :func:`register_model`;
:mod:`cloudfree.models` imports them all.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.models.api import ModelSpec

__all__ = [
    "ModelInfo",
    "OfficialConverter",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]

#: ``converter(official_state_dict) -> our_state_dict``; receives the unwrapped official state
#: dict (wrapper dicts and ``module.``/``net_G.`` prefixes already removed) and must raise
#: :class:`ConfigError` for keys it does not know. Size-tied buffers are dropped there.
OfficialConverter = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]

#: A model's spec, fixed or computed from the full constructor arguments (the builder's
#: signature defaults, then the entry's ``default_kwargs``, then the caller's kwargs).
SpecSource = ModelSpec | Callable[[Mapping[str, Any]], ModelSpec]

#: Tag of stand-in models (small networks that prove a contract before a real family exists);
#: :func:`list_models` leaves them out unless asked.
STANDIN_TAG = "standin"
#: Tag of registered building blocks (the U-TAE backbone, the L-TAE): loadable from official
#: checkpoints and called as the official modules, but not cloud-removal models by themselves;
#: never listed by :func:`list_models` (``include_blocks=True`` lists them).
BLOCK_TAG = "block"
#: Tag of pre-training networks (the ``sar_pretrain`` task, e.g. ``ca_mtcr_sar_vqvae``): they
#: train (``cloudfree train``) and save like models, but they are not cloud-removal models
#: (their output is not an optical image), so :func:`list_models` leaves them out unless
#: ``include_pretrain=True``, and the shared model test base does not run on them.
PRETRAIN_TAG = "pretrain"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name."""

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    protocol: str
    bands: str = "all"  # a spec for cloudfree.bands.get_band_set
    description: str = ""
    default_kwargs: Mapping[str, Any] = field(default_factory=dict)
    official_converter: OfficialConverter | None = None
    official_repo: str | None = None
    #: protocol of the official weights' inputs when it differs from ``protocol`` (None: same)
    official_protocol: str | None = None
    spec: SpecSource = field(default_factory=ModelSpec)
    default_recipe: str | None = None
    model_class: type[nn.Module] | None = None
    tags: frozenset[str] = frozenset()

    def full_kwargs(self, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The constructor's signature defaults, under ``default_kwargs``, under ``kwargs``."""
        defaults: dict[str, Any] = {}
        target = self.model_class or self.builder
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            params = []
        for p in params:
            if p.default is not inspect.Parameter.empty and p.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            ):
                defaults[p.name] = p.default
        return {**defaults, **self.default_kwargs, **dict(kwargs or {})}

    def resolve_spec(self, kwargs: Mapping[str, Any] | None = None) -> ModelSpec:
        """The spec of this model built with ``kwargs`` (over the defaults)."""
        if isinstance(self.spec, ModelSpec):
            return self.spec
        return self.spec(self.full_kwargs(kwargs))

    @property
    def temporal(self) -> bool:
        """Whether the model takes time series (from its default spec)."""
        return self.resolve_spec().inputs.temporal

    @property
    def family(self) -> str:
        """The architecture family: the module of ``cloudfree.models`` that defines the network
        (``glf_cr`` for GLF-CR, its ablations and CARF; ``pix2pix`` for McGAN and SAR2OPT)."""
        return (self.model_class or self.builder).__module__.rsplit(".", 1)[-1]

    @property
    def is_standin(self) -> bool:
        return STANDIN_TAG in self.tags

    @property
    def is_block(self) -> bool:
        return BLOCK_TAG in self.tags

    @property
    def is_pretrain(self) -> bool:
        return PRETRAIN_TAG in self.tags

    def check_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` when ``kwargs`` do not fit the constructor's signature
        (unknown or missing arguments), naming the valid ones."""
        target = self.model_class or self.builder
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):  # pragma: no cover
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            return  # a **kwargs builder without a model_class: nothing to check against
        try:
            sig.bind(**kwargs)
        except TypeError as exc:
            valid = [
                p.name
                for p in sig.parameters.values()
                if p.kind
                in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            ]
            raise ConfigError(
                f"bad arguments for model {self.name!r}: {exc}; valid arguments: {', '.join(valid)}"
            ) from None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    paper: str,
    protocol: str,
    bands: str = "all",
    description: str = "",
    default_kwargs: Mapping[str, Any] | None = None,
    official_converter: OfficialConverter | None = None,
    official_repo: str | None = None,
    official_protocol: str | None = None,
    spec: SpecSource | None = None,
    default_recipe: str | None = None,
    model_class: type[nn.Module] | None = None,
    tags: frozenset[str] | set[str] | tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``name``.

    ``default_kwargs`` are merged under the caller's kwargs (variants such as an ablation are
    registered as the same builder with different defaults). ``spec`` is the model's contract
    (default: mono-temporal 13 optical + 2 SAR channels -> 13, regression), or a function of
    the full constructor arguments returning it. ``model_class`` is the class a ``**kwargs``
    builder constructs: its signature is what arguments are checked against (so a
    ``TypeError`` raised inside the network is never mistaken for a bad argument).
    ``default_recipe`` names the training recipe ``cloudfree train`` suggests for the model.
    ``official_protocol`` is the normalisation protocol official checkpoints expect when it
    differs from ``protocol`` (the one the model is trained with from scratch);
    :func:`~cloudfree.models.load_official_checkpoint` records it on the model and
    :func:`~cloudfree.models.load_model` reports it for such a checkpoint.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is already registered")
        info = ModelInfo(
            name=name,
            builder=builder,
            paper=paper,
            protocol=protocol,
            bands=bands,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            default_kwargs=dict(default_kwargs or {}),
            official_converter=official_converter,
            official_repo=official_repo,
            official_protocol=official_protocol,
            spec=spec if spec is not None else ModelSpec(),
            default_recipe=default_recipe,
            model_class=model_class,
            tags=frozenset(tags),
        )
        info.resolve_spec()  # a spec function that fails on the defaults fails here, unregistered
        _REGISTRY[name] = info
        return builder

    return decorator


def list_models(
    pattern: str | None = None,
    *,
    include_standins: bool = False,
    include_blocks: bool = False,
    include_pretrain: bool = False,
) -> list[str]:
    """Registered model names (sorted), optionally filtered by a shell-style ``pattern``;
    stand-in models (tag :data:`STANDIN_TAG`) only with ``include_standins``, building blocks
    (:data:`BLOCK_TAG`) only with ``include_blocks``, pre-training networks
    (:data:`PRETRAIN_TAG`) only with ``include_pretrain``."""
    names = sorted(_REGISTRY)
    return [
        n
        for n in names
        if (pattern is None or fnmatch.fnmatch(n, pattern))
        and (include_standins or not _REGISTRY[n].is_standin)
        and (include_blocks or not _REGISTRY[n].is_block)
        and (include_pretrain or not _REGISTRY[n].is_pretrain)
    ]


def get_model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; registered: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` with ``kwargs`` (over the entry's defaults).

    The returned module carries ``model.cloudfree_config``: the name, the full kwargs, the
    normalisation protocol and the band set, which :func:`save_pretrained` stores with the
    weights so that the model can be rebuilt from the directory alone; and
    ``model.cloudfree_spec``, its :class:`~cloudfree.models.api.ModelSpec` for these kwargs.

    Raises:
        ConfigError: an unknown name, or arguments the constructor does not take (checked
            against its signature before building; errors raised while building propagate).
    """
    info = get_model_info(name)
    merged = {**info.default_kwargs, **kwargs}
    info.check_kwargs(merged)
    model = info.builder(**merged)
    model.cloudfree_spec = info.resolve_spec(merged)  # type: ignore[assignment]
    model.cloudfree_config = {  # type: ignore[assignment]
        "name": name,
        "kwargs": merged,
        "protocol": info.protocol,
        "bands": info.bands,
    }
    return model
