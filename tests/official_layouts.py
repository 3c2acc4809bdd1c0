"""Our models' weights written in the official repositories' layouts (not a test module)."""

from __future__ import annotations

from pathlib import Path

import torch


def official_dsen2cr_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """A one-block DSen2-CR's weights saved as the official release's state dict."""
    state = {
        "model.0.weight": model.head.weight,
        "model.0.bias": model.head.bias,
        "model.2.conv_block.0.weight": model.blocks[0].conv1.weight,
        "model.2.conv_block.0.bias": model.blocks[0].conv1.bias,
        "model.2.conv_block.2.weight": model.blocks[0].conv2.weight,
        "model.2.conv_block.2.bias": model.blocks[0].conv2.bias,
        "model.3.weight": model.tail.weight,
        "model.3.bias": model.tail.bias,
    }
    torch.save({k: v.detach().clone() for k, v in state.items()}, path)
    return path
