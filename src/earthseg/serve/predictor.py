"""From decoded images to probabilities and masks: the one prediction path of the server,
`earthseg predict --model` and notebooks alike."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from earthseg.contracts.model_card import ModelCard
from earthseg.contracts.serving import TIMEOUT_ENV
from earthseg.errors import InputError
from earthseg.serve.artifact import OnnxModel
from earthseg.serve.decoders import Payload, check_pixels, raster_payload
from earthseg.serve.errors import timed_out
from earthseg.serve.geo import MASK_NODATA, Grid, read_raster
from earthseg.serve.windows import DeadlineExceeded, Run, default_overlap, predict_images


@dataclass(frozen=True)
class Prediction:
    """Per-pixel probabilities of a request's images, with what is needed to answer it."""

    probabilities: np.ndarray  # (N, rows, cols) float32, NaN where there is no data
    valid: np.ndarray | None  # (N, rows, cols) bool; None: every pixel holds data
    threshold: float
    grid: Grid | None
    single: bool

    def mask(self) -> np.ndarray:
        """(N, rows, cols) uint8: 1 at or above the threshold, 0 below, MASK_NODATA without data."""
        mask = (self.probabilities >= self.threshold).astype(np.uint8)
        if self.valid is not None:
            mask[~self.valid] = MASK_NODATA
        return mask


class Predictor:
    """An ONNX model and the way whole images go through it (overlapping windows)."""

    def __init__(self, model: OnnxModel, overlap: int | None = None) -> None:
        self.model = model
        self.overlap = default_overlap(model.card.input.tile_size) if overlap is None else overlap

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def predict(
        self, payload: Payload, threshold: float | None = None, timeout_s: float | None = None
    ) -> Prediction:
        """Probabilities for every pixel of a decoded payload's images; `threshold` overrides
        the card's; after `timeout_s` seconds the work is abandoned with a 504 RequestError."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        run, tile = self.model.probabilities, self.card.input.tile_size
        try:
            probabilities = blended_probabilities(payload, run, tile, self.overlap, deadline)
        except DeadlineExceeded as stopped:
            raise timed_out(
                f"the prediction took longer than the server's {timeout_s:g} s timeout ({stopped})",
                f"send smaller images, or raise {TIMEOUT_ENV}",
            ) from None
        return Prediction(
            probabilities,
            payload.valid,
            self.card.threshold if threshold is None else threshold,
            payload.grid,
            payload.single,
        )

    def predict_file(self, path: Path, threshold: float | None = None) -> Prediction:
        """A scene GeoTIFF of any size, read from disk."""
        payload = read_scene(path)
        check_pixels(payload.images, self.card, str(path))  # what decode() checks of a body
        return self.predict(payload, threshold)


def blended_probabilities(
    payload: Payload, run: Run, tile: tuple[int, int], overlap: int, deadline: float | None = None
) -> np.ndarray:
    """(N, rows, cols) probabilities of a payload's images through `run` in overlapping
    windows of `tile`, NaN where the images have no data."""
    probabilities = predict_images(payload.images, run, tile, overlap, deadline=deadline)
    if payload.valid is not None:
        probabilities[~payload.valid] = np.nan
    return probabilities


def read_scene(path: Path) -> Payload:
    """A scene GeoTIFF on disk, read whole as a request body would be decoded."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as dataset:
            raster = read_raster(dataset)
    except RasterioIOError as error:
        raise InputError(
            path, f"cannot be read as a raster ({error})", "give a scene GeoTIFF"
        ) from None
    return raster_payload(raster, str(path))


def save_prediction(
    prediction: Prediction,
    mask_path: Path,
    geojson_path: Path | None = None,
    crs: CRS | None = None,
) -> dict[str, float]:
    """Write a scene's mask GeoTIFF (and its polygons, in `crs` or the scene's), each only
    once complete; return what they hold: positive share of valid pixels, polygon count."""
    from earthseg.atomic import atomic_file
    from earthseg.serve.geo import geojson_bytes, mask_features, mask_geotiff

    if prediction.grid is None or prediction.probabilities.shape[0] != 1:
        raise ValueError("save_prediction takes the prediction of one georeferenced scene")
    if geojson_path is not None and crs is not None and prediction.grid.crs is None:
        raise InputError(
            geojson_path,
            f"cannot hold polygons in {crs}: the scene has no CRS to reproject from",
            "assign the scene its CRS (e.g. `gdal_edit.py -a_srs EPSG:4326 scene.tif`), "
            "or drop --crs for polygons in pixel coordinates",
        )
    mask = prediction.mask()[0]
    with atomic_file(mask_path) as partial:
        partial.write_bytes(mask_geotiff(mask, prediction.grid))
    valid = int((mask != MASK_NODATA).sum())
    summary = {"positive": float((mask == 1).sum()) / max(1, valid), "polygons": 0.0}
    if geojson_path is not None:
        features = mask_features(mask, prediction.grid, crs)
        with atomic_file(geojson_path) as partial:
            partial.write_bytes(geojson_bytes(features))
        summary["polygons"] = float(len(features["features"]))
    return summary


def load_predictor(model_dir: Path) -> Predictor:
    """A predictor for the artifact in `model_dir`, running on every core (or the GPU)."""
    return Predictor(OnnxModel(model_dir))
