"""`earthseg fetch`: each labelled event's scene from a WMS (NASA GIBS by default).

For every event of an ImageLabeler export: the labels' bounds plus a margin, on a grid
snapped to the resolution, on the date in the event's name, from every layer asked for
(stacked as bands). Requests larger than the server allows are split into chunks that
mosaic back exactly. Pixels without data (swath gaps, outside the layer) are masked, never
left black; a scene mostly without data is reported and left out. Output:
`out/images/<stem>.tif`, `out/labels/<stem>.*` (what `earthseg preprocess` reads) and
`out/fetch.json`. A rerun keeps the scenes already fetched with the same request.
"""

from __future__ import annotations

import datetime
import filecmp
import logging
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.windows import Window
from tqdm import tqdm

from earthseg import __version__
from earthseg.atomic import atomic_file, remove_partials
from earthseg.contracts.imagery import (
    FETCH_RECORD,
    IMAGES,
    LABELS,
    FetchedScene,
    FetchRecord,
    SkippedScene,
    WmsRequest,
    request_from_tags,
    request_tag,
    write_fetch_record,
)
from earthseg.contracts.manifest import file_digest
from earthseg.errors import InputError
from earthseg.imagery.exports import EXPECTED_FORM, LabelSet, open_export
from earthseg.imagery.grid import SceneGrid, chunk_windows, scene_grid
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.imagery.wms import Capabilities, Picture, WmsClient
from earthseg.preprocess.labels import WGS84, clean_polygons, read_labels

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 4096  # per request side, when the server does not say
BLOCK = 256
# Fast to write, small, and read by GDAL 2.3+ (QGIS, rasterio): 3.7x less CPU than deflate
# at its default level, 16 % smaller files here (bench/fetch.py).
COMPRESSION = {"compress": "zstd", "zstd_level": 1, "predictor": 2}


@dataclass(frozen=True)
class Event:
    """One scene to fetch: a labelled event (its label set, the date in its name, its
    polygons' lon/lat bounds), or one day and layer of an area (no labels)."""

    stem: str
    labels: LabelSet | None
    date: datetime.date
    bounds: tuple[float, float, float, float]
    layers: tuple[str, ...]


@dataclass(frozen=True)
class ScenePlan:
    event: Event
    grid: SceneGrid
    request: WmsRequest
    chunks: list[Window]

    @property
    def stem(self) -> str:
        return self.event.stem


def fetch_export(
    labels: Path,
    out: Path,
    options: FetchOptions | None = None,
    transfer: TransferOptions | None = None,
    say: Callable[[str], None] = print,
) -> FetchRecord:
    """Fetch every event's scene of the export at `labels` into `out`; return the record."""
    options = options or FetchOptions()
    with open_export(Path(labels)) as label_sets:
        events = [read_event(label_set, options.layers) for label_set in label_sets]
        return fetch_events(events, out, options, transfer, say)


def fetch_area(
    bbox: tuple[float, float, float, float],
    dates: list[datetime.date],
    out: Path,
    options: FetchOptions | None = None,
    transfer: TransferOptions | None = None,
    say: Callable[[str], None] = print,
) -> FetchRecord:
    """Fetch one scene per day and layer over `bbox` (west, south, east, north, degrees)
    into `out` (`images/<layer>_<date>.tif`, no labels); return the record. The margin
    is not added: the box is the area asked for."""
    options = (options or FetchOptions()).model_copy(update={"margin": "0km"})
    events = [
        Event(f"{layer}_{date.isoformat()}", None, date, bbox, (layer,))
        for layer in options.layers
        for date in dates
    ]
    return fetch_events(events, out, options, transfer, say, skip_undated=True)


def fetch_events(
    events: list[Event],
    out: Path,
    options: FetchOptions,
    transfer: TransferOptions | None = None,
    say: Callable[[str], None] = print,
    skip_undated: bool = False,
) -> FetchRecord:
    """Fetch each event's scene into `out` (keeping those fetched before with the same
    request); write and return the record. A date outside a layer's time extent is
    refused, or with `skip_undated` (a range of days over an area) left out and listed."""
    transfer = transfer or TransferOptions()
    out = Path(out)
    _check_output(out)
    for folder in (out / IMAGES, out / LABELS):
        remove_partials(folder)  # once here; each file then skips the look (sweep=False)
    client = WmsClient(options.url, transfer)
    try:
        capabilities = client.capabilities()
        skipped = []
        if skip_undated:
            served = [e for e in events if all(capabilities.serves(x, e.date) for x in e.layers)]
            for event in events:
                if event not in served:
                    reason = f"{', '.join(event.layers)} has no imagery on {event.date}"
                    skipped.append(SkippedScene(stem=event.stem, reason=reason))
            events = served
        capabilities.check(options.layers, [event.date for event in events], options.format)
        width, height = request_limits(capabilities, options)
        plans = [plan_scene(event, options, width, height) for event in events]
        fetched_before = [_already_fetched(out, plan) for plan in plans]
        kept = [plan for plan, done in zip(plans, fetched_before, strict=True) if done]
        todo = [plan for plan, done in zip(plans, fetched_before, strict=True) if not done]
        if kept:
            say(f"{len(kept)} of {len(plans)} scenes fetched before with the same request: kept")
        scenes = [_kept_record(out, plan) for plan in kept]
        for plan, picture in download(client, todo, options, transfer.workers):
            share = float(picture.valid.mean())
            if share < options.min_valid:
                reason = (
                    f"only {share:.0%} of its pixels hold data on {plan.event.date} "
                    f"(swath gap or outside the layer; --min-valid {options.min_valid})"
                )
                say(f"  {plan.stem}: left out, {reason}")
                skipped.append(SkippedScene(stem=plan.stem, reason=reason))
                continue
            scenes.append(_write_scene(out, plan, picture, options, share))
    finally:
        client.close()
    _remove_stale(out, {scene.stem for scene in scenes})
    record = FetchRecord(
        created_by=f"earthseg {__version__}",
        options=options.model_dump(mode="json"),
        scenes=sorted(scenes, key=lambda scene: scene.stem),
        skipped=skipped,
    )
    write_fetch_record(out, record)
    return record


def read_event(label_set: LabelSet, layers: tuple[str, ...]) -> Event:
    """An event's date (from its name) and the lon/lat bounds of its polygons."""
    if label_set.name is None:
        raise InputError(
            label_set.shown,
            "has no date in its name, and the date says which day's imagery to fetch",
            f"name it as ImageLabeler does: {EXPECTED_FORM}",
        )
    polygons = clean_polygons(
        read_labels(label_set.path, assume_wgs84=True, source=label_set.shown), label_set.shown
    ).to_crs(WGS84)
    west, south, east, north = (float(v) for v in polygons.total_bounds)
    return Event(label_set.stem, label_set, label_set.name.date, (west, south, east, north), layers)


def request_limits(capabilities: Capabilities, options: FetchOptions) -> tuple[int, int]:
    """The largest request: the server's MaxWidth/MaxHeight, lowered by --max-size."""
    limits = []
    for advertised in (capabilities.max_width, capabilities.max_height):
        candidates = [v for v in (advertised, options.max_size) if v]
        limits.append(min(candidates) if candidates else DEFAULT_MAX_SIZE)
    return limits[0], limits[1]


def plan_scene(event: Event, options: FetchOptions, max_width: int, max_height: int) -> ScenePlan:
    grid = scene_grid(event.bounds, options.resolution, options.margin)
    request = WmsRequest(
        url=options.url,
        layers=event.layers,
        time=event.date,
        bbox=grid.bbox(),
        width=grid.width,
        height=grid.height,
        format=options.format,
        resolution=options.resolution,
        margin=options.margin,
    )
    return ScenePlan(
        event, grid, request, chunk_windows(grid.width, grid.height, max_width, max_height)
    )


def download(
    client: WmsClient, plans: list[ScenePlan], options: FetchOptions, workers: int
) -> Iterator[tuple[ScenePlan, Picture]]:
    """Each plan's scene, mosaicked from its chunks of every layer, in plan order.

    At most `workers` requests run at once and 2 x `workers` are queued, so memory holds
    a few chunks and the scenes being assembled, however many scenes there are.
    """
    tasks = [
        (plan, index, layer, window)
        for plan in plans
        for index, layer in enumerate(plan.event.layers)
        for window in plan.chunks
    ]
    bar = tqdm(total=len(tasks), unit="request", desc="fetch", disable=None, leave=False)
    pending: deque[tuple[tuple[ScenePlan, int, str, Window], Future[Picture]]] = deque()
    queued = iter(tasks)
    with ThreadPoolExecutor(workers, thread_name_prefix="earthseg-fetch") as pool:

        def submit_next() -> None:
            task = next(queued, None)
            if task is not None:
                plan, _, layer, window = task
                future = pool.submit(
                    client.get_map,
                    layer,
                    plan.grid.bbox(window),
                    (int(window.width), int(window.height)),
                    plan.event.date,
                    options.format,
                )
                pending.append((task, future))

        for _ in range(2 * workers):
            submit_next()
        scene: _Mosaic | None = None
        try:
            while pending:
                (plan, index, _, window), future = pending.popleft()
                picture = future.result()
                submit_next()
                bar.update()
                if scene is None or scene.plan is not plan:
                    scene = _Mosaic(plan, len(plan.event.layers))
                scene.add(index, window, picture)
                if scene.complete:
                    yield plan, scene.picture()
                    scene = None
        finally:
            for _, future in pending:
                future.cancel()
            bar.close()


class _Mosaic:
    """A scene being assembled from its chunks of every layer."""

    def __init__(self, plan: ScenePlan, layers: int) -> None:
        self.plan = plan
        self.missing = layers * len(plan.chunks)
        self.bands: list[np.ndarray | None] = [None] * layers
        self.valid = np.ones((plan.grid.height, plan.grid.width), bool)

    def add(self, layer: int, window: Window, picture: Picture) -> None:
        rows, cols = window.toslices()
        if len(self.plan.chunks) == 1:  # the whole scene in one answer: no copy
            self.bands[layer] = picture.pixels
        else:
            target = self.bands[layer]
            if target is None:
                shape = (picture.pixels.shape[0], self.plan.grid.height, self.plan.grid.width)
                target = self.bands[layer] = np.zeros(shape, picture.pixels.dtype)
            target[:, rows, cols] = picture.pixels
        self.valid[rows, cols] &= picture.valid
        self.missing -= 1

    @property
    def complete(self) -> bool:
        return self.missing == 0

    def picture(self) -> Picture:
        bands = [band for band in self.bands if band is not None]
        pixels = np.concatenate(bands) if len(bands) > 1 else bands[0]
        if not self.valid.all():
            pixels[:, ~self.valid] = 0
        return Picture(pixels, self.valid)


def _write_scene(
    out: Path, plan: ScenePlan, picture: Picture, options: FetchOptions, share: float
) -> FetchedScene:
    """The labels first, then the scene's GeoTIFF, renamed into place last: a scene whose
    image exists is complete."""
    if plan.event.labels is not None:
        _copy_labels(plan.event.labels, out / LABELS)
    image = out / IMAGES / f"{plan.stem}.tif"
    layers = plan.event.layers
    bands, rows, cols = picture.pixels.shape
    per_layer = bands // len(layers)
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": bands,
        "dtype": picture.pixels.dtype.name,
        "crs": WGS84,
        "transform": plan.grid.transform,
        **COMPRESSION,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "interleave": "pixel",
        **({"photometric": "RGB"} if bands == 3 else {}),
    }
    with (
        atomic_file(image, sweep=False) as tmp,
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(picture.pixels)
        if not picture.valid.all():
            dst.write_mask(picture.valid.astype(np.uint8) * 255)
        dst.update_tags(**request_tag(plan.request))
        for band in range(bands):
            layer = layers[band // per_layer] if per_layer else ""
            dst.set_band_description(band + 1, f"{layer} band {band % per_layer + 1}")
    return _scene_record(plan, image, share, requests=len(plan.chunks) * len(layers))


def _scene_record(plan: ScenePlan, image: Path, share: float, requests: int) -> FetchedScene:
    return FetchedScene(
        stem=plan.stem,
        image=f"{IMAGES}/{image.name}",
        sha256=file_digest(image),
        request=plan.request,
        valid_fraction=round(share, 6),
        requests=requests,
    )


def _copy_labels(label_set: LabelSet, folder: Path) -> None:
    """The event's label files under its stem; a shapefile without .prj gets the WGS84
    one it was read with."""
    folder.mkdir(parents=True, exist_ok=True)
    files = label_set.files()
    for source in files:
        target = folder / f"{label_set.stem}{source.suffix.lower()}"
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            continue  # unchanged: keep its time stamp, so preprocessing is not redone
        with atomic_file(target, sweep=False) as tmp:
            shutil.copyfile(source, tmp)
    if label_set.path.suffix.lower() == ".shp" and not any(
        f.suffix.lower() == ".prj" for f in files
    ):
        prj = folder / f"{label_set.stem}.prj"
        if not prj.is_file():
            with atomic_file(prj, sweep=False) as tmp:
                tmp.write_text(CRS.from_epsg(4326).to_wkt("WKT1_ESRI"))


def _already_fetched(out: Path, plan: ScenePlan) -> bool:
    image = out / IMAGES / f"{plan.stem}.tif"
    if not image.is_file():
        return False
    if plan.event.labels is not None and not any((out / LABELS).glob(f"{plan.stem}.*")):
        return False
    try:
        with rasterio.open(image) as dataset:
            return request_from_tags(dataset.tags()) == plan.request
    except rasterio.errors.RasterioIOError:
        return False


def _kept_record(out: Path, plan: ScenePlan) -> FetchedScene:
    image = out / IMAGES / f"{plan.stem}.tif"
    with rasterio.open(image) as dataset:
        share = float(np.count_nonzero(dataset.dataset_mask())) / (dataset.width * dataset.height)
    if plan.event.labels is not None:
        _copy_labels(plan.event.labels, out / LABELS)  # the labels may have been edited
    return _scene_record(plan, image, share, requests=0)


def _check_output(out: Path) -> None:
    """`out` is new, empty, or an earlier fetch's (possibly interrupted) output."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a new --out")
    if not out.is_dir() or (out / FETCH_RECORD).is_file():
        return
    foreign = [p.name for p in out.iterdir() if p.name not in (IMAGES, LABELS)]
    if foreign:
        raise InputError(
            out,
            f"holds files earthseg fetch did not write ({', '.join(sorted(foreign)[:5])})",
            "choose a new --out: fetch replaces what its output folder holds",
        )


def _remove_stale(out: Path, stems: set[str]) -> None:
    """Scenes and labels of events no longer fetched (an earlier export's, or left out
    this time), so images/ and labels/ pair one to one."""
    for folder in (out / IMAGES, out / LABELS):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and path.stem not in stems:
                log.info("removing %s: not a fetched scene of this export", path)
                path.unlink()
