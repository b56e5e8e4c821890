"""A detection run's catalogue: every event of every scene in one GeoParquet and one
GeoJSON file (EPSG:4326 lon/lat, one row per event), the daily summary (CSV and plot) and
a short page (Markdown and HTML), each file written whole or not at all.

Events stay per scene: a plume seen on two days, or in two layers, is two events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas
import pandas

from earthseg.atomic import atomic_file
from earthseg.detect.events import Event, SceneEvents, event_feature, event_record
from earthseg.detect.page import catalogue_html, catalogue_markdown
from earthseg.detect.summary import daily_rows, date_order, plot_daily, write_daily_csv

PARQUET = "catalogue.parquet"
GEOJSON = "catalogue.geojson"
DAILY_CSV = "daily.csv"
DAILY_PLOT = "daily.png"
MARKDOWN = "detections.md"
HTML = "detections.html"

# The catalogue's columns and their types, the geometry last; an empty run keeps them.
COLUMNS = {
    "id": "str",
    "scene": "str",
    "date": "str",  # ISO 8601
    "layer": "str",
    "area_km2": "float64",
    "pixels": "int64",
    "mean_probability": "float64",
    "max_probability": "float64",
    "west": "float64",
    "south": "float64",
    "east": "float64",
    "north": "float64",
}
GEOMETRY = "geometry"
CRS = "EPSG:4326"


@dataclass(frozen=True)
class CatalogueFiles:
    """Where a run's catalogue went."""

    parquet: Path
    geojson: Path
    daily_csv: Path
    daily_plot: Path
    markdown: Path
    html: Path


def write_catalogue(
    folder: Path,
    scenes: Sequence[SceneEvents],
    failures: Sequence[tuple[str, str]] = (),
    title: str = "Detected events",
    largest: int = 10,
) -> CatalogueFiles:
    """Write the catalogue of `scenes` into `folder`; `failures`: (scene, reason) of the
    scenes that could not be processed, listed on the page."""
    repeated = sorted(name for name, n in Counter(s.key.scene for s in scenes).items() if n > 1)
    if repeated:
        raise ValueError(f"scene names must be unique in a run; repeated: {', '.join(repeated)}")
    folder = Path(folder)
    files = CatalogueFiles(
        parquet=folder / PARQUET,
        geojson=folder / GEOJSON,
        daily_csv=folder / DAILY_CSV,
        daily_plot=folder / DAILY_PLOT,
        markdown=folder / MARKDOWN,
        html=folder / HTML,
    )
    events = catalogue_order(scenes)
    write_event_parquet(files.parquet, events)
    write_event_geojson(files.geojson, events)
    rows = daily_rows(scenes)
    write_daily_csv(files.daily_csv, rows)
    plot_daily(files.daily_plot, rows)
    markdown = catalogue_markdown(scenes, failures, files.daily_plot.name, title, largest)
    with atomic_file(files.markdown) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    page = catalogue_html(scenes, failures, files.daily_plot, title, largest)
    with atomic_file(files.html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return files


def catalogue_order(scenes: Sequence[SceneEvents]) -> list[Event]:
    """Every event, by date (undated last), scene, then number within the scene."""
    numbered = [(n, event) for scene in scenes for n, event in enumerate(scene.events)]
    numbered.sort(key=lambda item: (*date_order(item[1].date), item[1].scene, item[0]))
    return [event for _, event in numbered]


def write_event_parquet(path: Path, events: Sequence[Event]) -> None:
    """The events as GeoParquet, COLUMNS then the geometry, in EPSG:4326."""
    records = [event_record(event) for event in events]
    columns = {
        name: pandas.Series([record[name] for record in records], dtype=dtype)
        for name, dtype in COLUMNS.items()
    }
    geometry = geopandas.GeoSeries([event.geometry for event in events], crs=CRS)
    frame = geopandas.GeoDataFrame(columns, geometry=geometry, crs=CRS)
    with atomic_file(path) as tmp:
        frame.to_parquet(tmp)


def write_event_geojson(path: Path, events: Sequence[Event]) -> None:
    """The events as an RFC 7946 FeatureCollection (lon/lat, no `crs` member).

    GeoJSON has no schema: a reader of an empty collection gets no rows and only the
    geometry column; the GeoParquet file keeps the columns.
    """
    collection = {"type": "FeatureCollection", "features": [event_feature(e) for e in events]}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(collection, separators=(",", ":")), encoding="utf-8")
