"""Where SageMaker mounts a job's files: /opt/ml, or the folder SAGEMAKER_BASE_DIR names.

The sagemaker-training toolkit honours the same variable, so local runs, tests and the
training and Processing contracts all relocate /opt/ml the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"


def base_dir() -> Path:
    """/opt/ml, or its relocation."""
    return Path(os.environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR))
