"""A folder that MapServer 8 serves as a stand-in for NASA GIBS: per-date GeoTIFFs behind
time-indexed WMS 1.3.0 layers (`earthseg.synthetic.wms_server` puts it on loopback).

Tests, the benchmark and the demo fetch imagery from a real WMS with GIBS's habits: layers
with a `<Dimension name="time">`, `TIME=YYYY-MM-DD`, EPSG:4326 in lat,lon order, MaxWidth
and MaxHeight, transparent PNG where there is no data. Found by running MapServer 8.0:

- `wms_timedefault` is not set: with one, MapServer silently serves the default date for
  a TIME outside the extent instead of answering InvalidDimensionValue. So GetMap without
  TIME answers MissingDimensionValue (a client of GIBS always sends TIME).
- The time extent lists single dates and runs of consecutive days as `start/end/P1D`,
  the two forms GIBS uses; every date in it has a raster somewhere.
- A GDAL mask (internal mask, nodata, alpha) of a raster comes out as alpha 0.

The archive is relocatable: the tile indexes and the mapfile use paths relative to it,
and so does `mapserver.conf`, which mapserv must therefore run in the archive folder.
"""

from __future__ import annotations

import datetime
import re
import shutil
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

import geopandas as gpd
import rasterio
from rasterio.errors import RasterioIOError
from shapely.geometry import box

from earthseg.atomic import atomic_dir
from earthseg.errors import InputError

DEFAULT_LAYER = "MODIS_Aqua_CorrectedReflectance_TrueColor"
MAPFILE = "wms.map"
CONFIG = "mapserver.conf"  # MAPSERVER_CONFIG_FILE; relative paths: run mapserv in the archive
MAP_ALIAS = "EARTHSEG"  # `map=EARTHSEG` also works; without `map=`, MS_MAPFILE applies
RASTERS = "rasters"
INDEXES = "index"
LOCATION_ITEM = "location"
TIME_ITEM = "time"
SIDECARS = (".msk", ".aux.xml", ".ovr")  # GDAL's external mask, metadata, overviews
LAYER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

MAP_TEMPLATE = """\
MAP
  NAME "earthseg"
  EXTENT -180 -90 180 90
  UNITS DD
  SIZE 512 512
  MAXSIZE {max_size}
  SHAPEPATH "."
  PROJECTION
    "init=epsg:4326"
  END
  OUTPUTFORMAT
    NAME "png"
    DRIVER "AGG/PNG"
    MIMETYPE "image/png"
    IMAGEMODE RGBA
    EXTENSION "png"
  END
  OUTPUTFORMAT
    NAME "tiff"
    DRIVER "GDAL/GTiff"
    MIMETYPE "image/tiff"
    IMAGEMODE RGBA
    EXTENSION "tif"
  END
  WEB
    METADATA
      "wms_title" "earthseg stand-in for NASA GIBS"
      "wms_srs" "EPSG:4326"
      "wms_enable_request" "*"
      "wms_getmap_formatlist" "image/png,image/tiff"
    END
  END
{layers}END
"""

LAYER_TEMPLATE = """\
  LAYER
    NAME "{name}"
    TYPE RASTER
    STATUS ON
    TILEINDEX "{index}"
    TILEITEM "{location}"
    PROCESSING "RESAMPLE=NEAREST"
    PROJECTION
      "init=epsg:4326"
    END
    METADATA
      "wms_title" "{name}"
      "wms_timeitem" "{time}"
      "wms_timeextent" "{extent}"
    END
  END
"""

CONFIG_TEMPLATE = f"""\
CONFIG
  ENV
    MS_MAP_NO_PATH "1"
    MS_MAPFILE "{MAPFILE}"
  END
  MAPS
    {MAP_ALIAS} "{MAPFILE}"
  END
END
"""


def write_wms_archive(
    scenes: Iterable[tuple[Path, datetime.date]],
    out: Path,
    layers: tuple[str, ...] = (DEFAULT_LAYER,),
    max_size: int = 4096,
) -> Path:
    """Write a MapServer archive of `scenes` (EPSG:4326 RGB uint8 GeoTIFF, date) to `out`.

    Every layer serves every scene on its date; where scenes of one date overlap, the
    later one is drawn on top. `out` appears only once complete; it must not exist or be
    empty. Returns `out`.
    """
    out = Path(out)
    pairs = [(Path(path), datetime.date(day.year, day.month, day.day)) for path, day in scenes]
    if not pairs:
        raise InputError("scenes", "is empty", "give at least one (GeoTIFF, date) pair")
    bad = [name for name in layers if not LAYER_NAME.match(name)]
    if bad or not layers:
        raise InputError(
            f"layers {bad or list(layers)}", "are not WMS layer names", "use e.g. [A-Za-z0-9_.-]+"
        )
    if max_size < 1:
        raise InputError(f"max_size {max_size}", "is not positive", "give the MaxWidth in pixels")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(out, "already exists and is not empty", "choose a new folder or remove it")

    with atomic_dir(out) as tmp:
        (tmp / RASTERS).mkdir()
        rows = [_copy_scene(path, day, tmp) for path, day in pairs]
        index = gpd.GeoDataFrame(rows, crs="EPSG:4326")
        (tmp / INDEXES).mkdir()
        blocks = []
        extent = time_extent({day for _, day in pairs})
        for name in layers:
            shapefile = f"{INDEXES}/{name}.shp"
            index.to_file(tmp / shapefile, engine="pyogrio")
            blocks.append(
                LAYER_TEMPLATE.format(
                    name=name,
                    index=shapefile,
                    location=LOCATION_ITEM,
                    time=TIME_ITEM,
                    extent=extent,
                )
            )
        (tmp / MAPFILE).write_text(MAP_TEMPLATE.format(max_size=max_size, layers="".join(blocks)))
        (tmp / CONFIG).write_text(CONFIG_TEMPLATE)
    return out


def time_extent(days: Iterable[datetime.date]) -> str:
    """`wms_timeextent` for `days`: runs of consecutive days as `first/last/P1D`."""
    dates = sorted(set(days))
    items = []
    for _, run in groupby(enumerate(dates), key=lambda pair: pair[1].toordinal() - pair[0]):
        first, *rest = (day for _, day in run)
        items.append(f"{first}/{rest[-1]}/P1D" if rest else f"{first}")
    return ",".join(items)


def _copy_scene(path: Path, day: datetime.date, archive: Path) -> dict[str, object]:
    """Copy one scene (and its GDAL sidecars) under a dated name; return its index row."""
    _check_scene(path)
    stamp = day.isoformat()
    name = f"{stamp}_{path.stem}.tif"
    number = 1
    while (archive / RASTERS / name).exists():  # same stem and date from another folder
        number += 1
        name = f"{stamp}_{path.stem}-{number}.tif"
    target = archive / RASTERS / name
    shutil.copyfile(path, target)
    for suffix in SIDECARS:
        sidecar = path.with_name(path.name + suffix)
        if sidecar.is_file():
            shutil.copyfile(sidecar, target.with_name(target.name + suffix))
    with rasterio.open(target) as scene:
        bounds = box(*scene.bounds)
    return {LOCATION_ITEM: f"{RASTERS}/{name}", TIME_ITEM: stamp, "geometry": bounds}


def _check_scene(path: Path) -> None:
    fix = "give EPSG:4326 GeoTIFFs with 3 (RGB) or 4 (RGBA) uint8 bands"
    try:
        with rasterio.open(path) as scene:
            epsg = scene.crs.to_epsg() if scene.crs else None
            count, dtype = scene.count, scene.dtypes[0]
    except RasterioIOError as error:
        raise InputError(path, f"cannot be read as a raster ({error})", fix) from None
    if epsg != 4326:
        raise InputError(path, f"is in {f'EPSG:{epsg}' if epsg else 'no known CRS'}", fix)
    if count not in (3, 4) or dtype != "uint8":
        raise InputError(path, f"has {count} bands of {dtype}", fix)
