"""`earthseg pipeline` and `earthseg tune`: the whole chain from an export, as a SageMaker
Pipeline or locally; `tune` with its training a hyperparameter tuning over `tune:`."""

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
    _run_options(pipeline, "pipeline")
    pipeline.set_defaults(run=run_pipeline, tuning=False)
    tune = commands.add_parser(
        "tune",
        help="the whole chain with its training tuned: trials searching run.yaml's tune: "
        "ranges (on SageMaker a tuning job, Bayesian; with --local Optuna), the best "
        "trial's model evaluated and registered",
        description="As `earthseg pipeline`, with a hyperparameter tuning in place of the "
        "training: `tune.trials` trainings, `tune.parallel` at a time, on values drawn from "
        "`tune.ranges`, compared by `tune.objective`. The best trial's model goes on to "
        "evaluation and registration; the trials come home as a leaderboard (run folder's "
        "tuning/, and in the report), each an MLflow run under one parent when the run is "
        "tracked.",
    )
    _run_options(tune, "tune")
    tune.set_defaults(run=run_pipeline, tuning=True)


def _run_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", type=Path, help="the run's YAML file")
    where = parser.add_mutually_exclusive_group()
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
        help=f"start the execution and return (follow it later with earthseg {command} --follow)",
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
    parser.add_argument("--region", help="AWS region, with --status (default: the AWS config's)")
    parser.add_argument("--profile", help="AWS profile, with --status")


def run_pipeline(args: argparse.Namespace) -> None:
    if args.status:
        from earthseg.aws.pipeline_run import status_lines
        from earthseg.aws.session import open_session

        for line in status_lines(open_session(args.region, args.profile), args.status):
            print(line)
        return
    if args.config is None:
        raise InputError("--config", "is missing", "give the run's YAML file (or --status RUN)")
    from earthseg.pipeline.config import load_config

    config = load_config(args.config)
    if args.tuning:
        config.tune.require_ranges()  # before anything is built, uploaded or started
    if args.local:
        from earthseg.pipeline.stages import run_config

        folder = run_config(args.config, tuning=args.tuning)
        print(f"open the report: {folder / 'report.html'}")
        return
    from earthseg.aws.pipeline_run import follow_and_fetch, run_on_sagemaker

    if args.follow:
        from earthseg.aws.session import open_session

        config.require_cloud()
        aws = open_session(config.aws.region, config.aws.profile)
        report: Path | None = follow_and_fetch(config, aws, None)
    else:
        report = run_on_sagemaker(
            config, dry_run=args.dry_run, wait=not args.no_wait, tuning=args.tuning
        )
    if report is not None:
        print(f"open the report: {report / 'report.html'}")
