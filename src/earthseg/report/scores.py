"""Scores of predicted masks against expert labels over whole scenes; usable alone, e.g.
`score_scene(scene, labels, mask)` in a notebook.

A scene is scored on its own grid: its labels burned there as for training (pixel
centres), compared with the predicted mask pixel by pixel, leaving out the pixels the
mask marks as nodata (the scene had no data there). Masks are read in strips of rows, so
a 10k x 10k scene needs a few tens of MB. Pooled scores add up the pixel counts of all
scenes: every pixel weighs the same, as in the training job's tile scores.

The counts and the scores they give are earthseg.evaluate.confusion's (the pipeline's
evaluation uses the same), exposed here as before: a ratio with nothing to count is None,
so a scene without dust where none is predicted has no IoU, not an IoU of 0.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from earthseg.errors import InputError
from earthseg.evaluate.confusion import METRICS as METRICS
from earthseg.evaluate.confusion import Confusion, count, pooled
from earthseg.evaluate.grids import grid_differences
from earthseg.preprocess.rasterize import burn
from earthseg.report.inputs import scene_labels
from earthseg.serve.geo import MASK_NODATA, Grid, describe

BLOCK_PIXELS = 2**22  # pixels per strip read: bounds memory whatever the scene's size
SCORES_FORMAT = "earthseg.scores/1"
POOLED = "pooled"  # the scene column's value for the sum over all scenes in the CSV
UNDEFINED = "n/a"  # how a ratio with nothing to count reads
PREDICT_AGAIN = "predict the scene again: earthseg predict --image SCENE.tif --out MASK.tif"


def score_scene(image: Path, labels: Path, mask: Path) -> Confusion:
    """Counts of a scene's predicted mask GeoTIFF against its expert labels (any CRS)."""
    grid, polygons = scene_labels(Path(image), Path(labels))
    return score_mask(Path(mask), polygons, grid, Path(image).name)


def score_mask(mask: Path, polygons: np.ndarray, grid: Grid, scene_name: str) -> Confusion:
    """Counts of a mask GeoTIFF against `polygons` (in the grid's CRS) burned on `grid`,
    the grid of scene `scene_name`, read and burned one strip of rows at a time."""
    with rasterio.open(mask) as dataset:
        _check_mask(dataset, mask, grid, scene_name)
        nodata = MASK_NODATA if dataset.nodata is None else int(dataset.nodata)
        rows = max(1, BLOCK_PIXELS // grid.width)
        total = Confusion()
        for row in range(0, grid.height, rows):
            window = Window(0, row, grid.width, min(rows, grid.height - row))
            values = dataset.read(1, window=window)
            stray = (values != 0) & (values != 1) & (values != nodata)
            if stray.any():
                raise InputError(
                    mask,
                    f"holds the value {int(values[stray][0])} besides 0, 1 and nodata "
                    f"{nodata}: it is not a mask",
                    "pass the mask GeoTIFF that `earthseg predict --out` writes",
                )
            truth = burn(polygons, values.shape, window_transform(window, grid.transform))
            total += count(truth, values, nodata)
    return total


def scores_json(
    scenes: Mapping[str, Confusion], tiles: Mapping[str, Any], threshold: float
) -> dict[str, Any]:
    """scores.json: per scene and pooled, beside the training job's tile scores."""
    return {
        "format": SCORES_FORMAT,
        "threshold": threshold,
        "scenes": {stem: confusion.as_dict() for stem, confusion in scenes.items()},
        POOLED: pooled(scenes.values()).as_dict(),
        "tiles": dict(tiles),
    }


def scores_csv(scenes: Mapping[str, Confusion]) -> str:
    """scene_scores.csv: one row per scene and a last `pooled` row; empty where undefined."""
    rows = [*scenes.items(), (POOLED, pooled(scenes.values()))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scene", *Confusion().as_dict()])
    for stem, confusion in rows:
        values = confusion.as_dict().values()
        writer.writerow([stem, *("" if value is None else value for value in values)])
    return buffer.getvalue()


def write_scores(
    folder: Path, scenes: Mapping[str, Confusion], tiles: Mapping[str, Any], threshold: float
) -> tuple[Path, Path]:
    """Write scores.json and scene_scores.csv into `folder`; return their paths."""
    json_path, csv_path = folder / "scores.json", folder / "scene_scores.csv"
    json_path.write_text(json.dumps(scores_json(scenes, tiles, threshold), indent=2) + "\n")
    csv_path.write_text(scores_csv(scenes))
    return json_path, csv_path


def format_ratio(value: float | None) -> str:
    """A score as reports show it: three decimals, UNDEFINED when there was nothing to count."""
    return UNDEFINED if value is None else f"{value:.3f}"


def _check_mask(dataset: Any, path: Path, grid: Grid, scene_name: str) -> None:
    """A one-band integer raster on the scene's own grid, or an error saying which differs."""
    if dataset.count != 1 or not np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer):
        raise InputError(
            path,
            f"has {dataset.count} band(s) of {dataset.dtypes[0]}, not one band of 0/1 "
            "(probabilities or a scene?)",
            f"pass the mask GeoTIFF that `earthseg predict --out` writes; {PREDICT_AGAIN}",
        )
    differences = grid_differences(describe(dataset), grid)
    if differences:
        raise InputError(
            path,
            f"is not on the grid of scene {scene_name} ({'; '.join(differences)})",
            PREDICT_AGAIN,
        )
