"""What a report is made from: the test scenes a dataset manifest names, found in the
export and among the predictions, and the model card. Every input is checked before any
work starts; what is missing or does not match is an InputError naming the file and the
fix, so a report never describes other scenes than the ones the dataset saw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthseg.contracts.manifest import DatasetManifest, SceneInput, file_digest, files_digest
from earthseg.errors import InputError
from earthseg.imagery.exports import LabelSet
from earthseg.preprocess.labels import labels_for_scene
from earthseg.preprocess.scenes import open_scene
from earthseg.serve.geo import Grid, describe

MANIFEST_FIX = "pass the manifest.json of the dataset the model was trained on"
CARD_FIX = "pass the earthseg.json of the model artifact (model.tar.gz or /opt/ml/model)"


@dataclass(frozen=True)
class SceneFiles:
    """One test scene: the export's scene and labels, and the model's mask and polygons."""

    stem: str
    image: Path
    labels: LabelSet
    mask: Path
    polygons: Path


def find_test_scenes(
    manifest: DatasetManifest,
    manifest_path: Path,
    images: Path,
    labels: list[LabelSet],
    predictions: Path,
) -> list[SceneFiles]:
    """The manifest's test scenes with their files (`labels`: the export's label sets,
    `open_export`), each one present and, for the export's files, identical to what the
    dataset was built from."""
    by_stem = {label_set.stem: label_set for label_set in labels}
    return [
        _scene_files(scene, manifest_path, images, by_stem, predictions)
        for scene in manifest.test_scenes(manifest_path)
    ]


def check_training_files(
    metrics: Path | None, history_csv: Path | None, figures: Path | None
) -> None:
    """The training job's files that were named are there (each may be None)."""
    for path, fix in (
        (metrics, "pass the metrics.json of the training job's output/data, or None"),
        (history_csv, "pass the history.csv from the training job's checkpoints, or None"),
    ):
        if path is not None and not Path(path).is_file():
            raise InputError(path, "is missing", fix)
    if figures is not None and not Path(figures).is_dir():
        raise InputError(figures, "is not a folder", "pass the training job's output/data, or None")


def scene_labels(
    image: Path, labels: Path, assume_wgs84: bool = False, source: Path | None = None
) -> tuple[Grid, np.ndarray]:
    """A scene's grid and its expert polygons reprojected to the scene's CRS
    (`assume_wgs84`: labels of an ImageLabeler export, read as lon/lat without a .prj)."""
    with open_scene(image) as dataset:  # refuses a scene without a CRS
        grid, crs, bounds = describe(dataset), dataset.crs, tuple(dataset.bounds)
    return grid, labels_for_scene(labels, crs, bounds, image, assume_wgs84, source)


def _scene_files(
    scene: SceneInput,
    manifest_path: Path,
    images: Path,
    labels: dict[str, LabelSet],
    predictions: Path,
) -> SceneFiles:
    stem = scene.scene
    export_fix = "point to the export the dataset was built from, or preprocess this export again"
    image = images / scene.image.file
    if not image.is_file():
        raise InputError(
            image, f"is missing: the scene of test scene {stem} in {manifest_path}", export_fix
        )
    label_set = labels.get(stem)
    if label_set is None:
        raise InputError(
            f"the labels export ({', '.join(scene.labels.files)})",
            f"is missing: the labels of test scene {stem} in {manifest_path}",
            export_fix,
        )
    for path, recorded, actual in (
        (image, scene.image.sha256, file_digest(image)),
        (label_set.path, scene.labels.sha256, files_digest(label_set.files())),
    ):
        if actual != recorded:
            raise InputError(
                path,
                f"differs from the file test scene {stem} was built from "
                f"({manifest_path} records {recorded}, this is {actual})",
                export_fix,
            )
    mask, polygons = predictions / f"{stem}.tif", predictions / f"{stem}.geojson"
    for path in (mask, polygons):
        if not path.is_file():
            raise InputError(
                path,
                f"is missing: no prediction for test scene {stem}",
                f"predict it: earthseg predict --image {image} --model MODEL (or --url URL) "
                f"--out {mask} --geojson {polygons}",
            )
    return SceneFiles(stem, image, label_set, mask, polygons)
