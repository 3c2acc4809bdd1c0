"""Configuration files shared by the training and benchmark configurations: a strict pydantic
section base, one-line validation messages, dotted ``--set`` overrides and YAML loading.

It sits below :mod:`cloudfree.train` and :mod:`cloudfree.evaluate`, so that both validate
their configurations the same way without importing each other.
"""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cloudfree.errors import ConfigError, InputFileError

__all__ = [
    "ConfigSection",
    "apply_overrides",
    "load_yaml_config",
    "section_class",
    "set_dotted",
    "validation_error_message",
]


class ConfigSection(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def section_class(path: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model of the section at ``path`` of ``root`` (None inside free-form
    dicts); an integer part indexes a list of sections (``optimizer.param_groups.0``)."""
    cls: type[BaseModel] = root
    listed: type[BaseModel] | None = None  # the item section of the list just entered
    for part in path:
        if listed is not None and isinstance(part, int):
            cls, listed = listed, None
            continue
        listed = None
        field = cls.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if typing.get_origin(annotation) is not list:
            optional = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(optional) == 1:  # an optional section: ``Section | None``
                annotation = optional[0]
        if typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation) or (None,)
            if isinstance(item, type) and issubclass(item, BaseModel):
                listed = item
                continue
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        cls = annotation
    return None if listed is not None else cls


def _format_error(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(err.get("loc", ()))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if err.get("type") == "extra_forbidden":
        section = section_class(loc[:-1], root)
        valid = sorted(section.model_fields) if section is not None else []
        where = f"of '{'.'.join(map(str, loc[:-1]))}'" if loc[:-1] else "at the top level"
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown key '{dotted}'{did_you_mean}; valid keys {where}: {', '.join(valid)}"
    if err.get("type") == "missing":
        return f"'{dotted}' is required"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if "input" in err and err.get("type") not in ("model_type", "dict_type"):
        return f"{dotted}: {msg} (got {err['input']!r})"
    return f"{dotted}: {msg}"


def validation_error_message(
    exc: ValidationError,
    source: str | None = None,
    *,
    root: type[BaseModel],
    what: str = "configuration",
) -> str:
    """One readable line from a pydantic :class:`ValidationError` (all problems, '; '-joined).

    ``root`` is the validated model whose sections name the valid keys of an unknown one,
    ``what`` names it in the message."""
    parts = [_format_error(e, root) for e in exc.errors()]
    prefix = f"{source}: " if source else ""
    return prefix + f"invalid {what}: " + "; ".join(parts)


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``key = "a.b.c"``, creating missing mappings; a part
    that is a number indexes an existing list (``optimizer.param_groups.0.lr``,
    ``scheduler.milestones.0``).

    Raises:
        ConfigError: an empty key part, a part that is a non-mapping value, or a list index
            that is not one of the list's.
    """
    parts = key.split(".")
    if not key or any(not p.strip() for p in parts):
        raise ConfigError(f"bad configuration key {key!r} (expected e.g. 'optimizer.lr')")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(parts[:i])
                raise ConfigError(
                    f"cannot set {key!r}: '{where}' is a list of {len(node)} "
                    f"entr{'y' if len(node) == 1 else 'ies'}, and {part!r} is not one of its "
                    f"indices (0 ... {len(node) - 1})"
                )
            index: Any = int(part)
        else:
            index = part
            if not last and node.get(part) is None:
                node[part] = {}
        if last:
            node[index] = value
            return
        child = node[index]
        if not isinstance(child, dict | list):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"cannot set {key!r}: '{where}' is a value, not a section")
        node = child


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted ``key: value`` of ``overrides`` applied in order."""
    out = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        set_dotted(out, key, value)
    return out


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file into a mapping (no validation yet)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "configuration file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError(
            p, "is not a text file (not UTF-8); a configuration is a YAML text file"
        ) from None
    except OSError as exc:
        raise InputFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputFileError(p, f"is not valid YAML ({' '.join(str(exc).split())})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputFileError(p, f"a configuration must be a YAML mapping, got {type(raw).__name__}")
    return raw
