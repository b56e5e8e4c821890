"""The dataset manifest: what every tile is and where it came from, so a model card can
name exactly what a model saw. `earthseg preprocess` writes it last: its presence marks a
complete dataset. Training names its digest, the launcher its fingerprint, the pipeline
and the report its test scenes; all read it with `read_manifest`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final, Literal

from earthseg.contracts.channels import TEST
from earthseg.contracts.documents import Record, locate, read_document, write_document
from earthseg.contracts.imagery import ImagerySource, WmsRequest
from earthseg.errors import InputError

MANIFEST = "manifest.json"
MANIFEST_FORMAT: Final = "earthseg.dataset/1"
MANIFEST_FIX = "point at a dataset folder written by earthseg preprocess (it holds manifest.json)"


class Window(Record):
    col_off: int
    row_off: int
    width: int
    height: int


class Tile(Record):
    """One tile: where it lies in its scene, what it holds, where it was packed."""

    id: str
    scene: str
    window: Window
    bounds: tuple[float, float, float, float]  # in `crs`
    crs: str
    positive_fraction: float
    valid_fraction: float
    split: str
    shard: str
    index: int


class SceneImage(Record):
    file: str
    sha256: str


class SceneLabels(Record):
    files: list[str]  # a shapefile with its sidecars, or one file
    sha256: str


class SceneInput(Record):
    """One scene of the export: its files' digests, its split, how many tiles it gave,
    and for a fetched scene the request that fetched it."""

    scene: str
    image: SceneImage
    labels: SceneLabels
    split: str
    tiles: int
    dropped_tiles: int
    imagery: WmsRequest | None = None


class Totals(Record):
    scenes: int
    tiles: int
    dropped_tiles: int
    positive_fraction: float


class SplitSummary(Record):
    scenes: int
    tiles: int
    positive_fraction: float
    shards: int


class DatasetManifest(Record):
    """`manifest.json` (format `earthseg.dataset/1`)."""

    format: Literal["earthseg.dataset/1"] = MANIFEST_FORMAT
    created_by: str
    fingerprint: str  # sha256 of the inputs' digests, the options and the package version
    options: dict[str, Any]  # earthseg.preprocess.options.PreprocessOptions
    crs: str
    bands: int
    dtype: str
    tile_shape: tuple[int, int, int]
    totals: Totals
    splits: dict[str, SplitSummary]
    inputs: list[SceneInput]
    tiles: list[Tile]
    imagery: tuple[ImagerySource, ...] = ()  # summary of the fetched scenes' sources

    def scenes(self, split: str) -> list[SceneInput]:
        """The scenes the split holds, in the manifest's order."""
        return [scene for scene in self.inputs if scene.split == split]

    def test_scenes(self, source: Path | str) -> list[SceneInput]:
        """The test split's scenes; none is an error naming `source` (the manifest)."""
        scenes = self.scenes(TEST)
        if not scenes:
            raise InputError(
                source,
                "puts no scene in the test split, so there is nothing to predict or report on",
                "give the test split a share of the scenes, e.g. splits 0.7,0.15,0.15",
            )
        return scenes


def write_manifest(folder: Path, manifest: DatasetManifest) -> Path:
    """Write `manifest` into `folder` as stable, human-readable JSON."""
    return write_document(Path(folder) / MANIFEST, manifest, indent=1)


def read_manifest(location: Path, fix: str = MANIFEST_FIX) -> DatasetManifest:
    """The manifest of a dataset folder (or the manifest file itself), or an error naming
    the file and `fix`."""
    missing = "this is not a finished earthseg dataset"
    path = locate(location, MANIFEST)
    return read_document(path, DatasetManifest, f"{MANIFEST_FORMAT} manifest", missing, fix)


def find_manifest(folder: Path) -> DatasetManifest | None:
    """The manifest of a finished dataset in `folder`, or None when there is none (or it
    is not a readable one): whether preprocessing already made this dataset."""
    try:
        return read_manifest(folder)
    except InputError:
        return None


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, as `sha256:<hex>`."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One digest for a set of files (a shapefile and its sidecars), named and ordered."""
    combined = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        combined.update(f"{path.name}={file_digest(path)}\n".encode())
    return "sha256:" + combined.hexdigest()


def run_fingerprint(input_digests: list[str], options: dict[str, Any], version: str) -> str:
    """What decides a dataset's content: the inputs' bytes, the options, the code version."""
    text = json.dumps({"inputs": input_digests, "options": options, "version": version})
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
