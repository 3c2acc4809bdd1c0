"""Datasets, split lists and samplers."""

from cloudfree.data.splits import (
    SEN12MSCR_SEASONS,
    load_sen12mscr_splits,
    parse_roi_id,
    sen12mscr_split_of,
)

__all__ = [
    "SEN12MSCR_SEASONS",
    "load_sen12mscr_splits",
    "parse_roi_id",
    "sen12mscr_split_of",
]
