"""Graininess: how much fine-scale texture a prediction has compared with its reference.

A network that copies SAR speckle into the optical bands, or leaves dot artifacts, looks grainy
even when its PSNR is fair; one that averages looks washed out. :func:`graininess_ratio`
measures this as the high-frequency energy of the prediction relative to that of the target
over the same pixels: 1 means the texture of the truth, above 1 grainier, below 1 smoother.

Decisions:

* **High frequency** is the response of the 4-neighbour discrete Laplacian
  (``4 x - up - down - left - right``), per band, on reflectance: the highest-frequency band of
  the image, where speckle and dot artifacts live and land-cover edges weigh least.
* **Energy** is the mean squared response over the region's pixels whose whole 3 x 3
  neighbourhood lies in the region and in the image (eroded region), so cloud edges and the
  image border do not enter; averaged over bands.
* **Ratio** ``E(pred) / E(target)`` per image; NaN where the eroded region is empty or the
  target has no high-frequency energy there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError

__all__ = ["graininess_ratio", "high_frequency_energy"]

_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def _check(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ConfigError(f"{name} must be a [B, C, H, W] tensor")
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        raise ConfigError(f"{name} must be at least 3 x 3 pixels, got {tuple(x.shape[-2:])}")


def high_frequency_energy(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image mean squared Laplacian response of ``x [B, C, H, W]`` over the pixels whose
    3 x 3 neighbourhood lies in ``mask`` (``[B, 1, H, W]`` or ``[B, H, W]`` bool; None: the
    whole image); ``[B]``, NaN for an empty region (module docstring)."""
    _check(x, "x")
    b, c, h, w = x.shape
    xf = x.double()
    kernel = _LAPLACIAN.to(xf).expand(c, 1, 3, 3)
    response = F.conv2d(xf, kernel, groups=c)  # [B, C, H-2, W-2]: interior pixels only
    if mask is None:
        region = torch.ones(b, 1, h, w, dtype=torch.bool, device=x.device)
    else:
        region = mask if mask.ndim == 4 else mask[:, None]
        if region.shape[0] != b or region.shape[-2:] != (h, w):
            raise ConfigError(f"mask {tuple(mask.shape)} does not fit the image {tuple(x.shape)}")
        region = region.bool()
    # a pixel counts when its 3 x 3 neighbourhood is inside the region (min-pool = erosion)
    inside = -F.max_pool2d(-region.double(), 3, stride=1) > 0.5  # [B, 1, H-2, W-2]
    weight = inside.to(xf)
    count = weight.sum(dim=(1, 2, 3))
    energy = (response.square() * weight).sum(dim=(1, 2, 3)) / (c * count)
    return torch.where(count > 0, energy, torch.full_like(energy, float("nan")))


def graininess_ratio(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-image ``high_frequency_energy(pred) / high_frequency_energy(target)`` over ``mask``
    (``[B]``; 1: the truth's texture, > 1 grainier, < 1 smoother; NaN where undefined)."""
    _check(target, "target")
    if pred.shape != target.shape:
        raise ConfigError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    e_pred = high_frequency_energy(pred, mask)
    e_target = high_frequency_energy(target, mask)
    ok = e_target > 0
    return torch.where(ok, e_pred / torch.where(ok, e_target, 1.0), float("nan"))
