"""Datasets, split lists and samplers."""

from cloudfree.data.sampling import (
    COVER_BINS,
    assign_cover_bins,
    cover_bin_labels,
    stratified_indices,
)
from cloudfree.data.sen12mscr import SEN12MSCR, TripletPaths, find_triplets
from cloudfree.data.splits import (
    SEN12MSCR_SEASONS,
    load_sen12mscr_splits,
    parse_roi_id,
    sen12mscr_split_of,
)

__all__ = [
    "COVER_BINS",
    "SEN12MSCR",
    "SEN12MSCR_SEASONS",
    "TripletPaths",
    "assign_cover_bins",
    "cover_bin_labels",
    "find_triplets",
    "load_sen12mscr_splits",
    "parse_roi_id",
    "sen12mscr_split_of",
    "stratified_indices",
]
