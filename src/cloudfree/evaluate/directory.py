"""Evaluate a folder of predicted GeoTIFFs against a folder of reference GeoTIFFs.

Files are paired by identical file name (searched recursively, ``*.tif`` / ``*.tiff``);
pixel values are Sentinel-2 DN (reflectance x 10000), scaled to [0, 1] by clipping to
[0, 10000] and dividing by 10000. Metrics come from :func:`cloudfree.metrics.image_metrics`.

Refused (never a plausible wrong number):

* ``pred_dir`` and ``target_dir`` resolving to the same directory, or a pair whose two files
  are the same file (a symlink): the metrics would be perfect (PSNR inf) by construction;
* a pair on different grids: different CRS or geotransform (size is checked too); both files
  and both grids are named (two files without CRS need the same geotransform);
* a file that is not Sentinel-2 DN (:func:`cloudfree.io.checks.check_optical_scale`):
  ``uint8``, 0..1 reflectance (a ``predict --dtype float32`` output: write ``uint16`` DN
  instead), values that are not DN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloudfree.bands import BandSet, get_band_set
from cloudfree.errors import CloudfreeError, DatasetError, InputFileError
from cloudfree.io import read_raster
from cloudfree.io.atomic import atomic_write_csv
from cloudfree.io.checks import check_optical_scale
from cloudfree.metrics import METRIC_NAMES, MetricProtocol, get_metric_protocol, image_metrics
from cloudfree.normalization import normalize_optical

__all__ = [
    "CSV_COLUMNS",
    "center_crop",
    "evaluate_directories",
    "find_rasters",
    "pair_files",
    "read_reflectance",
    "write_metrics_csv",
]

#: Columns of the per-image CSV.
CSV_COLUMNS: tuple[str, ...] = ("id", *METRIC_NAMES)

_SUFFIXES = (".tif", ".tiff")
_MAX_LISTED = 5


def find_rasters(directory: str | os.PathLike[str], role: str = "") -> dict[str, Path]:
    """All ``*.tif`` / ``*.tiff`` files under ``directory`` (recursive), keyed by file name.

    The suffix test is case-insensitive; hidden files (names starting with ``.``, such as
    temporary files) are skipped. Raises :class:`InputFileError` when ``directory`` is
    missing or not a directory, and :class:`DatasetError` when two files share a name.
    """
    d = Path(directory)
    label = f"{role} directory" if role else "directory"
    if not d.exists():
        raise InputFileError(d, f"{label} not found")
    if not d.is_dir():
        raise InputFileError(d, f"is not a directory (expected the {label})")
    found: dict[str, Path] = {}
    for path in sorted(d.rglob("*")):
        if path.name.startswith(".") or path.suffix.lower() not in _SUFFIXES:
            continue
        if not path.is_file():
            continue
        if path.name in found:
            raise DatasetError(
                f"{d}: two files are named {path.name!r} ({found[path.name]} and {path}); "
                "files are paired by name, so names must be unique"
            )
        found[path.name] = path
    return found


def pair_files(
    pred_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]
) -> list[tuple[str, Path, Path]]:
    """``(file name, pred path, target path)`` for every prediction, sorted by name.

    Every prediction must have a target of the same name; targets without a prediction are
    ignored. Raises :class:`DatasetError` if ``pred_dir`` holds no GeoTIFF or some
    predictions have no target (up to five names are listed).
    """
    preds = find_rasters(pred_dir, "prediction")
    if not preds:
        raise DatasetError(f"{pred_dir}: no .tif or .tiff files found (searched recursively)")
    targets = find_rasters(target_dir, "target")
    missing = [name for name in sorted(preds) if name not in targets]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise DatasetError(
            f"{target_dir}: no target file for {len(missing)} of {len(preds)} prediction(s): "
            f"{listed}{more}"
        )
    return [(name, preds[name], targets[name]) for name in sorted(preds)]


def center_crop(array: np.ndarray, size: int | None) -> np.ndarray:
    """Centre ``size x size`` crop of ``[..., H, W]`` with offset ``(H - size) // 2``.

    As in GLF-CR's loader, a dimension smaller than ``size`` is kept whole.
    ``size=None`` returns the array unchanged.
    """
    if size is None:
        return array
    h, w = array.shape[-2:]
    y = max(0, h - size) // 2
    x = max(0, w - size) // 2
    return array[..., y : y + size, x : x + size]


def read_reflectance(
    path: str | os.PathLike[str], band_set: BandSet | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``[C, H, W]`` in [0, 1] and validity ``[H, W]`` of one Sentinel-2 DN
    GeoTIFF (``uncrtaints`` scaling: clip to [0, 10000], divide by 10000; NaN or nodata in
    any band is invalid). ``band_set`` slices a 13-band file (or checks a file of exactly
    those bands)."""
    return _reflectance_of(read_raster(path), path, band_set)


#: How to fix a prediction written as reflectance (named in the scale error).
_SCALE_FIX = "evaluation reads DN: write predictions with `cloudfree predict --dtype uint16`"


def _reflectance_of(
    raster: Any, path: str | os.PathLike[str], band_set: BandSet | None
) -> tuple[np.ndarray, np.ndarray]:
    arr = raster.array
    check_optical_scale(arr, path, raster.nodata, scale_fix=_SCALE_FIX)
    if band_set is not None:
        if arr.shape[0] == 13:
            arr = band_set.select(arr, axis=0)
        elif arr.shape[0] != len(band_set):
            raise InputFileError(
                path,
                f"has {arr.shape[0]} band(s); expected 13 (full L1C, from which "
                f"{','.join(band_set.names)} are taken) or {len(band_set)} (those bands only)",
            )
    norm = normalize_optical(arr, "uncrtaints", nodata=raster.nodata)
    return norm.array, norm.valid


def write_metrics_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, float | str]]) -> Path:
    """Write per-image rows (columns :data:`CSV_COLUMNS`) to ``path`` atomically.

    Floats are written with ``repr`` (shortest text that reads back to the same float;
    ``nan`` and ``inf`` as such). The file appears only when complete: it is written to a
    temporary name in the same directory and renamed.
    """
    return atomic_write_csv(path, CSV_COLUMNS, rows)


def evaluate_directories(
    pred_dir: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    protocol: str | MetricProtocol = "uncrtaints",
    out_csv: str | os.PathLike[str] | None = None,
    bands: str | Sequence[str] | BandSet | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, float | str]], dict[str, float]]:
    """Metrics of every predicted GeoTIFF against the reference of the same file name.

    Args:
        pred_dir: folder of predictions (searched recursively for ``*.tif`` / ``*.tiff``).
        target_dir: folder of references; each prediction needs a file of the same name
            somewhere below it (extra references are ignored).
        protocol: metric protocol name (see :data:`cloudfree.metrics.METRIC_PROTOCOLS`).
            Its ``center_crop`` (GLF-CR, CARF: 128) is applied to both images first,
            offset ``(H - 128) // 2``; smaller images are used whole, as in GLF-CR.
        out_csv: where to write the per-image CSV (columns ``id, psnr, ssim, sam, mae,
            rmse``; ``id`` is the file name without its suffix), or None for no file. The
            CSV is written only after every pair has been evaluated, atomically.
        bands: evaluate only these bands (names, e.g. ``"rgb"`` or ``"B04,B03,B02"``, see
            :func:`cloudfree.bands.get_band_set`). A 13-band file is sliced; a file with
            exactly that many bands is assumed to hold them in that order. None: all bands
            of the files, whatever their count (pred and target must agree).
        progress: show a tqdm progress bar (images, on stderr), as ``cloudfree evaluate``
            does.

    Pixel values are Sentinel-2 DN (uint16, reflectance x 10000, no processing-baseline
    offset), scaled by :func:`cloudfree.normalization.normalize_optical` with the
    ``uncrtaints`` protocol: clip to [0, 10000], divide by 10000. Pixels that are NaN or
    equal to a file's nodata value in any band, in pred or target, are set to 0 and
    excluded through the metric mask (SSIM windows of nearby valid pixels still see the 0);
    there is no cloud mask here, so under ``allclear`` only this validity mask applies.

    Returns:
        ``(rows, means)``: one dict per image (``id`` plus the five metrics, floats) sorted
        by file name, and the nan-mean of each metric over images (NaN if all are NaN;
        ``inf`` PSNR, from a perfect prediction, makes the mean PSNR ``inf``).

    Raises:
        InputFileError: a directory is missing, a file unreadable, or a pair differs in
            band count or size (both files named).
        DatasetError: no GeoTIFF in ``pred_dir``, predictions without targets, or
            duplicate file names.
    """
    proto = get_metric_protocol(protocol)
    band_set = None if bands is None else get_band_set(bands)
    _check_distinct_dirs(pred_dir, target_dir)
    pairs = pair_files(pred_dir, target_dir)
    rows: list[dict[str, float | str]] = []
    from tqdm.auto import tqdm

    for name, pred_path, target_path in tqdm(
        pairs, desc="evaluate", unit="image", disable=not progress, dynamic_ncols=True
    ):
        if _same_file(pred_path, target_path):
            raise InputFileError(
                pred_path, f"is the same file as its target {target_path}; nothing to evaluate"
            )
        pred_raster, target_raster = read_raster(pred_path), read_raster(target_path)
        _check_same_grid(pred_path, pred_raster, target_path, target_raster)
        p, p_valid = _reflectance_of(pred_raster, pred_path, band_set)
        t, t_valid = _reflectance_of(target_raster, target_path, band_set)
        if p.shape != t.shape:
            raise InputFileError(
                pred_path,
                f"has {p.shape[0]} band(s) of {p.shape[1]}x{p.shape[2]} pixels but its "
                f"target {target_path} has {t.shape[0]} band(s) of "
                f"{t.shape[1]}x{t.shape[2]} pixels",
            )
        p = center_crop(p, proto.center_crop)
        t = center_crop(t, proto.center_crop)
        valid = center_crop(p_valid & t_valid, proto.center_crop)
        mask = None if valid.all() else torch.from_numpy(np.ascontiguousarray(valid))[None, None]
        try:
            values = image_metrics(
                torch.from_numpy(np.ascontiguousarray(p[None])),
                torch.from_numpy(np.ascontiguousarray(t[None])),
                proto,
                mask,
            )
        except CloudfreeError as exc:
            raise InputFileError(pred_path, str(exc)) from None
        row: dict[str, float | str] = {"id": Path(name).stem}
        row.update({k: float(values[k][0]) for k in METRIC_NAMES})
        rows.append(row)
    means = {k: _nanmean([float(r[k]) for r in rows]) for k in METRIC_NAMES}
    if out_csv is not None:
        write_metrics_csv(out_csv, rows)
    return rows, means


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _check_distinct_dirs(
    pred_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]
) -> None:
    p, t = Path(pred_dir), Path(target_dir)
    if p.is_dir() and t.is_dir() and _same_file(p, t):
        raise InputFileError(
            p,
            f"the prediction and target directories are the same ({p.resolve()}); every "
            "prediction would be compared with itself (PSNR inf)",
        )


def _grid_text(r: Any) -> str:
    t = r.transform
    return (
        f"{r.width}x{r.height} px, {r.crs or 'no CRS'}, origin ({t.c:.6g}, {t.f:.6g}), "
        f"pixel ({t.a:.6g}, {t.e:.6g})"
    )


def _check_same_grid(pred_path: Path, pred: Any, target_path: Path, target: Any) -> None:
    """Refuse a pair on different grids (CRS, geotransform); sizes are checked later."""
    same = pred.crs == target.crs and pred.transform.almost_equals(target.transform)
    if not same:
        raise InputFileError(
            pred_path,
            f"is not on the grid of its target {target_path} (prediction: {_grid_text(pred)}; "
            f"target: {_grid_text(target)}); reproject one onto the other's grid",
        )


def _nanmean(values: Sequence[float]) -> float:
    finite_or_inf = [v for v in values if not math.isnan(v)]
    if not finite_or_inf:
        return math.nan
    return float(np.mean(finite_or_inf))
