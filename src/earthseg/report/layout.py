"""Where things are in a report folder: named once for the writer and the links alike.

Everything a report shows is inside its folder (predictions hard-linked where the file
system allows), so the folder can be moved, zipped or synced to S3 whole.
"""

from __future__ import annotations

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
SCORES_JSON = "scores.json"
SCORES_CSV = "scene_scores.csv"
FIGURES = "figures"
PREDICTIONS = "predictions"
TRAINING = "training"
MODEL_CARD = f"{TRAINING}/earthseg.json"
TRAINING_METRICS = f"{TRAINING}/metrics.json"
HISTORY = f"{TRAINING}/history.csv"


def scene_figure(stem: str) -> str:
    return f"{FIGURES}/{stem}.png"


def scene_mask(stem: str) -> str:
    return f"{PREDICTIONS}/{stem}.tif"


def scene_polygons(stem: str) -> str:
    return f"{PREDICTIONS}/{stem}.geojson"


def training_figure(name: str) -> str:
    """A figure of the training job (training_curves.png, predictions.png)."""
    return f"{TRAINING}/{name}"
