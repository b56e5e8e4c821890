"""What a person looks at after training, written to /opt/ml/output/data: curves, the
test-split metrics, and the notebooks' three-panel figure (scene, expert label,
prediction) for a few test tiles. The run's report (earthseg.report) draws its whole-scene
figures with the same helpers."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
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
    plt = pyplot()
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
    return save_figure(plt, figure, folder / CURVES, dpi=100)


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
    plt = pyplot()
    chosen = np.argsort(masks.reshape(len(masks), -1).sum(axis=1))[::-1][:tiles]
    figure, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)), squeeze=False)
    for row, index in zip(axes, chosen, strict=True):
        draw_panels(
            row,
            displayable(images[index]),
            masks[index].squeeze() > 0,
            probabilities[index].squeeze() >= threshold,
            ("scene", "expert label", f"prediction (p >= {threshold:.2f})"),
        )
    return save_figure(plt, figure, folder / PANELS, dpi=80)


def draw_panels(
    row: Sequence[Any],
    picture: np.ndarray,
    label: np.ndarray,
    predicted: np.ndarray,
    titles: tuple[str, str, str],
    extent: tuple[float, float, float, float] | None = None,
    unscored: np.ndarray | None = None,
) -> None:
    """The notebooks' three panels on three axes: the scene, the expert label over it, the
    prediction over it with the label's outline. One drawing for training tiles and whole
    test scenes alike.

    `extent` (left, right, bottom, top in map units) keeps map coordinates on the axes;
    without it the axes are hidden (tiles have no useful coordinates). `unscored` greys
    out pixels the prediction leaves without data.
    """
    for axis, overlay, title in zip(row, (None, label, predicted), titles, strict=True):
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, extent=extent)
        if overlay is not None:
            axis.imshow(
                np.ma.masked_where(~overlay, overlay), cmap="autumn", alpha=0.45, extent=extent
            )
        axis.set_title(title)
        if extent is None:
            axis.axis("off")
    if unscored is not None and unscored.any():
        row[2].imshow(
            np.ma.masked_where(~unscored, unscored),
            cmap="gray",
            vmin=0,
            vmax=2,
            alpha=0.7,
            extent=extent,
        )
    if label.any():  # the expert outline on the prediction, to compare the two at a glance
        # Pixel (0, 0) at the top left like imshow's: map extent, or indices on flipped axes.
        origin = None if extent is None else "upper"
        row[2].contour(
            label, levels=[0.5], colors="cyan", linewidths=0.8, extent=extent, origin=origin
        )


def displayable(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """RGB (or the first band) stretched to 0..1 for display; with `valid`, the stretch
    ignores nodata pixels (a nodata collar would wash it out) and shows them black."""
    data = image[..., :3] if image.shape[-1] >= 3 else image[..., 0]
    data = data.astype(np.float32)
    sample = data if valid is None or not valid.any() else data[valid]
    low, high = np.percentile(sample, (1, 99))
    stretched = np.clip((data - low) / max(high - low, 1e-6), 0, 1)
    if valid is not None:
        stretched[~valid] = 0
    return stretched


def save_figure(plt: Any, figure: Any, path: Path, dpi: int) -> Path:
    """Lay out, write and close `figure`; return where it went."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display in a container)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
