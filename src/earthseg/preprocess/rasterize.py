"""Labels to bitmaps: burn polygons on a scene's own grid (the notebooks' shapefile step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
from affine import Affine

from earthseg.atomic import atomic_file
from earthseg.imagery.names import parse_event_name
from earthseg.preprocess.labels import labels_for_scene
from earthseg.preprocess.scenes import describe_scene

POSITIVE = 1


def burn(
    polygons: np.ndarray, shape: tuple[int, int], transform: Affine, all_touched: bool = False
) -> np.ndarray:
    """uint8 mask of `shape`: POSITIVE where a polygon covers the pixel centre, else 0.

    `all_touched` marks every pixel a polygon touches instead, which grows labels by up
    to a pixel: useful for thin plumes, wrong for area statistics.
    """
    if len(polygons) == 0:
        return np.zeros(shape, dtype=np.uint8)
    return rasterio.features.rasterize(
        ((polygon, POSITIVE) for polygon in polygons),
        out_shape=shape,
        transform=transform,
        fill=0,
        all_touched=all_touched,
        dtype=np.uint8,
    )


def rasterize_file(image: Path, labels: Path, out: Path, all_touched: bool = False) -> np.ndarray:
    """Write the labels of `image` as a mask GeoTIFF on the image's grid; return the mask."""
    scene = describe_scene(image)
    imagelabeler = parse_event_name(Path(labels).stem) is not None  # a .prj-less export's file
    polygons = labels_for_scene(labels, scene.crs, scene.bounds, image, assume_wgs84=imagelabeler)
    with rasterio.open(image) as dataset:
        mask = burn(polygons, (dataset.height, dataset.width), dataset.transform, all_touched)
        profile = {
            "driver": "GTiff",
            "width": dataset.width,
            "height": dataset.height,
            "count": 1,
            "dtype": "uint8",
            "crs": dataset.crs,
            "transform": dataset.transform,
            "compress": "deflate",
        }
    with atomic_file(Path(out)) as partial, rasterio.open(partial, "w", **profile) as dst:
        dst.write(mask, 1)
    return mask
