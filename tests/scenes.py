"""Small scene GeoTIFFs for the tests that predict whole scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def write_scene(
    path: Path, seed: int = 0, size: tuple[int, int] = (300, 420), bands: int = 3
) -> Path:
    """A uint8 scene of `size` (rows, cols) in EPSG:4326 at 70°N, 0.01° pixels, random
    values from 1 and a no-data corner (0) of 40 x 60 pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(1, 256, (bands, *size), dtype=np.uint8)
    pixels[:, :40, :60] = 0
    profile = {
        "driver": "GTiff",
        "width": size[1],
        "height": size[0],
        "count": bands,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_origin(-150.0, 70.0, 0.01, 0.01),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(pixels)
    return path
