"""Streaming events: row blocks of any height give the events of the whole scene, each an
exact 4-connected region of pixels >= threshold, with geodesic areas checked against
closed forms and independent geodesic measures, on lon/lat, UTM (a real raster), equal-area
and polar grids; the per-scene events file reads back exactly."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_bounds
from scipy import ndimage

from earthseg.detect.events import (
    EventCollector,
    SceneEvents,
    SceneKey,
    read_scene_events,
    write_scene_events,
)
from earthseg.errors import InputError
from earthseg.serve.geo import Grid, describe

KEY = SceneKey("scene", datetime.date(2024, 5, 17), "MODIS_Terra_CorrectedReflectance_TrueColor")
WGS84 = Geod(ellps="WGS84")
# A lon/lat grid of 0.01° pixels over Iceland: the lon/lat of a pixel corner is exact.
ICELAND = Affine(0.01, 0, -20.0, 0, -0.01, 66.0)


def collect(
    probabilities: np.ndarray,
    grid: Grid,
    heights: list[int],
    threshold: float = 0.5,
    min_pixels: int = 1,
    key: SceneKey = KEY,
) -> SceneEvents:
    """Stream `probabilities` to a collector in blocks of `heights` rows, cycled."""
    collector = EventCollector(key, grid, threshold, min_pixels)
    top, turn = 0, 0
    while top < grid.height:
        rows = heights[turn % len(heights)]
        collector.add(top, probabilities[top : top + rows])
        top, turn = min(top + rows, grid.height), turn + 1
    return collector.finish()


def blobs(shape: tuple[int, int], scale: int, seed: int, nodata: float = 0.03) -> np.ndarray:
    """Smooth random probabilities (blobs about `scale` px across) with scattered NaN."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((shape[0] // scale + 2, shape[1] // scale + 2))
    field = ndimage.zoom(coarse, scale, order=1)[: shape[0], : shape[1]].astype(np.float32)
    field[rng.random(shape) < nodata] = np.nan
    return field


def zone_km2(west: float, south: float, east: float, north: float) -> float:
    """The area of a lon/lat quadrangle on the WGS84 ellipsoid, in closed form (authalic
    latitude, Snyder 1987 eq. 3-12), not the code under test."""
    a, e2 = 6378137.0, 0.00669437999014
    e = math.sqrt(e2)

    def q(latitude: float) -> float:
        s = math.sin(math.radians(latitude))
        return (1 - e2) * (s / (1 - e2 * s * s) - math.log((1 - e * s) / (1 + e * s)) / (2 * e))

    return a * a / 2 * math.radians(east - west) * (q(north) - q(south)) / 1e6


def footprint_km2(grid: Grid) -> float:
    """The geodesic area of a grid's outline, densified, measured by pyproj on WGS84."""
    assert grid.crs is not None
    ring = shapely.segmentize(shapely.box(0, 0, grid.width, grid.height), 1.0).exterior
    cols, rows = np.asarray(ring.coords).T
    x, y = grid.transform * (cols, rows)
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return abs(WGS84.polygon_area_perimeter(lon, lat)[0]) / 1e6


def pixels_of(geometry: shapely.Geometry, grid: Grid) -> np.ndarray:
    """The pixels whose centres a lon/lat geometry covers, on a lon/lat grid."""
    shape = (grid.height, grid.width)
    return rasterize([geometry], out_shape=shape, transform=grid.transform).astype(bool)


@pytest.mark.parametrize("threshold", [0.6, 0.9])  # blocks traced whole; packed
def test_events_are_the_4_connected_regions_whatever_the_block_heights(threshold: float) -> None:
    grid = Grid(173, 131, CRS.from_epsg(4326), ICELAND)
    field = blobs((131, 173), scale=9, seed=3)
    whole = collect(field, grid, [131], threshold)

    # The regions, found independently on the whole scene, in order of first pixel.
    regions, count = ndimage.label(field >= threshold)
    assert count > 5
    firsts = [np.flatnonzero(regions == j)[0] for j in range(1, count + 1)]
    order = np.argsort(firsts) + 1
    assert [event.id for event in whole.events] == [f"scene-{n}" for n in range(1, count + 1)]
    for event, label in zip(whole.events, order, strict=True):
        region = regions == label
        assert event.pixels == region.sum()
        assert event.max_probability == field[region].max()
        assert event.mean_probability == pytest.approx(field[region].mean(dtype=np.float64))
        assert (pixels_of(event.geometry, grid) == region).all()  # exactly its pixels
        assert (event.scene, event.date, event.layer) == (KEY.scene, KEY.date, KEY.layer)
        assert event.bounds == event.geometry.bounds

    for heights in ([1], [7], [2, 13, 1, 40], [16], [17, 3]):
        streamed = collect(field, grid, heights, threshold)
        assert streamed.observed_km2 == pytest.approx(whole.observed_km2, rel=1e-12)
        assert len(streamed.events) == len(whole.events)
        for got, want in zip(streamed.events, whole.events, strict=True):
            assert got.geometry == want.geometry  # the same vertices, not just the same shape
            assert got.mean_probability == pytest.approx(want.mean_probability, rel=1e-12)
            same = {"mean_probability": 0.0}
            assert {**got.__dict__, **same} == {**want.__dict__, **same}


def test_a_u_shape_joined_only_in_a_later_block_is_one_event() -> None:
    field = np.zeros((12, 20), dtype=np.float32)
    field[0:10, 2] = field[0:10, 9] = field[0:10, 16] = 0.9  # three arms ...
    field[10, 2:17] = 0.8  # ... joined at the bottom, two blocks later
    field[0, 11:14] = 0.7  # a cap across rows 0-2 of block 1, joined to nothing
    field[0:3, 13] = 0.7
    field[11, 1] = 0.6  # touching the comb at a corner only: not 4-connected
    grid = Grid(20, 12, CRS.from_epsg(4326), ICELAND)
    for heights in ([1], [4], [5, 7], [12]):
        scene = collect(field, grid, heights)
        assert [event.pixels for event in scene.events] == [45, 5, 1], heights
        comb = scene.events[0].geometry
        assert comb.geom_type == "Polygon" and not comb.interiors
        assert (pixels_of(comb, grid) == (field >= 0.8)).all()

    ring = np.zeros((9, 9), dtype=np.float32)  # a ring: split in two, joined at both ends
    ring[1, 1:8] = ring[7, 1:8] = ring[1:8, 1] = ring[1:8, 7] = 0.9
    scene = collect(ring, Grid(9, 9, CRS.from_epsg(4326), ICELAND), [3])
    assert [event.pixels for event in scene.events] == [24]
    assert len(scene.events[0].geometry.interiors) == 1


def test_no_data_pixels_are_never_part_of_an_event_nor_observed() -> None:
    field = np.full((30, 40), 0.9, dtype=np.float32)
    field[:, 20] = np.nan  # a no-data column splits the field in two
    field[10:13, 5:8] = np.nan  # a no-data hole in the left part
    grid = Grid(40, 30, CRS.from_epsg(4326), ICELAND)
    scene = collect(field, grid, [7])
    assert [event.pixels for event in scene.events] == [20 * 30 - 9, 19 * 30]
    assert len(scene.events[0].geometry.interiors) == 1
    assert all(np.isfinite(event.mean_probability) for event in scene.events)
    # Observed: the scene's area less the no-data pixels (one row's pixels are all alike).
    west, north = ICELAND.c, ICELAND.f
    whole = zone_km2(west, north - 0.30, west + 0.40, north)
    column = zone_km2(west, north - 0.30, west + 0.01, north)
    hole = zone_km2(west, north - 0.13, west + 0.03, north - 0.10)
    assert scene.observed_km2 == pytest.approx(whole - column - hole, rel=1e-9)


def test_the_threshold_is_inclusive_and_min_pixels_drops_small_events() -> None:
    threshold = 0.6
    below = np.nextafter(np.float32(threshold), np.float32(0))
    field = np.zeros((16, 16), dtype=np.float32)
    field[1, 1] = threshold  # 1 px at the threshold: an event
    field[1, 5] = below  # 1 px just below: none
    field[4:6, 1:3] = 0.7  # 4 px
    field[8:11, 8:11] = 0.95  # 9 px
    field[13:16, 3] = 0.65  # 3 px, one a block, so no block sees it whole
    grid = Grid(16, 16, CRS.from_epsg(4326), ICELAND)
    scene = collect(field, grid, [16], np.float32(threshold))
    assert [event.pixels for event in scene.events] == [1, 4, 9, 3]
    assert scene.events[0].max_probability == np.float32(threshold)
    for heights in ([16], [1], [5]):
        kept = collect(field, grid, heights, np.float32(threshold), min_pixels=3)
        assert [event.pixels for event in kept.events] == [4, 9, 3], heights
        assert [event.id for event in kept.events] == ["scene-1", "scene-2", "scene-3"]


@pytest.mark.parametrize(("south", "expected"), [(0.0, 12_308.46), (70.0, 4_158.12)])
def test_areas_are_geodesic_km2_not_square_degrees(south: float, expected: float) -> None:
    grid = Grid(120, 120, CRS.from_epsg(4326), Affine(0.01, 0, 9.9, 0, -0.01, south + 1.1))
    field = np.zeros((120, 120), dtype=np.float32)
    field[10:110, 10:110] = 0.9  # 1° x 1°: from `south` to `south` + 1°, lon 10° to 11°
    event = collect(field, grid, [32]).events[0]
    # Its edges are measured as geodesics (pyproj), a little off the parallels.
    assert event.area_km2 == pytest.approx(zone_km2(10, south, 11, south + 1), rel=1e-4)
    assert event.area_km2 == pytest.approx(expected, rel=1e-4)
    assert event.bounds == pytest.approx((10.0, south, 11.0, south + 1))
    observed = collect(field, grid, [32]).observed_km2
    assert observed == pytest.approx(footprint_km2(grid), rel=1e-6)


def test_a_real_utm_raster_gets_areas_of_its_pixels(real_data: Path) -> None:
    with rasterio.open(real_data / "RGB.byte.tif") as dataset:
        grid, valid = describe(dataset), dataset.dataset_mask() > 0
        bounds = transform_bounds(dataset.crs, "EPSG:4326", *dataset.bounds)
    assert grid.crs is not None and grid.crs.is_projected
    field = np.where(valid, np.float32(0.1), np.float32(np.nan))
    field[250:350, 300:450] = 0.9  # inside the scene's data
    assert valid[250:350, 300:450].all()
    scene = collect(field, grid, [64])
    (event,) = scene.events
    pixel_km2 = abs(grid.transform.a * grid.transform.e) / 1e6  # 300 m x 300 m
    assert event.pixels == 100 * 150
    assert event.area_km2 == pytest.approx(event.pixels * pixel_km2, rel=0.01)
    assert scene.observed_km2 == pytest.approx(valid.sum() * pixel_km2, rel=0.01)
    west, south, east, north = event.bounds
    assert bounds[0] < west < east < bounds[2] and bounds[1] < south < north < bounds[3]
    assert -80 < west < -70 and 20 < south < 30  # the Bahamas, in degrees


def test_observed_area_on_equal_area_and_polar_grids() -> None:
    # EASE-Grid 2.0 is equal-area: every 1 km pixel is 1 km² on the ellipsoid.
    ease = Grid(300, 200, CRS.from_epsg(6933), Affine(1000, 0, -1_500_000, 0, -1000, 6_700_000))
    field = blobs((200, 300), scale=20, seed=5, nodata=0.1)
    scene = collect(field, ease, [50])
    assert scene.observed_km2 == pytest.approx(np.isfinite(field).sum(), rel=3e-5)
    assert sum(e.area_km2 for e in scene.events) == pytest.approx(
        sum(e.pixels for e in scene.events), rel=1e-4
    )
    # Polar stereographic round the North Pole: pixels shrink towards it, unevenly.
    polar = Grid(400, 400, CRS.from_epsg(3413), Affine(1000, 0, -150_000, 0, -1000, 250_000))
    scene = collect(np.zeros((400, 400), dtype=np.float32), polar, [100])
    assert scene.observed_km2 == pytest.approx(footprint_km2(polar), rel=1e-5)
    assert scene.observed_km2 > 1.05 * 400 * 400  # not the nominal 1 km²


def test_an_event_across_the_antimeridian_is_cut_there() -> None:
    # UTM 60N (central meridian 177°E): the grid spans 180°.
    grid = Grid(300, 300, CRS.from_epsg(32660), Affine(1000, 0, 600_000, 0, -1000, 6_700_000))
    field = np.zeros((300, 300), dtype=np.float32)
    field[100:150, 20:280] = 0.9
    (event,) = collect(field, grid, [64]).events
    assert event.geometry.geom_type == "MultiPolygon" and len(event.geometry.geoms) == 2
    west, _, east, _ = event.bounds
    assert 178 < west < 180 and -180 < east < -175  # west > east, RFC 7946 5.2
    assert event.area_km2 == pytest.approx(50 * 260, rel=0.01)


def test_a_scene_without_crs_is_refused_with_the_fix() -> None:
    grid = Grid(10, 10, None, Affine.identity())
    with pytest.raises(InputError) as refused:
        EventCollector(KEY, grid, 0.5)
    assert refused.value.source == KEY.scene
    assert "CRS" in refused.value.fix


def test_blocks_must_come_in_order_and_cover_the_scene() -> None:
    grid = Grid(8, 10, CRS.from_epsg(4326), ICELAND)
    collector = EventCollector(KEY, grid, 0.5)
    collector.add(0, np.zeros((4, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="row 4"):
        collector.add(5, np.zeros((4, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(rows, 8\)"):
        collector.add(4, np.zeros((4, 9), dtype=np.float32))
    with pytest.raises(ValueError, match="never came"):
        collector.finish()


def test_scene_events_files_read_back_exactly(tmp_path: Path) -> None:
    grid = Grid(300, 300, CRS.from_epsg(32660), Affine(1000, 0, 600_000, 0, -1000, 6_700_000))
    field = blobs((300, 300), scale=25, seed=8)
    field[100:150, 20:280] = 0.9  # a MultiPolygon across the antimeridian
    field[120:125, 100:103] = 0.1  # with a hole
    scene = collect(field, grid, [100])
    assert any(e.geometry.geom_type == "MultiPolygon" for e in scene.events)
    assert len(scene.events) > 3
    path = tmp_path / "events" / "scene.geojson"
    write_scene_events(path, scene)
    assert read_scene_events(path) == scene
    assert [p.name for p in path.parent.iterdir()] == ["scene.geojson"]  # no temporary left
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection" and "crs" not in collection
    assert collection["earthseg"]["observed_km2"] == scene.observed_km2

    empty = SceneEvents(SceneKey("clear", None, None), (), 0.0, 0.5)
    write_scene_events(tmp_path / "clear.geojson", empty)
    assert read_scene_events(tmp_path / "clear.geojson") == empty

    (tmp_path / "broken.geojson").write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InputError, match=r"broken\.geojson"):
        read_scene_events(tmp_path / "broken.geojson")
