"""`earthseg prepare` and `earthseg evaluate`: the SageMaker Pipeline's Prepare step (in
the training image) and Evaluate step (in the serve image), as Processing jobs read and
write their mounts (earthseg.contracts.processing), or on explicit folders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from earthseg.cli.options import add_model_options, model_from_args
from earthseg.errors import InputError


def add_commands(commands: Any) -> None:
    from earthseg.contracts.processing import FETCH_FLAGS
    from earthseg.imagery.options import FetchOptions, TransferOptions
    from earthseg.preprocess.options import PreprocessOptions
    from earthseg.serve.scene import RequestOptions
    from earthseg.validation import allowed

    prepare = commands.add_parser(
        "prepare",
        help="export -> dataset (as preprocess) and the test split set apart for evaluate "
        "(the pipeline's Prepare step); fetches the scenes when the export has none",
        description="Without --labels/--images/--out/--test, reads and writes the SageMaker "
        "Processing mounts: /opt/ml/processing/input/{labels,images} (images absent: the "
        "scenes are fetched from the WMS), the dataset to /opt/ml/processing/output as "
        "`earthseg preprocess` writes it, the test set to /opt/ml/processing/test "
        "(scenes/<stem>.tif, truth/<stem>.tif, dataset.json).",
    )
    prepare.add_argument("--labels", type=Path, help="the export's labels (folder or zip)")
    prepare.add_argument(
        "--images", type=Path, help="the export's scenes (default: fetched from the WMS)"
    )
    prepare.add_argument("--out", type=Path, help="dataset folder to create")
    prepare.add_argument("--test", type=Path, help="test set folder to create")
    add_model_options(prepare, PreprocessOptions)
    fetching = prepare.add_argument_group("fetching, for an export without scenes")
    fetching.add_argument(
        FETCH_FLAGS["layers"],
        dest="layer",
        action="append",
        metavar="NAME",
        help="a WMS layer; repeat to stack several as bands "
        f"(default {','.join(FetchOptions.model_fields['layers'].default)})",
    )
    add_model_options(
        fetching,
        FetchOptions,
        fields=[name for name in FetchOptions.model_fields if name not in FETCH_FLAGS],
    )
    scene_share = FetchOptions.model_fields["min_valid"]
    fetching.add_argument(
        FETCH_FLAGS["min_valid"],
        dest="fetch_min_valid",
        metavar="MIN_VALID",
        help=f"{scene_share.description}: {allowed(scene_share)} (default {scene_share.default})",
    )
    add_model_options(fetching, TransferOptions)
    prepare.set_defaults(run=prepare_export)

    evaluate = commands.add_parser(
        "evaluate",
        help="predict the test set prepare wrote with a model and score it against the truth: "
        "masks and evaluation.json (the pipeline's Evaluate step)",
        description="Without --model/--test/--out, reads and writes the SageMaker Processing "
        "mounts: the model at /opt/ml/processing/input/model (model.tar.gz or an unpacked "
        "model), the test set at /opt/ml/processing/input/test, the evaluation to "
        "/opt/ml/processing/evaluation (masks/<stem>.tif, evaluation.json).",
    )
    evaluate.add_argument(
        "--model", type=Path, help="model folder, model.tar.gz, or a folder holding one"
    )
    evaluate.add_argument("--test", type=Path, help="the test set folder prepare wrote")
    evaluate.add_argument("--out", type=Path, help="evaluation folder to create")
    add_model_options(evaluate, RequestOptions, fields=["threshold"])
    evaluate.set_defaults(run=evaluate_model)


def prepare_export(args: argparse.Namespace) -> None:
    from earthseg.contracts import processing
    from earthseg.imagery.options import FetchOptions, TransferOptions
    from earthseg.preprocess.options import PreprocessOptions

    options = model_from_args(args, PreprocessOptions)  # bad values fail before any work
    given = argparse.Namespace(
        **{**vars(args), "layers": args.layer, "min_valid": args.fetch_min_valid}
    )
    fetch = model_from_args(given, FetchOptions, flags=processing.FETCH_FLAGS)
    transfer = model_from_args(args, TransferOptions)
    labels = args.labels or _mount(processing.input_dir(processing.LABELS), "--labels")
    images = args.images
    if images is None and processing.input_dir(processing.IMAGES).is_dir():
        images = processing.input_dir(processing.IMAGES)
    out = args.out or _mount(processing.output_dir(), "--out")
    test = args.test or _mount(
        processing.output_dir(processing.PREPARE_OUTPUTS[processing.TEST_OUTPUT]), "--test"
    )
    from earthseg.cli.data import print_dataset
    from earthseg.pipeline.prepare import prepare

    prepared = prepare(labels, images, out, test, options, fetch, transfer)
    print_dataset(out, prepared.manifest)
    print(f"{test}: {len(prepared.test_set.scenes)} test scenes with their truth rasters")
    print(f"  imagery: {prepared.test_set.imagery}")


def evaluate_model(args: argparse.Namespace) -> None:
    from earthseg.contracts import processing
    from earthseg.serve.scene import RequestOptions

    threshold = model_from_args(args, RequestOptions, fields=["threshold"]).threshold
    model = args.model or _mount(processing.input_dir(processing.MODEL_INPUT), "--model")
    test = args.test or _mount(processing.input_dir(processing.TEST_INPUT), "--test")
    out = args.out or _mount(
        processing.output_dir(processing.EVALUATE_OUTPUTS[processing.EVALUATION_OUTPUT]), "--out"
    )
    from earthseg.evaluate.run import evaluate

    evaluation = evaluate(model, test, out, threshold)
    scores = ", ".join(
        f"{name} {'n/a' if metric.value is None else f'{metric.value:.4f}'}"
        for name, metric in evaluation.metrics.items()
    )
    print(f"{out}: {scores} at threshold {evaluation.threshold:g}")


def _mount(path: Path, option: str) -> Path:
    """Inside a SageMaker Processing job the paths default to its mounts."""
    if path.exists():
        return path
    raise InputError(
        option,
        f"was not given and {path} (the SageMaker Processing mount) does not exist",
        f"pass {option} DIR",
    )
