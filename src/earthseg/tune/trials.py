"""One trial of a local tuning: a training job on its own /opt/ml tree, watched while it
runs so that it can be stopped early.

A trial's folder is its job's /opt/ml, laid out as SageMaker (and the SDK's local mode)
lays it out: `input/config/{hyperparameters,resourceconfig,inputdataconfig}.json`,
`input/data/<channel>`, `model/`, `output/` (`data/`, `failure`), `checkpoints/`; beside
them `train.log`, everything the job printed. The job runs either in the training image
(`docker run IMAGE train`, the tree mounted at /opt/ml, on the host's network) or on this
machine (`earthseg train --base-dir FOLDER`, channels linked in).

The SDK's local mode would block until its job ends, so a container trial is run with
the Docker SDK directly: its output is read line by line as it comes, every metrics line
(earthseg.train.metric_lines) is handed to the tuner, and when the tuner says stop the
job gets SIGTERM, which `StopOnSigterm` turns into a clean end of the fit at the next
batch (a job that does not end within `STOP_GRACE_S` is killed).

A tracked job says first whether its MLflow run started (`settled`): jobs that open
their runs at the same moment both try to record the dataset, and MLflow's SQL store
refuses the second (a UNIQUE constraint), leaving that job untracked; so the tuner
starts the next job only once the last one has settled, a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from earthseg.contracts.model_card import MODEL_CARD
from earthseg.contracts.opt_ml import (
    CHECKPOINTS,
    FAILURE,
    JOB_NAME_ENV,
    MODEL,
    OUTPUT_DATA,
    in_container,
)
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.metric_lines import parse_metrics_line
from earthseg.train.tracking import RUN_STATE, TRACKING_URI_ENV
from earthseg.tune.leaderboard import COMPLETE, FAILED, PRUNED

TRIAL_LOG = "train.log"
SETTLE_S = 120.0  # at most this long for a job to say whether it tracks
# The lines a tracked job prints once its run is open, or tracking is off
# (earthseg.train.tracking: the run announced, or the one warning).
TRACKING_SETTLED = ("MLflow run ", "earthseg train: warning: MLflow tracking at ")
STOP_GRACE_S = 60.0  # SIGTERM, then SIGKILL: a stopped fit ends at the next batch
HOST = "algo-1"
INSTANCE_TYPE = "local_cpu"  # what the SDK's local mode names a CPU job's instance
# TensorFlow sizes its thread pools from these (and OpenMP, where oneDNN uses it): a
# trial then keeps to its share of the cores instead of every trial taking them all.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class TrialJob:
    """One trial's training job: where it runs and what it is told."""

    name: str  # trial-001
    folder: Path  # its /opt/ml
    hyperparameters: Hyperparameters
    channels: Mapping[str, Path]
    environment: Mapping[str, str]  # dataset location, tracking
    threads: int  # cores the job may use
    image: str | None = None  # the training image; None: on this machine

    @property
    def log(self) -> Path:
        return self.folder / TRIAL_LOG

    @property
    def model(self) -> Path:
        return self.folder / MODEL

    @property
    def output_data(self) -> Path:
        return self.folder / OUTPUT_DATA


@dataclass(frozen=True)
class TrialOutcome:
    """How a watched job ended."""

    state: str  # complete, pruned or failed
    epochs: int  # metrics lines seen
    objective: float | None  # the objective's last value (None: no epoch finished)
    failure: str | None  # why it failed
    mlflow_run_id: str | None


Judge = Callable[[int, float], bool]  # (epoch, objective value) -> stop the job now


def thread_environment(threads: int) -> dict[str, str]:
    """The variables that hold a job to `threads` cores."""
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, threads)))


def lay_out(job: TrialJob) -> None:
    """Write the job's /opt/ml tree (a fresh one: what an earlier attempt left is gone)."""
    import shutil

    shutil.rmtree(job.folder, ignore_errors=True)
    config = job.folder / "input" / "config"
    config.mkdir(parents=True)
    _write_json(config / "hyperparameters.json", job.hyperparameters.as_strings())
    _write_json(
        config / "resourceconfig.json",
        {
            "current_host": HOST,
            "hosts": [HOST],
            "network_interface_name": "ethwe",
            "current_instance_type": INSTANCE_TYPE,
        },
    )
    _write_json(
        config / "inputdataconfig.json",
        {name: {"TrainingInputMode": "File"} for name in job.channels},
    )
    data = job.folder / "input" / "data"
    data.mkdir()
    for name, path in job.channels.items():
        if job.image is None:
            (data / name).symlink_to(Path(path).resolve(), target_is_directory=True)
        else:
            (data / name).mkdir()  # the mount point
    for part in (MODEL, OUTPUT_DATA, CHECKPOINTS):
        (job.folder / part).mkdir(parents=True)


class RunningTrial:
    """A trial's job, started; `watch` follows it to its end, `stop` (from any thread)
    asks it to end early."""

    def __init__(self, job: TrialJob) -> None:
        self.job = job
        lay_out(job)
        environment = {
            **job.environment,
            **thread_environment(job.threads),
            JOB_NAME_ENV: job.name,
            "PYTHONUNBUFFERED": "1",
        }
        self._process: _Job = (
            _HostJob(job, environment)
            if job.image is None
            else _ContainerJob(job, environment, job.image)
        )
        self._stopped = threading.Event()
        self._killer: threading.Timer | None = None
        self._settled = threading.Event()
        if TRACKING_URI_ENV not in job.environment:
            self._settled.set()

    def settled(self, timeout: float = SETTLE_S) -> bool:
        """Wait until the job has opened its MLflow run, or will not (untracked, tracking
        failed, training under way, or ended); False when `timeout` passed first."""
        return self._settled.wait(timeout)

    def watch(self, objective: str, judge: Judge) -> TrialOutcome:
        """Follow the job's output into its log until it ends; hand each epoch's value of
        `objective` to `judge`, and stop the job when it says so."""
        epochs, last, pruned = 0, None, False
        try:
            with open(self.job.log, "w") as log:
                for line in self._process.lines():
                    log.write(line)
                    log.flush()
                    if line.startswith(TRACKING_SETTLED):
                        self._settled.set()
                    metrics = parse_metrics_line(line)
                    if metrics is None:
                        continue
                    self._settled.set()
                    epochs = metrics.epoch
                    value = metrics.values.get(objective)
                    if value is None:
                        continue
                    last = value
                    if not pruned and not self._stopped.is_set() and judge(epochs, value):
                        pruned = True
                        self.stop()
            status = self._process.wait()
        finally:
            self._settled.set()
            if self._killer is not None:
                self._killer.cancel()
            self._process.close()
        return self._outcome(status, epochs, last, pruned)

    def stop(self) -> None:
        """SIGTERM: the fit ends at the next batch; killed if still running after
        `STOP_GRACE_S`."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._process.send(signal.SIGTERM)
        self._killer = threading.Timer(STOP_GRACE_S, self.kill)
        self._killer.daemon = True
        self._killer.start()

    def kill(self) -> None:
        """End the job now (the tuning is interrupted)."""
        self._stopped.set()
        self._process.send(signal.SIGKILL)

    def _outcome(self, status: int, epochs: int, last: float | None, pruned: bool) -> TrialOutcome:
        objective = last if last is not None and math.isfinite(last) else None
        run_id = _mlflow_run_id(self.job.folder, self.job.name)
        if pruned:
            return TrialOutcome(PRUNED, epochs, objective, None, run_id)
        failure = None
        if status != 0:
            failure = _failure(self.job.folder, status)
        elif self._stopped.is_set():
            failure = "stopped before it finished"
        elif not (self.job.model / MODEL_CARD).is_file():
            failure = "ended without writing a model"
        elif objective is None:
            failure = "printed no finite value of the objective in any epoch"
        if failure is not None:
            return TrialOutcome(FAILED, epochs, objective, failure, run_id)
        return TrialOutcome(COMPLETE, epochs, objective, None, run_id)


class _Job(Protocol):
    """A started job: its output lines, a signal, its exit status."""

    def lines(self) -> Iterator[str]: ...

    def send(self, number: int) -> None: ...

    def wait(self) -> int: ...

    def close(self) -> None:
        """Release what the job held once it ended."""


class _HostJob:
    """`earthseg train --base-dir FOLDER` in a process of its own (the toolkit fixes
    /opt/ml per process)."""

    def __init__(self, job: TrialJob, environment: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "earthseg.cli", "train", "--base-dir", str(job.folder)]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, **environment},
        )

    def lines(self) -> Iterator[str]:
        assert self._process.stdout is not None
        yield from self._process.stdout

    def send(self, number: int) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                self._process.send_signal(number)

    def wait(self) -> int:
        return self._process.wait()

    def close(self) -> None:
        if self._process.stdout is not None:
            self._process.stdout.close()


class _ContainerJob:
    """`docker run IMAGE train` with the trial's tree at /opt/ml, on the host's network
    (a served tracking store is on 127.0.0.1), held to the job's share of the cores."""

    def __init__(self, job: TrialJob, environment: Mapping[str, str], image: str) -> None:
        from earthseg.local.engine import docker_client, run_detached

        folder = job.folder.resolve()
        volumes: dict[str, dict[str, str]] = {
            str(folder / "input"): {"bind": in_container("input"), "mode": "rw"},
            str(folder / MODEL): {"bind": in_container(MODEL), "mode": "rw"},
            str(folder / "output"): {"bind": in_container("output"), "mode": "rw"},
            str(folder / CHECKPOINTS): {"bind": in_container(CHECKPOINTS), "mode": "rw"},
        }
        for name, path in job.channels.items():
            volumes[str(Path(path).resolve())] = {
                "bind": in_container("input", "data", name),
                "mode": "ro",
            }
        self._client = docker_client()
        try:
            self._container = run_detached(
                self._client,
                image,
                ["train"],
                environment=dict(environment),
                volumes=volumes,
                nano_cpus=int(max(1, job.threads) * 1e9),
                labels={"earthseg.trial": job.name},
            )
        except Exception:
            self._client.close()
            raise

    def lines(self) -> Iterator[str]:
        pending = ""
        for chunk in self._container.logs(stream=True, follow=True):
            pending += chunk.decode("utf-8", errors="replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        if pending:
            yield pending

    def send(self, number: int) -> None:
        from docker.errors import APIError, NotFound

        with contextlib.suppress(NotFound, APIError):  # ended meanwhile
            self._container.kill(signal=number)

    def wait(self) -> int:
        status: int = self._container.wait()["StatusCode"]
        return status

    def close(self) -> None:
        from docker.errors import APIError, NotFound

        try:
            self._container.remove(force=True)
        except (NotFound, APIError):
            pass
        finally:
            self._client.close()


def _failure(folder: Path, status: int) -> str:
    """The reason the job wrote, or its exit status."""
    path = folder / FAILURE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    return f"exit status {status}, no reason written"


def _mlflow_run_id(folder: Path, name: str) -> str | None:
    """The MLflow run the job recorded beside its checkpoints, when it tracked (in the
    job's own folder of them when CHECKPOINTS_PER_JOB_ENV asked for one)."""
    for path in (folder / CHECKPOINTS / RUN_STATE, folder / CHECKPOINTS / name / RUN_STATE):
        try:
            run_id = json.loads(path.read_text()).get("run_id")
        except (OSError, ValueError):
            continue
        if run_id:
            return str(run_id)
    return None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
