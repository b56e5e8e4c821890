"""SageMaker Processing job contract: where a job's inputs and outputs are mounted.

The training image runs `earthseg preprocess` as a Processing job; without explicit
paths the command reads `/opt/ml/processing/input/{images,labels}` and writes
`/opt/ml/processing/output`. `SAGEMAKER_BASE_DIR` relocates /opt/ml for local runs.
"""

from __future__ import annotations

from pathlib import Path

from earthseg.opt_ml import base_dir


def processing_dir() -> Path:
    """/opt/ml/processing, or its relocation."""
    return base_dir() / "processing"


def input_images() -> Path:
    return processing_dir() / "input" / "images"


def input_labels() -> Path:
    return processing_dir() / "input" / "labels"


def output_dir() -> Path:
    return processing_dir() / "output"
