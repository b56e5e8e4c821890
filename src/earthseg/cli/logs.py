"""`earthseg logs`: a SageMaker job's or endpoint's CloudWatch log, without the console."""

from __future__ import annotations

import argparse
from typing import Any

from earthseg.cli.options import add_aws_options, add_model_options, aws_session, model_from_args

EXIT_FAILED = 1  # the job failed or was stopped, the endpoint failed (bad input: 2)


def add_commands(commands: Any) -> None:
    from earthseg.aws.logs import LogOptions

    logs = commands.add_parser(
        "logs",
        help="print a SageMaker job's or endpoint's log from CloudWatch: its last lines and "
        "its status, or, with --follow, the lines as they come",
        description="Prints the last lines of the job's or endpoint's CloudWatch log (all its "
        "instances' streams, merged by time and labelled [algo-1], [algo-2] when there are "
        "several), then its status and, if it failed, why. With --follow, goes on printing "
        "new lines until the job ends (an endpoint's until Ctrl-C). Exits 1 when the job "
        "failed or was stopped, or the endpoint failed. Needs logs:DescribeLogStreams and "
        "logs:GetLogEvents.",
    )
    which = logs.add_mutually_exclusive_group(required=True)
    which.add_argument("--job", help="a training, processing or transform job's name")
    which.add_argument("--endpoint", help="an endpoint's name")
    add_model_options(logs, LogOptions)
    add_aws_options(logs, role=False)
    logs.set_defaults(run=show_logs)


def show_logs(args: argparse.Namespace) -> int:
    from earthseg.aws.logs import LogOptions, endpoint_logs, job_logs

    options = model_from_args(args, LogOptions)
    session = aws_session(args)
    if args.job:
        healthy = job_logs(session, args.job, options)
    else:
        healthy = endpoint_logs(session, args.endpoint, options)
    return 0 if healthy else EXIT_FAILED
