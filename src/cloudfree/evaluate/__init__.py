"""Evaluation of predictions against references.

* Directory mode (:mod:`cloudfree.evaluate.directory`): GeoTIFF predictions paired by name
  with reference GeoTIFFs.
* Model mode (:mod:`cloudfree.evaluate.model_eval`): trained models (pretrained directories or
  training runs) on one dataset split, next to the baselines
  (:mod:`cloudfree.evaluate.baselines`, ``identity`` by default), overall / inside / outside
  clouds and per cloud-cover bin, in one merged table; :func:`predict_samples` gives the
  predictions on a few samples as arrays (the report's panels).
"""

from cloudfree.evaluate.baselines import (
    IDENTITY_NAME,
    get_baseline,
    list_baselines,
    register_baseline,
)
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
    REGIONS,
    EvaluationResult,
    SamplePredictions,
    build_evaluation_data,
    evaluate_checkpoint,
    evaluate_checkpoints,
    evaluate_model,
    evaluate_models,
    evaluate_protocols,
    load_model_for_evaluation,
    per_image_columns,
    predict_samples,
    resolve_weights_dir,
    write_evaluation,
)

__all__ = [
    "CSV_COLUMNS",
    "IDENTITY_NAME",
    "REGIONS",
    "EvaluationResult",
    "SamplePredictions",
    "build_evaluation_data",
    "center_crop",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "evaluate_directories",
    "evaluate_model",
    "evaluate_models",
    "evaluate_protocols",
    "find_rasters",
    "get_baseline",
    "list_baselines",
    "load_model_for_evaluation",
    "pair_files",
    "per_image_columns",
    "predict_samples",
    "read_reflectance",
    "register_baseline",
    "resolve_weights_dir",
    "write_evaluation",
    "write_metrics_csv",
]
