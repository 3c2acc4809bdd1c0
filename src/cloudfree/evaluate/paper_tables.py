"""The published result tables of the source papers, and our measured results laid out in them.

The tables ship as package data, ``cloudfree/evaluate/resources/paper_tables.yaml`` (its header
comment lists every transcription decision). :func:`list_paper_tables` names them,
:func:`load_paper_table` returns one validated :class:`PaperTable`, and
:func:`layout_paper_table` (Markdown) / :func:`paper_table_csv` (CSV) put our measured values
next to the published ones, row by row and column by column, with a footnote that states the
protocol differences and our protocol.

Conventions and decisions:

* **Values are stored as printed** (the table's *display scale*). Each metric has a ``scale``:
  a value in our units (PSNR dB, SSIM unitless, SAM degrees, MAE / RMSE reflectance in [0, 1],
  ``params`` and ``macs`` as plain counts) times ``scale`` is printed like the paper (paper 003
  prints SSIM and MAE x100: scale 100; paper 002 params in M: 1e-6, MACs in G: 1e-9).
  :meth:`PaperTable.published` returns a printed value, :meth:`PaperTable.published_in_our_units`
  the same divided by ``scale``.
* **Conditions.** A row or a column (never both) may be measured under a *condition*: a season
  (paper 000: ``spring`` in-domain, ``summer`` / ``fall`` / ``winter`` out-of-domain) or a
  dataset (paper 002: ``sen12mscr_ts``, ``allclear``). Our value of such a cell is read from the
  key ``"<condition>/<metric>"`` of the model's measured mapping (e.g. ``"summer/psnr"``); with
  ``condition="spring"`` the plain keys (``"psnr"``) stand for spring as well (a run on one
  season or dataset). A cell without a condition reads the plain key.
* **Which measured model fills a row.** A published row names our registry model or baseline
  (``model``; null for a network we do not implement). Every measured entry whose registry name
  equals it fills the row (``registry_names`` maps measured keys to registry names; a key absent
  from it is its own registry name). The first such entry shares the published line; further
  ones get a line each below it (published cells blank). Measured entries that match no row are
  appended as extra rows, in the order of ``measured``. Missing values print as ``-``; a
  measured NaN prints ``nan``.
* **Our metric protocol's units.** When our protocol is a registered metric protocol whose SAM
  is in radians or whose MAE / RMSE carry an ``error_scale`` (``dsen2cr``), our values are
  brought back to degrees and [0, 1] before the display scale, and the footnote says so.
* **Footnote.** Always: where the published values come from, the paper's protocol, the
  table's shipped protocol differences, the metric protocol the paper's numbers follow most
  closely next to ours (when they differ), our protocol (dataset, split, metric protocol, bands,
  size, extra notes) and the display scaling applied to our values. A layout with measured
  values but without ``ours`` is refused (every report must state its protocol).
* **CSV form** (:func:`paper_table_csv`) is long: one line per row and column cell (``table,
  row, method, model, measured_key, condition, metric, unit, scale, higher_is_better,
  published, ours, source, note``), ours at the display scale with full precision, so a program
  can re-lay it; the protocol footnote is the Markdown's.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloudfree.errors import ConfigError

__all__ = [
    "CSV_COLUMNS",
    "PAPER_TABLES_RESOURCE",
    "LaidOutRow",
    "OurProtocol",
    "PaperColumn",
    "PaperInfo",
    "PaperMetric",
    "PaperRow",
    "PaperTable",
    "laid_out_rows",
    "layout_paper_table",
    "list_paper_tables",
    "load_paper_table",
    "paper_table_csv",
    "paper_table_footnote",
    "parse_paper_tables",
]

#: the shipped file, relative to the ``cloudfree.evaluate`` package
PAPER_TABLES_RESOURCE = "resources/paper_tables.yaml"
#: columns of :func:`paper_table_csv`
CSV_COLUMNS: tuple[str, ...] = (
    "table",
    "row",
    "method",
    "model",
    "measured_key",
    "condition",
    "metric",
    "unit",
    "scale",
    "higher_is_better",
    "published",
    "ours",
    "source",
    "note",
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBERED_RE = re.compile(r"^([0-9]+|[IVXLC]+)$")


# ------------------------------------------------------------------------------ the schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperInfo(_Strict):
    """The paper a table comes from (``id``: the prefix of its text in ``../shared/papers``)."""

    id: str = Field(min_length=1)
    authors: str | None = None
    title: str = Field(min_length=1)
    venue: str | None = None
    year: int | None = None

    def citation(self) -> str:
        """``"Xu et al. (ISPRS Journal ..., 2022)"``-style short reference."""
        who = f"{self.authors.split(',')[0].strip()} et al." if self.authors else self.title
        where = ", ".join(str(x) for x in (self.venue, self.year) if x)
        return f"paper {self.id}, {who}" + (f" ({where})" if where else "")


class PaperMetric(_Strict):
    """A metric of a table: its key in our results, label, unit and display scale."""

    key: str = Field(min_length=1)
    label: str = Field(min_length=1)
    unit: str | None = None
    #: printed value = our value (our units) x scale
    scale: float = Field(gt=0)
    higher_is_better: bool
    #: decimals the paper prints (ours are printed with the same)
    decimals: int = Field(ge=0, le=8)


class PaperColumn(_Strict):
    """One value column: a metric, optionally under a condition (a season, a dataset)."""

    metric: str
    condition: str | None = None


class PaperRow(_Strict):
    """One published row: the method as printed, our registry / baseline name (or None), the
    condition the whole row is measured under (or None), its values in column order and the
    paper / table / row it comes from."""

    method: str = Field(min_length=1)
    model: str | None
    condition: str | None = None
    values: tuple[float | None, ...]
    source: str = Field(min_length=1)
    note: str | None = None


class PaperTable(_Strict):
    """One published table, validated (see the module docstring for the conventions)."""

    name: str
    paper: PaperInfo
    table: str = Field(min_length=1)
    caption: str
    dataset: str
    protocol: str
    metric_protocol: str | None = None
    protocol_notes: tuple[str, ...] = ()
    metrics: tuple[PaperMetric, ...] = Field(min_length=1)
    conditions: dict[str, str] = Field(default_factory=dict)
    columns: tuple[PaperColumn, ...] = ()
    rows: tuple[PaperRow, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_columns(cls, data: Any) -> Any:
        """Without ``columns``: one column per metric, in the metrics' order, no condition."""
        if isinstance(data, Mapping) and not data.get("columns") and data.get("metrics"):
            data = dict(data)
            data["columns"] = [
                {"metric": m.get("key") if isinstance(m, Mapping) else getattr(m, "key", None)}
                for m in data["metrics"]
            ]
        return data

    @model_validator(mode="after")
    def _check(self) -> PaperTable:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} must be lower_snake_case")
        keys = [m.key for m in self.metrics]
        if len(set(keys)) != len(keys):
            raise ValueError(f"metric keys repeat: {keys}")
        for key in self.conditions:
            if not _NAME_RE.match(key):
                raise ValueError(f"condition {key!r} must be lower_snake_case")
        seen: set[tuple[str | None, str]] = set()
        for col in self.columns:
            if col.metric not in keys:
                raise ValueError(f"column metric {col.metric!r} is not one of the metrics {keys}")
            if col.condition is not None and col.condition not in self.conditions:
                raise ValueError(
                    f"column condition {col.condition!r} is not one of the conditions "
                    f"{sorted(self.conditions)}"
                )
            if (col.condition, col.metric) in seen:
                raise ValueError(f"column {col.condition}/{col.metric} appears twice")
            seen.add((col.condition, col.metric))
        prefix = f"paper {self.paper.id}, {self.table_ref}, row "
        for i, row in enumerate(self.rows):
            where = f"row {i + 1} ({row.method!r})"
            if len(row.values) != len(self.columns):
                raise ValueError(
                    f"{where} has {len(row.values)} values for {len(self.columns)} columns "
                    f"({', '.join(self.column_key(c) for c in self.columns)})"
                )
            if row.condition is not None:
                if row.condition not in self.conditions:
                    raise ValueError(
                        f"{where}: condition {row.condition!r} is not one of the conditions "
                        f"{sorted(self.conditions)}"
                    )
                if any(c.condition is not None for c in self.columns):
                    raise ValueError(f"{where}: a row condition in a table with column conditions")
            if not row.source.startswith(prefix):
                raise ValueError(f"{where}: source {row.source!r} must start with {prefix!r}")
            if any(v is not None and not math.isfinite(v) for v in row.values):
                raise ValueError(f"{where}: published values must be finite or null")
        return self

    # ------------------------------------------------------------------ conveniences
    @property
    def table_ref(self) -> str:
        """``"Table II"`` for a numbered table, else the ``table`` text (``"text (Sec. IV)"``)."""
        return f"Table {self.table}" if _NUMBERED_RE.match(self.table) else self.table

    def metric(self, key: str) -> PaperMetric:
        """The metric with that key (ConfigError otherwise)."""
        for m in self.metrics:
            if m.key == key:
                return m
        raise ConfigError(f"table {self.name!r} has no metric {key!r}")

    @staticmethod
    def column_key(column: PaperColumn, row_condition: str | None = None) -> str:
        """The measured key of a cell: ``"<condition>/<metric>"`` or the plain metric."""
        cond = column.condition or row_condition
        return f"{cond}/{column.metric}" if cond else column.metric

    def row(self, method: str) -> PaperRow:
        """The published row printed as ``method`` (ConfigError otherwise)."""
        for r in self.rows:
            if r.method == method:
                return r
        raise ConfigError(
            f"table {self.name!r} has no row {method!r}; rows: {[r.method for r in self.rows]}"
        )

    def published(self, method: str, metric: str, condition: str | None = None) -> float | None:
        """The printed value of row ``method``, column ``metric`` (under ``condition``, the
        column's or the row's)."""
        r = self.row(method)
        for col, value in zip(self.columns, r.values, strict=True):
            if col.metric == metric and (col.condition or r.condition) == condition:
                return value
        raise ConfigError(
            f"table {self.name!r} row {method!r} has no column {metric!r} under "
            f"condition {condition!r}"
        )

    def published_in_our_units(
        self, method: str, metric: str, condition: str | None = None
    ) -> float | None:
        """:meth:`published` divided by the metric's display scale (e.g. 003's SSIM / 100)."""
        value = self.published(method, metric, condition)
        return None if value is None else value / self.metric(metric).scale


# ------------------------------------------------------------------------------ loading
def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_paper_tables(raw: Any, source: str = "paper tables") -> dict[str, PaperTable]:
    """Validate a parsed paper-tables document (``{"schema_version": 1, "tables": [...]}``;
    a top-level ``anchors`` mapping holds YAML anchors and is ignored). Returns the tables by
    name, in file order.

    Raises:
        ConfigError: a wrong document shape, an unknown key, a row whose values do not match
            the columns, an unknown metric or condition, a bad source, a repeated name, or a
            ``metric_protocol`` that is not a registered metric protocol.
    """
    from cloudfree.metrics.protocols import METRIC_PROTOCOLS

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'tables', got {type(raw).__name__}")
    unknown = set(raw) - {"schema_version", "anchors", "tables"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if raw.get("schema_version") != 1:
        raise ConfigError(f"{source}: schema_version must be 1, got {raw.get('schema_version')!r}")
    entries = raw.get("tables")
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ConfigError(f"{source}: 'tables' must be a non-empty list")
    tables: dict[str, PaperTable] = {}
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, Mapping) else f"#{i + 1}"
        try:
            table = PaperTable.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(
                f"{source}: table {label!r} is invalid: {_format_validation(exc)}"
            ) from None
        if table.name in tables:
            raise ConfigError(f"{source}: table name {table.name!r} appears twice")
        if table.metric_protocol is not None and table.metric_protocol not in METRIC_PROTOCOLS:
            raise ConfigError(
                f"{source}: table {table.name!r}: unknown metric_protocol "
                f"{table.metric_protocol!r}; valid: {sorted(METRIC_PROTOCOLS)}"
            )
        tables[table.name] = table
    return tables


@functools.cache
def _shipped_tables() -> dict[str, PaperTable]:
    text = resources.files("cloudfree.evaluate").joinpath(PAPER_TABLES_RESOURCE).read_text("utf-8")
    return parse_paper_tables(
        yaml.safe_load(text), source=f"cloudfree/evaluate/{PAPER_TABLES_RESOURCE}"
    )


def list_paper_tables() -> list[str]:
    """Names of the shipped paper tables, sorted (``ca_mtcr_table1``, ..., ``sgbaf_table3``)."""
    return sorted(_shipped_tables())


def load_paper_table(name: str) -> PaperTable:
    """The shipped table ``name`` (validated; the objects are frozen and shared).

    Raises:
        ConfigError: an unknown name (the message suggests the closest and lists all).
    """
    tables = _shipped_tables()
    if name in tables:
        return tables[name]
    valid = sorted(tables)
    hint = difflib.get_close_matches(str(name), valid, n=1)
    did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ConfigError(f"unknown paper table {name!r}{did_you_mean}; valid: {', '.join(valid)}")


def _resolve(table: str | PaperTable) -> PaperTable:
    return table if isinstance(table, PaperTable) else load_paper_table(table)


# ------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class OurProtocol:
    """How our numbers were measured (stated under every layout).

    ``protocol`` is the metric protocol name (``glf_cr``, ``uncrtaints``, ...); ``bands`` the
    metric band set (``rgb``, ``all``); ``size`` the side in pixels the metrics saw; ``notes``
    anything else worth a line (sampler, seasons, number of runs).
    """

    dataset: str
    split: str | None = None
    protocol: str | None = None
    bands: str | None = None
    size: int | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_value(cls, value: OurProtocol | Mapping[str, Any]) -> OurProtocol:
        """An :class:`OurProtocol` from itself or a mapping with its field names."""
        if isinstance(value, OurProtocol):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"ours must be an OurProtocol or a mapping, got {type(value).__name__}"
            )
        allowed = {"dataset", "split", "protocol", "bands", "size", "notes"}
        unknown = set(value) - allowed
        if unknown or "dataset" not in value:
            raise ConfigError(
                f"ours needs 'dataset' and takes only {sorted(allowed)}; got {sorted(value)}"
            )
        kwargs = dict(value)
        if "notes" in kwargs:
            notes = kwargs["notes"]
            kwargs["notes"] = (notes,) if isinstance(notes, str) else tuple(notes)
        return cls(**kwargs)

    def describe(self) -> str:
        """One line: ``dataset X, split test, metric protocol glf_cr, bands rgb, 128 px``."""
        parts = [f"dataset {self.dataset}"]
        if self.split:
            parts.append(f"split {self.split}")
        parts.append(f"metric protocol {self.protocol or 'not stated'}")
        if self.bands:
            parts.append(f"bands {self.bands}")
        if self.size:
            parts.append(f"{self.size}x{self.size} px")
        return ", ".join(parts + list(self.notes))


@dataclass(frozen=True)
class LaidOutRow:
    """One line of a layout: the published row (None for an extra measured row), the measured
    key filling it (None if none), and per column the printed published value and ours at the
    display scale (None: missing)."""

    method: str
    model: str | None
    measured_key: str | None
    published: tuple[float | None, ...]
    ours: tuple[float | None, ...]
    row_index: int | None  # 1-based index of the published row
    source: str
    note: str | None = None
    continuation: bool = False  # a further measured entry of the row above
    condition: str | None = None
    extra: bool = field(default=False)


def _unit_factors(protocol: str | None) -> dict[str, float]:
    """Factors that bring our values from ``protocol``'s units to degrees / [0, 1]."""
    if protocol is None:
        return {}
    from cloudfree.metrics.protocols import METRIC_PROTOCOLS

    p = METRIC_PROTOCOLS.get(protocol)
    if p is None:
        return {}
    factors: dict[str, float] = {}
    if p.sam_units == "radians":
        factors["sam"] = 180.0 / math.pi
    if p.error_scale != 1.0:
        factors["mae"] = factors["rmse"] = 1.0 / p.error_scale
    return factors


def _check_condition(table: PaperTable, condition: str | None) -> None:
    if condition is not None and condition not in table.conditions:
        valid = sorted(table.conditions)
        raise ConfigError(
            f"table {table.name!r} has no condition {condition!r}; "
            + (f"valid: {valid}" if valid else "it has no conditions (pass condition=None)")
        )


def _our_value(
    table: PaperTable,
    values: Mapping[str, Any],
    column: PaperColumn,
    row_condition: str | None,
    condition: str | None,
    factors: Mapping[str, float],
) -> float | None:
    key = table.column_key(column, row_condition)
    raw = values.get(key)
    cond = column.condition or row_condition
    if raw is None and cond is not None and cond == condition:
        raw = values.get(column.metric)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"measured value {key!r} must be a number, got {raw!r}") from None
    return _to_display(value * factors.get(column.metric, 1.0), table.metric(column.metric).scale)


def _to_display(value: float, scale: float) -> float:
    """``value x scale``, as a division for scales below 1 (7.4e6 x 1e-6 would give
    7.3999999999999995; 7.4e6 / 1e6 gives 7.4)."""
    return value * scale if scale >= 1.0 else value / (1.0 / scale)


def laid_out_rows(
    table: str | PaperTable,
    measured: Mapping[str, Mapping[str, Any]],
    registry_names: Mapping[str, str] | None = None,
    *,
    condition: str | None = None,
    protocol: str | None = None,
) -> list[LaidOutRow]:
    """The lines of a layout (what :func:`layout_paper_table` and :func:`paper_table_csv`
    print): published rows in order, each followed by its further measured entries, then the
    measured entries no row names. ``protocol`` is our metric protocol (for the unit
    conversion of the module docstring)."""
    t = _resolve(table)
    _check_condition(t, condition)
    names = dict(registry_names or {})
    unknown = set(names) - set(measured)
    if unknown:
        raise ConfigError(f"registry_names has keys that are not measured: {sorted(unknown)}")
    factors = _unit_factors(protocol)
    reg = {key: names.get(key, key) for key in measured}
    row_models = {r.model for r in t.rows if r.model is not None}
    lines: list[LaidOutRow] = []
    empty: tuple[None, ...] = (None,) * len(t.columns)
    for i, row in enumerate(t.rows, start=1):
        keys = [k for k in measured if row.model is not None and reg[k] == row.model] or [None]
        for j, key in enumerate(keys):
            ours = (
                tuple(
                    _our_value(t, measured[key], c, row.condition, condition, factors)
                    for c in t.columns
                )
                if key is not None
                else empty
            )
            lines.append(
                LaidOutRow(
                    method=row.method,
                    model=row.model,
                    measured_key=key,
                    published=row.values if j == 0 else empty,
                    ours=ours,
                    row_index=i,
                    source=row.source,
                    note=row.note if j == 0 else None,
                    continuation=j > 0,
                    condition=row.condition,
                )
            )
    for key in measured:
        if reg[key] in row_models:
            continue
        lines.append(
            LaidOutRow(
                method=reg[key],
                model=reg[key],
                measured_key=key,
                published=empty,
                ours=tuple(
                    _our_value(t, measured[key], c, None, condition, factors) for c in t.columns
                ),
                row_index=None,
                source="measured (not in the paper)",
                extra=True,
            )
        )
    return lines


def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{decimals}f}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _column_label(table: PaperTable, column: PaperColumn) -> str:
    m = table.metric(column.metric)
    unit = f" [{m.unit}]" if m.unit else ""
    arrow = " ↑" if m.higher_is_better else " ↓"
    cond = f"{table.conditions[column.condition]} " if column.condition else ""
    return f"{cond}{m.label}{unit}{arrow}"


def paper_table_footnote(
    table: str | PaperTable,
    ours: OurProtocol | Mapping[str, Any] | None,
    *,
    condition: str | None = None,
) -> list[str]:
    """The footnote lines of a layout (see the module docstring)."""
    t = _resolve(table)
    lines = [
        f"Published values: {t.paper.citation()}, {t.table_ref}, as printed "
        f"(each row's source in cloudfree/evaluate/{PAPER_TABLES_RESOURCE}).",
        f"Paper's data: {t.dataset}. Paper's protocol: {t.protocol}.",
    ]
    lines += [f"Protocol difference: {note}" for note in t.protocol_notes]
    if ours is None:
        lines.append("Ours: nothing measured.")
        return lines
    o = OurProtocol.from_value(ours)
    if t.metric_protocol and o.protocol != t.metric_protocol:
        lines.append(
            f"Protocol difference: the paper's numbers follow our metric protocol "
            f"{t.metric_protocol!r} most closely; ours used {o.protocol or 'an unstated one'!r}."
        )
    lines.append(f"Ours: {o.describe()}.")
    if condition is not None:
        lines.append(
            f"Ours without a condition in their keys are read as {t.conditions[condition]!r}."
        )
    scaled = [f"{m.label} x{m.scale:g}" for m in t.metrics if m.scale != 1.0]
    if scaled:
        lines.append("Ours are scaled to the table's display units: " + ", ".join(scaled) + ".")
    factors = _unit_factors(o.protocol)
    if factors:
        what = []
        if "sam" in factors:
            what.append("SAM from radians to degrees")
        if "mae" in factors:
            what.append("MAE / RMSE back to [0, 1] reflectance")
        lines.append(f"Ours converted from the {o.protocol!r} units: " + ", ".join(what) + ".")
    return lines


def _prepare(
    table: str | PaperTable,
    measured: Mapping[str, Mapping[str, Any]],
    ours: OurProtocol | Mapping[str, Any] | None,
) -> tuple[PaperTable, OurProtocol | None]:
    t = _resolve(table)
    if measured and ours is None:
        raise ConfigError(
            f"laying out measured results in {t.name!r} needs 'ours' (dataset, split, metric "
            "protocol, bands, size): every table must state how it was measured"
        )
    return t, (OurProtocol.from_value(ours) if ours is not None else None)


def layout_paper_table(
    table: str | PaperTable,
    measured: Mapping[str, Mapping[str, Any]],
    registry_names: Mapping[str, str] | None = None,
    *,
    ours: OurProtocol | Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> str:
    """The Markdown layout of ``table`` with ``measured`` next to the published values.

    Args:
        table: a shipped table name (or a :class:`PaperTable`).
        measured: ``{model_key: {metric_key: value}}`` in our units (metric keys as in the
            table: ``psnr``, ``"summer/psnr"``, ``params``; values from the metric protocol of
            ``ours``).
        registry_names: ``{model_key: registry_name}`` where a key is not its registry name.
        ours: our protocol (:class:`OurProtocol` or a mapping of its fields); required when
            ``measured`` is not empty.
        condition: the condition plain metric keys stand for (a season, a dataset); it must
            be one of the table's ``conditions`` (ConfigError otherwise, also for a table
            without conditions).

    Returns:
        A title line, the table (Method, Ours, then per column "paper" and "ours"), and the
        footnote, separated by blank lines.
    """
    t, o = _prepare(table, measured, ours)
    lines = laid_out_rows(
        t, measured, registry_names, condition=condition, protocol=o.protocol if o else None
    )
    header = ["Method", "Ours"]
    for c in t.columns:
        label = _md(_column_label(t, c))
        header += [f"{label} paper", f"{label} ours"]
    out = [
        f"**{t.name}**: {_md(t.paper.citation())}, {t.table_ref}. {_md(t.caption)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (2 * len(t.columns))) + "|",
    ]
    for line in lines:
        if line.extra:
            method = f"{line.method} (not in the paper)"
        elif line.continuation:
            method = "↳"
        else:
            method = line.method
        cells = [_md(method), _md(line.measured_key or "-")]
        for c, pub, our in zip(t.columns, line.published, line.ours, strict=True):
            decimals = t.metric(c.metric).decimals
            cells.append("" if line.continuation or line.extra else _fmt(pub, decimals))
            cells.append(_fmt(our, decimals))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out += [f"- {_md(x)}" for x in paper_table_footnote(t, o, condition=condition)]
    return "\n".join(out) + "\n"


def paper_table_csv(
    table: str | PaperTable,
    measured: Mapping[str, Mapping[str, Any]],
    registry_names: Mapping[str, str] | None = None,
    *,
    ours: OurProtocol | Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> str:
    """The long CSV form of :func:`layout_paper_table` (columns :data:`CSV_COLUMNS`; ours at
    the display scale with full precision, published as printed, missing cells empty)."""
    t, o = _prepare(table, measured, ours)
    lines = laid_out_rows(
        t, measured, registry_names, condition=condition, protocol=o.protocol if o else None
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        for c, pub, our in zip(t.columns, line.published, line.ours, strict=True):
            m = t.metric(c.metric)
            writer.writerow(
                [
                    t.name,
                    "" if line.row_index is None else line.row_index,
                    line.method,
                    line.model or "",
                    line.measured_key or "",
                    c.condition or line.condition or "",
                    m.key,
                    m.unit or "",
                    repr(m.scale),
                    str(m.higher_is_better).lower(),
                    "" if pub is None else f"{pub:.{m.decimals}f}",
                    "" if our is None else repr(our),
                    line.source,
                    line.note or "",
                ]
            )
    return buf.getvalue()
