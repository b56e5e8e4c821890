"""The serve image as a local endpoint: `docker run -v MODEL:/opt/ml/model IMAGE serve`
on a free loopback port, with SageMaker's serving environment. `earthseg pipeline
--local` predicts through it; the serve image's tests and benchmark run it the same way.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from earthseg.contracts.serving import MODEL_DIR, server_environment
from earthseg.errors import InputError
from earthseg.local.engine import docker_client, free_port, run_detached, tail

READY_TIMEOUT_S = 120.0


class ServeContainer:
    """A serve container answering on http://127.0.0.1:<port> once started."""

    def __init__(
        self,
        image: str,
        model: Path,
        *,
        workers: int | None = None,
        environment: Mapping[str, str] | None = None,
        name: str | None = None,
        client: Any = None,
    ) -> None:
        self.image = image
        self.model = Path(model)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = {
            **server_environment(port=self.port, workers=workers),
            **(environment or {}),
        }
        self.name = name
        self.client = client or docker_client()
        self.container: Any = None
        self.started = 0.0  # time.time() just before `docker run`

    def start(self) -> ServeContainer:
        """`docker run` it (not waiting for it to answer)."""
        self.started = time.time()
        self.container = run_detached(
            self.client,
            self.image,
            ["serve"],
            volumes={str(self.model.resolve()): {"bind": MODEL_DIR, "mode": "ro"}},
            environment=self.environment,
            name=self.name,
        )
        return self

    def logs(self) -> str:
        return str(self.container.logs().decode(errors="replace"))

    def exited(self) -> bool:
        self.container.reload()
        return self.container.status == "exited"

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until `/ping` answers 200; an error with the log's tail if it stops first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.exited():
                raise InputError(
                    "the serve container",
                    f"stopped before answering /ping:\n{tail(self.logs())}",
                    "correct what the log says (is the model complete?)",
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise InputError(
            "the serve container",
            f"did not answer /ping within {timeout_s:.0f} s:\n{tail(self.logs())}",
            "see its log; a large model on a slow disk may need longer",
        )

    def remove(self, log_file: Path | None = None) -> None:
        """Stop it (SIGTERM: in-flight requests finish), keep its log in `log_file`, and
        remove it."""
        if self.container is None:
            return
        with suppress(Exception):
            self.container.stop(timeout=10)
            if log_file is not None:
                log_file.write_text(self.logs())
        with suppress(Exception):
            self.container.remove(force=True)


@contextmanager
def local_endpoint(
    image: str, model: Path, log_file: Path | None = None, workers: int | None = None
) -> Iterator[ServeContainer]:
    """A serve container of `image` serving `model`, answering `/ping` for as long as the
    context lasts; removed afterwards, its log kept in `log_file`."""
    server = ServeContainer(image, model, workers=workers).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.remove(log_file)
