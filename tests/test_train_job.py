"""`earthseg train` as SageMaker runs it: the /opt/ml contract end to end, in a subprocess.

Each job runs in its own process with SAGEMAKER_BASE_DIR pointing at a temporary /opt/ml,
as the training image runs it, on a small preprocessed synthetic sample.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from earthseg.contracts.manifest import file_digest
from earthseg.contracts.opt_ml import CHECKPOINTS_PER_JOB_ENV, JOB_NAME_ENV
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.distribution import PEER_TIMEOUT_ENV, TF_CONFIG_ENV
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from tests.conftest import make_opt_ml

pytestmark = pytest.mark.slow  # every test here trains in a subprocess

EARTHSEG = Path(sys.executable).parent / "earthseg"
SMALL = {"epochs": "2", "batch_size": "8", "filters": "8", "depth": "2", "patience": "5"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-data")
    write_sample_export(root / "export", scenes=6, size=256, seed=5)
    out = root / "dataset"
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        out,
        PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25)),
    )
    return out


def run_job(
    base: Path, timeout: float = 300, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EARTHSEG, "train", "--base-dir", base],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(environment or {})},
    )


def logged_epochs(stdout: str) -> list[int]:
    (epoch_regex,) = [d["Regex"] for d in METRIC_DEFINITIONS if d["Name"] == "epoch"]
    return [int(m) for m in re.findall(epoch_regex, stdout)]


def test_a_job_exports_the_model_artifact_and_reports(dataset: Path, tmp_path: Path) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, SMALL)
    job = run_job(base)
    assert job.returncode == 0, job.stderr[-3000:]
    assert not (base / "output" / "failure").exists()
    assert logged_epochs(job.stdout) == [1, 2]
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], job.stdout), definition

    model = base / "model"
    assert (model / "1" / "saved_model.pb").is_file()
    card = json.loads((model / "earthseg.json").read_text())
    assert card["input"]["tile_size"] == [64, 64] and card["input"]["bands"] == 3
    assert card["normalisation"]["scale"] == pytest.approx(1 / 255)
    assert 0 < card["threshold"] < 1
    assert set(card["metrics"]) == {"validation", "test"}
    assert card["data"]["manifest_sha256"] == file_digest(dataset / "manifest.json")
    assert card["training"]["hyperparameters"]["epochs"] == 2
    assert card["onnx"]["max_abs_difference_to_keras"] < 1e-4

    import onnxruntime

    session = onnxruntime.InferenceSession(str(model / "model.onnx"))
    tiles = np.load(next((dataset / "test").glob("images-*.npy")))[:2].astype(np.float32)
    (probabilities,) = session.run(None, {card["onnx"]["input"]: tiles})
    assert probabilities.shape == (2, 64, 64, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))

    output = base / "output" / "data"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test"] == card["metrics"]["test"]
    for figure in ("training_curves.png", "predictions.png"):
        assert (output / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_saved_model_serves_the_default_signature(dataset: Path, tmp_path: Path) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, {**SMALL, "epochs": "1"})
    assert run_job(base).returncode == 0
    check = (
        "import sys, numpy as np, tensorflow as tf;"
        "m = tf.saved_model.load(sys.argv[1]);"
        "f = m.signatures['serving_default'];"
        "(out,) = f(tf.constant(np.zeros((1, 64, 64, 3), np.float32))).values();"
        "print(out.shape)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, base / "model" / "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 64, 64, 1)" in result.stdout


def test_a_restarted_job_resumes_from_its_checkpoints(dataset: Path, tmp_path: Path) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, {**SMALL, "epochs": "1"})
    first = run_job(base)
    assert first.returncode == 0, first.stderr[-3000:]
    assert logged_epochs(first.stdout) == [1]
    # SDK v2 sends JSON-encoded values; the restarted job asks for three epochs in all.
    make_opt_ml(base, dataset, {**{k: json.dumps(int(v)) for k, v in SMALL.items()}, "epochs": 3})
    second = run_job(base)
    assert second.returncode == 0, second.stderr[-3000:]
    assert logged_epochs(second.stdout) == [2, 3]
    card = json.loads((base / "model" / "earthseg.json").read_text())
    assert card["training"]["epochs"] == 3


def test_trials_sharing_a_checkpoint_folder_each_resume_their_own(
    dataset: Path, tmp_path: Path
) -> None:
    # A tuning job's trials get one checkpoint URI: SageMaker syncs every trial's files
    # into each trial's /opt/ml/checkpoints, so each must keep to its own folder.
    def trial(name: str, epochs: int) -> subprocess.CompletedProcess[str]:
        base = make_opt_ml(tmp_path / name, dataset, {**SMALL, "epochs": str(epochs)})
        shared = tmp_path / "shared-checkpoints"
        shared.mkdir(exist_ok=True)
        if not (base / "checkpoints").is_symlink():
            (base / "checkpoints").symlink_to(shared, target_is_directory=True)
        env = {CHECKPOINTS_PER_JOB_ENV: "1", JOB_NAME_ENV: name}
        job = run_job(base, environment=env)
        assert job.returncode == 0, job.stderr[-3000:]
        return job

    assert logged_epochs(trial("tune-001", 1).stdout) == [1]
    assert logged_epochs(trial("tune-002", 1).stdout) == [1]  # not tune-001's epoch 2
    assert logged_epochs(trial("tune-001", 2).stdout) == [2]  # restarted: its own epoch 1
    shared = tmp_path / "shared-checkpoints"
    assert sorted(path.name for path in shared.iterdir()) == ["tune-001", "tune-002"]

    base = make_opt_ml(tmp_path / "unnamed", dataset, SMALL)
    job = run_job(base, environment={CHECKPOINTS_PER_JOB_ENV: "1", JOB_NAME_ENV: ""})
    assert job.returncode != 0
    assert "TRAINING_JOB_NAME" in (base / "output" / "failure").read_text()


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(dataset: Path, tmp_path: Path) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, {**SMALL, "epochs": "500"})
    job = subprocess.Popen(
        [EARTHSEG, "train", "--base-dir", base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert job.stdout is not None
    deadline = time.monotonic() + 240
    line = ""
    while time.monotonic() < deadline and "epoch=1 " not in line:
        line = job.stdout.readline()
        assert line or job.poll() is None, job.stderr.read() if job.stderr else ""
    job.send_signal(signal.SIGTERM)
    rest, errors = job.communicate(timeout=120)
    assert job.returncode == 0, errors[-3000:]
    assert "stopped by SIGTERM" in rest
    metadata = json.loads((base / "checkpoints" / "training_metadata.json").read_text())
    assert metadata["epoch"] >= 1
    assert not (base / "model" / "earthseg.json").exists()
    assert max(logged_epochs(line + rest)) < 500


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "expected"),
    [
        ({"epochs": "zero"}, ("train", "validation"), "epochs"),
        ({"learning_rate": "5"}, ("train", "validation"), "learning_rate"),
        ({"optimiser": "sgd"}, ("train", "validation"), "optimiser"),
        (SMALL, ("train",), "no validation channel"),
    ],
)
def test_bad_jobs_leave_a_readable_failure(
    dataset: Path,
    tmp_path: Path,
    hyperparameters: dict[str, object],
    channels: tuple[str, ...],
    expected: str,
) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, hyperparameters, channels)
    job = run_job(base)
    assert job.returncode != 0
    failure = (base / "output" / "failure").read_text()
    assert expected in failure and "Fix:" in failure
    assert "Traceback" not in job.stderr


def test_an_unreadable_shard_is_named(dataset: Path, tmp_path: Path) -> None:
    base = make_opt_ml(tmp_path / "ml", dataset, SMALL)
    shard = next((base / "input" / "data" / "train").glob("images-*.npy"))
    shard.write_bytes(b"not a numpy file")
    job = run_job(base)
    assert job.returncode != 0
    assert shard.name in (base / "output" / "failure").read_text()


def test_a_loss_that_turns_nan_fails_the_job_with_advice(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from earthseg.contracts.channels import write_channel_index
    from earthseg.preprocess.shards import ShardWriter

    base = make_opt_ml(tmp_path / "ml", tmp_path, SMALL, channels=())
    rng = np.random.default_rng(0)
    with ThreadPoolExecutor(1) as executor:
        for name in ("train", "validation"):
            folder = base / "input" / "data" / name
            writer = ShardWriter(folder, (32, 32, 3), np.dtype(np.float32), executor)
            for _ in range(16):
                image = rng.random((32, 32, 3), dtype=np.float32)
                image[0, 0, 0] = np.nan  # one bad pixel per tile poisons the loss
                writer.add(image, (rng.random((32, 32)) > 0.5).astype(np.uint8))
            index = writer.close().model_copy(update={"manifest_sha256": "sha256:none"})
            write_channel_index(folder, index)
    job = run_job(base)
    assert job.returncode == 1
    failure = (base / "output" / "failure").read_text()
    assert "NaN" in failure and "learning_rate" in failure


# Several instances: one process per host on loopback, each with its own /opt/ml and the
# TF_CONFIG a cluster on one machine needs (a port per worker), as a user may set it.

HOSTS = ["algo-1", "algo-2"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_worker(
    base: Path, host: str, ports: list[int], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`earthseg train` as `host` of HOSTS; stdout and stderr go to files beside `base`."""
    (base / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": HOSTS})
    )
    tf_config = {
        "cluster": {"worker": [f"localhost:{port}" for port in ports]},
        "task": {"type": "worker", "index": HOSTS.index(host)},
    }
    with open(base.with_suffix(".out"), "w") as out, open(base.with_suffix(".err"), "w") as err:
        return subprocess.Popen(
            [EARTHSEG, "train", "--base-dir", base],
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, TF_CONFIG_ENV: json.dumps(tf_config), **(env or {})},
        )


def finish(base: Path, worker: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    """Exit code and stdout of a worker; fails with its stderr if it hangs."""
    try:
        code = worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail(f"{base.name} hung:\n{base.with_suffix('.err').read_text()[-3000:]}")
    return code, base.with_suffix(".out").read_text()


def test_two_workers_train_in_step_and_only_the_chief_writes(dataset: Path, tmp_path: Path) -> None:
    bases = [make_opt_ml(tmp_path / host, dataset, SMALL) for host in HOSTS]
    ports = free_ports(2)
    workers = [start_worker(base, host, ports) for base, host in zip(bases, HOSTS, strict=True)]
    results = [finish(base, worker) for base, worker in zip(bases, workers, strict=True)]

    digests = []
    for base, (code, stdout) in zip(bases, results, strict=True):
        assert code == 0, base.with_suffix(".err").read_text()[-3000:]
        assert "replicas_in_sync=2" in stdout
        assert logged_epochs(stdout) == [1, 2]
        digests += re.findall(r"^weights_sha256=([0-9a-f]{64}) ", stdout, re.MULTILINE)
    assert len(digests) == 2 and digests[0] == digests[1], digests

    chief, other = bases
    card = json.loads((chief / "model" / "earthseg.json").read_text())
    assert card["training"]["instances"] == 2 and card["training"]["hosts"] == HOSTS
    assert card["training"]["epochs"] == 2
    assert (chief / "output" / "data" / "metrics.json").is_file()
    assert (chief / "checkpoints" / "training_metadata.json").is_file()
    for written in ("model", "output", "checkpoints"):
        assert not (other / written).exists(), written
    assert "the chief algo-1 wrote the model" in results[1][1]


def test_sigterm_on_one_worker_stops_both_after_the_same_batch(
    dataset: Path, tmp_path: Path
) -> None:
    bases = [make_opt_ml(tmp_path / host, dataset, {**SMALL, "epochs": "500"}) for host in HOSTS]
    ports = free_ports(2)
    workers = [start_worker(base, host, ports) for base, host in zip(bases, HOSTS, strict=True)]
    deadline = time.monotonic() + 240
    while "epoch=1 " not in bases[1].with_suffix(".out").read_text():
        assert time.monotonic() < deadline and workers[1].poll() is None, "no epoch ended"
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGTERM)  # the other worker never gets one
    results = [finish(base, worker) for base, worker in zip(bases, workers, strict=True)]

    for base, (code, stdout) in zip(bases, results, strict=True):
        assert code == 0, base.with_suffix(".err").read_text()[-3000:]
        assert "SIGTERM: training stops after this batch" in stdout
        assert "stopped by SIGTERM" in stdout
    assert logged_epochs(results[0][1]) == logged_epochs(results[1][1])
    metadata = json.loads((bases[0] / "checkpoints" / "training_metadata.json").read_text())
    assert metadata["epoch"] == max(logged_epochs(results[0][1])) >= 1
    assert not (bases[0] / "model").exists()


@pytest.mark.parametrize("host", HOSTS)
def test_a_worker_whose_peer_never_comes_gives_up_with_the_reason(
    dataset: Path, tmp_path: Path, host: str
) -> None:
    base = make_opt_ml(tmp_path / host, dataset, SMALL)
    worker = start_worker(base, host, free_ports(2), {PEER_TIMEOUT_ENV: "3"})
    code, _ = finish(base, worker, timeout=120)
    assert code == 1
    failure = (base / "output" / "failure").read_text()
    assert f"{host} waited 3 s for the other workers" in failure
    assert PEER_TIMEOUT_ENV in failure


def test_when_one_worker_fails_the_other_fails_too(dataset: Path, tmp_path: Path) -> None:
    bases = [make_opt_ml(tmp_path / host, dataset, SMALL) for host in HOSTS]
    shard = next((bases[0] / "input" / "data" / "train").glob("images-*.npy"))
    shard.write_bytes(b"not a numpy file")  # only the chief's copy of the channel
    ports = free_ports(2)
    workers = [start_worker(base, host, ports) for base, host in zip(bases, HOSTS, strict=True)]
    (chief_code, _), (other_code, _) = (
        finish(base, worker) for base, worker in zip(bases, workers, strict=True)
    )
    assert chief_code == 2
    assert shard.name in (bases[0] / "output" / "failure").read_text()
    assert other_code == 1
    failure = (bases[1] / "output" / "failure").read_text()
    assert "another worker of the training cluster stopped" in failure
