"""Training on several instances: SageMaker's hosts as one TensorFlow cluster.

SageMaker starts the image on every instance of a job and tells each one, in
resourceconfig.json, all the hosts (`algo-1`, `algo-2`, ...) and which one it is. Every
host turns that into the same `TF_CONFIG` (workers `host:PORT` in SageMaker's order, this
host's index as the task) and trains with `MultiWorkerMirroredStrategy`: each step, every
worker computes gradients on its slice of the batch (`batch_size` stays the global batch,
see `earthseg.train.data`) and all apply the same all-reduced update, so all hold the same
weights. One host trains as before, on the GPUs it has.

The first host (`algo-1`, worker 0, the toolkit's master) is the chief: only it writes
/opt/ml/model, /opt/ml/output/data and /opt/ml/checkpoints (SageMaker syncs every host's
checkpoint folder to the same S3 prefix, so another writer would overwrite the chief's).
The others take part in every collective step and keep their own checkpoints in a
scratch folder, as Keras' multi-worker guide asks.

A `TF_CONFIG` already in the environment wins, so a cluster can use other addresses or
ports (tests on one machine do), but it must describe the same cluster as the resource
config: as many workers as hosts, and this host's index as its task.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earthseg.errors import InputError

TF_CONFIG_ENV = "TF_CONFIG"
PORT = 2222  # workers' gRPC port, as in SageMaker's own TensorFlow containers
PEER_TIMEOUT_ENV = "EARTHSEG_PEER_TIMEOUT"
PEER_TIMEOUT_S = 600.0  # instances of one job start minutes apart at worst
CHIEF_EXIT_TIMEOUT_S = 60.0
POLL_S = 0.2
RESOURCE_CONFIG = "input/config/resourceconfig.json"


@dataclass(frozen=True)
class Cluster:
    """The hosts of a job and this host's place among them."""

    hosts: tuple[str, ...]
    current_host: str
    addresses: tuple[str, ...]  # host:port per worker, in worker order

    @property
    def index(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def workers(self) -> int:
        return len(self.hosts)

    @property
    def distributed(self) -> bool:
        return self.workers > 1

    @property
    def chief(self) -> str:
        return self.hosts[0]

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes the job's outputs; the rule of SageMaker's toolkit (`is_master`)."""
        return self.index == 0


def tf_config(hosts: Sequence[str], current_host: str) -> dict[str, Any] | None:
    """The TF_CONFIG of `current_host` among `hosts` (in SageMaker's order); None for one host."""
    if len(hosts) < 2:
        return None
    return {
        "cluster": {"worker": [f"{host}:{PORT}" for host in hosts]},
        "task": {"type": "worker", "index": list(hosts).index(current_host)},
    }


def configure(
    hosts: Sequence[str], current_host: str, environ: MutableMapping[str, str] = os.environ
) -> Cluster:
    """The cluster of this job, with TF_CONFIG set for TensorFlow when there are several hosts.

    Call before TensorFlow creates its strategy, which reads TF_CONFIG.
    """
    hosts = tuple(hosts)
    if not hosts or len(set(hosts)) != len(hosts) or current_host not in hosts:
        raise InputError(
            RESOURCE_CONFIG,
            f"names current_host {current_host!r} and hosts {list(hosts)}: the current host "
            "must be one of distinct hosts",
            "let SageMaker write it, or write one per host with the same hosts list",
        )
    given = environ.get(TF_CONFIG_ENV)
    if given is not None:
        addresses = _checked_tf_config(given, hosts, current_host)
    else:
        config = tf_config(hosts, current_host)
        addresses = tuple(f"{host}:{PORT}" for host in hosts)
        if config is not None:
            environ[TF_CONFIG_ENV] = json.dumps(config)
    return Cluster(hosts, current_host, addresses)


def _checked_tf_config(text: str, hosts: tuple[str, ...], current_host: str) -> tuple[str, ...]:
    """The worker addresses of a TF_CONFIG someone set, if it matches the resource config."""
    fix = (
        f"unset {TF_CONFIG_ENV} (earthseg builds it from resourceconfig.json) or list one "
        "worker per host, in the hosts' order, with this host's index as the task"
    )
    try:
        config = json.loads(text)
        workers = [str(address) for address in config["cluster"]["worker"]]
        task = config["task"]
        task_type, task_index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"environment variable {TF_CONFIG_ENV}",
            f"is not a TF_CONFIG with cluster.worker and task ({error})",
            fix,
        ) from None
    expected = hosts.index(current_host)
    if len(workers) != len(hosts) or task_type != "worker" or task_index != expected:
        raise InputError(
            f"environment variable {TF_CONFIG_ENV}",
            f"describes {len(workers)} workers with task {task_type} {task_index}, but this "
            f"job has {len(hosts)} hosts {list(hosts)} and this is {current_host} "
            f"(worker {expected})",
            fix,
        )
    return tuple(workers)


class ClusterFailure(Exception):
    """The workers could not form or keep their cluster; the message says what to check."""


def strategy(cluster: Cluster) -> Any:
    """The tf.distribute strategy for this host, once every worker has joined.

    One host: the default strategy on CPU, MirroredStrategy over all GPUs otherwise.
    Several: MultiWorkerMirroredStrategy (NCCL between GPUs, ring all-reduce between CPUs).
    GPUs train with mixed precision. Creating the strategy waits for every worker to
    join; after `peer_timeout()` seconds it fails with ClusterFailure (TensorFlow's own
    limit is an hour).
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if not cluster.distributed:
        if not gpus:
            return tf.distribute.get_strategy()
        print(f"training on {len(gpus)} GPUs with mixed precision", flush=True)
        return tf.distribute.MirroredStrategy()
    communication = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=communication.NCCL if gpus else communication.RING
    )
    timeout = peer_timeout()
    print(
        f"cluster: {cluster.current_host} is worker {cluster.index} of {cluster.workers} "
        f"({', '.join(cluster.addresses)}); waiting up to {timeout:g} s for the others",
        flush=True,
    )
    _limit_the_wait_for_workers(cluster, timeout)
    try:
        return _keras_multi_worker_strategy(tf)(communication_options=options)
    except tf.errors.DeadlineExceededError:
        others = [a for i, a in enumerate(cluster.addresses) if i != cluster.index]
        raise ClusterFailure(
            f"{cluster.current_host} waited {timeout:g} s for the other workers "
            f"({', '.join(others)}) to join the training cluster: check that every instance "
            f"runs this image and reaches the others on port {PORT}, or raise "
            f"{PEER_TIMEOUT_ENV}"
        ) from None


def _limit_the_wait_for_workers(cluster: Cluster, timeout: float) -> None:
    """Make TensorFlow give up (DeadlineExceededError) if not every worker has joined
    within `timeout` seconds.

    The coordination service through which MultiWorkerMirroredStrategy's workers meet
    waits an hour by default, and the strategy has no parameter for it: this configures
    the service as the strategy would (one service led by worker 0 over all workers,
    which it then keeps), with a deadline for all to register. Only TensorFlow's eager
    context offers that (no public API); a waiting thread cannot do it instead, because
    TensorFlow holds the interpreter while it waits.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        cluster_register_timeout_in_ms=int(timeout * 1000),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=cluster.workers)
        ],
    )
    context.context().coordination_service.cluster_register_with_barrier = True


def _keras_multi_worker_strategy(tf: Any) -> type:
    """MultiWorkerMirroredStrategy that takes the reductions Keras 3's `fit` asks of it.

    Keras 3 (keras-team/keras#20585) reduces a whole batch structure at once (to build the
    model) and each step's scalar metrics along axis 0; MultiWorkerMirroredStrategy only
    reduces one value at a time, and a scalar has no axis 0. This reduces each value of
    a structure, scalars as values; everything else is TensorFlow's own strategy.
    """

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op: Any, value: Any, axis: int | None = None) -> Any:
            def one(item: Any) -> Any:
                rank = self.experimental_local_results(item)[0].shape.rank
                return super(KerasMultiWorkerMirroredStrategy, self).reduce(
                    reduce_op, item, None if rank == 0 else axis
                )

            return tf.nest.map_structure(one, value)

    return KerasMultiWorkerMirroredStrategy


def peer_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds a worker waits for the others to start: `EARTHSEG_PEER_TIMEOUT` or 600."""
    text = environ.get(PEER_TIMEOUT_ENV)
    if text is None:
        return PEER_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise InputError(
            f"environment variable {PEER_TIMEOUT_ENV}",
            f"{text!r} is not a positive number of seconds",
            f"set it to seconds, or unset it for {PEER_TIMEOUT_S:g}",
        )
    return seconds


def any_worker(strategy: Any, flag: bool) -> bool:
    """Whether `flag` is true on any worker. A collective, so every worker calls it in the
    same order; also a barrier: no worker returns before all have called it."""
    return bool(_sum_over_replicas(strategy, [float(flag)])[0] > 0)


def same_on_all_workers(strategy: Any, value: float) -> bool:
    """Whether every worker holds the same `value` (a collective, like `any_worker`)."""
    total, squares = _sum_over_replicas(strategy, [value, value * value])
    # n * sum(v^2) == sum(v)^2 only when all v are equal (exact for small integers).
    return bool(strategy.num_replicas_in_sync * squares == total * total)


def _sum_over_replicas(strategy: Any, values: Sequence[float]) -> np.ndarray:
    """`values` summed over every replica of every worker (each replica gives them)."""
    import tensorflow as tf

    return np.asarray(_summer(strategy)(tf.constant(values, tf.float64)))


@functools.cache
def _summer(strategy: Any) -> Callable[[Any], Any]:
    """The all-reduce as one traced function: 2 ms a call, where eager ops take 10."""
    import tensorflow as tf

    @tf.function
    def total(values: Any) -> Any:
        per_replica = strategy.experimental_distribute_values_from_function(lambda _: values)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return total


def worker_checkpoint_dir(cluster: Cluster, shared: Path) -> Path:
    """Where this worker keeps its checkpoints: the chief in `shared` (/opt/ml/checkpoints,
    synced to S3); every other worker in a scratch copy of it, so that it resumes from the
    same state as the chief without ever overwriting the chief's files (the caller removes
    the copy after training)."""
    if cluster.is_chief:
        shared.mkdir(parents=True, exist_ok=True)
        return shared
    scratch = Path(tempfile.mkdtemp(prefix=f"earthseg-checkpoints-{cluster.current_host}-"))
    if shared.is_dir():
        shutil.copytree(shared, scratch, dirs_exist_ok=True)
    return scratch


def weights_digest(weights: Sequence[np.ndarray]) -> str:
    """sha256 over the weights' bytes in order: equal on every worker that trained in sync."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def wait_for_chief_to_exit(cluster: Cluster, timeout: float = CHIEF_EXIT_TIMEOUT_S) -> bool:
    """Wait until the chief's TensorFlow server stops answering (its process ended): True
    then, False if it still answers after `timeout` seconds.

    A worker that ends before the chief would make Compose (SDK local mode) stop the
    chief, and make the chief log the lost peer; so the others end after it, as the
    workers of SageMaker's own TensorFlow containers do.
    """
    host, _, port = cluster.addresses[0].rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=POLL_S):
                pass
        except OSError:
            return True
        time.sleep(POLL_S)
    return False
