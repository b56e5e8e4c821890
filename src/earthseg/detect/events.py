"""From a scene's probabilities, streamed in row blocks, to its detected events.

An event is a 4-connected region of pixels at or above the threshold in one scene (one
date, one imagery layer): the same connectivity as `rasterio.features.shapes`, so an
event's polygon is exactly its pixels. Scenes reach 16384 px a side and more, so they come
in row blocks and memory follows the width: each block is labelled (scipy.ndimage) and
polygonized (rasterio) alone, its occupied parts only when they are few, and regions cut
by block edges are joined (union-find) by matching the labels along the last row of one
block and the first row of the next. Only the regions still touching the last row stay
open; the others become events at once.

Polygons are traced in pixel coordinates, where the pieces of a region meet on exact
integer edges, and placed on the map only once whole: then reprojected to EPSG:4326 and
measured on the WGS84 ellipsoid (km², never square degrees), so a catalogue is the same
whatever the block heights were.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.warp import transform_geom
from scipy import ndimage
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape

from earthseg.atomic import atomic_file
from earthseg.errors import InputError
from earthseg.serve.geo import Grid

GEOD = Geod(ellps="WGS84")
LONLAT = CRS.from_epsg(4326)
SCENE_EVENTS_FORMAT = "earthseg-scene-events"
SCENE_EVENTS_VERSION = 1

# Only the occupied parts of a block are labelled and traced: GDAL's polygonizer costs
# 12-30 ns per pixel scanned, empty or not, more than all the rest for a sparse scene.
TILE = 16  # px: the side of the tiles whose occupancy finds those parts
PACK_LIMIT = 0.5  # parts covering more of the block than this: trace the block whole
AREA_CELL = 32  # px: the side of the cells of a projected grid given one pixel area
DENSIFY = 64.0  # px: longest polygon edge reprojected straight (the true edge curves)


@dataclass(frozen=True)
class SceneKey:
    """What the catalogue says of a scene."""

    scene: str  # the scene's name (file stem), unique in a run
    date: datetime.date | None
    layer: str | None


@dataclass(frozen=True)
class Event:
    """One detected plume: a 4-connected region of pixels >= threshold in one scene."""

    id: str  # f"{scene}-{n}", n from 1 in order of first row, then column
    scene: str
    date: datetime.date | None
    layer: str | None
    geometry: shapely.Polygon | shapely.MultiPolygon  # EPSG:4326 lon/lat, RFC 7946 winding
    area_km2: float  # geodesic, on the WGS84 ellipsoid
    pixels: int
    mean_probability: float
    max_probability: float
    bounds: tuple[float, float, float, float]  # west, south, east, north (degrees)


@dataclass(frozen=True)
class SceneEvents:
    """What one scene gave: its events and the area it observed."""

    key: SceneKey
    events: tuple[Event, ...]
    observed_km2: float  # geodesic area of the pixels holding data (the dust share of a day)
    threshold: float


def event_record(event: Event) -> dict[str, Any]:
    """An event's attributes as the catalogue's columns (all but the geometry)."""
    west, south, east, north = event.bounds
    return {
        "id": event.id,
        "scene": event.scene,
        "date": None if event.date is None else event.date.isoformat(),
        "layer": event.layer,
        "area_km2": event.area_km2,
        "pixels": event.pixels,
        "mean_probability": event.mean_probability,
        "max_probability": event.max_probability,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
    }


@dataclass
class _Region:
    """A region being gathered: its pixel statistics and polygon pieces (pixel coordinates)."""

    pixels: int
    total: float  # sum of probabilities
    peak: float
    first: int  # raster index (row * width + column) of its first pixel
    pieces: list[shapely.Polygon] = field(default_factory=list)

    def absorb(self, other: _Region) -> None:
        self.pixels += other.pixels
        self.total += other.total
        self.peak = max(self.peak, other.peak)
        self.first = min(self.first, other.first)
        self.pieces.extend(other.pieces)


@dataclass(frozen=True)
class _Packed:
    """A block's occupied parts, side by side on one canvas, labelled.

    `flat`: canvas indices of the positive pixels; `first`: per label, the canvas index of
    its first pixel; `shift`: per label, (row, column) from canvas to block; `top_line`
    and `bottom_line`: the labels along the block's first and last rows.
    """

    values: np.ndarray
    labels: np.ndarray
    count: int
    flat: np.ndarray
    first: np.ndarray
    shift: np.ndarray
    top_line: np.ndarray
    bottom_line: np.ndarray


class EventCollector:
    """Gathers one scene's events from its probabilities, fed in row blocks."""

    def __init__(self, key: SceneKey, grid: Grid, threshold: float, min_pixels: int = 1) -> None:
        if grid.crs is None:
            raise InputError(
                key.scene,
                "the scene has no CRS, so its events cannot be placed on the map or measured",
                "assign the scene its CRS (e.g. gdal_edit.py -a_srs EPSG:32633 scene.tif)",
            )
        self.key = key
        self.grid = grid
        self.threshold = float(threshold)
        self.min_pixels = min_pixels
        self._crs: CRS = grid.crs
        self._transformer = Transformer.from_crs(
            ProjCRS.from_user_input(grid.crs.to_wkt()), "EPSG:4326", always_xy=True
        )
        self._areas = _PixelAreas(grid, self._transformer)
        self._next_row = 0
        self._observed_m2 = 0.0
        self._open: dict[int, _Region] = {}  # by id, the regions on the last row so far
        self._carry = np.zeros(grid.width, dtype=np.int64)  # region id along that row
        self._next_id = 1
        self._found: list[tuple[int, int, float, float, Any]] = []
        self._finished = False

    def add(self, top: int, probabilities: np.ndarray) -> None:
        """(rows, grid.width) float32 block starting at row `top`; NaN = no data. Blocks
        come in order, contiguous from row 0, of any heights."""
        block = np.asarray(probabilities, dtype=np.float32)
        rows = self._check_block(top, block)
        if rows == 0:
            return
        nodata = np.isnan(block)
        self._observed_m2 += self._areas.observed_m2(top, rows, nodata if nodata.any() else None)
        packed = _pack(block, block >= self.threshold)  # NaN is never >= anything
        self._join(top, packed)
        self._next_row += rows

    def finish(self) -> SceneEvents:
        """The scene's events, numbered in order of their first pixel."""
        if self._finished:
            raise ValueError(f"scene {self.key.scene}: finish() was already called")
        if self._next_row != self.grid.height:
            raise ValueError(
                f"scene {self.key.scene}: rows {self._next_row}..{self.grid.height} never came"
            )
        for region in self._open.values():
            self._close(region)
        self._open.clear()
        self._finished = True
        self._found.sort(key=lambda found: found[0])
        events = tuple(
            self._event(n, pixels, mean, peak, geometry)
            for n, (_, pixels, mean, peak, geometry) in enumerate(self._found, start=1)
        )
        return SceneEvents(self.key, events, self._observed_m2 / 1e6, self.threshold)

    def _check_block(self, top: int, block: np.ndarray) -> int:
        if self._finished:
            raise ValueError(f"scene {self.key.scene}: add() after finish()")
        if block.ndim != 2 or block.shape[1] != self.grid.width:
            raise ValueError(
                f"scene {self.key.scene}: a block must be (rows, {self.grid.width}), "
                f"not {block.shape}"
            )
        if top != self._next_row or top + block.shape[0] > self.grid.height:
            raise ValueError(
                f"scene {self.key.scene}: block of rows {top}..{top + block.shape[0]} "
                f"where row {self._next_row} (of {self.grid.height}) comes next"
            )
        return int(block.shape[0])

    def _join(self, top: int, packed: _Packed) -> None:
        """Add a labelled block: continue the open regions it touches, close the others."""
        regions = self._block_regions(top, packed)
        parent: dict[int, int] = {}  # union-find: open region r is -r, block label j is j

        def root(node: int) -> int:
            parent.setdefault(node, node)
            while parent[node] != node:
                parent[node] = parent[parent[node]]
                node = parent[node]
            return node

        touching = (self._carry > 0) & (packed.top_line > 0)
        pairs = np.unique(
            np.stack([self._carry[touching], packed.top_line[touching]], axis=1), axis=0
        )
        for region_id, label in pairs.tolist():
            parent[root(-region_id)] = root(label)
        groups: dict[int, list[int]] = {}
        for node in list(parent):
            groups.setdefault(root(node), []).append(node)
        for node in regions:
            if node not in parent:
                groups[node] = [node]

        open_ids = np.zeros(packed.count + 1, dtype=np.int64)
        on_bottom = set(np.unique(packed.bottom_line).tolist()) - {0}
        still_open: dict[int, _Region] = {}
        for members in groups.values():
            labels = sorted(node for node in members if node > 0)
            merged = [self._open.pop(-node) for node in members if node < 0]
            merged += [regions[label] for label in labels]
            region = merged[0]
            for other in merged[1:]:
                region.absorb(other)
            if on_bottom.intersection(labels):
                still_open[self._next_id] = region
                open_ids[labels] = self._next_id
                self._next_id += 1
            else:
                self._close(region)
        for region in self._open.values():  # open regions the block did not continue
            self._close(region)
        self._open = still_open
        self._carry = open_ids[packed.bottom_line]

    def _block_regions(self, top: int, packed: _Packed) -> dict[int, _Region]:
        """Each label's statistics and polygon, on the scene's rows and columns."""
        n = packed.count
        if n == 0:
            return {}
        labels = packed.labels.ravel()[packed.flat]
        values = packed.values.ravel()[packed.flat]
        pixels = np.bincount(labels, minlength=n + 1)
        totals = np.bincount(labels, weights=values, minlength=n + 1)
        peaks = np.full(n + 1, -np.inf, dtype=np.float32)
        np.maximum.at(peaks, labels, values)
        row, col = np.divmod(packed.first, packed.labels.shape[1])
        first = (top + row + packed.shift[:, 0]) * self.grid.width + col + packed.shift[:, 1]
        # Regions complete in this block and too small are dropped before tracing.
        small = pixels < self.min_pixels
        small[packed.top_line] = False
        small[packed.bottom_line] = False
        regions = {
            j: _Region(int(pixels[j]), float(totals[j]), float(peaks[j]), int(first[j]))
            for j in range(1, n + 1)
            if not small[j]
        }
        traced = ~small
        traced[0] = False
        offsets = packed.shift[:, ::-1] + np.array([0, top])  # (x, y) per label
        for geometry, value in shapes(packed.labels, mask=traced[packed.labels]):
            rings = [np.array(ring) + offsets[int(value)] for ring in geometry["coordinates"]]
            regions[int(value)].pieces.append(shapely.Polygon(rings[0], rings[1:]))
        return regions

    def _close(self, region: _Region) -> None:
        """A region that can grow no more: an event if large enough."""
        if region.pixels < self.min_pixels:
            return
        if len(region.pieces) == 1:
            pixel_shape = region.pieces[0]
        else:  # pieces meet on block edges: drop the vertices left along them
            joined = shapely.union_all(region.pieces)
            pixel_shape = shapely.simplify(joined, 0.0, preserve_topology=False)
        pixel_shape = shapely.normalize(pixel_shape)  # the same vertices whatever the blocks
        mean = region.total / region.pixels
        self._found.append(
            (region.first, region.pixels, mean, region.peak, self._to_lonlat(pixel_shape))
        )

    def _to_lonlat(self, pixel_shape: Any) -> Any:
        """A polygon in pixel coordinates as a (Multi)Polygon in EPSG:4326, RFC 7946 winding.

        Long edges get vertices every DENSIFY pixels first: a straight edge in the grid's CRS
        (even a parallel of a lon/lat grid) is no geodesic, which the area measure assumes.
        """
        placed = _affine(shapely.segmentize(pixel_shape, DENSIFY), self.grid)
        if self._crs != LONLAT:
            projected = placed
            placed = shapely.transform(projected, self._project)
            west, _, east, _ = placed.bounds
            if east - west > 180:  # across the antimeridian: cut there, as RFC 7946 asks
                placed = shape(transform_geom(self._crs, LONLAT, mapping(projected)))
        return shapely.orient_polygons(placed, exterior_cw=False)

    def _project(self, xy: np.ndarray) -> np.ndarray:
        lon, lat = self._transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    def _event(self, n: int, pixels: int, mean: float, peak: float, geometry: Any) -> Event:
        west, south, east, north = _bounds(geometry)
        return Event(
            id=f"{self.key.scene}-{n}",
            scene=self.key.scene,
            date=self.key.date,
            layer=self.key.layer,
            geometry=geometry,
            area_km2=_geodesic_km2(geometry),
            pixels=pixels,
            mean_probability=mean,
            max_probability=peak,
            bounds=(west, south, east, north),
        )


def _geodesic_km2(geometry: Any) -> float:
    """The area of a lon/lat (Multi)Polygon on WGS84: what Geod.geometry_area_perimeter
    measures, ring by ring, but from coordinate arrays (its own path copies every vertex
    through Python), and holes subtracted whatever their winding."""
    total = 0.0
    for polygon in getattr(geometry, "geoms", (geometry,)):
        for n, ring in enumerate((polygon.exterior, *polygon.interiors)):
            lon, lat = shapely.get_coordinates(ring).T
            area, _ = GEOD.polygon_area_perimeter(lon, lat)
            total += abs(area) if n == 0 else -abs(area)
    return total / 1e6


def _bounds(geometry: Any) -> tuple[float, float, float, float]:
    """West, south, east, north; for a geometry cut at the antimeridian, west > east
    (RFC 7946, 5.2) rather than a box round the world."""
    west, south, east, north = (float(value) for value in geometry.bounds)
    if east - west > 180 and isinstance(geometry, shapely.MultiPolygon):
        eastern = [part.bounds[0] for part in geometry.geoms if part.bounds[0] >= 0]
        western = [part.bounds[2] for part in geometry.geoms if part.bounds[2] <= 0]
        if eastern and western:
            west, east = float(min(eastern)), float(max(western))
    return west, south, east, north


def _affine(geometry: Any, grid: Grid) -> Any:
    """Pixel coordinates (column, row) to the grid's map coordinates."""
    t = grid.transform
    matrix = np.array([[t.a, t.d], [t.b, t.e]])
    return shapely.transform(geometry, lambda xy: xy @ matrix + (t.c, t.f))


def _pack(block: np.ndarray, positive: np.ndarray) -> _Packed:
    """Label the block's positive pixels, tracing only the parts of it that hold some.

    The occupied parts are rectangles of tiles that no region crosses; when they cover
    little of the block they are copied side by side (shelf packing, one empty pixel
    apart) onto a canvas that is labelled and traced instead of the whole block.
    """
    height, width = positive.shape
    boxes = _occupied_boxes(positive)
    if sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in boxes) > PACK_LIMIT * height * width:
        boxes = [(0, height, 0, width)]
    if boxes == [(0, height, 0, width)]:
        values, occupied, places = block, positive, [(0, 0)]
    else:
        places, canvas = _shelves(boxes)
        values = np.zeros(canvas, dtype=np.float32)
        occupied = np.zeros(canvas, dtype=bool)
        for (r0, r1, c0, c1), (y, x) in zip(boxes, places, strict=True):
            values[y : y + r1 - r0, x : x + c1 - c0] = block[r0:r1, c0:c1]
            occupied[y : y + r1 - r0, x : x + c1 - c0] = positive[r0:r1, c0:c1]
    labels, count = ndimage.label(occupied)  # 4-connected, as rasterio traces
    labels = labels.astype(np.int32, copy=False)
    flat = np.flatnonzero(labels)
    first = np.zeros(count + 1, dtype=np.int64)
    first[1:] = np.iinfo(np.int64).max
    np.minimum.at(first, labels.ravel()[flat], flat)
    owner = np.zeros(labels.shape, dtype=np.int32) if len(boxes) > 1 else None
    top_line = np.zeros(width, dtype=np.int32)
    bottom_line = np.zeros(width, dtype=np.int32)
    for index, ((r0, r1, c0, c1), (y, x)) in enumerate(zip(boxes, places, strict=True)):
        if owner is not None:
            owner[y : y + r1 - r0, x : x + c1 - c0] = index
        if r0 == 0:
            top_line[c0:c1] = labels[y, x : x + c1 - c0]
        if r1 == height:
            bottom_line[c0:c1] = labels[y + r1 - r0 - 1, x : x + c1 - c0]
    corners = np.array(
        [(r0 - y, c0 - x) for (r0, _, c0, _), (y, x) in zip(boxes, places, strict=True)],
        dtype=np.int64,
    ).reshape(-1, 2)
    shift = np.zeros((count + 1, 2), dtype=np.int64)
    if count:
        shift[1:] = corners[0] if owner is None else corners[owner.ravel()[first[1:]]]
    return _Packed(values, labels, count, flat, first, shift, top_line, bottom_line)


def _occupied_boxes(positive: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Disjoint rectangles (row0, row1, col0, col1) holding every positive pixel, each
    region wholly inside one: the bounding boxes of 4-connected occupied tiles, grown
    until no two overlap or touch."""
    height, width = positive.shape
    occupied = _tile_any(positive)
    while True:
        clusters, _ = ndimage.label(occupied)
        slices = [found for found in ndimage.find_objects(clusters) if found is not None]
        filled = np.zeros_like(occupied)
        for found in slices:
            filled[found] = True
        if np.array_equal(filled, occupied):
            break
        occupied = filled
    return [
        (
            rows.start * TILE,
            min(rows.stop * TILE, height),
            cols.start * TILE,
            min(cols.stop * TILE, width),
        )
        for rows, cols in slices
    ]


def _tile_any(positive: np.ndarray) -> np.ndarray:
    """Which TILE x TILE tiles of the block hold a positive pixel (last ones partial)."""
    height, width = positive.shape
    whole = height - height % TILE
    bands = []
    if whole:
        bands.append(positive[:whole].reshape(whole // TILE, TILE, width).any(axis=1))
    if whole < height:
        bands.append(positive[whole:].any(axis=0, keepdims=True))
    rows = np.concatenate(bands)
    pad = -width % TILE
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    return np.asarray(rows.reshape(rows.shape[0], -1, TILE).any(axis=2))


def _shelves(
    boxes: list[tuple[int, int, int, int]],
) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Where each box goes on a canvas about as wide as high (shelves, tallest first, one
    pixel apart), and the canvas's (height, width)."""
    width = max(
        max((c1 - c0 for _, _, c0, c1 in boxes), default=0),
        math.isqrt(sum((r1 - r0 + 1) * (c1 - c0 + 1) for r0, r1, c0, c1 in boxes)),
    )
    places: list[tuple[int, int]] = [(0, 0)] * len(boxes)
    x = y = shelf = 0
    for index in sorted(range(len(boxes)), key=lambda i: boxes[i][0] - boxes[i][1]):
        r0, r1, c0, c1 = boxes[index]
        if x and x + c1 - c0 > width:
            x, y, shelf = 0, y + shelf + 1, 0
        places[index] = (y, x)
        x += c1 - c0 + 1
        shelf = max(shelf, r1 - r0)
    return places, (y + shelf, width)


class _PixelAreas:
    """The geodesic area (WGS84) of a grid's pixels, summed over those holding data.

    A geographic north-up grid is exact: every pixel of a row is the same ellipsoidal
    quadrangle, whose area has a closed form (its lon/lat taken as WGS84's). Any other
    grid is cut into cells of AREA_CELL x AREA_CELL pixels, whose corners go to a Lambert
    azimuthal equal-area projection centred on the scene, where plane areas are the
    ellipsoid's; a cell's area is shared evenly by its pixels. Two approximations: the
    cell's edges are taken as straight there too (relative error ~1e-5 for 1 km pixels,
    falling with the square of the pixel size), and its pixels as equal (a projection's
    scale varies little over AREA_CELL pixels). Valid for any scene smaller than a
    hemisphere, poles and the antimeridian included.
    """

    def __init__(self, grid: Grid, to_lonlat: Transformer) -> None:
        assert grid.crs is not None
        self.grid = grid
        t = grid.transform
        self._by_row = bool(grid.crs.is_geographic) and t.b == 0 and t.d == 0
        self._starts = np.arange(0, grid.width, AREA_CELL)
        self._widths = np.diff(np.append(self._starts, grid.width))
        lon, lat = to_lonlat.transform(*(t * (grid.width / 2, grid.height / 2)))
        self._to_plane = Transformer.from_crs(
            ProjCRS.from_user_input(grid.crs.to_wkt()),
            ProjCRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=WGS84 +units=m"),
            always_xy=True,
        )
        self._band = -1
        self._band_areas = np.zeros(0)

    def observed_m2(self, top: int, rows: int, nodata: np.ndarray | None) -> float:
        """The area of the rows top..top+rows, less the pixels `nodata` marks."""
        width = self.grid.width
        if self._by_row:
            valid = np.full(rows, width) if nodata is None else width - nodata.sum(axis=1)
            return float(valid @ self.row_areas(top, rows))
        total, start = 0.0, top
        while start < top + rows:  # band by band of AREA_CELL scene rows
            stop = min((start // AREA_CELL + 1) * AREA_CELL, top + rows)
            valid = self._widths * (stop - start)
            if nodata is not None:
                band = nodata[start - top : stop - top].view(np.uint8)
                columns = band.sum(axis=0, dtype=np.uint8)  # AREA_CELL rows at most: no overflow
                valid = valid - np.add.reduceat(columns, self._starts, dtype=np.int64)
            total += float(valid @ self._areas_of_band(start // AREA_CELL))
            start = stop
        return total

    def row_areas(self, top: int, rows: int) -> np.ndarray:
        """m² of one pixel of each row of a geographic north-up grid."""
        t = self.grid.transform
        q = _authalic_q(t.f + t.e * np.arange(top, top + rows + 1))
        return GEOD.a**2 / 2 * abs(math.radians(t.a)) * np.abs(np.diff(q))

    def _areas_of_band(self, band: int) -> np.ndarray:
        """m² of one pixel in each cell of a band of AREA_CELL rows (the last one kept)."""
        if band != self._band:
            self._band_areas = self._measure_band(band)
            self._band = band
        return self._band_areas

    def _measure_band(self, band: int) -> np.ndarray:
        top = band * AREA_CELL
        bottom = min(top + AREA_CELL, self.grid.height)
        cols = np.append(self._starts, self.grid.width).astype(float)
        x, y = self.grid.transform * (np.tile(cols, 2), np.repeat([top, bottom], len(cols)))
        x, y = (np.asarray(v).reshape(2, -1) for v in self._to_plane.transform(x, y))
        # Each cell's ring: top-left, top-right, bottom-right, bottom-left (shoelace).
        ring_x = np.stack([x[0, :-1], x[0, 1:], x[1, 1:], x[1, :-1]])
        ring_y = np.stack([y[0, :-1], y[0, 1:], y[1, 1:], y[1, :-1]])
        twice = (ring_x * np.roll(ring_y, -1, axis=0) - np.roll(ring_x, -1, axis=0) * ring_y).sum(
            axis=0
        )
        return np.abs(twice) / 2 / (self._widths * (bottom - top))


def _authalic_q(latitudes: np.ndarray) -> np.ndarray:
    """Snyder's q(φ) on WGS84: a quadrangle spanning Δλ radians between latitudes φ1 and
    φ2 has the area a²/2 · Δλ · (q(φ2) - q(φ1)) (Snyder 1987, eq. 3-12)."""
    e2 = GEOD.es
    e = math.sqrt(e2)
    s = np.sin(np.radians(np.clip(latitudes, -90.0, 90.0)))
    return (1 - e2) * (s / (1 - e2 * s * s) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))


def write_scene_events(path: Path, scene: SceneEvents) -> None:
    """Write a scene's events as a GeoJSON FeatureCollection (RFC 7946), the scene's key,
    observed area and threshold in a top-level `earthseg` member, so a resumed run reads
    the scene back instead of detecting it again; atomically."""
    key = scene.key
    collection = {
        "type": "FeatureCollection",
        "earthseg": {
            "format": SCENE_EVENTS_FORMAT,
            "version": SCENE_EVENTS_VERSION,
            "scene": key.scene,
            "date": None if key.date is None else key.date.isoformat(),
            "layer": key.layer,
            "observed_km2": scene.observed_km2,
            "threshold": scene.threshold,
        },
        "features": [event_feature(event) for event in scene.events],
    }
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(collection, separators=(",", ":")), encoding="utf-8")


def event_feature(event: Event) -> dict[str, Any]:
    """An event as a GeoJSON Feature: its catalogue columns as properties."""
    return {
        "type": "Feature",
        "id": event.id,
        "bbox": list(event.bounds),
        "geometry": mapping(event.geometry),
        "properties": event_record(event),
    }


def read_scene_events(path: Path) -> SceneEvents:
    """A scene's events as `write_scene_events` wrote them."""
    fix = "delete the file; the next run detects the scene again"
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
        head = collection["earthseg"]
        if head["format"] != SCENE_EVENTS_FORMAT or head["version"] != SCENE_EVENTS_VERSION:
            raise InputError(path, f"is not a {SCENE_EVENTS_FORMAT} file of version 1", fix)
        key = SceneKey(head["scene"], _date(head["date"]), head["layer"])
        events = tuple(_event_from_feature(feature) for feature in collection["features"])
        return SceneEvents(key, events, float(head["observed_km2"]), float(head["threshold"]))
    except (OSError, ValueError, KeyError, TypeError, ShapelyError) as error:
        raise InputError(path, f"cannot be read as a scene's events ({error})", fix) from None


def _event_from_feature(feature: dict[str, Any]) -> Event:
    properties = feature["properties"]
    return Event(
        id=properties["id"],
        scene=properties["scene"],
        date=_date(properties["date"]),
        layer=properties["layer"],
        geometry=shape(feature["geometry"]),
        area_km2=float(properties["area_km2"]),
        pixels=int(properties["pixels"]),
        mean_probability=float(properties["mean_probability"]),
        max_probability=float(properties["max_probability"]),
        bounds=tuple(float(properties[side]) for side in ("west", "south", "east", "north")),  # type: ignore[arg-type]
    )


def _date(text: str | None) -> datetime.date | None:
    return None if text is None else datetime.date.fromisoformat(text)
