"""Deterministic synthetic SEN12MS-CR-style scenes (S2 L1C clear and cloudy, S1 VV/VH).

The generator replaces binary test fixtures: every test and the demo build the data they need
from a seed. One land-cover map drives both sensors, so SAR carries real information about the
ground hidden under clouds. See ``docs/synthetic_data.md`` for the model and its limits.

* :func:`generate_scene` -> :class:`SyntheticScene` (arrays in memory),
* :func:`write_sen12mscr_synthetic` (official and flat SEN12MS-CR layouts + manifest),
* :func:`write_scene_pair` (one scene of any size as GeoTIFFs on one grid),
* season domains (:mod:`cloudfree.synth.domains`): ``generate_scene(..., domain="winter")`` and
  ``write_sen12mscr_synthetic(..., season_domains=True, season_patches=...)``.
"""

from cloudfree.synth.clouds import (
    CLOUD_TYPES,
    THICK_CLOUD_THICKNESS,
    VISIBLE_THICKNESS,
)
from cloudfree.synth.domains import SEASON_DOMAINS, SEASONS, SeasonDomain, resolve_season
from cloudfree.synth.geo import roi_georeference
from cloudfree.synth.landcover import FIELD_CLASSES, LANDCOVER_CLASSES, LandCover
from cloudfree.synth.optical import CLASS_TOA_DN, PATH_DN
from cloudfree.synth.sar import CLASS_SAR_DB
from cloudfree.synth.scene import SyntheticScene, generate_scene
from cloudfree.synth.writers import (
    FLAT_CSV_NAME,
    FLAT_DIRS,
    LAYOUTS,
    MANIFEST_NAME,
    SPLIT_CODES,
    SamplePlan,
    ScenePairPaths,
    flat_filename,
    official_paths,
    plan_season_samples,
    plan_sen12mscr_samples,
    write_scene_pair,
    write_sen12mscr_synthetic,
)

__all__ = [
    "CLASS_SAR_DB",
    "CLASS_TOA_DN",
    "CLOUD_TYPES",
    "FIELD_CLASSES",
    "FLAT_CSV_NAME",
    "FLAT_DIRS",
    "LANDCOVER_CLASSES",
    "LAYOUTS",
    "MANIFEST_NAME",
    "PATH_DN",
    "SEASONS",
    "SEASON_DOMAINS",
    "SPLIT_CODES",
    "THICK_CLOUD_THICKNESS",
    "VISIBLE_THICKNESS",
    "LandCover",
    "SamplePlan",
    "ScenePairPaths",
    "SeasonDomain",
    "SyntheticScene",
    "flat_filename",
    "generate_scene",
    "official_paths",
    "plan_season_samples",
    "plan_sen12mscr_samples",
    "resolve_season",
    "roi_georeference",
    "write_scene_pair",
    "write_sen12mscr_synthetic",
]
