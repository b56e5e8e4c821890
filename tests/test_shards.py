"""Packed channels: shards round-trip through .npy readers, written directly or buffered."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from earthseg.contracts.channels import read_channel_index, write_channel_index
from earthseg.preprocess.direct_npy import PAGE, aligned_empty, save_rows
from earthseg.preprocess.shards import ShardWriter, read_channel


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_saved_rows_load_with_plain_numpy(tmp_path: Path, dtype: type) -> None:
    buffer = aligned_empty((9, 33, 17, 3), np.dtype(dtype))
    assert buffer.ctypes.data % PAGE == 0
    buffer[:] = np.random.default_rng(0).integers(0, 200, buffer.shape).astype(dtype)
    save_rows(tmp_path / "rows.npy", buffer, 5)
    loaded = np.load(tmp_path / "rows.npy")
    np.testing.assert_array_equal(loaded, buffer[:5])
    assert loaded.dtype == dtype
    assert (tmp_path / "rows.npy").stat().st_size == PAGE + loaded.nbytes
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy", mmap_mode="r"), buffer[:5])


def test_ordinary_arrays_and_file_systems_without_direct_io_still_work(tmp_path: Path) -> None:
    plain = np.arange(24, dtype=np.int32).reshape(6, 4)
    save_rows(tmp_path / "plain.npy", plain, 4)
    np.testing.assert_array_equal(np.load(tmp_path / "plain.npy"), plain[:4])
    shm = Path("/dev/shm")  # tmpfs refuses O_DIRECT
    if shm.is_dir():
        target = shm / f"earthseg-test-{tmp_path.name}.npy"
        buffer = aligned_empty((3, 5), np.dtype(np.uint8))
        buffer[:] = 7
        try:
            save_rows(target, buffer, 2)
            np.testing.assert_array_equal(np.load(target), buffer[:2])
        finally:
            target.unlink(missing_ok=True)


def test_writer_splits_into_shards_and_reads_back_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 255, (11, 16, 24, 3), dtype=np.uint8)
    masks = rng.integers(0, 2, (11, 16, 24), dtype=np.uint8)
    with ThreadPoolExecutor(1) as executor:
        writer = ShardWriter(tmp_path / "train", (16, 24, 3), np.dtype(np.uint8), executor, 4)
        places = [writer.add(tile, mask) for tile, mask in zip(tiles, masks, strict=True)]
        index = writer.close()
    identified = index.model_copy(update={"manifest_sha256": "sha256:abc"})
    write_channel_index(tmp_path / "train", identified)
    assert places[:5] == [("images-00000.npy", i) for i in range(4)] + [("images-00001.npy", 0)]
    assert [shard.tiles for shard in index.shards] == [4, 4, 3]
    assert read_channel_index(tmp_path / "train") == identified
    assert index.positive_fraction == pytest.approx(masks.mean())
    packed = np.load(tmp_path / "train" / "masks-00000.npy")
    assert packed.shape == (4, 16, 3)  # 24 columns in 3 bytes
    images = np.concatenate([i for i, _ in read_channel(tmp_path / "train")])
    unpacked = np.concatenate([m for _, m in read_channel(tmp_path / "train")])
    np.testing.assert_array_equal(images, tiles)
    np.testing.assert_array_equal(unpacked, masks)
