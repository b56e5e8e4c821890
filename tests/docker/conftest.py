"""Fixtures for tests that run real images: a Docker engine client and the Debian base image.

Without an engine these tests skip, except under CI=true, where they fail: CI installs and
starts Docker itself (`scripts/ensure-docker.sh`), so a missing engine there is a bug.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import DockerException

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE_SCRIPT = REPO / "scripts" / "base-image.sh"
BASE_IMAGE_TAG = "earthseg-base:bookworm"
BASE_IMAGE_BUILD_TIMEOUT_S = 30 * 60
BUILD_SCRIPT = REPO / "scripts" / "build-image.sh"
TRAIN_IMAGE = "earthseg-train:cpu"
BUILD_TIMEOUT_S = 60 * 60


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the engine `docker.from_env()` finds (DOCKER_HOST or the local socket)."""
    client, problem = _connect()
    if client is None:
        reason = (
            f"no Docker engine answers ({problem}); start one with `make docker` "
            "(scripts/ensure-docker.sh, as root it installs and starts Debian's docker.io)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the Docker tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    yield client
    client.close()


def _connect() -> tuple[docker.DockerClient | None, str]:
    """A client that got an answer from the engine, or None and why not."""
    try:
        client = docker.from_env()
        client.ping()
    except (DockerException, requests.RequestException) as exc:
        return None, str(exc)
    return client, ""


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    """Tag of the debootstrapped base image, built by `scripts/base-image.sh` when missing."""
    _run_script([str(BASE_IMAGE_SCRIPT), BASE_IMAGE_TAG], {}, BASE_IMAGE_BUILD_TIMEOUT_S)
    docker_client.images.get(BASE_IMAGE_TAG)  # raises ImageNotFound if the script lied
    return BASE_IMAGE_TAG


@pytest.fixture(scope="session")
def train_image(docker_client: docker.DockerClient) -> str:
    """The cpu training image, built on the Debian base image by the project's build script."""
    _run_script(
        [str(BUILD_SCRIPT), "train", "cpu"], {"BASE_IMAGE": BASE_IMAGE_TAG}, BUILD_TIMEOUT_S
    )
    docker_client.images.get(TRAIN_IMAGE)  # raises ImageNotFound if the script lied
    return TRAIN_IMAGE


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
