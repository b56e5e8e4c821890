"""`--write-tiles`: each tile as a GeoTIFF and its mask as `<tile>_bitmap.png`, the
layout the original notebooks trained from, for people who want to look at tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.io import DatasetReader
from rasterio.windows import Window

BITMAP_SUFFIX = "_bitmap.png"
BITMAP_ON = 255  # visible in any image viewer; read back as mask = bitmap > 0


def write_tile_files(
    folder: Path,
    tile_id: str,
    image: np.ndarray,
    mask: np.ndarray,
    scene: DatasetReader,
    window: Window,
) -> None:
    """Write `<tile_id>.tif` (georeferenced, the scene's bands) and its PNG bitmap.

    `image` is (rows, cols, bands), as the shards hold it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": image.shape[1],
        "height": image.shape[0],
        "count": image.shape[2],
        "dtype": image.dtype,
        "crs": scene.crs,
        "transform": scene.window_transform(window),
        "nodata": scene.nodata,
    }
    with rasterio.open(folder / f"{tile_id}.tif", "w", **profile) as tile:
        tile.write(np.moveaxis(image, -1, 0))
    bitmap = np.where(mask > 0, BITMAP_ON, 0).astype(np.uint8)
    Image.fromarray(bitmap).save(folder / f"{tile_id}{BITMAP_SUFFIX}")
