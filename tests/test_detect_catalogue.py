"""The run's catalogue: GeoParquet and GeoJSON readable by geopandas with the columns and
rows expected (also for a run without events), the daily summary with its clear days and
gaps, and the page with the largest events in order and the failed scenes."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS

from earthseg.detect.catalogue import write_catalogue
from earthseg.detect.events import EventCollector, SceneEvents, SceneKey
from earthseg.detect.page import catalogue_markdown
from earthseg.detect.summary import daily_rows, daily_series
from earthseg.serve.geo import Grid

COLUMNS = [
    "id",
    "scene",
    "date",
    "layer",
    "area_km2",
    "pixels",
    "mean_probability",
    "max_probability",
    "west",
    "south",
    "east",
    "north",
    "geometry",
]
FILES = {
    "catalogue.parquet",
    "catalogue.geojson",
    "daily.csv",
    "daily.png",
    "detections.md",
    "detections.html",
}
PNG = b"\x89PNG\r\n\x1a\n"
TERRA = "MODIS_Terra_CorrectedReflectance_TrueColor"


def detect(
    name: str, date: datetime.date | None, boxes: list[tuple[int, int, int, int]], layer=TERRA
) -> SceneEvents:
    """A scene over south Iceland (0.01° pixels) whose events are `boxes` (row, col, rows,
    cols), streamed through the collector in blocks of 16 rows."""
    grid = Grid(80, 60, CRS.from_epsg(4326), Affine(0.01, 0, -20.0, 0, -0.01, 64.0))
    field = np.full((60, 80), 0.2, dtype=np.float32)
    field[:, 70:] = np.nan  # part of the scene without data
    for row, col, rows, cols in boxes:
        field[row : row + rows, col : col + cols] = 0.8
    collector = EventCollector(SceneKey(name, date, layer), grid, 0.5)
    for top in range(0, 60, 16):
        collector.add(top, field[top : top + 16])
    return collector.finish()


def day(n: int) -> datetime.date:
    return datetime.date(2024, 5, n)


@pytest.fixture
def scenes() -> list[SceneEvents]:
    """Five scenes: two on 1 May, a clear one on 3 May, none on 2 May, one undated, given
    out of order."""
    return [
        detect("terra_0504", day(4), [(5, 5, 10, 10)]),
        detect("terra_0501b", day(1), [(40, 40, 3, 3), (2, 50, 4, 4)]),
        detect("undated", None, [(30, 30, 2, 2)]),
        detect("terra_0501a", day(1), [(0, 0, 2, 2), (20, 10, 20, 20), (50, 60, 5, 5)]),
        detect("terra_0503", day(3), []),
    ]


def test_catalogue_tables_hold_every_event_in_order(tmp_path: Path, scenes) -> None:
    files = write_catalogue(tmp_path / "run", scenes)
    assert {path.name for path in (tmp_path / "run").iterdir()} == FILES  # no temporaries
    by_id = {event.id: event for scene in scenes for event in scene.events}
    expected = [
        "terra_0501a-1",
        "terra_0501a-2",
        "terra_0501a-3",
        "terra_0501b-1",
        "terra_0501b-2",
        "terra_0504-1",
        "undated-1",
    ]

    table = gpd.read_parquet(files.parquet)
    assert list(table.columns) == COLUMNS
    assert table.crs.to_epsg() == 4326
    assert list(table["id"]) == expected
    assert list(table["date"].fillna("")) == ["2024-05-01"] * 5 + ["2024-05-04", ""]
    for row in table.itertuples():
        event = by_id[row.id]
        assert row.geometry.equals_exact(event.geometry, 0)
        assert (row.area_km2, row.pixels, row.layer) == (event.area_km2, event.pixels, TERRA)
        assert (row.west, row.south, row.east, row.north) == event.bounds
        assert row.max_probability == pytest.approx(0.8)
    assert table["area_km2"].iloc[1] > 100  # 20 x 20 pixels of ~0.5 km x 1.1 km

    features = gpd.read_file(files.geojson)
    assert list(features["id"]) == expected
    assert set(COLUMNS) <= set(features.columns)
    assert all(
        geometry.equals(by_id[id_].geometry)
        for id_, geometry in zip(features["id"], features.geometry, strict=True)
    )
    collection = json.loads(files.geojson.read_text())
    assert "crs" not in collection  # RFC 7946: lon/lat WGS84, said by no member
    ring = collection["features"][0]["geometry"]["coordinates"][0]
    assert all(-21 < lon < -19 and 63 < lat < 65 for lon, lat in ring)
    assert shapely.LinearRing(ring).is_ccw  # RFC 7946 winding


def test_a_run_without_events_writes_every_file_readable_and_empty(tmp_path: Path) -> None:
    files = write_catalogue(tmp_path, [detect("clear", day(2), [])])
    table = gpd.read_parquet(files.parquet)
    assert len(table) == 0 and list(table.columns) == COLUMNS
    assert table["pixels"].dtype == np.int64 and table["area_km2"].dtype == np.float64
    assert len(gpd.read_file(files.geojson)) == 0
    with open(files.daily_csv, newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["date"], row["events"], float(row["dust_km2"])) == ("2024-05-02", "0", 0.0)
    assert files.daily_plot.read_bytes().startswith(PNG)
    page = files.markdown.read_text()
    assert "Events found: 0" in page and "No events were detected." in page

    nothing = write_catalogue(tmp_path / "nothing", [])
    assert len(gpd.read_parquet(nothing.parquet)) == 0
    assert nothing.daily_csv.read_text().strip() == (
        "date,layer,scenes,events,dust_km2,observed_km2,dust_share"
    )
    assert nothing.daily_plot.read_bytes().startswith(PNG)


def test_daily_summary_has_every_processed_day_and_only_those(tmp_path: Path, scenes) -> None:
    files = write_catalogue(tmp_path, scenes)
    with open(files.daily_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["date"] for row in rows] == ["2024-05-01", "2024-05-03", "2024-05-04", ""]
    assert [row["scenes"] for row in rows] == ["2", "1", "1", "1"]
    assert [row["events"] for row in rows] == ["5", "0", "1", "1"]
    assert {row["layer"] for row in rows} == {TERRA}
    first_day = [scene for scene in scenes if scene.key.date == day(1)]
    dust = sum(event.area_km2 for scene in first_day for event in scene.events)
    observed = sum(scene.observed_km2 for scene in first_day)
    assert float(rows[0]["dust_km2"]) == pytest.approx(dust, abs=1e-6)
    assert float(rows[0]["observed_km2"]) == pytest.approx(observed, abs=1e-6)
    assert float(rows[0]["dust_share"]) == pytest.approx(dust / observed, abs=1e-6)
    assert float(rows[1]["dust_km2"]) == 0 and float(rows[1]["observed_km2"]) > 0

    days, series = daily_series(daily_rows(scenes))
    assert days[0] == np.datetime64("2024-05-01") and len(days) == 4
    (values,) = series.values()
    assert values[0] == pytest.approx(dust)
    assert np.isnan(values[1])  # 2 May: no scene, a gap
    assert values[2] == 0  # 3 May: observed and clear

    aqua = detect("aqua_0501", day(1), [(10, 10, 5, 5)], layer="MODIS_Aqua")
    layered = daily_rows([*scenes, aqua])
    assert [(row.date, row.layer) for row in layered[:2]] == [
        (day(1), "MODIS_Aqua"),
        (day(1), TERRA),
    ]
    assert set(daily_series(layered)[1]) == {"MODIS_Aqua", TERRA}


def test_page_lists_the_largest_events_in_order_and_the_failures(tmp_path: Path, scenes) -> None:
    failures = [("broken_0502", "cannot be read (<TIFF> & friends)")]
    title = "Dust <Iceland> 2024"
    files = write_catalogue(tmp_path, scenes, failures, title=title, largest=3)
    page = files.markdown.read_text()
    assert page == catalogue_markdown(scenes, failures, "daily.png", title, 3)
    assert "Dates: 2024-05-01 to 2024-05-04 (3 days with scenes)" in page
    assert "Scenes processed: 5" in page and "Events found: 7" in page
    assert "](daily.png)" in page
    ranked = sorted(
        (event for scene in scenes for event in scene.events), key=lambda e: -e.area_km2
    )
    positions = [page.index(f"`{event.id}`") for event in ranked[:3]]
    assert positions == sorted(positions)
    assert f"`{ranked[3].id}`" not in page
    assert "The 3 largest of 7 events" in page
    assert "broken\\_0502" in page and "friends" in page

    html = files.html.read_text()
    assert "<h1>Dust &lt;Iceland&gt; 2024</h1>" in html
    assert "cannot be read (&lt;TIFF&gt; &amp; friends)" in html
    assert "data:image/png;base64," in html and 'src="http' not in html
    assert html.index(ranked[0].id) < html.index(ranked[1].id) < html.index(ranked[2].id)


def test_the_plot_is_a_png_for_few_and_many_days(tmp_path: Path) -> None:
    dates = [day(1) + datetime.timedelta(days=3 * n) for n in range(120)]  # a year, with gaps
    many = [
        SceneEvents(SceneKey(f"s{n}", date, TERRA), (), 500.0, 0.5) for n, date in enumerate(dates)
    ]
    files = write_catalogue(tmp_path, many)
    assert files.daily_plot.read_bytes().startswith(PNG)
    one = write_catalogue(tmp_path / "one", [detect("only", day(1), [(1, 1, 3, 3)])])
    assert one.daily_plot.read_bytes().startswith(PNG)


def test_scene_names_must_be_unique(tmp_path: Path) -> None:
    twice = [detect("same", day(1), []), detect("same", day(2), [])]
    with pytest.raises(ValueError, match="same"):
        write_catalogue(tmp_path, twice)
