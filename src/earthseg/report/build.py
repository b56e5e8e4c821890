"""The report a run ends with: one folder holding the test scenes' scores, their figures
and predicted masks, the training job's curves and scores, and the digests that tie them
to the dataset and the model, as report.md and a self-contained report.html; after a
tuning, its leaderboard too.

The folder appears only complete (built beside it, then moved in, report.md last); a
folder holding an earlier report is replaced, one holding anything else is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import rasterio

from earthseg.atomic import PARTIAL_PREFIX, atomic_dir
from earthseg.contracts.imagery import read_fetch_record
from earthseg.contracts.manifest import file_digest, read_manifest
from earthseg.contracts.model_card import ONNX_FILE, read_model_card
from earthseg.errors import InputError
from earthseg.imagery.exports import open_export
from earthseg.report import layout
from earthseg.report.content import ReportFacts, report_blocks
from earthseg.report.document import to_html, to_markdown
from earthseg.report.figures import scene_figure
from earthseg.report.inputs import (
    CARD_FIX,
    MANIFEST_FIX,
    SceneFiles,
    check_training_files,
    find_test_scenes,
    scene_labels,
)
from earthseg.report.scores import Confusion, format_ratio, pooled, score_mask, write_scores
from earthseg.report.tuning import tuning_blocks
from earthseg.train.report import CURVES, PANELS, plot_curves

log = logging.getLogger(__name__)

DEFAULT_TITLE = "Dust segmentation: test report"


@dataclass(frozen=True)
class ReportSummary:
    """What a report holds, for a caller to print or check without reading the files."""

    folder: Path
    markdown: Path
    html: Path
    scenes: dict[str, Confusion]  # per test scene, by stem
    pooled: Confusion
    figures: dict[str, Path]  # per test scene, by stem

    def __str__(self) -> str:
        """One line for a log: the pooled test scores and where the report is."""
        iou, f1 = format_ratio(self.pooled.iou), format_ratio(self.pooled.f1)
        scenes = f"{len(self.scenes)} test scene{'' if len(self.scenes) == 1 else 's'}"
        return f"{scenes}: IoU {iou}, F1 {f1} (pooled); report: {self.markdown}"


def write_report(
    out_dir: Path,
    *,
    manifest: Path,
    images: Path,
    labels: Path,
    predictions: Path,
    model_card: Path,
    training_metrics: Path | None = None,
    history_csv: Path | None = None,
    training_figures: Path | None = None,
    title: str = DEFAULT_TITLE,
    fetch_record: Path | None = None,
    detection: Path | None = None,
    tuning: Path | None = None,
) -> ReportSummary:
    """Score the manifest's test scenes' predictions and write the report into `out_dir`.

    `images`/`labels`: the ImageLabeler export the dataset was built from; `predictions`:
    `<stem>.tif` (mask GeoTIFF) and `<stem>.geojson` per test scene; `model_card`: the
    artifact's earthseg.json. Optional, from the training job: its metrics.json, its Keras
    history.csv (curves are redrawn from it) and its output folder (training_curves.png,
    predictions.png are copied when there). `fetch_record`: the fetch.json of the
    scenes, when `earthseg fetch` made them (the scenes it left out are listed).
    `detection`: an `earthseg detect` output folder, reported last. `tuning`: the folder
    of a tuning's leaderboard (earthseg.tune.leaderboard), when a tuning chose the model.
    """
    out_dir, manifest, model_card = Path(out_dir), Path(manifest), Path(model_card)
    _check_out_dir(out_dir)
    dataset = read_manifest(manifest, MANIFEST_FIX)
    card = read_model_card(model_card, CARD_FIX)
    left_out = tuple(read_fetch_record(fetch_record).skipped) if fetch_record else ()
    check_training_files(training_metrics, history_csv, training_figures)
    onnx = model_card.parent / ONNX_FILE
    threshold = card.threshold

    with (
        open_export(Path(labels)) as label_sets,
        atomic_dir(out_dir, last=layout.REPORT_MD, replace=True) as partial,
    ):
        scenes = find_test_scenes(dataset, manifest, Path(images), label_sets, Path(predictions))
        scores: dict[str, Confusion] = {}
        figures: dict[str, Path] = {}
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            for scene in scenes:
                scores[scene.stem] = _report_scene(scene, threshold, partial)
                figures[scene.stem] = out_dir / layout.scene_figure(scene.stem)
        write_scores(partial, scores, card.metrics, threshold)
        training_files = _training_files(
            partial, model_card, training_metrics, history_csv, training_figures
        )
        facts = ReportFacts(
            scores=scores,
            card=card,
            card_digest=file_digest(model_card),
            onnx_digest=file_digest(onnx) if onnx.is_file() else None,
            manifest=dataset,
            manifest_name=manifest.name,
            manifest_digest=file_digest(manifest),
            training_files=frozenset(training_files),
            left_out=left_out,
        )
        tuned = tuning_blocks(Path(tuning), partial) if tuning is not None else []
        blocks = report_blocks(facts, tuned)
        if detection is not None:
            from earthseg.report.detection import detection_blocks

            blocks += detection_blocks(Path(detection), out_dir.resolve(), partial)
        (partial / layout.REPORT_HTML).write_text(to_html(title, blocks, partial))
        (partial / layout.REPORT_MD).write_text(to_markdown(title, blocks))
    summary = ReportSummary(
        folder=out_dir,
        markdown=out_dir / layout.REPORT_MD,
        html=out_dir / layout.REPORT_HTML,
        scenes=scores,
        pooled=pooled(scores.values()),
        figures=figures,
    )
    log.info("%s", summary)
    return summary


def _report_scene(scene: SceneFiles, threshold: float, folder: Path) -> Confusion:
    """Score one test scene, draw its figure and bring its predictions into `folder`."""
    grid, polygons = scene_labels(
        scene.image,
        scene.labels.path,
        assume_wgs84=scene.labels.name is not None,
        source=scene.labels.shown,
    )
    confusion = score_mask(scene.mask, polygons, grid, scene.image.name)
    iou, f1 = format_ratio(confusion.iou), format_ratio(confusion.f1)
    title = f"{scene.stem}\nIoU {iou}   F1 {f1}"
    scene_figure(
        scene.image,
        polygons,
        scene.mask,
        title,
        threshold,
        folder / layout.scene_figure(scene.stem),
    )
    _link_or_copy(scene.mask, folder / layout.scene_mask(scene.stem))
    _link_or_copy(scene.polygons, folder / layout.scene_polygons(scene.stem))
    log.info("%s: IoU %s, F1 %s", scene.stem, iou, f1)
    return confusion


def _training_files(
    folder: Path,
    model_card: Path,
    training_metrics: Path | None,
    history_csv: Path | None,
    training_figures: Path | None,
) -> set[str]:
    """Bring the training job's files into `folder`; return the report-relative paths."""
    copies = {layout.MODEL_CARD: model_card}
    if training_metrics is not None:
        copies[layout.TRAINING_METRICS] = Path(training_metrics)
    if history_csv is not None:
        copies[layout.HISTORY] = Path(history_csv)
    if training_figures is not None:
        # Curves redrawn from a history replace the job's own, which must then not be
        # linked: drawing through a hard link would overwrite the original.
        names = (PANELS,) if history_csv is not None else (CURVES, PANELS)
        for name in names:
            if (Path(training_figures) / name).is_file():
                copies[layout.training_figure(name)] = Path(training_figures) / name
    for relative, source in copies.items():
        _link_or_copy(source, folder / relative)
    if history_csv is None:
        return set(copies)
    try:
        plot_curves(Path(history_csv), folder / layout.TRAINING)
    except (KeyError, ValueError) as error:
        raise InputError(
            history_csv,
            "is not a Keras CSVLogger history with epoch, loss, val_loss, val_iou and val_f1 "
            f"columns ({error!r})",
            "pass the history.csv from the training job's checkpoints, or None",
        ) from None
    return {*copies, layout.training_figure(CURVES)}


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (no space used), or copy it across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _check_out_dir(out_dir: Path) -> None:
    """Only a new or empty folder, or one holding an earlier report, may be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder", "choose a folder for the report")
    if not out_dir.is_dir() or (out_dir / layout.REPORT_MD).is_file():
        return
    others = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(PARTIAL_PREFIX))
    if others:
        raise InputError(
            out_dir,
            f"holds other files than a report ({', '.join(others[:5])})",
            "choose a new folder for the report (e.g. RUN/report), or empty this one",
        )
