"""Training core: hyperparameters, U-Net, loss, metrics, input pipeline, callbacks."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest

from earthseg.contracts.channels import write_channel_index
from earthseg.errors import InputError
from earthseg.preprocess.shards import ShardWriter, read_channel
from earthseg.train.callbacks import MetricsLogger, StopOnSigterm
from earthseg.train.data import channel_arrays, channel_dataset, channel_info, channel_tiles
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.losses import bce_dice_loss
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from earthseg.train.metrics import choose_threshold, scores, segmentation_metrics
from earthseg.train.model import build_unet

TILE = 32


def write_channel(folder: Path, tiles: int, tiles_per_shard: int = 4, seed: int = 0) -> None:
    """A channel whose masks are a function of the image: mask = (band 0 == 255).

    Band 0 is 0 or 255 at random, the other bands noise, so any misalignment of image
    and mask shows, and brightness/contrast jitter cannot blur band 0 across 127.
    """
    rng = np.random.default_rng(seed)
    with ThreadPoolExecutor(1) as executor:
        writer = ShardWriter(folder, (TILE, TILE, 3), np.dtype(np.uint8), executor, tiles_per_shard)
        for _ in range(tiles):
            image = rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)
            image[..., 0] = np.where(rng.random((TILE, TILE)) < 0.3, 255, 0)
            writer.add(image, (image[..., 0] == 255).astype(np.uint8))
        index = writer.close().model_copy(update={"manifest_sha256": "sha256:test"})
        write_channel_index(folder, index)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("channel") / "train"
    write_channel(folder, 10)  # shards of 4, 4 and 2 tiles
    return folder


# Hyperparameters


def test_hyperparameters_from_strings_and_json_values_are_equal() -> None:
    strings = {"epochs": "3", "learning_rate": "0.01", "augment": "false", "depth": " 2 "}
    decoded = {"epochs": 3, "learning_rate": 0.01, "augment": False, "depth": 2}
    parsed = Hyperparameters.from_mapping(strings)
    assert parsed == Hyperparameters.from_mapping(decoded)
    assert parsed == Hyperparameters(epochs=3, learning_rate=0.01, augment=False, depth=2)
    assert Hyperparameters.from_mapping({"augment": "True", "epochs": 4.0}).epochs == 4
    assert Hyperparameters.from_mapping({}).model_dump() == Hyperparameters().model_dump()
    assert Hyperparameters().model_dump()["batch_size"] == 16


def test_sagemaker_own_hyperparameters_are_ignored() -> None:
    values = {"sagemaker_program": "train", "_tuning_objective_metric": "validation:iou"}
    assert Hyperparameters.from_mapping(values) == Hyperparameters()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("epochs", "0"),
        ("epochs", "2.5"),
        ("epochs", True),
        ("batch_size", "-4"),
        ("learning_rate", "0"),
        ("learning_rate", 1.5),
        ("learning_rate", "fast"),
        ("learning_rate", "nan"),
        ("filters", "0"),
        ("depth", "7"),
        ("patience", "-1"),
        ("seed", "-3"),
        ("augment", "maybe"),
        ("steps_per_epoch", "-1"),
    ],
)
def test_bad_hyperparameter_values_name_the_hyperparameter_and_range(
    name: str, value: object
) -> None:
    with pytest.raises(InputError) as caught:
        Hyperparameters.from_mapping({name: value})
    assert caught.value.source == f"hyperparameter {name}"
    assert "must be" in caught.value.problem
    assert name in caught.value.fix


def test_unknown_hyperparameter_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(InputError, match="did you mean learning_rate") as caught:
        Hyperparameters.from_mapping({"learning_rte": "0.1"})
    assert caught.value.source == "hyperparameter learning_rte"


# Model


def unet_parameters(bands: int, filters: int, depth: int) -> int:
    """The U-Net's parameter count by hand: conv kernels without bias, 4 per batch norm."""

    def block(inputs: int) -> int:
        return 9 * inputs * filters + 4 * filters + 9 * filters * filters + 4 * filters

    encoder = block(bands) + depth * block(filters)  # first level, further levels, bottom
    up = 9 * filters * filters + filters  # Conv2DTranspose with bias
    decoder = depth * (up + block(2 * filters))  # convolutions over [up, skip]
    return encoder + decoder + filters + 1  # 1x1 sigmoid convolution with bias


@pytest.mark.parametrize(("bands", "filters", "depth"), [(3, 24, 4), (4, 8, 2), (1, 5, 1)])
def test_unet_parameter_count_matches_the_design(bands: int, filters: int, depth: int) -> None:
    model = build_unet(64, bands, filters=filters, depth=depth)
    assert model.count_params() == unet_parameters(bands, filters, depth)


def test_default_unet_has_about_133k_parameters() -> None:
    assert 130_000 < unet_parameters(3, 24, 4) < 135_000


def test_unet_output_shape_and_dtype_also_under_mixed_precision() -> None:
    model = build_unet(TILE, 3, filters=4, depth=2)
    output = np.asarray(model(np.full((2, TILE, TILE, 3), 200, np.float32)))
    assert output.shape == (2, TILE, TILE, 1)
    assert output.dtype == np.float32 and 0 <= output.min() <= output.max() <= 1
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assert build_unet(TILE, 3, filters=4, depth=2).output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_unet_can_normalise_with_the_statistics_of_all_replicas() -> None:
    synced = build_unet(TILE, 3, filters=4, depth=2, sync_batch_norm=True)
    plain = build_unet(TILE, 3, filters=4, depth=2)
    norms = [layer for layer in synced.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 10 and all(layer.synchronized for layer in norms)
    assert not any(getattr(layer, "synchronized", False) for layer in plain.layers)
    # Same weights: the chief exports a plain copy of the model trained with synced norms.
    plain.set_weights(synced.get_weights())
    tiles = np.full((1, TILE, TILE, 3), 90, np.float32)
    np.testing.assert_array_equal(np.asarray(plain(tiles)), np.asarray(synced(tiles)))


def test_tile_size_must_be_divisible_by_two_to_the_depth() -> None:
    with pytest.raises(InputError, match="multiple of 16"):
        build_unet(40, 3, depth=4)


def test_small_unet_fits_eight_tiles(channel: Path) -> None:
    keras.utils.set_random_seed(0)
    images, masks = channel_arrays(channel)
    model = build_unet(TILE, 3, filters=8, depth=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=bce_dice_loss)
    history = model.fit(
        images[:8].astype(np.float32), masks[:8, ..., None], batch_size=8, epochs=25, verbose=0
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]


# Loss and metrics


def test_loss_is_small_for_perfect_and_large_for_inverted_predictions() -> None:
    truth = np.zeros((2, 8, 8, 1), np.float32)
    truth[:, 2:6, 2:6] = 1
    perfect = float(np.mean(bce_dice_loss(truth, truth)))
    inverted = float(np.mean(bce_dice_loss(truth, 1 - truth)))
    empty = float(np.mean(bce_dice_loss(np.zeros_like(truth), np.zeros_like(truth))))
    assert perfect < 1e-3 and empty < 1e-3
    assert inverted > 5 and np.isfinite(inverted)


def test_faint_probabilities_on_empty_tiles_cost_little_beside_a_plume() -> None:
    # Most tiles hold no plume: their faint probabilities must not count as a total miss
    # (a per-tile Dice scores an empty tile at 0 for any probability mass at all).
    truth = np.zeros((2, 32, 32, 1), np.float32)
    truth[0, :16] = 1  # tile 0: half plume; tile 1: empty
    prediction = truth.copy()
    prediction[1] = 0.05
    faint = np.asarray(bce_dice_loss(truth, prediction))
    assert faint.shape == (2,)
    assert float(np.mean(faint)) < 0.15
    missed = truth.copy()
    missed[0] = 0.05  # the plume itself faint: that must cost a lot
    assert float(np.mean(bce_dice_loss(truth, missed))) > 0.8


def test_metrics_and_scores_agree_with_a_hand_count() -> None:
    truth = np.array([1, 1, 0, 0, 1, 0], np.float32).reshape(1, 2, 3, 1)
    probability = np.array([0.9, 0.4, 0.6, 0.1, 0.7, 0.2], np.float32).reshape(1, 2, 3, 1)
    # threshold 0.5: TP 2 (0.9, 0.7), FN 1 (0.4), FP 1 (0.6), TN 2
    expected = {
        "iou": 2 / 4,
        "f1": 4 / 6,
        "precision": 2 / 3,
        "recall": 2 / 3,
        "accuracy": 4 / 6,
        "positive_fraction": 3 / 6,
    }
    assert scores(truth[..., 0], probability, 0.5) == pytest.approx(expected)
    metrics = segmentation_metrics()
    assert [metric.name for metric in metrics] == ["iou", "f1", "precision", "recall"]
    for metric in metrics:
        metric.update_state(truth, probability)
        assert float(metric.result()) == pytest.approx(expected[metric.name], abs=1e-6)


def test_choose_threshold_finds_the_gap_between_classes() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((4, 16, 16)) < 0.2
    probability = np.where(truth, 0.31, 0.27).astype(np.float32)  # separable only at 0.30
    probability += rng.uniform(-0.01, 0.01, probability.shape).astype(np.float32)
    threshold, best = choose_threshold(truth, probability[..., None])
    assert threshold == pytest.approx(0.30)
    assert best["iou"] == 1.0
    assert best == scores(truth, probability, threshold)
    assert scores(truth, probability, 0.5)["iou"] == 0.0


# Input pipeline


def test_evaluation_batches_hold_every_tile_once_in_order(channel: Path) -> None:
    assert channel_tiles(channel) == 10
    assert channel_info(channel).tile_shape == (TILE, TILE, 3)
    expected_images = np.concatenate([images for images, _ in read_channel(channel)])
    expected_masks = np.concatenate([masks for _, masks in read_channel(channel)])
    batches = list(channel_dataset(channel, 3, training=False, seed=0, augment=True))
    assert [len(images) for images, _ in batches] == [3, 3, 3, 1]
    images = np.concatenate([np.asarray(images) for images, _ in batches])
    masks = np.concatenate([np.asarray(masks) for _, masks in batches])
    assert images.dtype == np.float32 and masks.shape == (10, TILE, TILE, 1)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(masks[..., 0], expected_masks)
    arrays = channel_arrays(channel)
    np.testing.assert_array_equal(arrays[0], expected_images)
    np.testing.assert_array_equal(arrays[1], expected_masks)


def test_several_workers_split_each_batch_rather_than_the_files(channel: Path) -> None:
    # tf.data's FILE sharding cannot see shards read by tf.io ops; DATA sharding gives each
    # worker its slice of every global batch, which needs the same stream on every worker
    # (see test_training_batches_are_deterministic_for_a_seed).
    import tensorflow as tf

    for training in (True, False):
        dataset = channel_dataset(channel, 4, training=training, seed=0, augment=False)
        policy = dataset.options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.DATA


def take(folder: Path, seed: int, batches: int, augment: bool = True) -> list[np.ndarray]:
    dataset = channel_dataset(folder, 4, training=True, seed=seed, augment=augment)
    return [np.concatenate([x, y], axis=-1) for x, y in dataset.take(batches).as_numpy_iterator()]


def test_augmentation_keeps_image_and_mask_aligned_and_varies(channel: Path) -> None:
    batches = take(channel, seed=1, batches=10)  # 40 tiles: every tile 4 times
    originals = channel_arrays(channel)[0]
    variants = set()
    for batch in batches:
        assert batch.shape == (4, TILE, TILE, 4)
        images, masks = batch[..., :3], batch[..., 3]
        np.testing.assert_array_equal(masks, images[..., 0] > 127)
        assert images.min() >= 0 and images.max() <= 255
        for tile in masks:  # which original, in which of the 8 symmetries
            for number, original in enumerate(originals[..., 0] == 255):
                for turned in (original, original.T):
                    for flips in ((), (0,), (1,), (0, 1)):
                        if np.array_equal(np.flip(turned, flips) if flips else turned, tile):
                            variants.add((number, turned is original, flips))
    assert len({number for number, *_ in variants}) == 10  # every tile seen
    assert len({(turn, flips) for _, turn, flips in variants}) >= 6  # most of the 8 symmetries
    jittered = [batch[..., :3] for batch in batches]
    assert not any(np.array_equal(tile, np.round(tile)) for tile in jittered)


def test_training_batches_are_deterministic_for_a_seed(channel: Path) -> None:
    first, again, other = take(channel, 7, 6), take(channel, 7, 6), take(channel, 8, 6)
    for one, two in zip(first, again, strict=True):
        np.testing.assert_array_equal(one, two)
    assert any(not np.array_equal(one, two) for one, two in zip(first, other, strict=True))
    plain = take(channel, 7, 5, augment=False)  # 20 tiles: each of 10 twice, unchanged
    originals = {tile.tobytes() for tile in channel_arrays(channel)[0].astype(np.float32)}
    seen = [np.ascontiguousarray(tile[..., :3]).tobytes() for batch in plain for tile in batch]
    assert set(seen) == originals


def test_missing_or_empty_channel_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        channel_dataset(tmp_path / "nowhere", 4, training=True, seed=0, augment=True)
    (tmp_path / "loose").mkdir()
    with pytest.raises(InputError, match=r"shards\.json: is missing"):
        channel_tiles(tmp_path / "loose")
    write_channel(tmp_path / "empty", 0)
    with pytest.raises(InputError, match="holds no tiles"):
        channel_tiles(tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupt_shard_is_an_input_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "train"
    write_channel(folder, 6)
    shard = folder / "images-00001.npy"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:5000])
    elif damage == "garbage":
        shard.write_bytes(b"not a numpy file at all")
    else:
        shard.unlink()
    with pytest.raises(InputError, match=r"images-00001\.npy") as caught:
        channel_dataset(folder, 4, training=True, seed=0, augment=True)
    assert "earthseg preprocess" in caught.value.fix


# Callbacks


def test_metric_definitions_parse_the_logged_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs = {
        "loss": 0.21,
        "val_loss": 0.25,
        "val_iou": 0.74,
        "val_f1": 0.85,
        "val_precision": 0.9,
        "val_recall": 0.8125,
        "iou": 0.5,
    }
    MetricsLogger().on_epoch_end(2, logs)
    line = capsys.readouterr().out
    assert line.startswith("epoch=3 loss=0.2100 val_loss=0.2500 ") and line.endswith(";\n")
    expected = {"epoch": 3, "train:loss": 0.21, "validation:loss": 0.25}
    expected |= {f"validation:{key[4:]}": logs[key] for key in logs if key.startswith("val_")}
    parsed = {}
    for definition in METRIC_DEFINITIONS:
        found = re.findall(definition["Regex"], line)
        assert len(found) == 1, definition
        parsed[definition["Name"]] = float(found[0])
    assert parsed == pytest.approx(expected, abs=1e-4)


def test_sigterm_stops_training_at_the_next_batch_and_restores_the_handler() -> None:
    class Terminate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stop, batches = StopOnSigterm(), []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    data = np.zeros((64, 2), np.float32)
    model.fit(
        data, data[:, :1], batch_size=4, epochs=3, verbose=0, callbacks=[Terminate(), stop, counter]
    )
    assert stop.interrupted
    assert batches == [0, 1, 2]
    assert signal.getsignal(signal.SIGTERM) == previous


def test_sigterm_on_another_worker_stops_this_one_after_the_same_batch() -> None:
    asked: list[bool] = []

    def anyone(flag: bool) -> bool:
        """The other worker got SIGTERM during the third batch."""
        asked.append(flag)
        return len(asked) >= 3

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stop, batches = StopOnSigterm(anyone), []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    data = np.zeros((64, 2), np.float32)
    model.fit(data, data[:, :1], batch_size=4, epochs=3, verbose=0, callbacks=[stop, counter])
    assert stop.interrupted
    assert batches == [0, 1, 2]
    assert asked == [False, False, False]  # this worker never got the signal itself
