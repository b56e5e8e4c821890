"""Benchmark: the wall time of N local tuning trials run `parallel` at a time, against the
same trials one after another, in one run.

`earthseg.tune.local.tune` itself drives the trials, as `earthseg tune --local` does, on
this machine without containers (host mode: `earthseg train --base-dir` per trial) and
untracked, so that only the trainings and the tuner are timed. Every trial trains the
same model (the default U-Net, EPOCHS epochs, on a synthetic export of SCENES scenes in
64 px tiles): the search space is one value (`seed: {values: [0]}`) and pruning is off,
so both ways do exactly the same work. One after another, each job may use every core;
in parallel, each keeps to cores // parallel threads (TF_NUM_INTRAOP/INTEROP_THREADS).
A one-trial warm-up first puts TensorFlow's files in the page cache for both.

Per trial, the job's own time is taken from the tuner's lines (started .. complete); the
wall time is the whole tuning's. Nothing is asserted: the figures are printed.

    .venv/bin/python bench/tuning.py [--trials 4] [--parallel 2] [--epochs 5] [--scenes 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sample_dataset import make_dataset  # bench/ is on sys.path when run as a script

from earthseg.contracts.channels import channel_folders
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.tune.local import TuningJob, concurrency, tune
from earthseg.tune.options import ParameterRange, TuneConfig

EVENT = re.compile(r"^tune: (trial-\d+) (started|complete)")


class TrialClock:
    """Stands in for `say`: when each trial started and completed."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def __call__(self, line: str) -> None:
        match = EVENT.match(line)
        if match:
            times = self.started if match.group(2) == "started" else self.ended
            times[match.group(1)] = time.perf_counter()
        print(f"    {line}", file=sys.stderr, flush=True)

    def job_seconds(self) -> list[float]:
        return [self.ended[name] - self.started[name] for name in self.ended]


def one_tuning(
    dataset: Path, folder: Path, trials: int, parallel: int, epochs: int
) -> tuple[float, list[float]]:
    """The tuning's wall time and each trial's job time."""
    settings = TuneConfig(
        trials=trials,
        parallel=parallel,
        early_stopping=False,
        ranges={"seed": ParameterRange(values=[0])},
    )
    job = TuningJob(
        name="bench",
        channels=channel_folders(dataset),
        hyperparameters=Hyperparameters(epochs=epochs, batch_size=8, patience=epochs),
        environment={},
        experiment="bench",
    )
    clock = TrialClock()
    started = time.perf_counter()
    result = tune(settings, job, folder, f"bench-{parallel}", clock)
    wall = time.perf_counter() - started
    if result.count("complete") != trials:
        raise SystemExit(f"only {result.count('complete')} of {trials} trials completed")
    return wall, clock.job_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scenes", type=int, default=8)
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as scratch:
        root = Path(scratch)
        dataset = make_dataset(root, args.scenes)
        print("  warm-up: one trial of one epoch", file=sys.stderr, flush=True)
        one_tuning(dataset, root / "warm-up", 1, 1, 1)
        figures = {}
        for parallel in (1, args.parallel):
            print(f"  {parallel} at a time:", file=sys.stderr, flush=True)
            figures[parallel] = one_tuning(
                dataset, root / f"parallel-{parallel}", args.trials, parallel, args.epochs
            )

    print(
        f"Local tuning, {args.trials} trials of the same training (default U-Net, "
        f"{args.epochs} epochs, {args.scenes} synthetic scenes in 64 px tiles), host mode "
        f"(no containers), untracked, no pruning; {cores} cores, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'':<22}{'at a time':>10}{'threads':>9}{'wall s':>9}{'job s (mean)':>14}"
        f"{'trials/min':>12}"
    )
    for parallel, label in ((1, "one after another"), (args.parallel, "in parallel")):
        wall, jobs = figures[parallel]
        at_a_time, threads = concurrency(
            TuneConfig(
                trials=args.trials,
                parallel=parallel,
                ranges={"seed": ParameterRange(values=[0])},
            ),
            cores,
        )
        print(
            f"{label:<22}{at_a_time:>10}{threads:>9}{wall:>9.1f}{statistics.mean(jobs):>14.1f}"
            f"{60 * args.trials / wall:>12.2f}"
        )
    sequential, together = figures[1][0], figures[args.parallel][0]
    print(f"parallel / one after another: {sequential / together:.2f}x the throughput")


if __name__ == "__main__":
    main()
