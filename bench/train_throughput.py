"""Benchmark: training throughput of the default U-Net on this machine's CPU, with and without XLA.

The default model (24 filters, depth 4, about 133 k parameters) with the training loss
and per-epoch metrics, fed constant in-memory batches so that only the model's work is
timed (bench/input_pipeline.py measures the data side). Each figure is a few batches
after warm-up (compilation included there), so expect a few percent of noise.

    .venv/bin/python bench/train_throughput.py [--tile-sizes 128,256] [--batch-size 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse

import keras
import numpy as np
import tensorflow as tf
from timing import BatchClock  # bench/ is on sys.path when run as a script

from earthseg.train.losses import bce_dice_loss
from earthseg.train.metrics import segmentation_metrics
from earthseg.train.model import build_unet

WARMUP = 3
SECONDS = 8.0  # aim for about this long per timed figure


def images_per_second(tile_size: int, batch_size: int, jit_compile: bool, batches: int) -> float:
    """Training images/s of `model.fit` over `batches` batches after warm-up."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, tile_size, tile_size, 3)).astype(np.float32)
    masks = (rng.random((batch_size, tile_size, tile_size, 1)) < 0.1).astype(np.float32)
    data = tf.data.Dataset.from_tensors((images, masks)).repeat()
    model = build_unet(tile_size, 3)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=bce_dice_loss,
        metrics=segmentation_metrics(),
        jit_compile=jit_compile,
    )
    clock = BatchClock()
    model.fit(
        data,
        steps_per_epoch=WARMUP + batches,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[clock],
    )
    return batches * batch_size / (clock.times[-1] - clock.times[WARMUP - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-sizes", default="128,256")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    print(
        f"default U-Net ({build_unet(128, 3).count_params():,} parameters), batch "
        f"{args.batch_size}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'tile':>6}  {'plain img/s':>12}{'XLA img/s':>11}{'XLA / plain':>13}")
    for tile_size in (int(size) for size in args.tile_sizes.split(",")):
        probe = images_per_second(tile_size, args.batch_size, False, 2)
        batches = max(3, round(SECONDS * probe / args.batch_size))
        plain = images_per_second(tile_size, args.batch_size, False, batches)
        xla = images_per_second(tile_size, args.batch_size, True, batches)
        print(f"{tile_size:>4}px  {plain:>12.1f}{xla:>11.1f}{xla / plain:>12.2f}x")
    print("XLA helps where the ratio is above 1 (jit_compile=True in model.compile).")


if __name__ == "__main__":
    main()
