"""The `earthseg` command: one subcommand per stage, each a thin call into the library.

Heavy imports (rasterio, geopandas) happen inside the subcommands so `earthseg --help`
answers at once, also in images that carry only some extras.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from earthseg import __version__
from earthseg.errors import InputError
from earthseg.opt_ml import BASE_DIR_ENV

if TYPE_CHECKING:
    import boto3
    from rasterio.crs import CRS

    from earthseg.preprocess.options import PreprocessOptions
    from earthseg.serve.predictor import Prediction

EXIT_BAD_INPUT = 2
DEFAULT_NAME = "earthseg"  # base name of jobs and endpoints, and of datasets' S3 folder
# Options that launch on SageMaker, by flag: without --image (--processing) they are errors.
TRAIN_LAUNCH_OPTIONS = {
    "--data": "data",
    "--role": "role",
    "--output": "output",
    "--instance-type": "instance_type",
    "--instances": "instances",
    "--spot": "spot",
    "--max-run-hours": "max_run_hours",
    "--max-wait-hours": "max_wait_hours",
    "--volume-gb": "volume_gb",
    "--checkpoints": "checkpoints",
    "--hyperparameter": "hyperparameter",
    "--name": "name",
    "--region": "region",
    "--profile": "profile",
}
PROCESSING_OPTIONS = {
    "--image": "image",
    "--role": "role",
    "--instance-type": "instance_type",
    "--region": "region",
    "--profile": "profile",
}


def cmd_sample(args: argparse.Namespace) -> None:
    from earthseg.synthetic import write_sample_export

    stems = write_sample_export(args.out, scenes=args.scenes, size=args.size, seed=args.seed)
    print(f"wrote {len(stems)} scenes to {args.out}/images and their labels to {args.out}/labels")


def cmd_rasterize(args: argparse.Namespace) -> None:
    from earthseg.preprocess.rasterize import rasterize_file

    mask = rasterize_file(args.image, args.labels, args.out, all_touched=args.all_touched)
    print(f"wrote {args.out}: {mask.shape[1]}x{mask.shape[0]}, {mask.mean():.2%} labelled")


def cmd_preprocess(args: argparse.Namespace) -> None:
    if args.processing:
        return _launch_preprocess(args)
    _refuse_launch_options(args, PROCESSING_OPTIONS, "--processing")
    from earthseg import processing
    from earthseg.preprocess.dataset import build_dataset

    images = _local_path(args.images, "--images") or _processing_default(
        processing.input_images(), "--images"
    )
    labels = _local_path(args.labels, "--labels") or _processing_default(
        processing.input_labels(), "--labels"
    )
    out = _local_path(args.out, "--out") or _processing_default(processing.output_dir(), "--out")
    manifest = build_dataset(images, labels, out, _preprocess_options(args))
    totals = manifest["totals"]
    print(
        f"{out}: {totals['tiles']} tiles from {totals['scenes']} scenes "
        f"({totals['dropped_tiles']} dropped as nodata), "
        f"{totals['positive_fraction']:.1%} of pixels labelled"
    )
    for name, split in manifest["splits"].items():
        print(f"  {name:<10} {split['scenes']:>3} scenes {split['tiles']:>6} tiles  {out / name}")
    print(f"  manifest   {out / 'manifest.json'}")


def _launch_preprocess(args: argparse.Namespace) -> None:
    """`preprocess --processing`: the same command as a SageMaker Processing job."""
    from earthseg.launch.preprocess_job import run_preprocess_job

    missing = [
        option
        for option, value in (
            ("--image", args.image),
            ("--images", args.images),
            ("--labels", args.labels),
            ("--out", args.out),
        )
        if not value
    ]
    if missing:
        raise InputError(
            ", ".join(missing),
            "must be given with --processing",
            "give the training image URI and the export's and the dataset's s3:// folders",
        )
    options = _preprocess_options(args)
    options.check()  # a bad value fails here, not minutes into the job
    given = {"instance_type": args.instance_type}
    result = run_preprocess_job(
        _aws_session(args),
        args.image,
        args.images,
        args.labels,
        args.out,
        options.arguments(),
        role=args.role,
        **{key: value for key, value in given.items() if value is not None},
    )
    print(f"dataset: {result.output_uri}")
    print(f"train on it: earthseg train --image IMAGE --data {result.output_uri}")


def _preprocess_options(args: argparse.Namespace) -> PreprocessOptions:
    from earthseg.preprocess.options import PreprocessOptions
    from earthseg.preprocess.splits import parse_fractions

    return PreprocessOptions(
        tile_size=args.tile_size,
        overlap=args.overlap,
        splits=parse_fractions(args.splits),
        seed=args.seed,
        min_valid=args.min_valid,
        all_touched=args.all_touched,
        write_tiles=args.write_tiles,
    )


def cmd_train(args: argparse.Namespace) -> int:
    if args.image:
        _launch_training(args)
        return 0
    _refuse_launch_options(args, TRAIN_LAUNCH_OPTIONS, "--image")
    if args.base_dir:
        os.environ[BASE_DIR_ENV] = str(args.base_dir.resolve())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    from earthseg.train.run import main as train_main

    return train_main()


def _launch_training(args: argparse.Namespace) -> None:
    """`train --image`: a SageMaker training job with the training image."""
    from earthseg.launch import datasets, s3
    from earthseg.launch.training import TrainingSpec, run_training

    if args.base_dir:
        raise InputError("--base-dir", "is for training here, not for a job", "drop it")
    if not args.data:
        raise InputError(
            "--data",
            "is needed to launch a job",
            "give the dataset: an s3:// folder holding train/ and validation/, or a local "
            "folder written by earthseg preprocess (uploaded first)",
        )
    if args.instance_type and not args.instance_type.startswith("ml."):
        raise InputError(
            "--instance-type",
            f"{args.instance_type} is not a SageMaker training instance type",
            "give one such as ml.g5.xlarge (local runs: earthseg pipeline --local)",
        )
    hyperparameters = dict(
        _name_value(item, "--hyperparameter") for item in args.hyperparameter or []
    )
    name = args.name or DEFAULT_NAME
    session = _aws_session(args)
    root = s3.resolve_root(session, args.output, "--output")
    if s3.is_s3_uri(args.data):
        channels = datasets.s3_channels(session, s3.parse_s3_uri(args.data, "--data"))
    else:
        folder = Path(args.data)
        destination = datasets.default_location(root, name, folder)
        print(f"uploading {folder} to {destination.folder}")
        uploaded = datasets.upload_dataset(session, folder, destination)
        channels = {key: uri for key, uri in uploaded.items() if key != "manifest"}
    given = {
        "instance_type": args.instance_type,
        "instance_count": args.instances,
        "max_run_s": args.max_run_hours and round(args.max_run_hours * 3600),
        "max_wait_s": args.max_wait_hours and round(args.max_wait_hours * 3600),
        "checkpoint_uri": args.checkpoints
        and s3.parse_s3_uri(args.checkpoints, "--checkpoints").folder,
        "volume_size_gb": args.volume_gb,
    }
    spec = TrainingSpec(
        image=args.image,
        channels=channels,
        role=args.role,
        hyperparameters=hyperparameters,
        spot=bool(args.spot),
        output_uri=str(root),
        base_job_name=name,
        **{key: value for key, value in given.items() if value is not None},
    )
    result = run_training(session, spec)
    if result.billable_s and result.training_s and spec.spot:
        saved = 1 - result.billable_s / result.training_s
        print(
            f"billable {result.billable_s} s of {result.training_s} s ({saved:.0%} saved by spot)"
        )
    print(f"checkpoints: {result.checkpoint_uri}")
    print(f"reports:     {result.output_uri}")
    print(f"model:       {result.model_uri}")


def cmd_upload(args: argparse.Namespace) -> None:
    from earthseg.launch import datasets, s3

    session = _aws_session(args)
    if args.to:
        destination = s3.parse_s3_uri(args.to, "--to")
        s3.check_bucket(session, destination, "--to")
    else:
        root = s3.default_bucket(session)
        destination = datasets.default_location(root, DEFAULT_NAME, args.data)
    print(f"uploading {args.data} to {destination.folder}")
    uris = datasets.upload_dataset(session, args.data, destination)
    for name, uri in uris.items():
        print(f"  {name:<10} {uri}")
    print(f"train on it: earthseg train --image IMAGE --data {destination.folder}")


def cmd_deploy(args: argparse.Namespace) -> None:
    from earthseg.launch.endpoints import Serverless, deploy

    if not args.serverless and (args.memory_mb or args.max_concurrency):
        raise InputError(
            "--memory-mb/--max-concurrency", "apply to --serverless only", "add --serverless"
        )
    if args.serverless and (args.instance_type or args.instances):
        raise InputError(
            "--instance-type/--instances",
            "do not apply to --serverless (it has no instances)",
            "drop them, or drop --serverless",
        )
    sizes = {"memory_mb": args.memory_mb, "max_concurrency": args.max_concurrency}
    serverless = (
        Serverless(**{key: value for key, value in sizes.items() if value is not None})
        if args.serverless
        else None
    )
    environment = {
        variable: str(value)
        for variable, value in (
            ("SAGEMAKER_MODEL_SERVER_WORKERS", args.workers),
            ("SAGEMAKER_MODEL_SERVER_TIMEOUT", args.timeout),
        )
        if value is not None
    }
    given = {"instance_type": args.instance_type, "instance_count": args.instances}
    endpoint = deploy(
        _aws_session(args),
        args.image,
        args.model,
        args.role,
        name=args.name or DEFAULT_NAME,
        serverless=serverless,
        environment=environment,
        **{key: value for key, value in given.items() if value is not None},
    )
    print(f"endpoint:  {endpoint} (InService)")
    print(f"remove it: earthseg delete --endpoint {endpoint}")


def cmd_delete(args: argparse.Namespace) -> None:
    from earthseg.launch.endpoints import delete_endpoint

    delete_endpoint(_aws_session(args), args.endpoint)


def _aws_session(args: argparse.Namespace) -> boto3.Session:
    from earthseg.launch import aws

    return aws.session(args.region, args.profile)


def _refuse_launch_options(args: argparse.Namespace, options: dict[str, str], needs: str) -> None:
    """Launch options without the option that launches are a mistake, not ignored."""
    given = [flag for flag, dest in options.items() if getattr(args, dest) not in (None, False, [])]
    if given:
        raise InputError(
            ", ".join(given),
            f"launch a SageMaker job, which needs {needs}",
            f"add {needs}, or drop {', '.join(given)} to run here",
        )


def _name_value(text: str, option: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise InputError(f"{option} {text}", "is not NAME=VALUE", f"write e.g. {option} epochs=20")
    return name.strip(), value.strip()


def _local_path(value: str | None, option: str) -> Path | None:
    """A local path option; an s3:// URI there means --processing was forgotten."""
    if value is None:
        return None
    if value.startswith("s3://"):
        raise InputError(option, f"{value} is in S3", "add --processing to preprocess there")
    return Path(value)


def cmd_serve(args: argparse.Namespace) -> None:
    from earthseg.serve.server import serve

    serve(args.model)


def cmd_predict(args: argparse.Namespace) -> None:
    from earthseg.serve.errors import RequestError

    crs = _crs_option(args.crs) if args.crs else None  # checked before predicting
    try:
        if args.url:
            from earthseg.serve.client import predict_remote

            prediction = predict_remote(args.url, args.image, args.threshold, args.max_payload_mb)
        else:
            from earthseg.serve.artifact import model_folder
            from earthseg.serve.predictor import load_predictor

            with model_folder(args.model) as folder:
                prediction = load_predictor(folder).predict_file(args.image, args.threshold)
    except RequestError as error:  # the checks the server makes, made here in-process
        raise InputError(args.image, error.problem, error.fix) from None
    _write_prediction(args, prediction, crs)


def cmd_invoke(args: argparse.Namespace) -> None:
    from earthseg.launch.runtime import invoke_scene

    crs = _crs_option(args.crs) if args.crs else None  # checked before predicting
    prediction = invoke_scene(
        _aws_session(args), args.endpoint, args.image, args.threshold, args.max_payload_mb
    )
    _write_prediction(args, prediction, crs)


def cmd_pipeline(args: argparse.Namespace) -> None:
    from earthseg.launch.config import load_config
    from earthseg.launch.pipeline import Backend, run_pipeline
    from earthseg.launch.run_folder import RunFolder

    config = load_config(args.config)
    if not args.local:
        config.require_cloud()
    folder = RunFolder(config.folder)
    backend: Backend
    if args.local:
        from earthseg.launch.local_run import LocalBackend

        backend = LocalBackend(config, folder, print)
    else:
        from earthseg.launch.sagemaker_run import SageMakerBackend

        backend = SageMakerBackend(config, folder, print)
    report = run_pipeline(config, backend, folder)
    print(f"open the report: {report / 'report.html'}")


def _write_prediction(args: argparse.Namespace, prediction: Prediction, crs: CRS | None) -> None:
    """The mask GeoTIFF (and polygons) of `predict` and `invoke`."""
    from earthseg.serve.predictor import save_prediction

    summary = save_prediction(prediction, args.out, args.geojson, crs)
    rows, cols = prediction.probabilities.shape[1:]
    print(
        f"wrote {args.out}: {cols}x{rows}, {summary['positive']:.2%} of valid pixels positive "
        f"at threshold {prediction.threshold:.3f}"
    )
    if args.geojson:
        print(f"wrote {args.geojson}: {summary['polygons']:.0f} polygons")


def _crs_option(value: str) -> CRS:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError as error:
        problem = f"{value!r} is not a CRS ({error})"
        raise InputError("--crs", problem, "use e.g. EPSG:4326") from None


def _processing_default(path: Path, option: str) -> Path:
    """Inside a SageMaker Processing job the paths default to its mounts."""
    if path.exists():
        return path
    raise InputError(
        option,
        f"was not given and {path} (the SageMaker Processing mount) does not exist",
        f"pass {option} DIR",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earthseg",
        description="Earth-science segmentation on SageMaker: labels to masks, tiles, models.",
    )
    parser.add_argument("--version", action="version", version=f"earthseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser(
        "sample",
        help="write a synthetic ImageLabeler-style export (MODIS-like scenes + dust plume labels)",
    )
    sample.add_argument("--out", type=Path, required=True, help="folder to create")
    sample.add_argument("--scenes", type=int, default=8, help="number of scenes (default 8)")
    sample.add_argument("--size", type=int, default=1024, help="scene width/height in pixels")
    sample.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    sample.set_defaults(run=cmd_sample)

    rasterize = commands.add_parser(
        "rasterize", help="burn label polygons into a mask GeoTIFF on a scene's own grid"
    )
    rasterize.add_argument("--image", type=Path, required=True, help="scene GeoTIFF")
    rasterize.add_argument(
        "--labels", type=Path, required=True, help="labels: .shp, .zip, .geojson or .gpkg"
    )
    rasterize.add_argument("--out", type=Path, required=True, help="mask GeoTIFF to write")
    rasterize.add_argument(
        "--all-touched", action="store_true", help="mark every pixel a polygon touches"
    )
    rasterize.set_defaults(run=cmd_rasterize)

    preprocess = commands.add_parser(
        "preprocess",
        help="export -> masks, tiles, scene-grouped splits, packed channels and a manifest",
        description="Without --images/--labels/--out, reads and writes the SageMaker "
        "Processing mounts /opt/ml/processing/input/{images,labels} and /opt/ml/processing/output. "
        "With --processing, runs as a SageMaker Processing job in the training image: "
        "--images/--labels/--out are then s3:// folders.",
    )
    preprocess.add_argument("--images", help="folder of scene GeoTIFFs")
    preprocess.add_argument("--labels", help="folder of label files (same stems)")
    preprocess.add_argument("--out", help="dataset folder to create")
    preprocess.add_argument("--tile-size", type=int, default=256, help="tile side in pixels")
    preprocess.add_argument("--overlap", type=int, default=0, help="pixels shared by neighbours")
    preprocess.add_argument(
        "--splits", default="0.7,0.15,0.15", help="train,validation,test shares of the scenes"
    )
    preprocess.add_argument("--seed", type=int, default=0, help="seed of the scene split")
    preprocess.add_argument(
        "--min-valid", type=float, default=0.9, help="drop tiles with less valid data than this"
    )
    preprocess.add_argument("--all-touched", action="store_true", help="as for rasterize")
    preprocess.add_argument(
        "--write-tiles",
        action="store_true",
        help="also write tiles/<split>/<tile>.tif + _bitmap.png",
    )
    job = preprocess.add_argument_group("as a SageMaker Processing job")
    job.add_argument(
        "--processing", action="store_true", help="run as a Processing job in the training image"
    )
    job.add_argument("--image", help="the training image URI (as `make push` printed)")
    job.add_argument("--instance-type", help="Processing instance type (default ml.m5.xlarge)")
    _aws_options(job)
    preprocess.set_defaults(run=cmd_preprocess)

    train = commands.add_parser(
        "train",
        help="train the U-Net: the training image's entry point, or with --image a SageMaker "
        "training job",
        description="Without --image: the training image's entry point. Reads SageMaker's "
        "/opt/ml layout through the sagemaker-training toolkit: hyperparameters, channels "
        "train/validation[/test]; writes /opt/ml/model, /opt/ml/output/data and "
        "/opt/ml/checkpoints. Hyperparameters (all optional): epochs, batch_size, "
        "learning_rate, filters, depth, patience, seed, augment, steps_per_epoch. "
        "With --image: launches a SageMaker training job running that image on --data, "
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
    job.add_argument("--instance-type", help="training instance type (default ml.g5.xlarge)")
    job.add_argument(
        "--instances", type=_positive_int, help="instances (default 1; more: multi-worker)"
    )
    job.add_argument(
        "--spot", action="store_true", default=None, help="managed spot training (resumes)"
    )
    job.add_argument(
        "--max-run-hours", type=_positive_float, help="stop the job after this long (default 24)"
    )
    job.add_argument(
        "--max-wait-hours",
        type=_positive_float,
        help="spot: give up after this long, waiting included (default twice the run time)",
    )
    job.add_argument("--volume-gb", type=_positive_int, help="EBS volume per instance (30)")
    job.add_argument(
        "--checkpoints",
        help="s3:// folder of checkpoints to resume from and write to (default one per job)",
    )
    job.add_argument("--name", help=f"base name of the job (default {DEFAULT_NAME})")
    _aws_options(job)
    train.set_defaults(run=cmd_train)

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
    _aws_options(upload, role=False)
    upload.set_defaults(run=cmd_upload)

    deploy = commands.add_parser(
        "deploy",
        help="serve a model on a SageMaker endpoint with the inference image",
        description="Creates a model, an endpoint config and an endpoint, all named "
        "<name>-<timestamp>, and waits until the endpoint is InService.",
    )
    deploy.add_argument("--image", required=True, help="the inference image URI")
    deploy.add_argument("--model", required=True, help="s3://.../model.tar.gz (earthseg train)")
    deploy.add_argument("--name", help=f"base name (default {DEFAULT_NAME})")
    deploy.add_argument("--instance-type", help="real-time instance type (default ml.g5.xlarge)")
    deploy.add_argument("--instances", type=_positive_int, help="real-time instances (1)")
    deploy.add_argument("--serverless", action="store_true", help="a serverless endpoint (CPU)")
    deploy.add_argument(
        "--memory-mb", type=int, help="serverless memory: 1024 to 6144 in 1024 steps (6144)"
    )
    deploy.add_argument(
        "--max-concurrency", type=_positive_int, help="serverless concurrent invocations (5)"
    )
    deploy.add_argument(
        "--workers",
        type=_positive_int,
        help="model server workers (SAGEMAKER_MODEL_SERVER_WORKERS)",
    )
    deploy.add_argument(
        "--timeout",
        type=_positive_int,
        help="seconds per prediction (SAGEMAKER_MODEL_SERVER_TIMEOUT, default 60)",
    )
    _aws_options(deploy)
    deploy.set_defaults(run=cmd_deploy)

    delete = commands.add_parser(
        "delete", help="delete an endpoint with its endpoint config and model(s)"
    )
    delete.add_argument("--endpoint", required=True, help="the endpoint's name")
    _aws_options(delete, role=False)
    delete.set_defaults(run=cmd_delete)

    serve = commands.add_parser(
        "serve",
        help="run the model server (the inference image's entry point)",
        description="SageMaker's inference contract on SAGEMAKER_BIND_TO_PORT (8080): GET /ping, "
        "POST /invocations, GET /execution-parameters. Workers: SAGEMAKER_MODEL_SERVER_WORKERS "
        "(default one per core, or per GPU); timeout: SAGEMAKER_MODEL_SERVER_TIMEOUT (60 s); "
        "body limit: SAGEMAKER_MAX_PAYLOAD_IN_MB (6).",
    )
    serve.add_argument(
        "--model", type=Path, help="model folder (default /opt/ml/model; see SAGEMAKER_BASE_DIR)"
    )
    serve.set_defaults(run=cmd_serve)

    predict = commands.add_parser(
        "predict",
        help="predict a whole scene: a mask GeoTIFF on its grid (and polygons), in-process or "
        "through a running model server",
    )
    predict.add_argument("--image", type=Path, required=True, help="scene GeoTIFF, any size")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model folder or model.tar.gz (in-process)")
    source.add_argument("--url", help="a running model server, e.g. http://127.0.0.1:8080")
    _prediction_options(predict, "with --url: ")
    predict.set_defaults(run=cmd_predict)

    invoke = commands.add_parser(
        "invoke",
        help="predict a whole scene through a SageMaker endpoint (sagemaker-runtime), in "
        "chunks under the payload limit: a mask GeoTIFF on its grid (and polygons)",
    )
    invoke.add_argument("--endpoint", required=True, help="endpoint name (earthseg deploy)")
    invoke.add_argument("--image", type=Path, required=True, help="scene GeoTIFF, any size")
    _prediction_options(invoke, "4 for serverless endpoints; ")
    _aws_options(invoke, role=False)
    invoke.set_defaults(run=cmd_invoke)

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
    pipeline.set_defaults(run=cmd_pipeline)
    return parser


def _prediction_options(parser: argparse.ArgumentParser, payload_note: str) -> None:
    """Where a predicted scene goes, and how requests are sized (predict, invoke)."""
    parser.add_argument("--out", type=Path, required=True, help="mask GeoTIFF to write")
    parser.add_argument("--geojson", type=Path, help="also write the mask's polygons here")
    parser.add_argument("--crs", help="CRS of the polygons (default the scene's), e.g. EPSG:4326")
    parser.add_argument(
        "--threshold", type=_probability, help="decision threshold (default the model card's)"
    )
    parser.add_argument(
        "--max-payload-mb",
        type=_positive_float,
        default=6.0,
        help=f"{payload_note}largest request the server takes; bigger scenes go in chunks (6)",
    )


def _aws_options(parser: argparse._ActionsContainer, role: bool = True) -> None:
    """Where and as whom launcher commands act (defaults: the usual AWS configuration)."""
    if role:
        parser.add_argument("--role", help="SageMaker execution role ARN (default $SAGEMAKER_ROLE)")
    parser.add_argument("--region", help="AWS region (default AWS_REGION, ~/.aws/config)")
    parser.add_argument("--profile", help="AWS profile (default AWS_PROFILE)")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return number


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number from 0 to 1")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries (pyogrio, rasterio) log chatter at INFO: only their warnings get through.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("earthseg").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # The SageMaker SDK sets its config logger to INFO unless the application chose.
    logging.getLogger("sagemaker.config").setLevel(
        logging.INFO if args.verbose else logging.WARNING
    )
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        return run(args) or 0
    except InputError as error:
        print(f"earthseg {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
