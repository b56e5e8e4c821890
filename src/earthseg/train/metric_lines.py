"""The metrics line a training job prints, and the regexes SageMaker reads it with.

SageMaker scrapes metrics from the job's log with the regexes a launcher registers as
`MetricDefinitions`; a local tuner reads the same line back (`parse_metrics_line`) to
judge a trial while it runs. Both sit beside the code that prints the line so they cannot
drift apart, in a module without Keras so that launching a job does not load TensorFlow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# Log keys in the order printed, with their SageMaker metric names.
LOGGED = {
    "loss": "train:loss",
    "val_loss": "validation:loss",
    "val_iou": "validation:iou",
    "val_f1": "validation:f1",
    "val_precision": "validation:precision",
    "val_recall": "validation:recall",
}
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# The whole line: "epoch=N", then key=value pairs, then ";" (values may be nan or inf).
LINE = re.compile(r"epoch=(\d+)((?: \w+=\S+?)+);")
PAIR = re.compile(r"(\w+)=(\S+)")

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "epoch", "Regex": r"epoch=(\d+) loss="},
    # "epoch=N loss=" so that val_loss= never matches the training loss.
    {"Name": "train:loss", "Regex": rf"epoch=\d+ loss={NUMBER}"},
    *({"Name": name, "Regex": rf"{key}={NUMBER}"} for key, name in LOGGED.items() if key != "loss"),
]


def metrics_line(epoch: int, logs: dict[str, Any]) -> str:
    """`epoch=3 loss=0.2100 val_loss=0.2500 val_iou=0.7400 ...;` (keys missing from logs
    left out), epoch counted from 1."""
    values = " ".join(f"{key}={float(logs[key]):.4f}" for key in LOGGED if key in logs)
    return f"epoch={epoch + 1} {values};"


@dataclass(frozen=True)
class EpochMetrics:
    """One metrics line read back: the epoch (from 1) and its values by log key."""

    epoch: int
    values: dict[str, float]


def parse_metrics_line(line: str) -> EpochMetrics | None:
    """The epoch and values of a line `metrics_line` printed (anywhere in `line`, so a
    container log's prefix does not matter); None for any other line. A value that is not
    a number (nan, inf) is kept as a float, never finite."""
    match = LINE.search(line)
    if match is None:
        return None
    values = {}
    for key, text in PAIR.findall(match.group(2)):
        try:
            values[key] = float(text)
        except ValueError:
            values[key] = math.nan
    return EpochMetrics(int(match.group(1)), values)
