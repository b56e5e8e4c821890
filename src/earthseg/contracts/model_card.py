"""The model artifact (/opt/ml/model, i.e. model.tar.gz) and its card, `earthseg.json`.

- `1/`: a TensorFlow SavedModel with a `serving_default` signature (the layout AWS's
  TensorFlow Serving containers load),
- `model.onnx`: what the serve image runs,
- `earthseg.json`: the model card. Serving takes the input size, bands, pixel type,
  normalisation and decision threshold from it rather than from constants in code; the
  report and the pipeline read the metrics and what the model was trained on.

`earthseg train` writes the card (`write_model_card`); everyone reads it with
`read_model_card`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field

from earthseg.contracts.documents import Record, locate, read_document, write_document
from earthseg.contracts.imagery import ImagerySource

SAVED_MODEL_DIR = "1"
ONNX_FILE = "model.onnx"
MODEL_CARD = "earthseg.json"
MODEL_CARD_FORMAT: Final = "earthseg.model/1"
RETRAIN = "point --model (or /opt/ml/model) at the folder or model.tar.gz `earthseg train` wrote"


class ModelInput(Record):
    tile_size: tuple[int, int]  # rows, cols
    bands: int
    source_dtype: str  # the scenes' pixel type the model was trained on
    layout: str = "NHWC"
    tensor_dtype: str = "float32"


class Normalisation(Record):
    scale: float
    offset: float = 0.0
    in_model: bool = True
    note: str = "feed raw pixel values as float32; the model multiplies by `scale`"


class ModelOutput(Record):
    activation: str = "sigmoid"
    meaning: str = "probability of dust per pixel"


class Architecture(Record):
    name: str = "unet"
    parameters: int


class TrainingRecord(Record):
    """Where and how the model was trained: the SageMaker hosts and the replicas on them."""

    hyperparameters: dict[str, Any]
    epochs: int
    instances: int
    hosts: list[str]
    replicas: int


class TrainingData(Record):
    manifest_sha256: str | None  # the dataset manifest's digest (None: trained without one)
    imagery: tuple[ImagerySource, ...] = ()  # where fetched scenes came from (earthseg fetch)


class OnnxGraph(Record):
    """The ONNX model's tensor names, and how closely it was checked against Keras."""

    input: str
    output: str
    max_abs_difference_to_keras: float
    checked_tiles: int
    # The ONNX model takes windows of any height and width that are multiples of this (a
    # fully convolutional U-Net: 2**depth); None: the training tile's size only (models
    # exported before windows could grow).
    window_multiple: int | None = None


class TrackingRecord(Record):
    """The MLflow run that tracked the training (earthseg.train.tracking)."""

    uri: str  # the tracking URI, without credentials
    experiment: str
    run_id: str


class ModelCard(Record):
    """`earthseg.json` (format `earthseg.model/1`)."""

    format: Literal["earthseg.model/1"] = MODEL_CARD_FORMAT
    created_by: str
    task: str = "binary segmentation"
    classes: tuple[str, ...] = ("background", "dust")
    input: ModelInput
    normalisation: Normalisation
    output: ModelOutput = ModelOutput()
    threshold: float = Field(ge=0, le=1)  # chosen on validation
    metrics: dict[str, dict[str, float]]  # per split: iou, f1, precision, recall, ...
    architecture: Architecture
    training: TrainingRecord
    data: TrainingData
    onnx: OnnxGraph
    tracking: TrackingRecord | None = None  # None: not tracked (or cards written before)


def write_model_card(folder: Path, card: ModelCard) -> Path:
    """Write `card` as the model folder's `earthseg.json`."""
    return write_document(Path(folder) / MODEL_CARD, card, indent=2)


def read_model_card(location: Path, fix: str = RETRAIN) -> ModelCard:
    """The card of a model folder (or the card file itself), or an error naming the file
    and `fix`."""
    path = locate(location, MODEL_CARD)
    return read_document(path, ModelCard, "model card", "this is not an earthseg model", fix)
