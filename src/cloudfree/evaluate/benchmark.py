"""``cloudfree benchmark``: several models and baselines on one dataset, under several metric
protocols, in one pass, with bootstrap intervals, strata and a complexity table.

A benchmark is a YAML mapping (every section rejects unknown keys, the error names the bad key
and lists the valid ones, as the training configuration does):

``models``      a list of ``{key, name, weights, kwargs, bands}``: ``weights`` is a training
                run directory, a pretrained weights directory (``config.json`` +
                ``model.safetensors``) or an official checkpoint file (then ``name``, the
                registry name, is required, and ``kwargs`` / ``bands`` may describe it);
                ``key`` names the model's rows (default: its registry name)
``baselines``   registered baselines (default ``identity``; on a time series also
                ``least_cloudy``, ``mosaic``, ``most_recent_clear``)
``dataset``     ``name`` (registered dataset, default ``sen12mscr``), ``root``, ``split``
                (default ``test``, ``all`` with a season), ``options`` (constructor options:
                ``sampler``, ``seasons``, ``resize``, ...), ``season``, ``sample``, ``seed``,
                ``limit`` (as ``cloudfree evaluate --season / --sample / --seed / --limit``:
                :func:`cloudfree.evaluate.build_evaluation_data`; ``seed`` is the draw's seed,
                a sibling of ``options`` because ``sen12mscr_ts`` has a ``seed`` option of its
                own)
``protocols``   metric protocols (:data:`cloudfree.metrics.METRIC_PROTOCOLS`), one or several
``metric_bands`` score only these bands (``rgb`` or names), or null for all
``strata``      ``cover_bins`` (named bin sets, :data:`cloudfree.data.sampling.COVER_BIN_SETS`:
                ``glf_cr`` 0-20-...-100 %, ``mmcanet`` 0-10-20-40-60-80-100 %), ``season``
                (bool), ``aux_change`` (bool), ``regions`` (subset of overall, inside_clouds,
                outside_clouds)
``batch_size``, ``device``, ``num_workers``
``shard_size`` images per work shard (64): the unit of resuming and of sharing across ranks
``bootstrap``   ``samples`` (1000), ``seed`` (0), ``confidence`` (0.95)
``complexity``  ``size`` (256), ``dates`` (3), ``repeats`` (3), ``warmup`` (1), or null to skip
``report``      ``panels`` (4: sample panels from low to high cover, every model side by
                side; 0: none), or null for no ``report.html``
``out``         output directory (the CLI's ``--out`` wins)

Decisions:

* **One pass.** The dataset is read once (raw samples) and every model gets each batch in its
  own normalisation and bands; all protocols are computed on the same forward passes
  (:func:`cloudfree.evaluate.evaluate_protocols`). Conventions (regions, centre crops, metric
  bands, mono-temporal models on time series) are those of
  :func:`cloudfree.evaluate.evaluate_models`.
* **Resumable and distributed.** The images are cut into shards of ``shard_size``; each
  (entry, shard) cell is stored under ``<out>/cells`` as soon as it is scored
  (:mod:`cloudfree.evaluate.benchmark_cells`: fingerprints, exactness). A run finds the
  cells already stored and scores only the others (a shard is read once for all its missing
  entries), so a killed benchmark resumes, and adding a model scores only that model. Under
  ``torchrun`` (or a SLURM step; :mod:`cloudfree.distributed`) rank ``r`` scores shards
  ``r, r + world, ...`` on its own device (``cuda`` -> ``cuda:<local rank>``), all ranks meet at
  one barrier, and rank 0 reads every cell and writes the outputs; the others return. Every
  shard is scored with the same batches in any world size, so the result equals a
  single-process run byte for byte. ``<out>`` must be one shared folder for all ranks.
* **Strata** are families of image subsets: ``all``; ``cover_<set>`` per cover bin set (the
  sample's ``cloud_cover``, bins ``[lo, hi)`` except the last, which includes 100 %; every bin
  is listed, an empty one with ``n`` 0); ``season`` from the sample id (a SEN12MS-CR id starts
  with its season folder, ``ROIs1868_summer_...``; ids without one, e.g. SEN12MS-CR-TS, have no
  season and the family is left out when no id has one); ``aux_change`` (``changed`` /
  ``unchanged``: the time series' ``aux_changed`` flag; left out on data without it). Every
  stratum is reported in every configured region.
* **Means and intervals.** Per cell (protocol, model, region, stratum, metric) the mean is the
  nan-mean over the stratum's images (an image whose region is empty is left out; ``n`` counts
  the images that entered). The 95 % interval is a percentile bootstrap over images:
  ``samples`` resamples with replacement of the stratum's images, drawn by
  ``numpy.random.default_rng([seed, crc32(stratum)])``, the nan-mean of each resample, and the
  2.5 / 97.5 percentiles of those means. The same resamples serve every model, protocol,
  region and metric of a stratum (paired intervals), so the intervals depend only on the
  config and the data, never on which other models are in the run.
* **Ranking.** Table rows are ranked by mean PSNR, highest first; models with NaN PSNR last;
  ties keep the config order (models, then baselines).
* **Complexity** (:mod:`cloudfree.models.complexity`): parameters, MACs at ``size`` (math
  attention backend), median forward latency of ``repeats`` passes at batch 1 on the benchmark
  device with the thread count in force, peak extra memory of those passes (CUDA allocator, or
  the process's peak RSS on Linux CPU), throughput ``(size * 10 m)^2 / latency`` in km^2/s.
  Measured in this process after the evaluation. It is a separate table and file, so the
  metric tables stay identical from run to run.
* **Reproducibility.** The same config on the same machine and thread count gives the same
  ``per_image.csv`` and ``tables.md`` / ``tables.csv`` byte for byte (no timestamp is
  written; timings appear only in the complexity table and ``complexity.csv``).
* **The page** ``report.html`` (:func:`cloudfree.report.benchmark_page.render_benchmark_html`:
  what was benchmarked, the ranked table of the first protocol, every protocol's tables, the
  per-stratum plots, PSNR against MACs, the panels, the complexity table; self-contained).
  Its panels are ``panels`` samples at evenly spaced ranks of the cloud-cover order
  (:func:`cloudfree.report.select_by_cover`), every model run on them once more by
  :func:`cloudfree.evaluate.predict_samples` (the code path of ``cloudfree report --panels``
  and the demo), captioned with the first protocol's inside-cloud PSNR / MAE. The panel PNGs
  are rendered into a temporary folder and embedded, so the page is one file and the
  benchmark writes no image beside it. Baselines have no panel column (the cloudy input is
  the identity's); models taking different optical bands cannot share panels
  (:func:`cloudfree.evaluate.predict_samples` refuses them): the page then says so and has
  none.
* **Outputs** (all written atomically, after every measurement): ``per_image.csv``,
  ``summary.json``, ``tables.md``, ``tables.csv``, ``complexity.csv`` (when measured),
  ``report.html`` (unless ``report`` is null). An existing output file is never replaced
  without ``overwrite``; with it, a stale ``complexity.csv`` (``report.html``) of an earlier
  run is removed when this run measures none (writes none).
"""

from __future__ import annotations

import difflib
import io
import math
import os
import platform
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cloudfree.configfile import ConfigSection, apply_overrides, validation_error_message
from cloudfree.errors import CloudfreeError, ConfigError, DatasetError, InputFileError
from cloudfree.evaluate.model_eval import REGIONS, EvaluationResult
from cloudfree.metrics import METRIC_NAMES, METRIC_PROTOCOLS, get_metric_protocol
from cloudfree.metrics.protocols import metric_labels

__all__ = [
    "BENCHMARK_FILES",
    "BenchmarkConfig",
    "BenchmarkResult",
    "BootstrapConfig",
    "ComplexityConfig",
    "DatasetSection",
    "ModelEntry",
    "ReportConfig",
    "StrataConfig",
    "bootstrap_means",
    "build_benchmark_config",
    "load_benchmark_config",
    "run_benchmark",
    "sample_strata",
    "season_of",
]

PER_IMAGE_CSV = "per_image.csv"
SUMMARY_JSON = "summary.json"
TABLES_MD = "tables.md"
TABLES_CSV = "tables.csv"
COMPLEXITY_CSV = "complexity.csv"
REPORT_HTML = "report.html"
#: Every file a benchmark may write into its output directory.
BENCHMARK_FILES: tuple[str, ...] = (
    PER_IMAGE_CSV,
    SUMMARY_JSON,
    TABLES_MD,
    TABLES_CSV,
    COMPLEXITY_CSV,
    REPORT_HTML,
)

BOOTSTRAP_TEXT = (
    "percentile bootstrap over images: per stratum, `samples` resamples with replacement drawn "
    "by numpy.random.default_rng([seed, crc32(stratum)]) and shared by every model, protocol, "
    "region and metric; the nan-mean of each resample; the (1 - confidence) / 2 and "
    "(1 + confidence) / 2 percentiles of those means"
)

if TYPE_CHECKING:
    from cloudfree.distributed import LaunchEnv
    from cloudfree.evaluate.benchmark_cells import CellStore

Region = Literal["overall", "inside_clouds", "outside_clouds"]


# ---------------------------------------------------------------------------------- config
class ModelEntry(ConfigSection):
    """One model: a run or weights directory, or an official checkpoint with its name."""

    key: str | None = None
    name: str | None = None
    weights: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    bands: str | list[str] | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


class DatasetSection(ConfigSection):
    """The dataset (see the module docstring)."""

    name: str = "sen12mscr"
    root: str
    split: Literal["train", "val", "test", "all"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    season: str | None = None
    sample: PositiveInt | None = None
    seed: NonNegativeInt | None = None
    limit: PositiveInt | None = None


def _known_once(values: list[str], known: list[str], what: str) -> list[str]:
    """``values`` when each is one of ``known`` and none is listed twice (pydantic validators)."""
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {known}")
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice")
    return values


class StrataConfig(ConfigSection):
    """Which strata are reported (see the module docstring)."""

    cover_bins: list[str] = Field(default_factory=lambda: ["glf_cr", "mmcanet"])
    season: bool = True
    aux_change: bool = True
    regions: list[Region] = Field(default_factory=lambda: list(REGIONS))

    @field_validator("cover_bins")
    @classmethod
    def _bins(cls, v: list[str]) -> list[str]:
        from cloudfree.data.sampling import COVER_BIN_SETS

        return _known_once(v, list(COVER_BIN_SETS), "cover bin set")

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one region")
        if len(set(v)) != len(v):
            raise ValueError("a region is listed twice")
        return [r for r in REGIONS if r in v]  # report order


class BootstrapConfig(ConfigSection):
    """Bootstrap intervals: resamples, seed, confidence level."""

    samples: PositiveInt = 1000
    seed: NonNegativeInt = 0
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)


class ComplexityConfig(ConfigSection):
    """The complexity table: input size, dates of temporal models, timed passes."""

    size: PositiveInt = 256
    dates: PositiveInt = 3
    repeats: PositiveInt = 3
    warmup: NonNegativeInt = 1


class ReportConfig(ConfigSection):
    """The page ``report.html``: how many sample panels it shows (0: none)."""

    panels: NonNegativeInt = 4


class BenchmarkConfig(ConfigSection):
    """A whole benchmark (see the module docstring)."""

    models: list[ModelEntry] = Field(min_length=1)
    baselines: list[str] | None = None
    dataset: DatasetSection
    protocols: list[str] = Field(default_factory=lambda: ["uncrtaints"], min_length=1)
    metric_bands: str | list[str] | None = None
    strata: StrataConfig = Field(default_factory=StrataConfig)
    batch_size: PositiveInt = 4
    shard_size: PositiveInt = 64
    device: str = "cpu"
    num_workers: NonNegativeInt = 0
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    complexity: ComplexityConfig | None = Field(default_factory=ComplexityConfig)
    report: ReportConfig | None = Field(default_factory=ReportConfig)
    out: str | None = None

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: list[str]) -> list[str]:
        return _known_once(v, sorted(METRIC_PROTOCOLS), "protocol")

    @model_validator(mode="after")
    def _keys(self) -> BenchmarkConfig:
        keys = [m.key for m in self.models if m.key is not None]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"models: key {', '.join(map(repr, twice))} given twice")
        return self


def build_benchmark_config(
    raw: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    source: str | None = None,
) -> BenchmarkConfig:
    """Validate ``raw`` (after the dotted ``overrides``, then ``out``) into a config.

    Raises:
        ConfigError: one line naming every unknown key (with the valid keys of its section)
            and bad value.
    """
    merged = apply_overrides(raw, overrides or {})
    if out is not None:
        merged["out"] = str(out)
    try:
        return BenchmarkConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            validation_error_message(
                exc, source, root=BenchmarkConfig, what="benchmark configuration"
            )
        ) from None


def load_benchmark_config(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
) -> BenchmarkConfig:
    """Read and validate the benchmark YAML file at ``path`` (:func:`build_benchmark_config`).

    Raises:
        InputFileError: a missing, unreadable or non-YAML file.
        ConfigError: an invalid configuration.
    """
    from cloudfree.configfile import load_yaml_config

    raw = load_yaml_config(path)
    return build_benchmark_config(raw, overrides, out=out, source=str(path))


# --------------------------------------------------------------------------------- strata
def season_of(sample_id: str) -> str:
    """The SEN12MS-CR season (``spring``, ``summer``, ``fall``, ``winter``) whose folder name
    starts ``sample_id`` (``ROIs1868_summer_132_p65`` -> ``summer``); ``""`` for an id
    without one."""
    from cloudfree.data.splits import SEN12MSCR_SEASONS

    for folder in SEN12MSCR_SEASONS:
        if sample_id == folder or sample_id.startswith(folder + "_"):
            return folder.split("_", 1)[1]
    return ""


def _season_order() -> list[str]:
    from cloudfree.data.splits import SEN12MSCR_SEASONS

    return [s.split("_", 1)[1] for s in SEN12MSCR_SEASONS]


def sample_strata(
    ids: Sequence[str],
    covers: Sequence[float],
    aux_changed: Sequence[float] | None,
    strata: StrataConfig,
) -> tuple[dict[str, list[str]], dict[str, dict[str, list[int]]]]:
    """Per-image stratum labels and the members of every stratum.

    Returns:
        ``(labels, members)``: ``labels[family]`` is one label per image (``""``: in no
        stratum of that family), for the families ``cover_<set>``, ``season`` and
        ``aux_change`` (always present, so ``per_image.csv`` keeps its columns);
        ``members[family][label]`` the image indices of each reported stratum, starting with
        ``{"all": {"all": [...]}}``, each family's labels in order (cover bins low to high,
        seasons spring to winter, changed before unchanged). A season or aux-change family no
        image belongs to is not reported.
    """
    from cloudfree.data.sampling import assign_cover_bins, cover_bin_labels, get_cover_bins

    n = len(ids)
    labels: dict[str, list[str]] = {}
    members: dict[str, dict[str, list[int]]] = {"all": {"all": list(range(n))}}
    for set_name in strata.cover_bins:
        edges = get_cover_bins(set_name)
        names = cover_bin_labels(edges)
        bins = assign_cover_bins(np.asarray(covers, dtype=np.float64), edges)
        family = f"cover_{set_name}"
        labels[family] = [names[b] if b >= 0 else "" for b in bins]
        members[family] = {
            name: [i for i in range(n) if bins[i] == b] for b, name in enumerate(names)
        }
    seasons = [season_of(str(i)) for i in ids]
    labels["season"] = seasons
    if strata.season and any(seasons):
        members["season"] = {
            s: [i for i in range(n) if seasons[i] == s] for s in _season_order() if s in seasons
        }
    flags = list(aux_changed) if aux_changed is not None else [math.nan] * n
    aux = ["" if math.isnan(f) else ("changed" if f >= 0.5 else "unchanged") for f in flags]
    labels["aux_change"] = aux
    if strata.aux_change and any(aux):
        members["aux_change"] = {
            a: [i for i in range(n) if aux[i] == a] for a in ("changed", "unchanged")
        }
    return labels, members


# ------------------------------------------------------------------------------ bootstrap
def _resample_counts(
    n: int, samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resample indices ``[samples, n]`` and how often each image is drawn in each resample."""
    idx = rng.integers(0, n, size=(samples, n))
    flat = idx + np.arange(samples)[:, None] * n
    counts = np.bincount(flat.ravel(), minlength=samples * n).reshape(samples, n)
    return idx, counts.astype(np.float64)


def bootstrap_means(
    values: np.ndarray,
    *,
    samples: int,
    seed: int,
    stratum: str,
    confidence: float = 0.95,
) -> dict[str, np.ndarray]:
    """Nan-means and percentile bootstrap intervals of the columns of ``values``.

    Args:
        values: ``[n_images, K]`` (or ``[n_images]``): one column per cell, NaN where an
            image has no value (left out of that column's means).
        samples: number of resamples; seed, stratum: the resamples are drawn by
            ``numpy.random.default_rng([seed, crc32(stratum)])`` and shared by every column.
        confidence: level of the interval (0.95: the 2.5 and 97.5 percentiles).

    Returns:
        ``{"mean", "lo", "hi", "n"}``, each ``[K]`` (or a scalar array for 1-D input): the
        nan-mean over images, the interval, the number of non-NaN values. A column without a
        value has NaN mean and interval and ``n`` 0. Infinite values (PSNR of a perfect
        prediction under ``uncrtaints``) propagate into the mean and the resample means.
    """
    v = np.asarray(values, dtype=np.float64)
    one = v.ndim == 1
    if one:
        v = v[:, None]
    if v.ndim != 2:
        raise ConfigError(f"values must be [n_images, K], got shape {v.shape}")
    n, k = v.shape
    present = ~np.isnan(v)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(present, v, 0.0).sum(axis=0) / count, np.nan)
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    if n > 0:
        rng = np.random.default_rng([int(seed), zlib.crc32(stratum.encode("utf-8"))])
        idx, counts = _resample_counts(n, int(samples), rng)
        finite = np.isfinite(np.where(present, v, 0.0)).all(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = counts @ np.where(present, v, 0.0)[:, finite]
            kept = counts @ present[:, finite].astype(np.float64)
            means = np.full((int(samples), k), np.nan)
            means[:, finite] = np.where(kept > 0, sums / np.where(kept > 0, kept, 1.0), np.nan)
            for j in np.flatnonzero(~finite):  # infinities: the resample means directly
                drawn = v[:, j][idx]
                ok = ~np.isnan(drawn)
                total = np.where(ok, drawn, 0.0).sum(axis=1)
                m = ok.sum(axis=1)
                means[:, j] = np.where(m > 0, total / np.maximum(m, 1), np.nan)
        tail = (1.0 - confidence) / 2.0 * 100.0
        for j in range(k):
            col = means[:, j]
            col = col[~np.isnan(col)]
            if count[j] > 0 and len(col):
                with np.errstate(invalid="ignore"):  # inf - inf when a mean is infinite
                    lo[j], hi[j] = np.percentile(col, [tail, 100.0 - tail])
    out = {"mean": mean, "lo": lo, "hi": hi, "n": count.astype(np.int64)}
    return {key: val[0] for key, val in out.items()} if one else out


# ---------------------------------------------------------------------------------- running
@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` measured and wrote.

    Attributes:
        out_dir: the output directory.
        files: name -> path of every file written.
        summary: the content of ``summary.json`` (before NaN became null).
        per_image: the rows of ``per_image.csv``.
        evaluations: protocol -> the :class:`EvaluationResult` of the one pass.
        complexity: model key -> its complexity figures (empty when skipped).
        cells_scored, cells_reused: (entry, shard) cells this process scored, and found
            already stored by an earlier run (:mod:`cloudfree.evaluate.benchmark_cells`).
        rank: this process's rank; a rank other than 0 of a distributed run scores its
            shards only and returns nothing else (rank 0 writes the outputs).
    """

    out_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any]
    per_image: list[dict[str, Any]]
    evaluations: dict[str, EvaluationResult]
    complexity: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells_scored: int = 0
    cells_reused: int = 0
    rank: int = 0


PER_IMAGE_COLUMNS_HEAD = ("id", "cloud_cover")
PER_IMAGE_COLUMNS_TAIL = ("model", "protocol", "region", "metric", "value")


def _load_models(config: BenchmarkConfig) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """key -> loaded network (on the CPU), and key -> what the summary records of it."""
    from cloudfree.models import get_model_info, list_models
    from cloudfree.models.loading import load_model

    nets: dict[str, Any] = {}
    meta: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(config.models):
        label = f"models.{i}" + (f" ({entry.key})" if entry.key else "")
        if entry.name is not None:
            try:
                get_model_info(entry.name)
            except ConfigError:
                hint = difflib.get_close_matches(entry.name, list_models(), n=1)
                maybe = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(
                    f"{label}: unknown model {entry.name!r}{maybe}; see cloudfree models list"
                ) from None
        weights = Path(entry.weights).expanduser()
        if not weights.exists():
            raise ConfigError(f"{label}: weights {weights} not found")
        if weights.is_file() and entry.name is None:
            raise ConfigError(
                f"{label}: {weights} is a checkpoint file; give the model's registry name "
                "(name: ...)"
            )
        try:
            loaded = load_model(
                weights,
                name=entry.name,
                kwargs=entry.kwargs or None,
                bands=entry.bands,
                device="cpu",
            )
            loaded.require_cloud_removal()
        except CloudfreeError as exc:  # name the model (one line)
            raise ConfigError(f"{label}: {exc}") from None
        key = entry.key or loaded.name
        if key in nets:
            raise ConfigError(
                f"{label}: a second model is called {key!r}; give each model a key (key: ...)"
            )
        nets[key] = loaded.model
        meta[key] = {
            "name": loaded.name,
            "weights": str(weights.resolve()),
            "weights_loaded": str(Path(loaded.weights_path).resolve()),
            "weights_sha256": loaded.weights_sha256,
            "source": loaded.source,
        }
    return nets, meta


def _versions() -> dict[str, str]:
    from cloudfree import __version__

    return {
        "cloudfree": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _check_outputs(out: Path, config: BenchmarkConfig, overwrite: bool) -> None:
    from cloudfree.io.outputs import check_output

    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file; the benchmark output must be a directory")
    inputs = [Path(m.weights).expanduser() for m in config.models]
    weight_files = [p for p in inputs if p.is_file()]
    for name in BENCHMARK_FILES:
        check_output(out / name, inputs=weight_files, overwrite=overwrite)


def run_benchmark(
    config: BenchmarkConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BenchmarkResult:
    """Run the benchmark ``config`` and write its outputs (see the module docstring).

    ``out_dir`` wins over ``config.out`` (default ``benchmark``). The outputs are checked
    before anything is loaded (an existing file without ``overwrite`` is an error) and
    written after every measurement.

    Raises:
        ConfigError: an unknown model, protocol or option; missing weights; a checkpoint
            without a name; an unavailable device.
        DatasetError: a missing dataset root or an empty split.
        InputFileError: an existing output without ``overwrite``, unreadable weights.
    """
    from cloudfree.devices import resolve_device
    from cloudfree.distributed import barrier, launch_env, shard_ranges
    from cloudfree.evaluate.benchmark_cells import CELLS_DIR, CellStore
    from cloudfree.evaluate.model_eval import (
        build_evaluation_data,
        default_baselines,
        results_from_scores,
    )

    out = Path(out_dir if out_dir is not None else (config.out or "benchmark"))
    env = launch_env()
    _check_outputs(out, config, overwrite)
    dev = resolve_device(config.device, local_rank=env.local_rank if env.distributed else None)
    root = Path(config.dataset.root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset.root {root} does not exist")
    nets, model_meta = _load_models(config)
    ds = config.dataset
    data = build_evaluation_data(
        ds.name,
        root,
        split=ds.split,
        dataset_options=ds.options,
        season=ds.season,
        sample=ds.sample,
        seed=ds.seed,
        limit=ds.limit,
    )
    baselines = (
        tuple(config.baselines) if config.baselines is not None else default_baselines(ds.name)
    )
    entry_names = (*nets, *baselines)
    store = CellStore(
        out / CELLS_DIR,
        _fingerprints(config, nets, model_meta, len(data.dataset), baselines, dev),
        shard_ranges(len(data.dataset), config.shard_size),
    )
    counts = _score_shards(
        store, nets, data.dataset, config, baselines, entry_names, dev, env, progress
    )
    if env.distributed:
        barrier(env)  # every rank's cells are written
        if not env.is_main:
            return BenchmarkResult(out, {}, {}, [], {}, cells_scored=counts[0],
                                   cells_reused=counts[1], rank=env.rank)  # fmt: skip
    scores = store.gather(entry_names)
    results = results_from_scores(
        nets,
        data.dataset,
        scores,
        protocols=config.protocols,
        baselines=baselines,
        metric_bands=config.metric_bands,
    )
    first = results[config.protocols[0]]
    rows0 = first.rows
    ids = [str(r["id"]) for r in rows0]
    covers = [float(r["cloud_cover"]) for r in rows0]
    aux = [float(r["aux_changed"]) for r in rows0] if rows0 and "aux_changed" in rows0[0] else None
    labels, members = sample_strata(ids, covers, aux, config.strata)
    entries = (*first.model_names, *first.baseline_names)
    regions = list(config.strata.regions)

    per_image = _per_image_rows(results, config.protocols, entries, regions, labels)
    cells = _cells(results, config, entries, regions, members)

    complexity: dict[str, dict[str, Any]] = {}
    if config.complexity is not None:
        from cloudfree.models.complexity import measure_complexity

        c = config.complexity
        for key, net in nets.items():
            figures = measure_complexity(
                net, size=c.size, dates=c.dates, repeats=c.repeats, warmup=c.warmup, device=dev
            )
            complexity[key] = {"model": key, "name": model_meta[key]["name"], **figures.as_dict()}

    summary = _summary(config, out, data, results, entries, members, cells, model_meta, complexity)
    page = _report_page(config, summary, complexity, nets, data.dataset, covers, dev)
    files = _write(out, config, per_image, summary, results, entries, members, cells, complexity,
                   labels, overwrite, page)  # fmt: skip
    return BenchmarkResult(out, files, summary, per_image, results, complexity,
                           cells_scored=counts[0], cells_reused=counts[1])  # fmt: skip


def _fingerprints(
    config: BenchmarkConfig,
    nets: Mapping[str, Any],
    meta: Mapping[str, Mapping[str, Any]],
    n_images: int,
    baselines: Sequence[str],
    device: torch.device,
) -> dict[str, str]:
    """entry -> the fingerprint of its cells (:mod:`cloudfree.evaluate.benchmark_cells`)."""
    from cloudfree import __version__
    from cloudfree.evaluate.benchmark_cells import fingerprint

    dataset = config.dataset.model_dump(mode="json")
    dataset["root"] = str(Path(config.dataset.root).expanduser().resolve())
    common = {
        "dataset": dataset,
        "n_images": n_images,
        "batch_size": config.batch_size,
        "shard_size": config.shard_size,
        "protocols": list(config.protocols),
        "metric_bands": config.metric_bands,
        "device": device.type,
        "cloudfree": __version__,
        "torch": torch.__version__,
    }

    def identity(key: str) -> dict[str, Any]:
        cfg = getattr(nets[key], "cloudfree_config", None) or {}
        return {"config": cfg, "weights_sha256": meta[key]["weights_sha256"]}

    out = {k: fingerprint({**common, "model": identity(k)}) for k in nets}
    first = next(iter(nets))
    reference = {k: v for k, v in identity(first)["config"].items() if k != "kwargs"}
    reference["name"] = meta[first]["name"]
    for b in baselines:
        out[b] = fingerprint({**common, "baseline": b, "reference": reference})
    return out


def _score_shards(
    store: CellStore,
    nets: Mapping[str, Any],
    dataset: Any,
    config: BenchmarkConfig,
    baselines: Sequence[str],
    entries: Sequence[str],
    device: torch.device,
    env: LaunchEnv,
    progress: bool,
) -> tuple[int, int]:
    """Score this rank's shards, skipping the (entry, shard) cells already stored; returns
    (cells scored, cells reused)."""
    from torch.utils.data import Subset
    from tqdm.auto import tqdm

    from cloudfree.distributed import rank_shards
    from cloudfree.evaluate.model_eval import score_images

    mine = rank_shards(len(store.shards), env)
    scored = reused = 0
    total = sum(store.shards[i][1] - store.shards[i][0] for i in mine)
    desc = f"benchmark (rank {env.rank})" if env.distributed else "benchmark"
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for i in mine:
            start, stop = store.shards[i]
            todo = store.missing(i, entries)
            reused += len(entries) - len(todo)
            if todo:
                scores = score_images(
                    dict(nets),
                    Subset(dataset, range(start, stop)),
                    protocols=config.protocols,
                    baselines=baselines,
                    entries=todo,
                    batch_size=config.batch_size,
                    device=device,
                    num_workers=config.num_workers,
                    progress=False,
                    metric_bands=config.metric_bands,
                )
                store.write(i, scores, rank=env.rank)
                scored += len(todo)
            bar.update(stop - start)
    return scored, reused


def _report_page(
    config: BenchmarkConfig,
    summary: Mapping[str, Any],
    complexity: Mapping[str, Mapping[str, Any]],
    nets: Mapping[str, Any],
    dataset: Any,
    covers: Sequence[float],
    device: torch.device,
) -> str | None:
    """The text of ``report.html`` (None when ``report`` is null); its panels are rendered
    into a temporary folder and embedded (module docstring)."""
    import tempfile

    from cloudfree.evaluate.model_eval import predict_samples
    from cloudfree.report.benchmark_page import render_benchmark_html
    from cloudfree.report.panels import render_sample_panels, select_by_cover

    if config.report is None:
        return None
    indices = select_by_cover(covers, config.report.panels)
    if not indices or not nets:
        return render_benchmark_html(summary, complexity)
    try:
        predicted = predict_samples(
            dict(nets), dataset, indices, metric_protocol=config.protocols[0], device=device
        )
    except ConfigError as exc:  # e.g. models with different bands: no shared panels
        note = {"columns": [], "samples": [], "unavailable": str(exc)}
        return render_benchmark_html(summary, complexity, panels=note, panels_dir=".")
    with tempfile.TemporaryDirectory(prefix="cloudfree_panels_") as tmp:
        manifest = render_sample_panels(
            predicted.samples,
            predicted.predictions,
            tmp,
            band_names=predicted.band_names,
            metric_protocol=predicted.metric_protocol,
            metrics_crop=predicted.metrics_crop,
        )
        return render_benchmark_html(summary, complexity, panels=manifest, panels_dir=tmp)


def _per_image_rows(
    results: Mapping[str, EvaluationResult],
    protocols: Sequence[str],
    entries: Sequence[str],
    regions: Sequence[str],
    labels: Mapping[str, list[str]],
) -> list[dict[str, Any]]:
    """Long rows: per image, protocol, entry, region and metric (in that order)."""
    rows: list[dict[str, Any]] = []
    first = results[protocols[0]].rows
    for i, base in enumerate(first):
        head = {"id": str(base["id"]), "cloud_cover": float(base["cloud_cover"])}
        head.update({family: values[i] for family, values in labels.items()})
        for p in protocols:
            row = results[p].rows[i]
            for e in entries:
                for region in regions:
                    for m in METRIC_NAMES:
                        rows.append(
                            {
                                **head,
                                "model": e,
                                "protocol": p,
                                "region": region,
                                "metric": m,
                                "value": float(row[f"{e}_{region}_{m}"]),
                            }  # fmt: skip
                        )
    return rows


def _cells(
    results: Mapping[str, EvaluationResult],
    config: BenchmarkConfig,
    entries: Sequence[str],
    regions: Sequence[str],
    members: Mapping[str, Mapping[str, list[int]]],
) -> dict[tuple[str, str, str, str, str], dict[str, dict[str, float]]]:
    """(protocol, entry, region, family, label) -> metric -> {mean, lo, hi, n}."""
    b = config.bootstrap
    columns = [
        (p, e, r, m)
        for p in config.protocols
        for e in entries
        for r in regions
        for m in METRIC_NAMES
    ]
    matrix = np.array(
        [
            [float(results[p].rows[i][f"{e}_{r}_{m}"]) for (p, e, r, m) in columns]
            for i in range(len(results[config.protocols[0]].rows))
        ],  # fmt: skip
        dtype=np.float64,
    ).reshape(-1, len(columns))
    cells: dict[tuple[str, str, str, str, str], dict[str, dict[str, float]]] = {}
    for family, strata in members.items():
        for label, idx in strata.items():
            stats = bootstrap_means(
                matrix[idx],
                samples=b.samples,
                seed=b.seed,
                stratum=f"{family}={label}",
                confidence=b.confidence,
            )
            for j, (p, e, r, m) in enumerate(columns):
                cell = cells.setdefault((p, e, r, family, label), {})
                cell[m] = {
                    "mean": float(stats["mean"][j]),
                    "lo": float(stats["lo"][j]),
                    "hi": float(stats["hi"][j]),
                    "n": int(stats["n"][j]),
                }
    return cells


def _summary(
    config: BenchmarkConfig,
    out: Path,
    data: Any,
    results: Mapping[str, EvaluationResult],
    entries: Sequence[str],
    members: Mapping[str, Mapping[str, list[int]]],
    cells: Mapping[tuple[str, str, str, str, str], Any],
    model_meta: Mapping[str, Any],
    complexity: Mapping[str, Any],
) -> dict[str, Any]:
    from cloudfree.io.atomic import json_compatible

    first = results[config.protocols[0]]
    protocols: dict[str, Any] = {}
    for p in config.protocols:
        proto = get_metric_protocol(p)
        res = results[p]
        by_entry: dict[str, Any] = {}
        for e in entries:
            by_entry[e] = {
                r: {
                    family: {label: cells[(p, e, r, family, label)] for label in strata}
                    for family, strata in members.items()
                }
                for r in config.strata.regions
            }
            unc = res.summary["models"].get(e, {}).get("uncertainty")
            if unc is not None:
                by_entry[e]["uncertainty"] = unc
        protocols[p] = {
            "description": proto.description,
            "center_crop": proto.center_crop,
            "sam_units": proto.sam_units,
            "error_scale": proto.error_scale,
            "models": by_entry,
            "evaluation": {k: v for k, v in res.summary.items() if k != "models"},
        }
    return json_compatible(
        {
            "config": config.model_dump(mode="json"),
            "out": str(out.resolve()),
            "versions": _versions(),
            "threads": int(torch.get_num_threads()),
            "device": str(config.device),
            "dataset": {
                "name": data.name,
                "root": str(Path(config.dataset.root).expanduser().resolve()),
                "split": data.split,
                "season": data.season,
                "options": data.options,
                "limit": data.limit,
                "sample": data.sample,
                "n_images": len(first.rows),
            },
            "models": dict(model_meta),
            "baselines": list(first.baseline_names),
            "entries": list(entries),
            "metrics": list(METRIC_NAMES),
            "regions": list(config.strata.regions),
            "strata": {family: list(strata) for family, strata in members.items()},
            "stratum_sizes": {
                family: {label: len(idx) for label, idx in strata.items()}
                for family, strata in members.items()
            },
            "bootstrap": {**config.bootstrap.model_dump(), "method": BOOTSTRAP_TEXT},
            "protocols": protocols,
            "complexity": dict(complexity) if complexity else None,
        }
    )


# ----------------------------------------------------------------------------------- tables
_DECIMALS = {"psnr": 2, "ssim": 4, "sam": 3, "mae": 4, "rmse": 4}


def _num(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if math.isfinite(value) else str(value)


def _cell_text(cell: Mapping[str, float], metric: str) -> str:
    d = _DECIMALS[metric]
    if cell["n"] == 0:
        return "-"
    return f"{_num(cell['mean'], d)} [{_num(cell['lo'], d)}, {_num(cell['hi'], d)}]"


def _ranked(entries: Sequence[str], psnr: Mapping[str, float]) -> list[str]:
    """Entries by mean PSNR, highest first; NaN last; ties in the given order (the ranking of
    the page too: :func:`cloudfree.report.benchmark_page.rank_by_psnr`)."""
    from cloudfree.report.benchmark_page import rank_by_psnr

    return rank_by_psnr(entries, psnr)


def _table_rows(
    cells: Mapping[tuple[str, str, str, str, str], Mapping[str, Mapping[str, float]]],
    p: str,
    entries: Sequence[str],
    region: str,
    family: str,
    label: str,
) -> list[tuple[int, str, Mapping[str, Mapping[str, float]]]]:
    psnr = {e: cells[(p, e, region, family, label)]["psnr"]["mean"] for e in entries}
    return [
        (rank, e, cells[(p, e, region, family, label)])
        for rank, e in enumerate(_ranked(entries, psnr), start=1)
    ]


def _markdown_table(
    rows: Sequence[tuple[int, str, Mapping[str, Mapping[str, float]]]],
    labels: Mapping[str, str],
    baselines: Sequence[str],
) -> list[str]:
    head = ["rank", "model", *(labels[m] for m in METRIC_NAMES), "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for rank, e, cell in rows:
        name = f"{e} (baseline)" if e in baselines else e
        n = cell["mae"]["n"]
        values = [_cell_text(cell[m], m) for m in METRIC_NAMES]
        lines.append("| " + " | ".join([str(rank), name, *values, str(n)]) + " |")
    return lines


_REGION_TITLES = {
    "overall": "overall",
    "inside_clouds": "inside clouds",
    "outside_clouds": "outside clouds (and shadows)",
}


def _tables_md(
    config: BenchmarkConfig,
    summary: Mapping[str, Any],
    entries: Sequence[str],
    baselines: Sequence[str],
    members: Mapping[str, Mapping[str, list[int]]],
    cells: Mapping[tuple[str, str, str, str, str], Any],
    complexity: Mapping[str, Mapping[str, Any]],
) -> str:
    ds = summary["dataset"]
    b = config.bootstrap
    level = f"{b.confidence * 100:g} %"
    lines = [
        "# Benchmark",
        "",
        f"Dataset `{ds['name']}`, split `{ds['split']}`"
        + (f", season {ds['season']}" if ds["season"] else "")
        + (
            f", {ds['sample']['n']} images drawn with seed {ds['sample']['seed']}"
            if ds["sample"]
            else ""
        )
        + f": {ds['n_images']} images. Cells: mean [{level} percentile bootstrap interval over "
        f"images, {b.samples} resamples, seed {b.seed}]; n: images in the mean (MAE). Rows "
        "ranked by PSNR.",
        "",
    ]
    if config.metric_bands is not None:
        bands = summary["protocols"][config.protocols[0]]["evaluation"]["metric_bands"]
        lines += [f"Metrics on bands {', '.join(bands)} only.", ""]
    for p in config.protocols:
        proto = get_metric_protocol(p)
        labels = metric_labels(proto)
        crop = (
            f"; centre {proto.center_crop} x {proto.center_crop} crop" if proto.center_crop else ""
        )
        lines += [f"## Protocol `{p}`", "", f"{proto.description}{crop}.", ""]
        for region in config.strata.regions:
            lines += [f"### {_REGION_TITLES[region]}", ""]
            lines += _markdown_table(
                _table_rows(cells, p, entries, region, "all", "all"), labels, baselines
            )
            lines.append("")
        for family, strata in members.items():
            if family == "all":
                continue
            for label in strata:
                for region in config.strata.regions:
                    n_images = len(strata[label])
                    lines += [
                        f"### {family} = {label}, {_REGION_TITLES[region]} ({n_images} images)",
                        "",
                    ]
                    lines += _markdown_table(
                        _table_rows(cells, p, entries, region, family, label), labels, baselines
                    )
                    lines.append("")
    if complexity:
        c = config.complexity
        assert c is not None
        lines += [
            "## Complexity",
            "",
            f"Measured on this machine: device {summary['device']}, {summary['threads']} "
            f"threads, batch 1, {c.size} x {c.size} px (temporal models: {c.dates} dates), "
            f"median of {c.repeats} forward passes; MACs with the math attention backend; "
            "peak memory: extra memory of the timed passes; throughput for a 10 m product.",
            "",
            "| model | parameters | GMACs | latency (s) | peak memory (MiB) | km²/s |",
            "|---|---|---|---|---|---|",
        ]
        for key, f in complexity.items():
            lines.append(
                f"| {key} | {f['params']:,} | {f['macs'] / 1e9:.2f} | {f['latency_s']:.4f} | "
                f"{_num(f['peak_memory_mib'], 0)} | {_num(f['throughput_km2_per_s'], 3)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _tables_csv_rows(
    config: BenchmarkConfig,
    entries: Sequence[str],
    baselines: Sequence[str],
    members: Mapping[str, Mapping[str, list[int]]],
    cells: Mapping[tuple[str, str, str, str, str], Any],
) -> tuple[list[str], list[dict[str, Any]]]:
    columns = ["protocol", "region", "stratum", "label", "rank", "model", "kind", "n"]
    columns += [f"{m}_{s}" for m in METRIC_NAMES for s in ("mean", "lo", "hi")]
    rows: list[dict[str, Any]] = []
    for p in config.protocols:
        for family, strata in members.items():
            for label in strata:
                for region in config.strata.regions:
                    for rank, e, cell in _table_rows(cells, p, entries, region, family, label):
                        row: dict[str, Any] = {
                            "protocol": p, "region": region, "stratum": family, "label": label,
                            "rank": str(rank), "model": e,
                            "kind": "baseline" if e in baselines else "model",
                            "n": str(cell["mae"]["n"]),
                        }  # fmt: skip
                        for m in METRIC_NAMES:
                            for s in ("mean", "lo", "hi"):
                                row[f"{m}_{s}"] = cell[m][s]
                        rows.append(row)
    return columns, rows


_COMPLEXITY_COLUMNS = (
    "model", "name", "params", "macs", "size", "dates", "latency_s", "latency_min_s",
    "peak_memory_mib", "throughput_km2_per_s", "threads", "device", "repeats",
)  # fmt: skip


def _write(
    out: Path,
    config: BenchmarkConfig,
    per_image: list[dict[str, Any]],
    summary: dict[str, Any],
    results: Mapping[str, EvaluationResult],
    entries: Sequence[str],
    members: Mapping[str, Mapping[str, list[int]]],
    cells: Mapping[tuple[str, str, str, str, str], Any],
    complexity: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, list[str]],
    overwrite: bool,
    page: str | None = None,
) -> dict[str, Path]:
    from cloudfree.io.atomic import atomic_write_csv, atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    baselines = list(results[config.protocols[0]].baseline_names)
    files: dict[str, Path] = {}
    columns = [*PER_IMAGE_COLUMNS_HEAD, *labels, *PER_IMAGE_COLUMNS_TAIL]
    files[PER_IMAGE_CSV] = atomic_write_csv(out / PER_IMAGE_CSV, columns, per_image)
    md = _tables_md(config, summary, entries, baselines, members, cells, complexity)
    files[TABLES_MD] = atomic_write_text(out / TABLES_MD, md)
    t_columns, t_rows = _tables_csv_rows(config, entries, baselines, members, cells)
    files[TABLES_CSV] = atomic_write_csv(out / TABLES_CSV, t_columns, t_rows)
    if complexity:
        text = io.StringIO()
        text.write(",".join(_COMPLEXITY_COLUMNS) + "\n")
        for f in complexity.values():
            text.write(",".join(_csv_value(f[k]) for k in _COMPLEXITY_COLUMNS) + "\n")
        files[COMPLEXITY_CSV] = atomic_write_text(out / COMPLEXITY_CSV, text.getvalue())
    elif overwrite and (out / COMPLEXITY_CSV).exists():
        (out / COMPLEXITY_CSV).unlink()  # a stale table of an earlier run
    if page is not None:
        files[REPORT_HTML] = atomic_write_text(out / REPORT_HTML, page)
    elif overwrite and (out / REPORT_HTML).exists():
        (out / REPORT_HTML).unlink()  # a stale page of an earlier run
    files[SUMMARY_JSON] = atomic_write_json(out / SUMMARY_JSON, summary)
    return files


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | int | str):
        return str(v)
    return repr(float(v))


# --------------------------------------------------------------------------- paper tables
def paper_table_markdown(result: BenchmarkResult, config: BenchmarkConfig, name: str) -> str:
    """The shipped paper table ``name`` (:mod:`cloudfree.evaluate.paper_tables`) with this
    benchmark's numbers next to the published ones.

    Ours are the **overall** means (the papers score whole images) under the table's closest
    metric protocol when the benchmark measured it, else under the first protocol (the
    footnote then says so); season strata fill the per-season columns (``"<season>/<metric>"``),
    a table whose conditions are datasets takes ours as the benchmark's dataset, and the
    complexity table (when measured) fills parameter and MAC columns.
    """
    from cloudfree.evaluate.paper_tables import OurProtocol, layout_paper_table, load_paper_table

    table = load_paper_table(name)
    protocol = (
        table.metric_protocol if table.metric_protocol in config.protocols else config.protocols[0]
    )
    by_entry = result.summary["protocols"][protocol]["models"]
    measured: dict[str, dict[str, float]] = {}
    for entry, regions in by_entry.items():
        overall = regions["overall"]
        values = {m: cell["mean"] for m, cell in overall["all"]["all"].items()}
        for season, cells in overall.get("season", {}).items():
            values.update({f"{season}/{m}": cell["mean"] for m, cell in cells.items()})
        figures = result.complexity.get(entry)
        if figures is not None:
            values.update(params=figures["params"], macs=figures["macs"])
        measured[entry] = {k: v for k, v in values.items() if v is not None}
    registry = {k: str(meta["name"]) for k, meta in result.summary["models"].items()}
    conditions = table.conditions
    condition = config.dataset.name if config.dataset.name in conditions else None
    season = config.dataset.season
    if condition is None and season is not None:
        short = season.split("_", 1)[-1]  # ROIs1868_summer -> summer
        condition = short if short in conditions else None
    ours = OurProtocol(
        dataset=config.dataset.name,
        split=config.dataset.split,
        protocol=protocol,
        bands=str(config.metric_bands) if config.metric_bands else "all",
        notes=(f"{result.summary['dataset']['n_images']} images, overall region",),
    )
    return layout_paper_table(table, measured, registry, ours=ours, condition=condition)
