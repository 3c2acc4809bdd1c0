"""Graininess (cloudfree.metrics.texture): a hand-computed value, identity = 1, noise > 1,
blur < 1, eroded regions, NaN for empty regions, errors on bad shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cloudfree.errors import ConfigError
from cloudfree.metrics import graininess_ratio, high_frequency_energy


def test_impulse_by_hand() -> None:
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    # interior 3 x 3: centre response 4, its 4 neighbours -1, corners 0 -> (16 + 4) / 9
    assert high_frequency_energy(x).item() == pytest.approx(20 / 9)
    two = torch.cat([x, torch.zeros_like(x)], dim=1)  # a flat second band halves the mean
    assert high_frequency_energy(two).item() == pytest.approx(10 / 9)


def test_identity_noise_and_blur() -> None:
    g = torch.Generator().manual_seed(0)
    target = F.avg_pool2d(torch.rand(2, 3, 68, 68, generator=g), 5, stride=1)  # textured
    assert torch.allclose(graininess_ratio(target, target), torch.ones(2, dtype=torch.float64))
    noisy = target + 0.05 * torch.randn(target.shape, generator=g)
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert (graininess_ratio(noisy, target) > 2).all()
    assert (graininess_ratio(blurred, target) < 0.7).all()


def test_region_is_eroded_and_empty_is_nan() -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 3, 3] = 1.0
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, :, :4] = True  # columns 0-3: only the pixels at columns 1-2 keep their neighbourhood
    mask[1, 0, 0] = True  # a single pixel: nothing left after erosion
    e = high_frequency_energy(x, mask)
    # sample 0: eroded region rows 1-6, columns 1-2 (12 px); responses -1 at (3, 2), 0 elsewhere
    assert e[0].item() == pytest.approx(1 / 12) and math.isnan(e[1].item())
    flat = torch.ones(1, 1, 6, 6)
    assert math.isnan(graininess_ratio(flat, flat).item())  # the truth has no texture


def test_bad_shapes() -> None:
    with pytest.raises(ConfigError, match=r"\[B, C, H, W\]"):
        high_frequency_energy(torch.zeros(3, 8, 8))
    with pytest.raises(ConfigError, match="at least 3 x 3"):
        high_frequency_energy(torch.zeros(1, 1, 2, 8))
    with pytest.raises(ConfigError, match="does not fit"):
        high_frequency_energy(torch.zeros(1, 1, 8, 8), torch.ones(1, 7, 8, dtype=torch.bool))
    with pytest.raises(ConfigError, match="differ"):
        graininess_ratio(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))
