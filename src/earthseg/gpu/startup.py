"""The start-up decision of both images: run on the GPUs, run on the CPU, or stop.

On a host whose NVIDIA driver is older than the image's CUDA runtime needs, ONNX Runtime
and TensorFlow fall back to the CPU with a log line, and a GPU instance is paid for CPU
work. So with the gpu image and GPUs visible, the image uses them or stops with the reason,
unless EARTHSEG_ALLOW_CPU=true asks for the CPU on purpose. A gpu image with no GPU visible
(a CPU instance, a laptop, a test) runs on the CPU: nothing is paid for that is not used.

`check_gpu` takes every fact as an argument (what `earthseg.gpu.doctor` probes), so the
decision is tested with any driver and runtime, without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from earthseg.errors import InputError
from earthseg.gpu.cuda import CudaStack, driver_cuda, min_driver
from earthseg.validation import Options, validate

ALLOW_CPU_ENV = "EARTHSEG_ALLOW_CPU"
CUDA_PROVIDER = "CUDAExecutionProvider"


class GpuOptions(Options):
    """The start-up check's one option, read from the environment (SageMaker passes
    environment variables to both images: a model's Environment, a job's Environment)."""

    allow_cpu: bool = Field(
        False,
        description="run on the CPU when GPUs are visible but the driver is too old for the "
        "image's CUDA (otherwise the image stops with the reason)",
    )


@dataclass(frozen=True)
class GpuVerdict:
    """What start-up does: `device` to run on, `summary` the line it logs, and, when it
    refuses, `error` (the reason and the fix)."""

    device: Literal["gpu", "cpu"]
    summary: str
    error: InputError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str | None:
        """Why it refuses: the driver found, the CUDA the image needs, and the fix."""
        return str(self.error) if self.error else None


def check_gpu(
    *, driver: str | None, gpus: int, stack: CudaStack, allow_cpu: bool, what: str
) -> GpuVerdict:
    """The decision for `what` (e.g. "the serve image", named in the reason) given the
    NVIDIA driver version found ("535.183.01", None without one), the GPUs visible, and
    the CUDA installed."""
    if stack.runtime is None:
        unused = f"; {gpus} GPU(s) visible, unused: the gpu image uses them" if gpus else ""
        return GpuVerdict("cpu", f"cpu build (no CUDA wheels): running on the CPU{unused}")
    image = f"gpu build (CUDA {stack.runtime}, cuDNN {stack.cudnn or 'none'})"
    if driver is None or gpus == 0:
        return GpuVerdict("cpu", f"{image}, no GPU visible: running on the CPU")
    branch = int(driver.split(".")[0])
    needed = min_driver(stack.runtime)
    found = f"NVIDIA driver {driver}"
    if branch >= needed:
        return GpuVerdict(
            "gpu",
            f"{image}, {gpus} GPU(s), {found} (runs CUDA up to {driver_cuda(branch)}): "
            "running on the GPU",
        )
    if allow_cpu:
        return GpuVerdict(
            "cpu",
            f"{image}, {gpus} GPU(s), {found} too old for CUDA {stack.runtime} (needs "
            f"{needed} or newer): running on the CPU as {ALLOW_CPU_ENV} asks",
        )
    error = InputError(
        found,
        f"runs CUDA up to {driver_cuda(branch)}, but {what} carries CUDA {stack.runtime}, "
        f"which needs driver {needed} or newer: on this host it would run on the CPU at "
        "the GPU's price",
        f"run it where the driver is {needed} or newer (a newer SageMaker AMI, e.g. the "
        "endpoint's InferenceAmiVersion or the transform's TransformAmiVersion, or an "
        f"instance family whose hosts have it), or set {ALLOW_CPU_ENV}=true to run on the "
        "CPU on purpose",
    )
    return GpuVerdict("cpu", f"{image}, {gpus} GPU(s), {found}: refused", error)


def check_providers(
    providers: Sequence[str], *, gpu: int, allow_cpu: bool, what: str
) -> InputError | None:
    """Whether an ONNX Runtime session given GPU `gpu` really runs on it: CUDA first in
    `session.get_providers()`. ONNX Runtime leaves CUDA out, with a log line, when the
    CUDA or cuDNN libraries do not load; that is a refusal too, unless `allow_cpu`."""
    if (providers and providers[0] == CUDA_PROVIDER) or allow_cpu:
        return None
    return InputError(
        "ONNX Runtime",
        f"runs {what} on {', '.join(providers) or 'no provider'} although it was given GPU "
        f"{gpu}: its CUDA or cuDNN libraries did not load (its log above says which)",
        f"run `docker run IMAGE doctor` on this host to see the driver and the libraries, "
        f"or set {ALLOW_CPU_ENV}=true to run on the CPU on purpose",
    )


def check_tensorflow_gpus(found: int, *, expected: int, allow_cpu: bool) -> InputError | None:
    """Whether TensorFlow found the `expected` GPUs the start-up check saw usable: it leaves
    them out, with a log line, when its CUDA or cuDNN libraries do not load; that is a
    refusal too, unless `allow_cpu`."""
    if not expected or found or allow_cpu:
        return None
    return InputError(
        "TensorFlow",
        f"found no GPU although {expected} GPU(s) with a driver that runs its CUDA are "
        "visible: its CUDA or cuDNN libraries did not load (its log above says which)",
        f"run `docker run IMAGE doctor` on this host to see the driver and the libraries, "
        f"or set {ALLOW_CPU_ENV}=true to train on the CPU on purpose",
    )


def allow_cpu() -> bool:
    """EARTHSEG_ALLOW_CPU as a boolean (true/false, 1/0, yes/no; unset: false)."""
    value = os.environ.get(ALLOW_CPU_ENV, "").strip()
    if not value:
        return False
    return validate(GpuOptions, {"allow_cpu": value}, key=lambda _: ALLOW_CPU_ENV).allow_cpu
