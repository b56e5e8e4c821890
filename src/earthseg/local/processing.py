"""A SageMaker Processing job in a local container: the image run with the Processing
mounts (earthseg.contracts.processing), as `earthseg pipeline --local` preprocesses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from earthseg.contracts.processing import container_input, container_output
from earthseg.errors import InputError
from earthseg.local.engine import docker_client, run_detached, tail


def run_processing(
    image: str, inputs: dict[str, Path], output: Path, arguments: Sequence[str], log_file: Path
) -> None:
    """Run `image` as a Processing job: inputs at /opt/ml/processing/input/<name> (read
    only), `output` at /opt/ml/processing/output; the container's log goes to `log_file`."""
    client = docker_client()
    output.mkdir(parents=True, exist_ok=True)
    volumes = {
        str(path.resolve()): {"bind": container_input(name), "mode": "ro"}
        for name, path in inputs.items()
    }
    volumes[str(output.resolve())] = {"bind": container_output(), "mode": "rw"}
    # As the caller, so that what the container writes is theirs.
    user = f"{os.getuid()}:{os.getgid()}"
    container = run_detached(client, image, list(arguments), volumes=volumes, user=user)
    try:
        status = container.wait()["StatusCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        with suppress(Exception):
            container.remove(force=True)
    log_file.write_text(logs)
    if status != 0:
        raise InputError(
            f"{image} {' '.join(arguments)}",
            f"exited {status}:\n{tail(logs)}",
            f"correct what the log says (whole log: {log_file})",
        )
