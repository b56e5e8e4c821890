"""The CUDA stack of a gpu image, and whether a SageMaker host's NVIDIA driver runs it.

A stack is read two ways: from the repository (the gpu extra's requirement, the nvidia
wheels its metadata asks for, each at its pin in constraints.txt, as the Dockerfiles
install with `-c constraints.txt`), or from a built image's installed wheels. Either way it
is checked against the host `earthseg.gpu.hosts.choose_host` picks for a service: a CUDA
runtime newer than the host's driver allows makes the container fail to start on
SageMaker, or ONNX Runtime fall back to the CPU without a word.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
CONSTRAINTS = REPO / "constraints.txt"
GPU_EXTRAS = {"serve": "ort-gpu", "train": "tf-gpu"}  # the extra that brings each image's CUDA
PIP_TIMEOUT_S = 120


def gpu_requirement(role: str) -> str:
    """The gpu extra's one requirement for `role`'s image, as pyproject.toml writes it."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    (requirement,) = extras[GPU_EXTRAS[role]]
    return str(requirement)


def constraints(text: str | None = None) -> dict[str, str]:
    """constraints.txt's pins (or those of `text` in its format), by canonical name."""
    pins: dict[str, str] = {}
    for line in (CONSTRAINTS.read_text() if text is None else text).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def pinned_packages(
    requirement: str, metadata: Mapping[str, object], pins: Mapping[str, str]
) -> dict[str, str]:
    """The nvidia wheels `requirement` (whose wheel's `metadata` is given) asks for with its
    extras, each at its pin: what `pip install REQUIREMENT -c constraints.txt` installs.

    Every one must be pinned, at a version that satisfies the requirement: an unpinned CUDA
    wheel would float to whatever PyPI has on the day of the build. (The wheels these pull
    in themselves, cuBLAS for cuDNN, nvJitLink for cuFFT, are left out: reading their
    metadata too would take PyPI round trips per wheel, and they do not decide the CUDA
    runtime or cuDNN.)
    """
    extras = Requirement(requirement).extras
    packages: dict[str, str] = {}
    for line in metadata.get("requires_dist") or []:  # type: ignore[attr-defined]
        wanted = Requirement(str(line))
        name = canonicalize_name(wanted.name)
        marker = wanted.marker
        if not name.startswith("nvidia-") or not (
            marker is None or any(marker.evaluate({"extra": extra}) for extra in extras)
        ):
            continue
        if name not in pins:
            raise ValueError(f"{wanted} (for {requirement}) is not pinned in constraints.txt")
        if not wanted.specifier.contains(pins[name], prereleases=True):
            raise ValueError(f"{wanted} (for {requirement}): constraints.txt pins {pins[name]}")
        packages[name] = pins[name]
    return packages


def wheel_metadata(*requirements: str) -> list[dict[str, object]]:
    """The metadata of each requirement's wheel as pip reads it from the index, without
    resolving dependencies (one pip run for all of them, cached per test session)."""
    return [dict(item) for item in _wheel_metadata(requirements)]


@cache
def _wheel_metadata(requirements: tuple[str, ...]) -> tuple[dict[str, object], ...]:
    with tempfile.TemporaryDirectory(prefix="earthseg-pip-report-") as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--no-deps", "--quiet", "--report", str(report), *requirements]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
        installs = json.loads(report.read_text())["install"]
    by_name = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in installs}
    return tuple(by_name[canonicalize_name(Requirement(r).name)] for r in requirements)
