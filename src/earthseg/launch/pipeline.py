"""`earthseg pipeline`: an ImageLabeler export to predictions and a report, in one run.

preprocess -> train -> deploy -> invoke -> report, either on SageMaker (a Processing or
local preprocessing, a training job, an endpoint, sagemaker-runtime) or `--local` with
the same images in local containers (earthseg.launch.local_run). Both backends share
this sequence, the run folder and its resume rule (earthseg.launch.run_folder): finished
stages are skipped on a rerun unless something they depend on changed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from earthseg.atomic import atomic_file
from earthseg.errors import InputError
from earthseg.launch.config import RunConfig
from earthseg.launch.run_folder import RunFolder, digest
from earthseg.preprocess.manifest import MANIFEST
from earthseg.serve.predictor import Prediction, save_prediction

STAGE_MARKER = ".earthseg-stage"  # which invoke stage the predictions belong to
ScenePredictor = Callable[[Path, float | None], Prediction]  # scene, threshold (None: card's)


class Backend(Protocol):
    """Where the stages run. Each returns the outputs `state.json` records for it."""

    mode: str
    images: dict[str, str]  # role -> image the stages run in ({} on the host, without containers)

    def preprocess(self, dataset: Path) -> dict[str, Any]:
        """Write the dataset (at least its manifest) to `dataset`."""
        ...

    def train(self, dataset: dict[str, Any], model: Path, training: Path) -> dict[str, Any]:
        """Train on the dataset; the artifact extracted to `model`, the job's reports
        (metrics.json, figures) to `training`."""
        ...

    def deploy(self, trained: dict[str, Any]) -> AbstractContextManager[ScenePredictor]:
        """Serve the model for as long as the context lasts."""
        ...


@dataclass(frozen=True)
class RunLayout:
    """Where each stage's outputs go in the run folder."""

    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def report(self) -> Path:
        return self.root / "report"


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
    train_digest, trained = stage(
        "train",
        [prep_digest, backend.images.get("train"), config.train.model_dump(mode="json")],
        lambda _: backend.train(dataset, layout.model, layout.training),
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
    manifest_path = dataset / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    scenes = [
        images / item["image"]["file"] for item in manifest["inputs"] if item["split"] == "test"
    ]
    if not scenes:
        raise InputError(
            manifest_path,
            "puts no scene in the test split, so there is nothing to predict and report on",
            "give the test split a share in preprocess.splits, e.g. [0.7, 0.15, 0.15]",
        )
    return scenes


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
        model_card=layout.model / "earthseg.json",
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


def _keep_config(config: RunConfig, root: Path) -> None:
    """The config as run, beside its outputs."""
    import yaml

    with atomic_file(root / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def _summary(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in outputs.items())
