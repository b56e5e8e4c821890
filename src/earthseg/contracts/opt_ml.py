"""Where SageMaker mounts a job's files: /opt/ml in a container, or, for runs on a host,
the folder SAGEMAKER_BASE_DIR names.

The sagemaker-training toolkit honours the same variable, so local runs, tests and the
training, Processing and serving contracts all relocate /opt/ml the same way. Launchers
name the paths inside a container (`in_container`), which never move.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
MODEL = "model"  # the model artifact: written by training, served by inference
CHECKPOINTS = "checkpoints"  # synced to S3 while a job runs; a restarted job resumes from it
OUTPUT_DATA = "output/data"  # a job's reports: tarred to output.tar.gz
FAILURE = "output/failure"  # why a job failed: SageMaker shows its first 1024 characters
# Set by a launcher whose jobs share one checkpoint S3 URI (a tuning job's trials): each
# job then keeps its checkpoints in checkpoints/<TRAINING_JOB_NAME>/, so a trial restarted
# after a spot interruption resumes its own training and never another trial's.
CHECKPOINTS_PER_JOB_ENV = "EARTHSEG_CHECKPOINTS_PER_JOB"
JOB_NAME_ENV = "TRAINING_JOB_NAME"  # set by SageMaker (and the SDK's local mode) in a job


def base_dir() -> Path:
    """/opt/ml, or its relocation."""
    return Path(os.environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR))


def in_container(*parts: str) -> str:
    """A path under /opt/ml as a container sees it: `in_container(MODEL)` is /opt/ml/model."""
    return str(PurePosixPath(DEFAULT_BASE_DIR, *parts))
