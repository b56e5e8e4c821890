"""A tuning's leaderboard: its trials ranked by the objective, as a table (CSV, JSON) and
a plot of the objective against each searched hyperparameter.

One contract for both tuners: the local one (earthseg.tune.local) and the SageMaker one,
which reads its trials from the tuning job. The run's report shows the leaderboard in
its Tuning section (`read_leaderboard`). Ranking: complete trials by their objective,
then pruned ones (stopped early: their last value is shown and plotted, but they never
count as best, since they have no model), then failed ones.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_file

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
STATES = (COMPLETE, PRUNED, FAILED)
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_PNG = "leaderboard.png"
PANELS_PER_ROW = 4
LOG_SPAN = 50.0  # positive values spanning this factor or more are plotted on a log axis


@dataclass(frozen=True)
class Trial:
    """One training job of a tuning, as the leaderboard shows it."""

    name: str  # "trial-003", or a SageMaker training job name
    hyperparameters: dict[str, Any]  # the searched values this trial got
    objective: float | None  # its objective value (None: no epoch finished)
    state: str  # "complete", "pruned" or "failed"
    epochs: int  # epochs it ran (0 if unknown)
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class Leaderboard:
    """A written leaderboard, read back: trials best first."""

    folder: Path
    objective: str
    maximize: bool
    trials: tuple[Trial, ...]

    @property
    def best(self) -> Trial | None:
        return best_trial(self.trials, self.maximize)

    @property
    def plot(self) -> Path:
        return self.folder / LEADERBOARD_PNG

    @property
    def table(self) -> Path:
        return self.folder / LEADERBOARD_CSV

    @property
    def searched(self) -> list[str]:
        """The hyperparameters the trials searched, in the order they first appear."""
        return _searched(self.trials)


def best_trial(trials: Sequence[Trial], maximize: bool) -> Trial | None:
    """The complete trial with the best objective (the first of equals); None when no
    trial completed with a value."""
    complete = [trial for trial in trials if trial.state == COMPLETE and _value(trial) is not None]
    if not complete:
        return None
    return min(complete, key=lambda trial: _sort_value(trial, maximize))


def ranked(trials: Sequence[Trial], maximize: bool) -> list[Trial]:
    """Complete trials best first, then pruned ones by their last value, then failed."""

    def key(trial: Trial) -> tuple[int, int, float]:
        value = _value(trial)
        return (
            STATES.index(trial.state) if trial.state in STATES else len(STATES),
            value is None,
            _sort_value(trial, maximize),
        )

    return sorted(trials, key=key)  # stable: equals keep their order


def write_leaderboard(
    folder: Path, trials: Sequence[Trial], objective: str, maximize: bool
) -> Path:
    """leaderboard.csv + leaderboard.json + leaderboard.png (objective against each searched
    hyperparameter, pruned/failed marked) in `folder`; returns folder."""
    folder = Path(folder)
    unknown = sorted({trial.state for trial in trials} - set(STATES))
    if unknown:
        raise ValueError(f"trial states {unknown} are not among {STATES}")
    order = [replace(trial, objective=_value(trial)) for trial in ranked(trials, maximize)]
    best = best_trial(order, maximize)
    with atomic_file(folder / LEADERBOARD_PNG) as tmp:
        _plot(order, objective, maximize, best, tmp)
    with atomic_file(folder / LEADERBOARD_CSV) as tmp:
        _write_csv(order, objective, tmp)
    record = {
        "objective": objective,
        "maximize": maximize,
        "best": best.name if best else None,
        "trials": [asdict(trial) for trial in order],
    }
    with atomic_file(folder / LEADERBOARD_JSON) as tmp:  # last: it marks a whole leaderboard
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return folder


def read_leaderboard(folder: Path) -> Leaderboard | None:
    """The leaderboard written in `folder`, or None when there is none."""
    path = Path(folder) / LEADERBOARD_JSON
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return Leaderboard(
        folder=Path(folder),
        objective=record["objective"],
        maximize=record["maximize"],
        trials=tuple(Trial(**item) for item in record["trials"]),
    )


def _value(trial: Trial) -> float | None:
    """The trial's objective when it is a finite number."""
    value = trial.objective
    return float(value) if value is not None and math.isfinite(value) else None


def _sort_value(trial: Trial, maximize: bool) -> float:
    value = _value(trial)
    if value is None:
        return math.inf
    return -value if maximize else value


def _searched(trials: Sequence[Trial]) -> list[str]:
    names: dict[str, None] = {}
    for trial in trials:
        names.update(dict.fromkeys(trial.hyperparameters))
    return list(names)


def _write_csv(trials: Sequence[Trial], objective: str, path: Path) -> None:
    searched = _searched(trials)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "trial", "state", objective, "epochs", *searched, "mlflow_run_id"])
        for rank, trial in enumerate(trials, 1):
            writer.writerow([
                rank,
                trial.name,
                trial.state,
                "" if trial.objective is None else trial.objective,
                trial.epochs,
                *(_cell(trial.hyperparameters.get(name)) for name in searched),
                trial.mlflow_run_id or "",
            ])  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _plot(
    trials: Sequence[Trial], objective: str, maximize: bool, best: Trial | None, path: Path
) -> None:
    """One panel per searched hyperparameter: complete trials filled, pruned ones hollow
    at their last value, failed ones as crosses along the bottom, the best as a star."""
    from matplotlib.transforms import blended_transform_factory

    from earthseg.train.report import pyplot

    plt = pyplot()
    searched = _searched(trials) or ["trial"]
    columns = min(PANELS_PER_ROW, len(searched))
    rows = math.ceil(len(searched) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False, sharey=True
    )
    styles: dict[str, dict[str, Any]] = {
        COMPLETE: {"marker": "o", "color": "tab:blue", "label": "complete"},
        PRUNED: {
            "marker": "o",
            "facecolors": "none",
            "edgecolors": "tab:orange",
            "label": "pruned (last value)",
        },
        FAILED: {"marker": "x", "color": "tab:red", "label": "failed"},
    }
    no_value = {"marker": "x", "color": "tab:gray", "label": "no epoch finished"}
    for number, name in enumerate(searched):
        axis = axes[number // columns][number % columns]
        values = [
            index if name == "trial" else trial.hyperparameters.get(name, "-")
            for index, trial in enumerate(trials, 1)
        ]
        positions, ticks = _positions(values)
        along_bottom = blended_transform_factory(axis.transData, axis.transAxes)
        for state in STATES:
            group = [
                (position, trial)
                for position, trial in zip(positions, trials, strict=True)
                if trial.state == state
            ]
            valued = [
                (position, trial.objective)
                for position, trial in group
                if trial.objective is not None
            ]
            if valued:
                axis.scatter(*zip(*valued, strict=True), **styles[state])
            lost = [position for position, trial in group if trial.objective is None]
            if lost:
                axis.scatter(lost, [0.03] * len(lost), transform=along_bottom, **no_value)
        if best is not None and best.objective is not None:
            index = next(i for i, trial in enumerate(trials) if trial.name == best.name)
            axis.scatter(
                [positions[index]],
                [best.objective],
                marker="*",
                s=220,
                color="gold",
                edgecolors="black",
                zorder=3,
                label=f"best ({best.name})",
            )
        if ticks is not None:
            axis.set_xticks(range(len(ticks)), ticks)
        elif _log_axis(values):
            axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.grid(alpha=0.3)
        if number % columns == 0:
            axis.set_ylabel(objective)
    for number in range(len(searched), rows * columns):
        axes[number // columns][number % columns].set_visible(False)
    handles: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    direction = "maximised" if maximize else "minimised"
    figure.suptitle(f"{objective} ({direction}) of {len(trials)} trials")
    figure.legend(handles.values(), handles.keys(), loc="lower center", ncols=len(handles))
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def _positions(values: Sequence[Any]) -> tuple[list[Any], list[str] | None]:
    """Numbers as they are; anything else (text, booleans) as evenly spaced categories."""
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return list(values), None
    ticks = list(dict.fromkeys(str(value) for value in values))
    return [ticks.index(str(value)) for value in values], ticks


def _log_axis(values: Sequence[Any]) -> bool:
    numbers = [float(value) for value in values]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= LOG_SPAN
