"""Training on several instances: the cluster from SageMaker's resource config, TF_CONFIG,
the chief rule, where each worker keeps its checkpoints, and the weights digest.

Two workers really training together are in tests/test_train_job.py (two processes on
loopback) and tests/docker/test_train_distributed.py (two containers, SDK local mode).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from earthseg.errors import InputError
from earthseg.train import distribution
from earthseg.train.distribution import TF_CONFIG_ENV, configure, tf_config

HOSTS = ["algo-1", "algo-2", "algo-3"]


def test_one_host_needs_no_cluster() -> None:
    environ: dict[str, str] = {}
    cluster = configure(["algo-1"], "algo-1", environ)
    assert tf_config(["algo-1"], "algo-1") is None
    assert TF_CONFIG_ENV not in environ
    assert not cluster.distributed and cluster.is_chief and cluster.workers == 1


@pytest.mark.parametrize("index", range(len(HOSTS)))
def test_every_host_gets_the_same_workers_and_its_own_index(index: int) -> None:
    environ: dict[str, str] = {}
    cluster = configure(HOSTS, HOSTS[index], environ)
    expected = {
        "cluster": {"worker": ["algo-1:2222", "algo-2:2222", "algo-3:2222"]},
        "task": {"type": "worker", "index": index},
    }
    assert json.loads(environ[TF_CONFIG_ENV]) == expected == tf_config(HOSTS, HOSTS[index])
    assert cluster.distributed and cluster.workers == 3 and cluster.index == index


def test_the_chief_is_the_first_host_as_sagemaker_lists_them() -> None:
    chiefs = [configure(HOSTS, host, {}).is_chief for host in HOSTS]
    assert chiefs == [True, False, False]
    assert {configure(HOSTS, host, {}).chief for host in HOSTS} == {"algo-1"}
    # The order given is the order used: every host reads the same list.
    assert configure(["algo-2", "algo-1"], "algo-2", {}).is_chief


def test_a_tf_config_already_set_for_this_cluster_wins() -> None:
    given = json.dumps(
        {
            "cluster": {"worker": ["localhost:5001", "localhost:5002"]},
            "task": {"type": "worker", "index": 1},
        }
    )
    environ = {TF_CONFIG_ENV: given}
    cluster = configure(["algo-1", "algo-2"], "algo-2", environ)
    assert environ[TF_CONFIG_ENV] == given
    assert cluster.addresses == ("localhost:5001", "localhost:5002")
    assert not cluster.is_chief


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("{not json", "is not a TF_CONFIG"),
        (json.dumps({"cluster": {"worker": ["a:1"]}}), "is not a TF_CONFIG"),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}),
            "describes 1 workers",
        ),
        (
            json.dumps(
                {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
            ),
            r"this is algo-2 \(worker 1\)",
        ),
        (
            json.dumps(
                {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 1}}
            ),
            "task chief 1",
        ),
    ],
)
def test_a_tf_config_for_another_cluster_is_refused(given: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as raised:
        configure(["algo-1", "algo-2"], "algo-2", {TF_CONFIG_ENV: given})
    assert raised.value.source == f"environment variable {TF_CONFIG_ENV}"
    assert "unset TF_CONFIG" in raised.value.fix


@pytest.mark.parametrize(
    ("hosts", "current"), [(["algo-1", "algo-2"], "algo-3"), (["algo-1", "algo-1"], "algo-1")]
)
def test_the_current_host_must_be_one_of_distinct_hosts(hosts: list[str], current: str) -> None:
    with pytest.raises(InputError, match=r"resourceconfig\.json"):
        configure(hosts, current, {})


def test_peer_timeout_comes_from_the_environment_or_defaults() -> None:
    assert distribution.peer_timeout({}) == distribution.PEER_TIMEOUT_S
    assert distribution.peer_timeout({distribution.PEER_TIMEOUT_ENV: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(InputError, match=distribution.PEER_TIMEOUT_ENV):
            distribution.peer_timeout({distribution.PEER_TIMEOUT_ENV: bad})


def test_only_the_chief_writes_the_shared_checkpoints(tmp_path: Path) -> None:
    shared = tmp_path / "checkpoints"
    chief = configure(["algo-1", "algo-2"], "algo-1", {})
    assert distribution.worker_checkpoint_dir(chief, shared) == shared
    (shared / "training_metadata.json").write_text('{"epoch": 3}')

    other = configure(["algo-1", "algo-2"], "algo-2", {})
    scratch = distribution.worker_checkpoint_dir(other, shared)
    try:
        assert scratch != shared and not scratch.is_relative_to(shared)
        # It resumes from the chief's state ...
        assert (scratch / "training_metadata.json").read_text() == '{"epoch": 3}'
        # ... and what it writes never reaches the folder SageMaker syncs.
        (scratch / "training_metadata.json").write_text('{"epoch": 4}')
        (scratch / "latest.weights.h5").write_bytes(b"weights")
        assert sorted(path.name for path in shared.iterdir()) == ["training_metadata.json"]
        assert (shared / "training_metadata.json").read_text() == '{"epoch": 3}'
    finally:
        shutil.rmtree(scratch)


def test_the_weights_digest_changes_with_any_weight_and_their_order() -> None:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)]
    digest = distribution.weights_digest(weights)
    assert digest == distribution.weights_digest([w.copy() for w in weights])
    assert len(digest) == 64
    changed = [weights[0].copy(), weights[1].copy()]
    changed[1][2] = np.nextafter(changed[1][2], np.float32(np.inf))
    assert distribution.weights_digest(changed) != digest
    assert distribution.weights_digest(weights[::-1]) != digest


def test_collectives_on_one_worker_answer_for_it_alone() -> None:
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    assert distribution.any_worker(strategy, True)
    assert not distribution.any_worker(strategy, False)
    assert distribution.same_on_all_workers(strategy, 7)


def test_a_worker_waits_while_its_chief_answers_and_stops_once_it_is_gone() -> None:
    import socket
    import threading
    import time

    chief = socket.socket()
    chief.bind(("127.0.0.1", 0))
    chief.listen()
    port = chief.getsockname()[1]
    cluster = distribution.Cluster(
        ("algo-1", "algo-2"), "algo-2", (f"127.0.0.1:{port}", "127.0.0.1:1")
    )
    start = time.monotonic()
    assert not distribution.wait_for_chief_to_exit(cluster, timeout=0.6)  # still answering
    assert time.monotonic() - start >= 0.6
    threading.Timer(0.5, chief.close).start()  # the chief's process ends half a second later
    start = time.monotonic()
    assert distribution.wait_for_chief_to_exit(cluster, timeout=30)
    assert 0.5 <= time.monotonic() - start < 5


def test_the_model_card_names_the_instances_it_was_trained_on() -> None:
    from earthseg.train.export import model_card

    common: dict[str, Any] = {
        "tile_shape": [64, 64, 3],
        "dtype": "uint8",
        "scale": 1 / 255,
        "threshold": 0.5,
        "metrics": {},
        "hyperparameters": {},
        "parameters": 1,
        "epochs": 2,
        "manifest_sha256": None,
    }
    card = model_card(**common, hosts=["algo-1", "algo-2"], replicas=2)
    assert card["training"]["instances"] == 2
    assert card["training"]["hosts"] == ["algo-1", "algo-2"]
    assert card["training"]["replicas"] == 2
    assert model_card(**common)["training"]["instances"] == 1
