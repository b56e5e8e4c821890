"""Benchmark: what MLflow tracking costs a training epoch, with against without, one run.

The same small training (`earthseg train`'s job, in this process: a synthetic export of
SCENES scenes preprocessed into 64 px tiles, the default U-Net, EPOCHS epochs) runs
untracked and tracked in turn, REPEATS times each, interleaved so that the machine's load
falls on both alike. Tracked runs log to an `mlflow server` over a SQLite store in a
temporary folder, started by `serve_store` as `earthseg pipeline --local` starts it.

An epoch's time is the wall time between two consecutive metrics lines (the line is
printed, then the epoch's metrics are logged, so a tracked epoch's time holds its
logging); the first epoch (tracing) is left out, the median of the rest is shown. Besides,
the time of each `Tracking.log_epoch` call is taken directly (the cost on its own, free of
the machine's noise), and the one-off costs of a tracked run: starting the run (params,
dataset input) and logging the results (final metrics, model card, figures, the ONNX model
and its registration), from the training's whole wall time.

Target: the epoch overhead under 2 %. On this shared 2-core machine the server answers on
the cores the training uses, and runs differ by several percent from one another: the
direct figure is the steadier one, the measured one says what a user would see.

    .venv/bin/python bench/tracking.py [--epochs 10] [--repeats 3] [--scenes 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import contextlib
import io
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sample_dataset import make_dataset  # bench/ is on sys.path when run as a script

from earthseg.train import tracking
from earthseg.train.environment import TrainingEnvironment
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.run import train

TARGET_OVERHEAD = 0.02
EPOCH_LINE = re.compile(r"^epoch=(\d+) loss=")


class EpochClock(io.TextIOBase):
    """Stands in for stdout: the time each metrics line is printed; the rest dropped."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, text: str) -> int:
        if EPOCH_LINE.match(text):
            self.times.append(time.perf_counter())
        return len(text)

    def epoch_seconds(self) -> list[float]:
        """Each epoch's time but the first's (its end minus the previous epoch's end)."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


@contextlib.contextmanager
def timed_log_epoch() -> Iterator[list[float]]:
    """The duration of every `Tracking.log_epoch` call while the context lasts."""
    durations: list[float] = []
    original = tracking.Tracking.log_epoch

    def log_epoch(self: tracking.Tracking, epoch: int, logs: dict[str, object]) -> None:
        started = time.perf_counter()
        original(self, epoch, logs)
        durations.append(time.perf_counter() - started)

    tracking.Tracking.log_epoch = log_epoch  # type: ignore[method-assign]
    try:
        yield durations
    finally:
        tracking.Tracking.log_epoch = original  # type: ignore[method-assign]


def one_training(
    dataset: Path, base: Path, epochs: int, uri: str | None
) -> tuple[list[float], float, list[float]]:
    """Epoch times (but the first), the whole wall time, and the log_epoch call times."""
    environment = TrainingEnvironment(
        base_dir=base,
        hyperparameters=Hyperparameters(epochs=epochs, batch_size=8, patience=epochs),
        channels={name: dataset / name for name in ("train", "validation", "test")},
        hosts=["algo-1"],
        current_host="algo-1",
    )
    if uri is None:
        os.environ.pop(tracking.TRACKING_URI_ENV, None)
    else:
        os.environ[tracking.TRACKING_URI_ENV] = uri
        os.environ[tracking.EXPERIMENT_ENV] = "bench-tracking"
    clock = EpochClock()
    started = time.perf_counter()
    with timed_log_epoch() as calls, contextlib.redirect_stdout(clock):
        train(environment)
    return clock.epoch_seconds(), time.perf_counter() - started, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as scratch:
        root = Path(scratch)
        dataset = make_dataset(root, args.scenes)
        store = tracking.local_store_uri(root / "runs")
        epochs: dict[str, list[float]] = {"untracked": [], "tracked": []}
        walls: dict[str, list[float]] = {"untracked": [], "tracked": []}
        calls: list[float] = []
        with tracking.serve_store(store, root / "server.log") as url:
            one_training(dataset, root / "warm-up", 2, None)  # TensorFlow's first-time costs
            for repeat in range(args.repeats):
                for kind, uri in (("untracked", None), ("tracked", url)):
                    seconds, wall, logged = one_training(
                        dataset, root / f"{kind}-{repeat}", args.epochs, uri
                    )
                    epochs[kind] += seconds
                    walls[kind].append(wall)
                    calls += logged
                    print(
                        f"  {kind:<10} run {repeat + 1}: {statistics.median(seconds):.3f} s "
                        f"per epoch, {wall:.1f} s in all",
                        file=sys.stderr,
                        flush=True,
                    )

    untracked = statistics.median(epochs["untracked"])
    tracked = statistics.median(epochs["tracked"])
    overhead = tracked / untracked - 1
    direct = statistics.median(calls) / untracked
    one_off = statistics.median(walls["tracked"]) - statistics.median(walls["untracked"])
    one_off -= (tracked - untracked) * (args.epochs - 1)
    load = os.getloadavg()[0]
    print(
        f"MLflow tracking of a training epoch: {args.scenes} scenes, 64 px tiles, default "
        f"U-Net, {args.epochs} epochs x {args.repeats} runs each (load average {load:.1f})"
    )
    print(f"{'':<28}{'s/epoch':>10}{'epochs':>8}{'run wall s':>12}")
    for kind in ("untracked", "tracked"):
        print(
            f"{kind:<28}{statistics.median(epochs[kind]):>10.3f}{len(epochs[kind]):>8}"
            f"{statistics.median(walls[kind]):>12.1f}"
        )
    print(f"log_epoch call (median of {len(calls)}): {statistics.median(calls) * 1000:.1f} ms")
    print(f"one-off per tracked run (start, results, model registration): {one_off:.1f} s")
    for what, value in (("epoch overhead, measured", overhead), ("epoch overhead, direct", direct)):
        verdict = "PASS" if value < TARGET_OVERHEAD else "FAIL"
        print(f"{what:<28}{value * 100:>9.2f} %   target < {TARGET_OVERHEAD * 100:g} %   {verdict}")


if __name__ == "__main__":
    main()
