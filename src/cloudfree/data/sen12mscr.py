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

Each sample is a dict. With ``protocol=None`` (the default) it holds **raw** data; with a
``protocol`` the images are normalised as that protocol's papers do
(:class:`cloudfree.data.transforms.NormalizeSample`, applied to the whole patch before cropping):

==============  ===================  =========================================================
key             type / shape         meaning
==============  ===================  =========================================================
``optical``     float32 [C, h, w]    cloudy S2, band subset: L1C DN (NaN where nodata or not
                                     finite), or normalised with ``protocol``
``sar``         float32 [2, h, w]    S1 VV, VH: backscatter in dB (NaN where nodata), or
                                     normalised with ``protocol``
``target``      float32 [C, h, w]    cloud-free S2, same scaling and bands as ``optical``
``cloud_mask``  float32 [1, h, w]    1 where the cloud detector labels cloud, else 0
``shadow_mask`` float32 [1, h, w]    1 where it labels cloud shadow, else 0
``valid_mask``  bool [1, h, w]       False where any input band was NaN / nodata
``cloud_cover`` float32 []           cloud fraction of the whole (uncropped) cloudy patch
``id``          str                  ``<season>_<scene>_p<patch>``, e.g. ``ROIs1970_fall_139_p839``
==============  ===================  =========================================================

SEN12MS-CR has no acquisition dates, so its samples have no ``dates`` entry.

Incomplete triplets: a sample with any of its three files missing (S1 included: the official
layout is also scanned from its S2 folders) is an :class:`~cloudfree.errors.InputFileError`
naming the first missing file, unless ``skip_incomplete=True`` (``--skip-incomplete``,
``data.skip_incomplete``). Errors whose fix is an option carry it in ``fix_option``
(``skip_incomplete`` or ``csv_path``); :func:`with_option_names` rewords them for a caller that
spells the option differently (the CLI's flags).

Value checks: the first :data:`CHECKED_SAMPLES` samples read by each dataset object (each
DataLoader worker holds its own) are checked with :mod:`cloudfree.io.checks`: S1 must be dB
without undeclared fill values, both S2 files L1C DN; a dataset in linear power or reflectance
is refused with a :class:`~cloudfree.errors.DatasetError` naming the file (a check on every
sample would cost time for no gain: a wrongly scaled dataset is wrong everywhere).

Cloud masks are computed on the full 13-band cloudy patch before cropping (the detector's shadow
thresholds are image-relative). ``masks=False`` skips the detector: the samples then have no
``cloud_mask``, ``shadow_mask`` or ``cloud_cover`` (for losses and metrics that read only
``valid_mask``; :meth:`SEN12MSCR.cloud_cover` still measures on demand). Per-sample cloud cover
is computed once and cached in a small JSON index (see :mod:`cloudfree.data.cover_index`), opened
on first use, so stratified sampling by cover bin is fast.

Normalising a raw sample yourself (``normalize_sample(sample, protocol)``) gives the same
tensors as ``SEN12MSCR(protocol=...)`` for whole patches; with ``crop_size`` or ``resize`` the
dataset must normalise (pass ``protocol``), since the ``nanmean`` fill and the clipping depend on
the whole, unresized patch (see :mod:`cloudfree.data.transforms`).
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
from torch.utils.data import Dataset

from cloudfree.bands import BandSet, get_band_set
from cloudfree.data.cover_index import CoverIndex
from cloudfree.data.registry import register_dataset
from cloudfree.data.sampling import COVER_BINS, stratified_indices
from cloudfree.data.splits import (
    SEN12MSCR_SEASONS,
    load_sen12mscr_splits,
    parse_roi_id,
    season_folder,
)
from cloudfree.data.transforms import (
    NormalizeSample,
    center_crop_window,
    crop_sample,
    resize_sample,
)
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import read_raster
from cloudfree.io.checks import check_optical_scale, check_sar_units
from cloudfree.normalization import _invalid

__all__ = ["CHECKED_SAMPLES", "SEN12MSCR", "TripletPaths", "find_triplets", "with_option_names"]

#: Samples whose values are checked per dataset object (see the module docstring).
CHECKED_SAMPLES = 2
#: How the Python API spells the options named in errors (``fix_option`` -> text).
PYTHON_OPTION_NAMES: dict[str, str] = {
    "skip_incomplete": "skip_incomplete=True",
    "csv_path": "csv_path=PATH",
}


def _option_error(exc: InputFileError | DatasetError, option: str) -> InputFileError | DatasetError:
    exc.fix_option = option  # type: ignore[union-attr]
    return exc


def with_option_names(exc: BaseException, names: Mapping[str, str]) -> BaseException:
    """``exc`` reworded with ``names`` (``fix_option`` -> how this caller spells it), e.g.
    ``{"skip_incomplete": "--skip-incomplete"}``; other exceptions are returned unchanged."""
    option = getattr(exc, "fix_option", None)
    if option is None or option not in names:
        return exc
    old, new = PYTHON_OPTION_NAMES[option], names[option]
    if isinstance(exc, InputFileError):
        out: BaseException = InputFileError(exc.path, exc.problem.replace(old, new))
    else:
        out = type(exc)(str(exc).replace(old, new))
    out.fix_option = option  # type: ignore[attr-defined]
    return out


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
        missing.extend(_s1_missing(root, season))
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


def _s1_missing(root: Path, season: str) -> list[Path]:
    """S1 files of ``season`` whose S2 (cloudy or clear) patch exists but S1 does not."""
    absent: set[Path] = set()
    for kind, prefix in (("s2", "s2_"), ("s2_cloudy", "s2_cloudy_")):
        folder = root / f"{season}_{kind}"
        if not folder.is_dir():
            continue
        pattern = re.compile(rf"^{season}_{kind}_(\d+)_p(\d+)\.tif$")
        for scene_dir in folder.iterdir():
            if not (scene_dir.name.startswith(prefix) and scene_dir.is_dir()):
                continue
            for f in scene_dir.iterdir():
                m = pattern.match(f.name)
                if not m:
                    continue
                scene, patch = m.group(1), m.group(2)
                s1 = root / f"{season}_s1" / f"s1_{scene}" / f"{season}_s1_{scene}_p{patch}.tif"
                if not s1.is_file():
                    absent.add(s1)
    return sorted(absent, key=_natural_key)


def _report_missing(missing: list[Path], skip_incomplete: bool) -> None:
    if not missing:
        return
    if skip_incomplete:
        warnings.warn(
            f"skipped {len(missing)} incomplete triplet file(s), first: {missing[0]}",
            stacklevel=3,
        )
        return
    raise _option_error(
        InputFileError(
            missing[0],
            f"file not found (one of {len(missing)} missing triplet files); "
            f"pass {PYTHON_OPTION_NAMES['skip_incomplete']} to ignore incomplete triplets",
        ),
        "skip_incomplete",
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
            raise _option_error(
                DatasetError(
                    f"{root}: flat layout needs exactly one CSV file list, found "
                    f"{[c.name for c in candidates] or 'none'}; pass "
                    f"{PYTHON_OPTION_NAMES['csv_path']}"
                ),
                "csv_path",
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


@register_dataset(
    "sen12mscr",
    description="SEN12MS-CR (Ebel et al. 2020): mono-temporal S1 / cloudy S2 / clear S2 triplets",
    temporal=False,
)
class SEN12MSCR(Dataset):
    """SEN12MS-CR triplets as a torch Dataset (see the module docstring for the sample format).

    Args:
        root: dataset root (official or flat layout, detected automatically).
        split: ``train``, ``val``, ``test`` or ``all``.
        protocol: None (the default) yields raw samples (DN / dB); a normalisation protocol
            (``glf_cr``, ``uncrtaints``, ``dsen2cr``, ``allclear``) normalises every sample's
            whole patch with :class:`~cloudfree.data.transforms.NormalizeSample` before it is
            cropped or resized.
        bands: optical band selection: None/"all" (13 bands), "rgb", "B04,B03,B02" or a list.
        seasons: keep only these seasons (``"spring"`` or ``"ROIs1158_spring"``...).
        crop_size: crop the 256 px patches to this size (None: no crop).
        crop: ``"random"`` (training) or ``"center"`` (testing).
        resize: resize (after cropping) to this size, bilinear with antialiasing for images and
            nearest for masks (the MMCANet protocol uses 128).
        masks: compute ``cloud_mask``, ``shadow_mask`` and ``cloud_cover`` (the cloud
            detector runs on every read); False leaves them out of the samples.
        cloud_mask_method: method of :func:`cloudfree.cloudmask.compute_cloud_mask`.
        cloud_threshold: cloud score threshold (0.2 as in GLF-CR / DSen2-CR).
        pb04_offset: subtract the processing-baseline 04.00 offset (never for SEN12MS-CR
            itself, whose 2018 data have none; for user data in the same layout) before the
            cloud detector and, with a ``protocol``, before normalising. Raw samples keep the
            file's DN.
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
        protocol: str | None = None,
        *,
        bands: str | Sequence[str] | BandSet | None = None,
        seasons: Sequence[str] | None = None,
        crop_size: int | None = None,
        crop: Literal["random", "center"] = "random",
        resize: int | None = None,
        masks: bool = True,
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
        self.normalize = (
            None if protocol is None else NormalizeSample(protocol, pb04_offset=pb04_offset)
        )
        self.protocol = None if self.normalize is None else self.normalize.protocol
        self.bands = get_band_set(bands)
        self.crop_size = crop_size
        self.crop = crop
        self.resize = resize
        self.masks = bool(masks)
        self.cloud_mask_method = cloud_mask_method
        self.cloud_threshold = cloud_threshold
        self.pb04_offset = pb04_offset
        self.seed = seed
        self.transform = transform
        self._index_path = index_path
        self._cover_index: CoverIndex | None = None
        self._checked = 0
        triplets = find_triplets(
            self.root,
            layout=layout,
            csv_path=csv_path,
            splits=splits,
            split_source=split_source,
            skip_incomplete=skip_incomplete,
        )
        if seasons is not None:
            wanted = {season_folder(s) for s in seasons}
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

    def __len__(self) -> int:
        return len(self.triplets)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.triplets]

    @property
    def _index(self) -> CoverIndex:
        """The cloud-cover index, opened (read from disk) on first use."""
        if self._cover_index is None:
            self._cover_index = CoverIndex.for_dataset(
                self.root,
                method=self.cloud_mask_method,
                threshold=self.cloud_threshold,
                pb04_offset=self.pb04_offset,
                path=self._index_path,
            )
        return self._cover_index

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
        if self.crop == "center":
            top, left = center_crop_window(h, w, size)
            return top, left, size, size
        if size > h or size > w:
            raise ConfigError(f"crop_size {size} is larger than the {h}x{w} patch")
        if self.seed is not None:
            rng = np.random.default_rng([self.seed, index])
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        else:
            top = int(torch.randint(0, h - size + 1, (1,)).item())
            left = int(torch.randint(0, w - size + 1, (1,)).item())
        return top, left, size, size

    def raw_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as raw data of the whole patch (no normalisation, crop, resize or
        ``transform``): ``optical`` / ``target`` float32 DN of the band subset and ``sar``
        float32 dB, NaN where the file has nodata or a non-finite value; masks as in the
        module docstring."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        t = self.triplets[index]
        s1, s2, s2c, (nd1, nd2, nd2c) = self._read_triplet(t)
        if self._checked < CHECKED_SAMPLES:
            _check_values(t, s1, s2, s2c, (nd1, nd2, nd2c))
            self._checked += 1
        sel = list(self.bands.indices)
        optical = with_nan(s2c[sel], nd2c)
        target = with_nan(s2[sel], nd2)
        sar = with_nan(s1, nd1)
        valid = ~(np.isnan(optical).any(0) | np.isnan(target).any(0) | np.isnan(sar).any(0))
        sample: dict[str, Any] = {
            "optical": torch.from_numpy(optical),
            "sar": torch.from_numpy(sar),
            "target": torch.from_numpy(target),
        }
        if not self.masks:
            return {**sample, "valid_mask": torch.from_numpy(valid[None]), "id": t.id}
        labels = self._mask(s2c)
        cover = self._index.get(t.id)
        if cover is None:
            cover = float((labels == 1).mean())
            self._index.put(t.id, cover)
        return {
            **sample,
            "cloud_mask": torch.from_numpy((labels == 1)[None]).to(torch.float32),
            "shadow_mask": torch.from_numpy((labels == -1)[None]).to(torch.float32),
            "valid_mask": torch.from_numpy(valid[None]),
            "cloud_cover": torch.tensor(cover, dtype=torch.float32),
            "id": t.id,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.raw_sample(index)
        if self.normalize is not None:
            sample = self.normalize(sample)
        h, w = sample["optical"].shape[-2:]
        top, left, hh, ww = self._crop_window(index % len(self), int(h), int(w))
        if (hh, ww) != (h, w):
            sample = crop_sample(sample, top, left, hh, ww)
        if self.resize is not None:
            sample = resize_sample(sample, self.resize)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"SEN12MSCR(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"protocol={self.protocol!r}, bands={list(self.bands.names)})"
        )


def _check_values(
    t: TripletPaths,
    s1: np.ndarray,
    s2: np.ndarray,
    s2c: np.ndarray,
    nodata: tuple[float | None, float | None, float | None],
) -> None:
    """The value checks of the module docstring, as a :class:`DatasetError` naming the file."""
    try:
        check_sar_units(
            s1,
            t.s1,
            nodata[0],
            nodata_fix="declare {value} as the files' nodata (gdal_edit.py -a_nodata {value} FILE)",
            units_fix="convert every S1 file of the dataset to dB (10*log10)",
        )
        for path, arr, nd in ((t.s2_cloudy, s2c, nodata[2]), (t.s2, s2, nodata[1])):
            check_optical_scale(arr, path, nd, scale_fix="convert the data to DN (x 10000)")
    except InputFileError as exc:
        raise DatasetError(f"{exc} (SEN12MS-CR needs S1 in dB and S2 in L1C DN)") from None


def with_nan(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """``values`` as float32 with NaN where they equal ``nodata`` or are not finite."""
    arr = np.array(values, dtype=np.float32)  # a copy: the caller's array is left alone
    arr[_invalid(arr, nodata)] = np.nan  # the normalisers' own invalid-value rule
    return arr
