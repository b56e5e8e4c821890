"""`earthseg upload`, `deploy`, `delete`, `invoke`: a dataset to S3, a model to an
endpoint (real-time, serverless or asynchronous) and away again, a scene through an
endpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from earthseg.cli.options import (
    add_aws_options,
    add_model_options,
    add_security_options,
    aws_session,
    given_options,
    model_from_args,
    refuse_unless,
    security_from_args,
)
from earthseg.cli.serving import add_prediction_options, scene_options, write_prediction
from earthseg.errors import InputError

INSTANCE_OPTIONS = ["instance_type", "instances", "ami_version", "allow_cpu"]  # an endpoint's


def add_commands(commands: Any) -> None:
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.resources import (
        ASYNC_FLAGS,
        AsyncInvocation,
        AsyncOptions,
        EndpointOptions,
        Serverless,
    )
    from earthseg.contracts.serving import ServerOptions

    upload = commands.add_parser(
        "upload",
        help="upload a dataset (channels train/ validation/ [test/] and manifest.json) to S3",
    )
    upload.add_argument(
        "--data", type=Path, required=True, help="dataset folder written by earthseg preprocess"
    )
    upload.add_argument(
        "--to",
        help="s3:// folder to upload to (default <default bucket>/earthseg/datasets/"
        "<folder>-<fingerprint>/)",
    )
    add_kms_option(upload, "the uploaded objects")
    add_aws_options(upload, role=False)
    upload.set_defaults(run=upload_dataset)

    deploy = commands.add_parser(
        "deploy",
        help="serve a model on a SageMaker endpoint with the inference image",
        description="Creates a model, an endpoint config and an endpoint, all named "
        "<name>-<timestamp>, and waits until the endpoint is InService. The model is an "
        "image with a model.tar.gz (--image, --model), or an Approved version in the Model "
        "Registry (--model-package, or --group with --latest-approved).",
    )
    served = deploy.add_argument_group("what serves (one of)")
    served.add_argument("--image", help="the inference image URI (with --model)")
    served.add_argument("--model", help="s3://.../model.tar.gz (earthseg train)")
    served.add_argument(
        "--model-package",
        metavar="ARN",
        help="a model package version's ARN (earthseg models list); it must be Approved",
    )
    served.add_argument("--group", help="a model package group (with --latest-approved)")
    served.add_argument(
        "--latest-approved",
        action="store_true",
        help="the group's newest Approved version",
    )
    deploy.add_argument("--name", help=f"base name (default {DEFAULT_NAME})")
    instances = deploy.add_argument_group("a real-time endpoint")
    add_model_options(instances, EndpointOptions, INSTANCE_OPTIONS)
    serverless = deploy.add_argument_group("a serverless endpoint")
    serverless.add_argument(
        "--serverless", action="store_true", help="a serverless endpoint (CPU), no instances"
    )
    add_model_options(serverless, Serverless)
    asynchronous = deploy.add_argument_group("an asynchronous endpoint (on instances)")
    asynchronous.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="an asynchronous endpoint: requests queue, scenes up to 1 GB come from S3, "
        "answers go to S3",
    )
    add_model_options(asynchronous, AsyncOptions, flags=ASYNC_FLAGS)
    add_model_options(deploy.add_argument_group("the model server"), ServerOptions)
    add_security_options(deploy)
    add_aws_options(deploy)
    deploy.set_defaults(
        run=deploy_model,
        instance_options=instances,
        serverless_options=serverless,
        async_options=asynchronous,
    )

    delete = commands.add_parser(
        "delete", help="delete an endpoint with its endpoint config and model(s)"
    )
    delete.add_argument("--endpoint", required=True, help="the endpoint's name")
    add_aws_options(delete, role=False)
    delete.set_defaults(run=delete_endpoint)

    invoke = commands.add_parser(
        "invoke",
        help="predict a whole scene through a SageMaker endpoint (sagemaker-runtime), in "
        "chunks under the payload limit or, asynchronously, whole through S3: a mask "
        "GeoTIFF on its grid (and polygons)",
    )
    invoke.add_argument("--endpoint", required=True, help="endpoint name (earthseg deploy)")
    invoke.add_argument("--image", type=Path, required=True, help="scene GeoTIFF, any size")
    add_prediction_options(invoke, "4 for serverless endpoints; not with --async; ")
    queued = invoke.add_argument_group("an asynchronous endpoint (earthseg deploy --async)")
    queued.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="send the scene whole (up to 1 GB) through S3 and wait for the answer there",
    )
    add_model_options(queued, AsyncInvocation, flags=ASYNC_FLAGS)
    add_kms_option(queued, "the scene sent through S3")
    add_aws_options(invoke, role=False)
    invoke.set_defaults(run=invoke_endpoint, async_options=queued)


def add_kms_option(parser: argparse._ActionsContainer, what: str) -> None:
    """--kms-key alone, for commands that write to S3 but create no SageMaker resource
    (a VPC, isolation or tags would have nothing to apply to)."""
    parser.add_argument(
        "--kms-key",
        metavar="KEY",
        help=f"encrypt {what} with this customer-managed KMS key (SSE-KMS): a key ARN, key "
        "ID, alias/NAME or alias ARN",
    )


def s3_encryption(args: argparse.Namespace) -> dict[str, str]:
    """--kms-key, checked, as S3 upload arguments (none without it)."""
    from earthseg.aws.security import Security
    from earthseg.validation import validate

    if args.kms_key is None:
        return {}
    security = validate(Security, {"kms_key": args.kms_key}, key=lambda _: "--kms-key")
    return security.s3_encryption()


def upload_dataset(args: argparse.Namespace) -> None:
    from earthseg.aws.datasets import upload

    uploaded = upload(aws_session(args), args.data, args.to, encryption=s3_encryption(args))
    for name, uri in {**uploaded.channels, "manifest": uploaded.manifest}.items():
        print(f"  {name:<10} {uri}")
    print(f"train on it: earthseg train --image IMAGE --data {uploaded.folder}")


def deploy_model(args: argparse.Namespace) -> None:
    from earthseg.aws.endpoints import deploy, deploy_package
    from earthseg.aws.names import DEFAULT_NAME
    from earthseg.aws.resources import ASYNC_FLAGS, AsyncOptions, EndpointOptions, Serverless
    from earthseg.contracts.serving import ServerOptions

    served = _served(args)
    if args.serverless:
        sized = given_options(args, args.instance_options)
        if sized:
            raise InputError(
                ", ".join(sized),
                "do not apply to --serverless (it has no instances)",
                "drop them, or drop --serverless",
            )
        options = EndpointOptions(serverless=model_from_args(args, Serverless))
    else:
        refuse_unless(
            args, args.serverless_options, "--serverless", "they size a serverless endpoint"
        )
        options = model_from_args(args, EndpointOptions, INSTANCE_OPTIONS)
    asynchronous = None
    if args.asynchronous:
        if args.timeout is not None:
            raise InputError(
                "--timeout",
                "does not apply to --async: the model server's timeout is the invocation's",
                "drop it, and give --invocation-timeout instead",
            )
        asynchronous = model_from_args(args, AsyncOptions, flags=ASYNC_FLAGS)
    else:
        refuse_unless(args, args.async_options, "--async", "they set up an asynchronous endpoint")
    server = model_from_args(args, ServerOptions)
    security = security_from_args(args)
    session = aws_session(args)
    settings: dict[str, Any] = {
        "name": args.name or DEFAULT_NAME,
        "options": options,
        "environment": server.environment(),
        "asynchronous": asynchronous,
        "security": security,
    }
    if served == "--model":
        endpoint = deploy(session, args.image, args.model, args.role, **settings)
    else:
        package = args.model_package
        if served == "--group":
            from earthseg.aws.registry import latest_approved

            package = latest_approved(session, args.group).arn
        endpoint = deploy_package(session, package, args.role, **settings)
    print(f"endpoint:  {endpoint} (InService)")
    print(f"remove it: earthseg delete --endpoint {endpoint}")


def _served(args: argparse.Namespace) -> str:
    """Which of --model, --model-package and --group names what serves, checked before
    anything is asked of AWS."""
    given = [
        option
        for option, value in (
            ("--model", args.model),
            ("--model-package", args.model_package),
            ("--group", args.group),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            ", ".join(given) or "--model, --model-package, --group",
            "name what serves in different ways" if given else "none was given",
            "give one: --image IMAGE --model s3://.../model.tar.gz, --model-package ARN, "
            "or --group NAME --latest-approved",
        )
    served = given[0]
    if served == "--model" and args.image is None:
        raise InputError("--image", "is needed with --model", "give the inference image's URI")
    if served != "--model" and args.image is not None:
        raise InputError(
            "--image",
            f"does not go with {served}: a registered version carries its own image",
            "drop --image",
        )
    if (served == "--group") != args.latest_approved:
        raise InputError(
            "--latest-approved" if args.latest_approved else f"--group {args.group}",
            "needs --group" if args.latest_approved else "needs --latest-approved",
            "deploy a group's newest Approved version with --group NAME --latest-approved, "
            "or a given version with --model-package ARN",
        )
    return served


def delete_endpoint(args: argparse.Namespace) -> None:
    from earthseg.aws.endpoints import delete_endpoint

    delete_endpoint(aws_session(args), args.endpoint)


def invoke_endpoint(args: argparse.Namespace) -> None:
    if args.asynchronous:
        invoke_asynchronous(args)
        return
    from earthseg.aws.invoke import invoke_scene

    refuse_unless(args, args.async_options, "--async", "they ask an asynchronous endpoint")
    options = scene_options(args)  # checked before predicting
    prediction = invoke_scene(
        aws_session(args), args.endpoint, args.image, options.threshold, options.max_payload_mb
    )
    write_prediction(args, prediction, options)


def invoke_asynchronous(args: argparse.Namespace) -> None:
    """`invoke --async`: the scene whole through S3, the answer's probabilities thresholded
    here into the same outputs as `invoke`."""
    from earthseg.aws.async_inference import async_scene
    from earthseg.aws.endpoints import is_async
    from earthseg.aws.resources import ASYNC_FLAGS, AsyncInvocation

    if args.max_payload_mb is not None:
        raise InputError(
            "--max-payload-mb",
            "does not apply to --async: the scene goes whole through S3 (up to 1 GB)",
            "drop it",
        )
    options = scene_options(args)  # checked before predicting
    invocation = model_from_args(args, AsyncInvocation, flags=ASYNC_FLAGS)
    encryption = s3_encryption(args)
    session = aws_session(args)
    if not is_async(session, args.endpoint):
        raise InputError(
            "--endpoint",
            f"{args.endpoint} is a real-time endpoint, not an asynchronous one",
            "drop --async",
        )
    with async_scene(
        session,
        args.endpoint,
        args.image,
        options.threshold,
        invocation,
        args.out.parent,
        encryption=encryption,
    ) as scene:
        write_prediction(args, scene, options)
