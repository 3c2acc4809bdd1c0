"""Training-time geometric augmentation of sample dicts: random crop, flips, 90-degree rotations.

Every random choice comes from an explicit :class:`numpy.random.Generator` that the caller
seeds (the training dataset seeds it from ``(seed, epoch, index)``, see
:class:`cloudfree.train.datamodule.TrainSampleDataset`). Nothing reads a global random state, so
a sample's crop and orientation do not depend on the worker process, the rank or what ran
before, which is what makes seeded runs reproducible and resumed runs exact.

The same transform is applied to every spatial entry of the sample (``optical``, ``sar``,
``target``, ``cloud_mask``, ``shadow_mask``, ``valid_mask``: any tensor with at least two
dimensions whose last two match the image size); scalars (``cloud_cover``) and strings
(``id``) pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cloudfree.data.transforms import spatial_keys
from cloudfree.errors import ConfigError

__all__ = ["SampleAugment", "random_crop_window"]


def random_crop_window(
    height: int, width: int, size: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left corner ``(top, left)`` of a uniformly random ``size`` x ``size`` window.

    Every offset from 0 to ``height - size`` (inclusive) is possible. (DSen2-CR draws its offsets
    with ``randint(0, 128)`` on 256 patches, which never reaches offset 128; the difference is
    one of 129 positions and is not reproduced.)
    """
    if size > height or size > width:
        raise ConfigError(f"data.patch_size {size} is larger than the {height}x{width} patch")
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))


@dataclass(frozen=True)
class SampleAugment:
    """Random crop to ``crop_size`` (None: keep the size), then optional flips and rotations.

    Args:
        crop_size: side of the random square crop (``data.patch_size``); None keeps the patch.
        hflip: mirror left-right with probability 1/2.
        vflip: mirror top-bottom with probability 1/2.
        rot90: rotate by ``k * 90`` degrees, ``k`` uniform in 0..3 (needs square images).

    With all three on, the eight symmetries of the square are equally likely. (DSen2-CR draws
    one of {no flip, flip rows, flip columns} and an independent ``k``; the set of reachable
    orientations is the same, their frequencies differ slightly. Decision: the uniform
    version.)
    """

    crop_size: int | None = None
    hflip: bool = False
    vflip: bool = False
    rot90: bool = False

    @property
    def is_identity(self) -> bool:
        return self.crop_size is None and not (self.hflip or self.vflip or self.rot90)

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A new sample dict (tensors are views or copies; the input is not modified)."""
        keys = spatial_keys(sample)
        out = dict(sample)
        h, w = out["optical"].shape[-2:]
        if self.crop_size is not None:
            top, left = random_crop_window(h, w, self.crop_size, rng)
            for k in keys:
                out[k] = out[k][..., top : top + self.crop_size, left : left + self.crop_size]
            h = w = self.crop_size
        # draw every decision even when disabled, so enabling one option does not shift the
        # random stream of the others
        flip_h, flip_v, k_rot = rng.integers(0, 2), rng.integers(0, 2), rng.integers(0, 4)
        dims: list[int] = []
        if self.hflip and flip_h:
            dims.append(-1)
        if self.vflip and flip_v:
            dims.append(-2)
        k = int(k_rot) if self.rot90 else 0
        if k and h != w:
            raise ConfigError(f"rot90 augmentation needs square images, got {h}x{w}")
        for key in keys:
            x = out[key]
            if dims:
                x = torch.flip(x, dims)
            if k:
                x = torch.rot90(x, k, dims=(-2, -1))
            out[key] = x.contiguous()
        return out
