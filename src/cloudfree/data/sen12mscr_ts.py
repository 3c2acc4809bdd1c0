"""SEN12MS-CR-TS: multi-temporal Sentinel-1 / Sentinel-2 patches (53 ROIs, 30 dates each).

Layout (the official release; the simulator's writer produces it exactly)::

    <root>/ROIs{1158,1868,1970,2017}/<roi>/{S1,S2}/<t>/<mod>_<ROIsXXXX>_<roi>_ImgNo_<t>_<YYYY-MM-DD>_patch_<n>.tif

``<mod>`` is ``s1`` / ``s2``; the date is field 5 of the file name split at ``_`` (as the official
loader reads it); S1 holds VV, VH in dB, S2 the 13 L1C bands (the cloudy acquisition of that
date: SEN12MS-CR-TS has no separate cloud-free image, the target is one of the dates).

Decisions (where the official loader, ``PatrickTUM/UnCRtainTS data/dataLoader.py``, is followed and
where not):

* **ROIs and splits**: the official ROI inventory and splits, shipped as package data
  (:func:`cloudfree.data.splits.load_sen12mscr_ts_splits`: ``region`` ``all`` and the
  per-continent ones), matched by exact ROI ids (``ROIs1868/119``). Samples are enumerated in the
  official order (ROI inventory order, then patch number), so the official precomputed pairing
  files index the same samples.
* **Pairing**: S1 and S2 files of a date are paired by patch number (the official loader pairs
  the natsorted lists by position and asserts equal lengths). A patch missing at some date is an
  error naming the file (``skip_incomplete=True`` drops the patch instead).
* **Dates** are days since 2014-04-03 (S1 launch, :data:`cloudfree.models.api.DATE_EPOCH`),
  averaged over the S1 and S2 acquisitions of each date as UnCRtainTS feeds them.
* **Cloud cover** of every (patch, date) is the mean of the cloud mask, computed once per date
  and cached in the cover index (:class:`~cloudfree.data.cover_index.CoverIndex`). With
  ``cloud_masks="rule_based"`` the mask is cloud **or shadow**, as the official
  ``cloud_cloudshadow_mask`` (which labels both 1); with ``"s2cloudless"`` the s2cloudless mask
  (``s2cloudless_mask``, the official default, needs the optional package); with
  ``"mask_files"`` the masks stored next to the data (``<roi>/mask/<t>/mask_...``, int8 1 cloud,
  -1 shadow: the simulator's true masks, or your own), cover = cloud or shadow. The default is
  ``rule_based``: s2cloudless is an optional dependency here.
* **Samplers** (``sampler=``), with ``clear_threshold`` 1e-3 as in the official code:

  - ``fixed``: target = the least cloudy date (the earliest among equals: a stable sort, where
    the official ``np.argsort`` does not promise one); inputs = the first ``n_input_t`` dates
    whose cover lies in [``min_cov``, ``max_cov``] (which may include the target date, as in
    the official code), else the first ``n_input_t`` dates other than the target; ``match`` is
    False in that case or when the target's cover exceeds ``clear_threshold``.
  - ``random``: target = a random date with cover < ``clear_threshold`` (else the least cloudy);
    inputs = the other dates of the middle one of the sliding windows of ``n_input_t + 1``
    consecutive dates that contain the target. Random draws come from a generator seeded with
    ``(seed, epoch, index)`` (:meth:`set_epoch`), not from NumPy's global state.
  - ``ca_mtcr`` (paper 002): the input **includes the cloudy date N to restore, placed last**;
    the reference (``target``) is a different, temporally adjacent cloud-free date; ``n_aux``
    auxiliary dates are drawn from the rest. Decisions: N is drawn (seeded) among the dates with
    cover in [max(``min_cov``, ``clear_threshold``), ``max_cov``] that have a cloud-free date
    (cover < ``clear_threshold``) other than themselves; the reference is the cloud-free date
    nearest to N in time (the earlier one on a tie); "minimal land-cover change" is taken as
    "nearest in time" (the paper gives no criterion); auxiliary dates are drawn without
    replacement from the dates other than N and the reference, within ``aux_offset_window =
    (a, b)`` date steps of N when given (Fig. 7a's offset), in time order before N; a patch
    without any such N falls back to the most cloudy date as N and the least cloudy other date
    as reference, with ``match`` False.
* **Precomputed pairings** (``import_data_path``): the official ``generic_{T}_{split}_{region}_
  {mask}.npy`` files (a pickled dict ``index -> {'input': [...], 'target': t}`` or ``{'coverage':
  [...]}``). They are read with a restricted unpickler that accepts only NumPy arrays and plain
  containers (never arbitrary objects); the sample for index ``i`` is pairing
  ``(epoch * len + i) % n_pairs`` as in the official loader.
* **Samples** follow the batch contract: ``optical`` float32 ``[T, 13, H, W]`` DN (NaN where
  missing), ``sar`` ``[T, 2, H, W]`` dB, ``dates`` ``[T]``, ``time_mask`` ``[T]`` (all True;
  padding is added by :func:`cloudfree.data.temporal.collate_time_series`), ``target``
  ``[13, H, W]``, ``cloud_masks`` / ``shadow_masks`` ``[T, 1, H, W]`` per input date,
  ``cover`` ``[T]``, ``target_cover``, ``target_cloud_mask`` / ``target_shadow_mask`` /
  ``valid_mask`` ``[1, H, W]`` (the target's), ``input_idx``, ``target_idx``, ``target_date``,
  ``match`` and ``id`` (``ROIs1868_119_p12``). For evaluation, ``cloud_mask`` / ``shadow_mask``
  ``[1, H, W]`` and ``cloud_cover`` describe the region to restore: the cloudy date N's masks and
  cover under ``ca_mtcr`` (N is the last input), the union of the input dates' masks and their
  mean cover under ``fixed`` / ``random`` (**Decision**: those samplers have no single date to
  restore). Where the simulator wrote change maps (``<roi>/change/<t>/``), ``changed_fraction``
  ``[T]`` is the fraction of pixels whose surface changed between each input date and the target
  date, and ``aux_changed`` is 1 when any input date changed by more than
  :data:`CHANGED_FRACTION` of the patch (else 0; NaN without change maps). With
  ``target_sar=True`` the sample also holds ``target_sar`` ``[2, H, W]`` dB: the S1 image of the
  target date (every date has its S1 file), the Noise2Noise partner of the last input date's
  SAR in paper 002's SAR pre-training (the ``sar_pretrain`` task); off by default, so other
  samples are unchanged.
"""

from __future__ import annotations

import datetime as dt
import io
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cloudfree.data.cover_index import CoverIndex
from cloudfree.data.registry import register_dataset
from cloudfree.data.sen12mscr import with_nan
from cloudfree.data.splits import load_sen12mscr_ts_splits, sen12mscr_ts_rois
from cloudfree.data.transforms import center_crop_window, crop_sample
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.io import read_raster

__all__ = [
    "SAMPLERS",
    "TS_CLOUD_MASKS",
    "SEN12MSCRTS",
    "TSPatch",
    "parse_ts_name",
    "ts_file_name",
]

SAMPLERS: tuple[str, ...] = ("fixed", "random", "ca_mtcr")
#: Cloud masks the dataset can compute, with the official loader's name for each.
TS_CLOUD_MASKS: dict[str, str] = {
    "rule_based": "cloud_cloudshadow_mask",
    "s2cloudless": "s2cloudless_mask",
    "mask_files": "mask_files",
}
#: The official loader's mask names, accepted as they are.
_MASK_ALIASES = {"cloud_cloudshadow_mask": "rule_based", "s2cloudless_mask": "s2cloudless"}
_EPOCH = dt.date(2014, 4, 3)
#: An input date counts as "changed" when more than this fraction of the patch changed between
#: it and the target date (evaluation strata ``aux_changed``).
CHANGED_FRACTION = 0.01
_NAME = re.compile(
    r"^(?P<mod>s1|s2)_(?P<rois>ROIs\d{4})_(?P<roi>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<patch>\d+)\.tif$"
)


def ts_file_name(mod: str, rois: str, roi: str | int, t: int, date: dt.date, patch: int) -> str:
    """``s2_ROIs1868_119_ImgNo_3_2018-02-01_patch_12.tif`` (the official naming)."""
    return f"{mod}_{rois}_{roi}_ImgNo_{t}_{date.isoformat()}_patch_{patch}.tif"


def parse_ts_name(name: str) -> dict[str, Any] | None:
    """The fields of an official file name (``None`` when it is not one)."""
    m = _NAME.match(name)
    if m is None:
        return None
    return {
        "mod": m["mod"],
        "rois": m["rois"],
        "roi": m["roi"],
        "t": int(m["t"]),
        "date": dt.date.fromisoformat(m["date"]),
        "patch": int(m["patch"]),
    }


@dataclass(frozen=True)
class TSPatch:
    """One patch's files: per date index, the S1 and S2 paths and dates."""

    roi_id: str  # "ROIs1868/119"
    patch: int
    s1: tuple[Path, ...]
    s2: tuple[Path, ...]
    s1_dates: tuple[dt.date, ...]
    s2_dates: tuple[dt.date, ...]

    @property
    def id(self) -> str:
        return f"{self.roi_id.replace('/', '_')}_p{self.patch}"

    @property
    def n_dates(self) -> int:
        return len(self.s2)

    def days(self) -> np.ndarray:
        """Days since 2014-04-03, S1 and S2 averaged, per date."""
        return np.array(
            [
                ((a - _EPOCH).days + (b - _EPOCH).days) / 2.0
                for a, b in zip(self.s1_dates, self.s2_dates)
            ],
            dtype=np.float32,
        )

    def side_file(self, kind: str, t: int) -> Path:
        """``<roi>/<kind>/<t>/<kind>_...`` next to the S2 file of date ``t`` (the simulator's
        ``truth``, ``mask`` and ``change`` files; may not exist)."""
        roi_dir = self.s2[t].parents[2]
        return roi_dir / kind / str(t) / self.s2[t].name.replace("s2_", f"{kind}_", 1)


def _time_dirs(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _files_by_patch(folder: Path, mod: str) -> dict[int, tuple[Path, dt.date]]:
    out: dict[int, tuple[Path, dt.date]] = {}
    for p in folder.iterdir():
        fields = parse_ts_name(p.name)
        if fields is None or fields["mod"] != mod:
            continue
        out[fields["patch"]] = (p, fields["date"])
    return out


def find_ts_patches(
    root: Path, roi_ids: Sequence[str], *, skip_incomplete: bool = False
) -> list[TSPatch]:
    """The patches of ``roi_ids`` (in that order) under ``root`` (module docstring)."""
    patches: list[TSPatch] = []
    for roi_id in roi_ids:
        roi_dir = root / roi_id
        if not roi_dir.is_dir():
            continue
        times = _time_dirs(roi_dir / "S2")
        if times != _time_dirs(roi_dir / "S1"):
            raise DatasetError(
                f"{roi_dir}: S1 and S2 have different date folders "
                f"({_time_dirs(roi_dir / 'S1')} vs {times})"
            )
        if not times:
            continue
        per_t = [
            (
                _files_by_patch(roi_dir / "S1" / str(t), "s1"),
                _files_by_patch(roi_dir / "S2" / str(t), "s2"),
            )
            for t in times
        ]
        all_patches = sorted(set().union(*(set(a) | set(b) for a, b in per_t)))
        for n in all_patches:
            missing = [
                roi_dir / mod / str(t) / f"{mod.lower()}_..._patch_{n}.tif"
                for t, (s1, s2) in zip(times, per_t)
                for mod, files in (("S1", s1), ("S2", s2))
                if n not in files
            ]
            if missing:
                if skip_incomplete:
                    continue
                raise DatasetError(
                    f"{missing[0].parent}: no file of patch {n} (it exists at other dates of "
                    f"{roi_id}); pass skip_incomplete=True (--skip-incomplete) to drop such patches"
                )
            patches.append(
                TSPatch(
                    roi_id=roi_id,
                    patch=n,
                    s1=tuple(s1[n][0] for s1, _ in per_t),
                    s2=tuple(s2[n][0] for _, s2 in per_t),
                    s1_dates=tuple(s1[n][1] for s1, _ in per_t),
                    s2_dates=tuple(s2[n][1] for _, s2 in per_t),
                )
            )
    return patches


# ----------------------------------------------------------------------------- samplers
def fixed_sampler(
    cover: Sequence[float], n_input_t: int, min_cov: float, max_cov: float, clear: float
) -> tuple[list[int], int, bool]:
    """The official ``fixed`` sampler (module docstring): ``(inputs, target, match)``."""
    cov = np.asarray(cover, dtype=np.float64)
    target = int(np.argsort(cov, kind="stable")[0])
    inputs = [i for i, c in enumerate(cov) if min_cov <= c <= max_cov][:n_input_t]
    match = True
    if len(inputs) < n_input_t:
        inputs = [i for i in range(len(cov)) if i != target][:n_input_t]
        match = False
    if cov[target] > clear:
        match = False
    return inputs, target, match


def random_sampler(
    cover: Sequence[float], n_input_t: int, clear: float, rng: np.random.Generator
) -> tuple[list[int], int, bool]:
    """The official ``random`` sampler (module docstring)."""
    cov = np.asarray(cover, dtype=np.float64)
    is_clear = np.flatnonzero(cov < clear)
    target = int(is_clear[rng.integers(0, len(is_clear))]) if len(is_clear) else int(cov.argmin())
    windows = [
        list(range(s, s + n_input_t + 1))
        for s in range(len(cov) - n_input_t)
        if s <= target < s + n_input_t + 1
    ]
    window = windows[len(windows) // 2]
    return [i for i in window if i != target], target, True


def ca_mtcr_sampler(
    cover: Sequence[float],
    n_aux: int,
    min_cov: float,
    max_cov: float,
    clear: float,
    rng: np.random.Generator,
    aux_offset_window: tuple[int, int] | None = None,
) -> tuple[list[int], int, bool]:
    """Paper 002's sampler (module docstring): ``(aux dates in time order + [N], reference,
    match)``."""
    cov = np.asarray(cover, dtype=np.float64)
    n = len(cov)
    clear_dates = np.flatnonzero(cov < clear)
    lo = max(min_cov, clear)
    candidates = [
        i for i in range(n) if lo <= cov[i] <= max_cov and any(c != i for c in clear_dates)
    ]
    match = bool(candidates)
    if match:
        target_n = int(candidates[int(rng.integers(0, len(candidates)))])
        others = [int(c) for c in clear_dates if c != target_n]
        reference = min(others, key=lambda c: (abs(c - target_n), c))
    else:
        target_n = int(np.argsort(-cov, kind="stable")[0])
        rest = [i for i in range(n) if i != target_n]
        reference = min(rest, key=lambda c: (cov[c], abs(c - target_n), c))
    pool = [i for i in range(n) if i not in (target_n, reference)]
    if aux_offset_window is not None:
        a, b = aux_offset_window
        pool = [i for i in pool if a <= abs(i - target_n) <= b]
    k = min(n_aux, len(pool))
    aux = sorted(int(i) for i in rng.choice(pool, size=k, replace=False)) if k else []
    return [*aux, target_n], reference, match


# ----------------------------------------------------------------------------- pairings
class _ArraysOnly(pickle.Unpickler):
    """Unpickles NumPy arrays, scalars and plain containers only."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def load_pairings(path: Path) -> dict[int, dict[str, Any]]:
    """An official precomputed pairing file (module docstring), safely."""
    try:
        raw = path.read_bytes()
        f = io.BytesIO(raw)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        obj = _ArraysOnly(f).load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise InputFileError(
            path, f"is not a readable SEN12MS-CR-TS pairing file ({exc})"
        ) from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise InputFileError(path, "does not hold a dict of pairings")
    return {int(k): v for k, v in obj.items()}


# ----------------------------------------------------------------------------- dataset
@register_dataset(
    "sen12mscr_ts", description="SEN12MS-CR-TS time series (official layout)", temporal=True
)
class SEN12MSCRTS(Dataset):
    """SEN12MS-CR-TS as a torch Dataset of raw time-series samples (module docstring).

    Args:
        root: dataset root (``ROIs1158``, ``ROIs1868`` ... below it).
        split: ``train``, ``val``, ``test`` or ``all``.
        region: ``all`` or a per-continent split (``africa``, ``america``, ``asiaEast``,
            ``asiaWest``, ``europa``).
        sampler: ``fixed`` (default), ``random`` or ``ca_mtcr``.
        n_input_t: input dates of ``fixed`` / ``random``.
        min_cov, max_cov: cover range of input dates (``fixed``) or of date N (``ca_mtcr``).
        clear_threshold: a date is cloud-free below this cover (1e-3).
        cloud_masks: ``rule_based`` (cloud or shadow), ``s2cloudless`` or ``mask_files``; the
            official names ``cloud_cloudshadow_mask`` / ``s2cloudless_mask`` are accepted.
        cloud_threshold: detector threshold (default 0.2 rule-based, 0.4 s2cloudless).
        n_aux, aux_offset_window: ``ca_mtcr``'s auxiliary dates.
        seed: seed of the ``random`` / ``ca_mtcr`` draws (with the epoch and the index).
        import_data_path: an official pairing file, or the folder holding
            ``generic_{n_input_t}_{split}_{region}_{mask}.npy``.
        crop_size, crop: crop every image to ``crop_size`` (``center`` or ``random``).
        skip_incomplete: drop patches with a missing date instead of raising.
        target_sar: add ``target_sar``, the target date's SAR (module docstring).
        index_path: where the cover index is cached (default next to the data).
        transform: callable applied to the finished sample.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        *,
        region: str = "all",
        sampler: str = "fixed",
        n_input_t: int = 3,
        min_cov: float = 0.0,
        max_cov: float = 1.0,
        clear_threshold: float = 1e-3,
        cloud_masks: str = "rule_based",
        cloud_threshold: float | None = None,
        n_aux: int = 2,
        aux_offset_window: tuple[int, int] | None = None,
        seed: int = 0,
        import_data_path: str | Path | None = None,
        crop_size: int | None = None,
        crop: str = "center",
        skip_incomplete: bool = False,
        target_sar: bool = False,
        index_path: str | Path | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: SEN12MS-CR-TS root not found")
        if split not in ("train", "val", "test", "all"):
            raise ConfigError(f"split must be train, val, test or all, got {split!r}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        cloud_masks = _MASK_ALIASES.get(cloud_masks, cloud_masks)
        if cloud_masks not in TS_CLOUD_MASKS:
            raise ConfigError(
                f"cloud_masks must be one of {list(TS_CLOUD_MASKS)}, got {cloud_masks!r}"
            )
        if crop not in ("center", "random"):
            raise ConfigError(f"crop must be 'center' or 'random', got {crop!r}")
        for name, value in (("n_input_t", n_input_t), ("n_aux", n_aux)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if sampler != "ca_mtcr" and n_input_t < 1:
            raise ConfigError("n_input_t must be at least 1")
        if not 0.0 <= min_cov <= max_cov <= 1.0:
            raise ConfigError(f"need 0 <= min_cov <= max_cov <= 1, got {min_cov}, {max_cov}")
        self.split, self.region, self.sampler = split, region, sampler
        self.protocol = None  # raw samples (DN, dB): each model's normalisation comes later
        self.pb04_offset = False
        self.n_input_t, self.n_aux = int(n_input_t), int(n_aux)
        self.aux_offset_window = None if aux_offset_window is None else tuple(aux_offset_window)
        self.min_cov, self.max_cov, self.clear_threshold = min_cov, max_cov, clear_threshold
        self.cloud_masks = cloud_masks
        self.cloud_threshold = (
            cloud_threshold
            if cloud_threshold is not None
            else (0.4 if cloud_masks == "s2cloudless" else 0.2)
        )
        self.seed, self.epoch = int(seed), 0
        self.crop_size, self.crop = crop_size, crop
        if not isinstance(target_sar, bool):
            raise ConfigError(f"target_sar must be true or false, got {target_sar!r}")
        self.target_sar = target_sar
        self.transform = transform
        splits = load_sen12mscr_ts_splits(region)
        wanted = set(sum(splits.values(), ())) if split == "all" else set(splits[split])
        order = [r for r in sen12mscr_ts_rois() if r in wanted]
        self.patches = find_ts_patches(self.root, order, skip_incomplete=skip_incomplete)
        if not self.patches:
            raise DatasetError(
                f"{self.root}: no SEN12MS-CR-TS patch of split {split!r} (region {region!r}); "
                "expected ROIsXXXX/<roi>/{S1,S2}/<t>/"
                "<mod>_ROIsXXXX_<roi>_ImgNo_<t>_<date>_patch_<n>.tif"
            )
        n_dates = {p.n_dates for p in self.patches}
        need = (self.n_aux + 2) if sampler == "ca_mtcr" else (self.n_input_t + 1)
        if min(n_dates) < need:
            raise ConfigError(
                f"{self.root}: patches have {min(n_dates)} dates; sampler {sampler!r} needs at "
                f"least {need}"
            )
        if cloud_masks == "s2cloudless":
            from cloudfree.cloudmask.s2cloudless_adapter import require_s2cloudless

            require_s2cloudless()
        self._index = CoverIndex.for_dataset(
            self.root,
            method=f"ts_{cloud_masks}",
            threshold=self.cloud_threshold,
            path=index_path,
        )
        self.pairings: dict[int, dict[str, Any]] | None = None
        if import_data_path is not None:
            p = Path(import_data_path)
            if p.is_dir():
                p = p / (
                    f"generic_{self.n_input_t}_{split}_{region}_{TS_CLOUD_MASKS[cloud_masks]}.npy"
                )
            if not p.is_file():
                raise InputFileError(p, "pairing file not found")
            self.pairings = load_pairings(p)

    def __len__(self) -> int:
        return len(self.patches)

    def set_epoch(self, epoch: int) -> None:
        """Draws of ``random`` / ``ca_mtcr`` (and the pairing offset) depend on the epoch."""
        self.epoch = int(epoch)

    # ----------------------------------------------------------------- masks and covers
    def _labels(self, dn: np.ndarray, p: TSPatch, t: int) -> np.ndarray:
        if self.cloud_masks == "mask_files":
            path = p.side_file("mask", t)
            if not path.is_file():
                raise InputFileError(path, "mask file not found (cloud_masks='mask_files')")
            return read_raster(path, expected_count=1).array[0].astype(np.int8)
        from cloudfree.cloudmask import compute_cloud_mask

        method = "rule_based" if self.cloud_masks == "rule_based" else "s2cloudless"
        return compute_cloud_mask(np.nan_to_num(dn), method=method, threshold=self.cloud_threshold)

    def _cover_of(self, labels: np.ndarray) -> float:
        if self.cloud_masks == "s2cloudless":
            return float((labels == 1).mean())
        return float((labels != 0).mean())

    def covers(self, index: int) -> np.ndarray:
        """Cloud cover of every date of patch ``index`` (cached in the cover index)."""
        p = self.patches[index]
        out = np.empty(p.n_dates, dtype=np.float64)
        dirty = False
        for t in range(p.n_dates):
            key = f"{p.id}_t{t}"
            c = self._index.get(key)
            if c is None:
                c = self._cover_of(self._labels(self._read_s2(p.s2[t]), p, t))
                self._index.put(key, c)
                dirty = True
            out[t] = c
        if dirty:
            self._index.save()
        return out

    # ----------------------------------------------------------------- reading
    @staticmethod
    def _read_s2(path: Path) -> np.ndarray:
        r = read_raster(path, expected_count=13)
        arr = r.array.astype(np.float32)
        if r.nodata is not None and not np.isnan(r.nodata):
            arr[:, (r.array == r.nodata).all(axis=0)] = np.nan
        return arr

    @staticmethod
    def _read_s1(path: Path) -> np.ndarray:
        r = read_raster(path, expected_count=2)
        return with_nan(r.array, r.nodata)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def select_dates(self, index: int) -> tuple[list[int], int, bool]:
        """``(input date indices, target date index, match)`` of sample ``index``."""
        if self.pairings is not None:
            pair = self.pairings[(self.epoch * len(self) + index) % len(self.pairings)]
            if "input" in pair and "target" in pair:
                return [int(i) for i in pair["input"]], int(pair["target"]), True
            cover = [float(np.asarray(c)) for c in pair["coverage"]]
        else:
            cover = list(self.covers(index))
        if self.sampler == "fixed":
            return fixed_sampler(
                cover, self.n_input_t, self.min_cov, self.max_cov, self.clear_threshold
            )
        if self.sampler == "random":
            return random_sampler(cover, self.n_input_t, self.clear_threshold, self._rng(index))
        return ca_mtcr_sampler(
            cover,
            self.n_aux,
            self.min_cov,
            self.max_cov,
            self.clear_threshold,
            self._rng(index),
            self.aux_offset_window,  # type: ignore[arg-type]
        )

    def _changed_fraction(self, p: TSPatch, inputs: Sequence[int], target: int) -> np.ndarray:
        out = np.full(len(inputs), np.nan, dtype=np.float32)
        maps: dict[int, np.ndarray] = {}
        for t in range(p.n_dates):
            path = p.side_file("change", t)
            if not path.is_file():
                return out
            maps[t] = read_raster(path).array[0] > 0
        for k, t in enumerate(inputs):
            a, b = sorted((t, target))
            changed = np.zeros_like(maps[0])
            for u in range(a + 1, b + 1):
                changed |= maps[u]
            out[k] = float(changed.mean())
        return out

    def raw_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` for the whole patch (no crop, no transform)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        p = self.patches[index]
        inputs, target, match = self.select_dates(index)
        bad = [t for t in [*inputs, target] if not 0 <= t < p.n_dates]
        if bad:
            raise DatasetError(f"{p.id}: date index {bad[0]} out of range ({p.n_dates} dates)")
        optical = np.stack([self._read_s2(p.s2[t]) for t in inputs])
        sar = np.stack([self._read_s1(p.s1[t]) for t in inputs])
        tgt = self._read_s2(p.s2[target])
        tsar = [self._read_s1(p.s1[target])] if self.target_sar else []
        shapes = {a.shape[-2:] for a in (*optical, *sar, tgt, *tsar)}
        if len(shapes) != 1:
            raise InputFileError(p.s2[target], f"the dates of {p.id} have different sizes {shapes}")
        labels = np.stack([self._labels(o, p, t) for o, t in zip(optical, inputs)])
        tlabels = self._labels(tgt, p, target)
        cover = [self._index.get(f"{p.id}_t{t}") for t in inputs]
        cover = [self._cover_of(lab) if c is None else c for c, lab in zip(cover, labels)]
        days = p.days()
        valid = ~(np.isnan(tgt).any(axis=0))
        if self.sampler == "ca_mtcr":  # the date to restore is the last input
            region_cloud, region_shadow = labels[-1] == 1, labels[-1] == -1
            region_cover = float(cover[-1])
        else:
            region_cloud, region_shadow = (labels == 1).any(axis=0), (labels == -1).any(axis=0)
            region_cover = float(np.mean(cover))
        changed = self._changed_fraction(p, inputs, target)
        return {
            "optical": torch.from_numpy(optical),
            "sar": torch.from_numpy(sar),
            "dates": torch.from_numpy(days[inputs]),
            "time_mask": torch.ones(len(inputs), dtype=torch.bool),
            "target": torch.from_numpy(tgt),
            **({"target_sar": torch.from_numpy(tsar[0])} if tsar else {}),
            "cloud_masks": torch.from_numpy((labels == 1)[:, None]).to(torch.float32),
            "shadow_masks": torch.from_numpy((labels == -1)[:, None]).to(torch.float32),
            "cloud_mask": torch.from_numpy(region_cloud[None]).to(torch.float32),
            "shadow_mask": torch.from_numpy(region_shadow[None] & ~region_cloud[None]).to(
                torch.float32
            ),
            "cloud_cover": torch.tensor(region_cover, dtype=torch.float32),
            "aux_changed": torch.tensor(
                float(np.nanmax(changed) > CHANGED_FRACTION)
                if np.isfinite(changed).all()
                else np.nan,
                dtype=torch.float32,
            ),
            "cover": torch.tensor(cover, dtype=torch.float32),
            "target_cover": torch.tensor(self._cover_of(tlabels), dtype=torch.float32),
            "target_cloud_mask": torch.from_numpy((tlabels == 1)[None]).to(torch.float32),
            "target_shadow_mask": torch.from_numpy((tlabels == -1)[None]).to(torch.float32),
            "valid_mask": torch.from_numpy(valid[None]),
            "input_idx": torch.tensor(inputs, dtype=torch.int64),
            "target_idx": torch.tensor(target, dtype=torch.int64),
            "target_date": torch.tensor(days[target], dtype=torch.float32),
            "changed_fraction": torch.from_numpy(changed),
            "match": bool(match),
            "id": p.id,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.raw_sample(index)
        if self.crop_size is not None:
            h, w = sample["optical"].shape[-2:]
            size = int(self.crop_size)
            if size > h or size > w:
                raise ConfigError(f"crop_size {size} is larger than the {h}x{w} patch")
            if self.crop == "center":
                top, left = center_crop_window(int(h), int(w), size)
            else:
                rng = self._rng(index)
                top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            sample = crop_sample(sample, top, left, size, size)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (
            f"SEN12MSCRTS(root={str(self.root)!r}, split={self.split!r}, region={self.region!r}, "
            f"sampler={self.sampler!r}, n={len(self)})"
        )
