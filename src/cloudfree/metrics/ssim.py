"""Structural similarity (SSIM) maps with a Gaussian window, vectorised over batch and bands.

``SSIM = ((2 mu_x mu_y + C1) (2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1) (s_x + s_y + C2) + eps)``
with local means and (biased, population) variances/covariance taken under a normalised
2-D Gaussian window ``w[i, j] = g[i] g[j]``, ``g[k] ∝ exp(-(k - center)^2 / (2 sigma^2))``,
applied per band by cross-correlation (``torch.nn.functional.conv2d``), and
``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` with data range ``L``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError

__all__ = ["gaussian_window_1d", "ssim_map"]


def gaussian_window_1d(
    size: int = 11,
    sigma: float = 1.5,
    center: float | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps peaking at ``center`` (default ``(size-1)/2``).

    GLF-CR's window uses ``center = size / 2`` (5.5 for 11 taps), half a pixel off centre.
    """
    if center is None:
        center = (size - 1) / 2
    x = torch.arange(size, device=device, dtype=dtype)
    g = torch.exp(-((x - center) ** 2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    center: float | None = None,
    padding: Literal["zero", "valid"] = "zero",
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
    denominator_eps: float = 0.0,
) -> torch.Tensor:
    """Per-pixel, per-band SSIM map of two ``[B, C, H, W]`` tensors.

    Computed in the inputs' dtype on their device (pass float64 for accuracy). With
    ``padding="zero"`` the images are padded with ``window_size // 2`` zeros on each side
    and the map is ``[B, C, H, W]`` (``pytorch_ssim``, GLF-CR, AllClear). With
    ``padding="valid"`` nothing is padded and the map is
    ``[B, C, H - window_size + 1, W - window_size + 1]``: only windows lying fully inside the
    image (``tf.image.ssim``; scikit-image after its border crop).
    NaN or inf anywhere under a window makes that map value NaN.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ConfigError(
            f"ssim_map needs two [B, C, H, W] tensors of the same shape, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if padding not in ("zero", "valid"):
        raise ConfigError(f"SSIM padding must be 'zero' or 'valid', got {padding!r}")
    _, c, h, w = x.shape
    if padding == "valid" and (h < window_size or w < window_size):
        raise ConfigError(
            f"SSIM without padding needs images of at least {window_size}x{window_size} "
            f"pixels, got {h}x{w}"
        )
    g = gaussian_window_1d(window_size, sigma, center, device=x.device, dtype=x.dtype)
    # The five local moments in one grouped, separable convolution (rows, then columns).
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    groups = 5 * c
    pad = window_size // 2 if padding == "zero" else 0
    stack = F.conv2d(
        stack, g.view(1, 1, -1, 1).expand(groups, 1, -1, 1), padding=(pad, 0), groups=groups
    )
    stack = F.conv2d(
        stack, g.view(1, 1, 1, -1).expand(groups, 1, 1, -1), padding=(0, pad), groups=groups
    )
    mu_x, mu_y, e_xx, e_yy, e_xy = stack.split(c, dim=1)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    var_x = e_xx - mu_xx
    var_y = e_yy - mu_yy
    cov = e_xy - mu_xy
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2.0 * mu_xy + c1) * (2.0 * cov + c2)
    den = (mu_xx + mu_yy + c1) * (var_x + var_y + c2) + denominator_eps
    return num / den
