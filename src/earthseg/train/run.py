"""`earthseg train`: one SageMaker training job, from channels to the model artifact.

Resumes from /opt/ml/checkpoints (a restarted spot job continues where it stopped),
stops cleanly on SIGTERM after saving a checkpoint, stops early on validation loss,
chooses the decision threshold on validation, scores the test split, exports, reports.
Any failure leaves its reason in /opt/ml/output/failure and a non-zero exit code.
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from earthseg.errors import InputError
from earthseg.train.environment import TrainingEnvironment, failure_file, read_environment

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
HISTORY = "history.csv"
ONNX_CHECK_TILES = 4
FAILURE_LIMIT = 1024  # what SageMaker shows of the failure file


class TrainingFailure(Exception):
    """Training ran but cannot produce a usable model; the message says what to change."""


def main() -> int:
    """Run the job described by the SageMaker environment; return the exit code."""
    try:
        environment = read_environment()
        outcome = train(environment)
    except InputError as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except TrainingFailure as error:
        return _fail(str(error), EXIT_FAILED)
    except MemoryError:
        return _fail("out of memory: lower batch_size or use a larger instance", EXIT_FAILED)
    except Exception as error:  # the job must end with a reason whatever broke
        if type(error).__name__ == "ResourceExhaustedError":
            return _fail(
                "out of accelerator memory: lower batch_size or use a larger instance type",
                EXIT_FAILED,
            )
        traceback.print_exc()
        return _fail(f"internal error, please report it: {type(error).__name__}: {error}", 1)
    print(outcome, flush=True)
    return 0


def train(environment: TrainingEnvironment) -> str:
    """Train, evaluate and export; return a one-line summary."""
    import keras
    import tensorflow as tf

    from earthseg.preprocess.shards import read_index
    from earthseg.train.callbacks import MetricsLogger, StopOnSigterm
    from earthseg.train.data import channel_arrays, channel_dataset, channel_tiles
    from earthseg.train.export import export_model, model_card
    from earthseg.train.losses import bce_dice_loss
    from earthseg.train.metrics import choose_threshold, scores, segmentation_metrics
    from earthseg.train.model import build_unet
    from earthseg.train.report import plot_curves, plot_predictions, write_metrics

    hp = environment.hyperparameters
    channels = environment.channels
    index = read_index(channels["train"])
    rows, cols, bands = index["tile_shape"]
    dtype = np.dtype(index["dtype"])
    scale = 1.0 / np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    keras.utils.set_random_seed(hp.seed)

    strategy = _strategy(tf, keras)
    train_tiles = channel_tiles(channels["train"])
    steps = hp.steps_per_epoch or max(1, math.ceil(train_tiles / hp.batch_size))
    train_data = channel_dataset(
        channels["train"], hp.batch_size, training=True, seed=hp.seed, augment=hp.augment
    )
    validation_data = channel_dataset(
        channels["validation"], hp.batch_size, training=False, seed=hp.seed, augment=False
    )
    with strategy.scope():
        model = build_unet(rows, bands, filters=hp.filters, depth=hp.depth, scale=scale)
        model.compile(
            optimizer=keras.optimizers.Adam(hp.learning_rate),
            loss=bce_dice_loss,
            metrics=segmentation_metrics(),
        )
    environment.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    sigterm = StopOnSigterm()
    history = model.fit(
        train_data,
        epochs=hp.epochs,
        steps_per_epoch=steps,
        validation_data=validation_data,
        shuffle=False,  # the pipeline shuffles; Keras would only warn
        verbose=0,
        callbacks=[
            keras.callbacks.BackupAndRestore(
                str(environment.checkpoint_dir), delete_checkpoint=False
            ),
            keras.callbacks.CSVLogger(str(environment.checkpoint_dir / HISTORY), append=True),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=hp.patience, restore_best_weights=True
            ),
            MetricsLogger(),
            sigterm,
        ],
    )
    losses = history.history.get("loss", [])
    if any(not math.isfinite(value) for value in losses):
        raise TrainingFailure(
            f"the loss became NaN or infinite at epoch {len(losses)}: lower learning_rate "
            f"(now {hp.learning_rate}) or check the data for extreme values"
        )
    if sigterm.interrupted:
        return f"stopped by SIGTERM; checkpoint saved in {environment.checkpoint_dir}"

    val_images, val_masks = channel_arrays(channels["validation"])
    val_probabilities = model.predict(val_images, batch_size=hp.batch_size, verbose=0)
    threshold, validation_scores = choose_threshold(val_masks, val_probabilities)
    metrics: dict[str, dict[str, float]] = {"validation": validation_scores}
    shown = (val_images, val_masks, val_probabilities)
    if "test" in channels and read_index(channels["test"])["tiles"]:
        test_images, test_masks = channel_arrays(channels["test"])
        test_probabilities = model.predict(test_images, batch_size=hp.batch_size, verbose=0)
        metrics["test"] = scores(test_masks, test_probabilities, threshold)
        shown = (test_images, test_masks, test_probabilities)

    epochs = _epochs_run(environment.checkpoint_dir / HISTORY)
    card = model_card(
        tile_shape=[rows, cols, bands],
        dtype=dtype.name,
        scale=scale,
        threshold=threshold,
        metrics=metrics,
        hyperparameters=asdict(hp),
        parameters=model.count_params(),
        epochs=epochs,
        manifest_sha256=index.get("manifest_sha256"),
    )
    export_model(model, environment.model_dir, card, val_images[:ONNX_CHECK_TILES])
    output = environment.output_data_dir
    write_metrics(output, {"threshold": threshold, **metrics})
    plot_curves(environment.checkpoint_dir / HISTORY, output)
    plot_predictions(*shown, threshold, output)
    summary = metrics.get("test", validation_scores)
    split = "test" if "test" in metrics else "validation"
    return (
        f"trained {epochs} epochs; {split} iou={summary['iou']:.4f} f1={summary['f1']:.4f} "
        f"at threshold {threshold:.2f}; model in {environment.model_dir}, "
        f"figures in {output}"
    )


def _strategy(tf: Any, keras: Any) -> Any:
    """All visible GPUs with mixed precision, or the default strategy on CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    log.info("training on %d GPUs with mixed precision", len(gpus))
    return tf.distribute.MirroredStrategy()


def _epochs_run(history_csv: Path) -> int:
    """Epochs over all runs of this job, resumed ones included."""
    if not history_csv.exists():
        return 0
    return max(0, len(history_csv.read_text().splitlines()) - 1)


def _fail(reason: str, code: int) -> int:
    """Tell SageMaker (failure file) and the log why the job failed."""
    path = failure_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason[:FAILURE_LIMIT] + "\n")
    print(f"earthseg train: error: {reason}", file=sys.stderr, flush=True)
    return code
