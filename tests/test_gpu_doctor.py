"""The GPU start-up check and `earthseg doctor`: no silent CPU fallback on GPU instances.

The decision (`check_gpu`) takes the driver, GPUs and CUDA as arguments, so drivers and
runtimes this machine does not have are tested here; the probe and the real boot paths
(the model server, the CLI) run on this machine as it is: no NVIDIA driver, cpu wheels.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from earthseg.errors import InputError
from earthseg.gpu.cuda import CudaStack, driver_cuda, installed_cuda, min_driver
from earthseg.gpu.doctor import parse_driver_version, probe
from earthseg.gpu.startup import (
    ALLOW_CPU_ENV,
    CUDA_PROVIDER,
    allow_cpu,
    check_gpu,
    check_providers,
    check_tensorflow_gpus,
)
from earthseg.train.run import require_tensorflow_gpus

EARTHSEG = Path(sys.executable).parent / "earthseg"
CUDA_12 = CudaStack("12.9", "9.28", {"nvidia-cuda-runtime-cu12": "12.9.79"})
CUDA_13 = CudaStack("13.0", "9.13", {"nvidia-cuda-runtime": "13.0.96"})
CPU_BUILD = CudaStack(None, None, {})


@pytest.mark.parametrize(
    ("driver", "stack", "needed", "runs"),
    [("470.256.02", CUDA_12, 525, "11.4"), ("535.183.01", CUDA_13, 580, "12.2")],
)
def test_a_driver_too_old_for_the_images_cuda_is_refused_with_the_fix(
    driver: str, stack: CudaStack, needed: int, runs: str
) -> None:
    verdict = check_gpu(driver=driver, gpus=1, stack=stack, allow_cpu=False, what="the image")
    assert not verdict.ok and verdict.reason is not None
    assert f"NVIDIA driver {driver}" in verdict.reason  # the driver found
    assert f"CUDA up to {runs}" in verdict.reason and f"CUDA {stack.runtime}" in verdict.reason
    assert f"{needed} or newer" in verdict.reason  # what the image needs
    assert "AMI" in verdict.reason and f"{ALLOW_CPU_ENV}=true" in verdict.reason  # the fixes
    assert isinstance(verdict.error, InputError) and "Fix:" in verdict.reason


def test_allow_cpu_runs_on_the_cpu_on_purpose() -> None:
    verdict = check_gpu(
        driver="470.256.02", gpus=4, stack=CUDA_12, allow_cpu=True, what="the image"
    )
    assert verdict.ok and verdict.device == "cpu"
    assert ALLOW_CPU_ENV in verdict.summary and "470.256.02" in verdict.summary


def test_a_driver_that_fits_runs_on_the_gpu() -> None:
    verdict = check_gpu(
        driver="535.183.01", gpus=1, stack=CUDA_12, allow_cpu=False, what="the image"
    )
    assert verdict.ok and verdict.device == "gpu" and verdict.reason is None
    assert "535.183.01" in verdict.summary and "12.9" in verdict.summary
    newest = check_gpu(driver="580.65.06", gpus=8, stack=CUDA_13, allow_cpu=False, what="x")
    assert newest.ok and newest.device == "gpu"


def test_the_cpu_image_never_checks_the_driver() -> None:
    for driver in (None, "390.157", "470.256.02"):
        verdict = check_gpu(driver=driver, gpus=2, stack=CPU_BUILD, allow_cpu=False, what="x")
        assert verdict.ok and verdict.device == "cpu"
    assert "2 GPU(s) visible, unused" in verdict.summary


def test_the_gpu_image_without_a_visible_gpu_runs_on_the_cpu() -> None:
    for driver, gpus in ((None, 0), ("470.256.02", 0)):
        verdict = check_gpu(driver=driver, gpus=gpus, stack=CUDA_12, allow_cpu=False, what="x")
        assert verdict.ok and verdict.device == "cpu" and "no GPU visible" in verdict.summary


def test_minimum_drivers_and_what_drivers_run() -> None:
    assert [min_driver(v) for v in ("11.8", "12.0", "12.9", "13.0")] == [450, 525, 525, 580]
    with pytest.raises(InputError, match=r"CUDA runtime 14\.0.*Fix: add its minimum driver"):
        min_driver("14.0")
    assert {d: driver_cuda(d) for d in (470, 525, 535, 550, 570, 575, 580)} == {
        470: "11.4",
        525: "12.0",
        535: "12.2",
        550: "12.4",
        570: "12.8",
        575: "12.9",
        580: "13.0",
    }
    assert driver_cuda(474) == "11.4"  # a branch between two releases runs the older's CUDA


def test_the_driver_version_is_read_from_the_kernel_modules_line() -> None:
    proprietary = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC "
        "2024\nGCC version:  gcc version 7.3.1 20180712 (Red Hat 7.3.1-17) (GCC)\n"
    )
    open_module = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  "
        "(dvs-builder@U16-I2-C03-12-4)  Sun Jul 27 06:54:38 UTC 2025\n"
    )
    assert parse_driver_version(proprietary) == "535.183.01"
    assert parse_driver_version(open_module) == "580.65.06"
    assert parse_driver_version("") is None


def test_onnx_runtime_without_cuda_on_a_gpu_is_a_refusal() -> None:
    fine = check_providers(
        [CUDA_PROVIDER, "CPUExecutionProvider"], gpu=0, allow_cpu=False, what="the model"
    )
    assert fine is None
    fell_back = check_providers(["CPUExecutionProvider"], gpu=1, allow_cpu=False, what="m")
    assert fell_back is not None
    assert "CPUExecutionProvider" in str(fell_back) and "GPU 1" in str(fell_back)
    assert "doctor" in fell_back.fix and ALLOW_CPU_ENV in fell_back.fix
    assert check_providers(["CPUExecutionProvider"], gpu=0, allow_cpu=True, what="m") is None


def test_tensorflow_without_the_gpus_the_check_saw_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert check_tensorflow_gpus(1, expected=1, allow_cpu=False) is None
    assert check_tensorflow_gpus(0, expected=0, allow_cpu=False) is None  # none expected
    assert check_tensorflow_gpus(0, expected=2, allow_cpu=True) is None
    lost = check_tensorflow_gpus(0, expected=2, allow_cpu=False)
    assert lost is not None and "found no GPU although 2 GPU(s)" in lost.problem
    assert ALLOW_CPU_ENV in lost.fix
    # The training job's own check, with the TensorFlow of this machine (no GPU): told to
    # expect one, it refuses rather than training on the CPU.
    monkeypatch.delenv(ALLOW_CPU_ENV, raising=False)
    with pytest.raises(InputError, match="TensorFlow: found no GPU"):
        require_tensorflow_gpus(1)
    require_tensorflow_gpus(0)


def test_allow_cpu_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_CPU_ENV, raising=False)
    assert allow_cpu() is False
    for value, expected in (("true", True), ("1", True), ("False", False), ("no", False)):
        monkeypatch.setenv(ALLOW_CPU_ENV, value)
        assert allow_cpu() is expected
    monkeypatch.setenv(ALLOW_CPU_ENV, "maybe")
    with pytest.raises(InputError, match=rf"^{ALLOW_CPU_ENV}: .*Fix: set {ALLOW_CPU_ENV}"):
        allow_cpu()


def test_this_cpu_environment_has_no_cuda_and_no_gpu() -> None:
    names = {(d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()}
    assert not [name for name in names if name.startswith("nvidia")]  # independently
    assert installed_cuda() == CudaStack(None, None, {})
    diagnosis = probe()
    assert (diagnosis.driver, diagnosis.gpus, diagnosis.onnxruntime) == (None, 0, None)
    assert diagnosis.verdict.ok and diagnosis.verdict.device == "cpu"


def test_the_cuda_module_prints_the_stack_as_json() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "earthseg.gpu.cuda"], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout) == {
        "runtime": None,
        "cudnn": None,
        "packages": {},
        "min_driver": None,
    }


def test_earthseg_doctor_says_no_gpu_and_exits_0() -> None:
    shown = subprocess.run([EARTHSEG, "doctor", "--json"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    diagnosis = json.loads(shown.stdout)
    assert diagnosis["gpus"] == 0 and diagnosis["driver"] is None
    assert diagnosis["verdict"] == {
        "ok": True,
        "device": "cpu",
        "summary": "cpu build (no CUDA wheels): running on the CPU",
        "reason": None,
    }
    assert "CPUExecutionProvider" in diagnosis["onnxruntime"]


def test_the_model_server_logs_the_check_and_boots_on_the_cpu(test_model: Path) -> None:
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    env.pop(ALLOW_CPU_ENV, None)
    server = subprocess.Popen(
        [EARTHSEG, "serve", "--model", test_model],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while status != 200 and time.monotonic() < deadline and server.poll() is None:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code
            except requests.ConnectionError:
                time.sleep(0.1)
        assert status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=60)
    assert server.returncode == 0, log
    assert "earthseg serve: cpu build (no CUDA wheels): running on the CPU" in log
    assert "ready: model loaded" in log and "on CPUExecutionProvider" in log


def test_a_check_that_cannot_decide_stops_the_server_before_it_boots(test_model: Path) -> None:
    """The check's errors take the boot path of a refusal: the reason, exit 2, no server."""
    env = {**os.environ, ALLOW_CPU_ENV: "maybe"}
    stopped = subprocess.run(
        [EARTHSEG, "serve", "--model", test_model], env=env, capture_output=True, text=True
    )
    assert stopped.returncode == 2
    assert f"earthseg serve: error: {ALLOW_CPU_ENV}: 'maybe'" in stopped.stderr
    assert "Fix:" in stopped.stderr and "Traceback" not in stopped.stderr
    assert "Booting worker" not in stopped.stderr


def test_a_training_job_checks_before_reading_data(tmp_path: Path) -> None:
    """The job's check runs before any data is read (the channels here are empty), and
    its error becomes the failure file SageMaker shows."""
    base = tmp_path / "ml"
    for channel in ("train", "validation"):
        (base / "input" / "data" / channel).mkdir(parents=True)
    env = {**os.environ, ALLOW_CPU_ENV: "maybe"}
    job = subprocess.run(
        [EARTHSEG, "train", "--base-dir", base], env=env, capture_output=True, text=True
    )
    assert job.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith(f"{ALLOW_CPU_ENV}: 'maybe'") and "Fix:" in failure
