"""A throwaway OCI registry on loopback: Debian's `docker-registry` (distribution 2.8) with
htpasswd authentication and its storage in a temporary folder.

Docker treats registries on 127.0.0.0/8 as insecure, so the engine pushes to it over plain
HTTP with no certificate to set up. `scripts/ensure-docker.sh --registry` (run by
`make test`) installs the binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests

from earthseg.local.engine import free_port

START_TIMEOUT_S = 20
INSTALL_HINT = (
    "install Debian's docker-registry: `scripts/ensure-docker.sh --registry` as root "
    "(what `make test` runs), or `apt-get install docker-registry`"
)

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: {host}
  secret: earthseg-test-only
auth:
  htpasswd:
    realm: earthseg-test
    path: {htpasswd}
"""


@dataclass(frozen=True)
class LocalRegistry:
    """A running registry: its `host:port` and the one user it lets in."""

    host: str
    username: str
    password: str

    def get(self, path: str, accept: str | None = None) -> requests.Response:
        """GET `/v2/<path>` of the registry's API as its user."""
        headers = {"Accept": accept} if accept else {}
        return requests.get(
            f"http://{self.host}/v2/{path}",
            auth=(self.username, self.password),
            headers=headers,
            timeout=10,
        )


def registry_binary() -> str:
    """Path of `docker-registry`; skips the test (fails under CI=true) without one."""
    binary = shutil.which("docker-registry")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no docker-registry binary: {INSTALL_HINT}", pytrace=False)
        pytest.skip(f"no docker-registry binary: {INSTALL_HINT}")
    return binary


@contextmanager
def local_registry(folder: Path, username: str, password: str) -> Iterator[LocalRegistry]:
    """Serve a registry from `folder` on a free loopback port for the `with` block."""
    binary = registry_binary()
    folder.mkdir(parents=True, exist_ok=True)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (folder / "htpasswd").write_text(f"{username}:{hashed}\n")
    host = f"127.0.0.1:{free_port()}"
    config = folder / "config.yml"
    config.write_text(
        CONFIG.format(storage=folder / "storage", host=host, htpasswd=folder / "htpasswd")
    )
    log = (folder / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(process, host, folder / "registry.log")
        yield LocalRegistry(host, username, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(process: subprocess.Popen[bytes], host: str, log: Path) -> None:
    """Until the API answers (401 without credentials is an answer)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited {process.returncode}:\n{log.read_text()}")
        try:
            requests.get(f"http://{host}/v2/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    pytest.fail(
        f"docker-registry did not answer on {host} in {START_TIMEOUT_S}s:\n{log.read_text()}"
    )
