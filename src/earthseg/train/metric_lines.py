"""The metrics line a training job prints, and the regexes SageMaker reads it with.

SageMaker scrapes metrics from the job's log with the regexes a launcher registers as
`MetricDefinitions`; they sit beside the code that prints the line so the two cannot
drift apart, in a module without Keras so that launching a job does not load TensorFlow.
"""

from __future__ import annotations

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
