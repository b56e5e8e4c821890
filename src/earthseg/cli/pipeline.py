"""`earthseg pipeline`: the whole chain from an export, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    pipeline = commands.add_parser(
        "pipeline",
        help="the whole chain from an export: preprocess, train, deploy, invoke on the test "
        "scenes, report; resumable",
        description="Runs on SageMaker, or with --local in the same images in local "
        "containers. run.yaml at the repository root documents every option. A run writes "
        "one folder (run_dir); rerunning the command resumes it, keeping finished stages.",
    )
    pipeline.add_argument("--config", type=Path, required=True, help="the run's YAML file")
    pipeline.add_argument(
        "--local",
        action="store_true",
        help="local containers and folders instead of SageMaker and S3",
    )
    pipeline.set_defaults(run=run_pipeline)


def run_pipeline(args: argparse.Namespace) -> None:
    from earthseg.pipeline.stages import run_config

    report = run_config(args.config, args.local)
    print(f"open the report: {report / 'report.html'}")
