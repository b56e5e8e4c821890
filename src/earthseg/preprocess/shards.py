"""Packed training channels: tiles stacked into .npy shards that training memory-maps.

A SageMaker channel folder holds `images-NNNNN.npy` (tiles, rows, cols, bands) in the
scenes' own dtype, `masks-NNNNN.npy` with one bit per pixel (tiles, rows, cols / 8 as
`numpy.packbits` along columns makes them: binary masks as bytes would be an eighth of
the output for no information), and `shards.json`, the channel's index
(earthseg.contracts.channels), so the channel is self-describing when mounted alone.
`read_channel` unpacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

from earthseg.contracts.channels import ChannelIndex, Shard, read_channel_index
from earthseg.preprocess.direct_npy import aligned_empty, save_rows

TARGET_SHARD_BYTES = 32 * 2**20


class ShardWriter:
    """Fill a channel folder tile by tile, one shard file pair per `tiles_per_shard` tiles.

    Full shards are written by `executor` while the next shard fills, so disk writes
    overlap with decoding.
    """

    def __init__(
        self,
        folder: Path,
        tile_shape: tuple[int, int, int],
        dtype: np.dtype,
        executor: Executor,
        tiles_per_shard: int = 0,
    ) -> None:
        self.folder = folder
        self.tile_shape = tile_shape
        self.dtype = np.dtype(dtype)
        self.tiles_per_shard = tiles_per_shard or max(
            1, TARGET_SHARD_BYTES // (int(np.prod(tile_shape)) * self.dtype.itemsize)
        )
        self.shards: list[Shard] = []
        self.positive_pixels = 0
        self._executor = executor
        self._pending: Future[None] | None = None
        self._filled = 0
        self._images, self._masks = self._buffers()
        self._spare: tuple[np.ndarray, np.ndarray] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def tiles(self) -> int:
        return sum(shard.tiles for shard in self.shards) + self._filled

    def add(self, image: np.ndarray, mask: np.ndarray) -> tuple[str, int]:
        """Append one (rows, cols, bands) tile and its mask; return (shard file, index)."""
        index = self._filled
        self._images[index] = image
        self._masks[index] = mask
        self.positive_pixels += int(np.count_nonzero(mask))
        self._filled += 1
        shard_name = f"images-{len(self.shards):05d}.npy"
        if self._filled == self.tiles_per_shard:
            self._flush()
        return shard_name, index

    def close(self) -> ChannelIndex:
        """Write the last partial shard, wait for all writes; return the channel's index.

        The caller completes the index with the dataset manifest's digest and writes it.
        """
        if self._filled:
            self._flush()
        self._wait()
        rows, cols, _ = self.tile_shape
        return ChannelIndex(
            tile_shape=self.tile_shape,
            dtype=self.dtype.name,
            tiles=self.tiles,
            positive_fraction=self.positive_pixels / max(1, self.tiles * rows * cols),
            shards=self.shards,
        )

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        images = aligned_empty((self.tiles_per_shard, *self.tile_shape), self.dtype)
        masks = np.empty((self.tiles_per_shard, *self.tile_shape[:2]), dtype=np.uint8)
        return images, masks

    def _flush(self) -> None:
        """Hand the filled buffers to the executor and go on filling the other pair.

        Two buffer pairs per channel, one filling while the other is written, bound the
        memory to two shards and spare the page faults of fresh allocations.
        """
        self._wait()
        number, filled = len(self.shards), self._filled
        images, masks = f"images-{number:05d}.npy", f"masks-{number:05d}.npy"
        self._pending = self._executor.submit(
            _save_shard,
            self.folder / images,
            self._images,
            self.folder / masks,
            self._masks,
            filled,
        )
        self.shards.append(Shard(images=images, masks=masks, tiles=filled))
        self._filled = 0
        written = (self._images, self._masks)
        self._images, self._masks = self._spare or self._buffers()
        self._spare = written

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


def _save_shard(
    images_path: Path, images: np.ndarray, masks_path: Path, masks: np.ndarray, tiles: int
) -> None:
    save_rows(images_path, images, tiles)
    np.save(masks_path, np.packbits(masks[:tiles], axis=-1))


def read_channel(folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, masks) of each shard in a channel folder, in order.

    Images are memory-mapped; masks come unpacked to (tiles, rows, cols) uint8 0/1.
    """
    index = read_channel_index(folder)
    columns = index.tile_shape[1]
    for shard in index.shards:
        images = np.load(Path(folder) / shard.images, mmap_mode="r")
        packed = np.load(Path(folder) / shard.masks)
        yield images, np.unpackbits(packed, axis=-1, count=columns)
