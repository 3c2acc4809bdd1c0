"""Small building blocks shared by the networks (no timm/torchvision dependency)."""

from cloudfree.models.layers.drop_path import DropPath, drop_path
from cloudfree.models.layers.dynamic_filter import (
    dynamic_filter2d,
    dynamic_filter2d_generated,
    dynamic_filter2d_reference,
)
from cloudfree.models.layers.init import trunc_normal_
from cloudfree.models.layers.window_attention import (
    ShiftMaskCache,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

__all__ = [
    "DropPath",
    "ShiftMaskCache",
    "drop_path",
    "dynamic_filter2d",
    "dynamic_filter2d_generated",
    "dynamic_filter2d_reference",
    "relative_position_index",
    "shifted_window_mask",
    "trunc_normal_",
    "window_partition",
    "window_reverse",
]
