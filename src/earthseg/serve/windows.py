"""Whole-image prediction with overlapping windows, blended so window edges leave no seams.

A U-Net sees less context near a window's edge, so its output there is less reliable and
differs from the neighbouring window's. Each window's probabilities are weighted by a
ramp that falls towards its edges across the overlap, and every pixel gets the weighted
mean of the windows that cover it: neighbouring windows cross-fade instead of meeting at
a hard line. Images smaller than a window are mirrored out to its size first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from earthseg.preprocess.tiling import offsets

Run = Callable[[np.ndarray], np.ndarray]  # (N, rows, cols, bands) -> (N, rows, cols)

DEFAULT_BATCH = 8  # windows per model run


class DeadlineExceeded(Exception):
    """The prediction would run past its deadline; `done` of `total` windows were run."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} windows predicted")
        self.done = done
        self.total = total


def default_overlap(tile: tuple[int, int]) -> int:
    """A quarter of the window: 1.8x the windows of no overlap, and seamless."""
    return min(tile) // 4


def blend_weights(tile: tuple[int, int], overlap: int) -> np.ndarray:
    """(rows, cols) float32 weights: 1 inside, ramping down to near 0 across `overlap`."""
    return np.outer(ramp(tile[0], overlap), ramp(tile[1], overlap))


def predict_images(
    images: np.ndarray,
    run: Run,
    tile: tuple[int, int],
    overlap: int,
    batch: int = DEFAULT_BATCH,
    deadline: float | None = None,
) -> np.ndarray:
    """(N, H, W, bands) images of any size -> (N, H, W) float32 probabilities.

    Windows of every image go through `run` together, `batch` at a time; an image of
    exactly one window costs one window. `deadline` (time.monotonic()) is checked before
    each run.
    """
    count, height, width, _ = images.shape
    padded, (pad_rows, pad_cols) = _pad_to_tile(images, tile)
    weights = blend_weights(tile, overlap)
    stride = (tile[0] - overlap, tile[1] - overlap)
    rows = offsets(padded.shape[1], tile[0], stride[0])
    cols = offsets(padded.shape[2], tile[1], stride[1])
    windows = [(index, row, col) for index in range(count) for row in rows for col in cols]

    total = np.zeros(padded.shape[:3], np.float32)
    weight = np.zeros(padded.shape[:3], np.float32)
    for done, chunk in _chunks(windows, batch):
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded(done, len(windows))
        stack = np.stack([padded[i, r : r + tile[0], c : c + tile[1]] for i, r, c in chunk])
        for (i, r, c), probabilities in zip(chunk, run(stack), strict=True):
            total[i, r : r + tile[0], c : c + tile[1]] += probabilities * weights
            weight[i, r : r + tile[0], c : c + tile[1]] += weights
    blended = total / weight
    return blended[:, pad_rows : pad_rows + height, pad_cols : pad_cols + width]


def ramp(length: int, overlap: int) -> np.ndarray:
    """1D weights: (i + 0.5) / overlap from each end, capped at 1; never 0."""
    if overlap <= 0:
        return np.ones(length, np.float32)
    position = np.arange(length, dtype=np.float32) + 0.5
    return np.minimum(1.0, np.minimum(position, length - position) / overlap).astype(np.float32)


def _pad_to_tile(images: np.ndarray, tile: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Mirror images smaller than a window out to its size, centred; return the offsets."""
    height, width = images.shape[1:3]
    grow_rows, grow_cols = max(0, tile[0] - height), max(0, tile[1] - width)
    if not grow_rows and not grow_cols:
        return images, (0, 0)
    before = (grow_rows // 2, grow_cols // 2)
    pad = ((0, 0), (before[0], grow_rows - before[0]), (before[1], grow_cols - before[1]), (0, 0))
    if min(height, width) > 1:
        return np.pad(images, pad, mode="reflect"), before
    return np.pad(images, pad, mode="edge"), before


def _chunks(
    windows: list[tuple[int, int, int]], size: int
) -> Iterator[tuple[int, list[tuple[int, int, int]]]]:
    for start in range(0, len(windows), size):
        yield start, windows[start : start + size]
