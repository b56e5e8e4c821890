"""The Docker engine on this machine: one client factory for every caller (local runs,
`earthseg push`, the tests and benchmarks), and loopback ports for containers.

Containers run on the host network and are talked to on 127.0.0.1 only; a local run
never pulls an image (there may be no registry to pull from).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from earthseg.errors import InputError

ENGINE_FIX = (
    "start one with `make docker` (as root it installs and starts Debian's docker.io), or "
    "point DOCKER_HOST at an engine that runs"
)
LOG_TAIL = 40


def docker_client(timeout_s: int | None = None, fix: str = ENGINE_FIX) -> Any:
    """A client of the engine DOCKER_HOST (or the local socket) names, known to answer, or
    an error that says how to get one. `timeout_s`: per API read (a push may stay quiet
    a long while)."""
    import docker
    import requests
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST") or "the local socket (/var/run/docker.sock)"
    try:
        client = docker.from_env(**({"timeout": timeout_s} if timeout_s else {}))
        client.ping()
    except (DockerException, requests.RequestException) as error:
        raise InputError("Docker engine", f"none answers at {where} ({error})", fix) from None
    return client


def docker_available() -> bool:
    """Whether an engine answers."""
    try:
        docker_client().close()
    except InputError:
        return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def local_image(client: Any, image: str) -> Any:
    """A local image, or an error that says how to build it."""
    from docker.errors import ImageNotFound

    try:
        return client.images.get(image)
    except ImageNotFound:
        raise InputError(
            image, "is not a local image", "build it with `make build FLAVOR=cpu`"
        ) from None


def run_detached(client: Any, image: str, command: list[str], **options: Any) -> Any:
    """Start `image` detached on the host network (never pulling it)."""
    local_image(client, image)
    return client.containers.run(image, command, network_mode="host", detach=True, **options)


def tail(text: str, lines: int = LOG_TAIL) -> str:
    """The last lines of a container's log, for an error message."""
    return "\n".join(text.splitlines()[-lines:])
