"""A GeoTIFF request answered as a GeoTIFF or GeoJSON without holding the scene twice:
the body is read by rows of windows, and the answer written as rows finish.

This is how Batch Transform (one scene per record, up to 100 MB) and asynchronous
endpoints (up to 1 GB) are served: besides the body, memory holds one row of windows and
the answer (a compressed COG; for GeoJSON, the mask at 1 byte per pixel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from rasterio.io import MemoryFile

from earthseg.serve.attributes import Options
from earthseg.serve.decoders import TIFF, check_pixels, open_tiff
from earthseg.serve.errors import bad_request
from earthseg.serve.geo import MASK_NODATA, Grid, describe, geojson_bytes, mask_features
from earthseg.serve.predictor import Predictor
from earthseg.serve.stream import RasterSource, Rows

# A streamed scene's memory is its body and its answer: a float32 probability answer of
# 400 Mpx (20,000 x 20,000) holds up to 1.6 GB, the most a serving instance should give one
# request. Masks compress to little; a 1 GB body of three uint8 bands is 333 Mpx.
MAX_SCENE_PIXELS = 400_000_000


@contextlib.contextmanager
def open_scene_body(body: bytes, predictor: Predictor) -> Iterator[RasterSource]:
    """The body as a raster read by rows, checked against the model like any body."""
    with open_tiff(body, predictor.card, MAX_SCENE_PIXELS) as dataset:
        check_pixels(np.empty((0, dataset.count), dataset.dtypes[0]), predictor.card, TIFF)
        yield RasterSource(dataset)


def answer_scene(
    body: bytes,
    accept: str,
    options: Options,
    predictor: Predictor,
    deadline: float | None,
) -> tuple[bytes, float]:
    """The GeoTIFF body's answer of type `accept` (image/tiff: a mask or probability COG;
    application/geo+json: the mask's polygons) and the threshold applied."""
    import rasterio

    from earthseg.serve.encoders import GEOJSON
    from earthseg.serve.raster_writer import rows_into_cog
    from earthseg.serve.stream import GDAL_CACHE_BYTES

    threshold = predictor.card.threshold if options.threshold is None else options.threshold
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), open_scene_body(body, predictor) as source:
        grid = describe(source.dataset)
        rows = predictor.rows(source, deadline)
        if accept == GEOJSON:
            return _polygons(rows, grid, threshold, options), threshold
        output = options.output or "mask"
        with MemoryFile() as staging, MemoryFile() as answer:
            with rows_into_cog(staging.name, answer.name, grid, output, threshold) as writer:
                for block in rows:
                    writer.write(block)
            return bytes(answer.read()), threshold


def _polygons(rows: Iterator[Rows], grid: Grid, threshold: float, options: Options) -> bytes:
    if options.output not in (None, "mask"):
        raise bad_request(
            "application/geo+json holds the mask's polygons, not probabilities",
            f"drop output={options.output}, or ask for {TIFF} with output=probability",
        )
    if options.crs is not None and grid.crs is None:
        raise bad_request(
            f"crs={options.crs} asks to reproject, but the request has no CRS",
            "send a GeoTIFF with its CRS, or drop crs= for polygons in pixel coordinates",
        )
    mask = np.empty((grid.height, grid.width), np.uint8)
    for block in rows:
        part = mask[block.top : block.top + block.probabilities.shape[0]]
        part[:] = block.probabilities >= threshold
        part[np.isnan(block.probabilities)] = MASK_NODATA
    return geojson_bytes(mask_features(mask, grid, options.crs))
