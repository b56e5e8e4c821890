"""Where a synthetic scene lies: a MODIS-like lon/lat grid wholly beyond 40 degrees N or S."""

from __future__ import annotations

import numpy as np
from rasterio.transform import Affine

CRS = "EPSG:4326"
PIXEL_DEG = 0.005  # about the 500 m of MODIS true colour in Worldview's geographic grid
MIN_ABS_LAT = 40.0  # high-latitude dust: the whole scene lies poleward of this
MAX_ABS_LAT = 75.0
MAX_EXTENT_DEG = 30.0  # very large scenes get finer pixels so they still fit the band
LAT_MARGIN_DEG = 0.5


def place_scene(rng: np.random.Generator, size: int) -> tuple[Affine, bool]:
    """Return the geotransform of a `size` x `size` scene and whether it is northern."""
    pixel = min(PIXEL_DEG, MAX_EXTENT_DEG / size)
    half = pixel * size / 2.0
    north = bool(rng.random() < 0.6)  # most labelled high-latitude dust is northern
    abs_lat = rng.uniform(MIN_ABS_LAT + LAT_MARGIN_DEG + half, MAX_ABS_LAT - half)
    lat = abs_lat if north else -abs_lat
    lon = rng.uniform(-180.0 + half, 180.0 - half)
    return Affine(pixel, 0.0, lon - half, 0.0, -pixel, lat + half), north
