"""The run's report: whole-scene scores against expert labels, figures, the Markdown and HTML
documents and their links, on synthetic scenes and on a real projected scene."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from earthseg.contracts.manifest import file_digest
from earthseg.contracts.model_card import ModelCard, write_model_card
from earthseg.errors import InputError
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.report import scores as report_scores
from earthseg.report import write_report
from earthseg.report.scores import Confusion, score_scene
from earthseg.serve.geo import MASK_NODATA, describe
from earthseg.serve.raster_writer import cog_writer
from earthseg.serve.scene import write_polygons
from earthseg.serve.stream import Rows
from earthseg.synthetic.export import write_sample_export
from earthseg.train.export import model_card
from earthseg.train.report import plot_curves, plot_predictions
from tests.conftest import landsat_export
from tests.test_rasterize import pixel_centres_inside

THRESHOLD = 0.45
CARD_TEST = {"iou": 0.6543, "f1": 0.7911, "precision": 0.8, "recall": 0.78, "accuracy": 0.97}
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Run:
    """A preprocessed export and what a training job left: the report's inputs."""

    images: Path
    labels: Path
    manifest: Path
    card: Path
    metrics: Path
    history: Path
    figures: Path
    test_stems: list[str]


def make_run(root: Path, images: Path, labels: Path, options: PreprocessOptions) -> Run:
    """Preprocess an export, then write a model card, metrics.json, history and figures as
    a training job on it would."""
    manifest = build_dataset(images, labels, root / "dataset", options)
    manifest_path = root / "dataset" / "manifest.json"
    test_stems = [scene.scene for scene in manifest.scenes("test")]
    model = root / "model"
    model.mkdir()
    metrics = {"validation": {**CARD_TEST, "iou": 0.7}, "test": CARD_TEST}
    card = model_card(
        tile_shape=[64, 64, 3],
        dtype="uint8",
        scale=1 / 255,
        threshold=THRESHOLD,
        metrics=metrics,
        hyperparameters={"epochs": 4, "batch_size": 8, "learning_rate": 0.001},
        parameters=123456,
        epochs=3,
        manifest_sha256=file_digest(manifest_path),
    )
    onnx = {"input": "image", "output": "output_0", "max_abs_difference_to_keras": 0.0}
    onnx["checked_tiles"] = 2
    write_model_card(model, ModelCard.model_validate({**card, "onnx": onnx}))
    output = root / "output"
    output.mkdir()
    (output / "metrics.json").write_text(json.dumps({"threshold": THRESHOLD, **metrics}))
    history = root / "history.csv"
    history.write_text(
        "epoch,f1,iou,loss,val_f1,val_iou,val_loss\n"
        "0,0.2,0.1,1.4,0.3,0.2,1.3\n1,0.5,0.4,1.1,0.6,0.5,1.0\n2,0.7,0.6,0.9,0.7,0.6,0.8\n"
    )
    plot_curves(history, output)
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    plot_predictions(tiles, tiles[..., :1] > 128, rng.random((2, 16, 16, 1)), THRESHOLD, output)
    return Run(
        images, labels, manifest_path, model / "earthseg.json", output / "metrics.json",
        history, output, test_stems,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Four synthetic 256 px scenes, two of them in the test split."""
    root = tmp_path_factory.mktemp("report-run")
    write_sample_export(root / "export", scenes=4, size=256, seed=3)
    options = PreprocessOptions(tile_size=64, splits=(0.25, 0.25, 0.5))
    return make_run(root, root / "export" / "images", root / "export" / "labels", options)


def truth(image: Path, labels: Path) -> np.ndarray:
    """Independent reference: the scene's pixel centres inside any expert polygon."""
    with rasterio.open(image) as dataset:
        crs = dataset.crs
    union = shapely.union_all(gpd.read_file(labels).to_crs(crs).geometry.values)
    return pixel_centres_inside(image, union)


def labels_of(run: Run, stem: str) -> Path:
    return run.labels / f"{stem}.shp"


def save_mask(
    mask: np.ndarray, image: Path, folder: Path, stem: str, valid: np.ndarray | None = None
) -> Path:
    """Write `mask` (0/1) as the predictor writes a scene's prediction, nodata where not
    `valid`; return the mask GeoTIFF (its GeoJSON beside it)."""
    with rasterio.open(image) as dataset:
        grid = describe(dataset)
    probabilities = mask.astype(np.float32)
    if valid is not None:
        probabilities[~valid] = np.nan
    path = folder / f"{stem}.tif"
    with cog_writer(path, grid, "mask", 0.5) as writer:
        writer.write(Rows(0, probabilities))
    write_polygons(path, folder / f"{stem}.geojson", None)
    return path


def shifted(mask: np.ndarray, columns: int) -> np.ndarray:
    """`mask` moved `columns` to the right, emptied where it came from."""
    moved = np.zeros_like(mask)
    moved[:, columns:] = mask[:, :-columns]
    return moved


def expected(labelled: np.ndarray, predicted: np.ndarray, scored: np.ndarray) -> Confusion:
    """Counts by plain numpy over the scored pixels."""
    labelled, predicted = labelled.astype(bool), predicted.astype(bool)
    return Confusion(
        true_positives=int((labelled & predicted & scored).sum()),
        false_positives=int((~labelled & predicted & scored).sum()),
        false_negatives=int((labelled & ~predicted & scored).sum()),
        true_negatives=int((~labelled & ~predicted & scored).sum()),
        unscored=int((~scored).sum()),
    )


def test_perfect_and_shifted_predictions_score_as_counted(run: Run, tmp_path: Path) -> None:
    stem = run.test_stems[0]
    image, labels = run.images / f"{stem}.tif", labels_of(run, stem)
    reference = truth(image, labels)
    assert 0 < reference.mean() < 0.5
    perfect = score_scene(image, labels, save_mask(reference, image, tmp_path, stem))
    assert (perfect.iou, perfect.f1, perfect.precision, perfect.recall) == (1, 1, 1, 1)
    assert perfect.true_positives == reference.sum() and perfect.unscored == 0

    moved = shifted(reference, 7)
    score = score_scene(image, labels, save_mask(moved, image, tmp_path / "moved", stem))
    counted = expected(reference, moved, np.ones_like(reference))
    assert score == counted
    tp, fp, fn = counted.true_positives, counted.false_positives, counted.false_negatives
    assert score.iou == pytest.approx(tp / (tp + fp + fn)) and 0.3 < score.iou < 0.95
    assert score.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert score.precision == pytest.approx(tp / (tp + fp))
    assert score.recall == pytest.approx(tp / (tp + fn))


def test_nodata_pixels_are_left_out(run: Run, tmp_path: Path) -> None:
    stem = run.test_stems[0]
    image, labels = run.images / f"{stem}.tif", labels_of(run, stem)
    reference = truth(image, labels)
    block = np.zeros_like(reference)
    rows, cols = np.nonzero(reference)
    block[rows.min() : rows.min() + 40, cols.min() : cols.min() + 60] = True  # over the dust
    wrong = np.where(block, ~reference, reference)

    visible = score_scene(image, labels, save_mask(wrong, image, tmp_path / "a", stem))
    assert visible.iou is not None and visible.iou < 0.99  # the wrong pixels count...
    hidden = score_scene(image, labels, save_mask(wrong, image, tmp_path / "b", stem, ~block))
    assert hidden.iou == 1.0  # ...but not under nodata
    assert hidden.unscored == block.sum()
    assert hidden == expected(reference, reference, ~block)


def test_scenes_are_scored_strip_by_strip(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = run.test_stems[1]
    image, labels = run.images / f"{stem}.tif", labels_of(run, stem)
    mask = save_mask(shifted(truth(image, labels), 3), image, tmp_path, stem)
    whole = score_scene(image, labels, mask)
    monkeypatch.setattr(report_scores, "BLOCK_PIXELS", 256 * 7)  # strips of 7 rows
    assert score_scene(image, labels, mask) == whole


def test_a_mask_on_another_grid_is_refused(run: Run, tmp_path: Path) -> None:
    stem = run.test_stems[0]
    image = run.images / f"{stem}.tif"
    other = run.images / f"{run.test_stems[1]}.tif"
    mask = save_mask(np.zeros((256, 256), bool), other, tmp_path, stem)
    with pytest.raises(InputError, match=rf"not on the grid of scene {stem}\.tif.*transform"):
        score_scene(image, labels_of(run, stem), mask)


def predict_run(run: Run, folder: Path) -> dict[str, np.ndarray]:
    """Masks for the test scenes: the first perfect, the others shifted by 5 px."""
    masks = {}
    for index, stem in enumerate(run.test_stems):
        image = run.images / f"{stem}.tif"
        reference = truth(image, labels_of(run, stem))
        masks[stem] = reference if index == 0 else shifted(reference, 5)
        save_mask(masks[stem], image, folder, stem)
    return masks


class PageLinks(HTMLParser):
    """Every href and img src of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img":
            self.images.append(str(values["src"]))


def test_the_report_holds_scores_figures_and_links_that_resolve(run: Run, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    masks = predict_run(run, predictions)
    out = tmp_path / "report"
    summary = write_report(
        out,
        manifest=run.manifest,
        images=run.images,
        labels=run.labels,
        predictions=predictions,
        model_card=run.card,
        training_metrics=run.metrics,
        history_csv=run.history,
        training_figures=run.figures,
        title="Dust | test report",
    )
    first, second = run.test_stems
    assert summary.scenes[first].iou == 1.0
    counted = {
        stem: expected(truth(run.images / f"{stem}.tif", labels_of(run, stem)), mask, mask >= 0)
        for stem, mask in masks.items()
    }
    assert summary.scenes == counted
    assert summary.pooled == counted[first] + counted[second]
    assert f"2 test scenes: IoU {summary.pooled.iou:.3f}, F1 {summary.pooled.f1:.3f}" in str(
        summary
    )
    assert summary.scenes[second].iou is not None and summary.scenes[second].iou < 1

    scores = json.loads((out / "scores.json").read_text())
    assert scores["scenes"][second]["iou"] == pytest.approx(counted[second].iou)
    assert scores["pooled"]["true_positives"] == summary.pooled.true_positives
    assert scores["tiles"]["test"] == CARD_TEST and scores["threshold"] == THRESHOLD
    with open(out / "scene_scores.csv", newline="") as handle:
        rows = {row["scene"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {first, second, "pooled"}
    assert float(rows["pooled"]["f1"]) == pytest.approx(summary.pooled.f1)

    for stem in run.test_stems:
        assert (out / "figures" / f"{stem}.png").read_bytes()[:8] == PNG
        assert summary.figures[stem] == out / "figures" / f"{stem}.png"
        for suffix in (".tif", ".geojson"):
            copied = out / "predictions" / f"{stem}{suffix}"
            assert copied.read_bytes() == (predictions / f"{stem}{suffix}").read_bytes()
    for name in ("training_curves.png", "predictions.png", "metrics.json", "history.csv"):
        assert (out / "training" / name).is_file(), name

    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# Dust \\| test report\n")
    for text in (f"{CARD_TEST['iou']:.3f}", f"{counted[second].iou:.3f}", "1.000", "| epochs |"):
        assert text in markdown, text
    assert file_digest(run.manifest) in markdown and "trained on this dataset" in markdown
    targets = {unquote(t) for t in re.findall(r"\]\(([^)\s]+)\)", markdown)}
    for stem in run.test_stems:
        expected_links = {f"figures/{stem}.png", f"predictions/{stem}.tif"}
        assert expected_links | {f"predictions/{stem}.geojson"} <= targets
    assert {"training/training_curves.png", "training/earthseg.json"} <= targets
    for target in targets:
        assert (out / target).is_file(), target

    page = PageLinks()
    page.feed((out / "report.html").read_text())
    page.close()
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    for png in [*(out / "figures").glob("*.png"), *(out / "training").glob("*.png")]:
        assert png.read_bytes() in embedded, png
    assert len(page.images) == len(run.test_stems) + 2
    for href in page.hrefs:
        assert (out / unquote(href)).is_file(), href


def test_a_second_report_replaces_the_first_and_other_folders_are_refused(
    run: Run, tmp_path: Path
) -> None:
    predictions = tmp_path / "predictions"
    predict_run(run, predictions)
    inputs = {
        "manifest": run.manifest,
        "images": run.images,
        "labels": run.labels,
        "predictions": predictions,
        "model_card": run.card,
    }
    out = tmp_path / "report"
    write_report(out, **inputs)
    (out / "stale.txt").write_text("from before")
    summary = write_report(out, **inputs)
    assert summary.markdown.is_file() and not (out / "stale.txt").exists()
    assert not (out / "training" / "training_curves.png").exists()  # none given this time
    with pytest.raises(InputError, match=r"holds other files than a report"):
        write_report(tmp_path, **inputs)


def test_a_model_trained_on_another_dataset_is_flagged(run: Run, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    predict_run(run, predictions)
    card = json.loads(run.card.read_text())
    card["data"]["manifest_sha256"] = "sha256:" + "0" * 64
    (tmp_path / "earthseg.json").write_text(json.dumps(card))
    summary = write_report(
        tmp_path / "report",
        manifest=run.manifest,
        images=run.images,
        labels=run.labels,
        predictions=predictions,
        model_card=tmp_path / "earthseg.json",
    )
    warning = f"Warning: the model card names dataset manifest sha256:{'0' * 64}, not this one"
    assert warning in summary.markdown.read_text()
    assert warning in summary.html.read_text()


def test_a_missing_prediction_names_the_scene_and_the_fix(run: Run, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    predict_run(run, predictions)
    missing = run.test_stems[1]
    (predictions / f"{missing}.tif").unlink()
    with pytest.raises(InputError, match=rf"no prediction for test scene {missing}") as error:
        write_report(
            tmp_path / "report",
            manifest=run.manifest,
            images=run.images,
            labels=run.labels,
            predictions=predictions,
            model_card=run.card,
        )
    assert "earthseg predict --image" in error.value.fix
    assert not (tmp_path / "report").exists()


def test_labels_changed_since_preprocessing_are_refused(run: Run, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    predict_run(run, predictions)
    labels = tmp_path / "labels"
    shutil.copytree(run.labels, labels)
    first, second = run.test_stems
    for part in run.labels.glob(f"{second}.*"):
        shutil.copy(part, labels / part.name.replace(second, first))
    with pytest.raises(InputError, match=rf"{first}\.shp: differs from the file test scene"):
        write_report(
            tmp_path / "report",
            manifest=run.manifest,
            images=run.images,
            labels=labels,
            predictions=predictions,
            model_card=run.card,
        )


def test_report_on_a_real_projected_scene_with_a_nodata_collar(
    real_data: Path, tmp_path: Path
) -> None:
    stems = ["landsat_a", "landsat_b", "landsat_c"]
    images, labels = landsat_export(tmp_path / "export", real_data, stems)
    options = PreprocessOptions(tile_size=128, splits=(0.34, 0.33, 0.33), min_valid=0.5)
    run = make_run(tmp_path, images, labels, options)
    (stem,) = run.test_stems
    image = images / f"{stem}.tif"
    with rasterio.open(image) as dataset:
        valid = dataset.dataset_mask() > 0
        crs = dataset.crs
    box = gpd.read_file(real_data / "box.shp").geometry.iloc[0]
    reference = pixel_centres_inside(image, box)
    moved = shifted(reference, 20)
    predictions = tmp_path / "predictions"
    save_mask(moved, image, predictions, stem, valid)

    summary = write_report(
        tmp_path / "report",
        manifest=run.manifest,
        images=images,
        labels=labels,
        predictions=predictions,
        model_card=run.card,
        history_csv=run.history,
    )
    score = summary.scenes[stem]
    assert score == expected(reference, moved, valid)
    assert score.unscored == (~valid).sum() > 0  # the collar is not scored
    assert score.iou is not None and 0.5 < score.iou < 1
    assert crs.to_epsg() == 32618
    with rasterio.open(tmp_path / "report" / "predictions" / f"{stem}.tif") as mask:
        assert (mask.crs, mask.nodata) == (crs, MASK_NODATA)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"figures/{stem}.png" in markdown and "training/training_curves.png" in markdown
