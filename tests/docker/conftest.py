"""Fixtures for tests that run real images: a Docker engine client and the Debian base image.

Without an engine these tests skip, except under CI=true, where they fail: CI installs and
starts Docker itself (`scripts/ensure-docker.sh`), so a missing engine there is a bug.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

import docker
import pytest
from docker.errors import NotFound

from earthseg.errors import InputError
from earthseg.local.engine import docker_client as engine_client
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from tests.conftest import make_opt_ml

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE_SCRIPT = REPO / "scripts" / "base-image.sh"
BASE_IMAGE_TAG = "earthseg-base:bookworm"
BASE_IMAGE_BUILD_TIMEOUT_S = 30 * 60
BUILD_SCRIPT = REPO / "scripts" / "build-image.sh"
TRAIN_IMAGE = "earthseg-train:cpu"
SERVE_IMAGE = "earthseg-serve:cpu"
BUILD_TIMEOUT_S = 60 * 60
RUN_TIMEOUT_S = 10 * 60


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the engine `docker.from_env()` finds (DOCKER_HOST or the local socket)."""
    try:
        client = engine_client()
    except InputError as error:
        reason = f"the Docker tests cannot run: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    """Tag of the debootstrapped base image, built by `scripts/base-image.sh` when missing."""
    _run_script([str(BASE_IMAGE_SCRIPT), BASE_IMAGE_TAG], {}, BASE_IMAGE_BUILD_TIMEOUT_S)
    docker_client.images.get(BASE_IMAGE_TAG)  # raises ImageNotFound if the script lied
    return BASE_IMAGE_TAG


@pytest.fixture(scope="session")
def train_image(docker_client: docker.DockerClient) -> str:
    """The cpu training image, built on the Debian base image by the project's build script."""
    return _built_image(docker_client, "train", TRAIN_IMAGE)


@pytest.fixture(scope="session")
def serve_image(docker_client: docker.DockerClient) -> str:
    """The cpu inference image, built on the Debian base image by the project's build script."""
    return _built_image(docker_client, "serve", SERVE_IMAGE)


def _built_image(client: docker.DockerClient, role: str, tag: str) -> str:
    _run_script([str(BUILD_SCRIPT), role, "cpu"], {"BASE_IMAGE": BASE_IMAGE_TAG}, BUILD_TIMEOUT_S)
    client.images.get(tag)  # raises ImageNotFound if the script lied
    return tag


class TrainedJob(NamedTuple):
    """A finished `docker run IMAGE train` on a mounted /opt/ml."""

    opt_ml: Path
    status: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def trained_job(
    docker_client: docker.DockerClient, train_image: str, tmp_path_factory: pytest.TempPathFactory
) -> TrainedJob:
    """The training image run once on a small synthetic dataset (64 px tiles, 2 epochs):
    its /opt/ml/model is what the serving tests serve."""
    root = tmp_path_factory.mktemp("trained")
    export, dataset = root / "export", root / "dataset"
    write_sample_export(export, scenes=4, size=256, seed=2)
    options = PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25))
    build_dataset(export / "images", export / "labels", dataset, options)
    hyperparameters = {"epochs": "2", "batch_size": "8", "filters": "8", "depth": "2"}
    opt_ml = make_opt_ml(root / "opt_ml", dataset, hyperparameters)
    return TrainedJob(
        opt_ml, *run_container(docker_client, train_image, ["train"], {opt_ml: "/opt/ml"})
    )


@pytest.fixture(scope="session")
def local_mode_channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The channels of the SDK local-mode jobs: 4 synthetic scenes of 256 px, 64 px tiles."""
    root = tmp_path_factory.mktemp("local-mode")
    write_sample_export(root / "export", scenes=4, size=256, seed=11)
    options = PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25))
    build_dataset(root / "export" / "images", root / "export" / "labels", root / "dataset", options)
    return root / "dataset"


def local_mode_job(image: str, channels: Path, root: Path, instances: int = 1) -> Path:
    """A 2-epoch job on `instances` local containers through the SDK's ModelTrainer, built
    as the launcher builds it; returns its model.tar.gz."""
    from earthseg.aws.resources import TrainingResources
    from earthseg.aws.training import TrainingSpec, run_training
    from earthseg.contracts.channels import channel_folders
    from earthseg.train.hyperparameters import Hyperparameters

    spec = TrainingSpec(
        image=image,
        channels={name: str(path) for name, path in channel_folders(channels).items()},
        hyperparameters=Hyperparameters(epochs=2, batch_size=8, filters=8, depth=2),
        resources=TrainingResources(instance_type="local_cpu", instances=instances),
        base_job_name="earthseg-local",
    )
    return Path(run_training(None, spec, local_root=root).model_uri)


def run_container(
    client: docker.DockerClient,
    image: str,
    command: list[str] | None,
    mounts: dict[Path, str] | None = None,
) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a container, removed afterwards."""
    volumes = {str(host): {"bind": bind, "mode": "rw"} for host, bind in (mounts or {}).items()}
    container = client.containers.run(
        image, command, network_mode="host", volumes=volumes, detach=True
    )
    try:
        status = container.wait(timeout=RUN_TIMEOUT_S)
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        with suppress(NotFound):
            container.remove(force=True)
    return status["StatusCode"], stdout, stderr


def _run_script(command: list[str], env: dict[str, str], timeout: float) -> None:
    """Run one of the repo's scripts; fail the test with its output if it fails."""
    try:
        result = subprocess.run(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} took over {exc.timeout}s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{_tail(result.stdout)}\n{_tail(result.stderr)}",
            pytrace=False,
        )


def _tail(text: str, lines: int = 150) -> str:
    return "\n".join(text.splitlines()[-lines:])
