"""The gpu images' CUDA, read from the repository's own pins, against the SageMaker hosts
the launcher asks for (`earthseg.gpu.hosts.choose_host`).

No image is built: the CUDA runtime and cuDNN each image installs follow from its gpu
extra in pyproject.toml, its wheel's metadata on PyPI (read by pip, a few seconds) and
constraints.txt, as the Dockerfiles install them. tests/docker/test_gpu_images.py reads
the same from the built images.
"""

from __future__ import annotations

import warnings

import pytest

from earthseg.aws.resources import DEFAULT_GPU_INSTANCE
from earthseg.gpu.cuda import IMAGES_CUDA, CudaStack, min_driver, stack_of
from earthseg.gpu.hosts import Service, choose_host, host_drivers, host_runs
from tests.gpu_images import (
    GPU_EXTRAS,
    constraints,
    gpu_requirement,
    pinned_packages,
    wheel_metadata,
)

# Where the launcher puts each image on a GPU: endpoints (real-time and asynchronous) on
# the default GPU type, batch transform on the GPU types it is run on.
SERVING: list[tuple[str, Service]] = [
    (DEFAULT_GPU_INSTANCE, "endpoint"),
    (DEFAULT_GPU_INSTANCE, "async"),
    ("ml.g4dn.xlarge", "transform"),
    ("ml.g5.xlarge", "transform"),
]
TRAINING_INSTANCE = DEFAULT_GPU_INSTANCE

# The serve image before issue 15: onnxruntime-gpu 1.31.1, its CUDA 13 wheels at the pins
# its gpu build resolved (constraints.txt of 2026-11-26).
ORT_CUDA_13 = "onnxruntime-gpu[cuda,cudnn]==1.31.1"
CUDA_13_PINS = """
nvidia-cublas==13.10.0.20
nvidia-cuda-nvrtc==13.5.37
nvidia-cuda-runtime==13.5.37
nvidia-cudnn-cu13==9.28.1.4
nvidia-cufft==12.5.0.14
nvidia-curand==10.4.5.25
nvidia-nvjitlink==13.5.37
"""


@pytest.fixture(scope="module")
def stacks() -> dict[str, CudaStack]:
    """Each gpu image's stack as its pins give it: {"serve": ..., "train": ...}."""
    requirements = {role: gpu_requirement(role) for role in GPU_EXTRAS}
    metadata = wheel_metadata(*requirements.values())
    pins = constraints()
    return {
        role: stack_of(pinned_packages(requirement, wheel, pins))
        for (role, requirement), wheel in zip(requirements.items(), metadata, strict=True)
    }


def test_both_gpu_images_carry_cuda_12_and_cudnn_9(stacks: dict[str, CudaStack]) -> None:
    for role, stack in stacks.items():
        assert stack.runtime is not None and stack.runtime.startswith("12."), (role, stack)
        assert stack.cudnn is not None and stack.cudnn.startswith("9."), (role, stack)
    # One set of pins: the wheels both images install are the same versions.
    assert (stacks["serve"].runtime, stacks["serve"].cudnn) == (
        stacks["train"].runtime,
        stacks["train"].cudnn,
    )
    # ... and the CUDA the launcher asks SageMaker's hosts to run (earthseg.gpu.hosts)
    assert stacks["serve"].runtime == IMAGES_CUDA


def test_every_nvidia_pin_is_one_a_gpu_image_installs(stacks: dict[str, CudaStack]) -> None:
    pinned = {name for name in constraints() if name.startswith("nvidia-")}
    installed = set(stacks["serve"].packages) | set(stacks["train"].packages)
    assert pinned - installed == set(), "constraints.txt pins nvidia wheels no image asks for"


@pytest.mark.parametrize(("instance_type", "service"), SERVING)
def test_the_serve_image_runs_on_the_host_the_launcher_asks_for(
    stacks: dict[str, CudaStack], instance_type: str, service: Service
) -> None:
    host = choose_host(instance_type, service)
    assert host is not None, f"{instance_type} has no GPU"
    verdict = host_runs(stacks["serve"], host)
    assert verdict.runs, verdict.reason


def test_the_training_hosts_driver_is_unknown_so_only_the_cuda_major_is_checked(
    stacks: dict[str, CudaStack],
) -> None:
    host = choose_host(TRAINING_INSTANCE, "training")
    assert host is not None
    verdict = host_runs(stacks["train"], host)
    # AWS publishes no driver for training hosts: the check cannot say yes or no.
    assert verdict.runs is None, verdict.reason
    warnings.warn(f"training on {TRAINING_INSTANCE}: {verdict.reason}", stacklevel=1)
    # What is known: CUDA 12 needs driver 525, which every published GPU host newer than
    # the 470 defaults has.
    assert stacks["train"].runtime is not None
    newer = {
        known.driver
        for family in ("g4dn", "g5", "g6", "p4d", "p5")
        for known in host_drivers(f"ml.{family}.xlarge", "endpoint")
        if known.driver is not None and known.driver > 470
    }
    assert min_driver(stacks["train"].runtime) <= min(newer)


def test_the_services_default_470_driver_would_refuse_the_serve_image(
    stacks: dict[str, CudaStack],
) -> None:
    # Why the launcher asks for an AMI: g5's default inference host is driver 470 (CUDA 11.4).
    default = host_drivers(DEFAULT_GPU_INSTANCE, "endpoint")[0]
    assert (default.ami, default.driver) == (None, 470)
    verdict = host_runs(stacks["serve"], default)
    assert verdict.runs is False, verdict.reason


def test_a_cuda_13_serve_image_is_refused_on_a_535_host() -> None:
    (metadata,) = wheel_metadata(ORT_CUDA_13)
    stack = stack_of(pinned_packages(ORT_CUDA_13, metadata, constraints(CUDA_13_PINS)))
    assert stack.runtime is not None and stack.runtime.startswith("13."), stack
    host = choose_host("ml.g5.xlarge", "transform")  # batch-gpu-535, the newest transform has
    assert host is not None and host.driver == 535

    verdict = host_runs(stack, host)

    assert verdict.runs is False
    assert "needs driver 580" in verdict.reason and "driver 535" in verdict.reason
