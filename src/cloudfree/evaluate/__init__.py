"""Evaluation of predictions against references.

* Directory mode (:mod:`cloudfree.evaluate.directory`): GeoTIFF predictions paired by name
  with reference GeoTIFFs.
* Model mode (:mod:`cloudfree.evaluate.model_eval`): a trained model (pretrained directory or
  training run) on a dataset split, next to the identity baseline, overall / inside / outside
  clouds and per cloud-cover bin.
"""

from cloudfree.evaluate.directory import (
    CSV_COLUMNS,
    center_crop,
    evaluate_directories,
    find_rasters,
    pair_files,
    read_reflectance,
    write_metrics_csv,
)
from cloudfree.evaluate.model_eval import (
    IDENTITY_NAME,
    REGIONS,
    EvaluationResult,
    evaluate_checkpoint,
    evaluate_model,
    load_model_for_evaluation,
    per_image_columns,
    resolve_weights_dir,
    write_evaluation,
)

__all__ = [
    "CSV_COLUMNS",
    "IDENTITY_NAME",
    "REGIONS",
    "EvaluationResult",
    "center_crop",
    "evaluate_checkpoint",
    "evaluate_directories",
    "evaluate_model",
    "find_rasters",
    "load_model_for_evaluation",
    "pair_files",
    "read_reflectance",
    "per_image_columns",
    "resolve_weights_dir",
    "write_evaluation",
    "write_metrics_csv",
]
