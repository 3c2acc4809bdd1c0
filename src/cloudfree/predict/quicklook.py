"""RGB quicklook PNG: the cloudy input and the prediction side by side (Pillow, no matplotlib).

Decisions:

* **Collected while predicting.** :class:`QuicklookCollector` keeps every ``stride``-th row and
  column of the input and output RGB (B04, B03, B02) as the output rows are written, so a
  quicklook of a scene of any size costs at most ``max_side x max_side`` pixels per panel and no
  second pass over the files. ``stride = ceil(max(H, W) / max_side)`` (default ``max_side``
  1024); both panels use the same pixels.
* **Stretch.** Per band, the 2nd and 98th percentiles of the *prediction's* valid pixels map to
  0 and 255 (clipped), and the same stretch is applied to the input, so the panels are directly
  comparable. The prediction sets it because it shows the ground: a stretch of the cloudy input
  would be dominated by bright clouds and leave the ground black (clouds saturate to white in the
  input panel instead). Nodata pixels are black.
* **Layout.** Input left, prediction right, separated by a 4-pixel white gap. The PNG is written
  atomically by :func:`cloudfree.io.png.save_png` (re-exported here for the scene writer).
"""

from __future__ import annotations

import math

import numpy as np

from cloudfree.io.png import save_png

__all__ = ["QuicklookCollector", "render_side_by_side", "save_png"]

_GAP = 4


class QuicklookCollector:
    """Gather decimated RGB pixels of the input and the prediction while a scene is written.

    Args:
        height, width: scene size.
        max_side: largest side of each panel in pixels.
    """

    def __init__(self, height: int, width: int, max_side: int = 1024) -> None:
        self.stride = max(1, math.ceil(max(height, width) / max(1, max_side)))
        self.height = height
        self.width = width
        shape = (3, math.ceil(height / self.stride), math.ceil(width / self.stride))
        self.before = np.full(shape, np.nan, dtype=np.float32)
        self.after = np.full(shape, np.nan, dtype=np.float32)

    def add(self, row: int, col: int, before: np.ndarray, after: np.ndarray) -> None:
        """Add the piece at scene position ``(row, col)``: ``before``/``after`` are float
        ``[3, n, m]`` DN (NaN = nodata), in R, G, B order."""
        s = self.stride
        r_first, c_first = (-row) % s, (-col) % s
        n, m = before.shape[1:]
        if r_first >= n or c_first >= m:
            return
        rows, cols = slice(r_first, n, s), slice(c_first, m, s)
        r0, c0 = (row + r_first) // s, (col + c_first) // s
        b = before[:, rows, cols]
        self.before[:, r0 : r0 + b.shape[1], c0 : c0 + b.shape[2]] = b
        self.after[:, r0 : r0 + b.shape[1], c0 : c0 + b.shape[2]] = after[:, rows, cols]

    def render(self) -> object:
        """The side-by-side ``PIL.Image`` (RGB)."""
        return render_side_by_side(self.before, self.after)


def _stretch(ref: np.ndarray) -> list[tuple[float, float]]:
    out = []
    for band in ref:
        vals = band[np.isfinite(band)]
        if vals.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(vals, [2.0, 98.0])
        if hi <= lo:
            hi = lo + 1.0
        out.append((float(lo), float(hi)))
    return out


def _to_uint8(img: np.ndarray, stretch: list[tuple[float, float]]) -> np.ndarray:
    out = np.zeros(img.shape[1:] + (3,), dtype=np.uint8)
    for i, (lo, hi) in enumerate(stretch):
        band = img[i]
        scaled = np.clip((band - lo) / (hi - lo), 0.0, 1.0) * 255.0
        scaled = np.where(np.isfinite(band), scaled, 0.0)
        out[..., i] = np.round(scaled).astype(np.uint8)
    return out


def render_side_by_side(before: np.ndarray, after: np.ndarray) -> object:
    """Stretch ``before`` and ``after`` (``[3, H, W]`` float, NaN = nodata) alike, side by side."""
    from PIL import Image

    ref = after if np.isfinite(after).any() else before
    stretch = _stretch(ref)
    left, right = _to_uint8(before, stretch), _to_uint8(after, stretch)
    h, w = left.shape[:2]
    canvas = np.full((h, 2 * w + _GAP, 3), 255, dtype=np.uint8)
    canvas[:, :w] = left
    canvas[:, w + _GAP :] = right
    return Image.fromarray(canvas)  # uint8 [H, W, 3] -> RGB
