"""SEN12MS-CR: mono-temporal (S1, cloudy S2, cloud-free S2) triplets (SPEC section 2).

Two on-disk layouts are read:

* **official** (the mediaTUM release)::

    <root>/ROIs1158_spring_s1/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.tif
    <root>/ROIs1158_spring_s2/s2_<scene>/ROIs1158_spring_s2_<scene>_p<patch>.tif
    <root>/ROIs1158_spring_s2_cloudy/s2_cloudy_<scene>/ROIs1158_spring_s2_cloudy_<scene>_p<patch>.tif

  Splits come from the shipped standard ROI lists (:mod:`cloudfree.data.splits`), matched on the
  exact season and scene folder names (the official loader's substring test leaks test ROIs into
  training; ours cannot).

* **flat** (GLF-CR / DSen2-CR): ``<root>/s1/``, ``<root>/s2_cloudfree/``, ``<root>/s2_cloudy/``
  holding the same file name (modality tag removed), listed by a CSV with rows
  ``split, s1_dir, s2_cloudfree_dir, s2_cloudy_dir, filename`` (split 1 train, 2 val, 3 test;
  comma or comma-space separated; an optional header row is skipped). By default the CSV's own
  split column decides membership (``split_source="csv"``); ``split_source="standard"`` applies
  the standard ROI lists to the ROI encoded in the file name instead.

Each sample is a dict:

==============  ===================  =========================================================
key             type / shape         meaning
==============  ===================  =========================================================
``optical``     float32 [C, h, w]    cloudy S2, normalised with ``protocol``, band subset
``sar``         float32 [2, h, w]    S1 VV, VH, normalised with ``protocol``
``target``      float32 [C, h, w]    cloud-free S2, same scaling and bands as ``optical``
``cloud_mask``  float32 [1, h, w]    1 where the cloud detector labels cloud, else 0
``shadow_mask`` float32 [1, h, w]    1 where it labels cloud shadow, else 0
``valid_mask``  bool [1, h, w]       False where any input band was NaN / nodata
``cloud_cover`` float32 []           cloud fraction of the whole (uncropped) cloudy patch
``id``          str                  ``<season>_<scene>_p<patch>``, e.g. ``ROIs1970_fall_139_p839``
==============  ===================  =========================================================

Cloud masks are computed on the full 13-band cloudy patch before cropping (the detector's shadow
thresholds are image-relative). Per-sample cloud cover is computed once and cached in a small JSON
index (see :mod:`cloudfree.data.cover_index`), so stratified sampling by cover bin is fast.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cloudfree.bands import S1_NAMES, BandSet, get_band_set
from cloudfree.data.cover_index import CoverIndex
from cloudfree.data.sampling import COVER_BINS, stratified_indices
from cloudfree.data.splits import SEN12MSCR_SEASONS, load_sen12mscr_splits, parse_roi_id
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import read_raster
from cloudfree.normalization import get_protocol, normalize_optical, normalize_sar

__all__ = ["SEN12MSCR", "TripletPaths", "find_triplets"]

Split = Literal["train", "val", "test", "all"]
_SPLIT_CODES = {"1": "train", "2": "val", "3": "test"}
_SCENE_DIR = re.compile(r"^s1_(\d+)$")
_FLAT_NAME = re.compile(r"^(ROIs\d{4}_[a-z]+)_(\d+)_p(\d+)\.tiff?$")


@dataclass(frozen=True)
class TripletPaths:
    """The three files of one sample and where it belongs."""

    id: str
    season: str
    scene: int
    patch: int
    s1: Path
    s2: Path
    s2_cloudy: Path
    split: str | None

    @property
    def roi(self) -> str:
        return f"{self.season}/s1_{self.scene}"


def _resolve_season(name: str) -> str:
    for season in SEN12MSCR_SEASONS:
        if name == season or name.lower() == season.split("_")[1]:
            return season
    raise ConfigError(f"unknown season {name!r}; valid: {list(SEN12MSCR_SEASONS)} or short names")


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _detect_layout(root: Path) -> str:
    if any(root.glob("ROIs*_s1")):
        return "official"
    if (root / "s1").is_dir() and any(root.glob("*.csv")):
        return "flat"
    raise DatasetError(
        f"{root}: no SEN12MS-CR data found (expected 'ROIs<nnnn>_<season>_s1/' folders of the "
        "official layout, or 's1/', 's2_cloudfree/', 's2_cloudy/' and a CSV of the flat layout)"
    )


def _official_triplets(
    root: Path, roi_split: Mapping[str, str], skip_incomplete: bool
) -> list[TripletPaths]:
    found: list[TripletPaths] = []
    missing: list[Path] = []
    for season in SEN12MSCR_SEASONS:
        s1_root = root / f"{season}_s1"
        if not s1_root.is_dir():
            continue
        for scene_dir in sorted(s1_root.iterdir(), key=_natural_key):
            m = _SCENE_DIR.match(scene_dir.name)
            if not (scene_dir.is_dir() and m):
                continue
            scene = int(m.group(1))
            roi = f"{season}/s1_{scene}"
            pattern = re.compile(rf"^{season}_s1_{scene}_p(\d+)\.tif$")
            for s1 in sorted(scene_dir.iterdir(), key=_natural_key):
                pm = pattern.match(s1.name)
                if not pm:
                    continue
                patch = int(pm.group(1))
                s2 = root / f"{season}_s2" / f"s2_{scene}" / f"{season}_s2_{scene}_p{patch}.tif"
                s2c = (
                    root
                    / f"{season}_s2_cloudy"
                    / f"s2_cloudy_{scene}"
                    / f"{season}_s2_cloudy_{scene}_p{patch}.tif"
                )
                absent = [p for p in (s2, s2c) if not p.is_file()]
                if absent:
                    missing.extend(absent)
                    continue
                found.append(
                    TripletPaths(
                        id=f"{season}_{scene}_p{patch}",
                        season=season,
                        scene=scene,
                        patch=patch,
                        s1=s1,
                        s2=s2,
                        s2_cloudy=s2c,
                        split=roi_split.get(roi),
                    )
                )
    _report_missing(missing, skip_incomplete)
    return found


def _report_missing(missing: list[Path], skip_incomplete: bool) -> None:
    if not missing:
        return
    if skip_incomplete:
        warnings.warn(
            f"skipped {len(missing)} incomplete triplet file(s), first: {missing[0]}",
            stacklevel=3,
        )
        return
    raise InputFileError(
        missing[0],
        f"file not found (one of {len(missing)} missing triplet files); "
        "pass skip_incomplete=True to ignore incomplete triplets",
    )


def _read_csv_rows(csv_path: Path) -> list[list[str]]:
    rows = []
    with open(csv_path, newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = [f.strip() for f in next(csv.reader([line.replace("\t", ",")]))]
            if len(fields) != 5:
                raise InputFileError(
                    csv_path,
                    f"line {lineno}: expected 5 fields (split, s1_dir, s2_cloudfree_dir, "
                    f"s2_cloudy_dir, filename), got {len(fields)}",
                )
            if not fields[0].isdigit():
                if lineno == 1:
                    continue  # header
                raise InputFileError(csv_path, f"line {lineno}: split {fields[0]!r} is not 1/2/3")
            rows.append(fields)
    return rows


def _flat_triplets(
    root: Path,
    csv_path: Path | None,
    roi_split: Mapping[str, str],
    split_source: str,
    skip_incomplete: bool,
) -> list[TripletPaths]:
    if csv_path is None:
        candidates = sorted(root.glob("*.csv"))
        if len(candidates) != 1:
            raise DatasetError(
                f"{root}: flat layout needs exactly one CSV file list, found "
                f"{[c.name for c in candidates] or 'none'}; pass csv=PATH"
            )
        csv_path = candidates[0]
    found: list[TripletPaths] = []
    missing: list[Path] = []
    for code, s1_dir, s2_dir, s2c_dir, filename in _read_csv_rows(csv_path):
        if code not in _SPLIT_CODES:
            raise InputFileError(csv_path, f"split code {code!r} is not 1, 2 or 3 ({filename})")
        m = _FLAT_NAME.match(filename)
        if not m:
            raise InputFileError(
                csv_path, f"file name {filename!r} is not '<season>_<scene>_p<patch>.tif'"
            )
        season, scene, patch = m.group(1), int(m.group(2)), int(m.group(3))
        paths = [root / s1_dir / filename, root / s2_dir / filename, root / s2c_dir / filename]
        absent = [p for p in paths if not p.is_file()]
        if absent:
            missing.extend(absent)
            continue
        split = (
            _SPLIT_CODES[code] if split_source == "csv" else roi_split.get(f"{season}/s1_{scene}")
        )
        found.append(
            TripletPaths(
                id=f"{season}_{scene}_p{patch}",
                season=season,
                scene=scene,
                patch=patch,
                s1=paths[0],
                s2=paths[1],
                s2_cloudy=paths[2],
                split=split,
            )
        )
    _report_missing(missing, skip_incomplete)
    return found


def find_triplets(
    root: str | Path,
    *,
    layout: Literal["auto", "official", "flat"] = "auto",
    csv_path: str | Path | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
    split_source: Literal["csv", "standard"] = "csv",
    skip_incomplete: bool = False,
) -> list[TripletPaths]:
    """List every triplet under ``root`` with its split (None when its ROI is in no list)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist or is not a directory")
    split_lists = dict(splits) if splits is not None else load_sen12mscr_splits()
    roi_split: dict[str, str] = {}
    for name, rois in split_lists.items():
        for roi in rois:
            parse_roi_id(roi)
            if roi in roi_split:
                raise ConfigError(f"ROI {roi} is in both {roi_split[roi]!r} and {name!r} splits")
            roi_split[roi] = name
    if layout == "auto":
        layout = _detect_layout(root)  # type: ignore[assignment]
    if layout == "official":
        return _official_triplets(root, roi_split, skip_incomplete)
    if layout == "flat":
        return _flat_triplets(
            root,
            Path(csv_path) if csv_path else None,
            roi_split,
            split_source,
            skip_incomplete,
        )
    raise ConfigError(f"unknown layout {layout!r}; valid: auto, official, flat")


class SEN12MSCR(Dataset):
    """SEN12MS-CR triplets as a torch Dataset (see the module docstring for the sample format).

    Args:
        root: dataset root (official or flat layout, detected automatically).
        split: ``train``, ``val``, ``test`` or ``all``.
        protocol: normalisation protocol (``glf_cr``, ``uncrtaints``, ``dsen2cr``, ``allclear``).
        bands: optical band selection: None/"all" (13 bands), "rgb", "B04,B03,B02" or a list.
        seasons: keep only these seasons (``"spring"`` or ``"ROIs1158_spring"``...).
        crop_size: crop the 256 px patches to this size (None: no crop).
        crop: ``"random"`` (training) or ``"center"`` (testing).
        resize: resize (after cropping) to this size, bilinear with antialiasing for images and
            nearest for masks (the MMCANet protocol uses 128).
        cloud_mask_method: method of :func:`cloudfree.cloudmask.compute_cloud_mask`.
        cloud_threshold: cloud score threshold (0.2 as in GLF-CR / DSen2-CR).
        pb04_offset: subtract the processing-baseline 04.00 offset (never for SEN12MS-CR
            itself, whose 2018 data have none; for user data in the same layout).
        layout, csv_path, split_source, splits: see :func:`find_triplets`; ``splits`` replaces
            the standard ROI lists (e.g. the MMCANet spring-only lists).
        index_path: where the cloud-cover index is cached (default: next to the data, or in
            ``~/.cache/cloudfree`` when the root is read-only).
        seed: if given, random crops are drawn from a generator seeded with (seed, index),
            so every epoch sees the same crop; otherwise from torch's global generator.
        skip_incomplete: skip triplets with a missing file instead of raising.
        transform: optional callable applied to the finished sample dict (augmentation).
    """

    def __init__(
        self,
        root: str | Path,
        split: Split = "train",
        protocol: str = "glf_cr",
        *,
        bands: str | Sequence[str] | BandSet | None = None,
        seasons: Sequence[str] | None = None,
        crop_size: int | None = None,
        crop: Literal["random", "center"] = "random",
        resize: int | None = None,
        cloud_mask_method: str = "rule_based",
        cloud_threshold: float = 0.2,
        pb04_offset: bool = False,
        layout: Literal["auto", "official", "flat"] = "auto",
        csv_path: str | Path | None = None,
        split_source: Literal["csv", "standard"] = "csv",
        splits: Mapping[str, Sequence[str]] | None = None,
        index_path: str | Path | None = None,
        seed: int | None = None,
        skip_incomplete: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if split not in ("train", "val", "test", "all"):
            raise ConfigError(f"unknown split {split!r}; valid: train, val, test, all")
        if crop not in ("random", "center"):
            raise ConfigError(f"unknown crop mode {crop!r}; valid: random, center")
        for name, value in (("crop_size", crop_size), ("resize", resize)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be a positive number of pixels, got {value}")
        self.root = Path(root)
        self.split = split
        self.protocol = get_protocol(protocol).name
        self.bands = get_band_set(bands)
        self.crop_size = crop_size
        self.crop = crop
        self.resize = resize
        self.cloud_mask_method = cloud_mask_method
        self.cloud_threshold = cloud_threshold
        self.pb04_offset = pb04_offset
        self.seed = seed
        self.transform = transform
        triplets = find_triplets(
            self.root,
            layout=layout,
            csv_path=csv_path,
            splits=splits,
            split_source=split_source,
            skip_incomplete=skip_incomplete,
        )
        if seasons is not None:
            wanted = {_resolve_season(s) for s in seasons}
            triplets = [t for t in triplets if t.season in wanted]
        if split != "all":
            triplets = [t for t in triplets if t.split == split]
        if not triplets:
            raise DatasetError(
                f"{self.root}: the {split!r} split is empty"
                + (f" for seasons {list(seasons)}" if seasons else "")
                + " (no complete triplet of its ROIs was found)"
            )
        self.triplets: list[TripletPaths] = triplets
        self._index = CoverIndex.for_dataset(
            self.root,
            method=cloud_mask_method,
            threshold=cloud_threshold,
            pb04_offset=pb04_offset,
            path=index_path,
        )

    def __len__(self) -> int:
        return len(self.triplets)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.triplets]

    # ----------------------------------------------------------------------------- reading
    def _read_triplet(self, t: TripletPaths) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        s1 = read_raster(t.s1, expected_count=2)
        s2 = read_raster(t.s2, expected_count=13)
        s2c = read_raster(t.s2_cloudy, expected_count=13)
        shapes = {
            t.s1: s1.array.shape[1:],
            t.s2: s2.array.shape[1:],
            t.s2_cloudy: s2c.array.shape[1:],
        }
        if len(set(shapes.values())) != 1:
            detail = ", ".join(f"{p.name}: {h}x{w}" for p, (h, w) in shapes.items())
            raise InputFileError(t.s1, f"triplet files have different sizes ({detail})")
        return s1.array, s2.array, s2c.array, (s1.nodata, s2.nodata, s2c.nodata)

    def _mask(self, cloudy_dn: np.ndarray) -> np.ndarray:
        from cloudfree.cloudmask import compute_cloud_mask

        dn = cloudy_dn
        if self.pb04_offset:
            from cloudfree.bands import harmonize_pb04

            dn = harmonize_pb04(dn)
        return compute_cloud_mask(dn, method=self.cloud_mask_method, threshold=self.cloud_threshold)

    def cloud_cover(self, index: int) -> float:
        """Cloud fraction of sample ``index`` (cached in the cover index)."""
        t = self.triplets[index]
        cover = self._index.get(t.id)
        if cover is None:
            dn = read_raster(t.s2_cloudy, expected_count=13).array
            cover = float((self._mask(dn) == 1).mean())
            self._index.put(t.id, cover)
            self._index.save()
        return cover

    def cloud_covers(self, progress: bool = True) -> np.ndarray:
        """Cloud fraction of every sample; computed once (with a progress bar), then cached."""
        todo = [i for i, t in enumerate(self.triplets) if self._index.get(t.id) is None]
        if todo:
            from tqdm.auto import tqdm

            for i in tqdm(todo, desc="cloud cover index", disable=not progress, unit="patch"):
                t = self.triplets[i]
                dn = read_raster(t.s2_cloudy, expected_count=13).array
                self._index.put(t.id, float((self._mask(dn) == 1).mean()))
            self._index.save()
        return np.array([self._index.get(t.id) for t in self.triplets], dtype=np.float64)

    def stratified_indices(
        self,
        per_bin: int,
        *,
        bins: Sequence[float] = COVER_BINS,
        seed: int = 0,
        strict: bool = False,
    ) -> list[int]:
        """Indices of ``per_bin`` samples from each cloud-cover bin (GLF-CR's test protocol
        draws 800 from each of 0-20 ... 80-100 %). See :func:`stratified_indices`."""
        return stratified_indices(
            self.cloud_covers(), per_bin=per_bin, bins=bins, seed=seed, strict=strict
        )

    # ----------------------------------------------------------------------------- samples
    def _crop_window(self, index: int, h: int, w: int) -> tuple[int, int, int, int]:
        size = self.crop_size
        if size is None:
            return 0, 0, h, w
        if size > h or size > w:
            raise ConfigError(f"crop_size {size} is larger than the {h}x{w} patch")
        if self.crop == "center":
            return (h - size) // 2, (w - size) // 2, size, size
        if self.seed is not None:
            rng = np.random.default_rng([self.seed, index])
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        else:
            top = int(torch.randint(0, h - size + 1, (1,)).item())
            left = int(torch.randint(0, w - size + 1, (1,)).item())
        return top, left, size, size

    def _resize(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        if self.resize is None or x.shape[-1] == self.resize and x.shape[-2] == self.resize:
            return x
        size = (self.resize, self.resize)
        if mode == "nearest":
            return F.interpolate(x[None].float(), size=size, mode="nearest")[0].to(x.dtype)
        return F.interpolate(
            x[None], size=size, mode="bilinear", antialias=True, align_corners=False
        )[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        t = self.triplets[index]
        s1, s2, s2c, (nd1, nd2, nd2c) = self._read_triplet(t)
        labels = self._mask(s2c)
        cover = self._index.get(t.id)
        if cover is None:
            cover = float((labels == 1).mean())
            self._index.put(t.id, cover)
        sel = list(self.bands.indices)
        optical = normalize_optical(
            s2c[sel], self.protocol, pb04_offset=self.pb04_offset, nodata=nd2c
        )
        target = normalize_optical(s2[sel], self.protocol, pb04_offset=self.pb04_offset, nodata=nd2)
        sar = normalize_sar(s1, self.protocol, bands=S1_NAMES, nodata=nd1)
        valid = optical.valid & target.valid & sar.valid

        top, left, hh, ww = self._crop_window(index, *labels.shape)
        win = (slice(None), slice(top, top + hh), slice(left, left + ww))

        def img(a: np.ndarray) -> torch.Tensor:
            return self._resize(torch.from_numpy(np.ascontiguousarray(a[win])), "bilinear")

        def msk(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return self._resize(torch.from_numpy(np.ascontiguousarray(a[None][win])), "nearest").to(
                dtype
            )

        sample: dict[str, Any] = {
            "optical": img(optical.array),
            "sar": img(sar.array),
            "target": img(target.array),
            "cloud_mask": msk(labels == 1, torch.float32),
            "shadow_mask": msk(labels == -1, torch.float32),
            "valid_mask": msk(valid, torch.bool),
            "cloud_cover": torch.tensor(cover, dtype=torch.float32),
            "id": t.id,
        }
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"SEN12MSCR(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"protocol={self.protocol!r}, bands={list(self.bands.names)})"
        )
