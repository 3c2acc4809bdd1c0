"""Versioned ROI split lists shipped as package data.

A SEN12MS-CR ROI id is ``"<season>/s1_<scene>"``, for example ``"ROIs1158_spring/s1_106"``; the
season is one of :data:`SEN12MSCR_SEASONS`. Membership is decided by **exact** equality of the
season and scene folder names, never by substring: the official loader's ``'s1_1' in path`` test
puts test ROIs 106, 123, 139, 140 ... into training.

Two SEN12MS-CR splits are shipped:

* ``sen12mscr_standard`` (:func:`load_sen12mscr_splits`): UnCRtainTS' lists, 155 / 10 / 10 ROIs
  over the four seasons, the default of :class:`cloudfree.data.SEN12MSCR`.
* ``mmcanet_spring`` (:func:`load_mmcanet_splits`): the spring-only split of the MMCANet / MPIR
  protocol (paper 000, SPEC section 2). The paper takes "42 interested regions" of spring, split
  38 / 2 / 2 (25,521 / 1,244 / 1,453 images), the test ROIs chosen for evenly spread cloud cover,
  and publishes no ROI ids. The standard lists name **41** spring ROIs (35 train, 1 val:
  ``s1_17``, 5 test: ``s1_31, 44, 106, 123, 140``); the 42nd ROI of the paper is not known (the
  folder count of ``ROIs1158_spring`` could not be checked without the data). **Decision**, a
  deterministic choice among those 41 that keeps the paper's 2 / 2 for test and val: test = the
  two lowest-numbered standard spring test ROIs (``s1_31``, ``s1_44``), val = the standard
  spring val ROI and the next standard test ROI (``s1_17``, ``s1_106``), train = the other 37
  (the 35 standard spring train ROIs, ``s1_123``, ``s1_140``): 37 / 2 / 2. Its test and val ROIs
  are therefore never seen by a model trained on the standard split; a model trained on this
  split has seen standard test ROIs 123 and 140. A spring ROI folder in no list (e.g. the
  paper's 42nd) belongs to no split and is left out of train / val / test (it is in ``all``).
* ``sgbaf_spring`` (:func:`load_paper_splits`): the spring-only split of the SG-BAF protocol
  (paper 003, audit row D3-2): "40 ROIs carefully selected from the spring subset, split
  36:2:2", at full 256 x 256, ids unpublished. **Decision**, 40 of the 41 standard spring ROIs:
  val and test are those of ``mmcanet_spring`` (so the two paper protocols test on the same
  ROIs), train is ``mmcanet_spring``'s 37 without ``s1_140`` (the highest-numbered standard
  test ROI among them): the 35 standard spring train ROIs and ``s1_123``, 36 / 2 / 2.

Both paper splits go through :func:`load_paper_splits` (``load_mmcanet_splits`` is its
``mmcanet_spring`` form). Give other lists as the dataset's ``splits`` option (recipes:
``data.options.splits``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from cloudfree.errors import ConfigError

__all__ = [
    "SEN12MSCR_SEASONS",
    "season_folder",
    "SEN12MSCR_TS_REGIONS",
    "load_sen12mscr_ts_splits",
    "sen12mscr_ts_rois",
    "sen12mscr_ts_split_version",
    "SPLIT_NAMES",
    "load_sen12mscr_splits",
    "PAPER_SPLITS",
    "load_mmcanet_splits",
    "load_paper_splits",
    "mmcanet_out_of_domain_sizes",
    "mmcanet_split_version",
    "paper_split_version",
    "sen12mscr_split_of",
    "parse_roi_id",
]

SEN12MSCR_SEASONS: tuple[str, ...] = (
    "ROIs1158_spring",
    "ROIs1868_summer",
    "ROIs1970_fall",
    "ROIs2017_winter",
)


def season_folder(name: str) -> str:
    """The SEN12MS-CR season of ``name``: a folder name (``ROIs2017_winter``) or the short
    name in any case (``winter``, ``Winter``). Raises :class:`ConfigError` for anything else."""
    for season in SEN12MSCR_SEASONS:
        if isinstance(name, str) and (name == season or name.lower() == season.split("_")[1]):
            return season
    raise ConfigError(f"unknown season {name!r}; valid: {list(SEN12MSCR_SEASONS)} or short names")


SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


@lru_cache(maxsize=8)
def _load_resource(filename: str) -> dict:
    """The parsed JSON of ``cloudfree/data/resources/<filename>`` (read once)."""
    path = f"resources/{filename}"
    return json.loads(resources.files("cloudfree.data").joinpath(path).read_text())


def _load() -> dict:
    return _load_resource("sen12mscr_splits.json")


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


#: The shipped SEN12MS-CR splits of paper protocols (module docstring): name -> resource file.
PAPER_SPLITS: dict[str, str] = {
    "mmcanet_spring": "sen12mscr_mmcanet_splits.json",
    "sgbaf_spring": "sen12mscr_sgbaf_splits.json",
}


def _load_paper(name: str) -> dict:
    if name not in PAPER_SPLITS:
        raise ConfigError(f"unknown paper split {name!r}; shipped: {', '.join(PAPER_SPLITS)}")
    return _load_resource(PAPER_SPLITS[name])


def load_paper_splits(name: str) -> dict[str, tuple[str, ...]]:
    """A shipped paper split (module docstring) as ``{"train": (...), "val": (...), "test":
    (...)}`` ROI ids: ``"mmcanet_spring"`` (37 / 2 / 2) or ``"sgbaf_spring"`` (36 / 2 / 2),
    all ``ROIs1158_spring``. Pass it as :class:`~cloudfree.data.SEN12MSCR`'s ``splits`` (with
    ``split_source="standard"`` for the flat layout, whose CSV split column wins otherwise).

    Raises:
        ConfigError: for a name that is not shipped (the message lists them).
    """
    return {k: tuple(v) for k, v in _load_paper(name)["splits"].items()}


def paper_split_version(name: str) -> str:
    """Name and version of a shipped paper split, for reports (``sgbaf_spring v1``)."""
    data = _load_paper(name)
    return f"{data['name']} v{data['version']}"


def _load_mmcanet() -> dict:
    return _load_paper("mmcanet_spring")


def load_mmcanet_splits() -> dict[str, tuple[str, ...]]:
    """The MMCANet / MPIR spring split, ``load_paper_splits("mmcanet_spring")``:
    ``{"train": (...37 ROI ids), "val": (s1_17, s1_106), "test": (s1_31, s1_44)}``."""
    return load_paper_splits("mmcanet_spring")


def mmcanet_split_version() -> str:
    """Name and version of the shipped MMCANet split (``mmcanet_spring v1``)."""
    return paper_split_version("mmcanet_spring")


def mmcanet_out_of_domain_sizes() -> dict[str, int]:
    """Paper 000's out-of-domain test sets: random image samples of the other seasons, season
    -> number of images (``ROIs1868_summer`` 951, ``ROIs1970_fall`` 1514, ``ROIs2017_winter``
    954). The paper publishes neither the images nor a seed: draw them with
    ``evaluate_checkpoints(..., season=season, sample=n, seed=...)``."""
    return {k: int(v) for k, v in _load_mmcanet()["out_of_domain_samples"].items()}


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


def _load_ts() -> dict:
    return _load_resource("sen12mscr_ts_splits.json")


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
