"""What a report says, in order: the scores first (what a reader came for), then each test
scene's figure and files, then how the model was trained and what exactly it and the
data were (digests), so a number in the report can be traced to its inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from earthseg.contracts.channels import TEST
from earthseg.contracts.imagery import SkippedScene
from earthseg.contracts.manifest import DatasetManifest
from earthseg.contracts.model_card import ModelCard
from earthseg.report import layout
from earthseg.report.document import (
    Block,
    Bullets,
    Cell,
    Code,
    Figure,
    Heading,
    Inline,
    Link,
    Paragraph,
    Table,
)
from earthseg.report.scores import METRICS, UNDEFINED, Confusion, format_ratio, pooled
from earthseg.serve.geo import MASK_NODATA
from earthseg.train.report import CURVES, PANELS


@dataclass(frozen=True)
class ReportFacts:
    """Everything the report states, gathered by the writer."""

    scores: dict[str, Confusion]  # per test scene, by stem
    card: ModelCard
    card_digest: str
    onnx_digest: str | None  # model.onnx beside the card, when it is there
    manifest: DatasetManifest
    manifest_name: str
    manifest_digest: str
    training_files: frozenset[str]  # report-relative paths of the training job's files
    left_out: tuple[SkippedScene, ...] = ()  # events `earthseg fetch` found no scene for


def report_blocks(facts: ReportFacts, tuning: Sequence[Block] = ()) -> list[Block]:
    """The report's blocks, from the summary to the provenance; `tuning` (how the model
    was chosen among many trainings) follows the training."""
    return [
        *_summary(facts),
        *_scores(facts),
        *_scenes(facts),
        *_training(facts),
        *tuning,
        *_provenance(facts),
    ]


def _summary(facts: ReportFacts) -> list[Block]:
    total = pooled(facts.scores.values())
    scenes = len(facts.scores)
    text = (
        f"{scenes} test scene{'s' if scenes > 1 else ''} of the dataset, predicted whole and "
        f"scored on every pixel of their grids: IoU {format_ratio(total.iou)}, F1 "
        f"{format_ratio(total.f1)}, precision {format_ratio(total.precision)}, recall "
        f"{format_ratio(total.recall)} (all scenes' pixels pooled)."
    )
    tiles = facts.card.metrics.get(TEST)
    if tiles:
        text += (
            f" The training job scored the test tiles at IoU {format_ratio(tiles.get('iou'))}, "
            f"F1 {format_ratio(tiles.get('f1'))}."
        )
    blocks: list[Block] = [Paragraph((text,))]
    if facts.card.data.manifest_sha256 not in (None, facts.manifest_digest):
        blocks.append(Paragraph((_mismatch(facts),)))
    return blocks


def _scores(facts: ReportFacts) -> list[Block]:
    rows: list[tuple[Cell, ...]] = [
        (
            Code(stem),
            *_metric_cells(confusion),
            (
                Link("figure", layout.scene_figure(stem)),
                " · ",
                Link("mask", layout.scene_mask(stem)),
                " · ",
                Link("polygons", layout.scene_polygons(stem)),
            ),
        )
        for stem, confusion in facts.scores.items()
    ]
    rows.append(("all test scenes, pooled", *_metric_cells(pooled(facts.scores.values())), ""))
    for split in (TEST, "validation"):
        tiles = facts.card.metrics.get(split)
        if tiles:
            cells = [format_ratio(tiles.get(name)) for name in METRICS]
            summary = facts.manifest.splits.get(split)
            labelled = summary.positive_fraction if summary else None
            predicted = tiles.get("positive_fraction")
            rows.append(
                (f"model card: {split} tiles", *cells, _percent(labelled), _percent(predicted), "")
            )
    return [
        Heading("Scores"),
        Table(
            ("scored on", "IoU", "F1", "precision", "recall", "labelled", "predicted", "files"),
            tuple(rows),
        ),
        Paragraph(
            (
                "Scenes are scored on their own grids: the expert polygons burned where they "
                "cover a pixel centre, against the predicted mask; pixels the mask marks as no "
                f"data ({MASK_NODATA}) are left out. Pooled: the pixel counts of all test scenes "
                "added up. Tile scores come from the training job at the model card's "
                f"threshold ({facts.card.threshold:.2f}, chosen on validation), on the test "
                "tiles (tiles mostly without data dropped). Labelled and predicted: shares of "
                f"the scored pixels. {UNDEFINED}: nothing to count (no dust labelled or "
                "predicted). Every count is in ",
                Link(layout.SCORES_CSV, layout.SCORES_CSV),
                " and ",
                Link(layout.SCORES_JSON, layout.SCORES_JSON),
                ".",
            )
        ),
    ]


def _scenes(facts: ReportFacts) -> list[Block]:
    blocks: list[Block] = [Heading("Test scenes")]
    for stem in facts.scores:
        blocks += [
            Heading(stem, 3),
            Figure(
                layout.scene_figure(stem),
                f"{stem}: the scene, the expert labels, the predicted mask (red) with the "
                "labels' outline (cyan); grey: no prediction, not scored. Axes in the scene's CRS.",
            ),
            Paragraph(
                (
                    "Predicted mask ",
                    Link(f"{stem}.tif", layout.scene_mask(stem)),
                    f" (GeoTIFF on the scene's grid: 1 dust, 0 not, {MASK_NODATA} no data) and "
                    "its polygons ",
                    Link(f"{stem}.geojson", layout.scene_polygons(stem)),
                    "; both open in QGIS over the scene.",
                )
            ),
        ]
    return blocks


def _training(facts: ReportFacts) -> list[Block]:
    training = facts.card.training
    hyperparameters = training.hyperparameters
    blocks: list[Block] = [Heading("Training")]
    curves, panels = layout.training_figure(CURVES), layout.training_figure(PANELS)
    if curves in facts.training_files:
        blocks.append(Figure(curves, "Loss and validation IoU/F1 per epoch."))
    if panels in facts.training_files:
        blocks.append(
            Figure(
                panels, "The training job's test tiles with the most dust: tile, label, prediction."
            )
        )
    architecture = facts.card.architecture
    rows, cols = facts.card.input.tile_size
    blocks.append(
        Paragraph(
            (
                f"{training.epochs} epochs trained (resumed runs included; at most "
                f"{hyperparameters.get('epochs', '?')}): a {architecture.name} of "
                f"{architecture.parameters:,} parameters on {rows} x {cols} px tiles.",
            )
        )
    )
    if hyperparameters:
        blocks.append(
            Table(
                ("hyperparameter", "value"),
                tuple((name, Code(str(value))) for name, value in sorted(hyperparameters.items())),
            )
        )
    files = [
        (Link(name, path), f": {what}")
        for path, name, what in (
            (layout.TRAINING_METRICS, "metrics.json", "the job's validation and test tile scores"),
            (layout.HISTORY, "history.csv", "the job's per-epoch history (Keras CSVLogger)"),
        )
        if path in facts.training_files
    ]
    if files:
        blocks.append(Bullets(tuple(files)))
    return blocks


def _provenance(facts: ReportFacts) -> list[Block]:
    card, manifest = facts.card, facts.manifest
    named = card.data.manifest_sha256
    if named is None:
        trained_on = "The model card names no manifest"
    elif named == facts.manifest_digest:
        trained_on = "The model card names this manifest: the model was trained on this dataset"
    else:
        trained_on = _mismatch(facts)
    model: list[Inline] = [
        "Model: ",
        Link("model card", layout.MODEL_CARD),
        " by ",
        Code(card.created_by),
        ", card ",
        Code(facts.card_digest),
    ]
    if facts.onnx_digest:
        model += [", model.onnx ", Code(facts.onnx_digest)]
    return [
        Heading("Data and model"),
        Bullets(
            (
                ("Dataset manifest ", Code(facts.manifest_name), " ", Code(facts.manifest_digest)),
                (f"{trained_on}.",),
                ("Dataset fingerprint ", Code(manifest.fingerprint)),
                *_imagery(manifest),
                *(
                    (f"Left out by the fetch: {scene.stem}, {scene.reason}",)
                    for scene in facts.left_out
                ),
                tuple(model),
            )
        ),
        Table(
            ("split", "scenes", "tiles", "labelled"),
            tuple(
                (name, str(split.scenes), str(split.tiles), _percent(split.positive_fraction))
                for name, split in manifest.splits.items()
            ),
        ),
    ]


def _imagery(manifest: DatasetManifest) -> list[tuple[Inline, ...]]:
    """Where the scenes were fetched from (earthseg fetch), one line per source."""
    return [
        (
            "Imagery fetched: ",
            Code(", ".join(source.layers)),
            " from ",
            Code(source.url),
            f" at {source.resolution} per pixel, {source.scenes} scene"
            f"{'s' if source.scenes > 1 else ''} dated {source.first_date} to {source.last_date}",
        )
        for source in manifest.imagery
    ]


def _mismatch(facts: ReportFacts) -> str:
    return (
        f"Warning: the model card names dataset manifest {facts.card.data.manifest_sha256}, "
        f"not this one ({facts.manifest_digest}): the model was trained on another dataset, "
        "so its test scenes may have been seen in training"
    )


def _metric_cells(confusion: Confusion) -> tuple[str, ...]:
    return (
        *(format_ratio(getattr(confusion, name)) for name in METRICS),
        _percent(confusion.labelled_fraction),
        _percent(confusion.predicted_fraction),
    )


def _percent(value: float | None) -> str:
    return UNDEFINED if value is None else f"{100 * value:.1f} %"
