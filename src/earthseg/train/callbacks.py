"""Keras callbacks for SageMaker: metrics on stdout in one form, a clean stop on SIGTERM.

`MetricsLogger` prints the line whose regexes the launcher registers as SageMaker's
`MetricDefinitions` (both in earthseg.train.metric_lines), and passes the values on to
the MLflow run. Spot interruption and
`StopTrainingJob` send SIGTERM, then SIGKILL after a grace period: `StopOnSigterm` ends
the fit at the next batch so the caller can save a checkpoint and exit; on several
instances all workers stop after the same batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import keras

from earthseg.train.metric_lines import metrics_line


class MetricsLogger(keras.callbacks.Callback):
    """Print `metrics_line` at every epoch end, flushed, for SageMaker's metric scraper,
    and hand the same values to `track` (epoch counted from 1, as printed): the MLflow
    run's per-epoch metrics."""

    def __init__(self, track: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self._track = track

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        print(metrics_line(epoch, logs or {}), flush=True)
        if self._track is not None:
            self._track(epoch + 1, logs or {})


class StopOnSigterm(keras.callbacks.Callback):
    """Turn SIGTERM during `fit` into a stop at the end of the current batch.

    The previous handler comes back when training ends. `interrupted` tells the caller
    that the fit ended early because of the signal, so it saves and exits cleanly.
    Signal handlers can only be set from the main thread; elsewhere SIGTERM is left alone.

    `anyone` (several workers) tells whether any worker got the signal; it is asked after
    every batch, so that all stop after the same one: a worker that stopped alone would
    leave the others waiting for it in the next step.
    """

    def __init__(self, anyone: Callable[[bool], bool] | None = None) -> None:
        super().__init__()
        self.interrupted = False
        self._signalled = False
        self._anyone = anyone
        self._previous: Any = None
        self._installed = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.interrupted = self._signalled = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Read once: the handler may set the flag at any moment, the decision must not change.
        signalled = self._signalled
        if self._anyone is not None:
            signalled = self._anyone(signalled)
        if signalled and not self.interrupted:
            print("SIGTERM: training stops after this batch", flush=True)
            self.interrupted = True
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._signalled = True  # only a flag: a handler may interrupt any line, even a print
