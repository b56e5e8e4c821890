"""The fetch grid, its chunks, time extents and fetch options: the arithmetic that decides
which pixels are asked for."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from earthseg.errors import InputError
from earthseg.imagery.grid import chunk_windows, scene_grid
from earthseg.imagery.options import FetchOptions, degrees
from earthseg.imagery.times import parse_time_extent
from earthseg.validation import validate


def test_kilometres_widen_with_latitude_as_the_notebooks_scaled_them() -> None:
    _, dy_equator = degrees("0.25km", 0.0)
    dx_north, dy_north = degrees("0.25km", 64.0)
    assert dy_equator == dy_north == pytest.approx(0.25 / 111.32)
    assert dx_north == pytest.approx(dy_north / math.cos(math.radians(64.0)))
    assert degrees("250m", 64.0) == (dx_north, dy_north)
    assert degrees("0.0015deg", 64.0) == (0.0015, 0.0015)


def test_grid_covers_bounds_plus_margin_snapped_to_the_global_grid() -> None:
    grid = scene_grid((-20.013, 63.502, -18.2, 64.4), "0.01deg", "0.1deg")
    west, south, east, north = grid.bbox()
    assert west <= -20.113 and south <= 63.402 and east >= -18.1 and north >= 64.5
    # on the grid of 0.01 degree pixels from (-180, 90), at most a pixel beyond
    assert west == pytest.approx(-20.12) and north == pytest.approx(64.5)
    assert east - (-18.1) < 0.01 and 63.402 - south < 0.01
    assert grid.width == round((east - west) / 0.01)
    assert grid.height == round((north - south) / 0.01)
    assert grid.transform.a == 0.01 and grid.transform.e == -0.01


def test_grid_is_clipped_to_the_globe() -> None:
    grid = scene_grid((179.5, 89.5, 179.9, 89.9), "0.1deg", "1deg")
    west, south, east, north = grid.bbox()
    assert east == pytest.approx(180.0) and north == pytest.approx(90.0)
    assert west == pytest.approx(178.5) and south == pytest.approx(88.5)


@given(
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    max_width=st.integers(16, 1000),
    max_height=st.integers(16, 1000),
)
def test_chunks_tile_the_scene_exactly_within_the_limits(
    width: int, height: int, max_width: int, max_height: int
) -> None:
    windows = chunk_windows(width, height, max_width, max_height)
    assert all(0 < w.width <= max_width and 0 < w.height <= max_height for w in windows)
    assert sum(w.width * w.height for w in windows) == width * height
    covered = {(w.col_off, w.row_off) for w in windows}
    assert len(covered) == len(windows)  # no two start at the same place
    assert len(windows) == math.ceil(width / max_width) * math.ceil(height / max_height)


def test_chunk_bboxes_share_their_edges() -> None:
    grid = scene_grid((10.0, 60.0, 14.0, 62.0), "0.25km", "0km")
    windows = chunk_windows(grid.width, grid.height, 300, 300)
    assert len(windows) > 1
    for window in windows:
        east = grid.bbox(window)[2]
        neighbours = [
            other
            for other in windows
            if other.row_off == window.row_off and other.col_off == window.col_off + window.width
        ]
        for other in neighbours:
            assert grid.bbox(other)[0] == east  # the same float, not merely close


def test_time_extents_as_gibs_and_mapserver_write_them() -> None:
    spans = parse_time_extent(["2002-07-04/2024-06-01/P1D", "2025-01-01T00:00:00Z"])
    assert datetime.date(2018, 1, 8) in spans[0]
    assert datetime.date(2002, 7, 3) not in spans[0]
    assert datetime.date(2025, 1, 1) in spans[1]
    weekly = parse_time_extent(["2020-01-01/2020-12-31/P7D"])[0]
    assert datetime.date(2020, 1, 8) in weekly and datetime.date(2020, 1, 9) not in weekly
    listed = parse_time_extent(["2018-01-08,2018-03-02", "current"])
    assert [str(span) for span in listed] == ["2018-01-08", "2018-03-02"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("resolution", "0.25", "not a distance"),
        ("resolution", "0km", "not a pixel size"),
        ("margin", "50 miles", "not a distance"),
        ("layers", "", "names no layer"),
        ("layers", 5, "a list of texts"),
        ("format", "image/jpeg", "image/png"),
    ],
)
def test_bad_fetch_options_name_the_option(key: str, value: object, words: str) -> None:
    with pytest.raises(InputError) as caught:
        validate(FetchOptions, {key: value}, key=lambda location: f"--{location[0]}")
    assert f"--{key}" in str(caught.value) and words in str(caught.value)


def test_layers_from_the_command_line_form() -> None:
    options = validate(FetchOptions, {"layers": "A, B"})
    assert options.layers == ("A", "B")
