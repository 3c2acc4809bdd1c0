"""Versioned ROI split lists shipped as package data.

A SEN12MS-CR ROI id is ``"<season>/s1_<scene>"``, for example ``"ROIs1158_spring/s1_106"``; the
season is one of :data:`SEN12MSCR_SEASONS`. Membership is decided by **exact** equality of the
season and scene folder names, never by substring: the official loader's ``'s1_1' in path`` test
puts test ROIs 106, 123, 139, 140 ... into training.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from cloudfree.errors import ConfigError

__all__ = [
    "SEN12MSCR_SEASONS",
    "SEN12MSCR_TS_REGIONS",
    "load_sen12mscr_ts_splits",
    "sen12mscr_ts_rois",
    "sen12mscr_ts_split_version",
    "SPLIT_NAMES",
    "load_sen12mscr_splits",
    "sen12mscr_split_of",
    "parse_roi_id",
]

SEN12MSCR_SEASONS: tuple[str, ...] = (
    "ROIs1158_spring",
    "ROIs1868_summer",
    "ROIs1970_fall",
    "ROIs2017_winter",
)
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


@lru_cache(maxsize=1)
def _load() -> dict:
    text = resources.files("cloudfree.data").joinpath("resources/sen12mscr_splits.json").read_text()
    return json.loads(text)


def load_sen12mscr_splits() -> dict[str, tuple[str, ...]]:
    """The standard split: ``{"train": (...155 ROI ids), "val": (...10), "test": (...10)}``."""
    return {k: tuple(v) for k, v in _load()["splits"].items()}


def sen12mscr_split_version() -> str:
    """Name and version of the shipped split, for reports (e.g. ``sen12mscr_standard v1``)."""
    data = _load()
    return f"{data['name']} v{data['version']}"


def parse_roi_id(roi: str) -> tuple[str, int]:
    """Split ``"ROIs1158_spring/s1_106"`` into ``("ROIs1158_spring", 106)``."""
    try:
        season, folder = roi.split("/")
        prefix, scene = folder.split("_")
        if season not in SEN12MSCR_SEASONS or prefix != "s1":
            raise ValueError
        return season, int(scene)
    except ValueError:
        raise ConfigError(
            f"malformed SEN12MS-CR ROI id {roi!r}; expected '<season>/s1_<scene>' with season "
            f"in {list(SEN12MSCR_SEASONS)}"
        ) from None


@lru_cache(maxsize=1)
def _roi_to_split() -> dict[str, str]:
    return {roi: name for name, rois in load_sen12mscr_splits().items() for roi in rois}


def sen12mscr_split_of(season: str, scene: int | str) -> str | None:
    """The split (``train``/``val``/``test``) of a ROI, or None when it is in no list.

    Exact match only: ``("ROIs1158_spring", 1)`` is train and never matches scene 106.
    """
    return _roi_to_split().get(f"{season}/s1_{int(scene)}")


# ----------------------------------------------------------------------------- SEN12MS-CR-TS
#: Region splits of SEN12MS-CR-TS (``all`` is the official cross-continent split).
SEN12MSCR_TS_REGIONS: tuple[str, ...] = (
    "all",
    "africa",
    "america",
    "asiaEast",
    "asiaWest",
    "europa",
)


@lru_cache(maxsize=1)
def _load_ts() -> dict:
    path = "resources/sen12mscr_ts_splits.json"
    return json.loads(resources.files("cloudfree.data").joinpath(path).read_text())


def sen12mscr_ts_rois() -> tuple[str, ...]:
    """The 53 ROI ids ``"<ROIsXXXX>/<roi>"`` of SEN12MS-CR-TS, in the official order."""
    return tuple(_load_ts()["rois"])


def load_sen12mscr_ts_splits(region: str = "all") -> dict[str, tuple[str, ...]]:
    """``{"train": ..., "val": ..., "test": ...}`` ROI ids of one region split (exact ids)."""
    regions = _load_ts()["regions"]
    if region not in regions:
        raise ConfigError(
            f"unknown SEN12MS-CR-TS region {region!r}; valid: {', '.join(SEN12MSCR_TS_REGIONS)}"
        )
    return {k: tuple(v) for k, v in regions[region].items()}


def sen12mscr_ts_split_version() -> str:
    data = _load_ts()
    return f"{data['name']} v{data['version']}"
