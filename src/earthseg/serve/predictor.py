"""From decoded images to probabilities and masks: the one prediction path of the server,
`earthseg predict --model` and notebooks alike."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthseg.contracts.model_card import ModelCard
from earthseg.contracts.serving import TIMEOUT_ENV
from earthseg.serve.artifact import OnnxModel
from earthseg.serve.decoders import Payload
from earthseg.serve.errors import timed_out
from earthseg.serve.geo import MASK_NODATA, Grid
from earthseg.serve.stream import (
    WINDOW_PIXELS,
    ArraySource,
    PixelSource,
    Rows,
    stream_probabilities,
    window_shape,
)
from earthseg.serve.windows import DeadlineExceeded, default_overlap, predict_images


@dataclass(frozen=True)
class Prediction:
    """Per-pixel probabilities of a request's images, with what is needed to answer it."""

    probabilities: np.ndarray  # (N, rows, cols) float32, NaN where there is no data
    valid: np.ndarray | None  # (N, rows, cols) bool; None: every pixel holds data
    threshold: float
    grid: Grid | None
    single: bool

    def mask(self) -> np.ndarray:
        """(N, rows, cols) uint8: 1 at or above the threshold, 0 below, MASK_NODATA without data."""
        mask = (self.probabilities >= self.threshold).astype(np.uint8)
        if self.valid is not None:
            mask[~self.valid] = MASK_NODATA
        return mask


class Predictor:
    """An ONNX model and the way whole images go through it (overlapping windows).

    One image goes through in rows of windows as large as the model takes and the image
    needs (earthseg.serve.stream); a batch of images in training-tile windows, together.
    """

    def __init__(
        self, model: OnnxModel, overlap: int | None = None, window_pixels: int = WINDOW_PIXELS
    ) -> None:
        self.model = model
        self.overlap = default_overlap(model.card.input.tile_size) if overlap is None else overlap
        self.window_pixels = window_pixels

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def window(self, height: int, width: int) -> tuple[int, int]:
        """The window an image of this size is predicted in."""
        multiple = self.card.onnx.window_multiple
        tile, pixels = self.card.input.tile_size, self.window_pixels
        return window_shape(tile, multiple, height, width, pixels, self.overlap)

    def rows(self, source: PixelSource, deadline: float | None = None) -> Iterator[Rows]:
        """An image's probabilities, finished rows top to bottom (memory: its width)."""
        window = self.window(source.height, source.width)
        return stream_probabilities(
            source,
            self.model.probabilities,
            window,
            self.overlap,
            batch=self.model.sessions,  # a window per session, side by side
            deadline=deadline,
        )

    def predict(
        self, payload: Payload, threshold: float | None = None, timeout_s: float | None = None
    ) -> Prediction:
        """Probabilities for every pixel of a decoded payload's images; `threshold` overrides
        the card's; after `timeout_s` seconds the work is abandoned with a 504 RequestError."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        run, tile = self.model.probabilities, self.card.input.tile_size
        try:
            if payload.images.shape[0] == 1:
                source = ArraySource(payload.images[0], None)
                rows = [block.probabilities for block in self.rows(source, deadline)]
                probabilities = np.concatenate(rows)[np.newaxis]
            else:
                probabilities = predict_images(
                    payload.images, run, tile, self.overlap, deadline=deadline
                )
        except DeadlineExceeded as stopped:
            raise past_deadline(timeout_s, stopped) from None
        if payload.valid is not None:
            probabilities[~payload.valid] = np.nan
        return Prediction(
            probabilities,
            payload.valid,
            self.card.threshold if threshold is None else threshold,
            payload.grid,
            payload.single,
        )


def past_deadline(timeout_s: float | None, stopped: DeadlineExceeded) -> Exception:
    """The 504 of a prediction abandoned at the server's timeout."""
    return timed_out(
        f"the prediction took longer than the server's {timeout_s:g} s timeout ({stopped})",
        f"send smaller images, or raise {TIMEOUT_ENV}",
    )


def load_predictor(model_dir: Path) -> Predictor:
    """A predictor for the artifact in `model_dir`, running on every core: a
    single-threaded session per core."""
    return Predictor(OnnxModel(model_dir, sessions=os.cpu_count() or 1))
