"""`earthseg train`: one SageMaker training job, from channels to the model artifact.

Resumes from /opt/ml/checkpoints (a restarted spot job continues where it stopped),
stops cleanly on SIGTERM after saving a checkpoint, stops early on validation loss,
chooses the decision threshold on validation, scores the test split, exports, reports.
On several instances they train as one cluster and the first writes the outputs.
Any failure leaves its reason in /opt/ml/output/failure and a non-zero exit code; so does
the gpu image on GPUs whose driver is too old for its CUDA (earthseg.gpu.startup), before
any data is read, rather than training on the CPU at the GPU's price.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from earthseg.contracts.channels import ChannelIndex
from earthseg.errors import InputError
from earthseg.gpu.doctor import startup_check
from earthseg.train.distribution import TF_CONFIG_ENV, Cluster, ClusterFailure
from earthseg.train.environment import TrainingEnvironment, failure_file, read_environment
from earthseg.train.tracking import Tracking, start_tracking

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
HISTORY = "history.csv"
BACKUP_METADATA = "training_metadata.json"  # keras.callbacks.BackupAndRestore's epoch file
ONNX_CHECK_TILES = 4
FAILURE_LIMIT = 1024  # what SageMaker shows of the failure file
PEER_LOST = ("UnavailableError", "AbortedError")  # TensorFlow's errors for a lost worker


class TrainingFailure(Exception):
    """Training ran but cannot produce a usable model; the message says what to change."""


def main() -> int:
    """Run the job described by the SageMaker environment; return the exit code."""
    try:
        environment = read_environment()
        diagnosis = startup_check("the training image")  # an InputError if it refuses
        print(f"earthseg train: {diagnosis.verdict.summary}", flush=True)
        gpus = diagnosis.gpus if diagnosis.verdict.device == "gpu" else 0
        outcome = train(environment, gpus)
    except InputError as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except (TrainingFailure, ClusterFailure) as error:
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
        if type(error).__name__ in PEER_LOST and TF_CONFIG_ENV in os.environ:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return _fail(
                "another worker of the training cluster stopped or cannot be reached "
                f"({type(error).__name__}: {first_line}); the logs and failure files of "
                "the other instances say why",
                EXIT_FAILED,
            )
        return _fail(f"internal error, please report it: {type(error).__name__}: {error}", 1)
    print(outcome, flush=True)
    return 0


def train(environment: TrainingEnvironment, gpus: int = 0) -> str:
    """Train, evaluate and export; return a one-line summary. `gpus`: the GPUs the
    start-up check found usable, which TensorFlow must then find too.

    On several hosts every host runs this together (`earthseg.train.distribution`);
    only the chief evaluates and writes the outputs, the others wait for it. With a
    tracking URI the chief records the job as an MLflow run (`earthseg.train.tracking`).
    """
    resuming = _resumed_epoch(environment.checkpoint_dir) > 0
    with start_tracking(environment, resuming) as tracking:
        return _train(environment, tracking, gpus)


def _train(environment: TrainingEnvironment, tracking: Tracking, gpus: int) -> str:
    from earthseg.train import distribution

    cluster = distribution.configure(environment.hosts, environment.current_host)
    strategy = distribution.strategy(cluster)  # first: it must start TensorFlow
    require_tensorflow_gpus(gpus)

    import keras

    from earthseg.contracts.channels import read_channel_index
    from earthseg.train.callbacks import MetricsLogger, StopOnSigterm
    from earthseg.train.data import channel_dataset, channel_tiles
    from earthseg.train.losses import bce_dice_loss
    from earthseg.train.metrics import segmentation_metrics
    from earthseg.train.model import build_unet

    replicas = strategy.num_replicas_in_sync
    if cluster.distributed:
        print(
            f"cluster: {cluster.current_host} joined as worker {cluster.index} of "
            f"{cluster.workers}, chief {cluster.chief}, replicas_in_sync={replicas}",
            flush=True,
        )
    hp = environment.hyperparameters
    if hp.batch_size < replicas:
        raise InputError(
            "hyperparameter batch_size",
            f"{hp.batch_size} is the global batch, split among {replicas} replicas "
            f"({cluster.workers} instances), which would leave some without tiles",
            f"set batch_size to at least {replicas}",
        )
    channels = environment.channels
    index = read_channel_index(channels["train"])
    rows, _, bands = index.tile_shape
    scale = _scale(np.dtype(index.dtype))
    keras.utils.set_random_seed(hp.seed)

    train_tiles = channel_tiles(channels["train"])
    steps = hp.steps_per_epoch or max(1, math.ceil(train_tiles / hp.batch_size))
    train_data = channel_dataset(
        channels["train"], hp.batch_size, training=True, seed=hp.seed, augment=hp.augment
    )
    validation_data = channel_dataset(
        channels["validation"], hp.batch_size, training=False, seed=hp.seed, augment=False
    )
    with strategy.scope():
        model = build_unet(
            rows,
            bands,
            filters=hp.filters,
            depth=hp.depth,
            scale=scale,
            sync_batch_norm=replicas > 1,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(hp.learning_rate),
            loss=bce_dice_loss,
            metrics=segmentation_metrics(),
        )
    checkpoints = distribution.worker_checkpoint_dir(cluster, environment.checkpoint_dir)
    try:
        resumed = _resumed_epoch(checkpoints)
        if cluster.distributed and not distribution.same_on_all_workers(strategy, resumed):
            raise TrainingFailure(
                "the hosts would resume from different epochs: every host must start with the "
                f"same {environment.checkpoint_dir} (SageMaker copies the job's checkpoint "
                "S3 folder to each); empty the checkpoint folder or keep only the chief's"
            )
        sigterm = StopOnSigterm(
            (lambda flag: distribution.any_worker(strategy, flag)) if cluster.distributed else None
        )
        history = model.fit(
            train_data,
            epochs=hp.epochs,
            steps_per_epoch=steps,
            validation_data=validation_data,
            shuffle=False,  # the pipeline shuffles; Keras would only warn
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(str(checkpoints), delete_checkpoint=False),
                keras.callbacks.CSVLogger(str(checkpoints / HISTORY), append=True),
                keras.callbacks.TerminateOnNaN(),
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=hp.patience, restore_best_weights=True
                ),
                MetricsLogger(tracking.log_epoch),
                sigterm,
            ],
        )
    finally:
        if not cluster.is_chief:
            shutil.rmtree(checkpoints, ignore_errors=True)  # only ever its scratch copy
    # Losses and validation metrics are reduced over all workers: all decide alike here.
    losses = history.history.get("loss", [])
    if any(not math.isfinite(value) for value in losses):
        raise TrainingFailure(
            f"the loss became NaN or infinite at epoch {len(losses)}: lower learning_rate "
            f"(now {hp.learning_rate}) or check the data for extreme values"
        )
    if sigterm.interrupted:
        tracking.end("KILLED")  # a restarted job continues the run
        saver = "" if cluster.is_chief else f" by the chief {cluster.chief}"
        return f"stopped by SIGTERM; checkpoint saved{saver} in {environment.checkpoint_dir}"
    weights = model.get_weights()
    digest = distribution.weights_digest(weights)
    print(f"weights_sha256={digest} host={cluster.current_host}", flush=True)
    if not cluster.distributed:
        return _evaluate_and_export(environment, model, index, cluster, replicas, tracking)

    # The chief evaluates and exports a copy of the model outside the strategy: no
    # collective the others would have to join. They wait for its outcome at the barrier.
    outcome, failure = "", None
    if cluster.is_chief:
        try:
            local = build_unet(rows, bands, filters=hp.filters, depth=hp.depth, scale=scale)
            local.set_weights(weights)
            outcome = _evaluate_and_export(environment, local, index, cluster, replicas, tracking)
        except Exception as error:  # raised again once the others know
            failure = error
    chief_failed = distribution.any_worker(strategy, failure is not None)
    if failure is not None:
        raise failure
    if cluster.is_chief:
        return outcome
    if not distribution.wait_for_chief_to_exit(cluster):
        print(
            f"the chief {cluster.chief} still answers after "
            f"{distribution.CHIEF_EXIT_TIMEOUT_S:.0f} s; this worker ends without waiting more",
            flush=True,
        )
    if chief_failed:
        raise TrainingFailure(
            f"the chief {cluster.chief} failed after training; its log and its "
            "/opt/ml/output/failure say why"
        )
    return (
        f"trained as worker {cluster.index} of {cluster.workers}; the chief "
        f"{cluster.chief} wrote the model"
    )


def _evaluate_and_export(
    environment: TrainingEnvironment,
    model: Any,
    index: ChannelIndex,
    cluster: Cluster,
    replicas: int,
    tracking: Tracking,
) -> str:
    """Choose the threshold on validation, score test, write the model artifact and the
    report, and log them to the run; return the summary. `model` must predict without
    the other workers."""
    from earthseg.contracts.channels import TEST, read_channel_index
    from earthseg.train.data import channel_arrays
    from earthseg.train.export import export_model, model_card
    from earthseg.train.metrics import choose_threshold, scores
    from earthseg.train.report import plot_curves, plot_predictions, write_metrics

    hp = environment.hyperparameters
    channels = environment.channels
    val_images, val_masks = channel_arrays(channels["validation"])
    val_probabilities = model.predict(val_images, batch_size=hp.batch_size, verbose=0)
    threshold, validation_scores = choose_threshold(val_masks, val_probabilities)
    metrics: dict[str, dict[str, float]] = {"validation": validation_scores}
    shown = (val_images, val_masks, val_probabilities)
    if TEST in channels and read_channel_index(channels[TEST]).tiles:
        test_images, test_masks = channel_arrays(channels[TEST])
        test_probabilities = model.predict(test_images, batch_size=hp.batch_size, verbose=0)
        metrics["test"] = scores(test_masks, test_probabilities, threshold)
        shown = (test_images, test_masks, test_probabilities)

    epochs = _epochs_run(environment.checkpoint_dir / HISTORY)
    dtype = np.dtype(index.dtype)
    card = model_card(
        tile_shape=list(index.tile_shape),
        dtype=dtype.name,
        scale=_scale(dtype),
        threshold=threshold,
        metrics=metrics,
        hyperparameters=hp.model_dump(),
        parameters=model.count_params(),
        epochs=epochs,
        manifest_sha256=index.manifest_sha256,
        imagery=index.imagery,
        hosts=list(cluster.hosts),
        replicas=replicas,
        tracking=tracking.record,
    )
    export_model(model, environment.model_dir, card, val_images[:ONNX_CHECK_TILES])
    output = environment.output_data_dir
    write_metrics(output, {"threshold": threshold, **metrics})
    plot_curves(environment.checkpoint_dir / HISTORY, output)
    plot_predictions(*shown, threshold, output)
    tracking.log_results(
        threshold=threshold,
        metrics=metrics,
        epochs=epochs,
        model_dir=environment.model_dir,
        output_dir=output,
    )
    summary = metrics.get("test", validation_scores)
    split = "test" if "test" in metrics else "validation"
    return (
        f"trained {epochs} epochs; {split} iou={summary['iou']:.4f} f1={summary['f1']:.4f} "
        f"at threshold {threshold:.2f}; model in {environment.model_dir}, "
        f"figures in {output}"
    )


def _scale(dtype: np.dtype) -> float:
    """What the model multiplies raw pixels by: 1 / the integer type's maximum."""
    return 1.0 / np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0


def require_tensorflow_gpus(expected: int) -> None:
    """Refuse to train on the CPU when TensorFlow lost GPUs the start-up check saw usable."""
    import tensorflow as tf

    from earthseg.gpu.startup import allow_cpu, check_tensorflow_gpus

    found = len(tf.config.list_physical_devices("GPU"))
    refusal = check_tensorflow_gpus(found, expected=expected, allow_cpu=allow_cpu())
    if refusal is not None:
        raise refusal


def _resumed_epoch(checkpoints: Path) -> int:
    """The epoch BackupAndRestore will resume from in `checkpoints` (0: a fresh start)."""
    metadata = checkpoints / BACKUP_METADATA
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text()).get("epoch", 0))


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
