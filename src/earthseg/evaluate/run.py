"""`earthseg evaluate`: a model over the test set, scored as the run report scores.

Each test scene goes through the serve image's own prediction path (in-process ONNX
Runtime, streamed by rows: earthseg.serve.scene), its mask is written as `predict`
writes one, then read back in strips and counted against the truth raster: pixels
without data in the scene (nodata in the mask or the truth) are left out. The pooled
scores add up every scene's pixels (earthseg.evaluate.confusion). The output folder
appears only complete, evaluation.json last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from earthseg import __version__
from earthseg.atomic import atomic_dir
from earthseg.contracts.evaluation import (
    EVALUATION_FILE,
    MASKS,
    TEST_RECORD,
    TRUTH_NODATA,
    TRUTH_POSITIVE,
    CardFacts,
    Counts,
    DatasetRecord,
    Evaluation,
    Metric,
    ModelFacts,
    SceneScore,
    read_test_set,
    write_evaluation,
)
from earthseg.contracts.manifest import file_digest
from earthseg.contracts.model_card import MODEL_CARD, ONNX_FILE, ModelCard
from earthseg.contracts.processing import check_output
from earthseg.errors import InputError
from earthseg.evaluate.confusion import METRICS as SCORES  # test_<score> in the evaluation
from earthseg.evaluate.confusion import Confusion, count, pooled
from earthseg.evaluate.inputs import model_source, scene_inputs
from earthseg.serve.artifact import model_folder
from earthseg.serve.geo import MASK_NODATA
from earthseg.serve.predictor import load_predictor
from earthseg.serve.scene import save_scene

BLOCK_PIXELS = 2**22  # pixels per strip read when scoring: memory bounded whatever the size


def evaluate(
    model: Path,
    test: Path,
    out: Path,
    threshold: float | None = None,
    say: Callable[[str], None] = print,
) -> Evaluation:
    """Predict every scene of the test set in `test` with `model` (a folder, a
    model.tar.gz, or a folder holding one) at `threshold` (default the model card's),
    write the masks and evaluation.json into `out`; return the evaluation."""
    test, out = Path(test), Path(out)
    check_output(out, EVALUATION_FILE, "--out")
    record = read_test_set(test)
    with model_folder(model_source(model)) as folder:
        predictor = load_predictor(folder)  # refuses a folder without a card or ONNX model
        card = predictor.card
        facts = _model_facts(folder, card)
        scenes = scene_inputs(record, test, predictor, threshold)
        if card.data.manifest_sha256 not in (None, record.manifest_sha256):
            say(
                f"note: the model was trained on dataset {card.data.manifest_sha256}, the test "
                f"set comes from {record.manifest_sha256}: its scenes may not be new to it"
            )
        chosen = card.threshold if threshold is None else threshold
        scores: dict[str, Confusion] = {}
        with atomic_dir(out, EVALUATION_FILE, replace=True) as partial:
            (partial / MASKS).mkdir()
            for number, case in enumerate(scenes, 1):
                mask = partial / MASKS / f"{case.stem}.tif"
                save_scene(case.scene, mask)
                scores[case.stem] = score_truth(mask, case.truth)
                say(f"  {number}/{len(scenes)} {case.stem}: {_scores_line(scores[case.stem])}")
            evaluation = _evaluation(scores, chosen, record, facts, test)
            write_evaluation(partial, evaluation)
    say(f"{out}: {len(scores)} test scenes, {_scores_line(pooled(scores.values()))} (pooled)")
    return evaluation


def score_truth(mask: Path, truth: Path) -> Confusion:
    """Counts of a mask GeoTIFF against a truth raster on its grid, one strip of rows at a
    time; pixels either marks as nodata are left out."""
    with rasterio.open(mask) as predicted, rasterio.open(truth) as expected:
        width, height = predicted.width, predicted.height
        nodata = MASK_NODATA if predicted.nodata is None else int(predicted.nodata)
        rows = max(1, BLOCK_PIXELS // width)
        total = Confusion()
        for top in range(0, height, rows):
            window = Window(0, top, width, min(rows, height - top))
            values, labels = predicted.read(1, window=window), expected.read(1, window=window)
            values = np.where(labels == TRUTH_NODATA, nodata, values)
            total += count(labels == TRUTH_POSITIVE, values, nodata)
    return total


def _evaluation(
    scores: dict[str, Confusion],
    threshold: float,
    record: DatasetRecord,
    model: ModelFacts,
    test: Path,
) -> Evaluation:
    total = pooled(scores.values())
    if total.iou is None:
        raise InputError(
            test / TEST_RECORD,
            "its test scenes hold no labelled dust where they have data, and the model "
            "predicts none, so the test IoU is undefined",
            "give the test split scenes with labelled dust (another --seed or --splits for "
            "earthseg prepare)",
        )
    metrics = {f"test_{name}": Metric(value=getattr(total, name)) for name in SCORES}
    return Evaluation(
        created_by=f"earthseg {__version__}",
        metrics=metrics,
        threshold=threshold,
        counts=Counts(**total.counts()),
        scenes=[
            SceneScore(
                scene=stem,
                iou=confusion.iou,
                f1=confusion.f1,
                precision=confusion.precision,
                recall=confusion.recall,
                pixels=confusion.scored,
                positive=confusion.predicted_fraction,
                labelled=confusion.labelled_fraction,
            )
            for stem, confusion in scores.items()
        ],
        dataset=record,
        model=model,
    )


def _model_facts(folder: Path, card: ModelCard) -> ModelFacts:
    return ModelFacts(
        onnx_sha256=file_digest(folder / ONNX_FILE),
        card_sha256=file_digest(folder / MODEL_CARD),
        card=CardFacts(
            created_by=card.created_by,
            hyperparameters=card.training.hyperparameters,
            epochs=card.training.epochs,
            threshold=card.threshold,
            manifest_sha256=card.data.manifest_sha256,
            metrics=card.metrics,
        ),
    )


def _scores_line(confusion: Confusion) -> str:
    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return f"IoU {shown(confusion.iou)}, F1 {shown(confusion.f1)}"
