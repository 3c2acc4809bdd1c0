"""Named image-metric protocols (SPEC section 4).

Papers compute "the same" metrics in different ways. Each convention is a frozen
:class:`MetricProtocol`; :data:`METRIC_PROTOCOLS` maps the registry names to them and
:func:`get_metric_protocol` looks them up. Every report must state the protocol it used.

=====================  =================================================================
name                   convention (inputs are always reflectance in [0, 1] = DN / 10000)
=====================  =================================================================
``uncrtaints``         UnCRtainTS ``img_metrics`` + ``pytorch_ssim`` (the default):
                       SSIM window centred at index 5, zero padding, SAM in degrees.
``glf_cr``             GLF-CR ``metrics.py``: SSIM window centred at 5.5 (half a pixel
                       off), PSNR 100 when the MSE is exactly 0; centre 128x128 crop.
``carf``               thoailt/Cloud-Removal (CARF): centred SSIM window with ``+1e-8`` in
                       the SSIM denominator, PSNR 100 at zero MSE; centre 128x128 crop.
``dsen2cr``            DSen2-CR Keras metrics: SAM in radians, MAE/RMSE on the /2000 scale
                       (5x the [0, 1] value), SSIM like ``tf.image.ssim`` (VALID padding).
``allclear``           AllClear ``Metrics`` exactly, including its SAM axis quirk (below).
``allclear_spectral``  ``allclear`` with a true spectral angle (normalised over bands).
=====================  =================================================================

SAM in AllClear: its ``Metrics.sam`` L2-normalises dimension 2 of its ``[N, C, H, W]``
tensors, which is the image **height**, not the band axis. What it reports as SAM is
therefore, for every band ``c`` and column ``w``, the angle between the column profiles
``pred[c, :, w]`` and ``target[c, :, w]``, averaged over the valid pixels (each column's
angle is counted once per valid pixel of that column, in every band). The stored official
outputs in ``parity/metrics`` confirm this (a spectral angle does not reproduce them). The
``allclear`` protocol reproduces it for comparability with AllClear numbers;
``allclear_spectral`` is the same protocol with a genuine spectral angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from cloudfree.errors import ConfigError

__all__ = ["MetricProtocol", "METRIC_PROTOCOLS", "get_metric_protocol", "metric_labels"]

SamAxis = Literal["spectral", "height"]
SamZeroPolicy = Literal["exclude", "epsilon"]
SsimPadding = Literal["zero", "valid"]


@dataclass(frozen=True)
class MetricProtocol:
    """One paper's way of computing PSNR, SSIM, SAM, MAE and RMSE.

    Attributes:
        name: registry name.
        description: one line naming the official code the protocol follows.
        ssim_window: side of the square Gaussian SSIM window (pixels).
        ssim_sigma: standard deviation of the Gaussian (pixels).
        ssim_center: position of the Gaussian's peak inside the window (index units); 5.0
            is centred for an 11-tap window, GLF-CR uses ``window / 2 = 5.5``.
        ssim_padding: ``"zero"`` pads the images with ``window // 2`` zeros so the SSIM
            map has the image's size; ``"valid"`` pads nothing and the map covers only
            pixels whose whole window lies inside the image (``tf.image.ssim``).
        ssim_k1, ssim_k2: SSIM constants, ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2`` with
            data range ``L = 1``.
        ssim_denominator_eps: added to the SSIM denominator (CARF: 1e-8).
        ssim_masked_inputs: AllClear style: SSIM is computed on ``x * mask`` and the map
            is NaN outside the mask (nan-mean). Otherwise the map is computed on the
            unmasked images and averaged over the masked pixels.
        sam_units: ``"degrees"`` or ``"radians"``.
        sam_axis: ``"spectral"`` (angle between band vectors, the usual SAM) or
            ``"height"`` (AllClear's quirk, see the module docstring).
        sam_zero_pixels: ``"exclude"``: a pixel whose vector is all-zero in pred or
            target has no defined angle and is left out of the mean; ``"epsilon"``:
            vectors are divided by ``max(norm, 1e-12)`` so such a pixel counts as 90
            degrees (AllClear).
        error_scale: MAE and RMSE are multiplied by this (DSen2-CR reports them on the
            /2000 scale: 5). PSNR always uses the [0, 1] scale with data range 1.
        psnr_at_zero_error: PSNR returned when the (masked) MSE is exactly 0: ``inf``
            (``20 log10(1 / 0)``) or 100 (GLF-CR, CARF).
        center_crop: side of the centre crop the paper evaluates on, or None. Applied by
            :func:`cloudfree.evaluate.evaluate_directories`, not by ``image_metrics``.
    """

    name: str
    description: str
    ssim_window: int = 11
    ssim_sigma: float = 1.5
    ssim_center: float = 5.0
    ssim_padding: SsimPadding = "zero"
    ssim_k1: float = 0.01
    ssim_k2: float = 0.03
    ssim_denominator_eps: float = 0.0
    ssim_masked_inputs: bool = False
    sam_units: Literal["degrees", "radians"] = "degrees"
    sam_axis: SamAxis = "spectral"
    sam_zero_pixels: SamZeroPolicy = "exclude"
    error_scale: float = 1.0
    psnr_at_zero_error: float = math.inf
    center_crop: int | None = None

    def __post_init__(self) -> None:
        if self.ssim_window < 1 or self.ssim_sigma <= 0:
            raise ConfigError(f"metric protocol {self.name!r}: bad SSIM window or sigma")
        if self.ssim_padding not in ("zero", "valid"):
            raise ConfigError(f"metric protocol {self.name!r}: unknown SSIM padding")
        if self.sam_units not in ("degrees", "radians"):
            raise ConfigError(f"metric protocol {self.name!r}: unknown SAM units")
        if self.sam_axis not in ("spectral", "height"):
            raise ConfigError(f"metric protocol {self.name!r}: unknown SAM axis")
        if self.sam_zero_pixels not in ("exclude", "epsilon"):
            raise ConfigError(f"metric protocol {self.name!r}: unknown SAM zero-pixel policy")
        if self.center_crop is not None and self.center_crop < 1:
            raise ConfigError(f"metric protocol {self.name!r}: center_crop must be positive")


METRIC_PROTOCOLS: dict[str, MetricProtocol] = {
    p.name: p
    for p in (
        MetricProtocol(
            "uncrtaints",
            "UnCRtainTS img_metrics + util/pytorch_ssim (all-zero pixels excluded from SAM)",
        ),
        MetricProtocol(
            "glf_cr",
            "GLF-CR codes/metrics.py PSNR/SSIM (window centred at 5.5); SAM/MAE/RMSE as "
            "uncrtaints; centre 128x128 crop",
            ssim_center=5.5,
            psnr_at_zero_error=100.0,
            center_crop=128,
        ),
        MetricProtocol(
            "carf",
            "thoailt/Cloud-Removal utils/metrics.py (SSIM +1e-8 in the denominator); SAM as "
            "uncrtaints; centre 128x128 crop",
            ssim_denominator_eps=1e-8,
            psnr_at_zero_error=100.0,
            center_crop=128,
        ),
        MetricProtocol(
            "dsen2cr",
            "DSen2-CR Keras metrics: SAM in radians, MAE/RMSE on the /2000 scale, "
            "tf.image.ssim (VALID padding)",
            ssim_padding="valid",
            sam_units="radians",
            error_scale=5.0,
        ),
        MetricProtocol(
            "allclear",
            "AllClear benchmark.Metrics (masked; SAM normalised over image height as in "
            "the official code)",
            ssim_masked_inputs=True,
            sam_axis="height",
            sam_zero_pixels="epsilon",
        ),
        MetricProtocol(
            "allclear_spectral",
            "AllClear benchmark.Metrics with a true spectral angle (normalised over bands)",
            ssim_masked_inputs=True,
            sam_axis="spectral",
            sam_zero_pixels="epsilon",
        ),
    )
}


def get_metric_protocol(protocol: str | MetricProtocol) -> MetricProtocol:
    """Look a metric protocol up by name; a :class:`MetricProtocol` is returned as is."""
    if isinstance(protocol, MetricProtocol):
        return protocol
    try:
        return METRIC_PROTOCOLS[protocol]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown metric protocol {protocol!r}; valid: {sorted(METRIC_PROTOCOLS)}"
        ) from None


def metric_labels(protocol: MetricProtocol) -> dict[str, str]:
    """Column titles of the metrics under ``protocol`` (units, error scale)."""
    scale = "" if protocol.error_scale == 1 else f" (x{protocol.error_scale:g})"
    sam_unit = "deg" if protocol.sam_units == "degrees" else "rad"
    return {
        "psnr": "PSNR (dB)",
        "ssim": "SSIM",
        "sam": f"SAM ({sam_unit})",
        "mae": f"MAE{scale}",
        "rmse": f"RMSE{scale}",
    }
