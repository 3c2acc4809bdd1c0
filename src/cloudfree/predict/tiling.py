"""Tile grid, blending weights and the row-band accumulator of tiled scene inference.

Decisions:

* **Tile placement.** Tiles of ``tile_size`` start every ``step = tile_size - overlap`` pixels;
  the last tile of a row or column is *shifted* to end exactly at the scene edge (it overlaps its
  neighbour by more than ``overlap``) instead of being padded, so every tile the network sees
  holds real pixels only. A scene side shorter than ``tile_size`` gets one tile of that side's
  length (models accept any H, W), so no padding is ever needed.
* **Blending.** Each tile's prediction is weighted by the separable window
  ``w(y, x) = r(y) * r(x)`` where ``r`` rises as ``sin^2`` over the first ``overlap`` pixels,
  is 1 in the middle and falls symmetrically at the end. Its smallest value is
  ``sin^2(pi / (2 (overlap + 1)))`` > 0, so the weight never reaches 0 inside a tile and every
  pixel (scene corners included) has a positive total weight. The output is
  ``sum(w * pred) / sum(w)``: where one tile alone covers a pixel this is that tile's value,
  and in overlaps the transition from one tile to the next is smooth (no seams).
* **Bounded memory.** :class:`RowAccumulator` keeps weighted sums only for the rows that are
  still being covered by tiles: ``(tile_h + block) x width`` values per band. Rows that no later
  tile touches are handed back in chunks aligned to the output file's ``block`` rows (so a
  tiled GeoTIFF's blocks are written whole, never re-read or rewritten), and the buffer moves
  down. Memory therefore depends on the scene *width* and the tile size, never on its height:
  ``4 x C x (tile_h + block) x width`` bytes for the sums, e.g. 109 MiB for 13 bands, tile 256
  and a 4096-pixel-wide scene, 292 MiB for a full 10980-pixel Sentinel-2 tile.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cloudfree.errors import ConfigError

__all__ = [
    "RowAccumulator",
    "TileGrid",
    "blend_weights",
    "tile_starts",
]


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` every ``step`` pixels.

    The last start is ``length - tile`` (the last tile is shifted to end at the edge). Requires
    ``tile <= length``.
    """
    if tile > length:
        raise ValueError(f"tile {tile} is larger than the length {length}")
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int) -> np.ndarray:
    r = np.ones(n, dtype=np.float64)
    k = min(overlap, n // 2)
    if k > 0:
        rise = np.sin(0.5 * math.pi * np.arange(1, k + 1) / (k + 1)) ** 2
        r[:k] = rise
        r[n - k :] = rise[::-1]
    return r


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """Separable ``sin^2`` blending window ``[height, width]`` (float32, strictly positive)."""
    return np.outer(_ramp(height, overlap), _ramp(width, overlap)).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of a ``height x width`` scene lie.

    Args:
        height, width: scene size in pixels.
        tile_size: tile side (clipped to the scene side where the scene is smaller).
        overlap: overlap between neighbouring tiles, ``0 <= overlap <= tile_size // 2``.
    """

    height: int
    width: int
    tile_size: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.tile_size < 1:
            raise ConfigError(f"tile size must be at least 1, got {self.tile_size}")
        if self.overlap < 0 or 2 * self.overlap > self.tile_size:
            raise ConfigError(
                f"overlap must be between 0 and half the tile size ({self.tile_size // 2}), "
                f"got {self.overlap}"
            )
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"empty scene {self.height}x{self.width}")

    @property
    def tile_h(self) -> int:
        return min(self.tile_size, self.height)

    @property
    def tile_w(self) -> int:
        return min(self.tile_size, self.width)

    @property
    def step(self) -> int:
        return self.tile_size - self.overlap

    @property
    def row_starts(self) -> list[int]:
        return tile_starts(self.height, self.tile_h, self.step)

    @property
    def col_starts(self) -> list[int]:
        return tile_starts(self.width, self.tile_w, self.step)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def weights(self) -> np.ndarray:
        """The blending window of every tile, ``[tile_h, tile_w]``."""
        return blend_weights(self.tile_h, self.tile_w, self.overlap)

    def row_bands(self) -> Iterator[tuple[int, list[int]]]:
        """``(row_start, col_starts)`` for each row band of tiles, top to bottom."""
        cols = self.col_starts
        for r in self.row_starts:
            yield r, cols


class RowAccumulator:
    """Weighted sums of tile predictions over the rows still being covered.

    Usage (as :mod:`cloudfree.predict.scene` does): :meth:`add` every tile of a row band;
    then, while ``n := ready(next_row)`` is positive (``next_row``: the start row of the next
    band, ``None`` after the last one), read the first ``n`` rows with :meth:`blended` and
    :meth:`flags_of` (whole width or column pieces), write them, and :meth:`release` them.

    Args:
        channels: bands of the prediction.
        width: scene width.
        tile_h: tile height.
        block: output rows are returned in chunks whose start and end are multiples of
            ``block`` (except the scene's last row), so tiled output blocks are written whole.
    """

    def __init__(self, channels: int, width: int, tile_h: int, block: int, height: int) -> None:
        self.channels = channels
        self.width = width
        self.height = height
        self.block = max(1, block)
        self.capacity = tile_h + self.block
        self.top = 0  # scene row held at buffer row 0
        self.sum = np.zeros((channels, self.capacity, width), dtype=np.float32)
        self.weight = np.zeros((self.capacity, width), dtype=np.float32)
        self.flags = np.zeros((self.capacity, width), dtype=np.uint8)

    def add(
        self, pred: np.ndarray, weight: np.ndarray, flags: np.ndarray, row: int, col: int
    ) -> None:
        """Add ``pred [C, h, w]`` weighted by ``weight [h, w]`` at scene position (row, col).

        ``flags [h, w]`` (uint8) are per-pixel facts such as input validity bits; they are the
        same for every tile covering a pixel, so they are simply recorded.
        """
        h, w = weight.shape
        r0 = row - self.top
        if r0 < 0 or r0 + h > self.capacity:
            raise RuntimeError(
                f"tile at row {row} outside the accumulator's rows [{self.top}, "
                f"{self.top + self.capacity})"
            )
        self.sum[:, r0 : r0 + h, col : col + w] += pred * weight
        self.weight[r0 : r0 + h, col : col + w] += weight
        self.flags[r0 : r0 + h, col : col + w] = flags

    def ready(self, next_row: int | None) -> int:
        """How many rows from :attr:`top` are finished (receive no further tile).

        ``next_row`` is the start of the next row band (``None`` after the last band). The count
        is at most ``block`` and ends on a multiple of ``block`` (or at the scene's last row), so
        written chunks cover whole output blocks. Read them with :meth:`blended` and
        :meth:`flags_of`, then :meth:`release` them.
        """
        limit = self.height if next_row is None else (next_row // self.block) * self.block
        return max(0, min(limit - self.top, self.block))

    def blended(self, n: int, col0: int = 0, col1: int | None = None) -> np.ndarray:
        """Blended prediction ``[C, n, col1 - col0]`` of the first ``n`` held rows."""
        c1 = self.width if col1 is None else col1
        weight = self.weight[:n, col0:c1]
        if not np.all(weight > 0):
            raise RuntimeError(f"rows {self.top}..{self.top + n} not covered by any tile")
        return self.sum[:, :n, col0:c1] / weight

    def flags_of(self, n: int, col0: int = 0, col1: int | None = None) -> np.ndarray:
        """Per-pixel flags ``[n, col1 - col0]`` of the first ``n`` held rows (a copy)."""
        c1 = self.width if col1 is None else col1
        return self.flags[:n, col0:c1].copy()

    def release(self, n: int) -> None:
        """Drop the first ``n`` held rows (written) and move the buffer down by ``n`` rows.

        Rows are moved one at a time: a single overlapping slice assignment would make numpy
        allocate a temporary copy of the whole buffer.
        """
        keep = self.capacity - n
        for i in range(keep):
            self.sum[:, i] = self.sum[:, n + i]
            self.weight[i] = self.weight[n + i]
            self.flags[i] = self.flags[n + i]
        self.sum[:, keep:] = 0.0
        self.weight[keep:] = 0.0
        self.flags[keep:] = 0
        self.top += n
