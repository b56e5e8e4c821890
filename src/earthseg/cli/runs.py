"""`earthseg runs`: the tracked training runs, listed and compared."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earthseg.errors import InputError
from earthseg.tracked_runs import (
    DEFAULT_LIMIT,
    DEFAULT_RUNS,
    DIGEST_PARAM,
    KEY_HYPERPARAMETERS,
    KEY_METRICS,
    MISSING,
    Comparison,
    RunStore,
    TrackedRun,
    compare,
    locate_store,
    metric_text,
    open_store,
    param_text,
    run_table,
    short_digest,
    started_text,
)

GAP = "  "


def add_commands(commands: Any) -> None:
    runs = commands.add_parser(
        "runs",
        help="the tracked training runs: dataset, key hyperparameters, validation and test "
        "IoU; `runs compare A B`: what differs between two",
        description="Lists the runs of an MLflow tracking store, newest first: the training "
        f"job, the dataset's manifest digest, {', '.join(KEY_HYPERPARAMETERS)} and any other "
        "hyperparameter the listed runs differ in, the epochs run, validation and test IoU, "
        "and a tuning trial's parent run. The store: --tracking-uri, else the run config's, "
        f"else --runs, else $MLFLOW_TRACKING_URI, else {DEFAULT_RUNS}/mlflow.db.",
    )
    _add_store_options(runs, None)
    runs.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"list N runs (default: {DEFAULT_LIMIT})",
    )
    runs.add_argument(
        "--sort",
        metavar="METRIC",
        help="best first by this metric, e.g. validation_iou (highest first; lowest for a loss)",
    )
    runs.add_argument("--json", action="store_true", help="a JSON list of the runs instead")
    runs.set_defaults(run=list_runs)
    actions = runs.add_subparsers(dest="action", metavar="ACTION")
    compare = actions.add_parser(
        "compare",
        help="what differs between runs A and B: params, final metrics (B-A), datasets",
        description="A and B: a run id, its first characters (4 or more) or a run name (the "
        "training job's). Params the runs share are counted, not listed.",
    )
    compare.add_argument("a", metavar="A", help="the first run")
    compare.add_argument("b", metavar="B", help="the second run")
    # Given before `compare` or after it: the value given before survives.
    _add_store_options(compare, argparse.SUPPRESS)
    compare.set_defaults(run=compare_runs)


def _add_store_options(parser: argparse.ArgumentParser, default: Any) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--tracking-uri",
        default=default,
        metavar="URI",
        help="sqlite:///path/mlflow.db, http(s)://host:port or a SageMaker managed MLflow ARN",
    )
    where.add_argument(
        "--config", type=Path, default=default, help="a run's YAML file: its tracking: section"
    )
    where.add_argument(
        "--runs",
        type=Path,
        default=default,
        metavar="FOLDER",
        help="a runs folder: its local store, FOLDER/mlflow.db (default: runs)",
    )
    parser.add_argument(
        "--experiment",
        default=default,
        metavar="NAME",
        help="only this experiment (default: all, or the config's)",
    )


def list_runs(args: argparse.Namespace) -> None:
    store = _store(args)
    found = store.runs(args.limit, args.sort)
    if args.json:
        print(json.dumps([run.as_json() for run in found], indent=2))
        return
    if not found:
        print(f"no tracked runs in {_scope(store)}")
        return
    table = run_table(found, [*KEY_METRICS, *([args.sort] if args.sort else [])])
    for line in aligned([table.columns, *table.rows]):
        print(line)


def compare_runs(args: argparse.Namespace) -> None:
    store = _store(args)
    a, b = store.find(args.a, "A"), store.find(args.b, "B")
    if a.run_id == b.run_id:
        raise InputError("A and B", f"both name run {a.describe()}", "give two different runs")
    for line in comparison_lines(compare(a, b)):
        print(line)


def comparison_lines(comparison: Comparison) -> list[str]:
    """The comparison as text: the runs, the params that differ (the rest counted), the
    final metrics with B-A, the datasets."""
    a, b = comparison.a, comparison.b
    lines = aligned([["A", *_heading(a)], ["B", *_heading(b)]])
    same = comparison.same_params
    lines.append("")
    if comparison.params:
        rows = [["params", "A", "B"]]
        rows += [
            [f"  {d.name}", _param(d.name, d.a), _param(d.name, d.b)] for d in comparison.params
        ]
        lines += aligned(rows)
        if same:
            lines.append(f"  {_count(same, 'param')} the same")
    else:
        lines.append(f"params: all {_count(same, 'param')} the same")
    lines.append("")
    rows = [["metrics", "A", "B", "B-A"]]
    first, second = a.epochs_run, b.epochs_run
    change = MISSING if first is None or second is None else f"{second - first:+d}"
    rows.append(["  epochs run", _integer(first), _integer(second), change])
    for metric in comparison.metrics:
        delta = MISSING if metric.delta is None else f"{metric.delta:+.4f}"
        rows.append([f"  {metric.name}", metric_text(metric.a), metric_text(metric.b), delta])
    lines += aligned(rows)
    lines.append("")
    lines += _dataset_lines(comparison)
    return lines


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines, each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    return [
        GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        for row in rows
    ]


def _store(args: argparse.Namespace) -> RunStore:
    given = [args.tracking_uri, args.config, args.runs]
    if sum(value is not None for value in given) > 1:  # one before `compare`, one after
        raise InputError(
            "--tracking-uri, --config, --runs", "name the store twice", "give one of them"
        )
    return open_store(locate_store(args.tracking_uri, args.config, args.runs, args.experiment))


def _scope(store: RunStore) -> str:
    experiment = store.location.experiment
    return f"{f'experiment {experiment}' if experiment else 'any experiment'} at {store.shown_uri}"


def _heading(run: TrackedRun) -> list[str]:
    return [
        run.run_id,
        run.name or MISSING,
        f"experiment {run.experiment}",
        f"started {started_text(run)} UTC",
        run.status,
    ]


def _param(name: str, value: str | None) -> str:
    """A param's cell; a digest shortened (the dataset lines give it whole)."""
    return short_digest(value) if name == DIGEST_PARAM and value else param_text(value)


def _dataset_lines(comparison: Comparison) -> list[str]:
    a, b = comparison.a, comparison.b
    if comparison.same_dataset:
        return [f"dataset: the same (manifest {a.dataset_digest}, {a.dataset_source or MISSING})"]
    verdict = "different" if comparison.same_dataset is False else "not recorded by both runs"
    rows = [
        [f"  {label}", f"manifest {run.dataset_digest or MISSING}", run.dataset_source or MISSING]
        for label, run in (("A", a), ("B", b))
    ]
    return [f"dataset: {verdict}", *aligned(rows)]


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def _integer(value: int | None) -> str:
    return MISSING if value is None else str(value)
