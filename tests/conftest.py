"""Shared fixtures: the real georeferenced data beside the repo, and exports built from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

# moto in server mode as AWS (the `emulator` and `aws_env` fixtures).
pytest_plugins = ["tests.aws_emulator", "tests.wms"]

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """`../shared/data/real`: small real rasters with vector labels from outside the project."""
    if not (REAL_DATA / "RGB.byte.tif").is_file():
        pytest.fail(f"real test data missing: {REAL_DATA} (it ships beside the repo in shared/)")
    return REAL_DATA


def copy_shapefile(source: Path, target: Path, parts: tuple[str, ...] = SHAPEFILE_PARTS) -> Path:
    """Copy a shapefile and its sidecars under a new stem; return the new .shp."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in parts:
        shutil.copy(source.with_suffix(suffix), target.with_suffix(suffix))
    return target.with_suffix(".shp")


def landsat_export(folder: Path, real_data: Path, stems: list[str]) -> tuple[Path, Path]:
    """An export of copies of RGB.byte.tif (projected CRS, nodata collar) with box.shp."""
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True)
    for stem in stems:
        shutil.copy(real_data / "RGB.byte.tif", images / f"{stem}.tif")
        copy_shapefile(real_data / "box.shp", labels / f"{stem}.shp")
    return images, labels


def make_opt_ml(
    base: Path,
    dataset: Path,
    hyperparameters: dict[str, object],
    channels: tuple[str, ...] = ("train", "validation", "test"),
) -> Path:
    """A /opt/ml tree as SageMaker lays it out for a job."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    for name in channels:
        target = base / "input" / "data" / name
        if not target.exists():
            shutil.copytree(dataset / name, target)
    return base


@pytest.fixture(scope="session")
def test_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model artifact folder (64 px tiles, 3 uint8 bands, threshold 0.5)."""
    from earthseg.train.seeded_model import export_seeded_model

    folder = tmp_path_factory.mktemp("model") / "model"
    export_seeded_model(folder)
    return folder


# Runs after every other test: it checks what they all asked of AWS (tests/aws_emulator.py).
LAST = "tests/test_iam_policy.py::test_every_call_the_launcher_made_is_allowed_to_the_caller"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid == LAST)
