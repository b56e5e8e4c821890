"""The input pipeline: packed channels streamed as batches for Keras, augmented on the fly.

A channel (see `earthseg.preprocess.shards`) is read shard by shard, never whole: each
shard file in one read, a handful of shards at a time. Everything runs in TensorFlow
ops on tf.data's threads, outside the GIL (no Python in the loop, which also spares
tf.data's Python-callback hang at interpreter exit). Per batch, one XLA-compiled
function unpacks the mask bits and augments: one of the 8 symmetries of the square
(flips, 90-degree turns) per tile on image and mask together, brightness and contrast
on the image. Random numbers come from stateless ops keyed by the seed and the epoch,
shard or batch number, so a seed gives the same batches however many threads run.

On several instances (`earthseg.train.distribution`) every worker builds the same stream
of global batches and keeps its own slice of each (tf.data's DATA auto-sharding): each
tile of a batch is trained on by exactly one worker. That needs the stream to be the same
on every worker, which the seeded, deterministic pipeline guarantees; reading every tile
on every worker costs little beside the model's step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from earthseg.contracts.channels import REPREPROCESS, SHARDS_INDEX, read_channel_index
from earthseg.errors import InputError

BRIGHTNESS = 0.1  # pixel values scaled by a factor in [0.9, 1.1] ...
CONTRAST = 0.2  # ... and their deviations from the tile's band means by one in [0.8, 1.2]
CYCLE = 8  # shards read at once in training: a batch mixes tiles of up to this many
SHARD_STREAM, TILE_STREAM, AUGMENT_STREAM = 0, 1, 2  # independent random streams of a seed


@dataclass(frozen=True)
class ChannelInfo:
    """What a channel's `shards.json` says about its tiles."""

    folder: Path
    tiles: int
    tile_shape: tuple[int, int, int]  # rows, cols, bands
    dtype: np.dtype
    positive_fraction: float


@dataclass(frozen=True)
class _Channel:
    """A checked channel with every shard memory-mapped."""

    info: ChannelInfo
    images: list[np.memmap]  # per shard (tiles, rows, cols, bands)
    masks: list[np.memmap]  # per shard (tiles, rows, ceil(cols / 8)), packed bits


def channel_info(folder: Path) -> ChannelInfo:
    """Tile count, shape, dtype and class balance of a channel, after checking every shard."""
    return _open(Path(folder)).info


def channel_tiles(folder: Path) -> int:
    """Number of tiles in a channel (its shards checked)."""
    return channel_info(folder).tiles


def channel_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every tile of a (small) channel: images (tiles, rows, cols, bands) in the channel's
    dtype and masks (tiles, rows, cols) uint8 0/1, in channel order."""
    channel = _open(Path(folder))
    columns = channel.info.tile_shape[1]
    masks = np.unpackbits(np.concatenate(channel.masks), axis=-1, count=columns)
    return np.concatenate(channel.images), masks


def channel_dataset(
    folder: Path, batch_size: int, *, training: bool, seed: int, augment: bool
) -> tf.data.Dataset:
    """Batches of (images float32 (B, rows, cols, bands) raw pixel values, masks float32
    (B, rows, cols, 1) 0/1) from a channel.

    Training: endless, every batch full (epochs run into each other, so none drops
    tiles); each epoch visits the shards in a new order, `CYCLE` at a time, each
    shard's tiles in a new order, interleaved; augmented when `augment`.
    Otherwise: each tile once in channel order, never augmented, the last batch possibly
    short.
    `batch_size` is the global batch: under a multi-worker strategy each worker gets its
    slice of every batch.
    """
    channel = _open(Path(folder))
    rows, cols, bands = channel.info.tile_shape
    dtype = tf.as_dtype(channel.info.dtype)
    image_files = tf.constant([str(array.filename) for array in channel.images])
    mask_files = tf.constant([str(array.filename) for array in channel.masks])
    # .npy headers end on an item boundary: skip them in items once decoded.
    image_skips = tf.constant([array.offset // dtype.size for array in channel.images], tf.int64)
    mask_skips = tf.constant([array.offset for array in channel.masks], tf.int64)
    shards = len(channel.images)

    def load(shard: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One shard's images and packed masks, read whole in one go."""
        images = tf.io.decode_raw(tf.io.read_file(image_files[shard]), dtype)
        packed = tf.io.decode_raw(tf.io.read_file(mask_files[shard]), tf.uint8)
        return (
            tf.reshape(images[image_skips[shard] :], (-1, rows, cols, bands)),
            tf.reshape(packed[mask_skips[shard] :], (-1, rows, (cols + 7) // 8)),
        )

    if not training:
        tiles = tf.data.Dataset.range(shards).map(load).unbatch()
        tiles = tiles.apply(tf.data.experimental.assert_cardinality(channel.info.tiles))
        batches = tiles.batch(batch_size).map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
        return _sharded_by_data(batches.prefetch(tf.data.AUTOTUNE))

    def epoch_shards(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(shards, dtype=tf.int64), _key(seed, SHARD_STREAM, epoch)
        )
        return tf.data.Dataset.from_tensor_slices((tf.fill([shards], epoch), order))

    def shard_tiles(epoch: tf.Tensor, shard: tf.Tensor) -> tf.data.Dataset:
        images, packed = load(shard)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(images, out_type=tf.int64)[0]),
            _key(seed, TILE_STREAM, epoch * shards + shard),
        )
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(images, order), tf.gather(packed, order))
        )

    tiles = (
        tf.data.Dataset.counter()
        .flat_map(epoch_shards)
        .interleave(
            shard_tiles,
            cycle_length=min(shards, CYCLE),
            num_parallel_calls=min(shards, CYCLE),
            deterministic=True,
        )
    )
    tiles = tiles.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    batches = tiles.batch(batch_size, drop_remainder=True)
    if augment:
        batches = batches.enumerate().map(
            lambda step, batch: _augment(*batch, _key(seed, AUGMENT_STREAM, step)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        batches = batches.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
    return _sharded_by_data(batches.prefetch(tf.data.AUTOTUNE))


def _sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Split among workers by batch slices: the shards are read by tf.io ops, which
    tf.data's FILE sharding cannot see (its AUTO policy would fall back with a warning)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _key(seed: int, stream: int, counter: tf.Tensor) -> tf.Tensor:
    """A stateless-op seed for one random stream at one epoch, shard or batch."""
    base = tf.constant([seed, stream], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def _unpack(packed: tf.Tensor, cols: int) -> tf.Tensor:
    """(B, rows, ceil(cols / 8)) uint8 of `numpy.packbits` -> (B, rows, cols) uint8 0/1."""
    shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)  # big bit order: first pixel first
    bits = tf.bitwise.right_shift(packed[..., tf.newaxis], shifts)
    bits = tf.bitwise.bitwise_and(bits, 1)
    return tf.reshape(bits, (tf.shape(packed)[0], packed.shape[1], -1))[:, :, :cols]


# XLA fuses the per-pixel work of a batch into a few loops: 8x faster than op by op.
@tf.function(jit_compile=True)
def _decode(images: tf.Tensor, packed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch as the model takes it: float32 pixels, float32 (B, rows, cols, 1) masks."""
    masks = _unpack(packed, images.shape[2])
    return tf.cast(images, tf.float32), tf.cast(masks, tf.float32)[..., tf.newaxis]


@tf.function(jit_compile=True)
def _augment(images: tf.Tensor, packed: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`_decode` with one random symmetry of the square per tile, the same for image and
    mask, then brightness and contrast on the image, clipped to its dtype's range."""
    rows, cols = images.shape[1], images.shape[2]
    draws = tf.random.stateless_uniform((tf.shape(images)[0], 5), seed=key)

    def sometimes(column: int, changed: tf.Tensor, unchanged: tf.Tensor) -> tf.Tensor:
        return tf.where(draws[:, column, None, None, None] < 0.5, changed, unchanged)

    # The mask as one more band: one transform moves both, so they cannot come apart.
    masks = tf.cast(_unpack(packed, cols), images.dtype)
    stack = tf.concat([images, masks[..., tf.newaxis]], axis=-1)
    if rows == cols:  # transposes with both flips give all 8 symmetries, 90-degree turns too
        stack = sometimes(0, tf.transpose(stack, (0, 2, 1, 3)), stack)
    stack = sometimes(1, tf.reverse(stack, axis=[1]), stack)
    stack = sometimes(2, tf.reverse(stack, axis=[2]), stack)

    brightness = 1 + BRIGHTNESS * (2 * draws[:, 3] - 1)
    contrast = 1 + CONTRAST * (2 * draws[:, 4] - 1)
    # Contrast pivots on the band means: every 4th row and column estimate them well
    # enough, and a full-size reduction was a third of the augmentation's time.
    sample = tf.cast(images[:, ::4, ::4], tf.float32)
    means = tf.reduce_mean(sample, axis=(1, 2), keepdims=True)
    gain = (brightness * contrast)[:, None, None, None]
    offset = means * (brightness * (1 - contrast))[:, None, None, None]
    pixels = tf.cast(stack[..., :-1], tf.float32) * gain + offset
    if images.dtype.is_integer:
        pixels = tf.clip_by_value(pixels, float(images.dtype.min), float(images.dtype.max))
    return pixels, tf.cast(stack[..., -1:], tf.float32)


def _open(folder: Path) -> _Channel:
    """Check a channel folder against its index and memory-map its shards."""
    index = read_channel_index(folder)
    info = ChannelInfo(
        folder, index.tiles, index.tile_shape, np.dtype(index.dtype), index.positive_fraction
    )
    shards = [(shard.images, shard.masks, shard.tiles) for shard in index.shards]
    rows, cols, bands = index.tile_shape
    index_path = folder / SHARDS_INDEX
    if info.tiles == 0 or not shards:
        raise InputError(
            folder,
            "the channel holds no tiles",
            "give this split a share of the scenes (`earthseg preprocess --splits`) "
            "or preprocess more scenes",
        )
    images, masks = [], []
    for images_name, masks_name, tiles in shards:
        images.append(_map(folder / images_name, (tiles, rows, cols, bands), info.dtype))
        masks.append(_map(folder / masks_name, (tiles, rows, -(-cols // 8)), np.dtype(np.uint8)))
    held = sum(tiles for *_, tiles in shards)
    if held != info.tiles:
        raise InputError(
            index_path, f"counts {info.tiles} tiles but its shards hold {held}", REPREPROCESS
        )
    return _Channel(info, images, masks)


def _map(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.memmap:
    """Memory-map one shard file, checking it holds what the index says."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:
        raise InputError(path, f"is not a readable .npy shard ({error})", REPREPROCESS) from None
    if array.shape != shape or array.dtype != dtype:
        raise InputError(
            path,
            f"holds {array.dtype} {array.shape} where the index says {dtype} {shape}",
            REPREPROCESS,
        )
    return array
