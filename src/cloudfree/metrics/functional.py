"""Per-image PSNR, SSIM, SAM, MAE and RMSE under a named protocol (SPEC section 4)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cloudfree.errors import ConfigError
from cloudfree.metrics.protocols import MetricProtocol, get_metric_protocol
from cloudfree.metrics.ssim import ssim_map

__all__ = ["METRIC_NAMES", "image_metrics", "spectral_angle"]

#: Keys of the dictionary returned by :func:`image_metrics`, in report order.
METRIC_NAMES: tuple[str, ...] = ("psnr", "ssim", "sam", "mae", "rmse")

_NORM_EPS = 1e-12  # torch.nn.functional.normalize's default, used by AllClear


def spectral_angle(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    dim: int = 1,
    zero_pixels: str = "exclude",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Angle (radians) between the vectors of ``pred`` and ``target`` along ``dim``.

    Returns ``(angle, defined)``, both with ``dim`` kept as size 1. The angle is computed as
    ``2 atan2(|a - b|, |a + b|)`` on the unit vectors ``a``, ``b`` (equal to
    ``acos(<a, b>)`` but accurate for small angles; identical vectors give exactly 0).

    ``zero_pixels="exclude"``: where either vector is all-zero the angle is undefined;
    ``defined`` is False there and ``angle`` is 0 (so callers can average over ``defined``).
    ``zero_pixels="epsilon"``: vectors are divided by ``max(norm, 1e-12)`` as
    ``torch.nn.functional.normalize`` does, so a zero vector gives a cosine of 0 and an angle
    of 90 degrees; ``defined`` is all True.
    """
    if zero_pixels not in ("exclude", "epsilon"):
        raise ConfigError(f"zero_pixels must be 'exclude' or 'epsilon', got {zero_pixels!r}")
    n_p = torch.linalg.vector_norm(pred, dim=dim, keepdim=True)
    n_t = torch.linalg.vector_norm(target, dim=dim, keepdim=True)
    a = pred / n_p.clamp_min(_NORM_EPS)
    b = target / n_t.clamp_min(_NORM_EPS)
    angle = 2.0 * torch.atan2(
        torch.linalg.vector_norm(a - b, dim=dim, keepdim=True),
        torch.linalg.vector_norm(a + b, dim=dim, keepdim=True),
    )
    unit = (n_p >= _NORM_EPS) & (n_t >= _NORM_EPS)
    if zero_pixels == "epsilon":
        # Not both unit vectors: follow acos(clamp(<a, b>, -1, 1)) literally.
        cos = (a * b).sum(dim=dim, keepdim=True).clamp(-1.0, 1.0)
        angle = torch.where(unit, angle, torch.acos(cos))
        return angle, torch.ones_like(unit)
    defined = (n_p > 0) & (n_t > 0)
    angle = torch.where(unit, angle, torch.acos((a * b).sum(dim=dim, keepdim=True).clamp(-1, 1)))
    return torch.where(defined, angle, torch.zeros_like(angle)), defined


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x


def _work_dtype(device: torch.device) -> torch.dtype:
    # float64 everywhere except on Apple MPS, which has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _check(
    pred: Any, target: Any, mask: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    pred = _as_tensor(pred, "pred")
    target = _as_tensor(target, "target")
    for name, t in (("pred", pred), ("target", target)):
        if t.ndim != 4:
            raise ConfigError(f"{name} must be a [B, C, H, W] tensor, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ConfigError(
                f"{name} must be a floating-point tensor of reflectance in [0, 1] "
                f"(DN / 10000), got dtype {t.dtype}"
            )
        if t.numel() == 0:
            raise ConfigError(f"{name} is empty (shape {tuple(t.shape)})")
    if pred.shape != target.shape:
        raise ConfigError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.device != target.device:
        raise ConfigError(f"pred is on {pred.device} but target is on {target.device}")
    b, _, h, w = pred.shape
    if mask is not None:
        mask = _as_tensor(mask, "mask")
        if mask.dtype != torch.bool:
            raise ConfigError(
                f"mask must be a boolean tensor (True where a pixel counts), got dtype "
                f"{mask.dtype}; convert it explicitly, e.g. mask > 0.5"
            )
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        if (
            mask.ndim != 4
            or mask.shape[1] != 1
            or mask.shape[0] not in (1, b)
            or tuple(mask.shape[2:]) != (h, w)
        ):
            raise ConfigError(
                f"mask must have shape [B, 1, H, W] = [{b}, 1, {h}, {w}] (or [1, 1, H, W]), "
                f"got {tuple(mask.shape)}"
            )
        mask = mask.to(pred.device).expand(b, 1, h, w)
    dt = _work_dtype(pred.device)
    return pred.detach().to(dt), target.detach().to(dt), mask


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``values`` over all but the batch axis (``weight`` broadcasts).

    Values where the weight is 0 are ignored, even NaN. A zero total weight gives NaN.
    """
    weight = weight.expand_as(values)
    dims = tuple(range(1, values.ndim))
    num = torch.where(weight != 0, values * weight, torch.zeros_like(values)).sum(dim=dims)
    return num / weight.sum(dim=dims)


def image_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    protocol: str | MetricProtocol = "uncrtaints",
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """PSNR, SSIM, SAM, MAE and RMSE of every image of a batch.

    Args:
        pred: predictions ``[B, C, H, W]``, float, **reflectance in [0, 1] (DN / 10000) for
            every protocol** (also ``dsen2cr``: its /2000 scale is applied to the reported
            MAE/RMSE, not expected in the input). Numpy arrays are accepted too.
        target: references, same shape, device and scale.
        protocol: a name of :data:`~cloudfree.metrics.METRIC_PROTOCOLS` or a
            :class:`~cloudfree.metrics.MetricProtocol`.
        mask: optional boolean ``[B, 1, H, W]`` (or ``[B, H, W]``, or ``[1, 1, H, W]`` for the
            whole batch), True where a pixel counts (e.g. inside or outside clouds).
            None means every pixel.

    Returns:
        ``{"psnr", "ssim", "sam", "mae", "rmse"}``, each a float64 tensor ``[B]`` on the
        inputs' device (float32 on Apple MPS). Computed in float64 from detached inputs
        (not differentiable).

    Conventions (see :mod:`cloudfree.metrics.protocols` for each protocol's settings):

    * MAE and RMSE average over the bands and the masked pixels, then are multiplied by the
      protocol's ``error_scale`` (5 for ``dsen2cr``).
    * PSNR ``= 20 log10(1 / sqrt(MSE))`` with data range 1 on the [0, 1] scale, MSE over the
      bands and masked pixels. At zero error it is ``+inf`` (``uncrtaints``, ``dsen2cr``,
      ``allclear``: ``log10(1/0)``) or 100 (``glf_cr``, ``carf``, as their official code).
    * SSIM uses the protocol's Gaussian window (11 taps, sigma 1.5). Without
      ``ssim_masked_inputs`` the SSIM map is computed on the full images and averaged over
      the bands and masked pixels (with ``"valid"`` padding, over masked pixels at least
      5 pixels from the border). ``allclear``: SSIM of ``pred * mask`` and
      ``target * mask``, map values outside the mask ignored (AllClear's nan-mean).
    * SAM: angle between pred and target spectra per pixel, averaged over masked pixels,
      in degrees (radians for ``dsen2cr``). **Deliberate difference from UnCRtainTS**
      (``uncrtaints``, ``glf_cr``, ``carf``, ``dsen2cr``): a pixel that is all-zero in pred
      or target has no defined angle and is left out of the mean, whereas the official
      code returns NaN for the whole image. An image where no pixel has a defined angle
      gets NaN. ``allclear`` follows AllClear: such a pixel counts as 90 degrees, and the
      angle is taken along the image height (AllClear's quirk, see
      :mod:`cloudfree.metrics.protocols`); ``allclear_spectral`` uses the band axis.
    * An image whose mask selects no pixel gets NaN for every metric.
    * Non-finite input values are not filled: NaN or inf inside the mask gives NaN metrics
      for that image. Outside the mask they are ignored by MAE, RMSE, PSNR, the spectral
      SAM and the ``allclear`` SSIM (which zeroes them first), but the other protocols'
      SSIM (and AllClear's column-wise SAM) becomes NaN when they lie within the window
      (column) of a counted pixel. Fill invalid pixels and exclude them with ``mask``.
    * Nothing is cropped; the protocol's ``center_crop`` is applied by
      :func:`cloudfree.evaluate.evaluate_directories`.

    Raises:
        ConfigError: on a bad shape, dtype, mask or protocol name.
    """
    p = get_metric_protocol(protocol)
    x, y, m = _check(pred, target, mask)
    b, c, h, w = x.shape
    if m is None:
        m = torch.ones((b, 1, h, w), dtype=torch.bool, device=x.device)
    mf = m.to(x.dtype)

    # Pixel-wise errors (masked mean over bands and pixels).
    diff = x - y
    mse = _masked_mean(diff * diff, mf)
    mae = _masked_mean(diff.abs(), mf)
    rmse = torch.sqrt(mse)
    psnr = -10.0 * torch.log10(mse)
    if not math.isinf(p.psnr_at_zero_error):
        psnr = torch.where(mse == 0, torch.full_like(psnr, p.psnr_at_zero_error), psnr)

    # Spectral angle.
    sam_dim = 1 if p.sam_axis == "spectral" else 2
    angle, defined = spectral_angle(x, y, dim=sam_dim, zero_pixels=p.sam_zero_pixels)
    if p.sam_axis == "spectral":
        sam_weight = mf * defined.to(x.dtype)  # [B, 1, H, W]
    else:  # AllClear: angle [B, C, 1, W] broadcast over the rows, mask repeated over bands
        sam_weight = (mf * defined.to(x.dtype)).expand(b, c, h, w)
        angle = angle.expand(b, c, h, w)
    sam = _masked_mean(angle, sam_weight)
    if p.sam_units == "degrees":
        sam = torch.rad2deg(sam)

    # SSIM.
    ssim_kwargs = {
        "window_size": p.ssim_window,
        "sigma": p.ssim_sigma,
        "center": p.ssim_center,
        "padding": p.ssim_padding,
        "k1": p.ssim_k1,
        "k2": p.ssim_k2,
        "denominator_eps": p.ssim_denominator_eps,
    }
    if p.ssim_masked_inputs:
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        smap = ssim_map(torch.where(m, x, zero), torch.where(m, y, zero), **ssim_kwargs)
    else:
        smap = ssim_map(x, y, **ssim_kwargs)
    sm = mf
    if p.ssim_padding == "valid":
        r0 = (h - smap.shape[2]) // 2
        c0 = (w - smap.shape[3]) // 2
        sm = mf[:, :, r0 : r0 + smap.shape[2], c0 : c0 + smap.shape[3]]
    ssim = _masked_mean(smap, sm)

    empty = m.flatten(1).sum(dim=1) == 0
    out = {
        "psnr": psnr,
        "ssim": ssim,
        "sam": sam,
        "mae": mae * p.error_scale,
        "rmse": rmse * p.error_scale,
    }
    nan = torch.full_like(psnr, math.nan)
    return {k: torch.where(empty, nan, out[k]) for k in METRIC_NAMES}
