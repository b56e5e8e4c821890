"""Benchmark: training input pipeline, earthseg's packed channels beside the notebook's generator.

Both contenders feed the same training tiles (a synthetic export preprocessed with
`--write-tiles`, cached under bench/output) as augmented float32 batches:

- earthseg: `channel_dataset` over the packed train channel (tf.data, XLA-fused
  augmentation: flips, 90-degree turns, brightness and contrast).
- notebook: the original notebook's way, re-implemented: a Python generator that opens
  each tile's GeoTIFF with rasterio and its `_bitmap.png` with PIL, resizes both to the
  model's input size (PIL), augments per sample in numpy (the same flips, turns and
  jitter; the notebook's imgaug affine and elastic transforms would cost more), and
  stacks batches; Keras fit consumes the generator.

Each is measured twice: iterated bare, and consumed by `model.fit` of a trivial model
(one 1x1 convolution) so the figure includes what Keras adds around the data. The first
batches are warm-up and not timed.

    .venv/bin/python bench/input_pipeline.py [--batches 30] [--batch-size 64]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import keras
import numpy as np
import rasterio
import tensorflow as tf
from PIL import Image
from timing import BatchClock  # bench/ is on sys.path when run as a script

from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.preprocess.tile_files import BITMAP_SUFFIX
from earthseg.synthetic.export import write_sample_export
from earthseg.train.data import channel_dataset

CACHE = Path(__file__).resolve().parent / "output"
WARMUP = 3
GPU_RATE = 1200  # images/s this U-Net trains at on one H100 (bf16, batch 64), the issue says
Batches = Iterator[tuple[np.ndarray, np.ndarray]]


def dataset(scenes: int, size: int, tile_size: int) -> Path:
    """Preprocessed channels plus per-tile files of a synthetic export (cached)."""
    export = CACHE / f"export-{scenes}x{size}"
    if not export.exists():
        write_sample_export(export, scenes=scenes, size=size, seed=0)
    out = CACHE / f"dataset-{scenes}x{size}-{tile_size}px"
    options = PreprocessOptions(tile_size=tile_size, write_tiles=True)
    build_dataset(export / "images", export / "labels", out, options)  # kept when finished
    return out


def notebook_batches(tiles: Path, batch_size: int, seed: int = 0) -> Batches:
    """The notebook's generator: per-file reads, resize and augmentation per sample."""
    paths = sorted(tiles.glob("*.tif"))
    rng = np.random.default_rng(seed)
    with rasterio.open(paths[0]) as first:
        size = first.width
    while True:
        order = rng.permutation(len(paths))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            images, masks = [], []
            for index in order[start : start + batch_size]:
                image, mask = notebook_sample(paths[index], size)
                image, mask = notebook_augment(image, mask, rng)
                images.append(image)
                masks.append(mask)
            yield np.stack(images), np.stack(masks)


def notebook_sample(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as tile:
        image = np.moveaxis(tile.read(), 0, -1)
    image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    bitmap = Image.open(path.with_name(path.stem + BITMAP_SUFFIX)).convert("L")
    mask = np.asarray(bitmap.resize((size, size), Image.Resampling.NEAREST)) > 0
    return image.astype(np.float32), mask.astype(np.float32)[..., None]


def notebook_augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    turns = int(rng.integers(4))
    image, mask = np.rot90(image, turns), np.rot90(mask, turns)
    if rng.random() < 0.5:
        image, mask = image[::-1], mask[::-1]
    brightness, contrast = rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.2)
    mean = image.mean(axis=(0, 1))
    image = np.clip(((image - mean) * contrast + mean) * brightness, 0, 255)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask)


def earthseg_batches(channel: Path, batch_size: int) -> tf.data.Dataset:
    return channel_dataset(channel, batch_size, training=True, seed=0, augment=True)


def bare_rate(make: Callable[[], Iterable], batches: int, batch_size: int) -> tuple[float, float]:
    """Images/s of iterating the batches after warm-up, and images per CPU-second (all
    threads), which other load on the machine disturbs less."""
    iterator = iter(make())
    for _ in range(WARMUP):
        next(iterator)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    images = batches * batch_size
    return images / (time.perf_counter() - start), images / (time.process_time() - cpu)


def fit_rate(make: Callable[[], Iterable], batches: int, batch_size: int, bands: int) -> float:
    """Images/s of `model.fit` of a trivial model consuming the batches, after warm-up."""
    model = keras.Sequential([keras.Input((None, None, bands)), keras.layers.Conv2D(1, 1)])
    model.compile(optimizer="sgd", loss="mse")
    clock = BatchClock()
    steps = WARMUP + batches
    model.fit(make(), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
    seconds = clock.times[-1] - clock.times[WARMUP - 1]
    return batches * batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=2048, help="scene side in pixels")
    parser.add_argument("--tile-sizes", default="128,256")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per figure")
    args = parser.parse_args()

    print(
        f"training batches of {args.batch_size} augmented tiles, {args.batches} timed after "
        f"{WARMUP} warm-up, {os.cpu_count()} cores"
    )
    print(f"{'tile':>6}  {'contender':<10}{'bare img/s':>12}{'img/CPU-s':>11}{'fit img/s':>11}")
    for tile_size in (int(size) for size in args.tile_sizes.split(",")):
        folder = dataset(args.scenes, args.size, tile_size)
        contenders = {
            "notebook": partial(notebook_batches, folder / "tiles" / "train", args.batch_size),
            "earthseg": partial(earthseg_batches, folder / "train", args.batch_size),
        }
        rates = {}
        for name, make in contenders.items():
            bare, per_cpu = bare_rate(make, args.batches, args.batch_size)
            fit = fit_rate(make, args.batches, args.batch_size, bands=3)
            rates[name] = (bare, fit)
            print(f"{tile_size:>4}px  {name:<10}{bare:>12.0f}{per_cpu:>11.0f}{fit:>11.0f}")
        bare_ratio = rates["earthseg"][0] / rates["notebook"][0]
        fit_ratio = rates["earthseg"][1] / rates["notebook"][1]
        verdict = "sustains" if rates["earthseg"][1] >= GPU_RATE else "does not sustain"
        print(
            f"{tile_size:>4}px  earthseg / notebook = {bare_ratio:.1f}x bare, {fit_ratio:.1f}x "
            f"through fit; {verdict} the ~{GPU_RATE} img/s one H100 trains at"
        )


if __name__ == "__main__":
    main()
