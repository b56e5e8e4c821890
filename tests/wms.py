"""A WMS standing in for NASA GIBS in tests: small synthetic EPSG:4326 scenes on three
dates, written as a MapServer archive (`write_wms_archive`) and served on loopback
(`serve_wms`). tests/conftest.py registers this module as a plugin, so every test
module can take the `standin` and `wms_url` fixtures.

Without MapServer the tests that need the server skip with the install hint, except
under CI=true, where they fail: CI installs it (scripts/ensure-mapserver.sh).
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_origin

from earthseg.errors import InputError
from earthseg.imagery.wms import getmap_query
from earthseg.synthetic.wms_archive import DEFAULT_LAYER, write_wms_archive
from earthseg.synthetic.wms_server import find_mapserv, serve_wms

RESOLUTION = 0.01  # degrees per pixel, on every scene
LAYERS = (DEFAULT_LAYER, "MODIS_Terra_CorrectedReflectance_TrueColor")
MAX_SIZE = 1500  # not MapServer's default (4096), so Capabilities shows ours
MAY_1, MAY_2, MAY_5 = (
    datetime.date(2024, 5, 1),
    datetime.date(2024, 5, 2),
    datetime.date(2024, 5, 5),
)
TIME_EXTENT = "2024-05-01/2024-05-02/P1D,2024-05-05"  # as Capabilities advertises it

Bounds = tuple[float, float, float, float]  # west, south, east, north


@dataclass(frozen=True)
class Scene:
    """A source GeoTIFF of the archive and what a WMS should give back for it."""

    name: str
    path: Path
    dates: tuple[datetime.date, ...]
    pixels: np.ndarray  # (3, rows, cols) uint8, 1..255 where valid
    valid: np.ndarray  # (rows, cols) bool: False in the hole (internal mask or nodata)
    transform: Affine

    @property
    def shape(self) -> tuple[int, int]:
        return self.valid.shape[0], self.valid.shape[1]

    def bounds(self, rows: slice = slice(None), cols: slice = slice(None)) -> Bounds:
        """Bounds of a window of the scene, exactly on its pixel grid."""
        row0, row1, _ = rows.indices(self.shape[0])
        col0, col1, _ = cols.indices(self.shape[1])
        west, north = self.transform * (col0, row0)
        east, south = self.transform * (col1, row1)
        return west, south, east, north


@dataclass(frozen=True)
class Standin:
    """The archive, its scenes (by name), layers, size limit and dates."""

    archive: Path
    scenes: dict[str, Scene]
    layers: tuple[str, ...] = LAYERS
    max_size: int = MAX_SIZE
    time_extent: str = TIME_EXTENT


def make_scene(
    folder: Path,
    name: str,
    size: tuple[int, int],
    west_north: tuple[float, float],
    dates: tuple[datetime.date, ...],
    seed: int,
    hole: tuple[slice, slice] | None = None,
    hole_as: str = "mask",
) -> Scene:
    """Write an RGB uint8 GeoTIFF of `size` (cols, rows) with deterministic values 1..255;
    `hole` (rows, cols) has no data, as an internal mask or as nodata=0 (`hole_as`)."""
    cols, rows = size
    pixels = np.random.default_rng(seed).integers(1, 256, (3, rows, cols), dtype=np.uint8)
    valid = np.ones((rows, cols), bool)
    if hole is not None:
        valid[hole] = False
    transform = from_origin(*west_north, RESOLUTION, RESOLUTION)
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": transform,
        "photometric": "RGB",
        "nodata": 0 if hole_as == "nodata" else None,
    }
    path = folder / f"{name}.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        if hole_as == "nodata":
            pixels = np.where(valid, pixels, 0).astype(np.uint8)
        dst.write(pixels)
        if hole_as == "mask":
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    return Scene(name, path, dates, pixels, valid, transform)


def make_scenes(folder: Path) -> dict[str, Scene]:
    """Three scenes: two side by side on May 1 with a 1-degree gap between them (`wide`
    without a hole, `holed` with an internal-mask hole), and `tall` (nodata hole) on May 2
    and again on May 5. Widths differ from heights, to catch lat/lon swaps."""
    folder.mkdir(parents=True, exist_ok=True)
    scenes = [
        make_scene(folder, "wide", (300, 200), (10.0, 52.0), (MAY_1,), seed=1),
        make_scene(
            folder,
            "holed",
            (300, 200),
            (14.0, 52.0),
            (MAY_1,),
            seed=2,
            hole=(slice(50, 100), slice(60, 120)),
        ),
        make_scene(
            folder,
            "tall",
            (200, 300),
            (10.0, 52.0),
            (MAY_2, MAY_5),
            seed=3,
            hole=(slice(10, 40), slice(20, 50)),
            hole_as="nodata",
        ),
    ]
    return {scene.name: scene for scene in scenes}


def build_standin(folder: Path) -> Standin:
    scenes = make_scenes(folder / "scenes")
    pairs = [(scene.path, day) for scene in scenes.values() for day in scene.dates]
    archive = write_wms_archive(pairs, folder / "archive", layers=LAYERS, max_size=MAX_SIZE)
    return Standin(archive, scenes)


def require_mapserv() -> None:
    """Skip without MapServer, or fail under CI=true (CI installs it)."""
    try:
        find_mapserv()
    except InputError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {error}", pytrace=False)
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Standin:
    """The archive of the three scenes (see `make_scenes`) for both LAYERS."""
    return build_standin(tmp_path_factory.mktemp("wms"))


@pytest.fixture(scope="session")
def wms_url(standin: Standin) -> Iterator[str]:
    """The stand-in's WMS base URL, e.g. http://127.0.0.1:PORT/wms."""
    require_mapserv()
    with serve_wms(standin.archive) as url:
        yield url


def get_map(
    url: str,
    bbox: Bounds,
    size: tuple[int, int],
    date: datetime.date | str,
    layer: str = DEFAULT_LAYER,
    image_format: str = "image/png",
    transparent: bool = True,
) -> requests.Response:
    """GetMap 1.3.0 in EPSG:4326 over `bbox` (west, south, east, north) at `size`
    (width, height), as GIBS takes it: BBOX in lat,lon order."""
    day = date if isinstance(date, datetime.date) else datetime.date.fromisoformat(date)
    params = getmap_query(layer, bbox, size, day, image_format)
    params["TRANSPARENT"] = "TRUE" if transparent else "FALSE"
    return requests.get(url, params=params, timeout=30)


def decode(content: bytes) -> np.ndarray:
    """(bands, rows, cols) pixels of an image answer (a PNG has no georeferencing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memory, memory.open() as image:
            return image.read()
