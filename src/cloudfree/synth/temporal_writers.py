"""Write synthetic time series in the SEN12MS-CR-TS layout (and the simulator's extras).

:func:`write_sen12mscr_ts_synthetic` writes ``patches`` time series
(:func:`cloudfree.synth.timeseries.generate_time_series`) in the official layout that
:class:`cloudfree.data.SEN12MSCRTS` and the official loader read::

    <out>/<ROIsXXXX>/<roi>/S1/<t>/s1_<ROIsXXXX>_<roi>_ImgNo_<t>_<S1 date>_patch_<n>.tif
    <out>/<ROIsXXXX>/<roi>/S2/<t>/s2_<ROIsXXXX>_<roi>_ImgNo_<t>_<S2 date>_patch_<n>.tif

(S1 float32 VV, VH dB; S2 uint16 13 bands, the cloudy acquisition of the date)

and, next to them in folders the official loader never reads, what only a simulator knows:
``truth/<t>/truth_...`` (the date's cloud-free image), ``mask/<t>/mask_...`` (int8 1 cloud,
-1 shadow, 0 clear) and ``change/<t>/change_...`` (int16: the number of the change event that
changed the pixel between date ``t - 1`` and ``t``, 0 elsewhere). ROIs are official ROI ids
taken from the official ``all`` split (test ROIs first, then val, then train, two patches per
ROI), so ``split=train/val/test`` are all non-empty for three or more patches.
``<out>/synthetic_manifest.json`` lists every patch (ROI, split, dates, covers, events).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree import __version__
from cloudfree.bands import S1_NAMES, S2_L1C_NAMES
from cloudfree.data.sen12mscr_ts import ts_file_name
from cloudfree.data.splits import load_sen12mscr_ts_splits
from cloudfree.errors import ConfigError
from cloudfree.io import write_raster
from cloudfree.io.atomic import atomic_write_text
from cloudfree.synth.geo import roi_georeference
from cloudfree.synth.timeseries import MAX_DATES, SyntheticTimeSeries, generate_time_series
from cloudfree.synth.writers import prepare_outdir

__all__ = [
    "TS_MANIFEST_NAME",
    "plan_ts_samples",
    "write_allclear_synthetic",
    "write_sen12mscr_ts_synthetic",
    "write_time_series_scene",
]

TS_MANIFEST_NAME = "synthetic_manifest.json"
_PER_ROI = 2


def plan_ts_samples(patches: int) -> list[tuple[str, str, int]]:
    """``(split, roi_id, patch number)`` of each of ``patches`` samples (module docstring)."""
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 3:
        raise ConfigError(f"patches must be an integer >= 3 (train, val and test), got {patches!r}")
    splits = load_sen12mscr_ts_splits("all")
    n_test = max(1, round(0.15 * patches))
    n_val = max(1, round(0.15 * patches))
    counts = {"test": n_test, "val": n_val, "train": patches - n_test - n_val}
    plan: list[tuple[str, str, int]] = []
    for split in ("train", "val", "test"):
        rois = splits[split]
        need = counts[split]
        if need > _PER_ROI * len(rois):
            raise ConfigError(f"at most {_PER_ROI * len(rois)} {split} patches can be planned")
        for k in range(need):
            plan.append((split, rois[k // _PER_ROI], k % _PER_ROI))
    return plan


def _write_series(
    out: Path, roi_id: str, patch: int, ts: SyntheticTimeSeries, tags: dict[str, str]
) -> dict[str, Any]:
    rois, roi = roi_id.split("/")
    base = out / rois / roi
    files: dict[str, list[str]] = {"s1": [], "s2": []}
    for t in range(ts.n_dates):
        s2_name = ts_file_name("s2", rois, roi, t, ts.dates[t], patch)
        s1_name = ts_file_name("s1", rois, roi, t, ts.s1_dates[t], patch)
        date_tags = {**tags, "DATE": ts.dates[t].isoformat(), "CLOUD_COVER": f"{ts.covers[t]:.4f}"}
        common = {"crs": ts.crs, "transform": ts.transform, "tags": date_tags}
        p2 = write_raster(
            base / "S2" / str(t) / s2_name,
            ts.cloudy_dn[t],
            descriptions=S2_L1C_NAMES,
            dtype="uint16",
            **common,
        )
        p1 = write_raster(
            base / "S1" / str(t) / s1_name,
            ts.sar_db[t],
            descriptions=S1_NAMES,
            dtype="float32",
            **{**common, "tags": {**date_tags, "DATE": ts.s1_dates[t].isoformat()}},
        )
        write_raster(
            base / "truth" / str(t) / s2_name.replace("s2_", "truth_", 1),
            ts.clear_dn[t],
            descriptions=S2_L1C_NAMES,
            dtype="uint16",
            **common,
        )
        write_raster(
            base / "mask" / str(t) / s2_name.replace("s2_", "mask_", 1),
            ts.mask_of(t),
            descriptions=["cloud_mask"],
            dtype="int8",
            **common,
        )
        write_raster(
            base / "change" / str(t) / s2_name.replace("s2_", "change_", 1),
            ts.change_event[t],
            descriptions=["change_event"],
            dtype="int16",
            **common,
        )
        files["s2"].append(str(p2.relative_to(out)))
        files["s1"].append(str(p1.relative_to(out)))
    return {
        "roi": roi_id,
        "patch": patch,
        "dates": [d.isoformat() for d in ts.dates],
        "s1_dates": [d.isoformat() for d in ts.s1_dates],
        "covers": [round(float(c), 6) for c in ts.covers],
        "events": [
            {"date_index": e.date_index, "kind": e.kind, "pixels": e.pixels, "box": list(e.box)}
            for e in ts.events
        ],
        "files": files,
    }


def write_sen12mscr_ts_synthetic(
    outdir: str | os.PathLike[str],
    *,
    patches: int = 6,
    size: int = 64,
    seed: int = 0,
    dates: int = 10,
    change_rate: float = 0.5,
    exist_ok: bool = False,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``patches`` synthetic time series of ``dates`` dates (module docstring).

    Raises:
        ConfigError: a bad argument (patches < 3, dates outside 2..30, size < 16).
        InputFileError / DatasetError: ``outdir`` is a file, or holds data and ``exist_ok`` is
            False.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ConfigError(f"size must be an integer >= 16, got {size!r}")
    if isinstance(dates, bool) or not isinstance(dates, int) or not 2 <= dates <= MAX_DATES:
        raise ConfigError(f"dates must be an integer between 2 and {MAX_DATES}, got {dates!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not (
        isinstance(change_rate, int | float) and math.isfinite(change_rate) and change_rate >= 0
    ):
        raise ConfigError(f"change_rate must be a number >= 0, got {change_rate!r}")
    plan = plan_ts_samples(patches)
    out = Path(outdir)
    prepare_outdir(out, exist_ok)
    records = []
    for i, (split, roi_id, patch) in enumerate(plan):
        crs, transform = roi_georeference(roi_id, patch + 1, size)
        ts = generate_time_series(
            size,
            size,
            n_dates=dates,
            seed=(seed, i),
            change_rate=change_rate,
            crs=crs,
            transform=transform,
        )
        tags = {"SYNTHETIC": f"cloudfree.synth {__version__}", "SYNTH_SEED": f"{seed},{i}"}
        record = {"split": split, **_write_series(out, roi_id, patch, ts, tags)}
        records.append(record)
        if on_sample is not None:
            on_sample(record)
    manifest = {
        "generator": f"cloudfree.synth {__version__}",
        "layout": "sen12mscr_ts",
        "seed": seed,
        "patches": patches,
        "size": size,
        "dates": dates,
        "change_rate": change_rate,
        "samples": records,
    }
    atomic_write_text(out / TS_MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return records


# ----------------------------------------------------------------------------- AllClear
def _allclear_name(roi: str, kind: str, date: Any, patch: int) -> str:
    """``roi1234_s2_toa_2018_03_15_p0.tif``: AllClear reads the date from the last four
    ``_`` fields, and finds the masks by replacing ``s2_toa`` with ``cld_shdw``."""
    return f"{roi}_{kind}_{date.year:04d}_{date.month:02d}_{date.day:02d}_p{patch}.tif"


def write_allclear_synthetic(
    outdir: str | os.PathLike[str],
    *,
    patches: int = 6,
    size: int = 64,
    seed: int = 0,
    dates: int = 6,
    change_rate: float = 0.5,
    tx: int = 3,
    exist_ok: bool = False,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``patches`` time series in the AllClear layout (metadata JSON + GeoTIFFs).

    Files per date: ``<out>/<roi>/s2_toa/<roi>_s2_toa_<YYYY>_<MM>_<DD>_p<n>.tif`` (uint16 13
    bands), ``.../cld_shdw/<roi>_cld_shdw_...`` (float32 5 bands: 1 cloud probability x 100,
    2 cloud, 3 and 4 zero, 5 shadow: AllClear reads bands 2 and 5), ``.../s1/<roi>_s1_...``
    (VV, VH dB, on the S1 date) and the simulator's extras ``truth/`` and ``change/``. Each patch
    is one sample: the target is its least cloudy date (by the true masks, the earliest among
    equals), the inputs the ``tx`` other dates nearest to it in time. Metadata:
    ``<out>/allclear_<split>_tx<tx>.json`` for train / val / test (70 / 15 / 15 %, at least one
    each), paths relative to ``<out>``, time stamps ``YYYY-MM-DD 10:30:00``.
    """
    if isinstance(tx, bool) or not isinstance(tx, int) or tx < 1:
        raise ConfigError(f"tx must be a positive integer, got {tx!r}")
    if isinstance(dates, bool) or not isinstance(dates, int) or not tx + 1 <= dates <= MAX_DATES:
        raise ConfigError(f"dates must be an integer between tx + 1 and {MAX_DATES}, got {dates!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ConfigError(f"size must be an integer >= 16, got {size!r}")
    plan = plan_ts_samples(patches)
    out = Path(outdir)
    prepare_outdir(out, exist_ok)
    metadata: dict[str, dict[str, Any]] = {"train": {}, "val": {}, "test": {}}
    records = []
    for i, (split, _roi_id, _patch) in enumerate(plan):
        roi = f"roi{10000 + i}"
        crs, transform = roi_georeference(roi, 1, size)
        ts = generate_time_series(
            size, size, n_dates=dates, seed=(seed, 7, i), change_rate=change_rate,
            crs=crs, transform=transform,
        )  # fmt: skip
        tags = {"SYNTHETIC": f"cloudfree.synth {__version__}", "SYNTH_SEED": f"{seed},7,{i}"}
        paths: dict[str, list[str]] = {"s2_toa": [], "s1": []}
        for t in range(ts.n_dates):
            names = {k: _allclear_name(roi, k, ts.dates[t], 0) for k in ("s2_toa", "cld_shdw")}
            common = {"crs": ts.crs, "transform": ts.transform, "tags": tags}
            p2 = write_raster(
                out / roi / "s2_toa" / names["s2_toa"], ts.cloudy_dn[t],
                descriptions=S2_L1C_NAMES, dtype="uint16", **common,
            )  # fmt: skip
            cld = np.zeros((5, size, size), dtype=np.float32)
            cld[0] = 100.0 * ts.cloud_mask[t]
            cld[1] = ts.cloud_mask[t]
            cld[4] = ts.shadow_mask[t] & ~ts.cloud_mask[t]
            write_raster(out / roi / "cld_shdw" / names["cld_shdw"], cld, dtype="float32", **common)
            p1 = write_raster(
                out / roi / "s1" / _allclear_name(roi, "s1", ts.s1_dates[t], 0), ts.sar_db[t],
                descriptions=S1_NAMES, dtype="float32", **common,
            )  # fmt: skip
            write_raster(
                out / roi / "truth" / names["s2_toa"].replace("s2_toa", "truth"),
                ts.clear_dn[t], dtype="uint16", **common,
            )  # fmt: skip
            write_raster(
                out / roi / "change" / names["s2_toa"].replace("s2_toa", "change"),
                ts.change_event[t], dtype="int16", **common,
            )  # fmt: skip
            paths["s2_toa"].append(str(p2.relative_to(out)))
            paths["s1"].append(str(p1.relative_to(out)))
        cover = ts.cloud_mask.mean(axis=(1, 2)) + ts.shadow_mask.mean(axis=(1, 2))
        target = int(np.argmin(cover))  # the first of equal minima
        others = sorted(
            (t for t in range(ts.n_dates) if t != target), key=lambda t: (abs(t - target), t)
        )
        inputs = sorted(others[:tx])

        def stamp(d: Any) -> str:
            return f"{d.isoformat()} 10:30:00"

        entry = {
            "roi": [roi, [0.0, 0.0]],
            "s2_toa": [[stamp(ts.dates[t]), paths["s2_toa"][t]] for t in inputs],
            "s1": [[stamp(ts.s1_dates[t]), paths["s1"][t]] for t in range(ts.n_dates)],
            "target": [[stamp(ts.dates[target]), paths["s2_toa"][target]]],
        }
        sample_id = f"{roi}_p0"
        metadata[split][sample_id] = entry
        record = {"split": split, "id": sample_id, "inputs": inputs, "target": target,
                  "events": len(ts.events)}  # fmt: skip
        records.append(record)
        if on_sample is not None:
            on_sample(record)
    for split, entries in metadata.items():
        atomic_write_text(
            out / f"allclear_{split}_tx{tx}.json", json.dumps(entries, indent=1) + "\n"
        )
    return records


def write_time_series_scene(
    outdir: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    n_dates: int,
    seed: int,
    change_rate: float = 0.5,
    prefix: str = "scene",
) -> list[dict[str, Any]]:
    """One scene on ``n_dates`` dates as dated GeoTIFFs on one grid (for time-series predict):
    ``<prefix>_s2_<YYYY-MM-DD>.tif`` (cloudy, uint16 13 bands, tag ``DATE``),
    ``<prefix>_s1_<YYYY-MM-DD>.tif`` (VV, VH dB, named and tagged with its S2 date),
    ``<prefix>_truth_<date>.tif`` and ``<prefix>_mask_<date>.tif`` (int8 1 cloud, -1 shadow).
    Returns one record per date (``date``, ``s2``, ``s1``, ``truth``, ``mask``, ``cover``)."""
    if not prefix or any(c in prefix for c in "/\\\\"):
        raise ConfigError(f"prefix must be a plain file-name prefix, got {prefix!r}")
    out = Path(outdir)
    ts = generate_time_series(height, width, n_dates=n_dates, seed=seed, change_rate=change_rate)
    records = []
    for t in range(ts.n_dates):
        d = ts.dates[t].isoformat()
        tags = {"SYNTHETIC": f"cloudfree.synth {__version__}", "DATE": d}
        common = {"crs": ts.crs, "transform": ts.transform, "tags": tags}
        rec = {
            "date": d,
            "s2": write_raster(out / f"{prefix}_s2_{d}.tif", ts.cloudy_dn[t],
                               descriptions=S2_L1C_NAMES, dtype="uint16", **common),
            "s1": write_raster(out / f"{prefix}_s1_{d}.tif", ts.sar_db[t],
                               descriptions=S1_NAMES, dtype="float32", **common),
            "truth": write_raster(out / f"{prefix}_truth_{d}.tif", ts.clear_dn[t],
                                  descriptions=S2_L1C_NAMES, dtype="uint16", **common),
            "mask": write_raster(
                out / f"{prefix}_mask_{d}.tif",
                ts.mask_of(t),
                dtype="int8", **common,
            ),
            "cover": float(ts.covers[t]),
        }  # fmt: skip
        records.append(rec)
    return records
