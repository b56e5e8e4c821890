"""`earthseg transform`: the inference image over every scene under a prefix, as a SageMaker
Batch Transform job, or as the same job in the SageMaker SDK's local mode."""

from __future__ import annotations

import argparse
from typing import Any

from earthseg.cli.options import (
    add_aws_options,
    add_model_options,
    add_security_options,
    aws_session,
    given_options,
    model_from_args,
    security_from_args,
)
from earthseg.errors import InputError

FLAGS = {"output": "--answer"}  # --output is where the answers go
SAGEMAKER_ONLY = ["instance_type", "instances", "ami_version", "allow_cpu", "concurrency"]


def add_commands(commands: Any) -> None:
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.transform import OUT_SUFFIX, TransformOptions

    transform = commands.add_parser(
        "transform",
        help="predict every scene GeoTIFF under an S3 prefix with a SageMaker Batch "
        "Transform job (or, with --local, a folder of them in a local container)",
        description="Creates a model and a transform job, both named <name>-<timestamp>, that "
        "send each scene whole to the inference image (one request per scene, up to "
        "--max-payload-mb) and store each answer as <output>/<scene path under --input>"
        f"{OUT_SUFFIX}; follows the job to its end and deletes the model. --local runs the "
        "same job through the SageMaker Python SDK's local mode.",
    )
    transform.add_argument("--image", required=True, help="the inference image URI")
    transform.add_argument(
        "--model",
        required=True,
        help="s3://.../model.tar.gz (earthseg train); with --local a model folder or model.tar.gz",
    )
    transform.add_argument(
        "--input",
        required=True,
        help="s3:// prefix holding the scene GeoTIFFs (or one scene); with --local a folder",
    )
    transform.add_argument(
        "--output",
        dest="destination",  # `output` is the TransformOptions field (--answer)
        required=True,
        help="s3:// prefix for the answers; with --local a folder",
    )
    transform.add_argument(
        "--local",
        action="store_true",
        help="run the job on this machine (Docker, the SageMaker SDK's local mode)",
    )
    add_model_options(
        transform.add_argument_group("the answers and the model server"),
        TransformOptions,
        [name for name in TransformOptions.model_fields if name not in SAGEMAKER_ONLY],
        flags=FLAGS,
    )
    job = transform.add_argument_group("on SageMaker")
    add_model_options(job, TransformOptions, SAGEMAKER_ONLY)
    job.add_argument("--name", help=f"base name of the job and its model (default {DEFAULT_NAME})")
    job.add_argument(
        "--no-wait", action="store_true", help="start the job and return; the model stays"
    )
    add_aws_options(job)
    add_security_options(transform)  # with --local: accepted, and said to be ignored
    transform.set_defaults(run=run_transform, sagemaker_options=job)


def run_transform(args: argparse.Namespace) -> None:
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.transform import TransformOptions, transform, transform_local

    options = model_from_args(args, TransformOptions, flags=FLAGS)
    security = security_from_args(args)
    if args.local:
        remote = given_options(args, args.sagemaker_options)
        if remote:
            raise InputError(
                ", ".join(remote), "apply to SageMaker jobs only", "drop them, or drop --local"
            )
        result = transform_local(
            args.image, args.model, args.input, args.destination, options, security=security
        )
    else:
        result = transform(
            aws_session(args),
            args.image,
            args.model,
            args.input,
            args.destination,
            options,
            args.role,
            name=args.name or DEFAULT_NAME,
            wait=not args.no_wait,
            security=security,
        )
    print(f"job:     {result.job_name}")
    print(f"answers: {len(result.outputs)} under {result.output}")
    for answer in result.outputs:
        print(f"  {answer}")
