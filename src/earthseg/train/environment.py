"""SageMaker's training contract, read through the sagemaker-training toolkit.

Inputs under /opt/ml/input (hyperparameters, channels, resource config), outputs under
/opt/ml/model, /opt/ml/output and /opt/ml/checkpoints. `SAGEMAKER_BASE_DIR` relocates
/opt/ml; the toolkit reads it when first imported, so set it before calling
`read_environment` in a process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earthseg.contracts.channels import REQUIRED, channel_folders
from earthseg.contracts.opt_ml import (
    BASE_DIR_ENV,
    CHECKPOINTS,
    CHECKPOINTS_PER_JOB_ENV,
    FAILURE,
    JOB_NAME_ENV,
    MODEL,
    OUTPUT_DATA,
    base_dir,
)
from earthseg.errors import InputError
from earthseg.train.hyperparameters import Hyperparameters


@dataclass(frozen=True)
class TrainingEnvironment:
    """Where a training job reads and writes, and what it was asked to do."""

    base_dir: Path
    hyperparameters: Hyperparameters
    channels: dict[str, Path]
    hosts: list[str]
    current_host: str
    checkpoint_folder: str = ""  # under checkpoints/: the job's own (CHECKPOINTS_PER_JOB_ENV)

    @property
    def model_dir(self) -> Path:
        return self.base_dir / MODEL

    @property
    def output_data_dir(self) -> Path:
        return self.base_dir / OUTPUT_DATA

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / CHECKPOINTS / self.checkpoint_folder


def failure_file() -> Path:
    """Where SageMaker looks for the reason a job failed (first 1024 characters shown)."""
    return base_dir() / FAILURE


def read_environment() -> TrainingEnvironment:
    """The job's configuration, with a clear error for anything missing or malformed."""
    os.environ.setdefault(BASE_DIR_ENV, str(base_dir()))  # the toolkit invents one otherwise
    from sagemaker_training import environment as toolkit

    root = Path(toolkit.base_dir)
    hyperparameters = Hyperparameters.from_mapping(
        _read_config(toolkit.read_hyperparameters, toolkit.hyperparameters_file_dir, {})
    )
    resources = _read_config(
        toolkit.read_resource_config,
        toolkit.resource_config_file_dir,
        {"current_host": "algo-1", "hosts": ["algo-1"]},
    )
    return TrainingEnvironment(
        base_dir=root,
        hyperparameters=hyperparameters,
        channels=_channels(Path(toolkit.input_dir) / "data"),
        hosts=list(resources.get("hosts", ["algo-1"])),
        current_host=str(resources.get("current_host", "algo-1")),
        checkpoint_folder=_own_checkpoint_folder(),
    )


def _own_checkpoint_folder() -> str:
    """The job's name when its launcher asks each job to keep checkpoints apart."""
    if not os.environ.get(CHECKPOINTS_PER_JOB_ENV):
        return ""
    name = os.environ.get(JOB_NAME_ENV, "")
    if not name or "/" in name or name.startswith("."):
        raise InputError(
            JOB_NAME_ENV,
            f"is {name!r}, not a job name to keep checkpoints under ({CHECKPOINTS_PER_JOB_ENV})",
            "run the job as SageMaker does, with TRAINING_JOB_NAME set, or unset "
            + CHECKPOINTS_PER_JOB_ENV,
        )
    return name


def _read_config(read: Any, path: str, default: dict[str, Any]) -> dict[str, Any]:
    """A config file through the toolkit; missing means defaults (a bare `docker run`)."""
    if not Path(path).exists():
        return default
    try:
        values: dict[str, Any] = read()
    except json.JSONDecodeError as error:
        raise InputError(
            path, f"is not valid JSON ({error})", "write it as a JSON object"
        ) from error
    return values


def _channels(data_dir: Path) -> dict[str, Path]:
    """Channel folders by name; train and validation must be there."""
    channels = channel_folders(data_dir)
    missing = [name for name in REQUIRED if name not in channels]
    if missing:
        raise InputError(
            data_dir,
            f"has no {' or '.join(missing)} channel (found: {', '.join(channels) or 'none'})",
            "pass the folders `earthseg preprocess` wrote as the channels "
            "train, validation and (optionally) test",
        )
    return channels
