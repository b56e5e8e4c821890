"""`earthseg iam-policy`: the IAM policies a run needs, for an administrator to grant."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    policy = commands.add_parser(
        "iam-policy",
        help="print the IAM policies a run needs: the execution role's and the caller's",
        description="Prints two IAM policy documents (JSON) for a locked-down account's "
        "administrator, each under a one-line heading: the execution role's (what the "
        "run's SageMaker jobs, endpoints and SageMaker Pipeline run as: S3 under aws.s3, "
        "the images' ECR repositories, the KMS key, logs, metrics, the VPC's network "
        "interfaces, the pipeline's steps) and the caller's (what earthseg itself calls, "
        "on the run's resources, and iam:PassRole on the execution role only). Account "
        "and region come from the config (aws.role or SAGEMAKER_ROLE, aws.region or "
        "AWS_REGION); nothing is asked of AWS. Not in run.yaml, so not included: S3 "
        "locations outside aws.s3 given to commands (transform, detect), and a SageMaker "
        "managed MLflow's artifact bucket.",
    )
    policy.add_argument("--config", type=Path, required=True, help="the run's YAML file")
    which = policy.add_mutually_exclusive_group()
    which.add_argument(
        "--execution-role",
        dest="which",
        action="store_const",
        const="execution-role",
        help="only the execution role's policy",
    )
    which.add_argument(
        "--caller", dest="which", action="store_const", const="caller", help="only the caller's"
    )
    policy.add_argument(
        "--out",
        type=Path,
        metavar="FOLDER",
        help="write execution-role-policy.json and caller-policy.json there instead",
    )
    policy.set_defaults(run=print_policies)


def print_policies(args: argparse.Namespace) -> None:
    from earthseg.aws.permissions import run_policies, write_policies
    from earthseg.pipeline.config import load_config

    documents = run_policies(load_config(args.config), args.which)
    if args.out is not None:
        for document, path in zip(documents, write_policies(documents, args.out), strict=True):
            print(f"{path}: {document.heading}")
        return
    for number, document in enumerate(documents):
        print(("\n" if number else "") + f"# {document.heading}")
        print(document.text(), end="")
