"""`earthseg pipeline --local`: an ImageLabeler export to predictions and a report, in one
run on this machine.

[fetch ->] preprocess -> train -> deploy -> invoke [-> detect] -> report, with the same
images in local containers (earthseg.pipeline.backends.local) or on the host. The run
folder keeps what finished (earthseg.pipeline.run_folder): on a rerun finished stages
are skipped unless something they depend on changed. `earthseg tune --local` runs the
same chain with a `tune` stage in place of `train`: many trainings (earthseg.tune.local),
the best one's model and reports left where a training leaves its own, so that the
stages after it cannot tell the difference; the report adds the trials' leaderboard.
On SageMaker the same chain is a SageMaker Pipeline (earthseg.aws.pipeline_definition),
whose results come into the same run folder layout.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_file
from earthseg.contracts.imagery import FETCH_RECORD, IMAGES, LABELS
from earthseg.contracts.manifest import MANIFEST, read_manifest
from earthseg.contracts.model_card import MODEL_CARD, read_model_card
from earthseg.errors import InputError
from earthseg.pipeline.backends.base import Backend, ScenePredictor
from earthseg.pipeline.config import RunConfig, load_config
from earthseg.pipeline.run_folder import RunFolder, RunLayout, digest
from earthseg.serve.scene import save_scene

STAGE_MARKER = ".earthseg-stage"  # which invoke stage the predictions belong to


def run_config(path: Path, say: Callable[[str], None] = print, tuning: bool = False) -> Path:
    """`earthseg pipeline --config PATH --local`: load the config, run (or resume) it in
    local containers (or on the host); return the report's folder. On SageMaker the chain
    is a SageMaker Pipeline instead (earthseg.aws.pipeline_run). `tuning`: `earthseg
    tune --local`, the training tuned by the config's `tune:` section."""
    from earthseg.pipeline.backends.local import LocalBackend

    config = load_config(path)
    if tuning:
        config.tune.require_ranges()
    config.aws.ignored_locally(say)  # no VPC, KMS key or tags on this machine
    folder = RunFolder(config.folder)
    return run_pipeline(config, LocalBackend(config, folder, say), folder, say, tuning)


def run_pipeline(
    config: RunConfig,
    backend: Backend,
    folder: RunFolder,
    say: Callable[[str], None] = print,
    tuning: bool = False,
) -> Path:
    """Run (or resume) every stage in `folder`; return the report's folder. `tuning`:
    a `tune` stage trains the model instead of `train`."""
    layout = RunLayout(folder.root)
    _keep_config(config, folder.root)

    def stage(
        name: str, depends: Any, work: Callable[[str], dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        stage_digest = digest(backend.mode, depends)
        done = folder.finished(name, stage_digest)
        if done is not None:
            say(f"{name}: done in an earlier run, kept ({_summary(done)})")
            return stage_digest, done
        say(f"{name}: running ({backend.mode}; log in {folder.logs / (name + '.log')})")
        with folder.stage_log(name):
            outputs = work(stage_digest)
        folder.finish(name, stage_digest, outputs)
        say(f"{name}: finished ({_summary(outputs)})")
        return stage_digest, outputs

    if config.export.images is None:
        fetch_digest, _ = stage(
            "fetch",
            [
                export_fingerprint(config.export.labels),
                config.imagery.options().model_dump(mode="json"),
            ],
            lambda _: fetch_scenes(config, layout.imagery, say),
        )
        images, labels = layout.imagery / IMAGES, layout.imagery / LABELS
    else:
        fetch_digest, images, labels = None, config.export.images, config.export.labels
    prep_digest, dataset = stage(
        "preprocess",
        [
            *([fetch_digest] if fetch_digest else []),
            export_fingerprint(images, labels),
            config.preprocess.model_dump(mode="json"),
        ],
        lambda _: backend.preprocess(images, labels, layout.dataset),
    )

    def train(_: str) -> dict[str, Any]:
        outputs = backend.train(dataset, layout.model, layout.training)
        return {"model": str(layout.model), **outputs, "threshold": _threshold(layout.model)}

    def tune(stage_digest: str) -> dict[str, Any]:
        outputs = backend.tune(dataset, layout.model, layout.training, layout.tuning, stage_digest)
        return {"model": str(layout.model), **outputs, "threshold": _threshold(layout.model)}

    train_depends = [prep_digest, backend.images.get("train"), config.train.model_dump(mode="json")]
    if tuning:
        train_digest, trained = stage(
            "tune", [*train_depends, config.tune.model_dump(mode="json")], tune
        )
    else:
        train_digest, trained = stage("train", train_depends, train)
    scenes = test_scenes(layout.dataset, images)
    invoke_depends = [
        train_digest,
        backend.images.get("serve"),
        config.deploy.model_dump(mode="json"),
        config.invoke.model_dump(mode="json"),
    ]

    def invoke(stage_digest: str) -> dict[str, Any]:
        with backend.deploy(trained) as predict:
            return predict_scenes(
                predict, scenes, layout.predictions, config.invoke.threshold, stage_digest, say
            )

    invoke_digest, _ = stage("invoke", invoke_depends, invoke)
    report_depends = [invoke_digest]
    if config.detect.enabled:

        def detection(_: str) -> dict[str, Any]:
            scenes = detection_scenes(config, layout.detection, say)
            with backend.deploy(trained) as predict:
                return detect_with(predict, f"run {train_digest}", scenes, config, layout, say)

        detect_digest, _ = stage(
            "detect",
            [
                train_digest,
                backend.images.get("serve"),
                config.deploy.model_dump(mode="json"),
                config.detect.model_dump(mode="json"),
                _detect_inputs(config),
            ],
            detection,
        )
        report_depends.append(detect_digest)
    tuned = layout.tuning if tuning else None
    stage("report", report_depends, lambda _: _report(config, layout, images, labels, tuned))
    return layout.report


def test_scenes(dataset: Path, images: Path) -> list[Path]:
    """The scene files the manifest puts in the test split, found in the export."""
    manifest = read_manifest(dataset)
    return [images / scene.image.file for scene in manifest.test_scenes(dataset / MANIFEST)]


def fetch_scenes(config: RunConfig, out: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """`earthseg fetch` on this machine, whatever the backend: it needs the network, not
    a container."""
    from earthseg.imagery.fetch import fetch_export

    record = fetch_export(
        config.export.labels, out, config.imagery.options(), config.imagery.transfer(), say
    )
    return {"imagery": str(out), "scenes": len(record.scenes), "left out": len(record.skipped)}


def detection_scenes(config: RunConfig, out: Path, say: Callable[[str], None]) -> list[Any]:
    """The scenes `detect:` names: a folder's, or fetched for its bbox and dates (on this
    machine, with `imagery`'s options) into the detection folder."""
    from earthseg.detect.options import parse_bbox, parse_dates
    from earthseg.detect.scenes import fetched_scenes, folder_scenes
    from earthseg.imagery.fetch import fetch_area

    settings = config.detect
    if settings.scenes is not None:
        return folder_scenes(settings.scenes)
    assert settings.bbox is not None and settings.dates is not None
    bbox, dates = parse_bbox(settings.bbox), parse_dates(settings.dates)
    imagery = out / "imagery"
    fetch_area(bbox, dates, imagery, config.imagery.options(), config.imagery.transfer(), say)
    return fetched_scenes(imagery)


def detect_with(
    predict: ScenePredictor,
    identity: str,
    scenes: list[Any],
    config: RunConfig,
    layout: RunLayout,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """`earthseg detect` through the run's deployed model."""
    from earthseg.detect.models import PredictorModel
    from earthseg.detect.options import DetectOptions
    from earthseg.detect.run import detect

    options = config.detect.part(DetectOptions)
    model = PredictorModel(predict, identity, options.threshold)
    result = detect(
        scenes, model, layout.detection, options, title=f"Detection, run {config.name}", say=say
    )
    return {
        "scenes": len(result.scenes),
        "events": result.events,
        "failed": len(result.failures),
        "catalogue": str(result.catalogue.parquet),
    }


def _detect_inputs(config: RunConfig) -> Any:
    """What the detection's scenes are: a folder's files, or what is fetched."""
    if config.detect.scenes is not None:
        return export_fingerprint(config.detect.scenes)
    return config.imagery.options().model_dump(mode="json")


def export_fingerprint(*locations: Path) -> list[tuple[str, int, int]]:
    """Name, size and modification time of every file of the export (folders, or a
    download-all zip): an edited label or an added scene redoes preprocessing, as it
    would make redo a target. Names are relative to each location, so a run folder
    copied whole (its fetched scenes with it) keeps its stages."""
    entries = []
    for location in locations:
        if not location.exists():
            raise InputError(
                location, "does not exist", "correct export.labels / export.images in the config"
            )
        for path in sorted(location.rglob("*")) if location.is_dir() else [location]:
            if path.is_file():
                status = path.stat()
                name = path.relative_to(location) if location.is_dir() else path.name
                entries.append((str(name), status.st_size, status.st_mtime_ns))
    return entries


def predict_scenes(
    predict: ScenePredictor,
    scenes: list[Path],
    out: Path,
    threshold: float | None,
    stage_digest: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Mask GeoTIFF and GeoJSON per scene. Scenes predicted by an interrupted run of the
    same stage are kept (both files are written whole or not at all); predictions of any
    other model or options are removed first."""
    marker = out / STAGE_MARKER
    if not (marker.exists() and marker.read_text() == stage_digest):
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(stage_digest)
    for number, scene in enumerate(scenes, 1):
        mask, polygons = out / f"{scene.stem}.tif", out / f"{scene.stem}.geojson"
        if mask.exists() and polygons.exists():
            continue
        summary = save_scene(predict(scene, threshold), mask, geojson=polygons)
        say(f"  {number}/{len(scenes)} {scene.name}: {summary['positive']:.2%} of pixels positive")
    return {"scenes": len(scenes), "predictions": str(out)}


def _report(
    config: RunConfig, layout: RunLayout, images: Path, labels: Path, tuning: Path | None
) -> dict[str, Any]:
    from earthseg.report import write_report

    summary = write_report(
        layout.report,
        manifest=layout.dataset / MANIFEST,
        images=images,
        labels=labels,
        predictions=layout.predictions,
        model_card=layout.model / MODEL_CARD,
        training_metrics=layout.training / "metrics.json",
        history_csv=None,
        training_figures=layout.training,
        title=f"earthseg run {config.name}",
        fetch_record=None if config.export.images else layout.imagery / FETCH_RECORD,
        detection=layout.detection if config.detect.enabled else None,
        tuning=tuning,
    )
    pooled = summary.pooled
    scores = {
        key: round(value, 4)
        for key, value in (("iou", pooled.iou), ("f1", pooled.f1))
        if value is not None
    }
    return {"report": str(summary.html), **{f"test {key}": value for key, value in scores.items()}}


def _threshold(model: Path) -> float:
    """The decision threshold training chose, as the model card says it."""
    return read_model_card(model).threshold


def _keep_config(config: RunConfig, root: Path) -> None:
    """The config as run, beside its outputs."""
    import yaml

    with atomic_file(root / "config.yaml") as tmp:
        tmp.write_text(
            yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
        )


def _summary(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in outputs.items())
