"""Image-quality metrics for cloud removal under named protocols (SPEC section 4).

:func:`image_metrics` returns per-image PSNR, SSIM, SAM, MAE and RMSE of ``[B, C, H, W]``
reflectance tensors in [0, 1]; :data:`METRIC_PROTOCOLS` holds the conventions of UnCRtainTS
(default), GLF-CR, CARF, DSen2-CR and AllClear. :mod:`cloudfree.metrics.uncertainty` judges the
variance output of uncertainty models (UnCRtainTS's UCE / AUCE and discard curve, a calibration
table); :mod:`cloudfree.metrics.texture` the graininess of a prediction (its high-frequency
energy relative to the target's).
"""

from cloudfree.metrics.functional import METRIC_NAMES, image_metrics, spectral_angle
from cloudfree.metrics.protocols import METRIC_PROTOCOLS, MetricProtocol, get_metric_protocol
from cloudfree.metrics.ssim import gaussian_window_1d, ssim_map
from cloudfree.metrics.texture import graininess_ratio, high_frequency_energy
from cloudfree.metrics.uncertainty import (
    UNCERTAINTY_DEFINITIONS,
    UNCERTAINTY_STATS,
    CalibrationBin,
    DiscardCurve,
    calibration_table,
    discard_curve,
    image_uncertainty_stats,
    rank_correlation,
    uce_auce,
    uncertainty_summary,
)

__all__ = [
    "METRIC_NAMES",
    "METRIC_PROTOCOLS",
    "UNCERTAINTY_DEFINITIONS",
    "UNCERTAINTY_STATS",
    "CalibrationBin",
    "DiscardCurve",
    "MetricProtocol",
    "calibration_table",
    "discard_curve",
    "gaussian_window_1d",
    "get_metric_protocol",
    "graininess_ratio",
    "high_frequency_energy",
    "image_metrics",
    "image_uncertainty_stats",
    "rank_correlation",
    "spectral_angle",
    "ssim_map",
    "uce_auce",
    "uncertainty_summary",
]
