"""`earthseg detect`: the model over every scene, to masks and one event catalogue.

Per scene, as it is predicted (rows streamed, earthseg.serve.scene): its mask (and, on
request, its probabilities) as a Cloud-Optimized GeoTIFF on the scene's grid, and its
events (earthseg.detect.events). The scene's events file, written last, marks it done
together with a key: a rerun with the same model, options and scene file skips it. A scene
that cannot be detected (unreadable, wrong bands, refused by the server) is listed with
its reason and the run goes on. At the end: the catalogue, daily summary and page
(earthseg.detect.catalogue) and `detect.json`.

Output folder: masks/, probabilities/, events/, catalogue.parquet, catalogue.geojson,
daily.csv, daily.png, detections.md, detections.html, detect.json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from earthseg import __version__
from earthseg.atomic import atomic_file, remove_partials
from earthseg.detect.events import (
    EventCollector,
    SceneEvents,
    read_scene_events,
    write_scene_events,
)
from earthseg.detect.models import SceneModel
from earthseg.detect.options import DetectOptions
from earthseg.detect.scenes import SceneInput
from earthseg.errors import InputError
from earthseg.serve.stream import Rows

MASKS, PROBABILITIES, EVENTS = "masks", "probabilities", "events"
RECORD = "detect.json"
RECORD_FORMAT = "earthseg.detect/1"


@dataclass
class DetectResult:
    """What a run did: every scene's events (detected now or kept), and the failures."""

    scenes: list[SceneEvents] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    kept: int = 0
    catalogue: Any = None  # earthseg.detect.catalogue.CatalogueFiles

    @property
    def events(self) -> int:
        return sum(len(scene.events) for scene in self.scenes)


def detect(
    scenes: Sequence[SceneInput],
    model: SceneModel,
    out: Path,
    options: DetectOptions,
    title: str = "Detected events",
    say: Callable[[str], None] = print,
) -> DetectResult:
    """Detect events in every scene into `out`; return what was done."""
    from earthseg.detect.catalogue import write_catalogue

    out = Path(out)
    _check_names(scenes)
    for name in (MASKS, PROBABILITIES, EVENTS):
        (out / name).mkdir(parents=True, exist_ok=True)
        remove_partials(out / name)
    result = DetectResult()
    keys = {scene.key.scene: scene_digest(scene, model, options) for scene in scenes}
    todo = [scene for scene in scenes if _done(out, scene, keys) is None]
    result.kept = len(scenes) - len(todo)
    if result.kept:
        say(f"{result.kept} of {len(scenes)} scenes detected before with this model: kept")
    if todo:
        model.prepare(todo)
    bar = tqdm(total=len(scenes), initial=result.kept, unit="scene", desc="detect", disable=None)
    try:
        for scene in scenes:
            done = _done(out, scene, keys)
            if done is not None:
                result.scenes.append(done)
                continue
            try:
                found = detect_scene(scene, model, out, options, keys[scene.key.scene])
            except InputError as error:
                reason = f"{error.problem}; fix: {error.fix}" if error.fix else error.problem
                say(f"  {scene.key.scene}: failed, {reason}")
                result.failures.append((scene.key.scene, reason))
            else:
                result.scenes.append(found)
            bar.update()
    finally:
        bar.close()
    result.catalogue = write_catalogue(out, result.scenes, result.failures, title=title)
    _write_record(out, model, options, result)
    return result


def detect_scene(
    scene: SceneInput, model: SceneModel, out: Path, options: DetectOptions, key: str
) -> SceneEvents:
    """One scene: masks written and events collected as rows finish; events last."""
    from rasterio.errors import RasterioError

    from earthseg.serve.errors import RequestError
    from earthseg.serve.scene import save_scene

    name = scene.key.scene
    events_file = out / EVENTS / f"{name}.geojson"
    events_file.unlink(missing_ok=True)
    collector: list[EventCollector] = []
    try:
        prediction = model.open(scene)

        def collect(rows: Rows) -> None:
            if not collector:  # a server's threshold is known once it has answered
                collector.append(
                    EventCollector(
                        scene.key, prediction.grid, prediction.threshold, options.min_pixels
                    )
                )
            collector[0].add(rows.top, rows.probabilities)

        probabilities = out / PROBABILITIES / f"{name}.tif" if options.probabilities else None
        save_scene(
            prediction, out / MASKS / f"{name}.tif", probabilities=probabilities, sinks=[collect]
        )
        found = collector[0].finish()
    except RasterioError as error:
        raise InputError(scene.path, f"cannot be read ({error})", "replace the file") from None
    except RequestError as error:
        raise InputError(scene.path, error.problem, error.fix) from None
    (out / EVENTS / f"{name}.key").write_text(key)
    write_scene_events(events_file, found)
    return found


def scene_digest(scene: SceneInput, model: SceneModel, options: DetectOptions) -> str:
    """What makes a scene's results reusable: the model, the options, the scene file."""
    status = scene.path.stat() if scene.path.exists() else None
    identity = {
        "model": model.identity,
        "options": options.model_dump(mode="json", exclude={"max_payload_mb"}),
        "scene": [scene.path.name, status.st_size, status.st_mtime_ns] if status else None,
        "key": [scene.key.scene, str(scene.key.date), scene.key.layer],
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _done(out: Path, scene: SceneInput, keys: dict[str, str]) -> SceneEvents | None:
    """The scene's events from an earlier run with the same key, or None."""
    name = scene.key.scene
    key_file, events_file = out / EVENTS / f"{name}.key", out / EVENTS / f"{name}.geojson"
    mask = out / MASKS / f"{name}.tif"
    if not (events_file.is_file() and key_file.is_file() and mask.is_file()):
        return None
    if key_file.read_text() != keys[name]:
        return None
    try:
        return read_scene_events(events_file)
    except InputError:  # damaged or foreign: detected again
        return None


def _check_names(scenes: Sequence[SceneInput]) -> None:
    seen: dict[str, Path] = {}
    for scene in scenes:
        other = seen.setdefault(scene.key.scene, scene.path)
        if other != scene.path:
            raise InputError(
                scene.path,
                f"has the same name as {other}, and outputs are named by scene",
                "rename one of them",
            )


def _write_record(
    out: Path, model: SceneModel, options: DetectOptions, result: DetectResult
) -> None:
    record = {
        "format": RECORD_FORMAT,
        "created_by": f"earthseg {__version__}",
        "model": model.identity,
        "options": options.model_dump(mode="json"),
        "scenes": [
            {
                "scene": scene.key.scene,
                "date": None if scene.key.date is None else scene.key.date.isoformat(),
                "layer": scene.key.layer,
                "events": len(scene.events),
                "dust_km2": round(sum(event.area_km2 for event in scene.events), 3),
                "mask": f"{MASKS}/{scene.key.scene}.tif",
            }
            for scene in result.scenes
        ],
        "failures": [{"scene": name, "reason": reason} for name, reason in result.failures],
    }
    with atomic_file(out / RECORD) as partial:
        partial.write_text(json.dumps(record, indent=2) + "\n")
