"""What an evaluation is made from, found and checked before any scene is predicted: the
model (a folder, a model.tar.gz, or a folder holding one: how a Processing job mounts a
training step's artifact) and the test set `earthseg prepare` wrote, each scene present,
unchanged, fitting the model, with its truth raster on its grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from earthseg.contracts.evaluation import (
    PREPARE_AGAIN,
    TEST_RECORD,
    DatasetRecord,
    DatasetScene,
)
from earthseg.contracts.manifest import file_digest
from earthseg.contracts.model_card import MODEL_CARD
from earthseg.contracts.processing import MODEL_ARCHIVE
from earthseg.errors import InputError
from earthseg.evaluate.grids import grid_differences
from earthseg.serve.geo import Grid, describe
from earthseg.serve.predictor import Predictor
from earthseg.serve.scene import LocalScene

MODEL_FIX = (
    f"mount the training step's {MODEL_ARCHIVE} there, or pass --model (a model folder or "
    f"{MODEL_ARCHIVE})"
)


@dataclass(frozen=True)
class SceneInputs:
    """One test scene ready to predict, and its truth raster."""

    stem: str
    scene: LocalScene
    truth: Path


def model_source(path: Path) -> Path:
    """The model at `path`: an unpacked model folder, a model.tar.gz, or the one a folder
    holds (for earthseg.serve.artifact.model_folder to open)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(path, "does not exist", MODEL_FIX)
    if (path / MODEL_CARD).is_file():
        return path
    if (path / MODEL_ARCHIVE).is_file():
        return path / MODEL_ARCHIVE
    found = sorted(p.name for p in path.iterdir())
    held = f"it holds {', '.join(found[:5])}" if found else "it is empty"
    raise InputError(
        path,
        f"holds neither {MODEL_ARCHIVE} nor an unpacked model ({MODEL_CARD}, model.onnx): {held}",
        MODEL_FIX,
    )


def scene_inputs(
    record: DatasetRecord, folder: Path, predictor: Predictor, threshold: float | None
) -> list[SceneInputs]:
    """Every scene of the test set in `folder`, checked, ready for `predictor`."""
    if not record.scenes:
        raise InputError(folder / TEST_RECORD, "lists no test scene", PREPARE_AGAIN)
    return [_case(record, folder, scene, predictor, threshold) for scene in record.scenes]


def _case(
    record: DatasetRecord,
    folder: Path,
    listed: DatasetScene,
    predictor: Predictor,
    threshold: float | None,
) -> SceneInputs:
    stem, recorded = listed.scene, listed.sha256
    path, truth = record.scene_file(folder, stem), record.truth_file(folder, stem)
    if not path.is_file():
        raise InputError(path, f"is missing: test scene {stem} of {TEST_RECORD}", PREPARE_AGAIN)
    if file_digest(path) != recorded:
        raise InputError(
            path,
            f"differs from test scene {stem} as {TEST_RECORD} records it ({recorded})",
            PREPARE_AGAIN,
        )
    try:
        scene = LocalScene(predictor, path, threshold)
    except InputError as error:  # bands or pixel type the model does not take
        card = predictor.card.input
        raise InputError(
            error.source,
            error.problem,
            f"evaluate a model trained on scenes like this test set's ({card.bands} bands of "
            f"{card.source_dtype} are what this one takes), or prepare a test set of such scenes",
        ) from None
    if not truth.is_file():
        raise InputError(truth, f"is missing: the truth raster of test scene {stem}", PREPARE_AGAIN)
    _check_truth(truth, scene.grid, path.name)
    return SceneInputs(stem, scene, truth)


def _check_truth(path: Path, grid: Grid, scene_name: str) -> None:
    """A one-band uint8 raster on the scene's grid, or an error saying what differs."""
    try:
        with rasterio.open(path) as dataset:
            found, count, dtype = describe(dataset), dataset.count, dataset.dtypes[0]
    except RasterioIOError as error:
        raise InputError(path, f"cannot be read as a raster ({error})", PREPARE_AGAIN) from None
    if count != 1 or np.dtype(dtype) != np.uint8:
        raise InputError(
            path, f"has {count} band(s) of {dtype}, not one band of uint8 truth", PREPARE_AGAIN
        )
    differences = grid_differences(found, grid)
    if differences:
        raise InputError(
            path,
            f"is not on the grid of scene {scene_name} ({'; '.join(differences)})",
            PREPARE_AGAIN,
        )
