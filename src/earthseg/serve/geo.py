"""Georeferenced rasters in and out of memory: GeoTIFF bodies, mask GeoTIFFs, mask polygons.

A prediction keeps the request's grid: the same CRS, transform and size, and nodata where
the scene had none. Polygons are traced on that grid (rasterio.features.shapes) in the
scene's CRS, which the GeoJSON names, or reprojected on request.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from rasterio.io import MemoryFile
from rasterio.warp import transform_geom

MASK_NODATA = 255  # mask GeoTIFFs: 0 background, 1 positive, 255 no data in the scene
THRESHOLD_TAG = "EARTHSEG_THRESHOLD"  # the decision threshold of a probability GeoTIFF


@dataclass(frozen=True)
class Grid:
    """Where a raster lies: its size, CRS (None if the file has none) and pixel-to-map transform."""

    width: int
    height: int
    crs: CRS | None
    transform: Affine


@dataclass(frozen=True)
class Raster:
    """A raster read whole: pixels (rows, cols, bands), which pixels hold data, its grid."""

    pixels: np.ndarray
    valid: np.ndarray  # (rows, cols) bool
    grid: Grid


def describe(dataset: Any) -> Grid:
    """The grid of an open rasterio dataset."""
    return Grid(dataset.width, dataset.height, dataset.crs, dataset.transform)


def read_raster(dataset: Any) -> Raster:
    """Every pixel of an open dataset; valid where GDAL's dataset mask says so (nodata
    values, alpha band or internal mask) and, for floating-point pixels, where finite."""
    pixels = np.moveaxis(dataset.read(), 0, -1)
    valid = dataset.dataset_mask() > 0
    if np.issubdtype(pixels.dtype, np.floating):
        valid &= np.isfinite(pixels).all(axis=-1)
    return Raster(pixels, valid, describe(dataset))


def mask_geotiff(mask: np.ndarray, grid: Grid) -> bytes:
    """A uint8 mask GeoTIFF (0, 1, MASK_NODATA) on `grid`."""
    return _geotiff(mask.astype(np.uint8), grid, MASK_NODATA, {})


def probability_geotiff(probabilities: np.ndarray, grid: Grid, threshold: float) -> bytes:
    """A float32 probability GeoTIFF on `grid`, NaN where there is no data, carrying the
    model's decision threshold as a metadata tag so a reader can make the mask itself."""
    tags = {THRESHOLD_TAG: repr(float(threshold))}
    return _geotiff(probabilities.astype(np.float32), grid, float("nan"), tags)


def mask_features(mask: np.ndarray, grid: Grid | None, to_crs: CRS | None) -> dict[str, Any]:
    """The positive pixels of a (rows, cols) mask as a GeoJSON FeatureCollection.

    Coordinates are the grid's map coordinates (pixel coordinates without a grid), in the
    grid's CRS unless `to_crs` asks for another; the collection names its CRS.
    """
    transform = grid.transform if grid is not None else Affine.identity()
    source_crs = grid.crs if grid is not None else None
    if to_crs is not None and source_crs is None:
        raise ValueError(f"cannot reproject polygons to {to_crs}: the raster has no CRS")
    positive = (mask == 1).astype(np.uint8)
    features = []
    for geometry, _ in shapes(positive, mask=positive.astype(bool), transform=transform):
        if to_crs is not None and to_crs != source_crs:
            geometry = transform_geom(source_crs, to_crs, geometry)
        features.append({"type": "Feature", "properties": {"class": 1}, "geometry": geometry})
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    crs = to_crs or source_crs
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs_urn(crs)}}
    return collection


def crs_urn(crs: CRS) -> str:
    """The OGC URN GeoJSON readers (GDAL, QGIS) take as a named CRS, or its WKT."""
    authority = crs.to_authority()
    if authority is None:
        return str(crs.to_wkt())
    name, code = authority
    return f"urn:ogc:def:crs:{name}::{code}"


def geojson_bytes(collection: dict[str, Any]) -> bytes:
    return json.dumps(collection, separators=(",", ":")).encode()


def _geotiff(values: np.ndarray, grid: Grid, nodata: float, tags: dict[str, str]) -> bytes:
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": values.dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    # A grid without a CRS (the answer to a plain array or picture) is no cause for warning.
    with (
        warnings.catch_warnings(action="ignore", category=NotGeoreferencedWarning),
        MemoryFile() as memory,
    ):
        with memory.open(**profile) as dataset:
            dataset.write(values, 1)
            if tags:
                dataset.update_tags(**tags)
        return bytes(memory.read())
