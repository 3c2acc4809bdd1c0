"""Evaluate a trained model on a dataset split, next to the identity baseline.

:func:`evaluate_checkpoint` is the whole pipeline (what ``cloudfree evaluate --checkpoint RUN
--data ROOT`` runs): it loads the weights (:func:`load_model_for_evaluation`), builds the
SEN12MS-CR split scaled as the model expects, evaluates (:func:`evaluate_model`) and writes
``per_image.csv`` and ``summary.json`` (:func:`write_evaluation`).

Conventions (the summary repeats the essentials, so a report states how it was measured):

* **Two predictions per image**: the model's output and ``identity``, the cloudy input used as
  the prediction (the floor every paper reports).
* **Scaling**: inputs, outputs and targets are in the model's normalisation protocol
  (``model.cloudfree_config["protocol"]``, e.g. ``dsen2cr`` = DN / 2000). Before the metrics,
  pred, identity and target are converted to reflectance in [0, 1] with
  ``denormalize_optical(x, protocol) / 10000`` (clipped to [0, 10000] DN), so every model is
  measured on the same scale whatever its training scaling.
* **Centre crop**: when the metric protocol has a ``center_crop`` (``glf_cr``, ``carf``: 128)
  the model still sees the whole sample; the centre crop (offset ``(H - size) // 2``, as
  :func:`cloudfree.evaluate.center_crop`) is taken of pred, identity, target and every mask
  before the metrics. A sample smaller than the crop is used whole.
* **Regions** (each intersected with the sample's ``valid_mask``):
  ``overall`` = every valid pixel; ``inside_clouds`` = ``cloud_mask > 0.5``;
  ``outside_clouds`` = neither cloud (``cloud_mask <= 0.5``) nor cloud shadow
  (``shadow_mask <= 0.5``). Shadow pixels are therefore in ``overall`` only. The masks are
  those of the dataset (SEN12MS-CR: the rule-based detector on the cloudy patch).
* **Means over images** are nan-means: an image whose region is empty (no cloud pixel, or no
  clear pixel) has NaN metrics for that region and is left out of that region's mean; a
  region empty in every image gives NaN. ``n_images_per_region`` in the summary counts the
  images that entered each region's mean. A perfect prediction has PSNR ``inf`` under
  ``uncrtaints`` (and makes the mean ``inf``); see :func:`cloudfree.metrics.image_metrics`.
* **Cover bins** (:data:`cloudfree.data.COVER_BINS`: 0-20, ..., 80-100 %) use each sample's
  ``cloud_cover``, the cloud fraction of the whole (uncropped) cloudy patch; ``per_cover_bin``
  holds the nan-mean of the **overall** metrics of the images in the bin (an empty bin has
  ``n`` 0 and NaN metrics).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from cloudfree.bands import get_band_set
from cloudfree.data.sampling import COVER_BINS, assign_cover_bins, cover_bin_labels
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.evaluate.directory import center_crop
from cloudfree.io.atomic import atomic_write_csv, atomic_write_json, json_compatible
from cloudfree.metrics import METRIC_NAMES, MetricProtocol, get_metric_protocol, image_metrics
from cloudfree.models.api import ModelBatch, run_model, spec_of
from cloudfree.normalization import denormalize_optical, get_protocol

__all__ = [
    "EvaluationResult",
    "IDENTITY_NAME",
    "REGIONS",
    "evaluate_checkpoint",
    "evaluate_model",
    "load_model_for_evaluation",
    "per_image_columns",
    "resolve_weights_dir",
    "write_evaluation",
]

#: Name under which the cloudy input, used as the prediction, is reported.
IDENTITY_NAME = "identity"

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

_PRETRAINED_FILES = ("config.json", "model.safetensors")
_EXPECTED = (
    "expected a pretrained weights directory (config.json + model.safetensors) or a training "
    "run directory holding weights/best/ or weights/final/ with those files"
)


@dataclass
class EvaluationResult:
    """What :func:`evaluate_model` measured.

    Attributes:
        rows: one dict per image, in dataset order: ``id``, ``cloud_cover`` (float),
            ``cover_bin`` (label such as ``"20-40"``) and a float for every column
            ``<name>_<region>_<metric>`` of :func:`per_image_columns`.
        summary: the JSON-ready summary (schema in :func:`evaluate_model`).
        model_name: the model's registry name (the key beside ``identity`` in
            ``summary["models"]``).
    """

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    model_name: str
    columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = per_image_columns(self.model_name)


def per_image_columns(model_name: str) -> tuple[str, ...]:
    """Columns of ``per_image.csv``: ``id, cloud_cover, cover_bin``, then
    ``<name>_<region>_<metric>`` for the model, then for ``identity``."""
    return (
        "id",
        "cloud_cover",
        "cover_bin",
        *(
            f"{name}_{region}_{metric}"
            for name in (model_name, IDENTITY_NAME)
            for region in REGIONS
            for metric in METRIC_NAMES
        ),
    )


# --------------------------------------------------------------------------------- loading
def _has_pretrained_file(d: Path) -> bool:
    return any((d / name).exists() for name in _PRETRAINED_FILES)


def resolve_weights_dir(path: str | os.PathLike[str]) -> Path:
    """The pretrained weights directory that ``path`` designates.

    ``path`` is either a pretrained directory (``config.json`` + ``model.safetensors``), or a
    training run directory: then ``<run>/weights/best`` when it holds weights (or a config),
    else ``<run>/weights/final``. The chosen directory is not checked further here
    (:func:`cloudfree.models.load_pretrained` names any missing or unreadable file).

    Raises:
        InputFileError: ``path`` is missing, is a file, or is neither kind of directory.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, f"not found ({_EXPECTED})")
    if not p.is_dir():
        hint = (
            "; Lightning checkpoints are not evaluated directly, pass the run directory"
            if p.suffix == ".ckpt"
            else ""
        )
        raise InputFileError(p, f"is a file, not a directory ({_EXPECTED}){hint}")
    if _has_pretrained_file(p):
        return p
    weights = p / "weights"
    for candidate in (weights / "best", weights / "final"):
        if candidate.is_dir() and _has_pretrained_file(candidate):
            return candidate
    raise InputFileError(p, f"holds no model weights ({_EXPECTED})")


def load_model_for_evaluation(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Load the model of a pretrained directory or of a training run (eval mode).

    See :func:`resolve_weights_dir` for which weights a run directory gives (best validation
    weights when present, else the final ones). The returned model carries
    ``cloudfree_config`` (name, kwargs, normalisation protocol, bands) and
    ``cloudfree_weights_dir`` (the directory actually loaded).

    Raises:
        InputFileError: no weights at ``path``, or unreadable / mismatching files.
    """
    from cloudfree.models import load_pretrained

    weights_dir = resolve_weights_dir(path)
    model = load_pretrained(weights_dir, map_location=map_location)
    model.cloudfree_weights_dir = str(weights_dir)  # type: ignore[assignment]
    return model


# ------------------------------------------------------------------------------- evaluation
def _base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc}); use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available here")
    return dev


def _model_facts(model: nn.Module, base: Dataset) -> tuple[str, str, list[str] | None, dict]:
    """(name, normalisation protocol, band names or None, config) of ``model``."""
    cfg = getattr(model, "cloudfree_config", None)
    cfg = dict(cfg) if isinstance(cfg, dict) else {}
    name = str(cfg.get("name") or type(model).__name__)
    if name == IDENTITY_NAME:
        raise ConfigError(f"a model cannot be called {IDENTITY_NAME!r} (the baseline's name)")
    data_protocol = getattr(base, "protocol", None)
    norm = cfg.get("protocol") or data_protocol
    if norm is None:
        raise ConfigError(
            "the model has no cloudfree_config (build it with cloudfree.models.create_model) "
            "and the dataset names no normalisation protocol, so its scaling is unknown"
        )
    norm = get_protocol(norm).name
    if data_protocol is not None and get_protocol(data_protocol).name != norm:
        raise ConfigError(
            f"the dataset is scaled with the {data_protocol!r} protocol but model {name!r} "
            f"expects {norm!r}; build the dataset with protocol={norm!r}"
        )
    band_names: list[str] | None = None
    data_bands = getattr(base, "bands", None)
    if "bands" in cfg:
        band_names = list(get_band_set(cfg["bands"]).names)
        if data_bands is not None and list(data_bands.names) != band_names:
            raise ConfigError(
                f"the dataset provides bands {','.join(data_bands.names)} but model {name!r} "
                f"expects {','.join(band_names)}; build the dataset with those bands"
            )
    elif data_bands is not None:
        band_names = list(data_bands.names)
    if spec_of(model).inputs.temporal:
        raise ConfigError(
            f"model {name!r} is multi-temporal; this evaluation feeds one cloudy image "
            "per sample (SEN12MS-CR)"
        )
    return name, norm, band_names, cfg


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _region_masks(batch: dict[str, Any], shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    b, _, h, w = shape
    valid = batch.get("valid_mask")
    valid = torch.ones((b, 1, h, w), dtype=torch.bool) if valid is None else valid.to(torch.bool)
    if "cloud_mask" not in batch:
        raise DatasetError("samples need a 'cloud_mask' [1, H, W] to split inside/outside clouds")
    cloud = batch["cloud_mask"] > 0.5
    shadow = batch.get("shadow_mask")
    clear = ~cloud if shadow is None else ~cloud & ~(shadow > 0.5)
    return {"overall": valid, "inside_clouds": cloud & valid, "outside_clouds": clear & valid}


def _summarise(values: dict[str, dict[str, dict[str, list[float]]]], bins: np.ndarray) -> dict:
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
        models[name] = entry
    return models


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
    """Metrics of ``model`` and of the identity baseline on every sample of ``dataset``.

    Args:
        model: a mono-temporal model (called through :func:`cloudfree.models.run_model`), built
            by :func:`cloudfree.models.create_model` / ``load_pretrained`` (its
            ``cloudfree_config`` gives its name, normalisation protocol and bands). It is
            moved to ``device`` and run in eval mode under ``torch.no_grad()``; its
            train/eval mode is restored afterwards.
        dataset: samples as :class:`cloudfree.data.SEN12MSCR` yields them (``optical``,
            ``sar``, ``target``, ``cloud_mask``, ``shadow_mask``, ``valid_mask``,
            ``cloud_cover``, ``id``), scaled with the model's normalisation protocol; a
            ``torch.utils.data.Subset`` of one is fine. When the (base) dataset has
            ``protocol`` / ``bands`` attributes they must match the model's.
        protocol: metric protocol (:data:`cloudfree.metrics.METRIC_PROTOCOLS`).
        batch_size, num_workers: DataLoader settings (order is kept: no shuffling).
        device: ``cpu``, ``cuda`` or ``cuda:N``; metrics are computed there too.
        progress: show a tqdm progress bar (images).

    Returns:
        An :class:`EvaluationResult`. ``summary`` holds at least::

            {"protocol": str, "split": str, "n_images": int,
             "models": {NAME: {"overall" | "inside_clouds" | "outside_clouds":
                                  {"psnr", "ssim", "sam", "mae", "rmse": float},
                               "per_cover_bin": {"0-20": {"n": int, "psnr": ..., ...}, ...}},
                        "identity": {...same...}}}

        plus ``normalisation``, ``bands``, ``center_crop``, ``regions``, ``aggregation``,
        ``n_images_per_region`` and ``model`` (the model config). See the module docstring
        for the scaling, crop, region and mean conventions.

    Raises:
        ConfigError: bad options, a device that is not available, or a dataset scaled or
            band-selected differently from the model.
        DatasetError: an empty dataset or samples without the needed keys.
    """
    from tqdm.auto import tqdm

    from cloudfree import __version__

    proto = get_metric_protocol(protocol)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    dev = _device(device)
    n_total = len(dataset)  # type: ignore[arg-type]
    if n_total == 0:
        raise DatasetError("the dataset to evaluate is empty")
    base = _base_dataset(dataset)
    name, norm, band_names, cfg = _model_facts(model, base)

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    crop = proto.center_crop
    names = (name, IDENTITY_NAME)
    values = {n: {r: {m: [] for m in METRIC_NAMES} for r in REGIONS} for n in names}
    ids: list[str] = []
    covers: list[float] = []

    def to_reflectance(x: torch.Tensor) -> torch.Tensor:
        return center_crop(denormalize_optical(x, norm) / 10000.0, crop)

    was_training = model.training
    model.to(dev).eval()
    try:
        with (
            torch.no_grad(),
            tqdm(total=n_total, desc=f"evaluate {name}", unit="img", disable=not progress) as bar,
        ):
            for batch in loader:
                for key in ("optical", "target", "id", "cloud_cover"):
                    if key not in batch:
                        raise DatasetError(f"samples have no {key!r} entry")
                inputs = ModelBatch.from_sample(batch).to(dev, non_blocking=True)
                optical = inputs.optical
                target = batch["target"].to(dev, non_blocking=True)
                pred = run_model(model, inputs).pred
                if pred.shape != target.shape:
                    raise ConfigError(
                        f"model {name!r} returned {tuple(pred.shape)}, expected a tensor shaped "
                        f"like the target {tuple(target.shape)}"
                    )
                masks = {
                    r: center_crop(m, crop).to(dev)
                    for r, m in _region_masks(batch, tuple(target.shape)).items()
                }
                y = to_reflectance(target.float())
                preds = {name: to_reflectance(pred.float()), IDENTITY_NAME: to_reflectance(optical)}
                for n, p in preds.items():
                    for region, mask in masks.items():
                        metrics = image_metrics(p, y, proto, mask)
                        for m in METRIC_NAMES:
                            values[n][region][m].extend(metrics[m].double().cpu().tolist())
                ids.extend(str(i) for i in batch["id"])
                covers.extend(float(c) for c in torch.as_tensor(batch["cloud_cover"]).reshape(-1))
                bar.update(len(batch["id"]))
    finally:
        model.train(was_training)

    bins = assign_cover_bins(np.asarray(covers, dtype=np.float64), COVER_BINS)
    labels = cover_bin_labels(COVER_BINS)
    rows: list[dict[str, Any]] = []
    for i, (sample_id, cover) in enumerate(zip(ids, covers)):
        row: dict[str, Any] = {
            "id": sample_id,
            "cloud_cover": cover,
            "cover_bin": labels[bins[i]] if bins[i] >= 0 else "",
        }
        for n in names:
            for region in REGIONS:
                for m in METRIC_NAMES:
                    row[f"{n}_{region}_{m}"] = values[n][region][m][i]
        rows.append(row)

    summary: dict[str, Any] = {
        "protocol": proto.name,
        "protocol_description": proto.description,
        "split": str(getattr(base, "split", "unknown")),
        "n_images": len(rows),
        "models": _summarise(values, bins),
        "normalisation": norm,
        "bands": band_names,
        "center_crop": crop,
        "sam_units": proto.sam_units,
        "error_scale": proto.error_scale,
        "regions": REGIONS_TEXT,
        "aggregation": AGGREGATION_TEXT,
        "n_images_per_region": {
            r: int(sum(not math.isnan(v) for v in values[name][r]["mae"])) for r in REGIONS
        },
        "cover_bins": labels,
        "model": json_compatible(cfg) if cfg else {"name": name},
        "cloudfree_version": __version__,
    }
    if hasattr(base, "root"):
        summary["dataset"] = json_compatible(
            {
                "name": type(base).__name__,
                "root": str(Path(base.root).resolve()),
                "split_size": len(base),  # type: ignore[arg-type]
                **{
                    k: getattr(base, k)
                    for k in ("crop_size", "resize", "cloud_mask_method", "cloud_threshold")
                    if hasattr(base, k)
                },
            }
        )
    return EvaluationResult(rows=rows, summary=summary, model_name=name)


# ---------------------------------------------------------------------------------- writing
def write_evaluation(
    result: EvaluationResult, out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``out_dir/per_image.csv`` and ``out_dir/summary.json``; return their paths.

    The CSV has the columns of :func:`per_image_columns` (floats written with ``repr``, so
    they read back exactly; ``nan`` / ``inf`` as such). The JSON is the summary as is (NaN and
    infinity written as ``NaN`` / ``Infinity``, which Python's ``json`` reads). Both files are
    written atomically (temporary file, then rename); ``out_dir`` is created if needed.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file; the evaluation output must be a directory")
    csv_path = atomic_write_csv(out / PER_IMAGE_CSV, result.columns, result.rows)
    json_path = atomic_write_json(out / SUMMARY_JSON, json_compatible(result.summary))
    return csv_path, json_path


# ------------------------------------------------------------------------------- pipeline
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
    """Evaluate the model at ``path`` on a SEN12MS-CR split and write the results.

    Args:
        path: pretrained weights directory or training run directory
            (:func:`load_model_for_evaluation`).
        data_root: SEN12MS-CR root (official or flat layout).
        split: ``train``, ``val``, ``test`` or ``all``.
        protocol: metric protocol name.
        out_dir: where :func:`write_evaluation` writes ``per_image.csv`` and ``summary.json``
            (None: write nothing).
        batch_size, device, num_workers, progress: see :func:`evaluate_model`.
        limit: evaluate only the first ``limit`` samples of the split (in dataset order).

    The dataset is ``SEN12MSCR(data_root, split=split, protocol=<model's normalisation>,
    bands=<model's bands>, crop="center")`` with whole patches, so the data are scaled as the
    model expects. The summary also records ``checkpoint`` (the path given), ``weights_dir``
    (the directory loaded) and ``limit``.

    Raises:
        InputFileError: no loadable weights at ``path``.
        DatasetError: missing data root or empty split.
        ConfigError: bad options.
    """
    from cloudfree.data import SEN12MSCR

    proto = get_metric_protocol(protocol)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    _device(device)  # fail on an unavailable device before loading anything
    model = load_model_for_evaluation(path, map_location="cpu")
    cfg = model.cloudfree_config  # type: ignore[attr-defined]
    full = SEN12MSCR(
        data_root,
        split=split,  # type: ignore[arg-type]
        protocol=cfg["protocol"],
        bands=cfg["bands"],
        crop="center",
    )
    dataset: Dataset = full
    if limit is not None and limit < len(full):
        dataset = Subset(full, range(limit))
    result = evaluate_model(
        model,
        dataset,
        protocol=proto,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
    )
    result.summary["checkpoint"] = str(Path(path).resolve())
    result.summary["weights_dir"] = str(Path(model.cloudfree_weights_dir).resolve())
    result.summary["limit"] = limit
    if out_dir is not None:
        write_evaluation(result, out_dir)
    return result
