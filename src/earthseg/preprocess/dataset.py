"""Build a training dataset from an ImageLabeler export: the `earthseg preprocess` stage.

Scenes and labels are paired by stem, checked together, split by scene, then read one
strip of tiles at a time: labels burned on the strip's grid, tiles mostly nodata
dropped, the rest packed into the split's channel. The output folder appears only
complete, with the manifest last.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window, bounds
from tqdm import tqdm

from earthseg import __version__
from earthseg.atomic import PARTIAL_PREFIX, atomic_dir
from earthseg.contracts.channels import CHANNELS, ChannelIndex, write_channel_index
from earthseg.contracts.imagery import WmsRequest, request_from_tags, summarise
from earthseg.contracts.manifest import (
    MANIFEST,
    DatasetManifest,
    file_digest,
    files_digest,
    find_manifest,
    run_fingerprint,
    write_manifest,
)
from earthseg.errors import InputError
from earthseg.imagery.exports import LabelSet, open_export
from earthseg.preprocess.labels import labels_for_scene
from earthseg.preprocess.options import PreprocessOptions
from earthseg.preprocess.pairing import Pair, pair_by_stem
from earthseg.preprocess.rasterize import burn
from earthseg.preprocess.scenes import (
    SceneInfo,
    check_consistent,
    describe_scene,
    open_scene,
    valid_fraction,
)
from earthseg.preprocess.shards import ShardWriter
from earthseg.preprocess.splits import assign_splits
from earthseg.preprocess.tile_files import write_tile_files
from earthseg.preprocess.tiling import strips

log = logging.getLogger(__name__)


def build_dataset(
    images: Path, labels: Path, out: Path, options: PreprocessOptions | None = None
) -> DatasetManifest:
    """Preprocess an export into `out`; return the manifest. A finished identical run is kept.

    Input digests are computed on one background thread and shards written on another
    while the main thread decodes, so the stage costs little more than reading the scenes.
    """
    with open_export(Path(labels)) as label_sets:  # a download-all zip lives this long
        return _build(Path(images), label_sets, Path(out), options or PreprocessOptions())


def _build(
    images: Path, label_sets: list[LabelSet], out: Path, options: PreprocessOptions
) -> DatasetManifest:
    pairs = pair_by_stem(images, label_sets)
    scenes = [describe_scene(pair.image) for pair in pairs]
    check_consistent(scenes)
    # Every check that can fail on input runs before the first tile is cut.
    tile_counts = [_tile_count(scene, options) for scene in scenes]
    polygons = [
        labels_for_scene(
            pair.labels.path,
            scene.crs,
            scene.bounds,
            pair.image,
            assume_wgs84=pair.labels.name is not None,
            source=pair.labels.shown,
        )
        for pair, scene in zip(pairs, scenes, strict=True)
    ]
    with ThreadPoolExecutor(1, thread_name_prefix="earthseg-digest") as digester:
        digests = [digester.submit(_input_record, pair) for pair in pairs]
        existing = find_manifest(out)
        if existing is not None:
            fingerprint = _fingerprint([d.result() for d in digests], options)
            if existing.fingerprint == fingerprint:
                log.info("%s already holds this dataset (same inputs and options): kept", out)
                return existing
        _check_output_free(out)
        split_of = assign_splits([pair.stem for pair in pairs], options.splits, options.seed)
        with atomic_dir(out, last=MANIFEST) as partial:
            with ThreadPoolExecutor(1, thread_name_prefix="earthseg-shards") as shard_io:
                writers = {
                    name: ShardWriter(
                        partial / name,
                        (options.tile_size, options.tile_size, scenes[0].bands),
                        np.dtype(scenes[0].dtype),
                        shard_io,
                    )
                    for name in sorted(set(split_of.values()), key=CHANNELS.index)
                }
                tiles, counts = _tile_scenes(
                    pairs, polygons, tile_counts, split_of, writers, partial, options
                )
                channels = {name: writer.close() for name, writer in writers.items()}
            for name, channel in channels.items():
                if not channel.tiles:
                    log.warning(
                        "the %s split has no tiles: its scenes are mostly nodata at "
                        "--min-valid %s; try another --seed or a lower --min-valid",
                        name,
                        options.min_valid,
                    )
            inputs = [
                {**digest.result(), **count} for digest, count in zip(digests, counts, strict=True)
            ]
            fingerprint = _fingerprint(inputs, options)
            manifest = _manifest(fingerprint, options, scenes[0], inputs, channels, tiles)
            manifest_sha256 = file_digest(write_manifest(partial, manifest))
            for name, channel in channels.items():
                identified = channel.model_copy(
                    update={"manifest_sha256": manifest_sha256, "imagery": manifest.imagery}
                )
                write_channel_index(partial / name, identified)
    return manifest


def _tile_scenes(
    pairs: list[Pair],
    polygons: list[np.ndarray],
    tile_counts: list[int],
    split_of: dict[str, str],
    writers: dict[str, ShardWriter],
    out: Path,
    options: PreprocessOptions,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tile every scene into its split's writer: (tile records, per-scene counts)."""
    tiles: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    progress = tqdm(total=sum(tile_counts), unit="tile", disable=_quiet(), desc="preprocess")
    # GDAL decodes the blocks of each strip on all cores.
    with progress, rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        for pair, scene_polygons, count in zip(pairs, polygons, tile_counts, strict=True):
            split = split_of[pair.stem]
            scene_tiles = _tile_scene(pair, scene_polygons, writers[split], out, options)
            dropped = count - len(scene_tiles)
            counts.append({"split": split, "tiles": len(scene_tiles), "dropped_tiles": dropped})
            tiles.extend(scene_tiles)
            progress.update(len(scene_tiles) + dropped)
    return tiles, counts


def _fingerprint(inputs: list[dict[str, Any]], options: PreprocessOptions) -> str:
    return run_fingerprint(
        [f"{i['image']['sha256']} {i['labels']['sha256']}" for i in inputs],
        options.model_dump(mode="json"),
        __version__,
    )


def _input_record(pair: Pair) -> dict[str, Any]:
    """A scene's digests and, for a fetched scene, the request in its tags."""
    files = pair.labels.files()
    with rasterio.open(pair.image) as dataset:
        request = request_from_tags(dataset.tags())
    return {
        "scene": pair.stem,
        "image": {"file": pair.image.name, "sha256": file_digest(pair.image)},
        "labels": {"files": sorted(f.name for f in files), "sha256": files_digest(files)},
        **({"imagery": request.model_dump(mode="json")} if request else {}),
    }


def _check_output_free(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a new --out")
    leftovers = [p.name for p in out.iterdir() if not p.name.startswith(PARTIAL_PREFIX)]
    if leftovers:
        what = "a different preprocessing run" if (out / MANIFEST).exists() else "other files"
        raise InputError(
            out,
            f"already holds {what} ({', '.join(sorted(leftovers)[:5])})",
            "choose a new --out, or remove the folder to rebuild it",
        )


def _quiet() -> bool | None:
    """No progress bar in CI; otherwise tqdm shows one only on a terminal (None)."""
    return True if os.environ.get("CI", "").lower() == "true" else None


def _tile_count(scene: SceneInfo, options: PreprocessOptions) -> int:
    return sum(
        len(windows)
        for _, windows in strips(
            scene.width, scene.height, options.tile_size, options.overlap, str(scene.path)
        )
    )


def _tile_scene(
    pair: Pair, polygons: np.ndarray, writer: ShardWriter, out: Path, options: PreprocessOptions
) -> list[dict[str, Any]]:
    """Pack the tiles of one scene into `writer`; return their manifest entries."""
    size = options.tile_size
    records: list[dict[str, Any]] = []
    with open_scene(pair.image) as dataset:
        crs = dataset.crs.to_string()
        # One strip of tiles at a time, pixel-interleaved as training wants it: GDAL fills
        # that layout directly, for less than transposing rasterio's band-first arrays.
        data = np.empty((size, dataset.width, dataset.count), dtype=dataset.dtypes[0])
        for strip, windows in strips(
            dataset.width, dataset.height, size, options.overlap, str(pair.image)
        ):
            try:
                dataset.read(window=strip, out=np.moveaxis(data, -1, 0))
            except RasterioIOError as error:
                raise InputError(
                    pair.image,
                    f"is damaged: rows {strip.row_off} to {strip.row_off + size} cannot be "
                    f"decoded ({error})",
                    "export the scene again (`gdalinfo -checksum` shows where it breaks)",
                ) from error
            mask = burn(
                polygons, data.shape[:2], dataset.window_transform(strip), options.all_touched
            )
            for window in windows:
                columns = slice(window.col_off, window.col_off + size)
                tile, tile_mask = data[:, columns], mask[:, columns]
                valid = valid_fraction(dataset, tile, window)
                if valid < options.min_valid:
                    continue
                record = _tile_record(pair.stem, window, dataset, crs, valid, tile_mask)
                if options.write_tiles:
                    folder = out / "tiles" / writer.folder.name
                    write_tile_files(folder, record["id"], tile, tile_mask, dataset, window)
                shard, index = writer.add(tile, tile_mask)
                record.update(split=writer.folder.name, shard=shard, index=index)
                records.append(record)
    return records


def _tile_record(
    stem: str,
    window: Window,
    dataset: DatasetReader,
    crs: str,
    valid_fraction: float,
    mask: np.ndarray,
) -> dict[str, Any]:
    row, col = int(window.row_off), int(window.col_off)
    return {
        "id": f"{stem}_r{row:05d}_c{col:05d}",
        "scene": stem,
        "window": {"col_off": col, "row_off": row, "width": window.width, "height": window.height},
        "bounds": list(bounds(window, dataset.transform)),
        "crs": crs,
        "positive_fraction": float(np.count_nonzero(mask)) / mask.size,
        "valid_fraction": valid_fraction,
    }


def _manifest(
    fingerprint: str,
    options: PreprocessOptions,
    first_scene: SceneInfo,
    inputs: list[dict[str, Any]],
    channels: dict[str, ChannelIndex],
    tiles: list[dict[str, Any]],
) -> DatasetManifest:
    scenes_per_split = Counter(record["split"] for record in inputs)
    pixels = options.tile_size**2
    positive = sum(t["positive_fraction"] for t in tiles) * pixels
    return DatasetManifest.model_validate(
        {
            "created_by": f"earthseg {__version__}",
            "fingerprint": fingerprint,
            "options": options.model_dump(mode="json"),
            "crs": first_scene.crs.to_string(),
            "bands": first_scene.bands,
            "dtype": first_scene.dtype,
            "tile_shape": [options.tile_size, options.tile_size, first_scene.bands],
            "totals": {
                "scenes": len(inputs),
                "tiles": len(tiles),
                "dropped_tiles": sum(record["dropped_tiles"] for record in inputs),
                "positive_fraction": positive / max(1, len(tiles) * pixels),
            },
            "splits": {
                name: {
                    "scenes": scenes_per_split[name],
                    "tiles": channel.tiles,
                    "positive_fraction": channel.positive_fraction,
                    "shards": len(channel.shards),
                }
                for name, channel in channels.items()
            },
            "inputs": inputs,
            "tiles": tiles,
            "imagery": summarise(
                [WmsRequest.model_validate(r["imagery"]) for r in inputs if "imagery" in r]
            ),
        }
    )
