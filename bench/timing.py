"""Timing shared by the training benchmarks."""

from __future__ import annotations

import time

import keras


class BatchClock(keras.callbacks.Callback):
    """Wall-clock time at the end of every training batch, to time steady-state batches."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())
