"""MLflow tracking: what a training job records in its run, and the local tracking store.

A job tracks when `MLFLOW_TRACKING_URI` is set (the launcher sets it from `tracking.uri`
in run.yaml, or passes its own); `MLFLOW_EXPERIMENT_NAME` names the experiment (the
launcher: the run's name; default `earthseg`). Any MLflow URI a job can reach works:
`sqlite:///path/mlflow.db`, `http(s)://host:port`, or a SageMaker managed MLflow ARN
(`arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME`, through the
`sagemaker-mlflow` plugin with the job's role). Only the chief of a cluster tracks.

A job's run holds:
- params: every hyperparameter (named as in run.yaml, JSON-encoded values as SageMaker
  passes them), `data.*` (source, manifest digest, tile shape, tiles and positive
  fraction per split) and `imagery.<n>.*` (the WMS each fetched scene came from);
- a dataset input (context `training`): source = the dataset's location
  (`EARTHSEG_DATASET_URI`, set by the launcher; else the channels' folder), digest = the
  manifest's sha256 (its first 36 hex digits, MLflow's limit), profile = tiles and
  positive fraction per split;
- metrics per epoch, step = the epoch counted from 1: the keys of the metrics line
  (loss, val_loss, val_iou, val_f1, ...);
- final metrics at the last epoch's step: `threshold` and `<split>_<score>` on the
  chosen threshold (`validation_iou`, `test_f1`, ...: `final_metric`);
- artifacts: the model card `earthseg.json`, and `training/` (metrics.json, figures);
- the ONNX model (MLflow's `onnx` flavour) as the logged model `model`, registered as a
  new version of the registered model named after the experiment.
The run id goes into the model card (`tracking`). A restarted job (spot) continues its
run, recorded beside the checkpoints, when its params are unchanged.

Tracking never fails training: a store that cannot be reached, or a call that fails,
is one warning line naming the store, and the job goes on untracked.

Locally, `earthseg pipeline --local` tracks by default to `<runs folder>/mlflow.db`
(artifacts in `<runs folder>/mlartifacts`), served for the job by `serve_store` so that
a job in a container reaches it as one on the host does; `earthseg ui` opens it.

For tuning (the API a tuner builds on):
- `start_parent_run(uri, experiment, name, params)` opens the tuning's run, returns its id;
- `child_environment(uri, experiment, parent_run_id)` is the environment of a trial's
  job: the job's run is tagged `mlflow.parentRunId` (`PARENT_RUN_ENV`);
- a trial's objective is its final metric `final_metric("validation", "iou")`
  (`validation_iou`), read from the child run's metrics;
- `end_run(uri, run_id, status)` closes the parent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from earthseg import __version__
from earthseg.contracts.channels import CHANNELS, ChannelIndex, read_channel_index
from earthseg.contracts.opt_ml import JOB_NAME_ENV
from earthseg.errors import InputError
from earthseg.train.metric_lines import LOGGED

if TYPE_CHECKING:
    from earthseg.train.environment import TrainingEnvironment

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
PARENT_RUN_ENV = "EARTHSEG_MLFLOW_PARENT_RUN_ID"
DATASET_URI_ENV = "EARTHSEG_DATASET_URI"
# The store a job's server stands in for (the local store, served for the job): the
# model card names it rather than the server's passing address.
STORE_URI_ENV = "EARTHSEG_TRACKING_STORE"
TRAINING_JOB_TAG = "sagemaker.training_job"  # the job a run tracked (its name)
DEFAULT_EXPERIMENT = "earthseg"
PARENT_TAG = "mlflow.parentRunId"
MODEL_NAME = "model"  # the logged model, and its folder among the artifacts
TRAINING_ARTIFACTS = "training"  # /opt/ml/output/data among the artifacts
RUN_STATE = "mlflow_run.json"  # beside the checkpoints: the run a restarted job continues
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
MAX_DIGEST = 36  # MLflow's longest dataset digest
WEB_SCHEMES = ("http", "https")
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/[\w-]+"
)
URI_FIX = (
    "give sqlite:///path/mlflow.db, http(s)://host:port or a SageMaker managed MLflow ARN "
    "(arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME)"
)
# A store that is down costs a job seconds, not MLflow's default minutes of retries.
# An image without git: GitPython stays quiet rather than print a page about it.
JOB_ENVIRONMENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "GIT_PYTHON_REFRESH": "quiet",
}
SERVER_START_S = 120.0
WARNING_LIMIT = 300  # characters of the error a warning quotes


# -- URIs ---------------------------------------------------------------------------


def check_tracking_uri(uri: str, source: str = "tracking.uri") -> str:
    """`uri` when it is an MLflow tracking URI a job can track to; an InputError naming
    `source` otherwise."""
    scheme = uri.partition(":")[0].partition("+")[0].lower()
    if scheme in WEB_SCHEMES and "://" in uri and urlsplit(uri).hostname:
        return uri
    if scheme in DATABASE_SCHEMES and "://" in uri:
        return uri
    if ARN.fullmatch(uri):
        return uri
    problem = f"{uri!r} is not a tracking URI earthseg can log to"
    if scheme == "file" or uri.startswith(("/", ".", "~")):
        problem += " (MLflow's file store is deprecated: use a SQLite file instead)"
    raise InputError(source, problem, URI_FIX)


def check_cloud_uri(uri: str, source: str = "tracking.uri") -> str:
    """`check_tracking_uri` for a job on SageMaker, which cannot open a file on this
    machine: a SQLite store is refused rather than filled inside the job's container."""
    if sqlite_file(check_tracking_uri(uri, source)) is not None:
        raise InputError(
            source,
            f"{uri} is a file on this machine, which a job on SageMaker cannot reach",
            "give an http(s) tracking server the job can reach, or a SageMaker managed "
            "MLflow ARN (arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME)",
        )
    return uri


def public_uri(uri: str) -> str:
    """`uri` without a user name or password, for logs and model cards."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in WEB_SCHEMES or "@" not in parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def local_store_uri(runs: Path) -> str:
    """The local tracking store of a runs folder: `sqlite:///<runs>/mlflow.db`."""
    return f"sqlite:///{Path(runs).resolve() / LOCAL_STORE}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for other URIs)."""
    prefix = "sqlite:///"
    return Path(unquote(uri[len(prefix) :])) if uri.startswith(prefix) else None


def store_artifacts(uri: str) -> Path:
    """Where a SQLite store keeps its runs' artifacts: `mlartifacts/` beside the file."""
    database = sqlite_file(uri)
    if database is None:
        raise ValueError(f"{uri} is not a sqlite:/// URI")
    return database.resolve().parent / LOCAL_ARTIFACTS


def store_command(uri: str, port: int, host: str = "127.0.0.1", verb: str = "ui") -> list[str]:
    """`mlflow ui` (or `server`) over a SQLite store with its artifacts beside it."""
    return [
        "mlflow",
        verb,
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        str(store_artifacts(uri)),
        "--host",
        host,
        "--port",
        str(port),
    ]


def tracking_environment(uri: str, experiment: str) -> dict[str, str]:
    """The environment that makes a training job track to `uri` under `experiment`."""
    return {TRACKING_URI_ENV: uri, EXPERIMENT_ENV: experiment}


def job_environment(uri: str | None, experiment: str, dataset: Any) -> dict[str, Any]:
    """What a launcher passes a training job: the dataset's location (`dataset`: an S3
    URI or a folder, or a SageMaker Pipeline's variable holding one), and with a tracking
    URI where to track the run."""
    return {**(tracking_environment(uri, experiment) if uri else {}), DATASET_URI_ENV: dataset}


def child_environment(uri: str, experiment: str, parent_run_id: str) -> dict[str, str]:
    """The environment of a job whose run is a child of `parent_run_id` (a tuning trial)."""
    return {**tracking_environment(uri, experiment), PARENT_RUN_ENV: parent_run_id}


def final_metric(split: str, score: str) -> str:
    """The name under which a run records a final score: `validation_iou`, `test_f1`."""
    return f"{split}_{score}"


# -- the local store, served --------------------------------------------------------


class StoreUnavailable(Exception):
    """The tracking server for a local store did not start; the message says why."""


@contextlib.contextmanager
def serve_store(uri: str, log_file: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """`mlflow server` over the SQLite store `uri` on `host` (a free port) for as long as
    the context lasts; yields its http URL.

    Jobs log through it (artifacts proxied into the store's `mlartifacts/`), so a job in
    a container, which cannot open a file on the host, tracks like one on the host.
    """
    database = sqlite_file(uri)
    if database is None:
        raise ValueError(f"only a sqlite:/// store is served here, not {uri}")
    database.parent.mkdir(parents=True, exist_ok=True)
    port = _free_port(host)
    command = [sys.executable, "-m", *store_command(uri, port, host, verb="server")]
    command += ["--workers", "1"]
    url = f"http://{host}:{port}"
    with open(log_file, "ab") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_healthy(url, server, log_file)
        yield url
    finally:
        _stop(server)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log_file: Path) -> None:
    import requests

    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise StoreUnavailable(
                f"mlflow server exited with status {server.returncode} (its log: {log_file})"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        time.sleep(0.2)
    raise StoreUnavailable(
        f"mlflow server did not answer on {url} within {SERVER_START_S:.0f} s (log: {log_file})"
    )


def _stop(server: subprocess.Popen[bytes]) -> None:
    """End the server and its workers (its own process group)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if server.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(wait)
    with contextlib.suppress(ProcessLookupError):  # workers left behind by a killed server
        os.killpg(server.pid, signal.SIGKILL)


# -- a job's run --------------------------------------------------------------------


class Tracking:
    """A training job's MLflow run, or nothing (no URI, not the chief, or turned off).

    Every call is safe: the first failure prints one warning naming the store and turns
    tracking off for the rest of the job.
    """

    def __init__(
        self,
        uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        store: str | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.store = store or uri  # what the model card names
        self.run_id: str | None = None
        self._client: Any = None

    @property
    def active(self) -> bool:
        return self.run_id is not None

    @property
    def record(self) -> dict[str, str] | None:
        """What the model card says about the run (`ModelCard.tracking`)."""
        if self.store is None or self.run_id is None:
            return None
        return {
            "uri": public_uri(self.store),
            "experiment": self.experiment,
            "run_id": self.run_id,
        }

    def log_epoch(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """The metrics line's values of `epoch` (from 1), at step `epoch`."""
        self._metrics({key: logs[key] for key in LOGGED if key in logs}, epoch, "epoch metrics")

    def log_results(
        self,
        *,
        threshold: float,
        metrics: Mapping[str, Mapping[str, float]],
        epochs: int,
        model_dir: Path,
        output_dir: Path,
    ) -> None:
        """After export: final scores, model card, figures, the ONNX model (registered)."""
        if not self.active:
            return
        finals = {
            final_metric(split, score): value
            for split, scores in metrics.items()
            for score, value in scores.items()
        }
        self._metrics({"threshold": threshold, **finals}, epochs, "final metrics")
        self._attempt("logging artifacts", lambda: self._log_artifacts(model_dir, output_dir))
        self._attempt("logging the ONNX model", lambda: self._log_model(model_dir))

    def end(self, status: str = "FINISHED") -> None:
        """Close the run: FINISHED, FAILED or KILLED."""
        if self.active:
            self._attempt(
                "ending the run", lambda: self._client.set_terminated(self.run_id, status)
            )
            self.run_id = None

    def __enter__(self) -> Tracking:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.end("FINISHED" if kind is None else "FAILED")

    def _metrics(self, values: Mapping[str, Any], step: int, what: str) -> None:
        if not self.active or not values:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in values.items()]
        self._attempt(f"logging {what}", lambda: self._client.log_batch(self.run_id, batch))

    def _log_artifacts(self, model_dir: Path, output_dir: Path) -> None:
        from earthseg.contracts.model_card import MODEL_CARD

        self._client.log_artifact(self.run_id, str(model_dir / MODEL_CARD))
        if output_dir.is_dir():
            self._client.log_artifacts(self.run_id, str(output_dir), TRAINING_ARTIFACTS)

    def _log_model(self, model_dir: Path) -> None:
        import mlflow.onnx
        import onnx

        from earthseg.contracts.model_card import ONNX_FILE, read_model_card

        card = read_model_card(model_dir)
        # The logged model goes to the global experiment (not the run's), which is
        # "Default" unless MLFLOW_EXPERIMENT_NAME is in this process's environment.
        mlflow.set_experiment(experiment_id=self._client.get_run(self.run_id).info.experiment_id)
        mlflow.onnx.log_model(
            onnx.load(str(model_dir / ONNX_FILE)),
            name=MODEL_NAME,
            run_id=self.run_id,
            registered_model_name=self.experiment,
            signature=_signature(card.onnx.input, card.onnx.output, card.input.bands),
            save_as_external_data=False,
        )

    def _attempt(self, what: str, action: Callable[[], object]) -> None:
        """Run `action` unless tracking is off; a failure turns it off with a warning."""
        if self.uri is None:
            return
        try:
            with quiet(self.uri):
                action()
        except Exception as error:  # whatever the store or the network did: train on
            warn(self.uri, f"failed while {what} ({one_line(error)})")
            self.uri, self.run_id = None, None


def start_tracking(
    environment: TrainingEnvironment,
    resuming: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> Tracking:
    """The job's run, started, when `environ` names a tracking URI and this host is the
    chief; otherwise (or when the store cannot be reached) a Tracking that does nothing.

    `resuming`: Keras continues from the checkpoints, so the run recorded beside them
    continues too, if its params are the same.
    """
    uri = environ.get(TRACKING_URI_ENV, "").strip()
    if not uri or environment.current_host != environment.hosts[0]:
        return Tracking()
    experiment = environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
    tracking = Tracking(uri, experiment, environ.get(STORE_URI_ENV))
    for name, value in JOB_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        check_tracking_uri(uri, TRACKING_URI_ENV)
        import mlflow  # noqa: F401  (the train extra installs it; say so when it is not there)
    except (InputError, ImportError) as error:
        warn(uri, f"cannot be used ({error})")
        return Tracking()
    tracking._attempt(
        "starting the run", lambda: _start_run(tracking, environment, resuming, environ)
    )
    return tracking


def _start_run(
    tracking: Tracking,
    environment: TrainingEnvironment,
    resuming: bool,
    environ: Mapping[str, str],
) -> None:
    import mlflow
    from mlflow import MlflowClient

    assert tracking.uri is not None
    mlflow.set_tracking_uri(tracking.uri)  # mlflow.onnx.log_model logs through the global one
    client = MlflowClient(tracking.uri)
    tracking._client = client
    indexes = {
        name: read_channel_index(folder)
        for name, folder in environment.channels.items()
        if name in CHANNELS
    }
    source = environ.get(DATASET_URI_ENV) or str(
        Path(environment.channels["train"]).resolve().parent
    )
    params = {
        **{
            name: json.dumps(value)
            for name, value in environment.hyperparameters.model_dump().items()
        },
        **_data_params(indexes, source),
    }
    state = environment.checkpoint_dir / RUN_STATE
    run_id = _earlier_run(client, state, tracking.uri, params) if resuming else None
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        tracking.run_id = run_id
        _announce(tracking, "continues")
        return
    parent = environ.get(PARENT_RUN_ENV)
    experiment_id = (
        client.get_run(parent).info.experiment_id
        if parent
        else _experiment_id(client, tracking.uri, tracking.experiment)
    )
    tags = {
        "mlflow.source.type": "JOB",
        "mlflow.source.name": "earthseg train",
        "earthseg.version": __version__,
        **({PARENT_TAG: parent} if parent else {}),
        **({TRAINING_JOB_TAG: environ[JOB_NAME_ENV]} if JOB_NAME_ENV in environ else {}),
    }
    run = client.create_run(experiment_id, tags=tags, run_name=environ.get(JOB_NAME_ENV))
    tracking.run_id = run.info.run_id
    from mlflow.entities import Param

    client.log_batch(tracking.run_id, params=[Param(k, v) for k, v in params.items()])
    client.log_inputs(tracking.run_id, datasets=[_dataset_input(indexes, source)])
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"uri": public_uri(tracking.uri), "run_id": tracking.run_id, "params": params})
    )
    _announce(tracking, "started")


def _announce(tracking: Tracking, what: str) -> None:
    assert tracking.uri is not None
    print(
        f"MLflow run {tracking.run_id} {what} in experiment {tracking.experiment} at "
        f"{public_uri(tracking.uri)}",
        flush=True,
    )


def _earlier_run(client: Any, state: Path, uri: str, params: dict[str, str]) -> str | None:
    """The run a restarted job continues: recorded beside the checkpoints, same store,
    same params (changed hyperparameters make a new run)."""
    if not state.is_file():
        return None
    earlier = json.loads(state.read_text())
    if earlier.get("uri") != public_uri(uri) or earlier.get("params") != params:
        return None
    run_id: str = earlier["run_id"]
    client.get_run(run_id)  # gone (deleted): an error, which turns tracking off, loudly
    return run_id


def _experiment_id(client: Any, uri: str, name: str) -> str:
    """The experiment's id, created when missing (for a SQLite store opened directly,
    with its artifacts beside the database rather than in the working folder)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if sqlite_file(uri) is not None:
        location = (store_artifacts(uri) / name.replace("/", "_")).as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created meanwhile by another job
        return str(client.get_experiment_by_name(name).experiment_id)


def _data_params(indexes: Mapping[str, ChannelIndex], source: str) -> dict[str, str]:
    """The dataset and the imagery's provenance as params."""
    train = indexes["train"]
    params = {
        "data.source": source,
        "data.manifest_sha256": str(train.manifest_sha256),
        "data.tile_shape": "x".join(str(side) for side in train.tile_shape),
        "data.dtype": train.dtype,
    }
    for name, index in indexes.items():
        params[f"data.{name}.tiles"] = str(index.tiles)
        params[f"data.{name}.positive_fraction"] = f"{index.positive_fraction:.6f}"
    for number, imagery in enumerate(train.imagery):
        for key, value in imagery.model_dump(mode="json").items():
            text = ",".join(value) if isinstance(value, list) else str(value)
            params[f"imagery.{number}.{key}"] = text
    return params


def _dataset_input(indexes: Mapping[str, ChannelIndex], source: str) -> Any:
    """The dataset as an MLflow dataset input: source, manifest digest, class balance."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    try:
        with warnings.catch_warnings():  # "file" and "" both name the local source
            warnings.simplefilter("ignore", UserWarning)
            origin = resolve_dataset_source(source)
    except MlflowException:  # a location no registered source reads: keep it as a URL
        origin = HTTPDatasetSource(source)
    digest = str(indexes["train"].manifest_sha256 or "none").removeprefix("sha256:")
    profile = {
        "tiles": {name: index.tiles for name, index in indexes.items()},
        "positive_fraction": {name: index.positive_fraction for name, index in indexes.items()},
    }
    dataset = Dataset(
        name=Path(source.rstrip("/")).name or "dataset",
        digest=digest[:MAX_DIGEST],
        source_type=origin._get_source_type(),
        source=origin.to_json(),
        profile=json.dumps(profile),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


def _signature(input_name: str, output_name: str, bands: int) -> Any:
    """Any batch of any size of window, float32 with `bands` bands, to probabilities."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    pixels = np.dtype(np.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(pixels, (-1, -1, -1, bands), input_name)]),
        outputs=Schema([TensorSpec(pixels, (-1, -1, -1, 1), output_name)]),
    )


# -- runs around jobs (tuning) ------------------------------------------------------


def start_parent_run(
    uri: str,
    experiment: str,
    name: str | None = None,
    params: Mapping[str, object] | None = None,
) -> str:
    """Open a run that jobs attach to as children (`child_environment`); return its id.

    Unlike a job's tracking this raises (MlflowException) when the store fails: the
    caller decides whether to go on without it.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient(uri)
    with quiet(uri):
        run = client.create_run(
            _experiment_id(client, uri, experiment),
            tags={"mlflow.source.name": "earthseg", "earthseg.version": __version__},
            run_name=name,
        )
        if params:
            items = [Param(key, json.dumps(value)) for key, value in params.items()]
            client.log_batch(run.info.run_id, params=items)
    return str(run.info.run_id)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Close a run opened with `start_parent_run`: FINISHED, FAILED or KILLED."""
    from mlflow import MlflowClient

    with quiet(uri):
        MlflowClient(uri).set_terminated(run_id, status)


# -- warnings -----------------------------------------------------------------------


def warn(uri: str, problem: str) -> None:
    """The one line a job prints when tracking fails."""
    shown = public_uri(uri)
    print(
        f"earthseg train: warning: MLflow tracking at {shown} {problem.replace(uri, shown)}; "
        "training goes on without tracking",
        file=sys.stderr,
        flush=True,
    )


def one_line(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= WARNING_LIMIT else text[: WARNING_LIMIT - 3] + "..."


@contextlib.contextmanager
def quiet(uri: str) -> Iterator[None]:
    """Keep noise out of a job's log while it talks to the store: urllib3's line per
    retry (the one warning says what failed), MLflow's warnings that the image has no git
    (for the source's commit), and, for a store that is not an ARN, sagemaker-mlflow's
    request header provider, which warns on every request that the URI does not parse
    as one (aws/sagemaker-mlflow#15, 0.5.0)."""
    names = ["urllib3.connectionpool", "mlflow.utils.git_utils"]
    if not ARN.fullmatch(uri):
        names.append("mlflow.tracking.request_header.registry")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
