"""Datasets (raw samples), their registry, sample transforms (normalisation, crops), split lists
and samplers. A new dataset registers itself with :func:`register_dataset` (see
:mod:`cloudfree.data.registry`) and is imported here."""

from cloudfree.data.allclear import AllClear
from cloudfree.data.registry import (
    DatasetInfo,
    build_dataset,
    get_dataset,
    list_datasets,
    register_dataset,
)
from cloudfree.data.sampling import (
    COVER_BINS,
    assign_cover_bins,
    cover_bin_labels,
    stratified_indices,
)
from cloudfree.data.sen12mscr import SEN12MSCR, TripletPaths, find_triplets
from cloudfree.data.sen12mscr_ts import SEN12MSCRTS
from cloudfree.data.splits import (
    SEN12MSCR_SEASONS,
    load_mmcanet_splits,
    load_sen12mscr_splits,
    parse_roi_id,
    sen12mscr_split_of,
)
from cloudfree.data.temporal import (
    SingleDateView,
    collate_time_series,
    last_real_date,
    single_date_sample,
)
from cloudfree.data.transforms import NormalizeSample, normalize_sample

__all__ = [
    "AllClear",
    "COVER_BINS",
    "DatasetInfo",
    "NormalizeSample",
    "SEN12MSCR",
    "SEN12MSCRTS",
    "SEN12MSCR_SEASONS",
    "SingleDateView",
    "TripletPaths",
    "assign_cover_bins",
    "build_dataset",
    "collate_time_series",
    "cover_bin_labels",
    "find_triplets",
    "get_dataset",
    "last_real_date",
    "list_datasets",
    "load_mmcanet_splits",
    "load_sen12mscr_splits",
    "normalize_sample",
    "parse_roi_id",
    "register_dataset",
    "sen12mscr_split_of",
    "single_date_sample",
    "stratified_indices",
]
