"""Registry of datasets, so that configs (``data.dataset``) and tools name a dataset by a string.

Registering a new dataset (SEN12MS-CR-TS and AllClear come next)::

    from cloudfree.data import register_dataset

    @register_dataset("sen12mscr_ts", description="SEN12MS-CR-TS: ...", temporal=True)
    class SEN12MSCRTS(torch.utils.data.Dataset):
        def __init__(self, root, split="train", protocol=None, *, bands=None,
                     crop_size=None, crop="random", masks=True, cloud_mask_method="rule_based",
                     cloud_threshold=0.2, **dataset_specific_options): ...

and import the module from :mod:`cloudfree.data` (``__init__``) so the decorator runs.

The contract of a registered dataset class:

* the constructor takes ``root`` and ``split`` (``train`` / ``val`` / ``test`` / ``all``), and
  the keyword arguments ``protocol`` (None: raw samples), ``bands``, ``crop_size``, ``crop``,
  ``masks``, ``cloud_mask_method`` and ``cloud_threshold`` with the meanings of
  :class:`~cloudfree.data.SEN12MSCR`; further options are its own;
* with ``protocol=None`` it yields **raw** samples: ``optical`` / ``target`` float32 DN and
  ``sar`` float32 dB with NaN wherever a value is missing (``[T, C, H, W]`` for temporal
  data), ``valid_mask``, ``id``, ``dates`` when the acquisition dates are known, and, when
  ``masks`` is true, ``cloud_mask`` / ``shadow_mask`` / ``cloud_cover``; the normalisation is
  then :class:`~cloudfree.data.transforms.NormalizeSample`.

:func:`build_dataset` checks the options against the constructor's signature, so a config
option the dataset does not have is a :class:`~cloudfree.errors.ConfigError`, not a
``TypeError``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch.utils.data import Dataset

from cloudfree.errors import ConfigError

__all__ = [
    "DatasetInfo",
    "build_dataset",
    "get_dataset",
    "is_temporal_dataset",
    "list_datasets",
    "register_dataset",
]

_T = TypeVar("_T", bound=type)


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its name, class and what it holds."""

    name: str
    dataset_class: type
    description: str
    temporal: bool = False

    def options(self) -> tuple[str, ...]:
        """Names of the constructor's keyword arguments (after ``root``)."""
        params = inspect.signature(self.dataset_class.__init__).parameters
        return tuple(n for n in params if n not in ("self", "root"))


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, description: str, temporal: bool = False) -> Callable[[_T], _T]:
    """Class decorator registering a dataset under ``name`` (see the module docstring).

    Raises:
        ConfigError: ``name`` is empty, not lower-case snake case, or already registered to
            another class.
    """
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ConfigError(f"dataset name {name!r} must be lower-case letters, digits and '_'")

    def decorate(cls: _T) -> _T:
        known = _DATASETS.get(name)
        if known is not None and known.dataset_class.__qualname__ != cls.__qualname__:
            raise ConfigError(
                f"dataset {name!r} is already registered to {known.dataset_class.__qualname__}"
            )
        _DATASETS[name] = DatasetInfo(name, cls, description, temporal)
        return cls

    return decorate


def is_temporal_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` (an instance) is of a class registered as temporal."""
    return any(
        info.temporal and isinstance(dataset, info.dataset_class) for info in _DATASETS.values()
    )


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return sorted(_DATASETS)


def unknown_dataset_message(name: str) -> str:
    """``unknown dataset 'x' (did you mean 'y'?); registered datasets: ...``."""
    hint = difflib.get_close_matches(str(name), list_datasets(), n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return (
        f"unknown dataset {name!r}{did_you_mean}; registered datasets: {', '.join(list_datasets())}"
    )


def get_dataset(name: str) -> DatasetInfo:
    """The registry entry of dataset ``name``.

    Raises:
        ConfigError: no such dataset (the message lists the registered ones).
    """
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_dataset_message(name)) from None


def build_dataset(name: str, root: Any, **options: Any) -> Dataset:
    """Construct registered dataset ``name`` on ``root`` with ``options``.

    Raises:
        ConfigError: an unknown dataset, or an option its constructor does not take (the
            message lists the ones it takes).
    """
    info = get_dataset(name)
    accepted = info.options()
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise ConfigError(
            f"dataset {name!r} takes no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(accepted)}"
        )
    return info.dataset_class(root, **options)
