"""The model contract: what goes into every network, what comes out, and the one place that
calls a network (:func:`run_model`).

Every family (mono-temporal image + SAR -> image, time series with dates, mean + variance,
multi-stage, GAN generators) speaks the same two types:

* :class:`ModelBatch`: ``optical`` ``[B, C, H, W]`` (mono-temporal) or ``[B, T, C, H, W]``
  (temporal), ``sar`` in the same layout (or None for optical-only models), ``dates``
  ``[B, T]`` in days since :data:`DATE_EPOCH` (2014-04-03, the Sentinel-1A launch, as
  UnCRtainTS counts them) and ``time_mask`` ``[B, T]`` (True where a date is real, False where
  it is padding).
* :class:`ModelOutput`: ``pred`` ``[B, C_out, H, W]`` (the cloud-free estimate of the target
  date), optional ``variance`` (same shape), optional ``stages`` (intermediate full-size
  estimates of multi-stage networks, first stage first; ``pred`` is the last) and a free
  ``extras`` mapping (attention maps, auxiliary losses).

What a network accepts and returns is declared once, in its registry entry
(:class:`ModelSpec` = :class:`InputSpec` + :class:`OutputSpec` + task kinds), resolved for the
constructor arguments by :func:`cloudfree.models.create_model` and attached to the model as
``model.cloudfree_spec``. :func:`run_model` validates a call against it (shapes, channel
counts, SAR and dates present where needed) with an error naming the expected and received
shapes, calls the network and checks the output against the output spec.

Networks derive from :class:`CloudRemovalModel`, which holds the argument and shape checks
every model file would otherwise repeat, and whose :meth:`CloudRemovalModel.forward_batch`
adapts a :class:`ModelBatch` to the network's own ``forward``: mono-temporal models keep their
``forward(optical, sar)`` (parity tests call it directly); temporal models receive
``forward(optical, sar, dates, time_mask)``. A network returns a tensor (the prediction) or a
:class:`ModelOutput`.

A module without a spec (a plain ``nn.Module`` not built by ``create_model``) is treated as a
mono-temporal ``image (+ SAR) -> image`` network whose output has the optical input's channels;
no channel count is checked then.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from cloudfree.errors import ConfigError

__all__ = [
    "DATE_EPOCH",
    "TASK_KINDS",
    "CloudRemovalModel",
    "InputSpec",
    "ModelBatch",
    "ModelOutput",
    "ModelSpec",
    "OutputSpec",
    "call_network",
    "check_int",
    "days_since_epoch",
    "run_model",
    "spec_of",
]

#: Day 0 of ``dates``: the launch of Sentinel-1A (UnCRtainTS / SEN12MS-CR-TS convention).
DATE_EPOCH = _dt.date(2014, 4, 3)

#: Task kinds a model can declare; the training engine picks its behaviour from them.
#: ``regression``: one loss on ``pred``; ``uncertainty``: a loss on the whole output (mean and
#: variance, Gaussian NLL family); ``multi_stage``: a weighted sum of per-stage losses;
#: ``adversarial``: generator + discriminator, two optimizers; ``sar_pretrain``: not a
#: cloud-removal model but a SAR network pre-trained for one (``pred`` is the SAR of the
#: sample's date reconstructed, compared with the SAR of its reference date, batch key
#: ``target_sar``: Noise2Noise, paper 002's SAR encoder; see :mod:`cloudfree.train.tasks`).
TASK_KINDS: tuple[str, ...] = (
    "regression",
    "uncertainty",
    "multi_stage",
    "adversarial",
    "sar_pretrain",
)

# kinds that exclude each other (a model is trained one of these ways; adversarial and
# multi_stage combine with regression or uncertainty)
_BASE_TASKS = ("regression", "uncertainty", "sar_pretrain")


def days_since_epoch(date: _dt.date | _dt.datetime | str) -> int:
    """Days from :data:`DATE_EPOCH` to ``date`` (a date, datetime or ISO ``YYYY-MM-DD``)."""
    if isinstance(date, str):
        try:
            date = _dt.date.fromisoformat(date[:10])
        except ValueError:
            raise ConfigError(f"not an ISO date (YYYY-MM-DD): {date!r}") from None
    if isinstance(date, _dt.datetime):
        date = date.date()
    if not isinstance(date, _dt.date):
        raise ConfigError(f"not a date: {date!r} (give a date, datetime or ISO YYYY-MM-DD)")
    return (date - DATE_EPOCH).days


def check_int(owner: str, name: str, value: object, minimum: int) -> int:
    """``value`` if it is an integer ``>= minimum`` (not a bool), else a :class:`ConfigError`
    ``"<owner>: <name> must be an integer >= <minimum>, got <value>"``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


# ------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class InputSpec:
    """What a network accepts.

    Attributes:
        temporal: inputs are time series ``[B, T, C, H, W]`` (else ``[B, C, H, W]``).
        max_dates: most dates T a temporal network takes (None: any).
        needs_sar: the network uses SAR (else ``sar`` is ignored and passed as None).
        needs_optical: the network reads the optical input. False for SAR-only networks
            (SAR-to-optical translation, e.g. ``sar2opt``): ``optical`` is still required
            and checked (its channels, ``optical_channels``, are the band set the network
            outputs, its size the output's, and it is the cloudy reference of losses and
            metrics), but its values never change the output. Needs ``needs_sar``.
        needs_dates: ``dates`` must be given (temporal networks with a date encoding).
        optical_channels: optical channels C (None: not checked).
        sar_channels: SAR channels (None: not checked; 0 for optical-only networks).
        spatial_multiple: the network pads H and W internally to a multiple of this (1: none);
            any H and W are accepted either way, this tells tilers which sizes cost nothing.
        padding_invariant: a padded date (``time_mask`` False) changes nothing: the output
            equals that of the sample without it. False for networks that, as their official
            code, normalise over all dates first (UnCRtainTS's L-TAE GroupNorm sees the zeroed
            padded frames); what padded frames hold never matters either way.
    """

    temporal: bool = False
    max_dates: int | None = None
    needs_sar: bool = True
    needs_optical: bool = True
    needs_dates: bool = False
    optical_channels: int | None = 13
    sar_channels: int | None = 2
    spatial_multiple: int = 1
    padding_invariant: bool = True

    def __post_init__(self) -> None:
        if self.needs_dates and not self.temporal:
            raise ConfigError("InputSpec: needs_dates requires temporal=True")
        if self.max_dates is not None and (not self.temporal or self.max_dates < 1):
            raise ConfigError("InputSpec: max_dates needs temporal=True and a value >= 1")
        if self.spatial_multiple < 1:
            raise ConfigError("InputSpec: spatial_multiple must be >= 1")
        if not self.needs_optical and not self.needs_sar:
            raise ConfigError(
                "InputSpec: a network without the optical input (needs_optical=False) needs SAR "
                "(needs_sar=True)"
            )


@dataclass(frozen=True)
class OutputSpec:
    """What a network returns.

    Attributes:
        channels: channels of ``pred`` (None: the optical input's channel count).
        has_variance: ``variance`` is returned (same shape as ``pred``).
        num_stages: length of ``stages`` (0: no intermediate outputs).
    """

    channels: int | None = None
    has_variance: bool = False
    num_stages: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """Input spec, output spec and task kinds of one model (its constructor arguments
    resolved); ``model.cloudfree_spec``."""

    inputs: InputSpec = field(default_factory=InputSpec)
    outputs: OutputSpec = field(default_factory=OutputSpec)
    tasks: frozenset[str] = frozenset({"regression"})

    def __post_init__(self) -> None:
        tasks = frozenset(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        unknown = sorted(tasks - set(TASK_KINDS))
        if unknown:
            raise ConfigError(f"unknown task kind(s) {unknown}; valid: {', '.join(TASK_KINDS)}")
        if sum(t in tasks for t in _BASE_TASKS) != 1:
            raise ConfigError(
                "a model is trained either for regression or for uncertainty or as a "
                f"sar_pretrain network (exactly one of them), got {sorted(tasks)}"
            )
        if "sar_pretrain" in tasks and tasks & {"multi_stage", "adversarial"}:
            raise ConfigError(
                f"the sar_pretrain task does not combine with multi_stage or adversarial, got "
                f"{sorted(tasks)}"
            )
        if "uncertainty" in tasks and not self.outputs.has_variance:
            raise ConfigError("the uncertainty task needs an output spec with has_variance=True")
        if "multi_stage" in tasks and self.outputs.num_stages < 1:
            raise ConfigError("the multi_stage task needs an output spec with num_stages >= 1")

    @property
    def out_channels(self) -> int | None:
        """Channels of ``pred`` (the optical channels unless the output spec says otherwise)."""
        if self.outputs.channels is not None:
            return self.outputs.channels
        return self.inputs.optical_channels

    def check_bands(self, band_names: Sequence[str]) -> None:
        """Raise :class:`ConfigError` when the optical band set does not have the number of
        channels the network takes (the one place this is checked: training data, loaded
        weights and prediction inputs all call it)."""
        n = self.inputs.optical_channels
        if n is not None and n != len(band_names):
            raise ConfigError(
                f"the model takes {n} optical channels but the band set has {len(band_names)} "
                f"bands ({','.join(band_names)})"
            )

    def describe(self) -> str:
        """One line for listings: layout, SAR, dates, outputs, tasks."""
        i, o = self.inputs, self.outputs
        parts = ["temporal" if i.temporal else "mono-temporal"]
        if i.max_dates:
            parts[-1] += f" (T <= {i.max_dates})"
        parts.append("SAR only" if not i.needs_optical else "SAR" if i.needs_sar else "no SAR")
        if i.needs_dates:
            parts.append("dates")
        if o.has_variance:
            parts.append("variance")
        if o.num_stages:
            parts.append(f"{o.num_stages} stage{'s' if o.num_stages > 1 else ''}")
        return ", ".join(parts) + "; " + "+".join(sorted(self.tasks))


_PLAIN_SPEC = ModelSpec(InputSpec(optical_channels=None, sar_channels=None, needs_sar=False))


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec of ``model``: ``model.cloudfree_spec`` (set by ``create_model``), else the
    registry entry named by ``model.cloudfree_config``, else the plain mono-temporal spec (any
    channels, SAR passed through when given)."""
    spec = getattr(model, "cloudfree_spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    cfg = getattr(model, "cloudfree_config", None)
    if isinstance(cfg, Mapping) and "name" in cfg:
        from cloudfree.models._registry import get_model_info

        return get_model_info(str(cfg["name"])).resolve_spec(dict(cfg.get("kwargs") or {}))
    return _PLAIN_SPEC


# ------------------------------------------------------------------------------- data types
@dataclass
class ModelBatch:
    """The inputs of one network call (see the module docstring for the layouts)."""

    optical: Tensor
    sar: Tensor | None = None
    dates: Tensor | None = None
    time_mask: Tensor | None = None

    @property
    def temporal(self) -> bool:
        return self.optical.ndim == 5

    @property
    def batch_size(self) -> int:
        return int(self.optical.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ModelBatch:
        """A copy with every tensor on ``device``."""

        def move(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(device, non_blocking=non_blocking)

        return ModelBatch(
            move(self.optical),  # type: ignore[arg-type]
            move(self.sar),
            move(self.dates),
            move(self.time_mask),
        )

    @classmethod
    def from_sample(cls, batch: Mapping[str, Any]) -> ModelBatch:
        """The model inputs of a collated dataset batch (keys ``optical``, ``sar``,
        ``dates``, ``time_mask``; absent keys are None)."""
        if "optical" not in batch:
            raise ConfigError(
                f"a batch needs an 'optical' entry; it has {', '.join(map(repr, batch))}"
            )
        return cls(
            batch["optical"],
            batch.get("sar"),
            batch.get("dates"),
            batch.get("time_mask"),
        )


@dataclass
class ModelOutput:
    """What a network returns (see the module docstring)."""

    pred: Tensor
    variance: Tensor | None = None
    stages: tuple[Tensor, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def detach(self) -> ModelOutput:
        """A copy without autograd history (extras that are tensors detached too)."""
        return ModelOutput(
            self.pred.detach(),
            None if self.variance is None else self.variance.detach(),
            tuple(s.detach() for s in self.stages),
            {k: v.detach() if isinstance(v, Tensor) else v for k, v in self.extras.items()},
        )


# ------------------------------------------------------------------------------- base class
class CloudRemovalModel(nn.Module):
    """Base of every cloudfree network: shared argument and input checks, and the adapter
    from :class:`ModelBatch` to the network's ``forward``.

    Subclasses implement ``forward``: mono-temporal ones as ``forward(optical, sar=None)``,
    temporal ones as ``forward(optical, sar=None, dates=None, time_mask=None)``; either
    returns a tensor or a :class:`ModelOutput`. Set :attr:`temporal_forward` for the second
    form (or override :meth:`forward_batch`).
    """

    #: whether ``forward`` takes ``dates`` and ``time_mask``
    temporal_forward: bool = False

    def forward_batch(self, batch: ModelBatch) -> Tensor | ModelOutput:
        """Call ``forward`` with the batch's tensors (what :func:`run_model` does)."""
        if self.temporal_forward:
            return self(
                optical=batch.optical, sar=batch.sar, dates=batch.dates, time_mask=batch.time_mask
            )
        return self(optical=batch.optical, sar=batch.sar)

    # ---------------------------------------------------------------- shared checks
    def check_int(self, name: str, value: object, minimum: int) -> int:
        """See :func:`check_int` (the owner is the class name)."""
        return check_int(type(self).__name__, name, value, minimum)

    def check_image(self, name: str, x: Tensor, channels: int, like: Tensor | None = None) -> None:
        """``x`` must be a float ``[B, channels, H, W]`` tensor (with ``like``'s batch and
        spatial size when given)."""
        owner = type(self).__name__
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"{owner}: {name} must have shape [B, {channels}, H, W], got {got}")
        if not x.is_floating_point():
            raise ConfigError(f"{owner}: {name} must be a float tensor, got {x.dtype}")
        if like is not None and (x.shape[0] != like.shape[0] or x.shape[-2:] != like.shape[-2:]):
            raise ConfigError(
                f"{owner}: optical and {name} must share batch and spatial size, got "
                f"{tuple(like.shape)} and {tuple(x.shape)}"
            )


# ------------------------------------------------------------------------------- run_model
def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def _layout(spec: InputSpec, channels: int | None, what: str) -> str:
    c = "C" if channels is None else str(channels)
    return f"[B, T, {c}, H, W]" if spec.temporal else f"[B, {c}, H, W]"


def _model_name(model: nn.Module) -> str:
    cfg = getattr(model, "cloudfree_config", None)
    if isinstance(cfg, Mapping) and "name" in cfg:
        return str(cfg["name"])
    return type(model).__name__


def _validate_inputs(name: str, spec: ModelSpec, batch: ModelBatch) -> ModelBatch:
    i = spec.inputs
    ndim = 5 if i.temporal else 4
    x = batch.optical
    kind = "temporal" if i.temporal else "mono-temporal"
    if (
        not isinstance(x, Tensor)
        or x.ndim != ndim
        or (i.optical_channels is not None and x.shape[-3] != i.optical_channels)
    ):
        hint = ""
        if isinstance(x, Tensor) and x.ndim == 9 - ndim:
            hint = (
                " (a time series given to a mono-temporal model)"
                if not i.temporal
                else " (one date given to a temporal model: add the T axis, optical[:, None])"
            )
        raise ConfigError(
            f"model {name!r} ({kind}) expects optical {_layout(i, i.optical_channels, 'optical')}"
            f", got {_shape(x)}{hint}"
        )
    if not x.is_floating_point():
        raise ConfigError(f"model {name!r}: optical must be a float tensor, got {x.dtype}")
    lead = tuple(x.shape[: ndim - 3])  # (B,) or (B, T)
    hw = tuple(x.shape[-2:])
    if i.temporal and i.max_dates is not None and x.shape[1] > i.max_dates:
        raise ConfigError(
            f"model {name!r} takes at most {i.max_dates} dates, got T={x.shape[1]} "
            f"(optical {_shape(x)})"
        )
    sar = batch.sar
    if i.needs_sar:
        if sar is None:
            raise ConfigError(
                f"model {name!r} needs a SAR input {_layout(i, i.sar_channels, 'sar')}, got none"
            )
        ok = (
            isinstance(sar, Tensor)
            and sar.ndim == ndim
            and tuple(sar.shape[: ndim - 3]) == lead
            and tuple(sar.shape[-2:]) == hw
            and (i.sar_channels is None or sar.shape[-3] == i.sar_channels)
        )
        if not ok:
            c = "C" if i.sar_channels is None else str(i.sar_channels)
            want = f"[{', '.join(map(str, lead))}, {c}, {hw[0]}, {hw[1]}]"
            raise ConfigError(
                f"model {name!r} expects sar {want} (the optical input is {_shape(x)}), "
                f"got {_shape(sar)}"
            )
        if not sar.is_floating_point():
            raise ConfigError(f"model {name!r}: sar must be a float tensor, got {sar.dtype}")
    elif spec is not _PLAIN_SPEC:
        sar = None  # an optical-only network never sees SAR
    dates, mask = batch.dates, batch.time_mask
    if i.temporal:
        bt = tuple(x.shape[:2])
        if dates is None and i.needs_dates:
            raise ConfigError(
                f"model {name!r} needs dates [B, T] = {list(bt)} (days since "
                f"{DATE_EPOCH.isoformat()}), got none"
            )
        if dates is not None and (not isinstance(dates, Tensor) or tuple(dates.shape) != bt):
            raise ConfigError(
                f"model {name!r} expects dates of shape {list(bt)}, got {_shape(dates)}"
            )
        if mask is None:
            mask = torch.ones(bt, dtype=torch.bool, device=x.device)
        elif not isinstance(mask, Tensor) or tuple(mask.shape) != bt:
            raise ConfigError(
                f"model {name!r} expects time_mask of shape {list(bt)}, got {_shape(mask)}"
            )
        else:
            mask = mask.to(torch.bool)
        if not bool(mask.any(dim=1).all()):
            raise ConfigError(
                f"model {name!r}: every sample needs at least one real date (time_mask)"
            )
    else:
        dates = mask = None
    return ModelBatch(x, sar, dates, mask)


def _validate_output(name: str, spec: ModelSpec, raw: Any, batch: ModelBatch) -> ModelOutput:
    if isinstance(raw, Tensor):
        out = ModelOutput(pred=raw)
    elif isinstance(raw, ModelOutput):
        out = raw
    else:
        raise ConfigError(
            f"model {name!r} returned {type(raw).__name__}; a network returns a tensor or a "
            "cloudfree.models.ModelOutput"
        )
    x = batch.optical
    channels = spec.out_channels if spec.out_channels is not None else int(x.shape[-3])
    want = (int(x.shape[0]), channels, *map(int, x.shape[-2:]))
    checks = [("pred", out.pred)]
    if spec.outputs.has_variance:
        if out.variance is None:
            raise ConfigError(f"model {name!r} declares a variance output but returned none")
        checks.append(("variance", out.variance))
    if len(out.stages) != spec.outputs.num_stages:
        raise ConfigError(
            f"model {name!r} declares {spec.outputs.num_stages} stage output(s) but returned "
            f"{len(out.stages)}"
        )
    checks += [(f"stages[{k}]", s) for k, s in enumerate(out.stages)]
    for what, t in checks:
        if not isinstance(t, Tensor) or tuple(t.shape) != want:
            raise ConfigError(
                f"model {name!r} returned {what} of shape {_shape(t)}, expected {list(want)} "
                f"for optical input {_shape(x)}"
            )
    return out


def run_model(
    model: nn.Module,
    batch: ModelBatch | None = None,
    *,
    optical: Tensor | None = None,
    sar: Tensor | None = None,
    dates: Tensor | None = None,
    time_mask: Tensor | None = None,
) -> ModelOutput:
    """Call ``model`` on one batch: validate the inputs against its spec, run it, check and
    return its :class:`ModelOutput`.

    Give either a :class:`ModelBatch` or the tensors as keywords. Gradient mode, train/eval
    mode and the device are the caller's (this function only checks and calls).

    Raises:
        ConfigError: inputs or outputs that do not fit the model's spec; the message names
            the model, the expected and the received shapes.
    """
    if batch is None:
        if optical is None:
            raise ConfigError("run_model needs a ModelBatch or optical=...")
        batch = ModelBatch(optical, sar, dates, time_mask)
    elif any(t is not None for t in (optical, sar, dates, time_mask)):
        raise ConfigError("run_model takes a ModelBatch or tensors, not both")
    spec = spec_of(model)
    name = _model_name(model)
    checked = _validate_inputs(name, spec, batch)
    return _validate_output(name, spec, call_network(model, checked), checked)


def call_network(model: nn.Module, batch: ModelBatch) -> Any:
    """Call ``model`` on ``batch`` as :func:`run_model` does, **without** its checks: a
    :class:`CloudRemovalModel` through ``forward_batch``, any other temporal network with
    ``optical, sar, dates, time_mask``, a mono-temporal one with ``optical, sar`` (all as
    keywords). For wrappers that sit between :func:`run_model` and a network
    (:mod:`cloudfree.models.inference`); returns what the network returns."""
    if isinstance(model, CloudRemovalModel):
        return model.forward_batch(batch)
    if spec_of(model).inputs.temporal:
        return model(
            optical=batch.optical, sar=batch.sar, dates=batch.dates, time_mask=batch.time_mask
        )
    return model(optical=batch.optical, sar=batch.sar)


def with_spec(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields of its input spec changed (e.g. channel counts)."""
    return replace(spec, inputs=replace(spec.inputs, **changes))
