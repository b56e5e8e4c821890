"""Pixel counts of predicted masks against the truth, and the scores they give: one
definition for the run report (earthseg.report.scores) and the pipeline's evaluation.

Unlike the Keras metrics (0 when there is nothing to count), a ratio with nothing to
count is None: a scene without dust where none is predicted has no IoU, not an IoU of 0.
Pooled scores add up the pixel counts of all scenes: every pixel weighs the same, as in
the training job's tile scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from earthseg.serve.geo import MASK_NODATA

METRICS = ("iou", "f1", "precision", "recall")


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of a prediction against the labels; `unscored`: nodata pixels left out."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    unscored: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(Confusion))
        )

    @property
    def scored(self) -> int:
        return (
            self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
        )

    @property
    def iou(self) -> float | None:
        tp = self.true_positives
        return _ratio(tp, tp + self.false_positives + self.false_negatives)

    @property
    def f1(self) -> float | None:
        tp = 2 * self.true_positives
        return _ratio(tp, tp + self.false_positives + self.false_negatives)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def labelled_fraction(self) -> float | None:
        """Share of scored pixels the experts labelled."""
        return _ratio(self.true_positives + self.false_negatives, self.scored)

    @property
    def predicted_fraction(self) -> float | None:
        """Share of scored pixels the model predicted positive."""
        return _ratio(self.true_positives + self.false_positives, self.scored)

    def counts(self) -> dict[str, int]:
        """The pixel counts by name."""
        return asdict(self)

    def as_dict(self) -> dict[str, Any]:
        """The scores, then the counts they come from, as scores.json holds them."""
        ratios = (*METRICS, "labelled_fraction", "predicted_fraction")
        return {**{name: getattr(self, name) for name in ratios}, **self.counts()}


def count(truth: np.ndarray, mask: np.ndarray, nodata: int = MASK_NODATA) -> Confusion:
    """Counts of a predicted `mask` (0, 1 or `nodata`) against a 0/1 `truth` of its shape."""
    scored = mask != nodata
    predicted = mask == 1
    labelled = truth > 0
    true_positives = int(np.count_nonzero(predicted & labelled))
    predicted_count = int(np.count_nonzero(predicted))
    labelled_scored = int(np.count_nonzero(labelled & scored))
    scored_count = int(np.count_nonzero(scored))
    return Confusion(
        true_positives=true_positives,
        false_positives=predicted_count - true_positives,
        false_negatives=labelled_scored - true_positives,
        true_negatives=scored_count - predicted_count - labelled_scored + true_positives,
        unscored=mask.size - scored_count,
    )


def pooled(confusions: Iterable[Confusion]) -> Confusion:
    """The counts of several scenes added up, as if they were one scene."""
    return sum(confusions, Confusion())


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
