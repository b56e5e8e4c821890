"""Segmentation quality: Keras metrics for every epoch, numpy scores for whole splits.

A pixel is predicted positive where its probability is at least the threshold (as in
`keras.metrics.BinaryIoU`). Ratios with nothing to count (no positives predicted or
labelled) are 0, as Keras reports them.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

THRESHOLD = 0.5  # the per-epoch metrics' threshold; the final one is chosen on validation
THRESHOLD_GRID = np.arange(1, 20) / 20  # 0.05, 0.10, ..., 0.95
CHUNK = 2**22  # pixels per pass of the numpy counts: bounds their temporary memory


@keras.saving.register_keras_serializable(package="earthseg")
class F1Score(keras.metrics.Metric):
    """Pixel F1 (= Dice) of the positive class at a threshold, accumulated over batches."""

    def __init__(self, threshold: float = THRESHOLD, name: str = "f1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.false_positives = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.false_negatives = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth = ops.greater(ops.cast(y_true, "float32"), 0.5)
        predicted = ops.greater_equal(ops.cast(y_pred, "float32"), self.threshold)
        for variable, hits in (
            (self.true_positives, ops.logical_and(truth, predicted)),
            (self.false_positives, ops.logical_and(ops.logical_not(truth), predicted)),
            (self.false_negatives, ops.logical_and(truth, ops.logical_not(predicted))),
        ):
            variable.assign_add(ops.sum(ops.cast(hits, "float32")))

    def result(self) -> Any:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return ops.divide_no_nan(2 * self.true_positives, denominator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


def segmentation_metrics() -> list[keras.metrics.Metric]:
    """New metric objects, logged as iou, f1, precision, recall (val_iou, ... on validation)."""
    return [
        keras.metrics.BinaryIoU(target_class_ids=[1], threshold=THRESHOLD, name="iou"),
        F1Score(THRESHOLD, name="f1"),
        keras.metrics.Precision(thresholds=THRESHOLD, name="precision"),
        keras.metrics.Recall(thresholds=THRESHOLD, name="recall"),
    ]


def scores(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> dict[str, float]:
    """iou, f1, precision, recall, accuracy of the positive class over all pixels, and
    positive_fraction: the share of pixels predicted positive.

    `y_true` holds 0/1 masks and `y_prob` probabilities with as many elements in any
    shape, e.g. (tiles, rows, cols) and (tiles, rows, cols, 1).
    """
    truth, probability = _flat(y_true, y_prob)
    true_positives = predicted = positives = 0
    for start in range(0, truth.size, CHUNK):
        labelled = truth[start : start + CHUNK]
        hit = probability[start : start + CHUNK] >= threshold
        true_positives += int(np.count_nonzero(hit & labelled))
        predicted += int(np.count_nonzero(hit))
        positives += int(np.count_nonzero(labelled))
    return _from_counts(true_positives, predicted, positives, truth.size)


def choose_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[float, dict[str, float]]:
    """The threshold on `THRESHOLD_GRID` with the highest IoU, and the scores there.

    One pass: each pixel's probability falls in a bin between grid points, counted per
    class, so every threshold's confusion counts are sums over bins. Ties go to the
    threshold nearest 0.5.
    """
    truth, probability = _flat(y_true, y_prob)
    grid = THRESHOLD_GRID.astype(probability.dtype)  # compare as `scores` does
    bins = len(grid) + 1
    positive_bins = np.zeros(bins, dtype=np.int64)
    all_bins = np.zeros(bins, dtype=np.int64)
    for start in range(0, truth.size, CHUNK):
        # Bin b holds probabilities reaching the first b thresholds and not the next.
        index = np.searchsorted(grid, probability[start : start + CHUNK], side="right")
        all_bins += np.bincount(index, minlength=bins)
        positive_bins += np.bincount(index[truth[start : start + CHUNK]], minlength=bins)
    # Predicted positive at threshold k: bins k+1 and up.
    predicted = np.cumsum(all_bins[::-1])[::-1][1:]
    true_positives = np.cumsum(positive_bins[::-1])[::-1][1:]
    positives = int(positive_bins.sum())
    candidates = [
        _from_counts(int(tp), int(p), positives, truth.size)
        for tp, p in zip(true_positives, predicted, strict=True)
    ]
    best_iou = max(candidate["iou"] for candidate in candidates)
    best = min(
        (k for k, candidate in enumerate(candidates) if candidate["iou"] == best_iou),
        key=lambda k: abs(THRESHOLD_GRID[k] - 0.5),
    )
    return float(THRESHOLD_GRID[best]), candidates[best]


def _flat(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays flattened, the truth as booleans, probabilities as floats."""
    if np.size(y_true) != np.size(y_prob):
        raise ValueError(f"{np.size(y_true)} labels but {np.size(y_prob)} probabilities")
    probability = np.ravel(y_prob)
    if not np.issubdtype(probability.dtype, np.floating):
        probability = probability.astype(np.float32)
    return np.ravel(y_true) > 0, probability


def _from_counts(
    true_positives: int, predicted: int, positives: int, pixels: int
) -> dict[str, float]:
    false_positives = predicted - true_positives
    false_negatives = positives - true_positives
    true_negatives = pixels - true_positives - false_positives - false_negatives
    return {
        "iou": _ratio(true_positives, true_positives + false_positives + false_negatives),
        "f1": _ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives),
        "precision": _ratio(true_positives, predicted),
        "recall": _ratio(true_positives, positives),
        "accuracy": _ratio(true_positives + true_negatives, pixels),
        "positive_fraction": _ratio(predicted, pixels),
    }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
