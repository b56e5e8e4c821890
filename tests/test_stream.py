"""Whole scenes streamed by rows: the same answer as the in-memory blending, windows larger
than the tile where the model takes them, COGs written as rows finish, and the server's
GeoTIFF answers streamed the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from earthseg.contracts.model_card import read_model_card
from earthseg.preprocess.tiling import offsets
from earthseg.serve.app import create_app
from earthseg.serve.artifact import OnnxModel
from earthseg.serve.geo import read_raster
from earthseg.serve.predictor import Predictor
from earthseg.serve.raster_writer import cog_writer
from earthseg.serve.scene_answer import MAX_SCENE_PIXELS
from earthseg.serve.settings import ServerSettings
from earthseg.serve.stream import (
    ArraySource,
    RasterSource,
    Rows,
    stream_probabilities,
    window_shape,
)
from earthseg.serve.windows import predict_images


def position_dependent(stack: np.ndarray) -> np.ndarray:
    """A stand-in model whose answer depends on where a pixel sits in its window, so any
    difference in windows or blending shows."""
    cumulative = np.cumsum(stack[..., 0], axis=2) / 1e4
    return np.tanh(stack.mean(-1) / 100 + cumulative).astype(np.float32)


@pytest.mark.parametrize("shape", [(300, 500), (64, 64), (50, 700), (700, 40), (1, 1), (257, 255)])
def test_streamed_rows_equal_the_in_memory_blending(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 255, (*shape, 3)).astype(np.float32)
    valid = rng.random(shape) > 0.1
    expected = predict_images(image[None], position_dependent, (64, 64), 16)[0]
    expected[~valid] = np.nan
    blocks = list(
        stream_probabilities(ArraySource(image, valid), position_dependent, (64, 64), 16, 3)
    )
    tops = [block.top for block in blocks]
    assert tops == sorted(tops) and tops[0] == 0
    assert all(len(b.probabilities) for b in blocks)
    got = np.concatenate([block.probabilities for block in blocks])
    # The same windows; weights summed per axis (a row sum times a column sum): to float
    # tolerance, not bit for bit.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_windows_of_nodata_only_are_not_run_and_change_no_answer() -> None:
    """A swath edge (the left columns) and a gap without data, as daily imagery has."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (300, 500, 3)).astype(np.float32)
    valid = np.ones(image.shape[:2], bool)
    valid[:, :170] = False  # the windows starting at columns 0, 48 and 96 see no data
    valid[100:250, 300:420] = False
    run_windows: list[int] = []

    def counted(stack: np.ndarray) -> np.ndarray:
        run_windows.append(len(stack))
        return position_dependent(stack)

    expected = predict_images(image[None], position_dependent, (64, 64), 16)[0]
    expected[~valid] = np.nan
    streamed = stream_probabilities(ArraySource(image, valid), counted, (64, 64), 16, 3)
    got = np.concatenate([block.probabilities for block in streamed])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    rows, columns = len(offsets(300, 64, 48)), len(offsets(500, 64, 48))
    # Three window columns in every row, and the window inside the gap, skipped.
    assert sum(run_windows) == rows * columns - 3 * rows - 1


def test_a_scene_streams_from_disk_with_the_validity_of_a_whole_read(
    real_data: Path, test_model: Path
) -> None:
    predictor = Predictor(OnnxModel(test_model))
    with rasterio.open(real_data / "RGB.byte.tif") as dataset:
        whole = read_raster(dataset)
        streamed = np.concatenate(
            [block.probabilities for block in predictor.rows(RasterSource(dataset))]
        )
    assert np.array_equal(np.isnan(streamed), ~whole.valid)
    tile = predictor.card.input.tile_size
    in_memory = predict_images(whole.pixels[None], predictor.model.probabilities, tile, 16)[0]
    in_memory[~whole.valid] = np.nan
    window = predictor.window(*whole.valid.shape)
    assert window[0] > 64 and window[1] > 64  # the model takes windows larger than its tile
    # Larger windows see more context: close to the tile-window answer, not equal.
    difference = np.nanmax(np.abs(streamed - in_memory))
    assert difference < 0.2


def test_windows_grow_in_multiples_only_for_a_model_that_takes_them() -> None:
    assert window_shape((256, 256), None, 5000, 5000) == (256, 256)
    assert window_shape((256, 256), 16, 5000, 5000, 768 * 768) == (720, 720)  # 7 cover 5000
    assert window_shape((256, 256), 16, 300, 5000, 768 * 768) == (288, 720)
    assert window_shape((256, 256), 16, 16384, 8192, 768 * 768, 64) == (752, 752)
    assert window_shape((256, 256), 16, 16384, 8192, 576 * 576, 64) == (576, 576)
    assert window_shape((256, 256), 16, 100, 100, 768 * 768) == (256, 256)  # padded up


def test_an_old_artifact_without_window_multiple_keeps_its_tile(test_model: Path) -> None:
    card = read_model_card(test_model)
    assert card.onnx.window_multiple == 4  # depth 2: 2**2
    old = card.model_copy(update={"onnx": card.onnx.model_copy(update={"window_multiple": None})})
    predictor = Predictor(OnnxModel(test_model))
    predictor.model.card = old
    assert predictor.window(1000, 1000) == (64, 64)


def test_cog_rows_held_until_a_row_of_tiles_is_whole(tmp_path: Path) -> None:
    from earthseg.serve.geo import Grid

    grid = Grid(1300, 1100, rasterio.crs.CRS.from_epsg(4326), from_origin(10, 60, 0.01, 0.01))
    probabilities = np.random.default_rng(0).random((1100, 1300)).astype(np.float32)
    probabilities[:50, :50] = np.nan
    with cog_writer(tmp_path / "mask.tif", grid, "mask", 0.5) as writer:
        for top in range(0, 1100, 300):  # blocks not aligned with the 512 px tiles
            writer.write(Rows(top, probabilities[top : top + 300]))
            assert sum(len(block) for block in writer.pending) < 512  # never a whole tile row
    with rasterio.open(tmp_path / "mask.tif") as mask:
        assert mask.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert mask.overviews(1) and mask.block_shapes[0] == (512, 512)
        values = mask.read(1)
    assert (values[:50, :50] == 255).all()
    assert np.array_equal(values[50:] == 1, probabilities[50:] >= 0.5)
    with (
        pytest.raises(ValueError, match="rows were written"),
        cog_writer(tmp_path / "short.tif", grid, "mask", 0.5) as writer,
    ):
        writer.write(Rows(0, probabilities[:10]))
    assert not (tmp_path / "short.tif").exists()


def test_the_server_streams_a_geotiff_answer_equal_to_a_local_prediction(
    test_model: Path, tmp_path: Path
) -> None:
    predictor = Predictor(OnnxModel(test_model))
    pixels = np.random.default_rng(3).integers(1, 256, (3, 500, 700), dtype=np.uint8)
    pixels[:, :30] = 0
    memory = MemoryFile()
    with memory.open(
        driver="GTiff",
        width=700,
        height=500,
        count=3,
        dtype="uint8",
        nodata=0,
        crs="EPSG:4326",
        transform=from_origin(0, 60, 0.01, 0.01),
    ) as dataset:
        dataset.write(pixels)
    settings = ServerSettings(test_model, 8080, 1, 60, 100.0, 0, None, "probability")
    client = create_app(predictor, settings).test_client()
    answer = client.post(
        "/invocations",
        data=memory.read(),
        content_type="image/tiff",
        headers={"Accept": "image/tiff"},
    )
    assert answer.status_code == 200, answer.json
    with MemoryFile(answer.data) as returned, returned.open() as result:
        assert result.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert result.dtypes[0] == "float32"  # EARTHSEG_OUTPUT=probability, no attribute
        got = result.read(1)
    with memory.open() as dataset:
        expected = np.concatenate([b.probabilities for b in predictor.rows(RasterSource(dataset))])
    np.testing.assert_allclose(got, expected, equal_nan=True)


def test_a_small_body_of_a_scene_too_large_to_answer_is_refused_before_reading(
    test_model: Path,
) -> None:
    side = int(np.sqrt(MAX_SCENE_PIXELS)) + 100
    memory = MemoryFile()
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8"}
    with memory.open(**profile, tiled=True, sparse_ok=True):
        pass  # no block written: a few kB on the wire
    settings = ServerSettings(test_model, 8080, 1, 60, 100.0, 0, None)
    client = create_app(Predictor(OnnxModel(test_model)), settings).test_client()
    answer = client.post(
        "/invocations", data=memory.read(), content_type="image/tiff",
        headers={"Accept": "image/tiff"},
    )  # fmt: skip
    assert answer.status_code == 413
    assert f"{MAX_SCENE_PIXELS:,}" in answer.json["error"]
