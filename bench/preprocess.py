"""Benchmark: `earthseg preprocess` beside the floor, a bare rasterio read of the same scenes.

Makes a synthetic export (a few unique scenes, hard-linked under many stems so the
export is large without minutes of generation), reads every scene once to warm the page
cache, then times in one run: bare read, preprocess, bare read again. The floor is the
faster of the two reads. Target: preprocessing costs at most 1.5x the floor.

    .venv/bin/python bench/preprocess.py [--copies 160] [--unique 8] [--size 2048]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import rasterio

from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export

TARGET_RATIO = 1.5
CACHE = Path(__file__).resolve().parent / "output"


def unique_scenes(count: int, size: int) -> Path:
    """Generate (once, cached under bench/output) `count` scenes of `size` px."""
    folder = CACHE / f"export-{count}x{size}"
    if not folder.exists():
        write_sample_export(folder, scenes=count, size=size, seed=0)
    return folder


def replicate(source: Path, target: Path, copies: int) -> None:
    """An export of `copies` hard links of every scene and label file, under new stems."""
    for kind in ("images", "labels"):
        (target / kind).mkdir(parents=True)
        for path in (source / kind).iterdir():
            for copy in range(copies):
                os.link(path, target / kind / f"{path.stem}-{copy:03d}{path.suffix}")


def bare_read(images: Path, threads: str = "1") -> tuple[float, int]:
    """Seconds and decoded bytes to read every scene whole with rasterio.

    `threads` is GDAL_NUM_THREADS: "1" is rasterio's default, "ALL_CPUS" what preprocess
    uses to decode the blocks of a read in parallel.
    """
    start, decoded = time.perf_counter(), 0
    with rasterio.Env(GDAL_NUM_THREADS=threads):
        for path in sorted(images.glob("*.tif")):
            with rasterio.open(path) as dataset:
                decoded += dataset.read().nbytes
    return time.perf_counter() - start, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unique", type=int, default=8, help="distinct scenes generated")
    parser.add_argument("--copies", type=int, default=160, help="hard links of each scene")
    parser.add_argument("--size", type=int, default=2048, help="scene side in pixels")
    parser.add_argument("--tile-size", type=int, default=256)
    args = parser.parse_args()

    source = unique_scenes(args.unique, args.size)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        export = Path(work) / "export"
        replicate(source, export, args.copies)
        scenes = args.unique * args.copies
        bare_read(export / "images")  # warm the page cache for both contenders

        first_read, decoded = bare_read(export / "images")
        threaded_read, _ = bare_read(export / "images", threads="ALL_CPUS")
        start = time.perf_counter()
        manifest = build_dataset(
            export / "images",
            export / "labels",
            Path(work) / "dataset",
            PreprocessOptions(tile_size=args.tile_size),
        )
        preprocess = time.perf_counter() - start
        second_read, _ = bare_read(export / "images")
        shutil.rmtree(Path(work) / "dataset")

    floor = min(first_read, second_read)
    tiles = manifest.totals.tiles + manifest.totals.dropped_tiles
    megabytes = decoded / 1e6
    print(
        f"{scenes} scenes of {args.size}x{args.size} px x 3 bands ({megabytes:.0f} MB decoded), "
        f"{tiles} tiles of {args.tile_size} px, {os.cpu_count()} cores"
    )
    print(f"{'':<30}{'seconds':>9}{'tiles/s':>10}{'MB/s':>9}{'x floor':>9}")
    rows = [
        ("bare rasterio read (floor)", floor),
        ("bare read, GDAL on all cores", threaded_read),
        ("earthseg preprocess", preprocess),
    ]
    for name, seconds in rows:
        print(
            f"{name:<30}{seconds:>9.2f}{tiles / seconds:>10.0f}{megabytes / seconds:>9.0f}"
            f"{seconds / floor:>9.2f}"
        )
    verdict = "meets" if preprocess / floor <= TARGET_RATIO else "MISSES"
    print(f"preprocess / floor = {preprocess / floor:.2f} ({verdict} the target <= {TARGET_RATIO})")
    print(
        f"preprocess / all-core read = {preprocess / threaded_read:.2f} (preprocess decodes on "
        "all cores and writes shards on another thread)"
    )


if __name__ == "__main__":
    main()
