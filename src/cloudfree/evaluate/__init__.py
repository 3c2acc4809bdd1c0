"""Evaluation of predictions against references (directory mode: GeoTIFFs paired by name)."""

from cloudfree.evaluate.directory import (
    CSV_COLUMNS,
    center_crop,
    evaluate_directories,
    find_rasters,
    pair_files,
    write_metrics_csv,
)

__all__ = [
    "CSV_COLUMNS",
    "center_crop",
    "evaluate_directories",
    "find_rasters",
    "pair_files",
    "write_metrics_csv",
]
