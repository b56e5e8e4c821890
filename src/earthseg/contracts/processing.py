"""SageMaker Processing job contract: where a job's inputs and outputs are mounted.

The training image runs `earthseg preprocess` as a Processing job: the export's images
and labels at /opt/ml/processing/input/{images,labels}, the dataset written to
/opt/ml/processing/output. Launchers (a Processing job on SageMaker, a local container)
mount there (`container_input`, `container_output`); the command, without explicit paths,
reads there (`input_dir`, `output_dir`), relocated by SAGEMAKER_BASE_DIR for local runs.
"""

from __future__ import annotations

from pathlib import Path

from earthseg.contracts.opt_ml import base_dir, in_container

PROCESSING = "processing"
INPUTS = ("images", "labels")  # the export's two folders
OUTPUT = "output"  # the dataset


def input_dir(name: str) -> Path:
    """An input's mount point inside the job: /opt/ml/processing/input/<name>."""
    return base_dir() / PROCESSING / "input" / name


def output_dir() -> Path:
    """The output's mount point inside the job: /opt/ml/processing/output."""
    return base_dir() / PROCESSING / OUTPUT


def container_input(name: str) -> str:
    """Where a launcher mounts input `name` in the container."""
    return in_container(PROCESSING, "input", name)


def container_output() -> str:
    """Where a launcher mounts the output folder in the container."""
    return in_container(PROCESSING, OUTPUT)
