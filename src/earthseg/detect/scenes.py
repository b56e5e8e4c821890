"""The scenes `earthseg detect` runs over, each with its name, date and layer: GeoTIFFs in
a folder or under an S3 prefix, or fetched for an area and days (earthseg.imagery).

A scene's date and layer come from the WMS request earthseg fetch tagged it with, else
from an ISO date in its file name; a scene without a date is still detected (the daily
summary leaves it out of the days).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earthseg.detect.events import SceneKey
from earthseg.errors import InputError

SUFFIXES = (".tif", ".tiff")
DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class SceneInput:
    """A scene file and what the catalogue says of it."""

    path: Path
    key: SceneKey


def folder_scenes(folder: Path) -> list[SceneInput]:
    """Every GeoTIFF directly in `folder`, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder", "give --scenes a folder of scene GeoTIFFs")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not paths:
        raise InputError(
            folder, "holds no GeoTIFF (.tif, .tiff)", "give --scenes a folder of scene GeoTIFFs"
        )
    return [SceneInput(path, scene_key(path)) for path in paths]


def scene_key(path: Path) -> SceneKey:
    """Name, date and layer of a scene file (unreadable files are caught when detected)."""
    import rasterio
    from rasterio.errors import RasterioError

    from earthseg.contracts.imagery import request_from_tags

    request = None
    try:
        with rasterio.open(path) as dataset:
            request = request_from_tags(dataset.tags())
    except RasterioError:
        pass
    if request is not None:
        return SceneKey(path.stem, request.time, "+".join(request.layers))
    return SceneKey(path.stem, _date_in(path.stem), None)


def s3_scenes(session: Any, uri: str, cache: Path) -> list[SceneInput]:
    """Every GeoTIFF under an S3 prefix, downloaded into `cache` (kept when the same size
    is there already, so a rerun downloads nothing)."""
    from earthseg.aws.s3 import download_file, parse_s3_uri

    prefix = parse_s3_uri(uri, "--scenes")
    client = session.client("s3")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=prefix.bucket, Prefix=prefix.key
    ):
        keys += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    keys = [(key, size) for key, size in keys if key.lower().endswith(SUFFIXES)]
    if not keys:
        raise InputError(uri, "holds no GeoTIFF (.tif, .tiff)", "check --scenes")
    cache.mkdir(parents=True, exist_ok=True)
    scenes = []
    for key, size in sorted(keys):
        local = cache / Path(key).name
        if not (local.is_file() and local.stat().st_size == size):
            download_file(session, f"s3://{prefix.bucket}/{key}", local)
        scenes.append(SceneInput(local, scene_key(local)))
    return scenes


def fetched_scenes(folder: Path) -> list[SceneInput]:
    """The scenes an area fetch wrote into `folder` (earthseg.imagery.fetch.fetch_area)."""
    from earthseg.contracts.imagery import read_fetch_record

    record = read_fetch_record(folder)
    return [
        SceneInput(
            folder / scene.image,
            SceneKey(scene.stem, scene.request.time, "+".join(scene.request.layers)),
        )
        for scene in record.scenes
    ]


def _date_in(stem: str) -> datetime.date | None:
    for text in DATE.findall(stem):
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            continue
    return None
