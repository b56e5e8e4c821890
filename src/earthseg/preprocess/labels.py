"""Vector labels from an ImageLabeler export: read, check, repair, reproject to a scene.

Labels arrive as .shp (with sidecars), zipped .shp, .geojson or .gpkg, in any CRS (an
ImageLabeler shapefile without .prj: WGS84 longitude/latitude). What leaves this module
is a list of valid polygons in the scene's CRS, or an `InputError` that names the file
and the fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from earthseg.errors import InputError

log = logging.getLogger(__name__)

LABEL_SUFFIXES = (".shp", ".zip", ".geojson", ".json", ".gpkg")
SHAPEFILE_SIDECARS = (".shx", ".dbf", ".prj", ".cpg")
FORMATS_HINT = ".shp with its .shx/.dbf/.prj sidecars, a .zip of those, .geojson or .gpkg"
WGS84 = "EPSG:4326"


def label_files(path: Path) -> list[Path]:
    """The files that make up one label set: a shapefile's sidecars count, for digests."""
    if path.suffix.lower() != ".shp":
        return [path]
    sidecars = (path.with_suffix(suffix) for suffix in SHAPEFILE_SIDECARS)
    return [path, *(p for p in sidecars if p.exists())]


def read_labels(
    path: Path, assume_wgs84: bool = False, source: Path | None = None
) -> gpd.GeoSeries:
    """Read the geometries of a label file, refusing what cannot be georeferenced.

    `assume_wgs84` is for ImageLabeler's exports, whose shapefiles are drawn in longitude
    and latitude but sometimes come without a .prj: such a file is read as EPSG:4326 if its
    coordinates can be longitude and latitude. Messages name `source` (default `path`;
    for a file unpacked from a zip, where it is in the zip).
    """
    path = Path(path)
    source = source or path
    try:
        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            names = ", ".join(str(name) for name in layers[:, 0])
            raise InputError(
                source,
                f"holds {len(layers)} layers ({names}) and it is unclear which are labels",
                "keep one layer of label polygons per file",
            )
        frame = gpd.read_file(path, columns=[])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise InputError(
            source,
            f"cannot be read as vector labels ({error})",
            f"export it again as {FORMATS_HINT}",
        ) from error
    if frame.crs is None:
        if not (assume_wgs84 and _lon_lat(frame.geometry)):
            raise InputError(
                source,
                "has no coordinate reference system (for a shapefile: the .prj sidecar is missing)",
                "copy the .prj that came with the export beside it, or assign the CRS the "
                "polygons were drawn in (e.g. `ogr2ogr -a_srs EPSG:4326 fixed.shp labels.shp`)",
            )
        log.warning(
            "%s: no .prj beside it; read as EPSG:4326 longitude/latitude, as ImageLabeler draws",
            source,
        )
        frame = frame.set_crs(WGS84)
    return frame.geometry


def _lon_lat(geometries: gpd.GeoSeries) -> bool:
    """Whether every coordinate can be a longitude and a latitude (an empty set can)."""
    west, south, east, north = geometries.total_bounds
    if np.isnan(west):
        return True
    return bool(-180 <= west <= east <= 180 and -90 <= south <= north <= 90)


def clean_polygons(geometries: gpd.GeoSeries, source: Path) -> gpd.GeoSeries:
    """Drop empty geometries and repair invalid ones, saying what was done.

    Experts' polygons often self-intersect where a lasso crossed itself; `make_valid`
    keeps the area they meant. Points and lines have no area to burn and are refused.
    """
    empty = geometries.isna() | geometries.is_empty
    if empty.any():
        log.warning("%s: dropped %d empty geometries", source, int(empty.sum()))
    kept = geometries[~empty]
    kinds = Counter(kind for kind in kept.geom_type if kind not in ("Polygon", "MultiPolygon"))
    if kinds:
        found = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        raise InputError(
            source,
            f"holds {found} geometries; labels must be polygons",
            "draw the events as polygons (ImageLabeler's polygon tool) and export again",
        )
    invalid = ~kept.is_valid
    if invalid.any():
        reasons = sorted({shapely.is_valid_reason(g) for g in kept[invalid]})
        kept = kept.copy()
        kept[invalid] = [_polygonal_part(shapely.make_valid(g)) for g in kept[invalid]]
        log.warning(
            "%s: repaired %d invalid polygons (%s)", source, int(invalid.sum()), "; ".join(reasons)
        )
        kept = kept[~kept.is_empty]
    if kept.empty:
        raise InputError(
            source, "holds no usable polygons", "label at least one event, or remove the scene"
        )
    return kept


def _polygonal_part(geometry: BaseGeometry) -> BaseGeometry:
    """The area of a repaired geometry: make_valid may add stray lines or points."""
    if isinstance(geometry, shapely.GeometryCollection):
        parts = [g for g in geometry.geoms if isinstance(g, shapely.Polygon | shapely.MultiPolygon)]
        return shapely.union_all(parts) if parts else shapely.Polygon()
    return geometry


def labels_for_scene(
    path: Path,
    scene_crs: CRS,
    scene_bounds: tuple[float, float, float, float],
    scene: Path,
    assume_wgs84: bool = False,
    source: Path | None = None,
) -> np.ndarray:
    """Polygons of `path` in the scene's CRS that overlap the scene, as a shapely array
    (`assume_wgs84`, `source`: as `read_labels`)."""
    source = source or Path(path)
    polygons = clean_polygons(read_labels(path, assume_wgs84, source), source).to_crs(scene_crs)
    overlapping = polygons.intersects(shapely.box(*scene_bounds))
    if not overlapping.any():
        found = ", ".join(f"{v:.6g}" for v in polygons.total_bounds)
        wanted = ", ".join(f"{v:.6g}" for v in scene_bounds)
        raise InputError(
            source,
            f"no polygon overlaps scene {scene.name} (labels span {found}, the scene "
            f"{wanted}, both in {scene_crs.to_string()})",
            "pair the labels with the scene they were drawn on, or fix their CRS (.prj)",
        )
    outside = int((~overlapping).sum())
    if outside:
        log.warning("%s: %d of %d polygons lie outside %s", source, outside, len(polygons), scene)
    return np.asarray(polygons[overlapping].values)
