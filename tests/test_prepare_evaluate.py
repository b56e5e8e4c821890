"""`earthseg prepare` and `earthseg evaluate`, the pipeline's Prepare and Evaluate steps,
on a host with SAGEMAKER_BASE_DIR laid out as /opt/ml is in a Processing job: the dataset
as `preprocess` writes it, the test split set apart with its truth rasters, the scenes
fetched from a WMS when the export has none; the evaluation's scores equal the run
report's for the same masks; bad inputs refused naming the input and the fix, with
nothing half-written."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from packaging.requirements import Requirement

from earthseg.aws.registry import metadata_value
from earthseg.cli import build_parser, main
from earthseg.cli.options import model_from_args
from earthseg.contracts.evaluation import (
    IOU_JSON_PATH,
    METRICS,
    json_path_value,
    metric_json_path,
    read_evaluation,
    read_test_set,
)
from earthseg.contracts.manifest import file_digest, files_digest, read_manifest
from earthseg.contracts.model_card import read_model_card
from earthseg.contracts.opt_ml import BASE_DIR_ENV
from earthseg.contracts.processing import MODEL_ARCHIVE, prepare_arguments
from earthseg.errors import InputError
from earthseg.evaluate.confusion import Confusion
from earthseg.imagery.exports import open_export
from earthseg.imagery.fetch import fetch_export
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.pipeline.prepare import prepare
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.preprocess.rasterize import rasterize_file
from earthseg.report.scores import pooled, score_scene
from earthseg.synthetic.export import write_sample_export
from earthseg.synthetic.imagelabeler import write_event
from tests.conftest import REPO, landsat_export
from tests.test_rasterize import pixel_centres_inside
from tests.wms import RESOLUTION

OPTIONS = PreprocessOptions(tile_size=64, splits=(0.25, 0.25, 0.5))  # 2 of 4 scenes in test
PREPARE_OUTPUTS = ("output", "test")
EVALUATE_OUTPUTS = ("evaluation",)


def processing_layout(root: Path, inputs: dict[str, Path], outputs: tuple[str, ...]) -> Path:
    """/opt/ml as a Processing job sees it: each input copied to processing/input/<name>,
    each output folder mounted (created) empty; returns the /opt/ml folder."""
    for name, source in inputs.items():
        target = root / "processing" / "input" / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy(source, target / source.name)
    for name in outputs:
        (root / "processing" / name).mkdir(parents=True)
    return root


def run(base: Path, *argv: str) -> int:
    """`earthseg ARGV` with /opt/ml at `base`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BASE_DIR_ENV, str(base))
        return main(list(argv))


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with its digest."""
    return {
        str(path.relative_to(folder)): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def model_archive(model: Path, folder: Path) -> Path:
    """model.tar.gz as SageMaker tars /opt/ml/model: the folder's entries at the root."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / MODEL_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(model.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


@dataclass(frozen=True)
class Prepared:
    """An export, `prepare` run on it in the Processing layout, and `preprocess`'s dataset
    of the same export for reference."""

    images: Path
    labels: Path
    base: Path
    reference: Path

    @property
    def dataset(self) -> Path:
        return self.base / "processing" / "output"

    @property
    def test(self) -> Path:
        return self.base / "processing" / "test"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """Four synthetic 256 px scenes, two in the test split."""
    root = tmp_path_factory.mktemp("prepare")
    write_sample_export(root / "export", scenes=4, size=256, seed=3)
    images, labels = root / "export" / "images", root / "export" / "labels"
    base = processing_layout(root / "opt_ml", {"images": images, "labels": labels}, PREPARE_OUTPUTS)
    assert run(base, "prepare", *prepare_arguments(OPTIONS)) == 0
    reference = root / "preprocessed"
    args = ["--images", str(images), "--labels", str(labels), "--out", str(reference)]
    assert main(["preprocess", *args, *OPTIONS.arguments()]) == 0
    return Prepared(images, labels, base, reference)


@pytest.fixture(scope="module")
def evaluated(
    prepared: Prepared, test_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`evaluate` in the Processing layout: model.tar.gz and the test set mounted."""
    root = tmp_path_factory.mktemp("evaluate")
    archive = model_archive(test_model, root / "artifact")
    base = processing_layout(
        root / "opt_ml", {"model": archive, "test": prepared.test}, EVALUATE_OUTPUTS
    )
    assert run(base, "evaluate") == 0
    return base / "processing" / "evaluation"


@pytest.fixture(scope="module")
def landsat(
    real_data: Path, test_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, Path]:
    """Three copies of a real projected scene with a nodata collar (a third of its
    pixels), prepared and evaluated on explicit folders: (images, labels, test, evaluation)."""
    root = tmp_path_factory.mktemp("landsat")
    images, labels = landsat_export(root / "export", real_data, ["a", "b", "c"])
    prepare(labels, images, root / "dataset", root / "test", PreprocessOptions(tile_size=64))
    out = root / "evaluation"
    argv = ["--model", str(test_model), "--test", str(root / "test"), "--out", str(out)]
    assert main(["evaluate", *argv]) == 0
    return images, labels, root / "test", out


def test_prepare_writes_the_dataset_preprocess_writes_and_sets_the_test_split_apart(
    prepared: Prepared,
) -> None:
    dataset, reference = files(prepared.dataset), files(prepared.reference)
    assert dataset == reference  # same files, same bytes: the manifest first of all
    assert "manifest.json" in dataset and any(name.startswith("train/") for name in dataset)
    manifest = read_manifest(prepared.dataset)
    stems = [scene.scene for scene in manifest.scenes("test")]
    assert len(stems) == 2
    assert sorted(files(prepared.test)) == sorted(
        ["dataset.json", *(f"{kind}/{stem}.tif" for kind in ("scenes", "truth") for stem in stems)]
    )
    for stem in stems:  # the scenes as they are in the export
        scene = prepared.test / "scenes" / f"{stem}.tif"
        assert file_digest(scene) == file_digest(prepared.images / f"{stem}.tif")
    record = read_test_set(prepared.test)
    assert record.manifest_sha256 == file_digest(prepared.dataset / "manifest.json")
    assert record.fingerprint == manifest.fingerprint
    assert record.splits == {"train": 1, "validation": 1, "test": 2}
    assert record.options == manifest.options == OPTIONS.model_dump(mode="json")
    assert [(s.scene, s.sha256) for s in record.scenes] == [
        (s.scene, s.image.sha256) for s in manifest.scenes("test")
    ]
    assert record.imagery == "export scenes: 4 not fetched by earthseg"


def test_truth_is_the_labels_burned_on_the_scene_grid_with_nodata_where_the_scene_has_none(
    prepared: Prepared, landsat: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    # Synthetic scenes: the labels as `earthseg rasterize` (preprocessing's rasterisation)
    # burns them, and every pixel holds data.
    for scene in read_test_set(prepared.test).scenes:
        truth = prepared.test / "truth" / f"{scene.scene}.tif"
        image = prepared.images / f"{scene.scene}.tif"
        mask = rasterize_file(image, prepared.labels / f"{scene.scene}.shp", tmp_path / "m.tif")
        with rasterio.open(truth) as written, rasterio.open(image) as source:
            assert (written.crs, written.transform, written.shape) == (
                source.crs,
                source.transform,
                source.shape,
            )
            assert (written.count, written.dtypes[0], written.nodata) == (1, "uint8", 255)
            np.testing.assert_array_equal(written.read(1), mask)
        assert 0 < mask.mean() < 1
    # A real scene with a nodata collar: 255 exactly where it has no data, elsewhere 1 on
    # the pixel centres inside the box (an independent reference), 0 outside.
    images, labels, test, _ = landsat
    (scene,) = read_test_set(test).scenes
    image = images / f"{scene.scene}.tif"
    with rasterio.open(test / "truth" / f"{scene.scene}.tif") as written:
        truth = written.read(1)
    with rasterio.open(image) as source:
        valid = source.dataset_mask() > 0
        crs = source.crs
    box = shapely.union_all(gpd.read_file(labels / f"{scene.scene}.shp").to_crs(crs).geometry)
    inside = pixel_centres_inside(image, box)
    assert 0.2 < (~valid).mean() < 0.5
    np.testing.assert_array_equal(truth == 255, ~valid)
    np.testing.assert_array_equal(truth[valid], inside[valid].astype(np.uint8))
    assert set(np.unique(truth)) == {0, 1, 255}


def test_evaluate_scores_equal_the_run_reports_for_the_same_masks(
    prepared: Prepared, evaluated: Path, landsat: tuple[Path, Path, Path, Path]
) -> None:
    """Per scene and pooled, on synthetic scenes and on a real one with nodata."""
    cases = [(prepared.images, prepared.labels, evaluated), (*landsat[:2], landsat[3])]
    for images, labels, folder in cases:
        evaluation = read_evaluation(folder)
        report: dict[str, Confusion] = {}
        for scene in evaluation.scenes:
            stem = scene.scene
            report[stem] = confusion = score_scene(
                images / f"{stem}.tif", labels / f"{stem}.shp", folder / "masks" / f"{stem}.tif"
            )
            assert (scene.iou, scene.f1, scene.precision, scene.recall) == (
                confusion.iou,
                confusion.f1,
                confusion.precision,
                confusion.recall,
            )
            assert (scene.pixels, scene.positive, scene.labelled) == (
                confusion.scored,
                confusion.predicted_fraction,
                confusion.labelled_fraction,
            )
        total = pooled(report.values())
        assert evaluation.counts.model_dump() == total.counts()
        assert total.true_positives > 0 and total.false_positives > 0
        assert {name: metric.value for name, metric in evaluation.metrics.items()} == {
            "test_iou": total.iou,
            "test_f1": total.f1,
            "test_precision": total.precision,
            "test_recall": total.recall,
        }
    assert read_evaluation(landsat[3]).counts.unscored > 0  # the collar was left out


def test_evaluation_json_validates_and_the_condition_finds_the_test_iou(
    prepared: Prepared, evaluated: Path, test_model: Path
) -> None:
    evaluation = read_evaluation(evaluated)
    raw = json.loads((evaluated / "evaluation.json").read_text())
    assert raw["format"] == "earthseg.evaluation/1"
    iou = json_path_value(raw, IOU_JSON_PATH)
    assert iou == evaluation.metrics["test_iou"].value and 0 < iou < 1
    assert tuple(raw["metrics"]) == METRICS
    assert metric_json_path("test_iou") == IOU_JSON_PATH
    with pytest.raises(InputError, match=r"accuracy: is not a metric .* use one of test_iou"):
        metric_json_path("accuracy")
    assert evaluation.dataset == read_test_set(prepared.test)
    card = read_model_card(test_model)
    assert evaluation.threshold == card.threshold == 0.5
    assert evaluation.model.onnx_sha256 == file_digest(test_model / "model.onnx")
    assert evaluation.model.card_sha256 == file_digest(test_model / "earthseg.json")
    assert evaluation.model.card.hyperparameters == card.training.hyperparameters
    stems = [scene.scene for scene in evaluation.scenes]
    assert stems == [scene.scene for scene in evaluation.dataset.scenes]
    assert sorted(files(evaluated)) == ["evaluation.json", *(f"masks/{s}.tif" for s in stems)]
    with rasterio.open(evaluated / "masks" / f"{stems[0]}.tif") as mask:
        assert (mask.count, mask.dtypes[0], mask.nodata) == (1, "uint8", 255)


def serve_image_modules() -> set[str]:
    """Top-level modules of the packages the serve image installs: the core dependencies,
    the `serve` and `ort-cpu` extras and theirs (sagemaker-inference without its own, as
    containers/serve/Dockerfile installs it), read from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [Requirement(r).name for r in (*project["dependencies"], *extras["serve"])]
    wanted += [Requirement(r).name for r in extras["ort-cpu"]]
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    allowed = {"earthseg"}
    while wanted:
        name = normal(wanted.pop())
        if name in allowed:
            continue
        allowed.add(name)
        if name == "sagemaker-inference":
            continue
        for text in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return {
        module
        for module, names in importlib.metadata.packages_distributions().items()
        if any(normal(name) in allowed for name in names)
    }


GUARD = """
import importlib.abc, json, sys
allowed = set(json.loads(sys.argv[1]))
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in allowed or top.startswith("_"):
            return None
        raise ModuleNotFoundError(f"{top} is not in the serve image", name=name)
sys.meta_path.insert(0, Guard())
from earthseg.cli import build_parser, main
from earthseg.cli.options import model_from_args
sys.exit(main(sys.argv[2:]))
"""


def test_evaluate_on_a_model_folder_needs_only_what_the_serve_image_carries(
    prepared: Prepared, evaluated: Path, test_model: Path, tmp_path: Path
) -> None:
    """The same evaluation from the unpacked model, in a process that cannot import what
    the serve image lacks (geopandas, shapely, pyproj, TensorFlow, ...)."""
    modules = serve_image_modules()
    assert "rasterio" in modules and "onnxruntime" in modules
    assert not {"geopandas", "shapely", "pyproj", "tensorflow", "keras"} & modules
    out = tmp_path / "evaluation"
    argv = ["evaluate", "--model", str(test_model), "--test", str(prepared.test), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", GUARD, json.dumps(sorted(modules)), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert read_evaluation(out) == read_evaluation(evaluated)
    assert files(out) == files(evaluated)  # the masks too, byte for byte


def blank_truth(test: Path) -> None:
    """Every truth pixel nodata: nothing left to score."""
    for path in (test / "truth").iterdir():
        with rasterio.open(path, "r+") as dataset:
            dataset.write(np.full(dataset.shape, 255, np.uint8), 1)


def four_band_card(model: Path) -> None:
    card = json.loads((model / "earthseg.json").read_text())
    card["input"]["bands"] = 4
    (model / "earthseg.json").write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("case", "named", "message"),
    [
        ("no model", "input/model", "holds neither model.tar.gz nor an unpacked model"),
        ("empty test folder", "input/test/dataset.json", "is missing, so this is not a test set"),
        ("truth missing", "truth/", "is missing: the truth raster of test scene"),
        ("bands", "scenes/", "has 3 bands and the model takes 4. Fix: evaluate a model trained"),
        ("nothing to score", "dataset.json", "so the test IoU is undefined"),
    ],
)
def test_bad_evaluation_inputs_are_refused_naming_them_and_nothing_is_left_written(
    prepared: Prepared,
    test_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    named: str,
    message: str,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(test_model, model)
    base = processing_layout(
        tmp_path / "opt_ml", {"model": model, "test": prepared.test}, EVALUATE_OUTPUTS
    )
    inputs = base / "processing" / "input"
    if case == "no model":
        shutil.rmtree(inputs / "model")
        (inputs / "model").mkdir()
    elif case == "empty test folder":
        shutil.rmtree(inputs / "test")
        (inputs / "test").mkdir()
    elif case == "truth missing":
        next((inputs / "test" / "truth").iterdir()).unlink()
    elif case == "bands":
        four_band_card(inputs / "model")
    else:
        blank_truth(inputs / "test")
    assert run(base, "evaluate") == 2
    error = capsys.readouterr().err
    assert named in error and message in error and "Fix:" in error, error
    assert list((base / "processing" / "evaluation").iterdir()) == []


def test_bad_prepare_inputs_are_refused_before_any_output(
    prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = {"images": prepared.images, "labels": prepared.labels}
    base = processing_layout(tmp_path / "opt_ml", inputs, PREPARE_OUTPUTS)
    output, test = base / "processing" / "output", base / "processing" / "test"
    assert run(base, "prepare", "--splits=0.5,0.5,0") == 2
    assert "puts no scene in the test split" in capsys.readouterr().err
    (test / "notes.txt").write_text("not prepare's")
    assert run(base, "prepare") == 2
    error = capsys.readouterr().err
    assert f"{test}: holds files this command did not write (notes.txt)" in error
    assert "Fix: give --test a new or empty folder" in error
    assert list(output.iterdir()) == [] and [p.name for p in test.iterdir()] == ["notes.txt"]
    assert run(base, "prepare", "--fetch-min-valid=2") == 2
    assert "--fetch-min-valid: '2' is too large" in capsys.readouterr().err
    assert run(tmp_path / "nowhere", "prepare") == 2
    assert "--labels: was not given and" in capsys.readouterr().err


def test_the_step_arguments_ask_prepare_for_the_same_options() -> None:
    """What the pipeline's Prepare step passes is read back as the options it was made of."""
    preprocess = PreprocessOptions(tile_size=128, splits=(0.6, 0.2, 0.2), all_touched=True)
    fetch = FetchOptions(
        url="http://127.0.0.1:1/wms", layers=("A", "B"), max_size=512, min_valid=0.3
    )
    transfer = TransferOptions(workers=2, retries=0)
    arguments = prepare_arguments(preprocess, fetch, transfer)
    assert "--fetch-min-valid=0.3" in arguments and "--min-valid=0.9" in arguments
    args = build_parser().parse_args(["prepare", *arguments])
    given = argparse.Namespace(
        **{**vars(args), "layers": args.layer, "min_valid": args.fetch_min_valid}
    )
    assert model_from_args(args, PreprocessOptions) == preprocess
    assert model_from_args(given, FetchOptions) == fetch
    assert model_from_args(args, TransferOptions) == transfer
    assert prepare_arguments(preprocess) == preprocess.arguments()


def test_prepare_fetches_the_scenes_when_the_export_has_none(wms_url: str, tmp_path: Path) -> None:
    """No images mount: the scenes come from the WMS (MapServer standing in for GIBS),
    then the dataset is what `fetch` then `preprocess` make of the same export, and the
    test scene is the fetched one."""
    labels = tmp_path / "export"
    for stem, box in {
        "dust_2024-05-01_1": (10.5, 50.5, 11.2, 51.2),  # in `wide`
        "dust_2024-05-01_2": (14.5, 50.6, 15.2, 51.3),  # in `holed`, over its hole
        "dust_2024-05-02_3": (10.5, 50.0, 11.2, 50.7),  # in `tall`
    }.items():
        write_event(labels, stem, [shapely.box(*box)])
    fetch = FetchOptions(url=wms_url, resolution=f"{RESOLUTION}deg", margin="0.1deg")
    transfer = TransferOptions(workers=2, timeout=10, retries=1)
    options = PreprocessOptions(tile_size=32, min_valid=0.5)
    base = processing_layout(tmp_path / "opt_ml", {"labels": labels}, PREPARE_OUTPUTS)
    assert run(base, "prepare", *prepare_arguments(options, fetch, transfer)) == 0
    reference = tmp_path / "reference"
    fetch_export(labels, reference / "imagery", fetch, transfer)
    images = reference / "imagery" / "images"
    build_dataset(images, reference / "imagery" / "labels", reference / "dataset", options)
    output, test = base / "processing" / "output", base / "processing" / "test"
    assert files(output) == files(reference / "dataset")
    manifest = read_manifest(output)
    assert manifest.imagery and manifest.imagery[0].url == wms_url
    (scene,) = read_test_set(test).scenes
    assert file_digest(test / "scenes" / f"{scene.scene}.tif") == file_digest(
        images / f"{scene.scene}.tif"
    )
    line = read_test_set(test).imagery
    assert wms_url in line and "2024-05-01 to 2024-05-02: 3 of 3 scenes" in line
    assert metadata_value(line) == line  # a registered version's metadata takes it as it is
    # The fetched labels exist only inside the job: the test set carries the test scene's,
    # as the dataset read them, so the run report (which checks them against the
    # manifest) can be written from the job's outputs.
    (recorded,) = manifest.test_scenes(output / "manifest.json")
    with open_export(test / "labels") as label_sets:
        (label_set,) = label_sets
    assert label_set.stem == scene.scene
    assert files_digest(label_set.files()) == recorded.labels.sha256
