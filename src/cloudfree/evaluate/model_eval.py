"""Evaluate trained models on a dataset split, next to baselines (the identity by default).

:func:`evaluate_models` is the engine: N models and the registered baselines
(:mod:`cloudfree.evaluate.baselines`) on one dataset, in one pass over it, giving one merged
per-image table and one summary. :func:`evaluate_model` is that with one model;
:func:`evaluate_checkpoints` / :func:`evaluate_checkpoint` the whole pipeline (what
``cloudfree evaluate --checkpoint RUN --data ROOT`` runs): load the weights
(:func:`cloudfree.models.load_model`), build the SEN12MS-CR split **once** as raw samples,
evaluate, write ``per_image.csv`` and ``summary.json`` (:func:`write_evaluation`).
:func:`predict_samples` runs the models on a few samples and returns their predictions as
arrays (what the report's panels draw; the report never calls a model).

Conventions (the summary repeats the essentials, so a report states how it was measured):

* **Entries**: every model under its key (its registry name by default) and every baseline
  (``identity`` = the cloudy input used as the prediction, the floor every paper reports).
* **Inputs per model**: a dataset of raw samples (``SEN12MSCR(protocol=None)``: DN, dB) is
  read once per batch and each model gets the batch normalised with its own protocol and
  band set (:func:`cloudfree.data.transforms.normalize_sample`, per sample, before
  collation: the same tensors as a dataset built with that protocol). A dataset that is
  already normalised (its ``protocol`` attribute set, or a dataset without that attribute) is
  fed as it is; every model must then expect that scaling and those bands.
* **Baselines** are computed from the batch normalised like the **first** model's inputs (the
  reference protocol), so a single-model evaluation measures the identity exactly as before.
* **Mono-temporal models on time series** (raw samples) get each series' last real input date
  (:func:`cloudfree.data.single_date_sample`: under ``ca_mtcr`` the cloudy date to restore),
  scored on the series' target and regions, so they sit in the same table as the temporal
  models; the baselines always see the whole series.
* **Scaling**: before the metrics, predictions and targets are converted to reflectance in
  [0, 1] with :func:`cloudfree.normalization.to_reflectance` in the protocol they are in
  (each model's for its output and target), so every model is measured on the same scale
  whatever its training scaling.
* **Centre crop**: when the metric protocol has a ``center_crop`` (``glf_cr``, ``carf``: 128)
  the models still see the whole sample; the centre crop (offset ``(H - size) // 2``, as
  :func:`cloudfree.evaluate.center_crop`) is taken of prediction, target and every mask
  before the metrics. A sample smaller than the crop is used whole.
* **Metric bands** (``metric_bands``, e.g. ``"rgb"``; every metric protocol): the metrics are
  computed on those bands only, taken by name from each model's prediction and target (and
  variance) after the scaling and crop (a 13-band model is scored on B04, B03, B02; an RGB
  model on RGB data is unchanged; the baselines use the first model's bands). The models still
  get all their input bands. Band order does not matter (every metric is a mean over bands, or
  the angle between spectra). None (the default): every band each model predicts.
* **Regions** (each intersected with the sample's ``valid_mask``):
  ``overall`` = every valid pixel; ``inside_clouds`` = ``cloud_mask > 0.5``;
  ``outside_clouds`` = neither cloud (``cloud_mask <= 0.5``) nor cloud shadow
  (``shadow_mask <= 0.5``). Shadow pixels are therefore in ``overall`` only. The masks are
  those of the dataset (SEN12MS-CR: the rule-based detector on the cloudy patch).
* **Means over images** are nan-means: an image whose region is empty (no cloud pixel, or no
  clear pixel) has NaN metrics for that region and is left out of that region's mean; a
  region empty in every image gives NaN. ``n_images_per_region`` in the summary counts the
  images that entered each region's mean (first model). A perfect prediction has PSNR ``inf``
  under ``uncrtaints`` (and makes the mean ``inf``); see :func:`cloudfree.metrics.image_metrics`.
* **Cover bins** (:data:`cloudfree.data.COVER_BINS`: 0-20, ..., 80-100 %) use each sample's
  ``cloud_cover``, the cloud fraction of the whole (uncropped) cloudy patch; ``per_cover_bin``
  holds the nan-mean of the **overall** metrics of the images in the bin (an empty bin has
  ``n`` 0 and NaN metrics).
* **Uncertainty** (models whose spec has ``outputs.has_variance``, e.g. UnCRtainTS): the
  variance is brought to reflectance^2 with the square of the factor
  :func:`~cloudfree.normalization.to_reflectance` applies to the prediction (``optical_divisor /
  10000``: 1 for ``uncrtaints``; its clip to [0, 10000] DN concerns values, not a variance) and
  cropped like the prediction. Per image and region: ``mean_var``, ``mean_se``, ``mean_ae``,
  ``mean_error`` (:func:`cloudfree.metrics.image_uncertainty_stats`, the SE against the clipped
  reflectance prediction of the image metrics), columns ``<name>_<region>_<stat>`` at the end
  of ``per_image.csv``; the model's summary entry gets ``uncertainty``
  (:func:`cloudfree.metrics.uncertainty_summary` of the **overall** statistics: official and
  clean UCE / AUCE, calibration bins, discard curve, Spearman rank correlation of variance and
  squared error) and the summary ``uncertainty_definitions``. Other models get nothing new.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from cloudfree.bands import S2_L1C, BandSet, get_band_set
from cloudfree.data.registry import is_temporal_dataset
from cloudfree.data.sampling import COVER_BINS, assign_cover_bins, cover_bin_labels
from cloudfree.data.temporal import collate_time_series, single_date_sample
from cloudfree.data.transforms import normalize_sample
from cloudfree.devices import resolve_device
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.evaluate.baselines import (
    IDENTITY_NAME,
    TEMPORAL_BASELINES,
    BaselineFn,
    get_baseline,
)
from cloudfree.evaluate.directory import center_crop
from cloudfree.io.atomic import atomic_write_csv, atomic_write_json, json_compatible
from cloudfree.metrics import (
    METRIC_NAMES,
    UNCERTAINTY_DEFINITIONS,
    UNCERTAINTY_STATS,
    MetricProtocol,
    get_metric_protocol,
    image_metrics,
    image_uncertainty_stats,
    uncertainty_summary,
)
from cloudfree.models.api import DATE_EPOCH, ModelBatch, run_model, spec_of
from cloudfree.models.inference import InferenceOptions, describe_runtime, for_inference
from cloudfree.models.loading import LoadedModel, load_model, resolve_weights_dir
from cloudfree.models.onnx_runtime import is_onnx_file
from cloudfree.normalization import (
    denormalize_sar,
    get_protocol,
    reflectance_factor,
    to_reflectance,
)

__all__ = [
    "EvaluationData",
    "EvaluationResult",
    "IDENTITY_NAME",
    "ImageScores",
    "REGIONS",
    "SamplePredictions",
    "build_evaluation_data",
    "default_baselines",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "evaluate_model",
    "evaluate_models",
    "evaluate_protocols",
    "load_model_for_evaluation",
    "per_image_columns",
    "predict_samples",
    "resolve_weights_dir",
    "results_from_scores",
    "score_images",
    "write_evaluation",
]

#: Regions every metric is computed over, in report order.
REGIONS: tuple[str, ...] = ("overall", "inside_clouds", "outside_clouds")

#: File names written by :func:`write_evaluation`.
PER_IMAGE_CSV = "per_image.csv"
SUMMARY_JSON = "summary.json"

REGIONS_TEXT = (
    "each region is intersected with the sample's valid_mask; overall: every valid pixel; "
    "inside_clouds: cloud_mask > 0.5; outside_clouds: neither cloud (cloud_mask <= 0.5) nor "
    "cloud shadow (shadow_mask <= 0.5), so shadow pixels count in overall only"
)
AGGREGATION_TEXT = (
    "per image, then the nan-mean over images: an image whose region is empty has NaN "
    "metrics there and is left out of that region's mean (n_images_per_region counts the "
    "images that entered it); per_cover_bin: nan-mean of the overall metrics of the images "
    "whose cloud_cover (cloud fraction of the whole uncropped cloudy patch) is in the bin, "
    "bins [lo, hi) except the last, which includes 100 %"
)

ModelsArg = Mapping[str, nn.Module | LoadedModel] | Sequence[nn.Module | LoadedModel]


@dataclass
class EvaluationResult:
    """What :func:`evaluate_models` measured.

    Attributes:
        rows: one dict per image, in dataset order: ``id``, ``cloud_cover`` (float),
            ``cover_bin`` (label such as ``"20-40"``) and a float for every column
            ``<name>_<region>_<metric>`` of :func:`per_image_columns`.
        summary: the JSON-ready summary (schema in :func:`evaluate_models`).
        model_name: the first model's key (with one model: its registry name).
        columns: the ``per_image.csv`` columns, in order.
        model_names: every model's key, in order (default: ``(model_name,)``).
        baseline_names: the baselines evaluated, in order (default: ``("identity",)``).
        uncertainty_names: the models with a variance output, whose per-image uncertainty
            statistics end the table (default: none).
    """

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    model_name: str
    columns: tuple[str, ...] = field(default=())
    model_names: tuple[str, ...] = field(default=())
    baseline_names: tuple[str, ...] = field(default=(IDENTITY_NAME,))
    uncertainty_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.model_names:
            self.model_names = (self.model_name,)
        if not self.columns:
            self.columns = per_image_columns(
                self.model_names, self.baseline_names, uncertainty=self.uncertainty_names
            )
            if self.rows and "aux_changed" in self.rows[0]:  # time series with change maps
                self.columns = (*self.columns[:3], "aux_changed", *self.columns[3:])


def per_image_columns(
    model_names: str | Sequence[str],
    baselines: Sequence[str] = (IDENTITY_NAME,),
    *,
    uncertainty: Sequence[str] = (),
) -> tuple[str, ...]:
    """Columns of ``per_image.csv``: ``id, cloud_cover, cover_bin``, then
    ``<name>_<region>_<metric>`` for each model, then for each baseline, then
    ``<name>_<region>_<stat>`` (:data:`cloudfree.metrics.UNCERTAINTY_STATS`) for each model of
    ``uncertainty`` (those with a variance output; at the end, so the other columns keep their
    places)."""
    names = [model_names] if isinstance(model_names, str) else list(model_names)
    return (
        "id",
        "cloud_cover",
        "cover_bin",
        *(
            f"{name}_{region}_{metric}"
            for name in (*names, *baselines)
            for region in REGIONS
            for metric in METRIC_NAMES
        ),
        *(
            f"{name}_{region}_{stat}"
            for name in uncertainty
            for region in REGIONS
            for stat in UNCERTAINTY_STATS
        ),
    )


def _has_variance(model: nn.Module) -> bool:
    return bool(spec_of(model).outputs.has_variance)


def _variance_factor(norm: str) -> float:
    """Normalised variance -> reflectance^2 (the square of :func:`reflectance_factor`)."""
    return reflectance_factor(norm) ** 2


# --------------------------------------------------------------------------------- loading
def load_model_for_evaluation(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Load the model of a pretrained directory or of a training run (eval mode).

    A thin wrapper of :func:`cloudfree.models.load_model` restricted to directories and
    ONNX files from ``cloudfree models export`` (run by onnxruntime); the evaluation takes no
    official checkpoint file: those need an architecture name. See
    :func:`resolve_weights_dir` for which weights a run directory gives (best validation
    weights when present, else the final ones). The returned model carries
    ``cloudfree_config`` (name, kwargs, normalisation protocol, bands) and
    ``cloudfree_weights_dir`` (the directory actually loaded).

    Raises:
        InputFileError: no weights at ``path`` (a file included), or unreadable / mismatching
            files.
    """
    is_file = Path(path).is_file() and is_onnx_file(path)
    weights_dir = Path(path) if is_file else resolve_weights_dir(path)
    loaded = load_model(weights_dir, device=map_location)
    loaded.require_cloud_removal()
    loaded.model.cloudfree_weights_dir = str(loaded.weights_path)  # type: ignore[assignment]
    return loaded.model


# ------------------------------------------------------------------------- who sees what
def _base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _is_raw(base: Dataset) -> bool:
    """Raw samples (DN, dB): a dataset whose ``protocol`` attribute is None."""
    return hasattr(base, "protocol") and base.protocol is None


@dataclass
class _Member:
    key: str
    model: nn.Module
    protocol: str
    band_names: list[str] | None
    config: dict[str, Any]
    single_date: bool = False  # a mono-temporal model on time series: the last input date


@dataclass
class _Group:
    """Models that get the same inputs: one normalisation protocol and band subset, and for
    mono-temporal models on time series the series' last real date
    (:func:`~cloudfree.data.single_date_sample`)."""

    protocol: str
    bands: BandSet | None  # band subset taken from 13-band raw samples (None: keep them)
    members: list[_Member] = field(default_factory=list)
    single_date: bool = False


def _default_key(model: nn.Module) -> str:
    cfg = getattr(model, "cloudfree_config", None)
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name or type(model).__name__)


def _keyed_models(models: ModelsArg, baselines: Sequence[str]) -> dict[str, nn.Module]:
    if isinstance(models, Mapping):
        items = [(str(k), m) for k, m in models.items()]
    else:
        items = []
        for m in models:
            net = m.model if isinstance(m, LoadedModel) else m
            items.append((_default_key(net), m))
    out: dict[str, nn.Module] = {}
    for key, m in items:
        net = m.model if isinstance(m, LoadedModel) else m
        if not isinstance(net, nn.Module):
            raise ConfigError(f"model {key!r} is a {type(net).__name__}, not a torch module")
        if key in baselines:
            raise ConfigError(f"a model cannot be called {key!r} (the baseline's name)")
        if key in out:
            raise ConfigError(f"two models are called {key!r}; pass a mapping key -> model")
        out[key] = net
    if not out:
        raise ConfigError("no model to evaluate")
    return out


def _member(key: str, model: nn.Module, base: Dataset, raw: bool) -> _Member:
    """Name, normalisation protocol, band names and config of ``model`` (checked against
    the dataset)."""
    cfg = getattr(model, "cloudfree_config", None)
    cfg = dict(cfg) if isinstance(cfg, dict) else {}
    data_protocol = None if raw else getattr(base, "protocol", None)
    norm = cfg.get("protocol") or data_protocol
    if norm is None:
        raise ConfigError(
            f"model {key!r} has no cloudfree_config (build it with cloudfree.models."
            "create_model) and the dataset names no normalisation protocol, so its scaling is "
            "unknown"
        )
    norm = get_protocol(norm).name
    if data_protocol is not None and get_protocol(data_protocol).name != norm:
        raise ConfigError(
            f"the dataset is scaled with the {data_protocol!r} protocol but model {key!r} "
            f"expects {norm!r}; build the dataset with protocol={norm!r} (or protocol=None: "
            "raw samples, normalised here for each model)"
        )
    band_names: list[str] | None = None
    data_bands = getattr(base, "bands", None)
    if "bands" in cfg:
        band_names = list(get_band_set(cfg["bands"]).names)
        full_raw = raw and data_bands is not None and len(data_bands.names) == len(S2_L1C)
        if data_bands is not None and not full_raw and list(data_bands.names) != band_names:
            raise ConfigError(
                f"the dataset provides bands {','.join(data_bands.names)} but model {key!r} "
                f"expects {','.join(band_names)}; build the dataset with those bands"
                + (" (or all 13, selected here for each model)" if raw else "")
            )
    elif data_bands is not None:
        band_names = list(data_bands.names)
    model_temporal = spec_of(model).inputs.temporal
    temporal_data = is_temporal_dataset(base)
    if model_temporal and not temporal_data:
        raise ConfigError(
            f"model {key!r} is multi-temporal but {type(base).__name__} feeds one cloudy image "
            "per sample; evaluate it on a time-series dataset"
        )
    if temporal_data and not model_temporal and not raw:
        raise ConfigError(
            f"model {key!r} is mono-temporal: on a time-series dataset it sees the last input "
            "date of each series, which needs raw samples (protocol=None)"
        )
    return _Member(key, model, norm, band_names, cfg, temporal_data and not model_temporal)


def _groups(models: Mapping[str, nn.Module], base: Dataset) -> list[_Group]:
    """The models grouped by the inputs they need; the first group holds the first model (the
    reference for the baselines)."""
    raw = _is_raw(base)
    data_bands = getattr(base, "bands", None)
    groups: dict[tuple[str, tuple[str, ...] | None], _Group] = {}
    for key, model in models.items():
        m = _member(key, model, base, raw)
        subset: BandSet | None = None
        if (
            raw
            and m.band_names is not None
            and (data_bands is None or list(data_bands.names) != m.band_names)
        ):
            subset = get_band_set(m.band_names)
        gkey = (m.protocol, None if subset is None else tuple(subset.names), m.single_date)
        group = groups.setdefault(gkey, _Group(m.protocol, subset, single_date=m.single_date))
        group.members.append(m)
    if not raw and len(groups) > 1:
        raise ConfigError(
            "the dataset's samples are fed to every model as they are, but the models expect "
            "different scalings ("
            + "; ".join(
                f"{', '.join(x.key for x in g.members)}: {g.protocol}" for g in groups.values()
            )
            + "); pass raw samples (SEN12MSCR(protocol=None)), normalised here for each model"
        )
    return list(groups.values())


def _keep_samples(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collation of raw samples: none (each group normalises them, then collates)."""
    return samples


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Time series (``optical [T, C, H, W]``) are padded to the batch's longest
    (:func:`cloudfree.data.collate_time_series`); mono-temporal samples stacked."""
    if samples and samples[0]["optical"].ndim == 4:
        return collate_time_series(samples)
    return default_collate(samples)


def _group_batch(
    batch: Any, group: _Group, raw: bool, pb04: bool, series: bool = False
) -> dict[str, Any]:
    """``batch`` as ``group``'s models take it (``series``: the whole series even for a
    single-date group: what the baselines see)."""
    if not raw:
        return batch
    one = group.single_date and not series
    return _collate(
        [
            normalize_sample(
                single_date_sample(s) if one else s, group.protocol, group.bands, pb04_offset=pb04
            )
            for s in batch
        ]
    )


# ------------------------------------------------------------------------------- evaluation
def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _region_masks(batch: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    b, _, h, w = shape
    valid = batch.get("valid_mask")
    valid = torch.ones((b, 1, h, w), dtype=torch.bool) if valid is None else valid.to(torch.bool)
    if "score_mask" in batch:  # pixels a dataset's protocol scores (AllClear: target clear)
        valid = valid & batch["score_mask"].to(torch.bool)
    if "cloud_mask" not in batch:
        raise DatasetError("samples need a 'cloud_mask' [1, H, W] to split inside/outside clouds")
    cloud = batch["cloud_mask"] > 0.5
    shadow = batch.get("shadow_mask")
    clear = ~cloud if shadow is None else ~cloud & ~(shadow > 0.5)
    return {"overall": valid, "inside_clouds": cloud & valid, "outside_clouds": clear & valid}


def _summarise(
    values: dict[str, dict[str, dict[str, list[float]]]],
    bins: np.ndarray,
    changed: Sequence[float] | None = None,
) -> dict:
    labels = cover_bin_labels(COVER_BINS)
    models: dict[str, Any] = {}
    for name, by_region in values.items():
        entry: dict[str, Any] = {
            region: {m: _nanmean(by_region[region][m]) for m in METRIC_NAMES} for region in REGIONS
        }
        per_bin: dict[str, Any] = {}
        for b, label in enumerate(labels):
            members = np.flatnonzero(bins == b)
            per_bin[label] = {"n": int(len(members))}
            for m in METRIC_NAMES:
                per_bin[label][m] = _nanmean([by_region["overall"][m][i] for i in members])
        entry["per_cover_bin"] = per_bin
        if changed is not None:
            strata: dict[str, Any] = {}
            for label, flag in (("changed", 1.0), ("unchanged", 0.0)):
                members = [i for i, c in enumerate(changed) if c == flag]
                strata[label] = {"n": len(members)}
                for region in REGIONS:
                    strata[label][region] = {
                        m: _nanmean([by_region[region][m][i] for i in members])
                        for m in METRIC_NAMES
                    }
            entry["per_aux_change"] = strata
        models[name] = entry
    return models


def _check_loader_options(batch_size: int, num_workers: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0, got {num_workers!r}")


def _check_pred(key: str, pred: torch.Tensor, target: torch.Tensor, what: str = "model") -> None:
    if pred.shape != target.shape:
        raise ConfigError(
            f"{what} {key!r} returned {tuple(pred.shape)}, expected a tensor shaped "
            f"like the target {tuple(target.shape)}"
        )


def _metric_band_positions(
    key: str, band_names: Sequence[str] | None, metric_set: BandSet | None
) -> list[int] | None:
    """Where the bands of ``metric_set`` sit in a model's output bands ``band_names`` (None:
    score every band, also when the selection is all of them in their order).

    Raises:
        ConfigError: the model's bands are unknown or lack a metric band.
    """
    if metric_set is None:
        return None
    wanted = ",".join(metric_set.names)
    if band_names is None:
        raise ConfigError(
            f"metric bands {wanted}: the optical bands of {key!r} are unknown (no "
            "cloudfree_config bands and a dataset without band names)"
        )
    have = get_band_set(list(band_names))
    missing = [n for n in metric_set.names if n not in have.names]
    if missing:
        raise ConfigError(
            f"metric bands {wanted}: {key!r} predicts {','.join(have.names)}, without "
            f"{','.join(missing)}"
        )
    positions = [have.position(n) for n in metric_set.names]
    return None if positions == list(range(len(have))) else positions


def _take_bands(x: torch.Tensor, positions: list[int] | None) -> torch.Tensor:
    """``x [B, C, H, W]`` restricted to the channels ``positions`` (None: all of them)."""
    return x if positions is None else x[:, positions]


def evaluate_models(
    models: ModelsArg,
    dataset: Dataset,
    *,
    baselines: Sequence[str] = (IDENTITY_NAME,),
    protocol: str | MetricProtocol = "uncrtaints",
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    metric_bands: str | Sequence[str] | BandSet | None = None,
) -> EvaluationResult:
    """Metrics of several models and of the baselines on every sample of ``dataset``, in one
    pass over it: one merged per-image table and one summary.

    Args:
        models: key -> mono-temporal model (or :class:`cloudfree.models.LoadedModel`), in
            report order; a sequence is keyed by each model's registry name. Each is called
            through :func:`cloudfree.models.run_model`, built by
            :func:`cloudfree.models.create_model` / ``load_pretrained`` (its
            ``cloudfree_config`` gives its normalisation protocol and bands). Models are moved
            to ``device`` and run in eval mode under ``torch.no_grad()``; their train/eval
            mode is restored afterwards.
        dataset: samples as :class:`cloudfree.data.SEN12MSCR` yields them (``optical``,
            ``sar``, ``target``, ``cloud_mask``, ``shadow_mask``, ``valid_mask``,
            ``cloud_cover``, ``id``), raw (``protocol=None``: normalised here for each model)
            or normalised (every model must then expect its ``protocol`` / ``bands``); a
            ``torch.utils.data.Subset`` of one is fine.
        baselines: names of registered baselines (:func:`cloudfree.evaluate.baselines.
            register_baseline`), computed in the first model's normalisation.
        protocol: metric protocol (:data:`cloudfree.metrics.METRIC_PROTOCOLS`).
        batch_size, num_workers: DataLoader settings (order is kept: no shuffling). The
            batches are the same for every model, so a model's values equal those of
            evaluating it alone with the same batch size.
        device: ``cpu``, ``cuda`` or ``cuda:N``; metrics are computed there too.
        progress: show a tqdm progress bar (images).
        metric_bands: score only these optical bands (:func:`cloudfree.bands.get_band_set`:
            ``"rgb"`` = B04, B03, B02, or names), under any metric protocol; each model must
            predict them (see the module docstring). None: every band of each model.

    Returns:
        An :class:`EvaluationResult`. ``summary`` holds at least::

            {"protocol": str, "split": str, "n_images": int,
             "models": {KEY: {"overall" | "inside_clouds" | "outside_clouds":
                                 {"psnr", "ssim", "sam", "mae", "rmse": float},
                              "per_cover_bin": {"0-20": {"n": int, "psnr": ..., ...}, ...}},
                        ...every model, then every baseline...}}

        plus ``normalisation``, ``bands`` and ``model`` (of the first model),
        ``metric_bands`` (the scored band names, None for all), ``evaluated``
        (per key: ``kind`` model or baseline, its normalisation, bands and config),
        ``center_crop``, ``regions``, ``aggregation``, ``n_images_per_region``. A model with
        a variance output also has ``"uncertainty"`` in its entry (schema in
        :func:`cloudfree.metrics.uncertainty_summary`), the summary then
        ``uncertainty_definitions``, and ``rows`` its per-image statistics. See the module
        docstring for the scaling, crop, region, mean and uncertainty conventions.

    Raises:
        ConfigError: bad options, a device that is not available, an unknown baseline, a model
            named like a baseline, a dataset scaled or band-selected differently from a
            model, or metric bands a model does not predict.
        DatasetError: an empty dataset or samples without the needed keys.
    """
    proto = get_metric_protocol(protocol)
    return evaluate_protocols(
        models,
        dataset,
        protocols=[proto],
        baselines=baselines,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        metric_bands=metric_bands,
    )[proto.name]


@dataclass
class ImageScores:
    """Per-image values of one pass over a dataset (or a part of it), before any mean: what
    :func:`score_images` measures and :func:`results_from_scores` turns into tables.

    Attributes:
        ids, covers, changed: per image, in dataset order: sample id, cloud cover and the
            ``aux_changed`` flag (NaN on data without one).
        values: protocol -> entry (model or baseline key) -> region -> metric -> one float
            per image.
        uncertainty: protocol -> entry with a variance output -> region -> statistic ->
            one float per image.
    """

    ids: list[str]
    covers: list[float]
    changed: list[float]
    values: dict[str, dict[str, dict[str, dict[str, list[float]]]]]
    uncertainty: dict[str, dict[str, dict[str, dict[str, list[float]]]]]

    @property
    def entries(self) -> tuple[str, ...]:
        """The model and baseline keys scored (those of the first protocol)."""
        return tuple(next(iter(self.values.values()), {}))

    def only(self, entry: str) -> ImageScores:
        """The values of one entry (same images)."""
        return ImageScores(
            list(self.ids),
            list(self.covers),
            list(self.changed),
            {p: {entry: v[entry]} for p, v in self.values.items()},
            {p: {entry: u[entry]} for p, u in self.uncertainty.items() if entry in u},
        )

    @staticmethod
    def join(parts: Sequence[ImageScores]) -> ImageScores:
        """Parts over consecutive image ranges, each holding the same entries, as one
        (images in the order of ``parts``)."""
        if not parts:
            raise ValueError("no scores to join")

        def cat(trees: list[dict[str, Any]]) -> dict[str, Any]:
            head = trees[0]
            if isinstance(head, list):
                return [x for t in trees for x in t]  # type: ignore[return-value]
            return {k: cat([t[k] for t in trees]) for k in head}

        return ImageScores(
            [i for p in parts for i in p.ids],
            [c for p in parts for c in p.covers],
            [c for p in parts for c in p.changed],
            cat([p.values for p in parts]),
            cat([p.uncertainty for p in parts]),
        )

    @staticmethod
    def combine(parts: Sequence[ImageScores]) -> ImageScores:
        """Parts over the same images, each with other entries, as one (entries in the
        order of ``parts``).

        Raises:
            ValueError: the parts are not over the same images.
        """
        if not parts:
            raise ValueError("no scores to combine")
        head = parts[0]
        for p in parts[1:]:
            if p.ids != head.ids:
                raise ValueError("the scores to combine are not over the same images")
        values: dict[str, dict[str, Any]] = {}
        unc: dict[str, dict[str, Any]] = {}
        for p in parts:
            for proto, by_entry in p.values.items():
                values.setdefault(proto, {}).update(by_entry)
            for proto, by_entry in p.uncertainty.items():
                unc.setdefault(proto, {}).update(by_entry)
        for proto in values:
            unc.setdefault(proto, {})
        return ImageScores(list(head.ids), list(head.covers), list(head.changed), values, unc)


@dataclass
class _Plan:
    """Who is evaluated how: the checked protocols, models, baselines, input groups and
    metric bands of one evaluation (shared by :func:`score_images` and
    :func:`results_from_scores`)."""

    protos: list[MetricProtocol]
    nets: dict[str, nn.Module]
    baseline_fns: dict[str, BaselineFn]
    base: Dataset
    raw: bool
    pb04: bool
    groups: list[_Group]
    metric_set: BandSet | None
    positions: dict[str, list[int] | None]
    with_var: list[str]

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.nets, *self.baseline_fns)


def _plan(
    models: ModelsArg,
    dataset: Dataset,
    protocols: Sequence[str | MetricProtocol],
    baselines: Sequence[str],
    metric_bands: str | Sequence[str] | BandSet | None,
) -> _Plan:
    protos = [get_metric_protocol(p) for p in protocols]
    if not protos:
        raise ConfigError("give at least one metric protocol")
    pnames = [p.name for p in protos]
    twice = sorted({n for n in pnames if pnames.count(n) > 1})
    if twice:
        raise ConfigError(f"metric protocol {', '.join(map(repr, twice))} given twice")
    baseline_fns: dict[str, BaselineFn] = {b: get_baseline(b) for b in baselines}
    nets = _keyed_models(models, list(baseline_fns))
    base = _base_dataset(dataset)
    groups = _groups(nets, base)
    first = groups[0].members[0]
    metric_set = None if metric_bands is None else get_band_set(metric_bands)
    positions = {
        m.key: _metric_band_positions(m.key, m.band_names, metric_set)
        for g in groups
        for m in g.members
    }
    for b in baseline_fns:  # the baselines have the first model's bands
        positions[b] = positions[first.key]
    return _Plan(
        protos,
        nets,
        baseline_fns,
        base,
        _is_raw(base),
        bool(getattr(base, "pb04_offset", False)),
        groups,
        metric_set,
        positions,
        [k for k, m in nets.items() if _has_variance(m)],
    )


def evaluate_protocols(
    models: ModelsArg,
    dataset: Dataset,
    *,
    protocols: Sequence[str | MetricProtocol],
    baselines: Sequence[str] = (IDENTITY_NAME,),
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    metric_bands: str | Sequence[str] | BandSet | None = None,
) -> dict[str, EvaluationResult]:
    """:func:`evaluate_models` under several metric protocols in **one** pass over the data:
    protocol name -> the :class:`EvaluationResult` that ``evaluate_models(...,
    protocol=name)`` gives (same rows, summary and values: each sample is read and each model
    run once per batch, and only the metrics are computed once per protocol; the centre crop
    of a protocol such as ``glf_cr`` is taken of the uncropped reflectance prediction, target
    and masks, as :func:`evaluate_models` does). The order of ``protocols`` is kept.
    It is :func:`score_images` followed by :func:`results_from_scores`.

    Raises:
        ConfigError: no protocol, a protocol given twice, an unknown one, and everything
            :func:`evaluate_models` raises.
    """
    scores = score_images(
        models,
        dataset,
        protocols=protocols,
        baselines=baselines,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        metric_bands=metric_bands,
    )
    return results_from_scores(
        models,
        dataset,
        scores,
        protocols=protocols,
        baselines=baselines,
        metric_bands=metric_bands,
    )


def score_images(
    models: ModelsArg,
    dataset: Dataset,
    *,
    protocols: Sequence[str | MetricProtocol],
    baselines: Sequence[str] = (IDENTITY_NAME,),
    entries: Sequence[str] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    metric_bands: str | Sequence[str] | BandSet | None = None,
) -> ImageScores:
    """The per-image values of :func:`evaluate_protocols` (one pass), without the means.

    ``entries`` (default: every model and baseline) restricts which are scored: the others
    are neither run nor in the result, but they still decide the input groups, so the
    baselines stay in the first model's normalisation and every entry's values equal those of
    a pass over all of them (what ``cloudfree benchmark`` relies on to resume a run cell by
    cell). The arguments are those of :func:`evaluate_protocols`.

    Raises:
        ConfigError: an entry that is neither a model nor a baseline, and everything
            :func:`evaluate_protocols` raises.
    """
    from tqdm.auto import tqdm

    plan = _plan(models, dataset, protocols, baselines, metric_bands)
    _check_loader_options(batch_size, num_workers)
    dev = resolve_device(device)
    names = plan.names
    chosen = names if entries is None else tuple(entries)
    unknown = [e for e in chosen if e not in names]
    if unknown:
        raise ConfigError(
            f"no model or baseline called {', '.join(map(repr, unknown))} "
            f"(evaluated: {', '.join(names)})"
        )
    run = set(chosen)
    n_total = len(dataset)  # type: ignore[arg-type]
    if n_total == 0:
        raise DatasetError("the dataset to evaluate is empty")
    groups, raw, pb04 = plan.groups, plan.raw, plan.pb04
    reference = groups[0]
    positions = plan.positions
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        collate_fn=_keep_samples if raw else _collate,
    )
    scored_names = [n for n in names if n in run]
    pnames = [p.name for p in plan.protos]
    values = {
        pn: {n: {r: {m: [] for m in METRIC_NAMES} for r in REGIONS} for n in scored_names}
        for pn in pnames
    }
    with_var = [k for k in plan.with_var if k in run]
    unc: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {
        pn: {k: {r: {s: [] for s in UNCERTAINTY_STATS} for r in REGIONS} for k in with_var}
        for pn in pnames
    }
    ids: list[str] = []
    covers: list[float] = []
    changed: list[float] = []
    running = {k: m for k, m in plan.nets.items() if k in run}
    baseline_fns = {b: fn for b, fn in plan.baseline_fns.items() if b in run}

    was_training = {k: m.training for k, m in running.items()}
    for m in running.values():
        m.to(dev).eval()
    try:
        with (
            torch.no_grad(),
            tqdm(
                total=n_total,
                desc=f"evaluate {', '.join(running) or ', '.join(baseline_fns)}",
                unit="img",
                disable=not progress,
            ) as bar,
        ):
            for batch in loader:
                # per entry: uncropped reflectance prediction and target, masks, metric-band
                # positions and the reflectance^2 variance (None without one)
                scored: dict[str, _Scored] = {}
                ref_batch: Mapping[str, Any] = {}
                for group in groups:
                    members = [m for m in group.members if m.key in run]
                    if not members and group is not reference:
                        continue
                    gb = _group_batch(batch, group, raw, pb04)
                    for key in ("optical", "target", "id", "cloud_cover"):
                        if key not in gb:
                            raise DatasetError(f"samples have no {key!r} entry")
                    inputs = ModelBatch.from_sample(gb).to(dev, non_blocking=True)
                    target = gb["target"].to(dev, non_blocking=True)
                    masks = {
                        r: m.to(dev) for r, m in _region_masks(gb, tuple(target.shape)).items()
                    }
                    y = to_reflectance(target.float(), group.protocol)
                    for member in members:
                        out = run_model(member.model, inputs)
                        pred = out.pred
                        _check_pred(member.key, pred, target)
                        var = None
                        if member.key in with_var and out.variance is not None:
                            var = out.variance.float() * _variance_factor(group.protocol)
                        scored[member.key] = _Scored(
                            to_reflectance(pred.float(), group.protocol),
                            y,
                            masks,
                            positions[member.key],
                            var,
                        )
                    if group is reference:
                        ref_batch = gb
                        if group.single_date and baseline_fns:  # they see the whole series
                            gb = _group_batch(batch, group, raw, pb04, series=True)
                            inputs = ModelBatch.from_sample(gb).to(dev, non_blocking=True)
                        for b, fn in baseline_fns.items():
                            pred = fn(inputs, gb).to(dev)
                            _check_pred(b, pred, target, "baseline")
                            scored[b] = _Scored(
                                to_reflectance(pred.float(), group.protocol),
                                y,
                                masks,
                                positions[b],
                                None,
                            )
                for proto in plan.protos:
                    crop = proto.center_crop
                    for n in scored_names:
                        sc = scored[n]
                        p = _take_bands(center_crop(sc.pred, crop), sc.positions)
                        y_n = _take_bands(center_crop(sc.target, crop), sc.positions)
                        cropped = {r: center_crop(m, crop) for r, m in sc.masks.items()}
                        for region, mask in cropped.items():
                            metrics = image_metrics(p, y_n, proto, mask)
                            for m in METRIC_NAMES:
                                values[proto.name][n][region][m].extend(
                                    metrics[m].double().cpu().tolist()
                                )
                        if sc.variance is not None:
                            var = _take_bands(center_crop(sc.variance, crop), sc.positions)
                            for region, mask in cropped.items():
                                stats = image_uncertainty_stats(p, y_n, var, mask)
                                for st in UNCERTAINTY_STATS:
                                    unc[proto.name][n][region][st].extend(
                                        stats[st].double().cpu().tolist()
                                    )
                ids.extend(str(i) for i in ref_batch["id"])
                covers.extend(
                    float(c) for c in torch.as_tensor(ref_batch["cloud_cover"]).reshape(-1)
                )
                n_batch = len(ref_batch["id"])
                if "aux_changed" in ref_batch:
                    flags = torch.as_tensor(ref_batch["aux_changed"], dtype=torch.float32)
                    changed.extend(float(c) for c in flags.reshape(-1))
                else:
                    changed.extend([math.nan] * n_batch)
                bar.update(n_batch)
    finally:
        for k, m in running.items():
            m.train(was_training[k])
    return ImageScores(ids, covers, changed, values, unc)


def results_from_scores(
    models: ModelsArg,
    dataset: Dataset,
    scores: ImageScores,
    *,
    protocols: Sequence[str | MetricProtocol],
    baselines: Sequence[str] = (IDENTITY_NAME,),
    metric_bands: str | Sequence[str] | BandSet | None = None,
) -> dict[str, EvaluationResult]:
    """Protocol name -> the :class:`EvaluationResult` of ``scores`` (every model and baseline
    scored, e.g. :func:`ImageScores.join` of a sharded run's parts); the arguments are those
    the scores were measured with.

    Raises:
        ConfigError: ``scores`` lack a protocol or an entry.
    """
    from cloudfree import __version__

    plan = _plan(models, dataset, protocols, baselines, metric_bands)
    missing = [
        f"{p.name}/{n}"
        for p in plan.protos
        for n in plan.names
        if n not in scores.values.get(p.name, {})
    ]
    if missing:
        raise ConfigError(f"the scores have no values for {', '.join(missing)}")
    nets = plan.nets
    with_var = set(plan.with_var)
    return {
        proto.name: _result(
            proto,
            {n: scores.values[proto.name][n] for n in plan.names},
            {k: v for k, v in scores.uncertainty.get(proto.name, {}).items() if k in with_var},
            scores.ids,
            scores.covers,
            scores.changed,
            nets=nets,
            baseline_fns=plan.baseline_fns,
            groups=plan.groups,
            metric_set=plan.metric_set,
            base=plan.base,
            raw=plan.raw,
            version=__version__,
        )
        for proto in plan.protos
    }


@dataclass
class _Scored:
    """One entry's batch, before the metric protocol's crop: reflectance prediction and
    target ``[B, C, H, W]``, region masks, metric-band positions, reflectance^2 variance."""

    pred: torch.Tensor
    target: torch.Tensor
    masks: dict[str, torch.Tensor]
    positions: list[int] | None
    variance: torch.Tensor | None


def _result(
    proto: MetricProtocol,
    values: dict[str, dict[str, dict[str, list[float]]]],
    unc: dict[str, dict[str, dict[str, list[float]]]],
    ids: list[str],
    covers: list[float],
    changed: list[float],
    *,
    nets: dict[str, nn.Module],
    baseline_fns: Mapping[str, BaselineFn],
    groups: list[_Group],
    metric_set: BandSet | None,
    base: Dataset,
    raw: bool,
    version: str,
) -> EvaluationResult:
    """The :class:`EvaluationResult` of one metric protocol's per-image values."""
    reference = groups[0]
    first = reference.members[0]
    crop = proto.center_crop
    names = (*nets, *baseline_fns)
    bins = assign_cover_bins(np.asarray(covers, dtype=np.float64), COVER_BINS)
    labels = cover_bin_labels(COVER_BINS)
    has_strata = any(not math.isnan(c) for c in changed)
    rows: list[dict[str, Any]] = []
    for i, (sample_id, cover) in enumerate(zip(ids, covers)):
        row: dict[str, Any] = {
            "id": sample_id,
            "cloud_cover": cover,
            "cover_bin": labels[bins[i]] if bins[i] >= 0 else "",
        }
        if has_strata:
            row["aux_changed"] = changed[i]
        for n in names:
            for region in REGIONS:
                for m in METRIC_NAMES:
                    row[f"{n}_{region}_{m}"] = values[n][region][m][i]
        for n, by_region in unc.items():
            for region in REGIONS:
                for st in UNCERTAINTY_STATS:
                    row[f"{n}_{region}_{st}"] = by_region[region][st][i]
        rows.append(row)

    evaluated: dict[str, Any] = {}
    for group in groups:
        for member in group.members:
            evaluated[member.key] = {
                "kind": "model",
                "normalisation": member.protocol,
                "bands": member.band_names,
                "model": json_compatible(member.config) if member.config else {"name": member.key},
                "runtime": describe_runtime(member.model),
            }
    for b in baseline_fns:
        evaluated[b] = {
            "kind": "baseline",
            "normalisation": reference.protocol,
            "bands": first.band_names,
        }
    models_summary = _summarise(values, bins, changed if has_strata else None)
    for key, by_region in unc.items():
        try:
            models_summary[key]["uncertainty"] = uncertainty_summary(by_region["overall"])
        except ConfigError as exc:  # e.g. a negative variance: name the model
            raise ConfigError(f"model {key!r}: {exc}") from None
    summary: dict[str, Any] = {
        "protocol": proto.name,
        "protocol_description": proto.description,
        "split": str(getattr(base, "split", "unknown")),
        "n_images": len(rows),
        "models": models_summary,
        "normalisation": first.protocol,
        "bands": first.band_names,
        "metric_bands": None if metric_set is None else list(metric_set.names),
        "center_crop": crop,
        "sam_units": proto.sam_units,
        "error_scale": proto.error_scale,
        "regions": REGIONS_TEXT,
        "aggregation": AGGREGATION_TEXT,
        "n_images_per_region": {
            r: int(sum(not math.isnan(v) for v in values[first.key][r]["mae"])) for r in REGIONS
        },
        "cover_bins": labels,
        "model": json_compatible(first.config) if first.config else {"name": first.key},
        "evaluated": evaluated,
        "cloudfree_version": version,
    }
    if unc:
        summary["uncertainty_definitions"] = UNCERTAINTY_DEFINITIONS
    if hasattr(base, "root"):
        summary["dataset"] = json_compatible(
            {
                "name": type(base).__name__,
                "root": str(Path(base.root).resolve()),
                "split_size": len(base),  # type: ignore[arg-type]
                "samples": "raw, normalised for each model" if raw else "normalised",
                **{
                    k: getattr(base, k)
                    for k in ("crop_size", "resize", "cloud_mask_method", "cloud_threshold")
                    if hasattr(base, k)
                },
            }
        )
    return EvaluationResult(
        rows=rows,
        summary=summary,
        model_name=first.key,
        model_names=tuple(nets),
        baseline_names=tuple(baseline_fns),
        uncertainty_names=tuple(unc),
    )


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    protocol: str | MetricProtocol = "uncrtaints",
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Metrics of ``model`` and of the identity baseline on every sample of ``dataset``:
    :func:`evaluate_models` with one model, keyed by its registry name (its class name when
    it has no ``cloudfree_config``). Same arguments, result and errors."""
    return evaluate_models(
        [model],
        dataset,
        protocol=protocol,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
    )


# ------------------------------------------------------------------------------ predictions
@dataclass
class SamplePredictions:
    """Some samples and the models' predictions on them, as plain arrays (what the report's
    panels draw; see :func:`cloudfree.report.panels.render_sample_panels`).

    Attributes:
        samples: per sample ``id`` (str), ``cloud_cover`` (float), ``optical`` and ``target``
            (reflectance float32 ``[C, H, W]``, the reference normalisation undone),
            ``sar`` (dB float32 ``[2, H, W]``), ``cloud_mask``, ``shadow_mask`` (float
            ``[H, W]``, 1 = labelled) and ``valid_mask`` (bool ``[H, W]``); for a time series
            ``optical`` / ``sar`` are its **last real input date** (what the temporal identity
            baseline copies and a mono-temporal model sees), ``input_dates`` the reflectance
            ``[C, H, W]`` of every real input date in series order (the last one is
            ``optical``) and ``date_labels`` their calendar days (``YYYY-MM-DD``, the day of
            ``DATE_EPOCH + dates``; None where the series has no date); when a model has a
            variance output, ``uncertainty``: model key -> its predicted standard deviation
            averaged over the bands, ``mean_c sqrt(var_c)`` in reflectance (float32
            ``[H, W]``, the variance scaled as in :func:`evaluate_models`), what
            :func:`cloudfree.report.panels.render_sample_panels` draws as an uncertainty map.
        predictions: model key -> one reflectance ``[C, H, W]`` float32 array per sample.
        band_names: the optical bands of every image.
        protocol: the reference normalisation (the first model's).
        metric_protocol, metrics_crop: how ``samples[i]["metrics"]`` were measured: per
            key (``identity`` first, then the models) PSNR and MAE inside clouds, on the
            pixels and the crop of the metrics table (see :func:`predict_samples`), None when
            that region has no pixel.
    """

    samples: list[dict[str, Any]]
    predictions: dict[str, list[np.ndarray]]
    band_names: list[str]
    protocol: str
    metric_protocol: str = "uncrtaints"
    metrics_crop: int | None = None


def _as_float32(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)


def _first_of(batch: Mapping[str, Any]) -> dict[str, Any]:
    """Sample 0 of a collated batch (tensors and lists indexed, anything else kept)."""
    return {k: v[0] if isinstance(v, torch.Tensor | list | tuple) else v for k, v in batch.items()}


def _day_label(days: Any) -> str | None:
    """``YYYY-MM-DD`` of the calendar day ``days`` after :data:`cloudfree.models.DATE_EPOCH`
    (fractions of a day rounded down); None for a non-finite or out-of-range value."""
    value = float(days)
    if not math.isfinite(value):
        return None
    try:
        start = dt.datetime.combine(DATE_EPOCH, dt.time())
        return (start + dt.timedelta(days=value)).date().isoformat()
    except OverflowError:
        return None


def _inside_cloud_metrics(
    image: np.ndarray, target: np.ndarray, region: torch.Tensor, proto: MetricProtocol
) -> dict[str, float] | None:
    """PSNR and MAE of one reflectance image ``[C, H, W]`` on ``region`` (``[1, 1, H, W]``
    bool, the inside-clouds region of :func:`_region_masks`), both on the centre crop of
    ``proto``; None where that region is empty."""
    region = center_crop(region, proto.center_crop)
    if not bool(region.any()):
        return None
    p = center_crop(torch.from_numpy(image[None]), proto.center_crop)
    y = center_crop(torch.from_numpy(target[None]), proto.center_crop)
    m = image_metrics(p, y, proto, region)
    return {"psnr": float(m["psnr"][0]), "mae": float(m["mae"][0])}


def predict_samples(
    models: ModelsArg,
    dataset: Dataset,
    indices: Sequence[int],
    *,
    metric_protocol: str | MetricProtocol = "uncrtaints",
    device: str | torch.device = "cpu",
) -> SamplePredictions:
    """Run ``models`` on the samples ``indices`` of ``dataset``, one sample at a time, and
    return the samples and the predictions as reflectance arrays, with each sample's
    inside-cloud PSNR / MAE per model and for the identity (``metrics``).

    The inputs are those of :func:`evaluate_models`, built by the same helpers: a raw
    dataset is normalised for each model (a normalised one must match every model); on a
    time-series dataset a temporal model gets the whole series with its ``dates`` and
    ``time_mask`` (a one-sample batch of :func:`cloudfree.data.collate_time_series`, read by
    :meth:`cloudfree.models.ModelBatch.from_sample`) and a mono-temporal model the series'
    last real input date (:func:`cloudfree.data.single_date_sample`). Models are moved to
    ``device``, run in eval mode without gradients, and their train/eval mode is restored.

    The drawn sample is the series normalised like the **first** model's inputs (the
    reference, as the baselines of :func:`evaluate_models`): its ``optical`` / ``sar`` are
    the last real input date (the temporal identity baseline's image; for a mono-temporal
    dataset the cloudy image); ``input_dates`` / ``date_labels`` hold every real input date
    of a time series and its day (see :class:`SamplePredictions`).

    The captions (``metrics``) are the metrics table's per-image values: each model's
    prediction is measured against the target and on the ``inside_clouds`` region (cloud,
    valid and, where the dataset has one, ``score_mask`` pixels) of **its own** inputs, the
    identity on those of the reference inputs, exactly as :func:`evaluate_models` does (the
    batch size aside, which can change the last digits).

    A model with a variance output also gives each sample's ``uncertainty`` map (see
    :class:`SamplePredictions`).

    Raises:
        ConfigError: what :func:`evaluate_models` raises for the models, models whose
            optical bands differ (panels compare the images band for band), or no index.
    """
    nets = _keyed_models(models, ())
    base = _base_dataset(dataset)
    raw = _is_raw(base)
    pb04 = bool(getattr(base, "pb04_offset", False))
    groups = _groups(nets, base)
    members = [m for g in groups for m in g.members]
    band_sets = {tuple(m.band_names) if m.band_names else None for m in members}
    if len(band_sets) > 1:
        raise ConfigError(
            "the models take different optical bands; panels need one band set: "
            + "; ".join(f"{m.key}: {','.join(m.band_names or ['?'])}" for m in members)
        )
    if not indices:
        raise ConfigError("no sample to predict")
    proto = get_metric_protocol(metric_protocol)
    dev = resolve_device(device)
    reference = groups[0]
    first = reference.members[0]
    norm = reference.protocol
    samples: list[dict[str, Any]] = []
    predictions: dict[str, list[np.ndarray]] = {k: [] for k in nets}
    was_training = {k: m.training for k, m in nets.items()}

    def inside_clouds(gb: Mapping[str, Any], protocol: str) -> tuple[np.ndarray, torch.Tensor]:
        """Reflectance target ``[C, H, W]`` and inside-clouds region of one group's batch."""
        target = gb["target"]
        region = _region_masks(gb, tuple(target.shape))["inside_clouds"]
        return to_reflectance(_as_float32(target[0]), protocol), region

    try:
        with torch.no_grad():
            for index in indices:
                sample = dataset[int(index)]
                one: Any = [sample] if raw else _collate([sample])
                stds: dict[str, np.ndarray] = {}
                metrics: dict[str, dict[str, float] | None] = {}
                scorings: list[tuple[np.ndarray, torch.Tensor]] = []
                for group in groups:
                    gb = _group_batch(one, group, raw, pb04)
                    inputs = ModelBatch.from_sample(gb).to(dev)
                    scoring = inside_clouds(gb, group.protocol)
                    scorings.append(scoring)
                    for member in group.members:
                        member.model.to(dev).eval()
                        out = run_model(member.model, inputs)
                        pred = to_reflectance(_as_float32(out.pred.float()[0]), group.protocol)
                        predictions[member.key].append(pred)
                        metrics[member.key] = _inside_cloud_metrics(pred, *scoring, proto)
                        if out.variance is not None and _has_variance(member.model):
                            var = out.variance.float()[0].clamp_min(0)
                            std = var.sqrt().mean(dim=0) * math.sqrt(
                                _variance_factor(group.protocol)
                            )
                            stds[member.key] = _as_float32(std)
                # what is drawn: the reference normalisation of the whole series
                series = _first_of(_group_batch(one, reference, raw, pb04, series=True))
                temporal = series["optical"].ndim == 4
                ref = single_date_sample(series) if temporal else series
                optical = to_reflectance(_as_float32(ref["optical"]), norm)
                identity = _inside_cloud_metrics(optical, *scorings[0], proto)  # the reference's
                entry: dict[str, Any] = {
                    "id": str(ref["id"]),
                    "cloud_cover": float(ref["cloud_cover"]),
                    "optical": optical,
                    "target": to_reflectance(_as_float32(ref["target"]), norm),
                    "sar": np.asarray(denormalize_sar(_as_float32(ref["sar"]), norm)),
                    "cloud_mask": _as_float32(ref["cloud_mask"])[0],
                    "shadow_mask": _as_float32(ref["shadow_mask"])[0]
                    if "shadow_mask" in ref
                    else None,
                    "valid_mask": np.asarray(ref["valid_mask"], dtype=bool)[0]
                    if "valid_mask" in ref
                    else None,
                }
                if temporal:
                    t = int(series["optical"].shape[0])
                    real = series.get("time_mask")
                    keep = [i for i in range(t) if real is None or bool(real[i])]
                    dates = series.get("dates")
                    entry["input_dates"] = [
                        to_reflectance(_as_float32(series["optical"][i]), norm) for i in keep
                    ]
                    entry["date_labels"] = [
                        None if dates is None else _day_label(dates[i]) for i in keep
                    ]
                if stds:
                    entry["uncertainty"] = stds
                entry["metrics"] = {IDENTITY_NAME: identity, **{k: metrics[k] for k in nets}}
                samples.append(entry)
    finally:
        for k, m in nets.items():
            m.train(was_training[k])
    band_names = first.band_names
    if band_names is None:  # a dataset without band names: positions only
        band_names = [f"band{i}" for i in range(samples[0]["optical"].shape[0])]
    return SamplePredictions(
        samples,
        predictions,
        list(band_names),
        reference.protocol,
        metric_protocol=proto.name,
        metrics_crop=proto.center_crop,
    )


# ---------------------------------------------------------------------------------- writing
def write_evaluation(
    result: EvaluationResult, out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``out_dir/per_image.csv`` and ``out_dir/summary.json``; return their paths.

    The CSV has the columns of ``result.columns`` (floats written with ``repr``, so they read
    back exactly; ``nan`` / ``inf`` as such). The JSON is the summary in strict JSON: a NaN
    (a region empty in every image) or an infinite mean (a perfect prediction under
    ``uncrtaints``) is written as ``null``; ``per_image.csv`` keeps the exact values. Both files are
    written atomically (temporary file, then rename); ``out_dir`` is created if needed.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file; the evaluation output must be a directory")
    csv_path = atomic_write_csv(out / PER_IMAGE_CSV, result.columns, result.rows)
    json_path = atomic_write_json(out / SUMMARY_JSON, json_compatible(result.summary))
    return csv_path, json_path


# ------------------------------------------------------------------------------- pipeline
#: How ``evaluate_checkpoints(sample=...)`` draws its images (recorded in the summary).
SAMPLE_TEXT = (
    "numpy.random.default_rng(seed).choice(population, n, replace=False) over the samples of "
    "the split (and season) in dataset order (season, scene, patch, natural sort), evaluated "
    "in dataset order; the draw depends on the seed and on the files present"
)


def _sample_indices(population: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices of ``range(population)`` drawn with ``seed``, sorted
    (:data:`SAMPLE_TEXT`)."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(population, size=n, replace=False))


def _check_count(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


@dataclass
class EvaluationData:
    """The samples an evaluation reads (:func:`build_evaluation_data`) and how they were chosen.

    Attributes:
        dataset: the samples evaluated, raw (a ``Subset`` of the split for ``limit`` /
            ``sample``).
        name: the registered dataset.
        split: the split built (``test`` by default, ``all`` with a season).
        season: the SEN12MS-CR season folder kept (``ROIs1868_summer``), or None.
        options: the dataset's constructor options (after the defaults named below).
        limit: the first-N limit, or None.
        sample: None, or ``{"n", "seed", "population", "method"}`` (:data:`SAMPLE_TEXT`).
        temporal: whether the dataset is registered as a time series.
    """

    dataset: Dataset
    name: str
    split: str
    season: str | None
    options: dict[str, Any]
    limit: int | None
    sample: dict[str, Any] | None
    temporal: bool


@dataclass
class _DatasetPlan:
    name: str
    split: str
    season: str | None
    options: dict[str, Any]
    limit: int | None
    sample: int | None
    seed: int | None
    temporal: bool


def default_baselines(dataset: str) -> tuple[str, ...]:
    """The baselines of an evaluation on registered dataset ``dataset``: ``identity``, and for
    a time series also :data:`cloudfree.evaluate.baselines.TEMPORAL_BASELINES`."""
    from cloudfree.data import get_dataset

    temporal = get_dataset(dataset).temporal
    return (IDENTITY_NAME, *(TEMPORAL_BASELINES if temporal else ()))


def _plan_dataset(
    dataset: str,
    *,
    split: str | None,
    dataset_options: Mapping[str, Any] | None,
    season: str | None,
    sample: int | None,
    seed: int | None,
    limit: int | None,
) -> _DatasetPlan:
    """Check the dataset selection (no file is read)."""
    from cloudfree.data import get_dataset
    from cloudfree.data.splits import season_folder

    _check_count("limit", limit, 1)
    _check_count("sample", sample, 1)
    _check_count("seed", seed, 0)
    if sample is not None and limit is not None:
        raise ConfigError("give limit (the first N samples) or sample (N at random), not both")
    if seed is not None and sample is None:
        raise ConfigError("seed sets the random draw of sample; give sample=N with it")
    info = get_dataset(dataset)
    options = dict(dataset_options or {})
    season_name: str | None = None
    if season is not None:
        if "seasons" not in info.options():
            raise ConfigError(
                f"season selects a SEN12MS-CR season; dataset {dataset!r} has no seasons option"
            )
        if "seasons" in options:
            raise ConfigError("give the season once: season= or dataset_options['seasons']")
        season_name = season_folder(season)
        options["seasons"] = [season_name]
    if split is None:
        split = "all" if season_name is not None else "test"
    return _DatasetPlan(dataset, split, season_name, options, limit, sample, seed, info.temporal)


def _build_planned(
    plan: _DatasetPlan,
    data_root: str | os.PathLike[str],
    *,
    csv_path: str | os.PathLike[str] | None = None,
    skip_incomplete: bool = False,
) -> EvaluationData:
    from cloudfree.data import build_dataset

    options = dict(plan.options)
    if plan.name == "sen12mscr":
        options = {"crop": "center", "csv_path": csv_path, **options}
    elif csv_path is not None:
        raise ConfigError(f"--csv belongs to SEN12MS-CR, not to dataset {plan.name!r}")
    if skip_incomplete:
        options["skip_incomplete"] = True
    full: Dataset = build_dataset(plan.name, data_root, split=plan.split, **options)
    data: Dataset = full
    population = len(full)  # type: ignore[arg-type]
    if plan.limit is not None and plan.limit < population:
        data = Subset(full, range(plan.limit))
    drawn: dict[str, Any] | None = None
    if plan.sample is not None:
        if plan.sample > population:
            where = f"the {plan.split!r} split" + (f" of {plan.season}" if plan.season else "")
            raise ConfigError(
                f"sample={plan.sample} asks for more images than {where} holds ({population})"
            )
        seed = int(plan.seed or 0)
        drawn = {"n": int(plan.sample), "seed": seed, "population": population}
        drawn["method"] = SAMPLE_TEXT
        data = Subset(full, _sample_indices(population, int(plan.sample), seed))
    return EvaluationData(
        data, plan.name, plan.split, plan.season, options, plan.limit, drawn, plan.temporal
    )


def build_evaluation_data(
    dataset: str,
    data_root: str | os.PathLike[str],
    *,
    split: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    season: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
    limit: int | None = None,
    csv_path: str | os.PathLike[str] | None = None,
    skip_incomplete: bool = False,
) -> EvaluationData:
    """The samples of an evaluation, chosen as ``cloudfree evaluate`` chooses them (what
    :func:`evaluate_checkpoints` and the benchmark build; arguments as there).

    The dataset is built once, raw (``protocol`` left at None), with whole patches:
    ``sen12mscr`` gets ``crop="center"`` and ``csv_path`` unless ``dataset_options`` say
    otherwise. ``season`` keeps one SEN12MS-CR season (and makes ``all`` the default split);
    ``limit`` keeps the first N samples; ``sample`` draws N of them with ``seed``
    (:data:`SAMPLE_TEXT`).

    Raises:
        ConfigError: an unknown dataset or option, an unknown season or a season for a
            dataset without seasons, ``sample`` larger than the split, ``sample`` with
            ``limit``, ``seed`` without ``sample``.
        DatasetError: a missing data root or an empty split.
    """
    plan = _plan_dataset(
        dataset,
        split=split,
        dataset_options=dataset_options,
        season=season,
        sample=sample,
        seed=seed,
        limit=limit,
    )
    return _build_planned(plan, data_root, csv_path=csv_path, skip_incomplete=skip_incomplete)


def evaluate_checkpoints(
    paths: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
    data_root: str | os.PathLike[str],
    *,
    split: str | None = None,
    protocol: str | MetricProtocol = "uncrtaints",
    out_dir: str | os.PathLike[str] | None,
    baselines: Sequence[str] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    limit: int | None = None,
    skip_incomplete: bool = False,
    csv_path: str | os.PathLike[str] | None = None,
    dataset: str = "sen12mscr",
    dataset_options: Mapping[str, Any] | None = None,
    season: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
    metric_bands: str | Sequence[str] | BandSet | None = None,
    inference: InferenceOptions | None = None,
) -> EvaluationResult:
    """Evaluate the models at ``paths`` on one dataset split and write the results.

    Args:
        paths: key -> pretrained weights directory or training run directory
            (:func:`load_model_for_evaluation`); a sequence is keyed by the models' names.
        data_root: SEN12MS-CR root (official or flat layout).
        split: ``train``, ``val``, ``test`` or ``all``; None (the default): ``test``, or
            ``all`` when a ``season`` is given (paper 000's out-of-domain sets are drawn from
            every image of a season, whatever the ROI lists say).
        season: evaluate on one SEN12MS-CR season only (``"summer"`` or
            ``"ROIs1868_summer"``, ...; the dataset's ``seasons`` option).
        sample: evaluate a seeded random sample of this many images of the split (and
            season) instead of all of them (:data:`SAMPLE_TEXT`): paper 000's out-of-domain
            tests are 951 summer, 1514 fall and 954 winter images
            (:func:`cloudfree.data.splits.mmcanet_out_of_domain_sizes`). Not with ``limit``.
        seed: seed of the ``sample`` draw (None: 0); only with ``sample``.
        metric_bands: score only these bands, e.g. ``"rgb"`` (see :func:`evaluate_models`).
        inference: run the networks in another precision or compiled
            (:func:`cloudfree.models.inference.for_inference`; recorded per model in the
            summary as ``runtime``).
        protocol: metric protocol name.
        out_dir: where :func:`write_evaluation` writes ``per_image.csv`` and ``summary.json``
            (None: write nothing).
        baselines, batch_size, device, num_workers, progress: see :func:`evaluate_models`.
        limit: evaluate only the first ``limit`` samples of the split (in dataset order).
        skip_incomplete, csv_path: passed to :class:`~cloudfree.data.SEN12MSCR`
            (``skip_incomplete`` to any dataset that takes it).
        dataset: a registered dataset (``sen12mscr``, ``sen12mscr_ts``).
        dataset_options: more constructor options of a dataset (e.g. ``{"sampler": "fixed"}``
            for ``sen12mscr_ts``).
        baselines: default ``identity``; for a temporal dataset also ``least_cloudy``,
            ``mosaic`` and ``most_recent_clear``.

    The dataset is built once, ``SEN12MSCR(data_root, split=split, crop="center")`` with
    whole patches and raw samples (``dataset_options`` may add e.g. ``{"resize": 128}``, the
    MMCANet protocol), and each model gets them normalised with its own protocol and bands.
    The summary also records ``checkpoints`` / ``weights_dirs`` (key -> the path given / the
    directory loaded), ``checkpoint`` and ``weights_dir`` (the first model's), ``limit``,
    ``season`` (the full season name or None) and ``sample`` (None, or ``{"n", "seed",
    "population", "method"}``: the population is the number of images the draw was made from;
    the drawn ids are the rows of ``per_image.csv``).

    Raises:
        InputFileError: no loadable weights at a path.
        DatasetError: missing data root or empty split.
        ConfigError: bad options: among them an unknown season, a season for a dataset
            without seasons, ``sample`` larger than the split (and season), ``sample`` with
            ``limit``, or ``seed`` without ``sample``.
    """
    proto = get_metric_protocol(protocol)
    plan = _plan_dataset(
        dataset,
        split=split,
        dataset_options=dataset_options,
        season=season,
        sample=sample,
        seed=seed,
        limit=limit,
    )
    resolve_device(device)  # fail on an unavailable device before loading anything
    if isinstance(paths, Mapping):
        given = {str(k): Path(p) for k, p in paths.items()}
        models = {k: load_model_for_evaluation(p, map_location="cpu") for k, p in given.items()}
    else:
        loaded = [(Path(p), load_model_for_evaluation(p, map_location="cpu")) for p in paths]
        keys = [_default_key(m) for _, m in loaded]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ConfigError(
                f"several checkpoints hold a {', '.join(map(repr, twice))} model; name them "
                "(a mapping key -> path; KEY=PATH on the command line)"
            )
        given = {k: p for k, (p, _) in zip(keys, loaded)}
        models = {k: m for k, (_, m) in zip(keys, loaded)}
    models = {k: for_inference(m, inference) for k, m in models.items()}
    if baselines is None:
        baselines = default_baselines(dataset)
    planned = _build_planned(plan, data_root, csv_path=csv_path, skip_incomplete=skip_incomplete)
    result = evaluate_models(
        models,
        planned.dataset,
        baselines=baselines,
        protocol=proto,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        metric_bands=metric_bands,
    )
    s = result.summary
    s["checkpoints"] = {k: str(p.resolve()) for k, p in given.items()}
    s["weights_dirs"] = {
        k: str(Path(m.cloudfree_weights_dir).resolve())  # type: ignore[arg-type]
        for k, m in models.items()
    }
    s["checkpoint"] = s["checkpoints"][result.model_name]
    s["weights_dir"] = s["weights_dirs"][result.model_name]
    s["limit"] = limit
    s["season"] = planned.season
    s["sample"] = planned.sample
    s["dataset_name"] = dataset
    s["dataset_options"] = json_compatible(planned.options)
    if out_dir is not None:
        write_evaluation(result, out_dir)
    return result


def evaluate_checkpoint(
    path: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    *,
    split: str = "test",
    protocol: str | MetricProtocol = "uncrtaints",
    out_dir: str | os.PathLike[str] | None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    limit: int | None = None,
) -> EvaluationResult:
    """Evaluate the model at ``path`` (pretrained weights directory or training run
    directory) on a SEN12MS-CR split and write the results: :func:`evaluate_checkpoints`
    with one path. Same arguments, summary keys and errors."""
    return evaluate_checkpoints(
        [path],
        data_root,
        split=split,
        protocol=protocol,
        out_dir=out_dir,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        limit=limit,
    )
