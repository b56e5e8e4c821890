"""`earthseg sample`, `rasterize`, `preprocess`: from an export to a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earthseg.cli.options import (
    add_aws_options,
    add_model_options,
    add_security_options,
    aws_session,
    model_from_args,
    refuse_unless,
    security_from_args,
)
from earthseg.errors import InputError

if TYPE_CHECKING:
    from earthseg.contracts.manifest import DatasetManifest
    from earthseg.preprocess.options import PreprocessOptions


def add_commands(commands: Any) -> None:
    from earthseg.aws.resources import ProcessingResources
    from earthseg.preprocess.options import PreprocessOptions
    from earthseg.synthetic.options import SampleOptions

    sample = commands.add_parser(
        "sample",
        help="write a synthetic ImageLabeler-style export (MODIS-like scenes + dust plume labels)",
    )
    sample.add_argument("--out", type=Path, required=True, help="folder to create")
    add_model_options(sample, SampleOptions)
    sample.set_defaults(run=sample_export)

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
    rasterize.set_defaults(run=rasterize_labels)

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
    add_model_options(preprocess, PreprocessOptions)
    job = preprocess.add_argument_group("as a SageMaker Processing job")
    job.add_argument(
        "--processing", action="store_true", help="run as a Processing job in the training image"
    )
    job.add_argument("--image", help="the training image URI (as `make push` printed)")
    add_model_options(job, ProcessingResources)
    add_aws_options(job)
    add_security_options(preprocess)
    preprocess.set_defaults(run=preprocess_export, launch_options=job)


def sample_export(args: argparse.Namespace) -> None:
    from earthseg.synthetic.export import write_sample_export
    from earthseg.synthetic.options import SampleOptions

    options = model_from_args(args, SampleOptions)
    if options.imagelabeler:
        from earthseg.synthetic.imagelabeler import EXPORT_ZIP, IMAGERY, write_imagelabeler_sample

        events = write_imagelabeler_sample(args.out, options.scenes, options.size, options.seed)
        print(f"wrote {len(events)} events' labels to {args.out}/{EXPORT_ZIP} and their scenes")
        print(f"serve the scenes: python -m earthseg.synthetic.wms_server {args.out}/{IMAGERY}")
        print(f"fetch them: earthseg fetch --labels {args.out}/{EXPORT_ZIP} --url URL ...")
        return
    stems = write_sample_export(args.out, options.scenes, options.size, options.seed)
    print(f"wrote {len(stems)} scenes to {args.out}/images and their labels to {args.out}/labels")


def rasterize_labels(args: argparse.Namespace) -> None:
    from earthseg.preprocess.rasterize import rasterize_file

    mask = rasterize_file(args.image, args.labels, args.out, all_touched=args.all_touched)
    print(f"wrote {args.out}: {mask.shape[1]}x{mask.shape[0]}, {mask.mean():.2%} labelled")


def preprocess_export(args: argparse.Namespace) -> None:
    from earthseg.preprocess.options import PreprocessOptions

    options = model_from_args(args, PreprocessOptions)  # a bad value fails before any work
    if args.processing:
        return _launch(args, options)
    refuse_unless(args, args.launch_options, "--processing", "they launch a SageMaker job")
    security_from_args(args).ignored_locally()  # preprocessing here: no VPC, key or tags apply
    from earthseg.contracts import processing
    from earthseg.preprocess.dataset import build_dataset

    images, labels = (
        _local_path(getattr(args, name), f"--{name}") or _mount(processing.input_dir(name), name)
        for name in processing.INPUTS
    )
    out = _local_path(args.out, "--out") or _mount(processing.output_dir(), "out")
    print_dataset(out, build_dataset(images, labels, out, options))


def print_dataset(out: Path, manifest: DatasetManifest) -> None:
    """What a dataset folder holds, split by split (`preprocess`, `prepare`)."""
    totals = manifest.totals
    print(
        f"{out}: {totals.tiles} tiles from {totals.scenes} scenes "
        f"({totals.dropped_tiles} dropped as nodata), "
        f"{totals.positive_fraction:.1%} of pixels labelled"
    )
    for name, split in manifest.splits.items():
        print(f"  {name:<10} {split.scenes:>3} scenes {split.tiles:>6} tiles  {out / name}")
    print(f"  manifest   {out / 'manifest.json'}")


def _launch(args: argparse.Namespace, options: PreprocessOptions) -> None:
    """`preprocess --processing`: the same command as a SageMaker Processing job."""
    from earthseg.aws.processing import run_preprocess_job
    from earthseg.aws.resources import ProcessingResources

    needed = {"--image": args.image, "--images": args.images, "--labels": args.labels}
    missing = [option for option, value in {**needed, "--out": args.out}.items() if not value]
    if missing:
        raise InputError(
            ", ".join(missing),
            "must be given with --processing",
            "give the training image URI and the export's and the dataset's s3:// folders",
        )
    result = run_preprocess_job(
        aws_session(args),
        args.image,
        args.images,
        args.labels,
        args.out,
        options,
        model_from_args(args, ProcessingResources),
        role=args.role,
        security=security_from_args(args),
    )
    print(f"dataset: {result.output_uri}")
    print(f"train on it: earthseg train --image IMAGE --data {result.output_uri}")


def _local_path(value: str | None, option: str) -> Path | None:
    """A local path option; an s3:// URI there means --processing was forgotten."""
    if value is None:
        return None
    if value.startswith("s3://"):
        raise InputError(option, f"{value} is in S3", "add --processing to preprocess there")
    return Path(value)


def _mount(path: Path, name: str) -> Path:
    """Inside a SageMaker Processing job the paths default to its mounts."""
    if path.exists():
        return path
    raise InputError(
        f"--{name}",
        f"was not given and {path} (the SageMaker Processing mount) does not exist",
        f"pass --{name} DIR",
    )
