"""What a person looks at after training, written to /opt/ml/output/data: curves, the
test-split metrics, and the notebooks' three-panel figure (scene, expert label,
prediction) for a few test tiles."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

CURVES = "training_curves.png"
METRICS = "metrics.json"
PANELS = "predictions.png"


def write_metrics(folder: Path, metrics: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / METRICS
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def plot_curves(history_csv: Path, folder: Path) -> Path:
    """Loss and validation IoU/F1 per epoch, from the history kept beside the checkpoints
    so that a resumed job draws the whole run."""
    plt = _pyplot()
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        losses.plot(epochs, [float(row[key]) for row in rows], label=label)
    for key, label in (("val_iou", "validation IoU"), ("val_f1", "validation F1")):
        scores.plot(epochs, [float(row[key]) for row in rows], label=label)
    losses.set_xlabel("epoch")
    scores.set_xlabel("epoch")
    scores.set_ylim(0, 1)
    losses.legend()
    scores.legend()
    return _save(plt, figure, folder / CURVES, dpi=100)


def plot_predictions(
    images: np.ndarray,
    masks: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    folder: Path,
    tiles: int = 4,
) -> Path:
    """One row per tile: the scene, the expert label over it, the prediction over it.

    Picks the tiles with the most labelled pixels, where a reader learns the most.
    """
    plt = _pyplot()
    chosen = np.argsort(masks.reshape(len(masks), -1).sum(axis=1))[::-1][:tiles]
    figure, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)), squeeze=False)
    for row, index in zip(axes, chosen, strict=True):
        picture = _displayable(images[index])
        predicted = probabilities[index].squeeze() >= threshold
        for axis, overlay, title in (
            (row[0], None, "scene"),
            (row[1], masks[index].squeeze() > 0, "expert label"),
            (row[2], predicted, f"prediction (p >= {threshold:.2f})"),
        ):
            axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            if overlay is not None:
                axis.imshow(np.ma.masked_where(~overlay, overlay), cmap="autumn", alpha=0.45)
            axis.set_title(title)
            axis.axis("off")
    return _save(plt, figure, folder / PANELS, dpi=80)


def _displayable(image: np.ndarray) -> np.ndarray:
    """RGB (or the first band) stretched to 0..1 for display."""
    data = image[..., :3] if image.shape[-1] >= 3 else image[..., 0]
    data = data.astype(np.float32)
    low, high = np.percentile(data, (1, 99))
    return np.clip((data - low) / max(high - low, 1e-6), 0, 1)


def _save(plt: Any, figure: Any, path: Path, dpi: int) -> Path:
    """Lay out, write and close `figure`; return where it went."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display in a container)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
