"""`earthseg detect`: the model over many scenes, to masks and an event catalogue."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earthseg.cli.options import (
    SECURITY_FLAGS,
    add_aws_options,
    add_model_options,
    add_security_options,
    model_from_args,
    security_from_args,
)
from earthseg.errors import InputError

if TYPE_CHECKING:
    from earthseg.aws.security import Security


def add_commands(commands: Any) -> None:
    from earthseg.detect.options import DetectOptions
    from earthseg.imagery.options import FetchOptions, TransferOptions

    detect = commands.add_parser(
        "detect",
        help="run a model over many scenes: a mask COG per scene, one event catalogue "
        "(GeoParquet, GeoJSON), a daily summary and a page",
        description="Scenes from a folder or S3 prefix of GeoTIFFs, or fetched from a WMS "
        "(NASA GIBS by default) for --bbox and --dates, one per day and layer. The model "
        "in-process (--model), a running server (--url) or a SageMaker endpoint "
        "(--endpoint; real-time or asynchronous). Writes OUT/masks/, OUT/events/, "
        "OUT/catalogue.{parquet,geojson}, OUT/daily.{csv,png}, OUT/detections.{md,html}. "
        "A rerun skips scenes done with the same model and options; a scene that fails is "
        "listed and the run goes on (exit 1 at the end).",
    )
    detect.add_argument("--out", type=Path, required=True, help="folder to write (or resume)")
    scenes = detect.add_argument_group("the scenes (one of)")
    scenes.add_argument("--scenes", help="a folder or s3:// prefix of scene GeoTIFFs")
    scenes.add_argument("--bbox", help="fetch scenes over WEST,SOUTH,EAST,NORTH (degrees)")
    scenes.add_argument("--dates", help="with --bbox: START..END (both included) or one date")
    scenes.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="with --bbox: a WMS layer, one scene per day and layer; repeat for several "
        f"(default {','.join(FetchOptions.model_fields['layers'].default)})",
    )
    fetching = detect.add_argument_group("fetching, with --bbox")
    add_model_options(
        fetching,
        FetchOptions,
        fields=[n for n in FetchOptions.model_fields if n not in ("url", "layers", "margin")],
    )
    fetching.add_argument(
        "--wms", help=f"the WMS 1.3.0 endpoint (default {FetchOptions.model_fields['url'].default})"
    )
    add_model_options(fetching, TransferOptions)
    model = detect.add_argument_group("the model (one of)")
    model.add_argument(
        "--model",
        help="model folder or model.tar.gz (in-process); with --transform, the model of the "
        "job: s3://.../model.tar.gz, or a local one with --local",
    )
    model.add_argument("--url", help="a running model server, e.g. http://127.0.0.1:8080")
    model.add_argument("--endpoint", help="a SageMaker endpoint, real-time or asynchronous")
    transform = detect.add_argument_group("through Batch Transform")
    transform.add_argument(
        "--transform",
        metavar="IMAGE",
        help="run --model in a Batch Transform job with this serve image over every scene "
        "(--scenes an s3:// prefix), and catalogue its answers",
    )
    transform.add_argument(
        "--local", action="store_true", help="with --transform: the SDK's local mode, here"
    )
    transform.add_argument(
        "--transform-output", help="s3:// folder for the job's answers (default one of its own)"
    )
    transform.add_argument("--instance-type", help="with --transform: the job's instance type")
    transform.add_argument(
        "--ami-version",
        help="with --transform on a GPU instance type: the host image (TransformAmiVersion; "
        "default: the newest AWS documents for the family)",
    )
    add_model_options(detect.add_argument_group("detection"), DetectOptions)
    add_security_options(detect)
    add_aws_options(detect)
    detect.set_defaults(run=detect_events)


def detect_events(args: argparse.Namespace) -> int:
    from earthseg.detect.models import open_model
    from earthseg.detect.options import DetectOptions
    from earthseg.detect.run import detect

    options = model_from_args(args, DetectOptions)
    models = [name for name in ("model", "url", "endpoint") if getattr(args, name) is not None]
    if len(models) != 1:
        raise InputError(
            "the model", f"{len(models)} given", "give one of --model, --url, --endpoint"
        )
    _check_transform(args)
    security = _security(args)
    scenes = _scenes(args)
    session = None
    if args.endpoint is not None or (args.transform and not args.local):
        from earthseg.cli.options import aws_session

        session = aws_session(args)
    answers = args.out / "answers"
    if args.transform:
        from earthseg.detect.models import AnswerModel, TransformAnswers

        job = TransformAnswers(
            args.transform,
            args.model,
            args.scenes,
            local=args.local,
            session=session,
            role=args.role,
            output=args.transform_output,
            instance_type=args.instance_type,
            ami_version=args.ami_version,
            security=security,
        )
        identity = f"transform {args.transform} {args.model}"
        result = detect(scenes, AnswerModel(identity, answers, options, job), args.out, options)
    else:
        model = None if args.model is None else Path(args.model)
        with open_model(
            options,
            model=model,
            url=args.url,
            endpoint=args.endpoint,
            session=session,
            answers=answers,
            encryption=security.s3_encryption(),
        ) as scene_model:
            result = detect(scenes, scene_model, args.out, options)
    files = result.catalogue
    print(
        f"{args.out}: {len(result.scenes)} scenes ({result.kept} kept from before), "
        f"{result.events} events, {len(result.failures)} failed"
    )
    print(f"  catalogue: {files.parquet} and {files.geojson}")
    print(f"  per day:   {files.daily_csv} and {files.daily_plot}")
    print(f"  page:      {files.html}")
    for name, reason in result.failures:
        print(f"  failed {name}: {reason}")
    return 1 if result.failures else 0


def _check_transform(args: argparse.Namespace) -> None:
    """--transform's companions, before anything runs."""
    given = [
        flag
        for flag, value in (
            ("--local", args.local),
            ("--transform-output", args.transform_output),
            ("--instance-type", args.instance_type),
            ("--ami-version", args.ami_version),
        )
        if value
    ]
    if not args.transform:
        if given:
            raise InputError(", ".join(given), "apply to --transform", "add --transform IMAGE")
        return
    if args.model is None:
        raise InputError("--transform", "runs a model", "give --model (s3://.../model.tar.gz)")
    in_s3 = args.model.startswith("s3://") and (args.scenes or "").startswith("s3://")
    if not args.local and not in_s3:
        raise InputError(
            "--transform",
            "on SageMaker reads the scenes and the model from S3",
            "give --scenes s3://... and --model s3://.../model.tar.gz, or add --local",
        )
    if args.local and args.transform_output:
        raise InputError("--transform-output", "is an S3 folder", "drop it with --local")
    if args.local and args.ami_version:
        raise InputError("--ami-version", "picks a SageMaker host", "drop it with --local")


def _security(args: argparse.Namespace) -> Security:
    """The security settings, for what detect makes on SageMaker: all of them for a
    transform job; --kms-key alone for an endpoint (the scenes sent to an asynchronous one
    through S3); none for a model run here, where they are said to be ignored."""
    security: Security = security_from_args(args)
    if args.transform:
        return security  # a local job says itself that it ignores them
    if args.endpoint is None:
        security.ignored_locally()
        return security
    unused = [key for key in security.given() if key != "kms_key"]
    if unused:
        named = [flag for flag, path in SECURITY_FLAGS.items() if path.split(".")[0] in unused]
        raise InputError(
            ", ".join(named),
            "apply to what detect creates on SageMaker (--transform), and --endpoint creates "
            "nothing: the endpoint's own were set by earthseg deploy",
            "drop them (--kms-key may stay: it encrypts the scenes sent to an asynchronous "
            "endpoint)",
        )
    return security


def _scenes(args: argparse.Namespace) -> list[Any]:
    """The scenes asked for: --scenes, or --bbox with --dates (fetched into OUT/imagery)."""
    from earthseg.detect.scenes import fetched_scenes, folder_scenes, s3_scenes

    if (args.scenes is None) == (args.bbox is None):
        raise InputError(
            "the scenes", "need exactly one source", "give --scenes, or --bbox with --dates"
        )
    if args.scenes is not None:
        if args.dates or args.layer:
            raise InputError(
                "--dates/--layer", "apply to fetched scenes", "drop them, or use --bbox"
            )
        if args.scenes.startswith("s3://"):  # downloaded: their dates, and for a rerun
            from earthseg.cli.options import aws_session

            return s3_scenes(aws_session(args), args.scenes, args.out / "scenes")
        return folder_scenes(Path(args.scenes))
    if args.dates is None:
        raise InputError("--bbox", "needs --dates", "add --dates START..END")
    from earthseg.detect.options import parse_bbox, parse_dates
    from earthseg.imagery.fetch import fetch_area
    from earthseg.imagery.options import FetchOptions, TransferOptions

    given = argparse.Namespace(
        **{**vars(args), "layers": args.layer, "url": args.wms, "margin": None}
    )
    fetch_options = model_from_args(
        given, FetchOptions, flags={"layers": "--layer", "url": "--wms"}
    )
    transfer = model_from_args(args, TransferOptions)
    imagery = args.out / "imagery"
    fetch_area(parse_bbox(args.bbox), parse_dates(args.dates), imagery, fetch_options, transfer)
    return fetched_scenes(imagery)
