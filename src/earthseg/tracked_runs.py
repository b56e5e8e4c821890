"""The training runs in an MLflow tracking store, read back to be listed and compared.

What a run holds is `earthseg.train.tracking`'s contract: params = every hyperparameter
(JSON-encoded) + `data.*` + `imagery.<n>.*`; per-epoch metrics at step = epoch; final
metrics (`threshold`, `validation_iou`, ...) at the last epoch's step; the tag
`mlflow.parentRunId` on tuning trials; the training job's name as the run's name. This
module reads that back so that `earthseg runs` answers "which run was better, and what
was different about it" without opening the UI. It returns data; the CLI prints.

The store is found as a training job is told where to track (`locate_store`): a tracking
URI, a run config's `tracking:`, `$MLFLOW_TRACKING_URI`, or the local store of a runs
folder (`<runs>/mlflow.db`, where `earthseg pipeline --local` tracks).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from earthseg.errors import InputError
from earthseg.train.metric_lines import LOGGED
from earthseg.train.tracking import (
    JOB_ENVIRONMENT,
    LOCAL_STORE,
    PARENT_TAG,
    TRACKING_URI_ENV,
    check_tracking_uri,
    final_metric,
    local_store_uri,
    one_line,
    public_uri,
    quiet,
    sqlite_file,
)

DEFAULT_RUNS = Path("runs")
DEFAULT_LIMIT = 20
# Shown for every run; any other hyperparameter only where the listed runs differ in it.
KEY_HYPERPARAMETERS = ("learning_rate", "batch_size", "filters", "depth", "epochs")
KEY_METRICS = (final_metric("validation", "iou"), final_metric("test", "iou"))
DATA_PREFIXES = ("data.", "imagery.")  # params about the dataset; the rest are hyperparameters
DIGEST_PARAM = "data.manifest_sha256"
SOURCE_PARAM = "data.source"
MIN_PREFIX = 4  # the shortest run id prefix taken (git's habit)
SHORT_ID = 8
SHORT_DIGEST = 12
MISSING = "-"
PAGE = 1000  # MLflow's default page of experiments
RUN_ID_PREFIX = re.compile(r"[0-9a-f]+")
CREDENTIALS = re.compile(r"(?<=//)[^/@\s]+@")  # user:password@ in a URL
STORE_FIX = (
    "give --tracking-uri (sqlite:///path/mlflow.db, http(s)://host:port or a SageMaker "
    "managed MLflow ARN), --config with the run's YAML file, or --runs with the folder "
    "that holds a tracked `earthseg pipeline --local` run"
)


@dataclass(frozen=True)
class StoreLocation:
    """Where the runs are: a tracking URI, the experiment to look in (None: all), and what
    named them (the option or file an error should point at)."""

    uri: str
    experiment: str | None
    source: str
    experiment_source: str = "--experiment"


@dataclass(frozen=True)
class TrackedRun:
    """One run as `earthseg runs` shows it: params as logged (text), the latest value of
    each metric, the epochs run (the last step of the per-epoch metrics)."""

    run_id: str
    name: str | None
    experiment: str
    status: str
    started: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    epochs_run: int | None
    parent: str | None

    @property
    def hyperparameters(self) -> dict[str, str]:
        return {k: v for k, v in self.params.items() if not k.startswith(DATA_PREFIXES)}

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics logged once at the end (`threshold`, `<split>_<score>`), not per epoch."""
        return {k: v for k, v in self.metrics.items() if k not in LOGGED}

    @property
    def dataset_digest(self) -> str | None:
        """The manifest's digest, `sha256:<hex>` (None for a run without one)."""
        value = self.params.get(DIGEST_PARAM)
        return None if value in (None, "None") else value

    @property
    def dataset_source(self) -> str | None:
        return self.params.get(SOURCE_PARAM)

    def as_json(self) -> dict[str, Any]:
        """The run for machines: hyperparameters decoded to JSON values, times in ISO 8601."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "experiment": self.experiment,
            "status": self.status,
            "started": self.started.isoformat() if self.started else None,
            "dataset": {"digest": self.dataset_digest, "source": self.dataset_source},
            "hyperparameters": {k: _decoded(v) for k, v in self.hyperparameters.items()},
            "epochs_run": self.epochs_run,
            "metrics": self.metrics,
            "parent": self.parent,
        }

    def describe(self) -> str:
        """Short id, name and start: how a run is named in messages."""
        return f"{self.run_id[:SHORT_ID]} {self.name or MISSING} (started {started_text(self)} UTC)"


@dataclass(frozen=True)
class Table:
    """The listing's cells, as text ("-" where a run has no value)."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class ParamDifference:
    name: str
    a: str | None
    b: str | None


@dataclass(frozen=True)
class MetricDifference:
    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        """B - A, when both runs have the metric."""
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class Comparison:
    """What differs between two runs: params (hyperparameters first, then data.* and
    imagery.*), how many params are the same, the final metrics, the datasets."""

    a: TrackedRun
    b: TrackedRun
    params: list[ParamDifference]
    same_params: int
    metrics: list[MetricDifference]

    @property
    def same_dataset(self) -> bool | None:
        """Whether both trained on the same manifest (None: a run does not record it)."""
        if self.a.dataset_digest is None or self.b.dataset_digest is None:
            return None
        return self.a.dataset_digest == self.b.dataset_digest


@dataclass
class RunStore:
    """An opened tracking store, scoped to one experiment or all of them."""

    location: StoreLocation
    client: Any  # an MlflowClient
    experiments: dict[str, str]  # id -> name, those looked in

    @property
    def shown_uri(self) -> str:
        return public_uri(self.location.uri)

    def runs(self, limit: int = DEFAULT_LIMIT, sort: str | None = None) -> list[TrackedRun]:
        """The newest `limit` runs, or with `sort` the best by that metric (highest first,
        lowest for a loss; runs without it last)."""
        if limit < 1:
            raise InputError("--limit", f"is {limit}", "give 1 or more runs to list")
        order = ["attributes.start_time DESC"]
        if sort:
            direction = "ASC" if sort.endswith("loss") else "DESC"
            order.insert(0, f"metrics.`{sort}` {direction}")
        found = self._search("", limit, order, "--sort" if sort else self.location.source)
        if sort and found and sort not in found[0].metrics:
            known = sorted({key for run in found for key in run.metrics})
            raise InputError(
                "--sort",
                f"no listed run has the metric {sort!r}",
                f"give one of: {', '.join(known) or 'none are recorded'}",
            )
        return found

    def find(self, reference: str, source: str) -> TrackedRun:
        """The run `reference` names: its id, a unique prefix of it (4+ characters), or its
        name (the training job's); `source` is the argument an error names."""
        wanted = reference.strip()
        matches: dict[str, TrackedRun] = {}
        prefix = wanted.lower()
        if len(prefix) >= MIN_PREFIX and RUN_ID_PREFIX.fullmatch(prefix):
            for run in self._search(f"attributes.run_id LIKE '{prefix}%'", PAGE, None, source):
                matches[run.run_id] = run
        quote = '"' if "'" in wanted else "'"
        for run in self._search(
            f"attributes.run_name = {quote}{wanted}{quote}", PAGE, None, source
        ):
            matches[run.run_id] = run
        if len(matches) == 1:
            return next(iter(matches.values()))
        if not matches:
            short = " (an id prefix needs 4 characters or more)" if len(wanted) < MIN_PREFIX else ""
            raise InputError(
                source,
                f"no run in {self._scope()} has the id or name {wanted!r}{short}",
                "give a run id, its first characters or a run name, as `earthseg runs` lists them",
            )
        candidates = "; ".join(run.describe() for run in matches.values())
        raise InputError(
            source,
            f"{wanted!r} names {len(matches)} runs: {candidates}",
            "give more characters of the run id",
        )

    def _search(
        self, where: str, limit: int, order: list[str] | None, source: str
    ) -> list[TrackedRun]:
        from mlflow.exceptions import MlflowException

        try:
            with quiet(self.location.uri):
                found = self.client.search_runs(
                    list(self.experiments), where, max_results=limit, order_by=order
                )
        except MlflowException as error:
            raise InputError(source, _shown(error), "check the value given") from None
        return [self._tracked(run) for run in found]

    def _tracked(self, run: Any) -> TrackedRun:
        info, data = run.info, run.data
        steps = [m.step for m in data.to_proto().metrics if m.key in LOGGED]
        return TrackedRun(
            run_id=info.run_id,
            name=info.run_name,
            experiment=self.experiments.get(info.experiment_id, info.experiment_id),
            status=info.status,
            started=(
                datetime.fromtimestamp(info.start_time / 1000, UTC) if info.start_time else None
            ),
            params=dict(data.params),
            metrics=dict(data.metrics),
            epochs_run=max(steps) if steps else None,
            parent=data.tags.get(PARENT_TAG),
        )

    def _scope(self) -> str:
        where = (
            f"experiment {self.location.experiment}" if self.location.experiment else "the store"
        )
        return f"{where} at {self.shown_uri}"


def locate_store(
    tracking_uri: str | None = None,
    config: Path | None = None,
    runs: Path | None = None,
    experiment: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> StoreLocation:
    """Where to look, first given first: a tracking URI, a run config's tracking (its
    uri, else $MLFLOW_TRACKING_URI, else its runs folder's store; its experiment), a runs
    folder, $MLFLOW_TRACKING_URI, the store in `runs/`. `experiment` overrides."""
    if tracking_uri:
        return StoreLocation(
            check_tracking_uri(tracking_uri, "--tracking-uri"), experiment, "--tracking-uri"
        )
    if config is not None:
        from earthseg.pipeline.config import load_config

        run = load_config(config)
        uri = run.tracking_uri(local=True)
        assert uri is not None  # a local run always has a store
        named = "--experiment" if experiment else f"{config} (tracking.experiment, else name)"
        return StoreLocation(uri, experiment or run.experiment, str(config), named)
    if runs is None and environ.get(TRACKING_URI_ENV):
        uri = environ[TRACKING_URI_ENV]
        return StoreLocation(
            check_tracking_uri(uri, TRACKING_URI_ENV), experiment, TRACKING_URI_ENV
        )
    folder = runs or DEFAULT_RUNS
    return StoreLocation(local_store_uri(folder), experiment, str(folder))


def open_store(location: StoreLocation) -> RunStore:
    """The store at `location`, reached, with its experiments; an InputError naming the
    location when it does not exist, cannot be reached or has no such experiment."""
    database = sqlite_file(location.uri)
    if database is not None and not database.is_file():  # MLflow would create it
        raise InputError(
            location.source,
            f"holds no tracking store: {database} does not exist "
            f"(`earthseg pipeline --local` makes {LOCAL_STORE} in the runs folder)",
            STORE_FIX,
        )
    for name, value in JOB_ENVIRONMENT.items():  # a store that is down: seconds, not minutes
        os.environ.setdefault(name, value)
    try:
        with quiet(location.uri):
            from mlflow import MlflowClient

            client = MlflowClient(location.uri)
            experiments = _experiments(client)
    except Exception as error:  # whatever the store, the network or the plugin did
        raise InputError(
            location.source,
            f"the tracking store {public_uri(location.uri)} cannot be read ({_shown(error)})",
            f"check that it runs and that this machine can reach it, or {STORE_FIX}",
        ) from None
    if location.experiment is not None:
        ids = [key for key, name in experiments.items() if name == location.experiment]
        if not ids:
            raise InputError(
                location.experiment_source,
                f"no experiment {location.experiment!r} at {public_uri(location.uri)}",
                f"give one of: {', '.join(sorted(experiments.values()))}",
            )
        experiments = {ids[0]: location.experiment}
    return RunStore(location, client, experiments)


def run_table(runs: Sequence[TrackedRun], metrics: Iterable[str] = KEY_METRICS) -> Table:
    """The listing: who, when, on what data, with which key hyperparameters (and any other
    the runs differ in), how far it trained, how well (`metrics`), the tuning parent."""
    others = sorted(
        name
        for name in {name for run in runs for name in run.hyperparameters}
        if name not in KEY_HYPERPARAMETERS
        and len({run.params[name] for run in runs if name in run.params}) > 1
    )
    hyperparameters = [*KEY_HYPERPARAMETERS, *others]
    shown = list(dict.fromkeys(metrics))
    columns = [
        "run",
        "name",
        "started (UTC)",
        "status",
        "experiment",
        "dataset",
        *hyperparameters,
        "epochs run",
        *shown,
        "parent",
    ]
    rows = [
        [
            run.run_id[:SHORT_ID],
            run.name or MISSING,
            started_text(run),
            run.status,
            run.experiment,
            short_digest(run.dataset_digest),
            *(param_text(run.params.get(name)) for name in hyperparameters),
            MISSING if run.epochs_run is None else str(run.epochs_run),
            *(metric_text(run.metrics.get(name)) for name in shown),
            run.parent[:SHORT_ID] if run.parent else MISSING,
        ]
        for run in runs
    ]
    return Table(columns, rows)


def compare(a: TrackedRun, b: TrackedRun) -> Comparison:
    """What differs between runs `a` and `b`."""
    names = sorted(set(a.params) | set(b.params), key=_param_order)
    differ = [name for name in names if a.params.get(name) != b.params.get(name)]
    finals = sorted(set(a.final_metrics) | set(b.final_metrics), key=_metric_order)
    return Comparison(
        a=a,
        b=b,
        params=[ParamDifference(n, a.params.get(n), b.params.get(n)) for n in differ],
        same_params=len(names) - len(differ),
        metrics=[MetricDifference(n, a.metrics.get(n), b.metrics.get(n)) for n in finals],
    )


def param_text(value: str | None) -> str:
    """A param as shown: hyperparameters are JSON-encoded, a JSON string shows bare."""
    if value is None:
        return MISSING
    decoded = _decoded(value)
    return decoded if isinstance(decoded, str) else value


def metric_text(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"


def short_digest(digest: str | None) -> str:
    return MISSING if digest is None else digest.removeprefix("sha256:")[:SHORT_DIGEST]


def started_text(run: TrackedRun) -> str:
    """When the run started, UTC, to the minute."""
    return run.started.strftime("%Y-%m-%d %H:%M") if run.started else MISSING


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _param_order(name: str) -> tuple[int, int, list[Any]]:
    """Key hyperparameters in their order, other hyperparameters, data.*, imagery.* (by
    the scene's number, naturally: imagery.10 after imagery.2)."""
    if name.startswith("imagery."):
        group = 3
    elif name.startswith("data."):
        group = 2
    else:
        group = 0 if name in KEY_HYPERPARAMETERS else 1
    key = KEY_HYPERPARAMETERS.index(name) if group == 0 else 0
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, key, natural


def _metric_order(name: str) -> tuple[int, str]:
    return (KEY_METRICS.index(name) if name in KEY_METRICS else len(KEY_METRICS), name)


def _shown(error: BaseException) -> str:
    """An error on one line, without the credentials of any URL it quotes."""
    return CREDENTIALS.sub("", one_line(error))


def _experiments(client: Any) -> dict[str, str]:
    """Every active experiment of the store, id -> name."""
    found: dict[str, str] = {}
    token = None
    while True:
        page = client.search_experiments(max_results=PAGE, page_token=token)
        found.update({experiment.experiment_id: experiment.name for experiment in page})
        token = page.token
        if not token:
            return found
