"""Where a scene's pixels came from: the WMS request behind each fetched scene.

`earthseg fetch` writes the request into the scene's GeoTIFF tags (so a scene carries its
own provenance wherever it is copied) and all of them into `fetch.json`. Preprocessing
reads the tags into the dataset manifest and a summary into each channel's index, from
which training copies it into the model card.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import ValidationError

from earthseg.atomic import atomic_file
from earthseg.contracts.documents import Record, locate, read_document, write_document

FETCH_RECORD = "fetch.json"
FETCH_FORMAT: Final = "earthseg.fetch/1"
REQUEST_TAG = "EARTHSEG_WMS_REQUEST"  # GeoTIFF metadata item holding the request as JSON
IMAGES = "images"
LABELS = "labels"


class WmsRequest(Record):
    """One scene's GetMap, whole (chunks are how it was transferred, not what it is)."""

    url: str
    layers: tuple[str, ...]
    time: datetime.date
    crs: str = "EPSG:4326"
    bbox: tuple[float, float, float, float]  # west, south, east, north (not WMS's axis order)
    width: int
    height: int
    format: str
    resolution: str
    margin: str


class FetchedScene(Record):
    stem: str
    image: str  # relative to the fetch folder
    sha256: str
    request: WmsRequest
    valid_fraction: float
    requests: int  # GetMaps made (chunks x layers); 0 when kept from an earlier run


class SkippedScene(Record):
    stem: str
    reason: str


class FetchRecord(Record):
    """`fetch.json` (format `earthseg.fetch/1`)."""

    format: Literal["earthseg.fetch/1"] = FETCH_FORMAT
    created_by: str
    options: dict[str, object]
    scenes: list[FetchedScene]
    skipped: list[SkippedScene]


class ImagerySource(Record):
    """What a dataset's scenes were fetched from, summarised for a model card."""

    url: str
    layers: tuple[str, ...]
    resolution: str
    first_date: datetime.date
    last_date: datetime.date
    scenes: int


def write_fetch_record(folder: Path, record: FetchRecord) -> Path:
    """Write `fetch.json` into `folder`, whole or not at all."""
    target = Path(folder) / FETCH_RECORD
    with atomic_file(target) as tmp:
        write_document(tmp, record, indent=1)
    return target


def read_fetch_record(location: Path) -> FetchRecord:
    path = locate(location, FETCH_RECORD)
    return read_document(
        path,
        FetchRecord,
        f"{FETCH_FORMAT} record",
        "this is not a folder `earthseg fetch` wrote",
        "point at the --out folder of earthseg fetch",
    )


def request_from_tags(tags: dict[str, str]) -> WmsRequest | None:
    """The request recorded in a scene's tags; None for a scene not fetched by earthseg
    (or tagged by an incompatible version)."""
    text = tags.get(REQUEST_TAG)
    if text is None:
        return None
    try:
        return WmsRequest.model_validate_json(text)
    except ValidationError:
        return None


def request_tag(request: WmsRequest) -> dict[str, str]:
    return {REQUEST_TAG: request.model_dump_json()}


def summarise(requests: list[WmsRequest]) -> list[ImagerySource]:
    """One entry per server, layers and resolution, with the dates they span."""
    groups: dict[tuple[str, tuple[str, ...], str], list[datetime.date]] = {}
    for request in requests:
        groups.setdefault((request.url, request.layers, request.resolution), []).append(
            request.time
        )
    return [
        ImagerySource(
            url=url,
            layers=layers,
            resolution=resolution,
            first_date=min(dates),
            last_date=max(dates),
            scenes=len(dates),
        )
        for (url, layers, resolution), dates in sorted(groups.items())
    ]
