"""The run report's Tuning section: how the model was chosen, when a tuning trained it
(`earthseg tune`, locally or on SageMaker): the leaderboard (earthseg.tune.leaderboard)
as a table, best first, and its plot of the objective against each searched
hyperparameter."""

from __future__ import annotations

import shutil
from pathlib import Path

from earthseg.errors import InputError
from earthseg.report.document import Block, Cell, Code, Figure, Heading, Link, Paragraph, Table
from earthseg.tune.leaderboard import (
    COMPLETE,
    FAILED,
    LEADERBOARD_CSV,
    PRUNED,
    STATES,
    read_leaderboard,
)

FOLDER = "tuning"  # in the report folder
PLOT = f"{FOLDER}/leaderboard.png"
TABLE = f"{FOLDER}/{LEADERBOARD_CSV}"


def tuning_blocks(tuning: Path, written: Path) -> list[Block]:
    """Blocks for the leaderboard in `tuning`; its plot and table are copied into
    `written` (the report folder being written)."""
    board = read_leaderboard(tuning)
    if board is None:
        raise InputError(
            tuning,
            "holds no leaderboard (leaderboard.json)",
            "pass the tuning folder the tuning wrote its leaderboard in, or no tuning",
        )
    (written / FOLDER).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(board.plot, written / PLOT)
    shutil.copyfile(board.table, written / TABLE)
    best, searched = board.best, board.searched
    counts = {state: sum(trial.state == state for trial in board.trials) for state in STATES}
    direction = "highest" if board.maximize else "lowest"
    summary = (
        f"{len(board.trials)} trainings searched {', '.join(searched) or 'nothing'} for the "
        f"{direction} {board.objective} (its last value per trial): {counts[COMPLETE]} "
        f"complete, {counts[PRUNED]} pruned (stopped early, worse than the median of the "
        f"finished trials at the same epoch), {counts[FAILED]} failed."
    )
    if best is not None:
        summary += (
            f" The best, {best.name} ({board.objective} {_number(best.objective)}), trained "
            "the model this report scores."
        )
    rows: list[tuple[Cell, ...]] = [
        (
            str(rank),
            Code(trial.name),
            f"{trial.state}, best" if best is not None and trial.name == best.name else trial.state,
            _number(trial.objective),
            str(trial.epochs),
            *(_value(trial.hyperparameters.get(name)) for name in searched),
            Code(trial.mlflow_run_id) if trial.mlflow_run_id else "",
        )
        for rank, trial in enumerate(board.trials, 1)
    ]
    return [
        Heading("Tuning"),
        Paragraph((summary, " The table: ", Link(LEADERBOARD_CSV, TABLE), ".")),
        Table(
            ("#", "trial", "state", board.objective, "epochs", *searched, "MLflow run"),
            tuple(rows),
        ),
        Figure(
            PLOT,
            f"{board.objective} against each searched hyperparameter: complete trials filled, "
            "pruned ones hollow at their last value, failed ones crossed; the best starred.",
        ),
    ]


def _number(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4f}"


def _value(value: object) -> Cell:
    if value is None:
        return ""
    return Code(f"{value:.4g}" if isinstance(value, float) else str(value))
