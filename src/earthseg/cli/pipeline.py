"""`earthseg pipeline`: the whole chain from an export, as a SageMaker Pipeline or locally."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from earthseg.errors import InputError


def add_commands(commands: Any) -> None:
    pipeline = commands.add_parser(
        "pipeline",
        help="the whole chain from an export: on SageMaker a SageMaker Pipeline (prepare, "
        "train, evaluate, register), with --local every stage in local containers",
        description="On SageMaker the run's SageMaker Pipeline is upserted under the run's "
        "name and an execution started and followed; its results come back to the run "
        "folder (run_dir) with the report. With --local, the same images run each stage in "
        "local containers, resumably. run.yaml at the repository root documents every "
        "option.",
    )
    pipeline.add_argument("--config", type=Path, help="the run's YAML file")
    where = pipeline.add_mutually_exclusive_group()
    where.add_argument(
        "--local",
        action="store_true",
        help="local containers and folders instead of SageMaker and S3",
    )
    where.add_argument(
        "--dry-run",
        action="store_true",
        help="write the SageMaker Pipeline definition to run_dir/pipeline.json and stop: "
        "nothing is uploaded, created or paid for",
    )
    where.add_argument(
        "--no-wait",
        action="store_true",
        help="start the execution and return (follow it later with --follow)",
    )
    where.add_argument(
        "--follow",
        action="store_true",
        help="follow the run's latest execution to its end and bring its results home",
    )
    where.add_argument(
        "--status",
        metavar="RUN",
        help="print the latest execution of pipeline RUN, step by step (no config needed)",
    )
    pipeline.add_argument("--region", help="AWS region, with --status (default: the AWS config's)")
    pipeline.add_argument("--profile", help="AWS profile, with --status")
    pipeline.set_defaults(run=run_pipeline)


def run_pipeline(args: argparse.Namespace) -> None:
    if args.status:
        from earthseg.aws.pipeline_run import status_lines
        from earthseg.aws.session import open_session

        for line in status_lines(open_session(args.region, args.profile), args.status):
            print(line)
        return
    if args.config is None:
        raise InputError("--config", "is missing", "give the run's YAML file (or --status RUN)")
    if args.local:
        from earthseg.pipeline.stages import run_config

        print(f"open the report: {run_config(args.config) / 'report.html'}")
        return
    from earthseg.aws.pipeline_run import follow_and_fetch, run_on_sagemaker
    from earthseg.pipeline.config import load_config

    config = load_config(args.config)
    if args.follow:
        from earthseg.aws.session import open_session

        config.require_cloud()
        aws = open_session(config.aws.region, config.aws.profile)
        report: Path | None = follow_and_fetch(config, aws, None)
    else:
        report = run_on_sagemaker(config, dry_run=args.dry_run, wait=not args.no_wait)
    if report is not None:
        print(f"open the report: {report / 'report.html'}")
