"""`earthseg pipeline`: an ImageLabeler export to predictions and a report, in one run.

preprocess -> train -> deploy -> invoke -> report, either on SageMaker (a Processing or
local preprocessing, a training job, an endpoint, sagemaker-runtime) or `--local` with
the same images in local containers (earthseg.pipeline.backends.local). Both backends share
this sequence, the run folder and its resume rule (earthseg.pipeline.run_folder): finished
stages are skipped on a rerun unless something they depend on changed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_file
from earthseg.contracts.manifest import MANIFEST, read_manifest
from earthseg.contracts.model_card import MODEL_CARD, read_model_card
from earthseg.errors import InputError
from earthseg.pipeline.backends.base import Backend, ScenePredictor
from earthseg.pipeline.config import RunConfig, load_config
from earthseg.pipeline.run_folder import RunFolder, RunLayout, digest
from earthseg.serve.predictor import save_prediction

STAGE_MARKER = ".earthseg-stage"  # which invoke stage the predictions belong to


def run_config(path: Path, local: bool, say: Callable[[str], None] = print) -> Path:
    """`earthseg pipeline --config PATH [--local]`: load the config, run (or resume) it on
    its backend; return the report's folder."""
    config = load_config(path)
    if not local:
        config.require_cloud()  # before anything is written
    folder = RunFolder(config.folder)
    backend: Backend
    if local:
        from earthseg.pipeline.backends.local import LocalBackend

        backend = LocalBackend(config, folder, say)
    else:
        from earthseg.pipeline.backends.sagemaker import SageMakerBackend

        backend = SageMakerBackend(config, folder, say)
    return run_pipeline(config, backend, folder, say)


def run_pipeline(
    config: RunConfig, backend: Backend, folder: RunFolder, say: Callable[[str], None] = print
) -> Path:
    """Run (or resume) every stage in `folder`; return the report's folder."""
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

    prep_digest, dataset = stage(
        "preprocess",
        [
            export_fingerprint(config.export.images, config.export.labels),
            config.preprocess.model_dump(mode="json"),
        ],
        lambda _: backend.preprocess(layout.dataset),
    )

    def train(_: str) -> dict[str, Any]:
        outputs = backend.train(dataset, layout.model, layout.training)
        return {"model": str(layout.model), **outputs, "threshold": _threshold(layout.model)}

    train_digest, trained = stage(
        "train",
        [prep_digest, backend.images.get("train"), config.train.model_dump(mode="json")],
        train,
    )
    scenes = test_scenes(layout.dataset, config.export.images)
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
    stage("report", [invoke_digest], lambda _: _report(config, layout))
    return layout.report


def test_scenes(dataset: Path, images: Path) -> list[Path]:
    """The scene files the manifest puts in the test split, found in the export."""
    manifest = read_manifest(dataset)
    return [images / scene.image.file for scene in manifest.test_scenes(dataset / MANIFEST)]


def export_fingerprint(*folders: Path) -> list[tuple[str, int, int]]:
    """Name, size and modification time of every file of the export: an edited label or
    an added scene redoes preprocessing, as it would make redo a target."""
    entries = []
    for folder in folders:
        if not folder.is_dir():
            raise InputError(folder, "is not a folder", "correct export.images / export.labels")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                status = path.stat()
                entries.append((str(path), status.st_size, status.st_mtime_ns))
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
        summary = save_prediction(predict(scene, threshold), mask, polygons)
        say(f"  {number}/{len(scenes)} {scene.name}: {summary['positive']:.2%} of pixels positive")
    return {"scenes": len(scenes), "predictions": str(out)}


def _report(config: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from earthseg.report import write_report

    summary = write_report(
        layout.report,
        manifest=layout.dataset / MANIFEST,
        images=config.export.images,
        labels=config.export.labels,
        predictions=layout.predictions,
        model_card=layout.model / MODEL_CARD,
        training_metrics=layout.training / "metrics.json",
        history_csv=None,
        training_figures=layout.training,
        title=f"earthseg run {config.name}",
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
        tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def _summary(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in outputs.items())
