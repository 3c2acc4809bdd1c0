"""Write synthetic scenes to disk: SEN12MS-CR-style datasets and single scene pairs.

Dataset layouts (SPEC section 2):

* ``official`` (the mediaTUM release)::

    <root>/<season>_s1/s1_<scene>/<season>_s1_<scene>_p<patch>.tif              float32 VV, VH dB
    <root>/<season>_s2/s2_<scene>/<season>_s2_<scene>_p<patch>.tif              uint16 13 bands
    <root>/<season>_s2_cloudy/s2_cloudy_<scene>/<season>_s2_cloudy_<scene>_p<patch>.tif

* ``flat`` (GLF-CR / DSen2-CR): ``<root>/s1/``, ``<root>/s2_cloudfree/``, ``<root>/s2_cloudy/``
  each holding ``<season>_<scene>_p<patch>.tif``, plus ``<root>/data.csv`` with one row per
  triplet ``split,s1,s2_cloudfree,s2_cloudy,<filename>`` (split 1 train / 2 val / 3 test) and
  **no header row**, exactly like GLF-CR's ``data/data.csv``.

``layout="both"`` writes the official layout under ``<outdir>/`` and the flat one under
``<outdir>/flat/``. ROIs are real ROI ids of the shipped standard split, so readers that apply the
standard split find train, val and test patches; ``<outdir>/synthetic_manifest.json`` records
every sample (ROI, patch, split, cover, class fractions, files).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from cloudfree import __version__
from cloudfree.bands import S1_NAMES, S2_L1C_NAMES
from cloudfree.data.splits import SPLIT_NAMES, load_sen12mscr_splits, parse_roi_id
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import write_raster
from cloudfree.io.atomic import atomic_write_text
from cloudfree.synth.geo import roi_georeference
from cloudfree.synth.landcover import LANDCOVER_CLASSES
from cloudfree.synth.scene import (
    DEFAULT_CRS,
    DEFAULT_TRANSFORM,
    MIN_SIZE,
    SyntheticScene,
    generate_scene,
)

__all__ = [
    "FLAT_CSV_NAME",
    "FLAT_DIRS",
    "LAYOUTS",
    "MANIFEST_NAME",
    "MIN_DATASET_PATCH_SIZE",
    "SPLIT_CODES",
    "SamplePlan",
    "ScenePairPaths",
    "flat_filename",
    "official_paths",
    "plan_sen12mscr_samples",
    "write_scene_pair",
    "write_sen12mscr_synthetic",
]

#: Dataset layouts :func:`write_sen12mscr_synthetic` can write.
LAYOUTS: tuple[str, ...] = ("official", "flat", "both")
#: Split codes of the flat layout's CSV.
SPLIT_CODES: dict[str, int] = {"train": 1, "val": 2, "test": 3}
#: Folder names of the flat layout, in CSV column order (S1, cloud-free S2, cloudy S2).
FLAT_DIRS: tuple[str, str, str] = ("s1", "s2_cloudfree", "s2_cloudy")
FLAT_CSV_NAME = "data.csv"
MANIFEST_NAME = "synthetic_manifest.json"
#: Smallest patch side for datasets (networks downsample; 16 keeps a few levels possible).
MIN_DATASET_PATCH_SIZE = 16
_MIN_PATCHES = len(SPLIT_NAMES)
_SPLIT_SHARE = {"val": 0.15, "test": 0.15}
_PATCHES_PER_ROI = 3


@dataclass(frozen=True)
class SamplePlan:
    """Where one generated patch goes: its ROI, patch number, split and cloud cover."""

    index: int
    split: str
    roi: str
    season: str
    scene: int
    patch: int
    cloud_cover: float

    @property
    def id(self) -> str:
        """``<season>_<scene>_p<patch>``, the flat-layout stem and the reader's sample id."""
        return f"{self.season}_{self.scene}_p{self.patch}"


@dataclass
class ScenePairPaths:
    """Files written by :func:`write_scene_pair` (all on the same grid) and the scene itself."""

    cloudy: Path
    clear: Path
    s1: Path
    landcover: Path
    mask: Path
    scene: SyntheticScene


def official_paths(root: str | os.PathLike[str], season: str, scene: int, patch: int) -> dict:
    """Official-layout paths ``{"s1", "s2", "s2_cloudy"}`` of one triplet under ``root``."""
    r = Path(root)
    return {
        "s1": r / f"{season}_s1" / f"s1_{scene}" / f"{season}_s1_{scene}_p{patch}.tif",
        "s2": r / f"{season}_s2" / f"s2_{scene}" / f"{season}_s2_{scene}_p{patch}.tif",
        "s2_cloudy": r
        / f"{season}_s2_cloudy"
        / f"s2_cloudy_{scene}"
        / f"{season}_s2_cloudy_{scene}_p{patch}.tif",
    }


def flat_filename(season: str, scene: int, patch: int) -> str:
    """Flat-layout file name (modality tag removed), e.g. ``ROIs1970_fall_139_p839.tif``."""
    return f"{season}_{scene}_p{patch}.tif"


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _validate(patches: Any, size: Any, seed: Any, layout: Any) -> tuple[int, int, int, str]:
    n = _check_int("patches", patches, _MIN_PATCHES)
    s = _check_int("size", size, MIN_DATASET_PATCH_SIZE)
    if s % 2:
        raise ConfigError(f"size must be a multiple of 2, got {s}")
    k = _check_int("seed", seed, 0)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    return n, s, k, str(layout)


def plan_sen12mscr_samples(patches: int, seed: int) -> list[SamplePlan]:
    """Assign ``patches`` samples to splits, real standard-split ROIs and patch numbers.

    About 70 / 15 / 15 % go to train / val / test, at least one each (so any ``patches >= 3``
    populates all three splits). Each split's samples go to ROIs drawn from that split's
    standard list, about three patches per ROI, with distinct random patch numbers per ROI.
    Cloud covers are stratified per split (``(permutation + uniform) / n``), so every 20 % cover
    bin gets samples. Deterministic for a given ``(patches, seed)``.
    """
    n, _, k, _ = _validate(patches, MIN_DATASET_PATCH_SIZE, seed, "official")
    rng = np.random.default_rng([k, 0, 1])  # distinct from the per-patch seeds [seed, index]
    counts = {s: max(1, int(_SPLIT_SHARE[s] * n + 0.5)) for s in ("val", "test")}
    counts["train"] = n - counts["val"] - counts["test"]
    pools = load_sen12mscr_splits()
    plans: list[SamplePlan] = []
    for split in SPLIT_NAMES:
        count = counts[split]
        pool = pools[split]
        n_rois = min(len(pool), math.ceil(count / _PATCHES_PER_ROI))
        rois = [pool[i] for i in rng.choice(len(pool), size=n_rois, replace=False)]
        per_roi = [len(range(j, count, n_rois)) for j in range(n_rois)]
        covers = (rng.permutation(count) + rng.uniform(0.0, 1.0, size=count)) / count
        j = 0
        for roi, m in zip(rois, per_roi):
            season, scene = parse_roi_id(roi)
            numbers = np.sort(rng.choice(np.arange(1, max(600, 2 * m) + 1), size=m, replace=False))
            for number in numbers:
                plans.append(
                    SamplePlan(
                        index=len(plans),
                        split=split,
                        roi=roi,
                        season=season,
                        scene=scene,
                        patch=int(number),
                        cloud_cover=float(covers[j]),
                    )
                )
                j += 1
    return plans


def prepare_outdir(out: Path, exist_ok: bool) -> None:
    """Refuse a file, or a non-empty directory unless ``exist_ok``; create the directory."""
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise DatasetError(
            f"{out}: output directory is not empty; choose a new or empty directory, or allow "
            "writing into it (exist_ok=True, --force on the command line)"
        )
    out.mkdir(parents=True, exist_ok=True)


def _tags(scene: SyntheticScene, extra: dict[str, Any] | None = None) -> dict[str, str]:
    tags = {
        "SYNTHETIC": f"cloudfree.synth {__version__}",
        "SYNTH_SEED": ",".join(str(v) for v in scene.params.get("seed", [])),
    }
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def _write_s2(path: Path, dn: np.ndarray, scene: SyntheticScene, tags: dict[str, str]) -> Path:
    return write_raster(
        path,
        dn,
        crs=scene.crs,
        transform=scene.transform,
        descriptions=S2_L1C_NAMES,
        tags=tags,
        dtype="uint16",
    )


def _s1_grid(
    scene: SyntheticScene, s1_crs: str | None, s1_resolution: float | None
) -> tuple[Any, Affine, int, int]:
    """Target grid ``(crs, transform, width, height)`` of an S1 file written on another grid.

    The grid covers the scene's footprint (bounds transformed to ``s1_crs``, densified), north-up,
    with square pixels of ``s1_resolution`` metres; for a geographic ``s1_crs`` the metres are
    converted to degrees at the scene centre (latitude for y, longitude scaled by cos(lat) for
    x). Without ``s1_resolution`` GDAL's default (about the source resolution) is used.
    """
    from rasterio.crs import CRS
    from rasterio.warp import calculate_default_transform, transform_bounds

    src_crs = CRS.from_user_input(scene.crs)
    dst_crs = CRS.from_user_input(s1_crs) if s1_crs is not None else src_crs
    h, w = scene.sar_db.shape[1:]
    t = scene.transform
    bounds = (t.c, t.f + t.e * h, t.c + t.a * w, t.f)
    resolution: Any = None
    if s1_resolution is not None:
        if not (isinstance(s1_resolution, int | float) and s1_resolution > 0):
            raise ConfigError(f"s1_resolution must be a positive number, got {s1_resolution!r}")
        if dst_crs.is_geographic:
            lon0, lat0, lon1, lat1 = transform_bounds(src_crs, dst_crs, *bounds)
            lat = math.radians(0.5 * (lat0 + lat1))
            dy = float(s1_resolution) / 111_320.0
            resolution = (dy / max(math.cos(lat), 1e-6), dy)
        else:
            resolution = (float(s1_resolution), float(s1_resolution))
    transform, width, height = calculate_default_transform(
        src_crs, dst_crs, w, h, *bounds, resolution=resolution
    )
    return dst_crs, transform, int(width), int(height)


def _write_s1(
    path: Path,
    scene: SyntheticScene,
    tags: dict[str, str],
    *,
    s1_crs: str | None = None,
    s1_resolution: float | None = None,
) -> Path:
    """Write S1 VV/VH dB, on the S2 grid by default.

    With ``s1_crs`` and/or ``s1_resolution`` (metres) the dB values are reprojected bilinearly
    (:func:`rasterio.warp.reproject`) onto a grid covering the scene in that CRS/resolution, as
    real S1 products come on their own grid; pixels of that grid outside the scene are NaN
    (declared nodata).
    """
    if s1_crs is None and s1_resolution is None:
        return write_raster(
            path,
            scene.sar_db,
            crs=scene.crs,
            transform=scene.transform,
            descriptions=S1_NAMES,
            tags=tags,
            dtype="float32",
        )
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    dst_crs, dst_transform, width, height = _s1_grid(scene, s1_crs, s1_resolution)
    dst = np.full((scene.sar_db.shape[0], height, width), np.nan, dtype=np.float32)
    reproject(
        source=scene.sar_db.astype(np.float32),
        destination=dst,
        src_transform=scene.transform,
        src_crs=scene.crs,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return write_raster(
        path,
        dst,
        crs=dst_crs,
        transform=dst_transform,
        nodata=float("nan"),
        descriptions=S1_NAMES,
        tags={**tags, "S1_GRID": f"reprojected from {scene.crs}, bilinear"},
        dtype="float32",
    )


def _write_triplet(paths: dict[str, Path], scene: SyntheticScene, tags: dict[str, str]) -> None:
    _write_s1(paths["s1"], scene, tags)
    _write_s2(paths["s2"], scene.clear_dn, scene, tags)
    _write_s2(paths["s2_cloudy"], scene.cloudy_dn, scene, tags)


def _transform_list(t: Affine) -> list[float]:
    return [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)]


def write_sen12mscr_synthetic(
    outdir: str | os.PathLike[str],
    *,
    patches: int = 30,
    size: int = 256,
    seed: int = 0,
    layout: str = "official",
    exist_ok: bool = False,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write a synthetic SEN12MS-CR-style dataset.

    Args:
        outdir: output directory (created; must be empty unless ``exist_ok``).
        patches: number of triplets (>= 3: at least one each for train, val and test).
        size: patch side in pixels (>= 16, even).
        seed: dataset seed; patch ``i`` is generated with ``generate_scene(seed=(seed, i))``.
        layout: ``"official"``, ``"flat"`` or ``"both"`` (official under ``outdir``, flat under
            ``outdir/flat``).
        exist_ok: allow a non-empty ``outdir`` (files of the same name are replaced).
        on_sample: called with each sample record once its files are written (progress bars).

    Returns:
        One record per triplet: ``index, id, roi, season, scene, patch, split, split_code,
        seed, requested_cover, cloud_cover, cloud_fraction, shadow_fraction, cloud_type,
        class_fractions, crs, transform`` and ``paths`` = ``{layout: {"s1", "s2",
        "s2_cloudy"}}`` (``s2`` is the cloud-free target; under ``flat`` it lies in
        ``s2_cloudfree/``). The same records, with paths relative to ``outdir``, are written to
        ``outdir/synthetic_manifest.json``.
    """
    n, s, k, lay = _validate(patches, size, seed, layout)
    out = Path(outdir)
    prepare_outdir(out, exist_ok)
    flat_root = out / "flat" if lay == "both" else out
    plans = plan_sen12mscr_samples(n, k)
    records: list[dict[str, Any]] = []
    csv_rows: list[str] = []
    for plan in plans:
        crs, transform = roi_georeference(plan.roi, plan.patch, s)
        scene = generate_scene(
            s, s, seed=(k, plan.index), cloud_cover=plan.cloud_cover, crs=crs, transform=transform
        )
        tags = _tags(scene, {"ROI": plan.roi, "PATCH": plan.patch, "SPLIT": plan.split})
        paths: dict[str, dict[str, Path]] = {}
        if lay in ("official", "both"):
            paths["official"] = official_paths(out, plan.season, plan.scene, plan.patch)
            _write_triplet(paths["official"], scene, tags)
        if lay in ("flat", "both"):
            name = flat_filename(plan.season, plan.scene, plan.patch)
            paths["flat"] = {
                "s1": flat_root / FLAT_DIRS[0] / name,
                "s2": flat_root / FLAT_DIRS[1] / name,
                "s2_cloudy": flat_root / FLAT_DIRS[2] / name,
            }
            _write_triplet(paths["flat"], scene, tags)
            csv_rows.append(f"{SPLIT_CODES[plan.split]},{','.join(FLAT_DIRS)},{name}")
        record = {
            "index": plan.index,
            "id": plan.id,
            "roi": plan.roi,
            "season": plan.season,
            "scene": plan.scene,
            "patch": plan.patch,
            "split": plan.split,
            "split_code": SPLIT_CODES[plan.split],
            "seed": [k, plan.index],
            "requested_cover": plan.cloud_cover,
            "cloud_cover": scene.cloud_cover,
            "cloud_fraction": float(scene.cloud_mask.mean()),
            "shadow_fraction": float(scene.shadow_mask.mean()),
            "cloud_type": scene.cloud_type,
            "class_fractions": scene.class_fractions(),
            "crs": scene.crs,
            "transform": _transform_list(scene.transform),
            "paths": paths,
        }
        records.append(record)
        if on_sample is not None:
            on_sample(record)

    if csv_rows:
        atomic_write_text(flat_root / FLAT_CSV_NAME, "\n".join(csv_rows) + "\n")
    manifest = {
        "generator": f"cloudfree.synth {__version__}",
        "seed": k,
        "size": s,
        "patches": n,
        "layout": lay,
        "flat_root": os.path.relpath(flat_root, out).replace(os.sep, "/")
        if lay != "official"
        else None,
        "landcover_classes": list(LANDCOVER_CLASSES),
        "samples": [
            {
                **r,
                "paths": {
                    lay_name: {m: p.relative_to(out).as_posix() for m, p in files.items()}
                    for lay_name, files in r["paths"].items()
                },
            }
            for r in records
        ],
    }
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return records


def write_scene_pair(
    outdir: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    seed: int,
    cloud_cover: float | None = None,
    cloud_type: str | None = None,
    prefix: str = "scene",
    crs: str = DEFAULT_CRS,
    transform: Affine = DEFAULT_TRANSFORM,
    radiometric_jitter: bool = True,
    s1_crs: str | None = None,
    s1_resolution: float | None = None,
) -> ScenePairPaths:
    """Write one scene of any size as GeoTIFFs on one grid (for tiled-inference tests, demos).

    Files (``<prefix>_*.tif`` in ``outdir``): ``s2_cloudy`` (uint16 13 bands), ``s2_clear``
    (the target), ``s1`` (float32 VV, VH dB), ``landcover`` (uint8 class ids, class names in the
    ``CLASSES`` tag) and ``mask`` (int8: 1 cloud, -1 shadow, 0 clear). Existing files of those
    names are replaced atomically.

    ``s1_crs`` (e.g. ``"EPSG:4326"``) and/or ``s1_resolution`` (metres, e.g. ``20.0``) write S1
    on its own grid instead: reprojected bilinearly onto a north-up grid covering the scene in
    that CRS and resolution, NaN (declared nodata) outside the scene, as a real S1 product that
    must be warped onto the S2 grid before use. The other files stay on the S2 grid.
    """
    h = _check_int("height", height, MIN_SIZE)
    w = _check_int("width", width, MIN_SIZE)
    k = _check_int("seed", seed, 0)
    if not prefix or any(c in prefix for c in "/\\"):
        raise ConfigError(f"prefix must be a plain file-name prefix, got {prefix!r}")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "exists and is not a directory")
    scene = generate_scene(
        h,
        w,
        seed=k,
        cloud_cover=cloud_cover,
        cloud_type=cloud_type,
        radiometric_jitter=radiometric_jitter,
        crs=crs,
        transform=transform,
    )
    tags = _tags(scene, {"CLOUD_COVER": f"{scene.cloud_cover:.4f}", "CLOUD_TYPE": scene.cloud_type})
    paths = ScenePairPaths(
        cloudy=out / f"{prefix}_s2_cloudy.tif",
        clear=out / f"{prefix}_s2_clear.tif",
        s1=out / f"{prefix}_s1.tif",
        landcover=out / f"{prefix}_landcover.tif",
        mask=out / f"{prefix}_mask.tif",
        scene=scene,
    )
    _write_s2(paths.cloudy, scene.cloudy_dn, scene, tags)
    _write_s2(paths.clear, scene.clear_dn, scene, tags)
    _write_s1(paths.s1, scene, tags, s1_crs=s1_crs, s1_resolution=s1_resolution)
    classes = ",".join(f"{i}={name}" for i, name in enumerate(LANDCOVER_CLASSES))
    write_raster(
        paths.landcover,
        scene.landcover,
        crs=scene.crs,
        transform=scene.transform,
        descriptions=["landcover"],
        tags={**tags, "CLASSES": classes},
        dtype="uint8",
    )
    write_raster(
        paths.mask,
        scene.mask,
        crs=scene.crs,
        transform=scene.transform,
        descriptions=["cloud_mask"],
        tags={**tags, "ENCODING": "1=cloud,-1=shadow,0=clear"},
        dtype="int8",
    )
    return paths
