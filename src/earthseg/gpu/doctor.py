"""What this machine or container has for the GPU, and the start-up check's verdict on it.

`earthseg doctor` (and `docker run IMAGE doctor`) prints it; both images' start-up runs
the same probe (`startup_check`) without the frameworks.

Where the facts come from, chosen to work inside a container run by the NVIDIA runtime,
to cost nothing without a driver, and to be safe before the model server forks:
- the driver version from /proc/driver/nvidia/version, the kernel module's own line: the
  NVIDIA Container Toolkit mounts it into every GPU container (libnvidia-container's
  mount_procfs), it needs neither a library nor nvidia-smi (mounted only with the
  `utility` capability), and reading a missing file is the no-driver fast path;
- the GPUs from /proc/driver/nvidia/gpus/, where the toolkit mounts one entry per device
  given to the container (narrowed by CUDA_VISIBLE_DEVICES), counted only when
  libcuda.so.1 loads: without it no CUDA program runs here, whatever the host has;
- the CUDA version the driver runs from libcuda's cuDriverGetVersion, which needs no
  cuInit: CUDA initialised in the server's master would break its forked workers.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from earthseg.gpu.cuda import CudaStack, installed_cuda, min_driver, stack_json
from earthseg.gpu.startup import GpuVerdict, allow_cpu, check_gpu

Framework = Literal["onnxruntime", "tensorflow"]
FRAMEWORKS: tuple[Framework, ...] = ("onnxruntime", "tensorflow")
PROC_DRIVER = Path("/proc/driver/nvidia")
LIBCUDA = "libcuda.so.1"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Diagnosis:
    """The GPU facts of this environment and the start-up verdict on them."""

    driver: str | None  # "535.183.01": the NVIDIA kernel module's version
    driver_cuda: str | None  # "12.2": what libcuda says the driver runs; None: no libcuda
    gpus: int  # NVIDIA GPUs a CUDA program here would see
    stack: CudaStack
    onnxruntime: list[str] | None  # ONNX Runtime's available providers; None: not probed
    tensorflow: list[str] | None  # the GPUs TensorFlow sees; None: not probed
    verdict: GpuVerdict

    def to_json(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "driver": self.driver,
            "driver_cuda": self.driver_cuda,
            "gpus": self.gpus,
            "cuda": stack_json(self.stack),
            "onnxruntime": self.onnxruntime,
            "tensorflow": self.tensorflow,
            "verdict": {
                "ok": verdict.ok,
                "device": verdict.device,
                "summary": verdict.summary,
                "reason": verdict.reason,
            },
        }


def probe(frameworks: Collection[Framework] = (), what: str = "this environment") -> Diagnosis:
    """Probe the driver, GPUs and CUDA wheels, and ask the `frameworks` named (imported only
    then: TensorFlow takes seconds, and the serve image has none), for `what` is starting."""
    driver = driver_version()
    cuda = libcuda_version()
    gpus = visible_gpus() if cuda is not None else 0
    stack = installed_cuda()
    verdict = check_gpu(driver=driver, gpus=gpus, stack=stack, allow_cpu=allow_cpu(), what=what)
    return Diagnosis(
        driver=driver,
        driver_cuda=cuda,
        gpus=gpus,
        stack=stack,
        onnxruntime=_onnxruntime_providers() if "onnxruntime" in frameworks else None,
        tensorflow=_tensorflow_gpus() if "tensorflow" in frameworks else None,
        verdict=verdict,
    )


def startup_check(what: str) -> Diagnosis:
    """The probe a start-up runs: its verdict's error raised when it refuses."""
    diagnosis = probe(what=what)
    if diagnosis.verdict.error is not None:
        raise diagnosis.verdict.error
    return diagnosis


def installed_frameworks() -> list[Framework]:
    """The frameworks importable here (the serve image has no TensorFlow, the train image
    no ONNX Runtime GPU build), found without importing them."""
    return [name for name in FRAMEWORKS if importlib.util.find_spec(name) is not None]


def driver_version() -> str | None:
    """The NVIDIA kernel module's version ("535.183.01"), or None without a driver."""
    try:
        return parse_driver_version((PROC_DRIVER / "version").read_text())
    except OSError:
        return None


def parse_driver_version(text: str) -> str | None:
    """The version in /proc/driver/nvidia/version's NVRM line, proprietary or open module:
    `NVRM version: NVIDIA UNIX [Open ]Kernel Module [for x86_64]  535.183.01  <date>`."""
    found = re.search(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)?)\s", text)
    return found[1] if found else None


def libcuda_version() -> str | None:
    """The highest CUDA the driver runs, as its libcuda says ("12.2"); None when libcuda
    does not load (no NVIDIA driver in this container)."""
    try:
        libcuda = ctypes.CDLL(LIBCUDA)
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def visible_gpus() -> int:
    """The NVIDIA GPUs given to this container, narrowed by CUDA_VISIBLE_DEVICES."""
    try:
        count = len(list((PROC_DRIVER / "gpus").iterdir()))
    except OSError:
        return 0
    visible = os.environ.get(VISIBLE_ENV)
    if visible is None:
        return count
    chosen = []
    for device in visible.split(","):
        if not device.strip() or device.strip().startswith("-"):
            break  # CUDA stops at the first invalid entry
        chosen.append(device)
    return min(count, len(chosen))


def report(d: Diagnosis) -> str:
    """The diagnosis as a block a person reads."""
    stack = d.stack
    needs = f" (needs driver {min_driver(stack.runtime)} or newer)" if stack.runtime else ""
    libcuda = f"libcuda runs CUDA up to {d.driver_cuda}" if d.driver_cuda else "no libcuda"
    rows = [
        ("NVIDIA driver", f"{d.driver or 'none found'} ({libcuda})"),
        ("GPUs visible", str(d.gpus)),
        ("CUDA runtime", f"{stack.runtime or 'none (cpu build)'}{needs}"),
        ("cuDNN", stack.cudnn or "none"),
        ("NVIDIA wheels", ", ".join(f"{n} {v}" for n, v in stack.packages.items()) or "none"),
    ]
    if d.onnxruntime is not None:
        rows.append(("ONNX Runtime", ", ".join(d.onnxruntime)))
    if d.tensorflow is not None:
        rows.append(("TensorFlow GPUs", ", ".join(d.tensorflow) or "none"))
    verdict = d.verdict
    rows.append(("verdict", verdict.summary))
    if verdict.reason:
        rows.append(("refused", verdict.reason))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _onnxruntime_providers() -> list[str] | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _tensorflow_gpus() -> list[str] | None:
    if importlib.util.find_spec("tensorflow") is None:
        return None
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]
