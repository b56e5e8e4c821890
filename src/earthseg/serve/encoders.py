"""Predictions to response bodies, one encoder per Accept type.

What each type holds by default follows what its readers expect: JSON and NumPy answer
with the model's output (probabilities, as TensorFlow Serving would for the SavedModel),
GeoTIFF and PNG with the mask, GeoJSON with the mask's polygons. `output=` in the custom
attributes picks the other where it makes sense.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from affine import Affine
from sagemaker_inference import content_types, encoder

from earthseg.contracts.serving import GEOJSON
from earthseg.serve.attributes import Options, Output
from earthseg.serve.decoders import JPEG, JSON, NPY, PNG, TIFF
from earthseg.serve.errors import bad_request, not_acceptable
from earthseg.serve.geo import (
    Grid,
    geojson_bytes,
    mask_features,
    mask_geotiff,
    probability_geotiff,
)
from earthseg.serve.predictor import Prediction

DEFAULT_OUTPUT: dict[str, Output] = {
    JSON: "probability",
    NPY: "probability",
    TIFF: "mask",
    PNG: "mask",
    GEOJSON: "mask",
}
# With Accept */* (or none), the answer comes in the request's own kind of body.
ANSWER_FOR_REQUEST = {TIFF: TIFF, NPY: NPY, JSON: JSON, PNG: PNG, JPEG: PNG}
ONE_IMAGE_TYPES = (TIFF, PNG, GEOJSON)


def encode(prediction: Prediction, accept: str, options: Options) -> bytes:
    """The response body of type `accept` (one of ENCODERS)."""
    output = options.output or DEFAULT_OUTPUT[accept]
    count = prediction.probabilities.shape[0]
    if accept in ONE_IMAGE_TYPES and count != 1:
        raise not_acceptable(
            f"a batch of {count} images has no single {accept} answer",
            f"send one image per request, or ask for {NPY} or {JSON}",
        )
    return ENCODERS[accept](prediction, output, options)


def encode_json(prediction: Prediction, output: Output, options: Options) -> bytes:
    """{"predictions": [image, ...]}, each image (rows, cols, 1) as TensorFlow Serving gives
    the SavedModel's output; probabilities are null where there is no data."""
    values = _values(prediction, output)[..., np.newaxis]
    if output == "probability" and prediction.valid is not None:
        missing = np.isnan(values)
        values = values.astype(object)
        values[missing] = None
    body: str = encoder.encode({"predictions": values}, content_types.JSON)
    return body.encode()


def encode_npy(prediction: Prediction, output: Output, options: Options) -> bytes:
    """(rows, cols) for one image, (images, rows, cols) for a batch: float32 probabilities
    (NaN without data) or uint8 mask (255 without data)."""
    values = _values(prediction, output)
    body: bytes = encoder.encode(values[0] if prediction.single else values, content_types.NPY)
    return body


def encode_tiff(prediction: Prediction, output: Output, options: Options) -> bytes:
    """A single-band GeoTIFF on the request's grid (a plain pixel grid for non-GeoTIFFs)."""
    grid = _grid(prediction)
    if output == "probability":
        return probability_geotiff(prediction.probabilities[0], grid, prediction.threshold)
    return mask_geotiff(prediction.mask()[0], grid)


def encode_geojson(prediction: Prediction, output: Output, options: Options) -> bytes:
    """The mask's polygons, in the scene's CRS (named) or in `crs=`."""
    if output != "mask":
        raise bad_request(
            f"{GEOJSON} holds the mask's polygons, not probabilities",
            f"drop output={output}, or ask for {TIFF} with output=probability",
        )
    if options.crs is not None and (prediction.grid is None or prediction.grid.crs is None):
        raise bad_request(
            f"crs={options.crs} asks to reproject, but the request has no CRS",
            "send a GeoTIFF with its CRS, or drop crs= for polygons in pixel coordinates",
        )
    return geojson_bytes(mask_features(prediction.mask()[0], prediction.grid, options.crs))


def encode_png(prediction: Prediction, output: Output, options: Options) -> bytes:
    """An 8-bit grey picture: the mask as 0/255 (no data as 0), or probability x 255."""
    from PIL import Image

    if output == "probability":
        picture = np.round(np.nan_to_num(prediction.probabilities[0]) * 255)
    else:
        picture = np.where(prediction.mask()[0] == 1, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(picture.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


ENCODERS: dict[str, Callable[[Prediction, Output, Options], bytes]] = {
    JSON: encode_json,
    NPY: encode_npy,
    TIFF: encode_tiff,
    GEOJSON: encode_geojson,
    PNG: encode_png,
}


def _values(prediction: Prediction, output: Output) -> np.ndarray:
    return prediction.probabilities if output == "probability" else prediction.mask()


def _grid(prediction: Prediction) -> Grid:
    if prediction.grid is not None:
        return prediction.grid
    _, rows, cols = prediction.probabilities.shape
    return Grid(cols, rows, None, Affine.identity())
