"""A whole scene predicted from a file, streamed by rows: in-process with a model folder
(or model.tar.gz), through a running model server or endpoint in chunks, or read from a
probability GeoTIFF a service answered with; and written as it comes (`save_scene`).

Whatever the source, a `ScenePrediction` gives the scene's grid, its rows of
probabilities top to bottom, and the decision threshold (for a server, known from its
first answer). Memory follows the scene's width, not its area.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import Field, field_validator

from earthseg.contracts.serving import DEFAULT_MAX_PAYLOAD_MB
from earthseg.errors import InputError
from earthseg.validation import Number, Options, invalid

if TYPE_CHECKING:
    from rasterio.crs import CRS

    from earthseg.serve.client import Transport
    from earthseg.serve.geo import Grid
    from earthseg.serve.predictor import Predictor
    from earthseg.serve.raster_writer import RasterRows
    from earthseg.serve.stream import Rows

ROW_BLOCK = 1024  # rows read at a time from a probability GeoTIFF


class RequestOptions(Options):
    """How a scene is asked of a model."""

    threshold: Number | None = Field(
        None, ge=0, le=1, description="decision threshold (default the model card's)"
    )
    max_payload_mb: Number = Field(
        DEFAULT_MAX_PAYLOAD_MB,
        gt=0,
        description="largest request the server takes; bigger scenes go in chunks",
    )


class SceneOptions(RequestOptions):
    """`earthseg predict` and `invoke`: the request, and the CRS of the polygons."""

    crs: str | None = Field(
        None, description="CRS of the polygons (default the scene's), e.g. EPSG:4326"
    )

    @field_validator("crs")
    @classmethod
    def _known(cls, crs: str | None) -> str | None:
        from rasterio.crs import CRS
        from rasterio.errors import CRSError

        if crs is not None:
            try:
                CRS.from_user_input(crs)
            except CRSError as error:
                raise invalid(f"{crs!r} is not a CRS ({error})", "use e.g. EPSG:4326") from None
        return crs

    def target_crs(self) -> CRS | None:
        """The polygons' CRS, None for the scene's own."""
        from rasterio.crs import CRS

        return None if self.crs is None else CRS.from_user_input(self.crs)


class ScenePrediction(Protocol):
    """A scene's prediction, row block by row block."""

    path: Path
    grid: Grid

    def rows(self) -> Iterator[Rows]: ...

    @property
    def threshold(self) -> float:
        """The decision threshold (a server's is known once it has answered)."""
        ...


def scene_grid(path: Path, bands: int | None = None, dtypes: Sequence[str] = ()) -> Grid:
    """The grid of the scene GeoTIFF at `path`, checked to hold `bands` bands of one of
    `dtypes` (or float32/float64 raw values): refused with the fix otherwise."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from earthseg.serve.geo import describe

    try:
        with rasterio.open(path) as dataset:
            grid, count, dtype = describe(dataset), dataset.count, dataset.dtypes[0]
    except RasterioIOError as error:
        raise InputError(
            path, f"cannot be read as a raster ({error})", "give a scene GeoTIFF"
        ) from None
    if bands is not None and count != bands:
        raise InputError(
            path,
            f"has {count} bands and the model takes {bands}",
            f"give scenes with the {bands} bands the model was trained on, in the same order",
        )
    if dtypes and dtype not in (*dtypes, "float32", "float64"):
        raise InputError(
            path,
            f"holds {dtype} pixels and the model was trained on {dtypes[0]}",
            f"give {dtypes[0]} scenes, or float32 raw pixel values (not rescaled)",
        )
    return grid


class LocalScene:
    """A scene through a model in this process."""

    def __init__(self, predictor: Predictor, path: Path, threshold: float | None = None) -> None:
        card = predictor.card
        self.path, self.predictor = Path(path), predictor
        self.grid = scene_grid(self.path, card.input.bands, (card.input.source_dtype,))
        self.threshold = card.threshold if threshold is None else threshold

    def rows(self) -> Iterator[Rows]:
        import rasterio

        from earthseg.serve.stream import RasterSource

        with rasterio.open(self.path) as dataset:
            yield from self.predictor.rows(RasterSource(dataset))


class RemoteScene:
    """A scene through a model server (HTTP or a SageMaker endpoint) in chunks under the
    payload limit, blended as windows are (earthseg.serve.client)."""

    def __init__(
        self,
        transport: Transport,
        path: Path,
        threshold: float | None = None,
        max_payload_mb: float = DEFAULT_MAX_PAYLOAD_MB,
    ) -> None:
        from earthseg.serve.client import InvocationsClient

        self.path = Path(path)
        self.grid = scene_grid(self.path)
        self.client = InvocationsClient(transport)
        self.chosen, self.max_payload_mb = threshold, max_payload_mb

    @property
    def threshold(self) -> float:
        chosen = self.chosen if self.chosen is not None else self.client.threshold
        if chosen is None:
            raise InputError(
                self.path, "got no decision threshold from the model", "pass --threshold"
            )
        return chosen

    def rows(self) -> Iterator[Rows]:
        import rasterio

        from earthseg.serve.client import chunk_window
        from earthseg.serve.stream import RasterSource, stream_probabilities

        with rasterio.open(self.path) as dataset:
            window, overlap = chunk_window(dataset, self.max_payload_mb)
            yield from stream_probabilities(
                RasterSource(dataset), self.client.probabilities, window, overlap
            )


class ProbabilityScene:
    """A float32 probability GeoTIFF a service answered with (Batch Transform, an
    asynchronous endpoint), read back by rows; its threshold from its tag."""

    def __init__(self, path: Path, threshold: float | None = None) -> None:
        import rasterio

        from earthseg.serve.geo import THRESHOLD_TAG

        self.path = Path(path)
        self.grid = scene_grid(self.path, 1)
        with rasterio.open(self.path) as dataset:
            tagged = dataset.tags().get(THRESHOLD_TAG)
        if threshold is None and tagged is None:
            raise InputError(self.path, f"has no {THRESHOLD_TAG} tag", "pass --threshold")
        self.threshold = float(tagged) if threshold is None else threshold

    def rows(self) -> Iterator[Rows]:
        import rasterio
        from rasterio.windows import Window

        from earthseg.serve.stream import Rows

        with rasterio.open(self.path) as dataset:
            for top in range(0, dataset.height, ROW_BLOCK):
                count = min(ROW_BLOCK, dataset.height - top)
                block = dataset.read(1, window=Window(0, top, dataset.width, count))
                yield Rows(top, block.astype(np.float32, copy=False))


def save_scene(
    scene: ScenePrediction,
    mask: Path,
    *,
    probabilities: Path | None = None,
    geojson: Path | None = None,
    crs: CRS | None = None,
    sinks: Sequence[Callable[[Rows], None]] = (),
) -> dict[str, float]:
    """Write a scene's mask (and probabilities) as Cloud-Optimized GeoTIFFs while it is
    predicted, hand every block to `sinks` too, then its polygons (read back from the
    mask, 1 byte per pixel); each file appears only once complete. Returns the positive
    share of valid pixels and the polygon count."""
    from earthseg.serve.geo import MASK_NODATA
    from earthseg.serve.raster_writer import cog_writer

    if geojson is not None and crs is not None and scene.grid.crs is None:
        raise InputError(
            geojson,
            f"cannot hold polygons in {crs}: the scene has no CRS to reproject from",
            "assign the scene its CRS (e.g. `gdal_edit.py -a_srs EPSG:4326 scene.tif`), "
            "or drop --crs for polygons in pixel coordinates",
        )
    import rasterio

    from earthseg.serve.stream import GDAL_CACHE_BYTES

    positive = valid = 0
    with contextlib.ExitStack() as stack:
        # rasterio sets GDAL_CACHEMAX with GDALSetCacheMax64 (an int: bytes), and back.
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES))
        writers: list[RasterRows] = []
        for block in scene.rows():
            if not writers:  # a server's threshold is known once it has answered
                writers = [
                    stack.enter_context(cog_writer(mask, scene.grid, "mask", scene.threshold))
                ]
                if probabilities is not None:
                    writers.append(
                        stack.enter_context(
                            cog_writer(probabilities, scene.grid, "probability", scene.threshold)
                        )
                    )
            for writer in writers:
                writer.write(block)
            for sink in sinks:
                sink(block)
            values = writers[0].values(block.probabilities)
            positive += int((values == 1).sum())
            valid += int((values != MASK_NODATA).sum())
            del block, values  # no block is held while the next one is predicted
    summary = {"positive": positive / max(1, valid), "polygons": 0.0}
    if geojson is not None:
        summary["polygons"] = float(write_polygons(mask, geojson, crs))
    return summary


def write_polygons(mask: Path, geojson: Path, crs: CRS | None) -> int:
    """The positive pixels of a mask GeoTIFF as GeoJSON polygons; returns their count."""
    import rasterio

    from earthseg.atomic import atomic_file
    from earthseg.serve.geo import describe, geojson_bytes, mask_features

    with rasterio.open(mask) as dataset:
        features = mask_features(dataset.read(1), describe(dataset), crs)
    with atomic_file(geojson) as partial:
        partial.write_bytes(geojson_bytes(features))
    return len(features["features"])


@contextlib.contextmanager
def open_scene(
    image: Path, options: RequestOptions, model: Path | None = None, url: str | None = None
) -> Iterator[ScenePrediction]:
    """The scene GeoTIFF `image` through the model folder or model.tar.gz `model`
    in-process, or through the model server at `url` in chunks under the payload limit.
    What the server would refuse is refused here as an InputError naming the scene."""
    if url is not None:
        from earthseg.serve.client import HttpTransport

        yield RemoteScene(HttpTransport(url), image, options.threshold, options.max_payload_mb)
        return
    if model is None:
        raise ValueError("open_scene needs a model or a url")
    from earthseg.serve.artifact import model_folder
    from earthseg.serve.predictor import load_predictor

    with model_folder(model) as folder:
        yield LocalScene(load_predictor(folder), image, options.threshold)
