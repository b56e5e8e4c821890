"""`earthseg prepare`, the pipeline's Prepare step (a Processing job in the training
image): an ImageLabeler export to a dataset, with the test split set apart for Evaluate.

The scenes are the export's, or, when it has none, fetched from a WMS (as `earthseg
fetch`); the dataset is what `earthseg preprocess` writes from them; the test set
(earthseg.contracts.evaluation) holds the test split's scenes as they are, their expert
labels burned on each scene's grid, and `dataset.json`. Truth pixels are decided as the
run report scores masks: a label covers a pixel when it covers its centre, and a pixel
the scene has no data for (as prediction decides it, earthseg.serve.stream) is nodata.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from earthseg import __version__
from earthseg.atomic import atomic_dir
from earthseg.contracts.evaluation import (
    TEST_LABELS,
    TEST_RECORD,
    TRUTH_NODATA,
    DatasetRecord,
    DatasetScene,
    write_test_set,
)
from earthseg.contracts.imagery import IMAGES, LABELS, FetchRecord, ImagerySource
from earthseg.contracts.manifest import MANIFEST, DatasetManifest, SceneInput, file_digest
from earthseg.contracts.processing import check_output
from earthseg.errors import InputError
from earthseg.imagery.exports import LabelSet, open_export
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.labels import labels_for_scene
from earthseg.preprocess.options import SHARES_FIX, PreprocessOptions
from earthseg.preprocess.rasterize import burn
from earthseg.preprocess.scenes import open_scene
from earthseg.serve.stream import RasterSource

METADATA_CHARS = 256  # a SageMaker metadata value's limit (imagery_line)
TRUTH_ROWS = 512  # rows burned at a time: a truth raster costs memory by width, not area
TRUTH_PROFILE = {
    "driver": "GTiff",
    "count": 1,
    "dtype": "uint8",
    "nodata": TRUTH_NODATA,
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "deflate",
    "predictor": 2,
}


@dataclass(frozen=True)
class Prepared:
    """What `prepare` wrote: the dataset (its manifest), the test set, and, when the
    scenes were fetched, the fetch's record."""

    dataset: Path
    manifest: DatasetManifest
    test: Path
    test_set: DatasetRecord
    fetched: FetchRecord | None


def prepare(
    labels: Path,
    images: Path | None,
    out: Path,
    test: Path,
    options: PreprocessOptions | None = None,
    fetch: FetchOptions | None = None,
    transfer: TransferOptions | None = None,
    say: Callable[[str], None] = print,
) -> Prepared:
    """The export (`labels`, and `images`, or None to fetch them with `fetch`) to the
    dataset in `out` and the test set in `test`; each folder appears only complete."""
    options = options or PreprocessOptions()
    if options.splits[2] == 0:
        raise InputError(
            "--splits",
            f"{','.join(str(s) for s in options.splits)} puts no scene in the test split, "
            "which prepare sets apart for the evaluation",
            SHARES_FIX,
        )
    labels, out, test = Path(labels), Path(out), Path(test)
    check_output(test, TEST_RECORD, "--test")
    fetched = None
    with tempfile.TemporaryDirectory(prefix="earthseg-prepare-") as work:
        if images is None:
            imagery = Path(work) / "imagery"
            fetched = _fetch(labels, imagery, fetch, transfer, say)
            images, labels = imagery / IMAGES, imagery / LABELS
        images = Path(images)
        manifest = build_dataset(images, labels, out, options)
        test_set = write_test_split(
            manifest, out / MANIFEST, images, labels, test, with_labels=fetched is not None
        )
    return Prepared(out, manifest, test, test_set, fetched)


def write_test_split(
    manifest: DatasetManifest,
    manifest_path: Path,
    images: Path,
    labels: Path,
    test: Path,
    with_labels: bool = False,
) -> DatasetRecord:
    """The manifest's test scenes (found in `images`), their truth rasters (from the
    export at `labels`) and dataset.json, into `test` (replacing an earlier test set).
    `with_labels`: also the test scenes' label files as the dataset read them (fetched
    scenes' labels exist only inside the job; the run report checks labels against the
    manifest, so it needs these very files)."""
    scenes = manifest.test_scenes(manifest_path)
    record = DatasetRecord(
        created_by=f"earthseg {__version__}",
        manifest_sha256=file_digest(manifest_path),
        fingerprint=manifest.fingerprint,
        splits={name: split.scenes for name, split in manifest.splits.items()},
        imagery=imagery_line(manifest.imagery, manifest.totals.scenes),
        options=manifest.options,
        scenes=[DatasetScene(scene=scene.scene, sha256=scene.image.sha256) for scene in scenes],
    )
    with open_export(labels) as label_sets, atomic_dir(test, TEST_RECORD, replace=True) as tmp:
        by_stem = {label_set.stem: label_set for label_set in label_sets}
        for scene in scenes:
            image = images / scene.image.file
            target = record.scene_file(tmp, scene.scene)
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(image, target)
            label_set = _labels_of(scene, by_stem, labels)
            write_truth(image, label_set, record.truth_file(tmp, scene.scene))
            if with_labels:
                (tmp / TEST_LABELS).mkdir(exist_ok=True)
                for path in label_set.files():
                    shutil.copyfile(path, tmp / TEST_LABELS / path.name)
        write_test_set(tmp, record)
    return record


def write_truth(image: Path, labels: LabelSet, out: Path) -> None:
    """The labels burned on the scene's grid (pixel centres), nodata where the scene has
    none, one strip of rows at a time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_scene(image) as dataset:
        polygons = labels_for_scene(
            labels.path,
            dataset.crs,
            tuple(dataset.bounds),
            image,
            assume_wgs84=labels.name is not None,
            source=labels.shown,
        )
        profile = {
            **TRUTH_PROFILE,
            "width": dataset.width,
            "height": dataset.height,
            "crs": dataset.crs,
            "transform": dataset.transform,
        }
        source = RasterSource(dataset)
        with rasterio.open(out, "w", **profile) as truth:
            for top in range(0, dataset.height, TRUTH_ROWS):
                window = Window(0, top, dataset.width, min(TRUTH_ROWS, dataset.height - top))
                rows = burn(
                    polygons,
                    (int(window.height), dataset.width),
                    window_transform(window, dataset.transform),
                )
                _, valid = source.read(top, top + int(window.height))
                if valid is not None:
                    rows[~valid] = TRUTH_NODATA
                truth.write(rows, 1, window=window)


def imagery_line(sources: tuple[ImagerySource, ...], scenes: int) -> str:
    """Where a dataset's scenes came from, in one line that a registered model version can
    carry as metadata as it is (SageMaker takes letters, digits, spaces and `_.:/=+-@`,
    256 characters at most; earthseg.aws.registry)."""
    if not sources:
        return f"export scenes: {scenes} not fetched by earthseg"
    line = " / ".join(
        f"{' + '.join(source.layers)} at {source.resolution} from {source.url} "
        f"{source.first_date} to {source.last_date}: {source.scenes} of {scenes} scenes"
        for source in sources
    )
    kept = "".join(char if char.isalnum() or char in " _.:/=+-@" else " " for char in line)
    return " ".join(kept.split())[:METADATA_CHARS]


def _fetch(
    labels: Path,
    out: Path,
    options: FetchOptions | None,
    transfer: TransferOptions | None,
    say: Callable[[str], None],
) -> FetchRecord:
    """The export's scenes from the WMS (`earthseg fetch`), at least one of them."""
    from earthseg.imagery.fetch import fetch_export

    options = options or FetchOptions()
    say(f"the export has no scenes: fetching them from {options.url}")
    record = fetch_export(labels, out, options, transfer, say)
    if not record.scenes:
        reasons = "; ".join(f"{s.stem}: {s.reason}" for s in record.skipped)
        raise InputError(
            labels,
            f"no event's scene could be fetched ({reasons})",
            "lower --fetch-min-valid, or label events on days with imagery",
        )
    say(f"fetched {len(record.scenes)} scenes, {len(record.skipped)} left out")
    return record


def _labels_of(scene: SceneInput, by_stem: dict[str, LabelSet], labels: Path) -> LabelSet:
    label_set = by_stem.get(scene.scene)
    if label_set is None:  # the export changed while the dataset was built
        raise InputError(
            labels, f"holds no labels for test scene {scene.scene}", "run prepare again"
        )
    return label_set
