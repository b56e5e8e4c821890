"""Scene rasters: open them with clear errors, describe them, and tell valid pixels apart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from earthseg.errors import InputError

SCENE_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class SceneInfo:
    """What later stages need to know about a scene without opening it again."""

    path: Path
    crs: CRS
    width: int
    height: int
    bands: int
    dtype: str
    bounds: tuple[float, float, float, float]


def open_scene(path: Path) -> DatasetReader:
    """Open a georeferenced raster, or say why it cannot serve as a scene."""
    try:
        dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise InputError(
            path,
            f"cannot be read as a raster ({error})",
            "export the scene again as a GeoTIFF (e.g. `gdal_translate -of GTiff in out.tif`)",
        ) from error
    if dataset.crs is None:
        dataset.close()
        raise InputError(
            path,
            "has no coordinate reference system, so labels cannot be placed on it",
            "assign the CRS it was exported in (e.g. `gdal_edit.py -a_srs EPSG:4326 scene.tif`)",
        )
    return dataset


def describe_scene(path: Path) -> SceneInfo:
    """Open, check and describe a scene."""
    with open_scene(path) as dataset:
        return SceneInfo(
            path=path,
            crs=dataset.crs,
            width=dataset.width,
            height=dataset.height,
            bands=dataset.count,
            dtype=dataset.dtypes[0],
            bounds=tuple(dataset.bounds),
        )


def check_consistent(scenes: list[SceneInfo]) -> None:
    """Scenes of one dataset share a CRS, band count and data type, or tiles would not stack."""
    for attribute, fix in (
        ("crs", "reproject the scenes to one CRS (e.g. `gdalwarp -t_srs EPSG:4326 in out.tif`)"),
        ("bands", "export every scene with the same bands"),
        ("dtype", "export every scene with the same data type (e.g. `gdal_translate -ot Byte`)"),
    ):
        groups: dict[str, list[str]] = {}
        for scene in scenes:
            value = getattr(scene, attribute)
            key = value.to_string() if isinstance(value, CRS) else str(value)
            groups.setdefault(key, []).append(scene.path.name)
        if len(groups) > 1:
            found = "; ".join(f"{key}: {', '.join(names)}" for key, names in groups.items())
            raise InputError(scenes[0].path.parent, f"scenes differ in {attribute} ({found})", fix)


def valid_fraction(dataset: DatasetReader, data: np.ndarray, window: Window) -> float:
    """Share of the pixels of `data`, a (rows, cols, bands) window, that hold data.

    A pixel is valid when any band is (GDAL's dataset mask). Nodata values and NaN are
    judged on `data` so the scene is not read twice; internal masks and alpha bands are
    read from the file.
    """
    flags = dataset.mask_flag_enums
    floating = np.issubdtype(data.dtype, np.floating)
    if all(band == [MaskFlags.all_valid] for band in flags) and not floating:
        return 1.0
    if all(MaskFlags.nodata in band for band in flags):
        nodata = dataset.nodata
        invalid = np.isnan(data) if np.isnan(nodata) else data == data.dtype.type(nodata)
    elif floating:
        invalid = np.isnan(data)
    else:
        return float(np.count_nonzero(dataset.dataset_mask(window=window))) / data[..., 0].size
    if floating:
        invalid |= np.isnan(data)
    return 1.0 - float(np.count_nonzero(invalid.all(axis=-1))) / data[..., 0].size
