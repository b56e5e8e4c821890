"""The CUDA an environment carries, from its installed wheels, and the driver it needs.

An image brings its CUDA runtime and cuDNN as NVIDIA's pip wheels (onnxruntime-gpu's, or
tensorflow[and-cuda]'s); the host brings the driver. Reading the wheels' metadata needs no
GPU, so a build or a laptop can say what an image needs: `python -m earthseg.gpu.cuda`
prints it as JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from earthseg.errors import InputError

# The CUDA runtime wheel of each CUDA major; CUDA 13's dropped the -cuXX suffix.
RUNTIME_WHEELS = ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime")
CUDNN_WHEELS = ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13")

# The oldest driver branch that runs any runtime of a CUDA major (minor version
# compatibility): NVIDIA, CUDA Toolkit Release Notes, "CUDA Toolkit and Minimum Required
# Driver Version for CUDA Minor Version Compatibility", and CUDA Compatibility guide,
# https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/ and
# https://docs.nvidia.com/deploy/cuda-compatibility/ : 11.x >= 450.80.02, 12.x >= 525.60.13,
# 13.x >= 580 (Linux). Forward-compatibility libraries could lift this on data-centre GPUs,
# but NVIDIA Container Toolkit >= 1.17.4 no longer mounts them: the host's driver counts.
MIN_DRIVER = {11: 450, 12: 525, 13: 580}

# The CUDA runtime both gpu images carry (constraints.txt's nvidia-cuda-runtime-cu12 pin;
# tests/test_gpu_images_pins.py keeps the two equal): what the launcher asks hosts to run.
IMAGES_CUDA = "12.9"

# The highest CUDA each driver branch runs: the same release notes, "CUDA Toolkit and
# Corresponding Driver Versions" (the driver each toolkit release shipped with). For
# messages ("driver 470 runs CUDA up to 11.4").
DRIVER_CUDA = {
    410: "10.0",
    418: "10.1",
    440: "10.2",
    450: "11.0",
    455: "11.1",
    460: "11.2",
    465: "11.3",
    470: "11.4",
    495: "11.5",
    510: "11.6",
    515: "11.7",
    520: "11.8",
    525: "12.0",
    530: "12.1",
    535: "12.2",
    545: "12.3",
    550: "12.4",
    555: "12.5",
    560: "12.6",
    570: "12.8",
    575: "12.9",
    580: "13.0",
    590: "13.1",
}


@dataclass(frozen=True)
class CudaStack:
    """What the installed NVIDIA wheels provide; all None/empty in a cpu environment."""

    runtime: str | None  # "12.9": major.minor of the CUDA runtime wheel
    cudnn: str | None  # "9.10": major.minor of the cuDNN wheel
    packages: dict[str, str]  # every nvidia-* distribution and its version


def installed_cuda() -> CudaStack:
    """The CUDA runtime and cuDNN installed here, from the wheels' metadata.

    The runtime and cuDNN wheels are looked up by name first (a few ms); the list of every
    nvidia-* wheel (50-80 ms to read all metadata) only when one of them is there, so that
    a cpu image's start pays nothing for it.
    """
    if not any(_installed(name) for name in (*RUNTIME_WHEELS, *CUDNN_WHEELS)):
        return CudaStack(runtime=None, cudnn=None, packages={})
    return stack_of(_nvidia_packages())


def stack_of(packages: Mapping[str, str]) -> CudaStack:
    """The stack a set of wheels (name: version, installed or pinned) provides: its nvidia
    ones, the CUDA runtime's and cuDNN's major.minor."""
    nvidia = {
        name: version
        for name, version in sorted((_canonical(name), v) for name, v in packages.items())
        if name.startswith("nvidia-")
    }

    def major_minor(names: tuple[str, ...]) -> str | None:
        found = [nvidia[name] for name in names if name in nvidia]
        return ".".join(found[0].split(".")[:2]) if found else None

    return CudaStack(
        runtime=major_minor(RUNTIME_WHEELS), cudnn=major_minor(CUDNN_WHEELS), packages=nvidia
    )


def min_driver(cuda_runtime: str) -> int:
    """The oldest NVIDIA driver branch that runs CUDA `cuda_runtime` ("12.9" -> 525)."""
    major = int(cuda_runtime.split(".")[0])
    if major not in MIN_DRIVER:
        raise InputError(
            f"CUDA runtime {cuda_runtime}",
            f"is of a CUDA major earthseg knows no driver requirement for (known: "
            f"{', '.join(str(known) for known in MIN_DRIVER)})",
            "add its minimum driver from NVIDIA's CUDA compatibility table to MIN_DRIVER in "
            "earthseg/gpu/cuda.py, or install a CUDA runtime of a known major",
        )
    return MIN_DRIVER[major]


def driver_cuda(driver: int) -> str:
    """The highest CUDA the driver branch `driver` runs (535 -> "12.2"), for messages."""
    known = [branch for branch in DRIVER_CUDA if branch <= driver]
    return DRIVER_CUDA[max(known)] if known else f"older than {DRIVER_CUDA[min(DRIVER_CUDA)]}"


def stack_json(stack: CudaStack) -> dict[str, object]:
    """The stack as `python -m earthseg.gpu.cuda` prints it, with the driver it needs."""
    needed = min_driver(stack.runtime) if stack.runtime else None
    return {**asdict(stack), "min_driver": needed}


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, as pip and packaging spell it


def _nvidia_packages() -> dict[str, str]:
    return {
        _canonical(distribution.metadata["Name"] or ""): distribution.version
        for distribution in importlib.metadata.distributions()
    }


if __name__ == "__main__":
    print(json.dumps(stack_json(installed_cuda()), indent=2))
