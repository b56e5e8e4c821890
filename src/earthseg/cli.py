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
    from rasterio.crs import CRS

EXIT_BAD_INPUT = 2


def cmd_sample(args: argparse.Namespace) -> None:
    from earthseg.synthetic import write_sample_export

    stems = write_sample_export(args.out, scenes=args.scenes, size=args.size, seed=args.seed)
    print(f"wrote {len(stems)} scenes to {args.out}/images and their labels to {args.out}/labels")


def cmd_rasterize(args: argparse.Namespace) -> None:
    from earthseg.preprocess.rasterize import rasterize_file

    mask = rasterize_file(args.image, args.labels, args.out, all_touched=args.all_touched)
    print(f"wrote {args.out}: {mask.shape[1]}x{mask.shape[0]}, {mask.mean():.2%} labelled")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from earthseg import processing
    from earthseg.preprocess.dataset import PreprocessOptions, build_dataset
    from earthseg.preprocess.splits import parse_fractions

    images = args.images or _processing_default(processing.input_images(), "--images")
    labels = args.labels or _processing_default(processing.input_labels(), "--labels")
    out = args.out or _processing_default(processing.output_dir(), "--out")
    options = PreprocessOptions(
        tile_size=args.tile_size,
        overlap=args.overlap,
        splits=parse_fractions(args.splits),
        seed=args.seed,
        min_valid=args.min_valid,
        all_touched=args.all_touched,
        write_tiles=args.write_tiles,
    )
    manifest = build_dataset(images, labels, out, options)
    totals = manifest["totals"]
    print(
        f"{out}: {totals['tiles']} tiles from {totals['scenes']} scenes "
        f"({totals['dropped_tiles']} dropped as nodata), "
        f"{totals['positive_fraction']:.1%} of pixels labelled"
    )
    for name, split in manifest["splits"].items():
        print(f"  {name:<10} {split['scenes']:>3} scenes {split['tiles']:>6} tiles  {out / name}")
    print(f"  manifest   {out / 'manifest.json'}")


def cmd_train(args: argparse.Namespace) -> int:
    if args.base_dir:
        os.environ[BASE_DIR_ENV] = str(args.base_dir.resolve())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    from earthseg.train.run import main as train_main

    return train_main()


def cmd_serve(args: argparse.Namespace) -> None:
    from earthseg.serve.server import serve

    serve(args.model)


def cmd_predict(args: argparse.Namespace) -> None:
    from earthseg.serve.errors import RequestError
    from earthseg.serve.predictor import save_prediction

    crs = _crs_option(args.crs) if args.crs else None
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
        "Processing mounts /opt/ml/processing/input/{images,labels} and /opt/ml/processing/output.",
    )
    preprocess.add_argument("--images", type=Path, help="folder of scene GeoTIFFs")
    preprocess.add_argument("--labels", type=Path, help="folder of label files (same stems)")
    preprocess.add_argument("--out", type=Path, help="dataset folder to create")
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
    preprocess.set_defaults(run=cmd_preprocess)

    train = commands.add_parser(
        "train",
        help="train the U-Net as a SageMaker training job (the training image's entry point)",
        description="Reads SageMaker's /opt/ml layout through the sagemaker-training toolkit: "
        "hyperparameters, channels train/validation[/test]; writes /opt/ml/model, "
        "/opt/ml/output/data and /opt/ml/checkpoints. Hyperparameters (all optional): "
        "epochs, batch_size, learning_rate, filters, depth, patience, seed, augment, "
        "steps_per_epoch.",
    )
    train.add_argument(
        "--base-dir", type=Path, help="use this folder as /opt/ml (sets SAGEMAKER_BASE_DIR)"
    )
    train.set_defaults(run=cmd_train)

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
    predict.add_argument("--out", type=Path, required=True, help="mask GeoTIFF to write")
    predict.add_argument("--geojson", type=Path, help="also write the mask's polygons here")
    predict.add_argument("--crs", help="CRS of the polygons (default the scene's), e.g. EPSG:4326")
    predict.add_argument(
        "--threshold", type=_probability, help="decision threshold (default the model card's)"
    )
    predict.add_argument(
        "--max-payload-mb",
        type=float,
        default=6.0,
        help="with --url: largest request the server takes; bigger scenes go in chunks (6)",
    )
    predict.set_defaults(run=cmd_predict)
    return parser


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
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        return run(args) or 0
    except InputError as error:
        print(f"earthseg {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
