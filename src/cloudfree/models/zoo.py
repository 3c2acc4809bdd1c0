"""The model zoo page (``docs/model_zoo.md``), generated from the model registry.

``cloudfree models zoo --overwrite --out docs/model_zoo.md`` writes :func:`model_zoo_markdown`;
a test regenerates it and compares it with the committed file, so the page cannot drift from the
registry. What the registry knows (paper, protocol, bands, contract, official repository,
converter) is read from it; what it cannot know is read from two shipped resources next to this
module:

* ``resources/zoo.yaml`` (hand-kept facts): the parity figures (the largest |ours - official|
  per reference-parity case and output, with the case's tolerance; measured by running the
  parity cases, see the file's header) and, per official repository, where the authors publish
  trained weights (as their READMEs say), the file layout, and what the convert command needs.
* ``resources/zoo_counts.json`` (generated): the multiply-accumulate counts, which are too slow
  to recompute in a test (CA-MTCR takes about 45 s on one core), each stored with the registry
  name, a digest of the model's full constructor arguments and its parameter count.

Decisions:

* **Sections.** Cloud-removal models (:func:`~cloudfree.models.list_models`), then building
  blocks (tag ``block``: loadable from official checkpoints, called as the official modules,
  not cloud-removal models) and pre-training networks (tag ``pretrain``) in their own sections;
  stand-in networks (tag ``standin``) are not published models and are left out.
* **Parameters** are counted live (``sum(p.numel())``) for every model built with its registry
  defaults, on the ``meta`` device (no memory, no initialisation); a builder that cannot run
  on ``meta`` (GLF-CR and CARF read their drop-path rates back with ``.tolist()``) is built on
  the CPU instead. Parameters shared between modules count once, as ``parameters()`` yields
  them once.
* **MACs** at 256 x 256, batch 1, temporal models with T = 3 dates (all real, 10 days apart),
  counted by :func:`cloudfree.models.complexity.count_macs` on the inputs of
  :func:`~cloudfree.models.complexity.spec_batch` (the counter ``cloudfree benchmark`` and
  ``benchmarks/models.py`` use: :class:`torch.utils.flop_counter.FlopCounterMode` total / 2
  under the math attention backend, through :func:`~cloudfree.models.run_model`; matrix
  products, convolutions and attention, not element-wise operations, normalisations or
  resampling). The count runs on ``meta`` tensors, without computing anything; where that
  cannot run (a check that reads a value, ``.item()`` or ``bool(tensor)``: the contract's own
  check of a temporal model's time mask is one, and UnCRtainTS, U-TAE and CA-MTCR test their
  padding masks; an operator without a ``meta`` kernel such as ``bincount``), the model runs
  for real on the CPU on ``spec_batch``'s uniform random inputs (seed 0), with the global RNG
  left as it was. The page says which models were counted on the CPU and why. A model that
  fails both ways is shown as "n/a" with the reason.
* **Count cache.** :func:`model_zoo_markdown` uses a cached count when its kwargs digest and
  parameter count match the model as registered now (an architecture change that moves the
  parameter count invalidates it), else it counts live. ``cloudfree models zoo
  --update-counts`` recounts the missing or stale entries and rewrites the cache; the test
  fails on a stale entry with that command.
* **Weights.** Every listed model with an official repository must have a weights entry in
  ``zoo.yaml`` (a page that would silently say nothing is refused); a model without official
  code is stated as having none published. The convert command is built from the entry
  (``cloudfree models convert NAME FILE OUTDIR [--arg KEY=VALUE]``, OUTDIR ``weights/<name>``
  unless the entry names one); an entry without a file says why there is no conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.models import complexity
from cloudfree.models._registry import create_model, get_model_info, list_models
from cloudfree.models.complexity import spec_batch

__all__ = [
    "ZOO_DATES",
    "ZOO_SIZE",
    "WEIGHTS_STATUS",
    "MacCount",
    "convert_command",
    "count_registered_macs",
    "count_registered_parameters",
    "counts_path",
    "kwargs_digest",
    "load_counts",
    "load_zoo_facts",
    "model_zoo_markdown",
    "stale_counts",
    "update_counts",
    "zoo_models",
]

#: image size (height = width) of the MAC counts
ZOO_SIZE = 256
#: dates of temporal models in the MAC counts
ZOO_DATES = 3
#: days between the dates of the MAC counts' time series
_DATE_STEP = 10.0

_FACTS_FILE = "zoo.yaml"
_COUNTS_FILE = "zoo_counts.json"
_PARITY_KEYS = {"case", "model", "kind", "official", "commit", "fixture", "test", "outputs"}
_OUTPUT_KEYS = {"max_abs_diff", "atol", "rtol"}
_WEIGHTS_KEYS = {
    *("models", "status", "published", "url", "source", "layout"),
    *("file", "outdir", "args", "note"),
}
_WEIGHTS_REQUIRED = {"models", "status", "published", "source", "layout"}
#: weights status -> the page's short statement
WEIGHTS_STATUS = {
    "convertible": "published, convertible",
    "not_convertible": "published, not convertible",
    "none": "none published",
    "unknown": "not stated",
}
#: exceptions that mean "this network cannot run on the meta device" (a value read back, an
#: operator without a meta kernel); anything else (a ConfigError of the contract) propagates
_META_FAILURES = (RuntimeError, NotImplementedError)


# ----------------------------------------------------------------------------- which models


def zoo_models() -> dict[str, list[str]]:
    """The page's sections and their registry names (sorted): ``models`` (cloud removal),
    ``blocks`` and ``pretrain``; stand-ins are left out."""
    blocks = [n for n in list_models(include_blocks=True) if get_model_info(n).is_block]
    pretrain = [n for n in list_models(include_pretrain=True) if get_model_info(n).is_pretrain]
    return {"models": list_models(), "blocks": blocks, "pretrain": pretrain}


def kwargs_digest(name: str, kwargs: Mapping[str, Any] | None = None) -> str:
    """First 16 hex digits of the sha256 of the model's full constructor arguments (signature
    defaults, registry defaults, ``kwargs``) as sorted JSON (tuples as lists, other
    non-JSON values by ``repr``)."""
    full = get_model_info(name).full_kwargs(kwargs)
    text = json.dumps(full, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- counting


def _build(name: str, kwargs: Mapping[str, Any] | None, device: str) -> tuple[nn.Module, str]:
    """The model in eval mode on ``device`` (``meta``: built there when the builder allows it,
    else built on the CPU and moved); returns it and where it was built."""
    if device != "meta":
        return create_model(name, **dict(kwargs or {})).eval(), "cpu"
    try:
        with torch.device("meta"):
            return create_model(name, **dict(kwargs or {})).eval(), "meta"
    except _META_FAILURES:
        return create_model(name, **dict(kwargs or {})).eval().to("meta"), "cpu"


def count_registered_parameters(name: str, kwargs: Mapping[str, Any] | None = None) -> int:
    """Parameters of registered model ``name`` built with ``kwargs`` over its defaults, built on
    the ``meta`` device where the builder allows it (module docstring)."""
    model, _ = _build(name, kwargs, "meta")
    return complexity.count_parameters(model)


@dataclass(frozen=True)
class MacCount:
    """A multiply-accumulate count: ``macs`` (None when it could not be counted), ``method``
    (``meta``, ``cpu`` or ``n/a``) and ``note`` (why the CPU was needed, or why it failed)."""

    macs: int | None
    method: str
    note: str = ""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.split(". ")[0][:160]


def count_registered_macs(
    name: str,
    *,
    size: int = ZOO_SIZE,
    dates: int = ZOO_DATES,
    kwargs: Mapping[str, Any] | None = None,
    device: str = "meta",
) -> MacCount:
    """MACs of one forward of registered model ``name`` built with ``kwargs`` over its
    defaults (batch 1, ``size`` x ``size``, ``dates`` dates for temporal models), counted on
    ``device``: ``meta`` (falling back to a real CPU run, module docstring) or ``cpu``.

    Raises:
        ConfigError: ``device`` other than ``meta``/``cpu``; ``size`` or ``dates`` below 1
            (from :func:`~cloudfree.models.complexity.spec_batch`).
    """
    if device not in ("meta", "cpu"):
        raise ConfigError(f"count_registered_macs: device must be 'meta' or 'cpu', not {device!r}")
    note = ""
    if device == "meta":
        try:
            model, _ = _build(name, kwargs, "meta")
            batch = spec_batch(model, size, dates=dates, device="meta")
            return MacCount(complexity.count_macs(model, batch), "meta")
        except _META_FAILURES as exc:
            note = f"not on meta: {_reason(exc)}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the initialisation (the inputs have their own seed)
        try:
            model, _ = _build(name, kwargs, "cpu")
            batch = spec_batch(model, size, dates=dates, device="cpu", seed=0)
            return MacCount(complexity.count_macs(model, batch), "cpu", note)
        except (RuntimeError, NotImplementedError, MemoryError) as exc:
            return MacCount(None, "n/a", f"{note}; on CPU: {_reason(exc)}".lstrip("; "))


# ---------------------------------------------------------------------------- count cache


def counts_path() -> Path:
    """The shipped count cache (``cloudfree/models/resources/zoo_counts.json``)."""
    return Path(str(resources.files("cloudfree.models").joinpath(f"resources/{_COUNTS_FILE}")))


def load_counts(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The count cache: ``{"size", "dates", "torch", "models": {name: {"kwargs_digest",
    "params", "macs", "method", "note"}}}`` (an empty cache when the file is absent)."""
    p = Path(path) if path is not None else counts_path()
    if not p.is_file():
        return {"size": ZOO_SIZE, "dates": ZOO_DATES, "torch": None, "models": {}}
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ConfigError(f"{p}: not a model zoo count cache (no 'models' mapping)")
    return data


def _cached(counts: Mapping[str, Any], name: str, params: int) -> MacCount | None:
    if counts.get("size") != ZOO_SIZE or counts.get("dates") != ZOO_DATES:
        return None
    entry = counts["models"].get(name)
    if (
        not isinstance(entry, dict)
        or entry.get("kwargs_digest") != kwargs_digest(name)
        or entry.get("params") != params
    ):
        return None
    return MacCount(entry.get("macs"), str(entry.get("method")), str(entry.get("note", "")))


def stale_counts(
    counts: Mapping[str, Any] | None = None, params: Mapping[str, int] | None = None
) -> list[str]:
    """Names of the page's models (cloud-removal and pre-training networks) whose cached count
    is missing or stale (another kwargs digest or parameter count, another size or T)."""
    counts = load_counts() if counts is None else counts
    names = [*zoo_models()["models"], *zoo_models()["pretrain"]]
    params = params or {}
    return [
        n
        for n in names
        if _cached(counts, n, params[n] if n in params else count_registered_parameters(n)) is None
    ]


def update_counts(
    path: str | os.PathLike[str] | None = None, *, recount_all: bool = False
) -> list[str]:
    """Recount the missing or stale entries (all with ``recount_all``) and rewrite the cache
    at ``path`` (default: the shipped file), dropping entries of unregistered models; returns
    the names recounted."""
    from cloudfree.io.atomic import atomic_write_json

    p = Path(path) if path is not None else counts_path()
    old = load_counts(p)
    names = [*zoo_models()["models"], *zoo_models()["pretrain"]]
    entries: dict[str, Any] = {}
    recounted = []
    for name in names:
        params = count_registered_parameters(name)
        hit = None if recount_all else _cached(old, name, params)
        if hit is None:
            hit = count_registered_macs(name)
            recounted.append(name)
        entries[name] = {
            "kwargs_digest": kwargs_digest(name),
            "params": params,
            "macs": hit.macs,
            "method": hit.method,
            "note": hit.note,
        }
    torch_version = old.get("torch") if not recounted else torch.__version__.split("+")[0]
    payload = {"size": ZOO_SIZE, "dates": ZOO_DATES, "torch": torch_version, "models": entries}
    atomic_write_json(p, payload, indent=1)
    return recounted


# ------------------------------------------------------------------------------ the facts


def _check_keys(where: str, entry: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    missing = sorted(required - set(entry))
    if unknown or missing:
        raise ConfigError(
            f"{where}: unknown keys {unknown}, missing keys {missing} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def load_zoo_facts(text: str | None = None) -> dict[str, Any]:
    """The parity figures and weights facts (``resources/zoo.yaml``, or ``text``), checked:
    known keys, registered model names, one weights entry per model, a convert file only for
    models with a converter.

    Raises:
        ConfigError: naming the entry and what is wrong with it.
    """
    if text is None:
        text = resources.files("cloudfree.models").joinpath(f"resources/{_FACTS_FILE}").read_text()
    data = yaml.safe_load(text) or {}
    _check_keys(_FACTS_FILE, data, {"parity", "weights"}, {"parity", "weights"})
    registered = set(list_models(include_blocks=True, include_pretrain=True))
    for k, case in enumerate(data["parity"]):
        _check_keys(f"{_FACTS_FILE} parity[{k}]", case, _PARITY_KEYS, _PARITY_KEYS)
        where = f"{_FACTS_FILE} parity case {case['case']!r}"
        if case["model"] not in registered:
            raise ConfigError(f"{where}: model {case['model']!r} is not registered")
        if not case["outputs"]:
            raise ConfigError(f"{where}: no outputs")
        for output, figure in case["outputs"].items():
            _check_keys(f"{where} output {output!r}", figure, _OUTPUT_KEYS, _OUTPUT_KEYS)
            if not 0 <= float(figure["max_abs_diff"]) <= float(figure["atol"]):
                raise ConfigError(
                    f"{where} output {output!r}: max_abs_diff {figure['max_abs_diff']} is "
                    f"outside [0, atol {figure['atol']}] (the parity test would fail)"
                )
    seen: dict[str, int] = {}
    for k, entry in enumerate(data["weights"]):
        _check_keys(f"{_FACTS_FILE} weights[{k}]", entry, _WEIGHTS_KEYS, _WEIGHTS_REQUIRED)
        where = f"{_FACTS_FILE} weights[{k}]"
        if entry["status"] not in WEIGHTS_STATUS:
            raise ConfigError(
                f"{where}: status {entry['status']!r} is not one of {', '.join(WEIGHTS_STATUS)}"
            )
        if entry["status"] == "convertible" and not entry.get("file"):
            raise ConfigError(f"{where}: status convertible needs the file to convert")
        for name in entry["models"]:
            if name not in registered:
                raise ConfigError(f"{where}: model {name!r} is not registered")
            if name in seen:
                raise ConfigError(f"{where}: model {name!r} is already in weights[{seen[name]}]")
            seen[name] = k
            if entry.get("file") and get_model_info(name).official_converter is None:
                raise ConfigError(
                    f"{where}: {name!r} has no official converter, so no convert file can be "
                    "given (set file: null and say why in note)"
                )
    return data


def convert_command(name: str, entry: Mapping[str, Any]) -> str | None:
    """The ``cloudfree models convert`` command of a weights entry for ``name`` (None when
    the entry names no file)."""
    if not entry.get("file"):
        return None
    outdir = entry.get("outdir") or f"weights/{name}"
    args = "".join(f" --arg {k}={v}" for k, v in (entry.get("args") or {}).items())
    return f"cloudfree models convert {name} {entry['file']} {outdir}{args}"


# ------------------------------------------------------------------------------- the page


def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}" if x < 1e-3 else f"{x:.3g}"


def _gmacs(count: MacCount) -> str:
    return "n/a" if count.macs is None else f"{count.macs / 1e9:,.2f}"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _parity_cell(cases: list[Mapping[str, Any]]) -> str:
    if not cases:
        return "-"
    parts = []
    for case in cases:
        output, fig = max(case["outputs"].items(), key=lambda kv: kv[1]["max_abs_diff"])
        parts.append(f"`{case['case']}` {_sci(fig['max_abs_diff'])} (atol {_sci(fig['atol'])})")
    return "; ".join(parts)


def _weights_cell(name: str, entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "none (no official code)"
    return f"{WEIGHTS_STATUS[entry['status']]} ([see below](#weights-{name}))"


def _counts_for(
    names: Iterable[str], counts: Mapping[str, Any], params: Mapping[str, int]
) -> dict[str, MacCount]:
    return {n: _cached(counts, n, params[n]) or count_registered_macs(n) for n in names}


def _weights_section(facts: Mapping[str, Any], listed: Sequence[str]) -> list[str]:
    lines = ["## Official weights and conversion", ""]
    lines += [
        "Where the authors publish trained weights (as their repositories' READMEs say), the "
        "file layout, and the one command that turns a file into a cloudfree weights "
        "directory (`safetensors` + `config.json`, loadable with `cloudfree predict --weights` "
        "and `cloudfree.models.load_model`). Checkpoints are read with `weights_only=True` "
        "and `map_location` (no pickle code runs; GPU-saved files load on a CPU). Models "
        "without official code ("
        + ", ".join(f"`{n}`" for n in listed if get_model_info(n).official_repo is None)
        + ") have no published weights: train them with their recipe (`cloudfree train "
        "--recipe NAME`).",
        "",
    ]
    for entry in facts["weights"]:
        names = [n for n in entry["models"] if n in listed]
        if not names:
            continue
        anchors = "".join(f'<a id="weights-{n}"></a>' for n in names)
        lines.append(f"### {', '.join(names)} {anchors}")
        lines.append("")
        published = " ".join(str(entry["published"]).split())
        if entry.get("url"):
            published += f" ([link]({entry['url']}))"
        if entry["status"] != "none":
            published += f" ({WEIGHTS_STATUS[entry['status']]})"
        lines.append(f"- **Published:** {published}")
        lines.append(f"- **Source:** {' '.join(str(entry['source']).split())}")
        lines.append(f"- **Layout:** {' '.join(str(entry['layout']).split())}")
        commands = [c for c in (convert_command(n, entry) for n in names) if c]
        if commands:
            label = "- **Convert:** "
            if entry["status"] != "convertible":
                label = "- **Convert** (a checkpoint in this layout, e.g. trained with the "
                label += "official code): "
            lines.append(label + "; ".join(f"`{c}`" for c in commands))
        else:
            lines.append("- **Convert:** not possible (see the note)")
        if entry.get("note"):
            lines.append(f"- **Note:** {' '.join(str(entry['note']).split())}")
        lines.append("")
    return lines


def model_zoo_markdown(
    counts: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None
) -> str:
    """The model zoo page (Markdown) from the registry, the facts (``zoo.yaml``) and the count
    cache (``zoo_counts.json``; stale entries are counted live). See the module docstring.

    Raises:
        ConfigError: a listed model with an official repository but no weights entry, or
            invalid facts (:func:`load_zoo_facts`).
    """
    counts = load_counts() if counts is None else counts
    facts = load_zoo_facts() if facts is None else facts
    sections = zoo_models()
    listed = [n for names in sections.values() for n in names]
    weights = {n: e for e in facts["weights"] for n in e["models"]}
    missing = [n for n in listed if get_model_info(n).official_repo and n not in weights]
    if missing:
        raise ConfigError(
            f"{_FACTS_FILE}: no weights entry for {', '.join(missing)} (models with an official "
            "repository); add one saying where the authors publish weights, or 'none'"
        )
    params = {n: count_registered_parameters(n) for n in listed}
    parity: dict[str, list[Mapping[str, Any]]] = {}
    for case in facts["parity"]:
        parity.setdefault(case["model"], []).append(case)
    macs = _counts_for([*sections["models"], *sections["pretrain"]], counts, params)
    torch_version = counts.get("torch") or torch.__version__.split("+")[0]

    def official(name: str) -> str:
        repo = get_model_info(name).official_repo
        return "none (paper only)" if repo is None else f"[{repo}](https://github.com/{repo})"

    out = [
        "# Model zoo",
        "",
        "<!-- Generated from the model registry by `cloudfree models zoo --out "
        "docs/model_zoo.md` (cloudfree/models/zoo.py); do not edit by hand. -->",
        "",
        "Every registered cloud-removal model: its paper, the normalisation protocol its "
        "inputs use (`cloudfree.normalization`), its optical bands, its contract "
        "(`ModelSpec.describe()`), its size and cost, whether an official implementation "
        "exists and how closely ours matches it, and where trained weights are published.",
        "",
        "- **Parameters**: `sum(p.numel() for p in model.parameters())` of the model built "
        "with its registry defaults.",
        f"- **GMACs**: multiply-accumulates (10^9) of one forward pass, batch 1, "
        f"{ZOO_SIZE} x {ZOO_SIZE} px, temporal models with T = {ZOO_DATES} dates: "
        "`torch.utils.flop_counter.FlopCounterMode` total / 2 under the math attention "
        "backend (convolutions, matrix products and attention; element-wise operations and "
        f"normalisations are not counted), torch {torch_version}. Counted on the `meta` "
        "device without running the network, except the models listed under "
        "[How the counts were made](#how-the-counts-were-made).",
        "- **Parity**: the largest |ours - official| over every output element of the "
        "reference-parity case (official code run on the same weights and inputs; float32 on "
        "CPU), next to the case's tolerance; details under [Parity](#parity).",
        "",
        "## Cloud-removal models",
        "",
    ]
    rows = []
    for n in sections["models"]:
        info = get_model_info(n)
        rows.append(
            (
                f"`{n}`",
                info.paper,
                f"`{info.protocol}`",
                info.bands,
                info.resolve_spec().describe(),
                f"{params[n]:,}",
                _gmacs(macs[n]),
                official(n),
                _parity_cell(parity.get(n, [])),
                _weights_cell(n, weights.get(n)),
            )
        )
    out += _table(
        (
            "model",
            "paper",
            "protocol",
            "bands",
            "contract",
            "parameters",
            f"GMACs ({ZOO_SIZE}², T={ZOO_DATES})",
            "official code",
            "parity max \\|Δ\\|",
            "weights",
        ),
        rows,
    )
    out += ["", *_weights_section(facts, listed)]

    out += ["## Parity", ""]
    out += [
        "Each case is a fixture of `<shared>/parity/<case>/` (weights in the official layout, "
        "inputs, and the outputs of the official code; see its README): our model loads the "
        "checkpoint with `load_official_checkpoint` and runs on the same inputs. The "
        "tolerance is about 20 times the official code's own float32-vs-float64 difference "
        "(rtol 1e-4). The fixture column says how the fixture's network differs from the "
        "full-size default.",
        "",
    ]
    prow = []
    for case in facts["parity"]:
        if case["model"] not in listed:
            continue
        for output, fig in case["outputs"].items():
            prow.append(
                (
                    f"`{case['case']}`",
                    f"`{case['model']}`",
                    f"{case['official']} @ {case['commit']}",
                    case["fixture"],
                    output,
                    _sci(float(fig["max_abs_diff"])),
                    f"{_sci(float(fig['atol']))} / {_sci(float(fig['rtol']))}",
                    case["test"],
                )
            )
    out += _table(
        ("case", "model", "official code", "fixture", "output", "max \\|Δ\\|", "atol / rtol",
         "tests"),
        prow,
    )  # fmt: skip
    no_case = [n for n in listed if get_model_info(n).official_repo and n not in parity]
    if no_case:
        out += [
            "",
            "Models with official code but no parity case of their own: "
            + ", ".join(f"`{n}`" for n in no_case)
            + " (variants and baselines whose shared layers the cases above cover, or whose "
            "official class has no fixture).",
        ]

    out += ["", "## Building blocks", ""]
    out += [
        "Official modules registered so that official checkpoints load into them and parity "
        "can be checked (tag `block`); they are called as the official modules, not as "
        "cloud-removal models, so they have no image-in, image-out cost at a stated size. "
        "Parameters are those of the registry defaults.",
        "",
    ]
    out += _table(
        ("block", "paper", "description", "parameters", "official code", "parity max \\|Δ\\|",
         "weights"),
        (
            (f"`{n}`", get_model_info(n).paper, get_model_info(n).description, f"{params[n]:,}",
             official(n), _parity_cell(parity.get(n, [])), _weights_cell(n, weights.get(n)))
            for n in sections["blocks"]
        ),
    )  # fmt: skip

    out += ["", "## Pre-training networks", ""]
    out += [
        "Networks trained before a cloud-removal model to initialise part of it (tag "
        "`pretrain`); their output is not an optical image.",
        "",
    ]
    out += _table(
        ("network", "paper", "contract", "parameters", f"GMACs ({ZOO_SIZE}²)", "recipe"),
        (
            (f"`{n}`", get_model_info(n).paper, get_model_info(n).resolve_spec().describe(),
             f"{params[n]:,}", _gmacs(macs[n]), f"`{get_model_info(n).default_recipe}`")
            for n in sections["pretrain"]
        ),
    )  # fmt: skip

    out += ["", "## How the counts were made", ""]
    special = {n: c for n, c in macs.items() if c.method != "meta"}
    if special:
        out += [
            "These networks cannot run on the `meta` device (the first sentence of the error is "
            "given); they were run for real on the CPU on uniform random inputs (seed 0):",
            "",
        ]
        for n, c in special.items():
            done = "counted on the CPU" if c.method == "cpu" else "not counted"
            out.append(f"- `{n}`: {done} ({c.note or 'no reason recorded'})")
    else:
        out += ["Every network was counted on the `meta` device."]
    out += [
        "",
        "Stand-in networks of the model contract (tag `standin`) are not published models "
        "and are not listed.",
        "",
    ]
    return "\n".join(out)
