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

Seasons: ``season_patches`` chooses how many patches of each season go to each split (e.g. a
spring train / val / test set plus other-season test images, :func:`plan_season_samples`), and
``season_domains=True`` renders every patch in its ROI's season domain
(:mod:`cloudfree.synth.domains`); without it the season is only a folder name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from cloudfree import __version__
from cloudfree.bands import S1_NAMES, S2_L1C_NAMES
from cloudfree.data.splits import (
    SEN12MSCR_SEASONS,
    SPLIT_NAMES,
    load_sen12mscr_splits,
    parse_roi_id,
)
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import write_raster
from cloudfree.io.atomic import atomic_write_text
from cloudfree.synth.domains import resolve_season
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
    "SeasonPatches",
    "flat_filename",
    "official_paths",
    "parse_season_patches",
    "plan_season_samples",
    "plan_sen12mscr_samples",
    "season_patch_counts",
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
_DEFAULT_PATCHES = 30

#: A per-season patch request: ``{season: n}`` or ``{season: (train, val, test)}``.
SeasonPatches = Mapping[str, int | Sequence[int]]


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


def _split_counts(n: int) -> dict[str, int]:
    """About 70 / 15 / 15 % of ``n >= 3`` samples for train / val / test, at least one each."""
    counts = {s: max(1, int(_SPLIT_SHARE[s] * n + 0.5)) for s in ("val", "test")}
    counts["train"] = n - counts["val"] - counts["test"]
    return {s: counts[s] for s in SPLIT_NAMES}


def _plan_group(
    plans: list[SamplePlan],
    rng: np.random.Generator,
    split: str,
    count: int,
    pool: tuple[str, ...],
) -> None:
    """Append ``count`` samples of ``split`` on ROIs drawn from ``pool`` (see the planners)."""
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


def _split_pools(splits: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """ROI lists per split: the standard split, or ``splits`` checked (ids, no ROI twice)."""
    if splits is None:
        return load_sen12mscr_splits()
    if not isinstance(splits, Mapping) or set(splits) - set(SPLIT_NAMES):
        raise ConfigError(
            f"splits must map some of {list(SPLIT_NAMES)} to ROI id lists, got {splits!r}"
        )
    pools: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for split in SPLIT_NAMES:
        rois = splits.get(split, ())
        if isinstance(rois, str):
            raise ConfigError(f"splits[{split!r}] must be a list of ROI ids, got {rois!r}")
        for roi in rois:
            parse_roi_id(roi)
            if roi in owner:
                raise ConfigError(f"ROI {roi} is in both {owner[roi]!r} and {split!r} splits")
            owner[roi] = split
        pools[split] = tuple(rois)
    return pools


def plan_sen12mscr_samples(patches: int, seed: int) -> list[SamplePlan]:
    """Assign ``patches`` samples to splits, real standard-split ROIs and patch numbers.

    About 70 / 15 / 15 % go to train / val / test, at least one each (so any ``patches >= 3``
    populates all three splits). Each split's samples go to ROIs drawn from that split's
    standard list (all seasons together: the lists hold ROIs of every season in unequal
    numbers), about three patches per ROI, with distinct random patch numbers per ROI.
    Cloud covers are stratified per split (``(permutation + uniform) / n``), so every 20 % cover
    bin gets samples. Deterministic for a given ``(patches, seed)``. To choose how many patches
    of each season go to each split, use :func:`plan_season_samples`.
    """
    n, _, k, _ = _validate(patches, MIN_DATASET_PATCH_SIZE, seed, "official")
    rng = np.random.default_rng([k, 0, 1])  # distinct from the per-patch seeds [seed, index]
    counts = _split_counts(n)
    pools = load_sen12mscr_splits()
    plans: list[SamplePlan] = []
    for split in SPLIT_NAMES:
        _plan_group(plans, rng, split, counts[split], pools[split])
    return plans


def season_patch_counts(season_patches: SeasonPatches) -> dict[str, dict[str, int]]:
    """Normalise a per-season patch request to ``{season folder: {split: count}}``.

    Keys: season names as :func:`cloudfree.synth.domains.resolve_season` accepts them
    (``"spring"``, ``"ROIs1158_spring"``). Values: an integer ``n >= 3`` (split about
    70 / 15 / 15 % like :func:`plan_sen12mscr_samples`, at least one each) or three integers
    ``(train, val, test) >= 0``. Seasons come back in SEN12MS-CR order; at least one patch in
    all. Raises :class:`~cloudfree.errors.ConfigError` on anything else.
    """
    if not isinstance(season_patches, Mapping) or not season_patches:
        raise ConfigError(
            "season_patches must be a non-empty mapping {season: n or (train, val, test)}, "
            f"got {season_patches!r}"
        )
    by_season: dict[str, dict[str, int]] = {}
    for name, value in season_patches.items():
        folder = _season_folder(name)
        if folder in by_season:
            raise ConfigError(f"season {name!r} is given twice in season_patches")
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            if value < _MIN_PATCHES:
                raise ConfigError(
                    f"patches of season {name!r}: a single count must be at least "
                    f"{_MIN_PATCHES} (one per split), got {value}; give (train, val, test) "
                    "counts (TRAIN:VAL:TEST on the command line) for fewer"
                )
            by_season[folder] = _split_counts(int(value))
        elif (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == len(SPLIT_NAMES)
        ):
            by_season[folder] = {
                split: _check_int(f"{split} patches of {name}", v, 0)
                for split, v in zip(SPLIT_NAMES, value)
            }
        else:
            raise ConfigError(
                f"patches of season {name!r} must be an integer >= 3 or three integers "
                f"(train, val, test), got {value!r}"
            )
    if sum(sum(c.values()) for c in by_season.values()) < 1:
        raise ConfigError("season_patches asks for no patch at all")
    return {s: by_season[s] for s in SEN12MSCR_SEASONS if s in by_season}


def _season_folder(name: Any) -> str:
    domain = resolve_season(name)
    return next(s for s in SEN12MSCR_SEASONS if s.endswith(f"_{domain.name}"))


def parse_season_patches(text: str) -> dict[str, tuple[int, int, int]]:
    """Parse the command-line form ``"spring=60,winter=0:0:10"`` of a per-season request.

    Comma-separated ``SEASON=N`` (split about 70 / 15 / 15 %) or ``SEASON=TRAIN:VAL:TEST``
    items; returns :func:`season_patch_counts` as ``{season folder: (train, val, test)}``.
    """
    request: dict[str, Any] = {}
    for item in str(text).split(","):
        name, sep, value = item.strip().partition("=")
        parts = value.split(":")
        if not sep or not name or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(
                f"bad season patches item {item.strip()!r} in {text!r}; expected SEASON=N or "
                "SEASON=TRAIN:VAL:TEST, e.g. spring=42:9:9,winter=0:0:10"
            )
        numbers = [int(p) for p in parts]
        if len(numbers) not in (1, len(SPLIT_NAMES)):
            raise ConfigError(
                f"bad season patches item {item.strip()!r}: give N or TRAIN:VAL:TEST counts"
            )
        folder = _season_folder(name.strip())
        if folder in request:
            raise ConfigError(f"season {name.strip()!r} is given twice in {text!r}")
        request[folder] = numbers[0] if len(numbers) == 1 else tuple(numbers)
    counts = season_patch_counts(request)
    return {s: (c["train"], c["val"], c["test"]) for s, c in counts.items()}


def plan_season_samples(
    season_patches: SeasonPatches,
    seed: int,
    *,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> list[SamplePlan]:
    """Plan a dataset with a chosen number of patches per season and split.

    ``season_patches`` is read by :func:`season_patch_counts`, e.g.
    ``{"spring": 60, "summer": (0, 0, 10), "fall": (0, 0, 10), "winter": (0, 0, 10)}``: a
    spring train / val / test set plus out-of-domain test images of the other seasons.
    Each (season, split) group goes to ROIs of that season drawn from that split's standard
    list (a split whose list has no ROI of the season raises
    :class:`~cloudfree.errors.ConfigError`), about three patches per ROI (the standard lists
    hold only one spring val ROI and one fall test ROI: those groups share one ROI, with
    distinct patch numbers). Cloud covers are stratified per group, as in
    :func:`plan_sen12mscr_samples`. Samples are ordered by season (SEN12MS-CR order), then
    split; indices run from 0. Deterministic for a given ``(season_patches, seed)``; the
    planning draws differ from :func:`plan_sen12mscr_samples` (its own generator).

    ``splits`` replaces the standard lists by other ROI lists per split (``{"train": [...],
    "val": [...], "test": [...]}``, ids ``"<season>/s1_<scene>"``, no ROI in two splits), e.g. a
    spring protocol split merged with other-season ROIs for the out-of-domain images.
    """
    counts = season_patch_counts(season_patches)
    k = _check_int("seed", seed, 0)
    rng = np.random.default_rng([k, 0, 2])  # distinct from plan_sen12mscr_samples' [k, 0, 1]
    pools = _split_pools(splits)
    plans: list[SamplePlan] = []
    for season, per_split in counts.items():
        for split in SPLIT_NAMES:
            count = per_split[split]
            if count == 0:
                continue
            pool = tuple(r for r in pools[split] if parse_roi_id(r)[0] == season)
            if not pool:
                lists = "standard" if splits is None else "given"
                raise ConfigError(
                    f"the {lists} {split} split has no {season} ROI; ask for no {split} "
                    f"patches of {season}"
                )
            _plan_group(plans, rng, split, count, pool)
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
    patches: int | None = None,
    size: int = 256,
    seed: int = 0,
    layout: str = "official",
    exist_ok: bool = False,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
    season_domains: bool = False,
    season_patches: SeasonPatches | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Write a synthetic SEN12MS-CR-style dataset.

    Args:
        outdir: output directory (created; must be empty unless ``exist_ok``).
        patches: number of triplets (>= 3: at least one each for train, val and test);
            default 30. Not together with ``season_patches``.
        size: patch side in pixels (>= 16, even).
        seed: dataset seed; patch ``i`` is generated with ``generate_scene(seed=(seed, i))``.
        layout: ``"official"``, ``"flat"`` or ``"both"`` (official under ``outdir``, flat under
            ``outdir/flat``).
        exist_ok: allow a non-empty ``outdir`` (files of the same name are replaced).
        on_sample: called with each sample record once its files are written (progress bars).
        season_domains: render each patch in its ROI's season domain
            (``generate_scene(..., domain=<season>)``, :mod:`cloudfree.synth.domains`); its
            stratified plan cover ``u`` becomes that season's cover
            ``SeasonDomain.cover_from_uniform(u)``. Spring patches stay identical to
            ``season_domains=False``. False (default): every season looks like spring, as
            before.
        season_patches: choose the number of patches per season and split instead of
            ``patches`` (:func:`plan_season_samples`), e.g. ``{"spring": 60, "winter":
            (0, 0, 10)}``.
        splits: ROI lists per split for ``season_patches`` instead of the standard split
            (:func:`plan_season_samples`); requires ``season_patches``.

    Returns:
        One record per triplet: ``index, id, roi, season, scene, patch, split, split_code,
        seed, domain, requested_cover, cloud_cover, cloud_fraction, shadow_fraction,
        cloud_type, class_fractions, crs, transform`` and ``paths`` = ``{layout: {"s1", "s2",
        "s2_cloudy"}}`` (``s2`` is the cloud-free target; under ``flat`` it lies in
        ``s2_cloudfree/``; ``domain`` is the short season name rendered, None without
        ``season_domains``; ``requested_cover`` is the cover passed to the generator). The same
        records, with paths relative to ``outdir``, are written to
        ``outdir/synthetic_manifest.json``, with ``season_domains``, ``season_patches``
        (``{season folder: [train, val, test]}`` or None) and ``splits`` (the given ROI lists,
        None for the standard split; read such a dataset with the same lists) at the top; with
        ``season_domains`` the files carry a ``DOMAIN`` tag.
    """
    if not isinstance(season_domains, bool):
        raise ConfigError(f"season_domains must be True or False, got {season_domains!r}")
    if season_patches is not None and patches is not None:
        raise ConfigError("give patches or season_patches, not both")
    if splits is not None and season_patches is None:
        raise ConfigError("splits applies to season_patches plans; give season_patches too")
    counts = None
    if season_patches is None:
        n, s, k, lay = _validate(
            _DEFAULT_PATCHES if patches is None else patches, size, seed, layout
        )
        plans = plan_sen12mscr_samples(n, k)
    else:
        counts = season_patch_counts(season_patches)
        _, s, k, lay = _validate(_MIN_PATCHES, size, seed, layout)
        plans = plan_season_samples(season_patches, k, splits=splits)
        n = len(plans)
    out = Path(outdir)
    prepare_outdir(out, exist_ok)
    flat_root = out / "flat" if lay == "both" else out
    records: list[dict[str, Any]] = []
    csv_rows: list[str] = []
    for plan in plans:
        crs, transform = roi_georeference(plan.roi, plan.patch, s)
        domain = resolve_season(plan.season) if season_domains else None
        cover = plan.cloud_cover if domain is None else domain.cover_from_uniform(plan.cloud_cover)
        scene = generate_scene(
            s,
            s,
            seed=(k, plan.index),
            cloud_cover=cover,
            crs=crs,
            transform=transform,
            domain=None if domain is None else domain.name,
        )
        extra: dict[str, Any] = {"ROI": plan.roi, "PATCH": plan.patch, "SPLIT": plan.split}
        if domain is not None:
            extra["DOMAIN"] = domain.name
        tags = _tags(scene, extra)
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
            "domain": None if domain is None else domain.name,
            "requested_cover": cover,
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
        "season_domains": season_domains,
        "season_patches": None
        if counts is None
        else {season: [c[x] for x in SPLIT_NAMES] for season, c in counts.items()},
        "splits": None if splits is None else _split_pools(splits),
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
