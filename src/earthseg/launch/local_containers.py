"""The images in local Docker containers, as SageMaker would run them.

`--local` runs use these in place of the SageMaker services: a Processing job is the
training image run with the Processing mounts, an endpoint is the serve image run with
the model mounted at /opt/ml/model, answering on a free loopback port. (Training runs
through the SageMaker SDK's own local mode: earthseg.launch.training.)
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from earthseg.errors import InputError

log = logging.getLogger(__name__)

PROCESSING = "/opt/ml/processing"
READY_TIMEOUT_S = 120.0
LOG_TAIL = 40


def docker_client() -> Any:
    """A client of the local engine, or an error that says how to get one."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as error:
        raise InputError(
            "Docker engine",
            f"does not answer ({error})",
            "start one with `make docker` (as root it installs and starts Debian's docker.io), "
            "or run the pipeline without Docker (local.docker: never)",
        ) from None
    return client


def docker_available() -> bool:
    try:
        docker_client().close()
    except InputError:
        return False
    return True


def run_processing(
    image: str, inputs: dict[str, Path], output: Path, arguments: Sequence[str], log_file: Path
) -> None:
    """Run `image` as a Processing job: inputs at /opt/ml/processing/input/<name> (read
    only), `output` at /opt/ml/processing/output; the container's log goes to `log_file`."""
    client = docker_client()
    output.mkdir(parents=True, exist_ok=True)
    volumes = {
        str(path.resolve()): {"bind": f"{PROCESSING}/input/{name}", "mode": "ro"}
        for name, path in inputs.items()
    }
    volumes[str(output.resolve())] = {"bind": f"{PROCESSING}/output", "mode": "rw"}
    container = _run(client, image, list(arguments), volumes=volumes, user=_host_user())
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
            f"exited {status}:\n{_tail(logs)}",
            f"correct what the log says (whole log: {log_file})",
        )


class LocalEndpoint:
    """A serve container answering on http://127.0.0.1:<port>."""

    def __init__(self, container: Any, port: int) -> None:
        self.container = container
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return str(self.container.logs().decode(errors="replace"))


@contextmanager
def local_endpoint(
    image: str, model: Path, log_file: Path, workers: int | None = None
) -> Iterator[LocalEndpoint]:
    """`docker run -v MODEL:/opt/ml/model IMAGE serve` until `/ping` answers 200; the
    container is removed on exit and its log kept in `log_file`."""
    client = docker_client()
    port = free_port()
    environment = {"SAGEMAKER_BIND_TO_PORT": str(port)}
    if workers:
        environment["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    container = _run(
        client,
        image,
        ["serve"],
        volumes={str(model.resolve()): {"bind": "/opt/ml/model", "mode": "ro"}},
        environment=environment,
    )
    endpoint = LocalEndpoint(container, port)
    try:
        _wait_ready(endpoint)
        yield endpoint
    finally:
        with suppress(Exception):
            container.stop(timeout=10)
            log_file.write_text(endpoint.logs())
        with suppress(Exception):
            container.remove(force=True)


def _wait_ready(endpoint: LocalEndpoint) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        endpoint.container.reload()
        if endpoint.container.status == "exited":
            raise InputError(
                "the serve container",
                f"stopped before answering /ping:\n{_tail(endpoint.logs())}",
                "correct what the log says (is the model complete?)",
            )
        try:
            with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise InputError(
        "the serve container",
        f"did not answer /ping within {READY_TIMEOUT_S:.0f} s:\n{_tail(endpoint.logs())}",
        "see its log; a large model on a slow disk may need longer",
    )


def _run(client: Any, image: str, command: list[str], **options: Any) -> Any:
    """Start `image` detached on the host network; a local run never pulls an image."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
    except ImageNotFound:
        raise InputError(
            image, "is not a local image", "build it with `make build FLAVOR=cpu`"
        ) from None
    return client.containers.run(image, command, network_mode="host", detach=True, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _host_user() -> str:
    """Run as the caller, so that what the container writes is theirs."""
    return f"{os.getuid()}:{os.getgid()}"


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-LOG_TAIL:])
