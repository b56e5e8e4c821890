"""The gpu images as `make build push` makes them: the CUDA runtime and cuDNN really
installed in each, against the SageMaker hosts the launcher asks for, and the serve gpu
image serving on the CPU of a machine with no NVIDIA driver.

The images are 3.6 GB (serve) and 6.9 GB (train) and take minutes to build: `make test`
leaves these tests out (marker gpu_images), `make test-gpu-images` builds and runs them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import docker
import numpy as np
import pytest
import requests

from earthseg.gpu.cuda import CudaStack, min_driver
from earthseg.gpu.hosts import choose_host, host_runs
from earthseg.local.endpoint import ServeContainer
from tests.docker.conftest import (
    BASE_IMAGE_TAG,
    BUILD_SCRIPT,
    BUILD_TIMEOUT_S,
    _run_script,
    run_container,
)
from tests.gpu_images import (
    constraints,
    gpu_requirement,
    pinned_packages,
    wheel_metadata,
)
from tests.test_gpu_images_pins import SERVING, TRAINING_INSTANCE

pytestmark = [pytest.mark.docker, pytest.mark.gpu_images]

ROLES = ("serve", "train")
NPY = "application/x-npy"


@pytest.fixture(scope="module")
def gpu_images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Both gpu images, built on the Debian base image by the project's build script."""
    images = {}
    for role in ROLES:
        _run_script(
            [str(BUILD_SCRIPT), role, "gpu"], {"BASE_IMAGE": BASE_IMAGE_TAG}, BUILD_TIMEOUT_S
        )
        images[role] = f"earthseg-{role}:gpu"
        docker_client.images.get(images[role])  # raises ImageNotFound if the script lied
    return images


@pytest.fixture(scope="module")
def installed(
    docker_client: docker.DockerClient, gpu_images: dict[str, str]
) -> dict[str, CudaStack]:
    """What `python -m earthseg.gpu.cuda` reads from each image's installed wheels."""
    stacks = {}
    for role, image in gpu_images.items():
        status, stdout, stderr = run_container(
            docker_client, image, ["/opt/venv/bin/python", "-m", "earthseg.gpu.cuda"]
        )
        assert status == 0, stdout + stderr
        printed = json.loads(stdout)
        assert printed["min_driver"] == min_driver(printed["runtime"])
        stacks[role] = CudaStack(printed["runtime"], printed["cudnn"], printed["packages"])
    return stacks


@pytest.mark.parametrize("role", ROLES)
def test_each_image_installs_the_cuda_wheels_constraints_pins(
    installed: dict[str, CudaStack], role: str
) -> None:
    requirement = gpu_requirement(role)
    (metadata,) = wheel_metadata(requirement)
    pinned = pinned_packages(requirement, metadata, constraints())
    stack = installed[role]
    assert {name: stack.packages.get(name) for name in pinned} == pinned
    assert stack.runtime is not None and stack.runtime.startswith("12."), stack
    assert stack.cudnn is not None and stack.cudnn.startswith("9."), stack
    # No second CUDA: nothing of CUDA 13 (unsuffixed or -cu13 wheels) beside the cu12 ones.
    assert all(name.endswith("-cu12") for name in stack.packages), stack.packages


@pytest.mark.parametrize(("instance_type", "service"), SERVING)
def test_the_serve_image_runs_on_the_host_the_launcher_asks_for(
    installed: dict[str, CudaStack], instance_type: str, service: str
) -> None:
    host = choose_host(instance_type, service)  # type: ignore[arg-type]
    assert host is not None
    verdict = host_runs(installed["serve"], host)
    assert verdict.runs, verdict.reason


def test_the_train_image_needs_a_driver_training_hosts_do_not_publish(
    installed: dict[str, CudaStack],
) -> None:
    host = choose_host(TRAINING_INSTANCE, "training")
    assert host is not None
    verdict = host_runs(installed["train"], host)
    assert verdict.runs is None and "needs driver 525" in verdict.reason, verdict.reason


def test_the_serve_gpu_image_serves_on_the_cpu_without_a_driver(
    docker_client: docker.DockerClient, gpu_images: dict[str, str], test_model: Path
) -> None:
    server = ServeContainer(gpu_images["serve"], test_model, client=docker_client).start()
    try:
        server.wait_ready()
        tiles = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
        body = io.BytesIO()
        np.save(body, tiles)
        answer = requests.post(
            f"{server.url}/invocations",
            data=body.getvalue(),
            headers={"Content-Type": NPY, "Accept": NPY},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert np.load(io.BytesIO(answer.content)).shape == (4, 64, 64)
        assert "on CPUExecutionProvider" in server.logs()
    finally:
        server.container.remove(force=True)
