"""Whole scenes of any size predicted in rows of windows, finished rows handed on as they
are done: memory follows a scene's width, not its area.

The windows and their blending are those of earthseg.serve.windows (the same offsets,
ramps and summation order, so the answer equals the in-memory one to float tolerance):
only one row of windows is held at a time. A window row's pixels are read when it is
reached; the rows above the next window row's start are covered by no later window, so
they are final and leave as a `Rows` block. The model is fully convolutional: windows may
be larger than the training tile (`window_shape`), so less work goes to overlap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from earthseg.preprocess.tiling import offsets
from earthseg.serve.windows import DeadlineExceeded, Run, blend_weights, ramp

# Pixels per model run. Each run holds ~0.7 KB per window pixel in ONNX Runtime, so with
# one session per core this is what keeps a 16384 px wide scene under 1 GB on 2 cores
# (bench/detect.py): 2 x 768 px windows would hold 1.4 GB; 576 covers 16384 and 8192
# exactly (32 and 16 windows with the 64 px overlap).
WINDOW_PIXELS = 576 * 576
# GDAL's block cache while a scene streams: by default 5 % of the RAM, which a large
# scene's decoded tiles fill (1.2 GB on a 24 GB machine); each tile is read once or
# twice, so a small cache costs no speed.
GDAL_CACHE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Rows:
    """Finished rows of a scene's prediction, from row `top` down."""

    top: int
    probabilities: np.ndarray  # (rows, width) float32, NaN where the scene has no data


class PixelSource(Protocol):
    """A scene read by rows: its size, and rows [top, bottom) with which hold data."""

    height: int
    width: int

    def read(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(rows, width, bands) pixels and (rows, width) bool validity, None: all valid."""
        ...


class ArraySource:
    """An image already in memory."""

    def __init__(self, pixels: np.ndarray, valid: np.ndarray | None) -> None:
        self.pixels, self.valid = pixels, valid
        self.height, self.width = pixels.shape[:2]

    def read(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray | None]:
        valid = None if self.valid is None else self.valid[top:bottom]
        return self.pixels[top:bottom], valid


class RasterSource:
    """An open rasterio dataset, read window row by window row; valid where GDAL's mask
    says so (nodata, alpha, internal mask) and, for floating-point pixels, where finite,
    as earthseg.serve.geo.read_raster decides for a raster read whole."""

    def __init__(self, dataset: Any) -> None:
        from rasterio.enums import MaskFlags

        self.dataset = dataset
        self.height, self.width = dataset.height, dataset.width
        self._floating = np.issubdtype(np.dtype(dataset.dtypes[0]), np.floating)
        self._masked = any(MaskFlags.all_valid not in flags for flags in dataset.mask_flag_enums)

    def read(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray | None]:
        from rasterio.windows import Window

        window = Window(0, top, self.width, bottom - top)
        pixels = np.moveaxis(self.dataset.read(window=window), 0, -1)
        valid = self.dataset.dataset_mask(window=window) > 0 if self._masked else None
        if self._floating:
            finite = np.isfinite(pixels).all(axis=-1)
            valid = finite if valid is None else valid & finite
        if valid is not None and valid.all():
            valid = None
        return pixels, valid


def window_shape(
    tile: tuple[int, int],
    multiple: int | None,
    height: int,
    width: int,
    pixels: int = WINDOW_PIXELS,
    overlap: int = 0,
) -> tuple[int, int]:
    """The window a scene is predicted in: the training tile for a model that takes no
    other size (`multiple` None), else at most about `pixels` pixels, a multiple of
    `multiple` on each side, never smaller than the tile: on each side the smallest that
    covers the scene with as few windows (overlapping by `overlap`) as that size needs,
    so the last window does not overlap its neighbour more than it must (16384 px in
    768 px windows: 24 of 752 px, 1.21x the pixels run rather than 1.27x)."""
    if multiple is None:
        return tile
    side = max(multiple, int(pixels**0.5) // multiple * multiple)

    def fit(length: int, tile_side: int) -> int:
        if length <= side:
            return max(tile_side, length // multiple * multiple)
        count = math.ceil((length - overlap) / (side - overlap))
        fitted = math.ceil((length + (count - 1) * overlap) / count / multiple) * multiple
        return max(tile_side, fitted)

    return fit(height, tile[0]), fit(width, tile[1])


def stream_probabilities(
    source: PixelSource,
    run: Run,
    window: tuple[int, int],
    overlap: int,
    batch: int = 1,
    deadline: float | None = None,
) -> Iterator[Rows]:
    """Probabilities of `source` through `run` in overlapping, blended windows, yielded
    as finished rows top to bottom. A scene smaller than a window is mirrored out to it,
    centred, as earthseg.serve.windows does. `deadline` (time.monotonic()) is checked
    before each run."""
    height, width = source.height, source.width
    layout = _Padding(height, width, window)
    stride = (window[0] - overlap, window[1] - overlap)
    row_starts = offsets(layout.height, window[0], stride[0])
    col_starts = offsets(layout.width, window[1], stride[1])
    weights = blend_weights(window, overlap)
    # A window's weights are a row ramp times a column ramp, so their sum over the grid
    # of windows is the product of two sums of ramps: two vectors, not a second buffer
    # as large as the running total.
    row_weight = _summed(ramp(window[0], overlap), row_starts, layout.height)
    col_weight = _summed(ramp(window[1], overlap), col_starts, layout.width)
    windows, done = len(row_starts) * len(col_starts), 0
    total = np.zeros((window[0], layout.width), np.float32)
    for index, start in enumerate(row_starts):
        pixels, valid = layout.read(source, start, start + window[0])
        runs = layout.with_data(col_starts, window[1], valid)
        done += len(col_starts) - len(runs)
        for first in range(0, len(runs), batch):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded(done, windows)
            chunk = runs[first : first + batch]
            stack = np.stack([pixels[:, col : col + window[1]] for col in chunk])
            for col, probabilities in zip(chunk, run(stack), strict=True):
                total[:, col : col + window[1]] += probabilities * weights
            done += len(chunk)
        del pixels  # the next row is read into its place, not beside it
        end = row_starts[index + 1] if index + 1 < len(row_starts) else layout.height
        finished = end - start
        blended = total[:finished] / col_weight
        blended /= row_weight[start:end, np.newaxis]
        rows = layout.crop(start, blended)
        del blended  # held by `rows` alone, so it goes when its consumer lets go
        if rows is not None:
            top, block = rows
            if valid is not None:  # on the scene's own rows and columns
                block[~valid[: block.shape[0]]] = np.nan
            del rows
            yield Rows(top, block)
            del block  # not held through the next row's runs
        del valid
        _shift(total, finished)


def _summed(ramp: np.ndarray, starts: list[int], length: int) -> np.ndarray:
    """(length,) float32: the ramps of windows starting at `starts`, added up."""
    summed = np.zeros(length, np.float32)
    for start in starts:
        summed[start : start + len(ramp)] += ramp
    return summed


def _shift(buffer: np.ndarray, rows: int) -> None:
    """Drop the first `rows` rows, moving the rest up and zeroing the freed rows."""
    kept = buffer.shape[0] - rows
    if kept > 0:
        buffer[:kept] = buffer[rows:]
    buffer[max(kept, 0) :] = 0


class _Padding:
    """A scene smaller than the window, mirrored out to it (centred) on the sides that
    need it: reading padded rows, and cropping answers back to the scene."""

    def __init__(self, height: int, width: int, window: tuple[int, int]) -> None:
        grow_rows, grow_cols = max(0, window[0] - height), max(0, window[1] - width)
        self.before = (grow_rows // 2, grow_cols // 2)
        self.pad_rows = (self.before[0], grow_rows - self.before[0])
        self.pad_cols = (self.before[1], grow_cols - self.before[1])
        self.scene = (height, width)
        self.height, self.width = height + grow_rows, width + grow_cols
        self.mode: Literal["reflect", "edge"] = "reflect" if min(height, width) > 1 else "edge"

    def read(
        self, source: PixelSource, top: int, bottom: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Padded rows [top, bottom): the whole scene when rows are padded (it is then
        less than one window tall), else those rows with their columns padded."""
        if any(self.pad_rows):
            pixels, valid = source.read(0, self.scene[0])
        else:
            pixels, valid = source.read(top, bottom)
        if any(self.pad_rows) or any(self.pad_cols):
            pixels = np.pad(pixels, (self.pad_rows, self.pad_cols, (0, 0)), mode=self.mode)
        return pixels, valid  # valid stays on the scene's own columns (and rows)

    def with_data(self, starts: list[int], side: int, valid: np.ndarray | None) -> list[int]:
        """The window columns in `starts` holding at least one valid pixel. A window of
        nodata only is not run: every valid pixel's answer comes from windows that
        hold it, and a pixel without data is NaN whatever its windows said (the swath
        gaps of daily imagery cost nothing). Scenes padded out to a window run whole."""
        if valid is None or any(self.pad_rows) or any(self.pad_cols):
            return starts
        return [col for col in starts if valid[:, col : col + side].any()]

    def crop(self, top: int, block: np.ndarray) -> tuple[int, np.ndarray] | None:
        """Padded rows from `top` -> (scene row, the scene's rows and columns), or None."""
        first = max(top, self.before[0])
        last = min(top + block.shape[0], self.before[0] + self.scene[0])
        if last <= first:
            return None
        left = self.before[1]
        cropped = block[first - top : last - top, left : left + self.scene[1]]
        return first - self.before[0], cropped
