"""Exporting the trained model as the artifact /opt/ml/model holds for serving
(earthseg.contracts.model_card): the SavedModel, the ONNX model checked against Keras on
sample tiles, and the model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earthseg import __version__
from earthseg.atomic import atomic_dir
from earthseg.contracts.imagery import ImagerySource
from earthseg.contracts.model_card import (
    MODEL_CARD,
    MODEL_CARD_FORMAT,
    ONNX_FILE,
    SAVED_MODEL_DIR,
    ModelCard,
    OnnxGraph,
    write_model_card,
)
from earthseg.train.onnx_graph import crop_transposed_convolutions_in_place

INPUT_NAME = "image"
ONNX_TOLERANCE = 1e-4


class ExportError(Exception):
    """The exported model does not behave like the trained one."""


def export_model(model: Any, model_dir: Path, card: dict[str, Any], samples: np.ndarray) -> None:
    """Write SavedModel, ONNX and model card (`card`: `model_card`'s fields, completed
    by the ONNX check) into `model_dir`, all or nothing.

    What `model_dir` held before (a finished run of a restarted job) is replaced.
    """
    import tensorflow as tf

    bands = model.input_shape[-1]
    signature = [tf.TensorSpec((None, None, None, bands), tf.float32, name=INPUT_NAME)]
    with atomic_dir(model_dir, last=MODEL_CARD, replace=True) as partial:
        model.export(str(partial / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
        model.export(
            str(partial / ONNX_FILE), format="onnx", input_signature=signature, verbose=False
        )
        crop_transposed_convolutions_in_place(partial / ONNX_FILE)
        graph = check_onnx(partial / ONNX_FILE, model, samples)
        write_model_card(partial, ModelCard.model_validate({**card, "onnx": graph}))


def check_onnx(path: Path, model: Any, samples: np.ndarray) -> OnnxGraph:
    """Run the ONNX file on `samples` beside Keras; return its input/output names."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    batch = samples.astype(np.float32)
    # Also a window of 2 x 2 tiles, as whole-scene prediction sends larger windows.
    window = np.concatenate([np.concatenate([batch[:1]] * 2, axis=1)] * 2, axis=2)
    difference = 0.0
    for pixels in (batch, window):
        onnx_out = session.run([model_output.name], {model_input.name: pixels})[0]
        keras_out = np.asarray(model.predict(pixels, verbose=0), dtype=np.float32)
        difference = max(difference, float(np.max(np.abs(onnx_out - keras_out))))
    if difference > ONNX_TOLERANCE:
        raise ExportError(f"{path.name} differs from the Keras model by {difference:.2e}")
    return OnnxGraph(
        input=model_input.name,
        output=model_output.name,
        max_abs_difference_to_keras=difference,
        checked_tiles=len(batch),
        window_multiple=2 ** _poolings(model),
    )


def _poolings(model: Any) -> int:
    """How many times the network halves its input: windows must divide by 2**this."""
    import keras

    return sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def model_card(
    *,
    tile_shape: list[int],
    dtype: str,
    scale: float,
    threshold: float,
    metrics: dict[str, dict[str, float]],
    hyperparameters: dict[str, Any],
    parameters: int,
    epochs: int,
    manifest_sha256: str | None,
    imagery: Sequence[ImagerySource] = (),
    hosts: Sequence[str] = ("algo-1",),
    replicas: int = 1,
    tracking: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The model card's fields before export: what a consumer of the model needs to use
    it right and to know what it saw, where it was trained (the SageMaker hosts, i.e.
    instances, and the replicas over them), and the MLflow run that tracked it."""
    rows, cols, bands = tile_shape
    return {
        "format": MODEL_CARD_FORMAT,
        "created_by": f"earthseg {__version__}",
        "task": "binary segmentation",
        "classes": ["background", "dust"],
        "input": {
            "tile_size": [rows, cols],
            "bands": bands,
            "source_dtype": dtype,
            "layout": "NHWC",
            "tensor_dtype": "float32",
        },
        "normalisation": {
            "scale": scale,
            "offset": 0.0,
            "in_model": True,
            "note": "feed raw pixel values as float32; the model multiplies by `scale`",
        },
        "output": {"activation": "sigmoid", "meaning": "probability of dust per pixel"},
        "threshold": threshold,
        "metrics": metrics,
        "architecture": {"name": "unet", "parameters": parameters},
        "training": {
            "hyperparameters": hyperparameters,
            "epochs": epochs,
            "instances": len(hosts),
            "hosts": list(hosts),
            "replicas": replicas,
        },
        "data": {
            "manifest_sha256": manifest_sha256,
            "imagery": [source.model_dump(mode="json") for source in imagery],
        },
        "tracking": tracking,
    }
