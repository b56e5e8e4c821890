"""Request bodies to images, one decoder per Content-Type, checked against the model card.

Every decoder turns whatever it is given into a `Payload` or a `RequestError` (400, 413,
415): a malformed body is the client's error, never a crash of the worker. Decoded sizes
are checked before pixels are decoded, so a small compressed body cannot blow up memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile
from sagemaker_inference import content_types

from earthseg.contracts.model_card import ModelCard
from earthseg.contracts.serving import TIFF
from earthseg.serve.errors import bad_request, too_large, unsupported_media_type
from earthseg.serve.geo import Grid, Raster, read_raster

PNG = "image/png"
JPEG = "image/jpeg"
NPY = content_types.NPY
JSON = content_types.JSON
MAX_PIXELS = 50_000_000  # per request, all images together: about 1.3 GB of working memory
TILE_SHAPES = "(rows, cols, bands) for one image or (images, rows, cols, bands) for a batch"


@dataclass(frozen=True)
class Payload:
    """Decoded images and what is known about them."""

    images: np.ndarray  # (N, rows, cols, bands): the model's pixel type, or float32
    valid: np.ndarray | None  # (N, rows, cols) bool, None when every pixel holds data
    grid: Grid | None  # where a GeoTIFF lies; None for other bodies
    single: bool  # one image without a batch axis: answers drop the axis too
    content_type: str


def media_type(header: str | None) -> str:
    """`image/tiff; charset=...` -> `image/tiff`."""
    return (header or "").split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str | None, card: ModelCard) -> Payload:
    """The images a request body holds, ready for the model described by `card`."""
    kind = media_type(content_type)
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise unsupported_media_type(
            f"Content-Type {content_type or '(none)'!r} is not one this model server reads",
            f"send one of {', '.join(DECODERS)}",
        )
    if not body:
        raise bad_request(f"the {kind} body is empty", "send the image in the request body")
    payload = decoder(body, card)
    check_pixels(payload.images, card, kind)
    return payload


def decode_tiff(body: bytes, card: ModelCard) -> Payload:
    """A GeoTIFF of any size (or a plain TIFF): its bands, nodata and grid, read whole."""
    with open_tiff(body, card, MAX_PIXELS) as dataset:
        raster = read_raster(dataset)
    return raster_payload(raster, TIFF)


@contextlib.contextmanager
def open_tiff(body: bytes, card: ModelCard, max_pixels: int) -> Iterator[Any]:
    """The body as an open dataset, once its size and bands are checked (before a pixel
    is read); an unreadable body, or GDAL failing on it while read, is a 400."""
    try:
        # A plain TIFF (no georeferencing) is welcome: its answer is on its pixel grid.
        with (
            warnings.catch_warnings(action="ignore", category=NotGeoreferencedWarning),
            MemoryFile(body) as memory,
            memory.open() as dataset,
        ):
            if dataset.driver != "GTiff":
                raise bad_request(
                    f"the {TIFF} body is a {dataset.driver} raster, not a TIFF",
                    "send a GeoTIFF, or set the Content-Type that matches the body",
                )
            check_size(dataset.width * dataset.height, TIFF, max_pixels)
            check_bands(dataset.count, card, TIFF)
            yield dataset
    except RasterioError as error:
        reason = re.sub(r"'?/vsimem/\S+'?", "it", str(error))  # GDAL's in-memory file name
        raise bad_request(
            f"the {TIFF} body is not a readable TIFF ({reason})",
            "send the file's bytes unchanged (e.g. `curl --data-binary @scene.tif`)",
        ) from None


def raster_payload(raster: Raster, kind: str) -> Payload:
    """A raster read whole as a one-image payload that keeps its grid and nodata."""
    valid = None if raster.valid.all() else raster.valid[np.newaxis]
    return Payload(raster.pixels[np.newaxis], valid, raster.grid, True, kind)


def decode_npy(body: bytes, card: ModelCard) -> Payload:
    """A NumPy array: one image (rows, cols, bands) or a batch (images, rows, cols, bands)."""
    try:
        # Pickles are refused: an object array would run code from the request.
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as error:  # numpy raises ValueError, OSError, EOFError... for bad bytes
        raise bad_request(
            f"the {NPY} body is not a .npy array ({type(error).__name__}: {error})",
            "send numpy.save's output of a numeric array (no object arrays)",
        ) from None
    if not isinstance(array, np.ndarray):
        raise bad_request(f"the {NPY} body is an .npz archive", "send one array saved by np.save")
    return _array_payload(array, card, NPY)


def decode_json(body: bytes, card: ModelCard) -> Payload:
    """TensorFlow Serving's request: {"instances": [image, ...]} or {"inputs": batch}.

    An instance is a nested list (rows, cols, bands) or an object holding it under the
    model's input name, as TensorFlow Serving takes them for the SavedModel.
    """
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise bad_request(f"the {JSON} body is not JSON ({error})", "send valid JSON") from None
    if not isinstance(request, dict) or not ({"instances", "inputs"} & request.keys()):
        raise bad_request(
            f"the {JSON} body has no 'instances' or 'inputs'",
            'send {"instances": [image, ...]} with each image a (rows, cols, bands) list, '
            "as for TensorFlow Serving",
        )
    batch = request.get("instances", request.get("inputs"))
    if isinstance(batch, list):
        batch = [_unwrap(instance, card) for instance in batch]
    else:
        batch = _unwrap(batch, card)
    try:
        array = np.array(batch, dtype=np.float32)
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise bad_request(
            f"the {JSON} images are not arrays of numbers of one shape ({error})",
            f"send every image as a nested list {TILE_SHAPES}",
        ) from None
    if array.ndim != 4:
        raise bad_request(
            f"the {JSON} instances have shape {array.shape}",
            "send a list of images, each a nested list (rows, cols, bands)",
        )
    return _array_payload(array, card, JSON, batch_axis=True)


def decode_png(body: bytes, card: ModelCard) -> Payload:
    return _decode_picture(body, card, PNG)


def decode_jpeg(body: bytes, card: ModelCard) -> Payload:
    return _decode_picture(body, card, JPEG)


def _decode_picture(body: bytes, card: ModelCard, kind: str) -> Payload:
    """A PNG or JPEG picture: grey for a one-band model, RGB for a three-band one;
    transparent pixels are no data."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(card.input.bands)
    if mode is None:
        raise bad_request(
            f"the model takes {card.input.bands} bands and a {kind} holds 1 or 3",
            f"send the {card.input.bands} bands as {TIFF} or {NPY}",
        )
    try:
        picture = Image.open(io.BytesIO(body))
    except Exception as error:  # Pillow raises many types for bad bytes
        raise _unreadable(kind, error) from None
    with picture:
        check_size(picture.width * picture.height, kind)
        try:
            pixels = np.asarray(picture.convert(mode))
            alpha = None
            if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                alpha = np.asarray(picture.convert("RGBA"))[..., 3]
        except Exception as error:  # truncated or corrupt pixel data
            raise _unreadable(kind, error) from None
    valid = None if alpha is None or alpha.all() else alpha[np.newaxis] > 0
    images = pixels.reshape(1, pixels.shape[0], pixels.shape[1], card.input.bands)
    return Payload(images, valid, None, True, kind)


def _unreadable(kind: str, error: Exception) -> Exception:
    return bad_request(
        f"the {kind} body is not a readable picture ({type(error).__name__}: {error})",
        "send the file's bytes unchanged, with the Content-Type that matches them",
    )


DECODERS: dict[str, Callable[[bytes, ModelCard], Payload]] = {
    TIFF: decode_tiff,
    NPY: decode_npy,
    JSON: decode_json,
    PNG: decode_png,
    JPEG: decode_jpeg,
}


def _unwrap(instance: object, card: ModelCard) -> object:
    """TensorFlow Serving's named form {"<input name>": image} -> image."""
    if isinstance(instance, dict):
        if len(instance) != 1:
            raise bad_request(
                f"a {JSON} instance has keys {sorted(instance)[:5]}",
                f"send the image alone or as {{{card.onnx.input!r}: image}}",
            )
        return next(iter(instance.values()))
    return instance


def _array_payload(
    array: np.ndarray, card: ModelCard, kind: str, batch_axis: bool = False
) -> Payload:
    """One image or a batch as (N, rows, cols, bands); a one-band model also takes 2-D."""
    single = not batch_axis and array.ndim in (2, 3)
    if card.input.bands == 1 and array.ndim == (3 if batch_axis else 2):
        array = array[..., np.newaxis]
    if single:
        array = array[np.newaxis]
    if array.ndim != 4:
        raise bad_request(f"the {kind} array has shape {array.shape}", f"send {TILE_SHAPES}")
    check_size(math.prod(array.shape[:3]), kind)
    check_bands(array.shape[3], card, kind)
    valid = None
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array).all(axis=-1)
        valid = None if finite.all() else finite
    return Payload(array, valid, None, single, kind)


def check_bands(bands: int, card: ModelCard, kind: str) -> None:
    if bands != card.input.bands:
        raise bad_request(
            f"the {kind} image has {bands} bands and the model takes {card.input.bands}",
            f"send the {card.input.bands} bands the model was trained on, in the same order",
        )


def check_size(pixels: int, kind: str, limit: int = MAX_PIXELS) -> None:
    if pixels > limit:
        raise too_large(
            f"the {kind} body decodes to {pixels:,} pixels, over this server's "
            f"{limit:,} per request",
            "split the scene into parts (`earthseg predict --url` does this for you)",
        )
    if pixels == 0:
        raise bad_request(f"the {kind} image has no pixels", "send an image with pixels")


def check_pixels(images: np.ndarray, card: ModelCard, kind: str) -> None:
    """The model's bands, as integers of its own type or floats holding raw pixel values."""
    check_bands(images.shape[-1], card, kind)
    dtype = images.dtype
    if dtype in (card.input.source_dtype, np.float32, np.float64):
        return
    raise bad_request(
        f"the {kind} pixels are {dtype} and the model was trained on {card.input.source_dtype}",
        f"send {card.input.source_dtype} or float32 raw pixel values (not rescaled)",
    )
