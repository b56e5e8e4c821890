"""`earthseg serve` and `earthseg predict`: the model server, and whole scenes predicted
in-process or through a running server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earthseg.cli.options import add_model_options, model_from_args

if TYPE_CHECKING:
    from earthseg.serve.scene import ScenePrediction


def add_commands(commands: Any) -> None:
    from earthseg.contracts.serving import (
        DEFAULT_MAX_PAYLOAD_MB,
        MAX_PAYLOAD_ENV,
        PORT_ENV,
        TIMEOUT_ENV,
        WORKERS_ENV,
    )

    serve = commands.add_parser(
        "serve",
        help="run the model server (the inference image's entry point)",
        description=f"SageMaker's inference contract on {PORT_ENV} (8080): GET /ping, "
        f"POST /invocations, GET /execution-parameters. Workers: {WORKERS_ENV} "
        f"(default one per core, or per GPU); timeout: {TIMEOUT_ENV} (60 s); "
        f"body limit: {MAX_PAYLOAD_ENV} ({DEFAULT_MAX_PAYLOAD_MB:g}).",
    )
    serve.add_argument(
        "--model", type=Path, help="model folder (default /opt/ml/model; see SAGEMAKER_BASE_DIR)"
    )
    serve.set_defaults(run=serve_model)

    predict = commands.add_parser(
        "predict",
        help="predict a whole scene: a mask GeoTIFF on its grid (and polygons), in-process or "
        "through a running model server",
    )
    predict.add_argument("--image", type=Path, required=True, help="scene GeoTIFF, any size")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model folder or model.tar.gz (in-process)")
    source.add_argument("--url", help="a running model server, e.g. http://127.0.0.1:8080")
    add_prediction_options(predict, "with --url: ")
    predict.set_defaults(run=predict_scene)


def add_prediction_options(parser: argparse.ArgumentParser, payload_note: str) -> None:
    """Where a predicted scene goes, and how requests are sized (predict, invoke)."""
    from earthseg.serve.scene import SceneOptions

    parser.add_argument(
        "--out", type=Path, required=True, help="mask to write (a Cloud-Optimized GeoTIFF)"
    )
    parser.add_argument(
        "--probabilities", type=Path, help="also write the probabilities here (float32 COG)"
    )
    parser.add_argument("--geojson", type=Path, help="also write the mask's polygons here")
    add_model_options(parser, SceneOptions, notes={"max_payload_mb": payload_note})


def scene_options(args: argparse.Namespace) -> Any:
    """The prediction options given, checked (a bad --crs fails before any work)."""
    from earthseg.serve.scene import SceneOptions

    return model_from_args(args, SceneOptions)


def serve_model(args: argparse.Namespace) -> None:
    from earthseg.serve.server import serve

    serve(args.model)


def predict_scene(args: argparse.Namespace) -> None:
    from earthseg.serve.scene import open_scene

    options = scene_options(args)
    with open_scene(args.image, options, model=args.model, url=args.url) as scene:
        write_prediction(args, scene, options)


def write_prediction(args: argparse.Namespace, scene: ScenePrediction, options: Any) -> None:
    """The mask COG (and probabilities, polygons) of `predict` and `invoke`, written as the
    scene is predicted."""
    from earthseg.serve.scene import save_scene

    summary = save_scene(
        scene,
        args.out,
        probabilities=args.probabilities,
        geojson=args.geojson,
        crs=options.target_crs(),
    )
    print(
        f"wrote {args.out}: {scene.grid.width}x{scene.grid.height}, {summary['positive']:.2%} "
        f"of valid pixels positive at threshold {scene.threshold:.3f}"
    )
    if args.probabilities:
        print(f"wrote {args.probabilities}: probabilities (float32, NaN without data)")
    if args.geojson:
        print(f"wrote {args.geojson}: {summary['polygons']:.0f} polygons")
