"""PNG files: the one atomic PNG writer (predict's quicklook, the report's panels and scenes).

Decisions:

* The input is either a ``PIL.Image`` (written as it is) or a ``uint8`` array ``[H, W]``
  (grey), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA); any other dtype or shape is a
  :class:`~cloudfree.errors.ConfigError` rather than a silent conversion, because a float
  array in [0, 1] would otherwise come out black.
* Written atomically (a hidden temporary file next to the target, then a rename), so a reader
  never sees half a PNG; the parent directory is created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.errors import ConfigError
from cloudfree.io.atomic import publish, temporary_sibling
from cloudfree.io.outputs import write_failure

__all__ = ["save_png"]


def _as_image(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ConfigError(f"a PNG array must be uint8, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ConfigError(f"a PNG array must be [H, W], [H, W, 3] or [H, W, 4], got {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr))


def save_png(image: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` (a ``PIL.Image`` or a ``uint8`` array, see the module docstring) as a
    PNG at ``path`` atomically; return the path."""
    img = _as_image(image)
    final = Path(path)
    tmp = temporary_sibling(final, ".tmp.png")
    try:
        try:
            img.save(tmp, format="PNG")
        except OSError as exc:  # full disk, I/O error: one line naming the file
            raise write_failure(final, exc) from None
        publish(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final
