"""`earthseg train`: the training image's entry point, or a SageMaker training job."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from earthseg.cli.options import (
    add_aws_options,
    add_model_options,
    add_security_options,
    aws_session,
    model_from_args,
    name_value,
    refuse_unless,
    security_from_args,
)
from earthseg.contracts.opt_ml import BASE_DIR_ENV
from earthseg.errors import InputError

RESOURCE_FLAGS = {"volume_size_gb": "--volume-gb"}


def add_commands(commands: Any) -> None:
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.resources import TrainingResources
    from earthseg.train.hyperparameters import Hyperparameters

    train = commands.add_parser(
        "train",
        help="train the U-Net: the training image's entry point, or with --image a SageMaker "
        "training job",
        description="Without --image: the training image's entry point. Reads SageMaker's "
        "/opt/ml layout through the sagemaker-training toolkit: hyperparameters, channels "
        "train/validation[/test]; writes /opt/ml/model, /opt/ml/output/data and "
        "/opt/ml/checkpoints. Hyperparameters (all optional): "
        + "; ".join(
            f"{name} ({field.description}, default {field.default})"
            for name, field in Hyperparameters.model_fields.items()
        )
        + ". With --image: launches a SageMaker training job running that image on --data, "
        "follows it and prints the model artifact's URI.",
    )
    train.add_argument(
        "--base-dir", type=Path, help="use this folder as /opt/ml (sets SAGEMAKER_BASE_DIR)"
    )
    job = train.add_argument_group("as a SageMaker training job")
    job.add_argument("--image", help="the training image URI (as `make push` printed)")
    job.add_argument(
        "--data",
        help="the dataset: an s3:// folder holding train/ validation/ [test/], or a local "
        "folder written by earthseg preprocess (uploaded under --output first)",
    )
    job.add_argument(
        "--output",
        help="s3:// folder jobs write under: <output>/<name>/<job>/output/model.tar.gz and "
        ".../checkpoints/ (default the SageMaker default bucket)",
    )
    job.add_argument(
        "-H",
        "--hyperparameter",
        action="append",
        metavar="NAME=VALUE",
        help="a hyperparameter, repeatable (e.g. -H epochs=20 -H batch_size=32)",
    )
    add_model_options(job, TrainingResources, flags=RESOURCE_FLAGS)
    job.add_argument(
        "--checkpoints",
        help="s3:// folder of checkpoints to resume from and write to (default one per job)",
    )
    job.add_argument("--name", help=f"base name of the job (default {DEFAULT_NAME})")
    add_aws_options(job)
    add_security_options(train)
    train.set_defaults(run=train_model, launch_options=job)


def train_model(args: argparse.Namespace) -> int:
    if args.image:
        return _launch(args)
    refuse_unless(args, args.launch_options, "--image", "they launch a SageMaker job")
    security_from_args(args).ignored_locally()  # training here: no VPC, key or tags apply
    if args.base_dir:
        os.environ[BASE_DIR_ENV] = str(args.base_dir.resolve())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    from earthseg.train.run import main as train_main

    return train_main()


def _launch(args: argparse.Namespace) -> int:
    """`train --image`: a SageMaker training job with the training image."""
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.resources import TrainingResources
    from earthseg.aws.training import launch_training
    from earthseg.train.hyperparameters import Hyperparameters

    if args.base_dir:
        raise InputError("--base-dir", "is for training here, not for a job", "drop it")
    if not args.data:
        raise InputError(
            "--data",
            "is needed to launch a job",
            "give the dataset: an s3:// folder holding train/ and validation/, or a local "
            "folder written by earthseg preprocess (uploaded first)",
        )
    pairs = [name_value(item, "--hyperparameter") for item in args.hyperparameter or []]
    resources = model_from_args(args, TrainingResources, flags=RESOURCE_FLAGS)
    if resources.local:
        raise InputError(
            "--instance-type",
            f"{resources.instance_type} is the SDK's local mode, which needs a run folder "
            "`train --image` does not have",
            "give a SageMaker instance type (e.g. ml.g5.xlarge), or train in the local "
            "image with earthseg pipeline --local",
        )
    security = security_from_args(args)
    result = launch_training(
        aws_session(args),
        args.image,
        args.data,
        Hyperparameters.from_mapping(dict(pairs)),
        resources,
        name=args.name or DEFAULT_NAME,
        role=args.role,
        output=args.output,
        checkpoints=args.checkpoints,
        security=security,
    )
    if result.spot_saving is not None and resources.spot:
        print(
            f"billable {result.billable_s} s of {result.training_s} s "
            f"({result.spot_saving:.0%} saved by spot)"
        )
    print(f"checkpoints: {result.checkpoint_uri}")
    print(f"reports:     {result.output_uri}")
    print(f"model:       {result.model_uri}")
    return 0
