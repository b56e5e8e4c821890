"""The pipeline's test set and its evaluation: what `earthseg prepare` sets apart for
`earthseg evaluate`, and the evaluation.json `evaluate` writes, which the pipeline's
Condition step reads (IOU_JSON_PATH) and the Model Registry keeps as the model's metrics.

A test set folder (the Processing output `test`) holds `scenes/<stem>.tif` (the test
split's scenes), `truth/<stem>.tif` (the expert labels burned on each scene's grid: uint8
TRUTH_POSITIVE where a label covers the pixel centre, 0 where not, TRUTH_NODATA where the
scene has no data), for fetched scenes `labels/<stem>.*` (their label files, as the
dataset read them), and `dataset.json` (`DatasetRecord`), written last. An evaluation folder
(the output `evaluation`) holds `masks/<stem>.tif` (the predicted masks) and
`evaluation.json` (`Evaluation`), written last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from earthseg.atomic import atomic_file
from earthseg.contracts.documents import Record, locate, read_document, write_document
from earthseg.errors import InputError

TEST_RECORD = "dataset.json"
TEST_FORMAT: Final = "earthseg.testset/1"
SCENES = "scenes"
TRUTH = "truth"
TEST_LABELS = "labels"  # fetched scenes only: their label files, as the dataset read them
TRUTH_POSITIVE = 1
TRUTH_NODATA = 255  # as predicted masks mark pixels without data (earthseg.serve.geo)
MASKS = "masks"
EVALUATION_FILE = "evaluation.json"
EVALUATION_FORMAT: Final = "earthseg.evaluation/1"
METRICS = ("test_iou", "test_f1", "test_precision", "test_recall")  # pooled over the test set
IOU_JSON_PATH = "metrics.test_iou.value"  # where the Condition step finds the test IoU
PREPARE_AGAIN = "point at the `test` output of earthseg prepare (or run prepare again)"
EVALUATE_AGAIN = "point at the evaluation.json `earthseg evaluate` wrote"


class DatasetScene(Record):
    """One scene of the test split: its stem and the digest of its scene file, as the
    dataset manifest records it."""

    scene: str
    sha256: str


class DatasetRecord(Record):
    """`dataset.json` (format `earthseg.testset/1`): which dataset the test set comes
    from and what it holds."""

    format: Literal["earthseg.testset/1"] = TEST_FORMAT
    created_by: str
    manifest_sha256: str  # the dataset manifest's digest (the model card names the same)
    fingerprint: str  # the dataset's (inputs, options, package version)
    splits: dict[str, int]  # scenes per split
    imagery: str  # where the scenes came from, in one line
    options: dict[str, Any]  # earthseg.preprocess.options.PreprocessOptions
    scenes: list[DatasetScene]  # the test split, in the manifest's order

    def scene_file(self, folder: Path, stem: str) -> Path:
        return Path(folder) / SCENES / f"{stem}.tif"

    def truth_file(self, folder: Path, stem: str) -> Path:
        return Path(folder) / TRUTH / f"{stem}.tif"


class Metric(Record):
    """A score as SageMaker's model metrics hold them; None when there was nothing to
    count (a precision where nothing was predicted)."""

    value: float | None


class SceneScore(Record):
    """One test scene's scores (None: nothing to count, e.g. no dust labelled and none
    predicted), the pixels scored (with data), and the shares of them predicted and
    labelled dust."""

    scene: str
    iou: float | None
    f1: float | None
    precision: float | None
    recall: float | None
    pixels: int
    positive: float | None
    labelled: float | None


class Counts(Record):
    """Pixel counts of all test scenes together, which the pooled scores come from."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    unscored: int


class CardFacts(Record):
    """What the model card says about how the model was made."""

    created_by: str
    hyperparameters: dict[str, Any]
    epochs: int
    threshold: float
    manifest_sha256: str | None  # the dataset it was trained on
    metrics: dict[str, dict[str, float]]


class ModelFacts(Record):
    onnx_sha256: str
    card_sha256: str
    card: CardFacts


class Evaluation(Record):
    """`evaluation.json` (format `earthseg.evaluation/1`)."""

    format: Literal["earthseg.evaluation/1"] = EVALUATION_FORMAT
    created_by: str
    metrics: dict[str, Metric]  # METRICS
    threshold: float
    counts: Counts
    scenes: list[SceneScore]
    dataset: DatasetRecord
    model: ModelFacts


def metric_json_path(name: str) -> str:
    """The JSON path of a pooled metric in evaluation.json (`test_iou` -> IOU_JSON_PATH),
    or an error for a metric the evaluation does not produce."""
    if name not in METRICS:
        raise InputError(
            name, "is not a metric of the evaluation", f"use one of {', '.join(METRICS)}"
        )
    return f"metrics.{name}.value"


def json_path_value(document: dict[str, Any], path: str) -> Any:
    """The value at a dotted JSON path (as a pipeline's JsonGet reads it), or KeyError."""
    value: Any = document
    for key in path.split("."):
        value = value[key]
    return value


def write_test_set(folder: Path, record: DatasetRecord) -> Path:
    """Write `dataset.json` into the test set folder, whole or not at all."""
    target = Path(folder) / TEST_RECORD
    with atomic_file(target) as tmp:
        write_document(tmp, record, indent=1)
    return target


def read_test_set(location: Path) -> DatasetRecord:
    """The test set record of a folder (or the file itself), or an error naming the file."""
    path = locate(location, TEST_RECORD)
    missing = "this is not a test set earthseg prepare wrote"
    return read_document(path, DatasetRecord, f"{TEST_FORMAT} record", missing, PREPARE_AGAIN)


def write_evaluation(folder: Path, evaluation: Evaluation) -> Path:
    """Write `evaluation.json` into `folder`, whole or not at all."""
    target = Path(folder) / EVALUATION_FILE
    with atomic_file(target) as tmp:
        write_document(tmp, evaluation, indent=1)
    return target


def read_evaluation(location: Path) -> Evaluation:
    """The evaluation of a folder (or the file itself), or an error naming the file."""
    path = locate(location, EVALUATION_FILE)
    missing = "this is not an evaluation earthseg evaluate wrote"
    return read_document(path, Evaluation, f"{EVALUATION_FORMAT} file", missing, EVALUATE_AGAIN)
