"""The model server: gunicorn running the Flask app, set up from SageMaker's variables.

- Each worker loads the model itself, after the fork and before it takes a request
  (ONNX Runtime sessions are not fork-safe), so a worker that answers /ping has its model.
  A model that cannot load stops the server with the reason, rather than serving errors.
- The gpu image with GPUs visible runs on them or stops with the reason
  (earthseg.gpu.startup): a driver too old for its CUDA stops the server before it forks;
  a worker whose ONNX Runtime session came up without CUDA stops it like a broken model.
- Threaded workers (gthread, earthseg.serve.worker): /ping gets a thread of its own while
  others wait for the model, so health checks answer at once under load. On CPU,
  `CoreSlots` gives a run every core when the others are idle and one under load; on GPUs,
  each worker owns one. A worker that replaces a dead one takes the dead one's core or GPU.
- SIGTERM: gunicorn stops accepting, lets in-flight requests finish (up to the timeout),
  closes idle keep-alive connections at once, and exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.errors import AppImportError, HaltServer

from earthseg.contracts.model_card import read_model_card
from earthseg.contracts.serving import DEFAULT_ACCEPT_ENV
from earthseg.errors import InputError
from earthseg.gpu.doctor import startup_check
from earthseg.gpu.startup import allow_cpu, check_providers
from earthseg.serve.artifact import OnnxModel
from earthseg.serve.cores import CoreSlots
from earthseg.serve.settings import ServerSettings, available_cores

log = logging.getLogger("earthseg.serve")

THREADS_PER_WORKER = 16  # requests a worker holds at once; /ping needs one free
KEEPALIVE_S = 75  # longer than the idle timeout of the load balancers in front
LOG_FORMAT = "[%(asctime)s +0000] [%(process)d] [%(levelname)s] %(message)s"  # as gunicorn's


class ModelServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code from `ServerSettings` rather than a config file."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._gpu: int | None = None
        self._cores: CoreSlots | None = None
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        config: dict[str, Any] = {
            "bind": [f"0.0.0.0:{settings.port}"],
            "workers": settings.workers,
            "worker_class": "earthseg.serve.worker.ServeWorker",  # gthread, stops promptly
            "threads": THREADS_PER_WORKER,
            "timeout": settings.timeout_s,
            "graceful_timeout": settings.timeout_s,
            "keepalive": KEEPALIVE_S,
            "preload_app": False,
            "proc_name": "earthseg-serve",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "pre_fork": self._pre_fork,
            "post_fork": self._post_fork,
            "on_exit": self._on_exit,
            "control_socket_disable": True,  # gunicornc's socket: nothing here uses it
        }
        for key, value in config.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """In each worker: load the model, then hand gunicorn the app that serves it."""
        from earthseg.serve.app import create_app
        from earthseg.serve.predictor import Predictor

        start = time.perf_counter()
        try:
            model = OnnxModel(self.settings.model_dir, gpu=self._gpu, cores=self._cores)
        except InputError as error:
            # gunicorn stops the whole server on this error: a worker that cannot load its
            # model would only fail again.
            raise AppImportError(f"earthseg serve: error: {error}") from None
        if self._gpu is not None:
            fallback = check_providers(
                model.providers, gpu=self._gpu, allow_cpu=allow_cpu(), what="the model"
            )
            if fallback is not None:  # stops the server, as a model that cannot load does
                raise AppImportError(f"earthseg serve: error: {fallback}")
        log.info(
            "earthseg serve: worker %d ready: model loaded in %.2f s on %s",
            os.getpid(),
            time.perf_counter() - start,
            model.providers[0],
        )
        return create_app(Predictor(model), self.settings)

    def run(self) -> None:
        settings = self.settings
        cores = available_cores()
        if settings.gpus == 0:
            self._cores = CoreSlots(Path(tempfile.mkdtemp(prefix="earthseg-cores-")), cores)
            self._cores.create()
        card = read_model_card(settings.model_dir)
        log.info(
            "earthseg serve: %d workers on port %d (%s), timeout %d s, payload up to %g MB; "
            "model %s: %dx%d tiles of %d %s bands, threshold %.3f",
            settings.workers,
            settings.port,
            f"{settings.gpus} GPUs" if settings.gpus else f"{cores} cores",
            settings.timeout_s,
            settings.max_payload_mb,
            settings.model_dir,
            *card.input.tile_size,
            card.input.bands,
            card.input.source_dtype,
            card.threshold,
        )
        try:
            super().run()
        except HaltServer as halt:  # gunicorn raises it again while halting if two workers fail
            log.error("earthseg serve: stopped: %s", halt.reason)
            sys.exit(halt.exit_status)

    def _pre_fork(self, server: Any, worker: Any) -> None:
        """In the master: the GPU or core fewest live workers have, so that a worker that
        replaces a dead one takes the dead one's (by age it could take a live one's)."""
        slots = self.settings.gpus or (len(self._cores.paths) if self._cores else 1)
        taken = Counter(getattr(other, "earthseg_slot", 0) for other in server.WORKERS.values())
        worker.earthseg_slot = min(range(slots), key=lambda slot: taken[slot])

    def _post_fork(self, server: Any, worker: Any) -> None:
        """Give each worker its own GPU, or its own core to fall back on under load."""
        if self.settings.gpus:
            self._gpu = worker.earthseg_slot
        elif self._cores is not None:
            self._cores.home = worker.earthseg_slot

    def _on_exit(self, server: Any) -> None:
        if self._cores is not None:
            shutil.rmtree(self._cores.paths[0].parent, ignore_errors=True)


def serve(model_dir: Path | None = None) -> None:
    """Run the model server until SIGTERM; a bad setting or model ends it with the reason."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.Formatter.converter = time.gmtime  # the +0000 above
    diagnosis = startup_check("the serve image")  # refuses with the reason
    log.info("earthseg serve: %s", diagnosis.verdict.summary)
    gpus = diagnosis.gpus if diagnosis.verdict.device == "gpu" else 0
    settings = ServerSettings.from_environment(model_dir, gpus)
    from earthseg.serve.encoders import ENCODERS

    if settings.default_accept is not None and settings.default_accept not in ENCODERS:
        raise InputError(
            DEFAULT_ACCEPT_ENV,
            f"is {settings.default_accept!r}, a type this server does not answer in",
            f"set one of {', '.join(ENCODERS)}, or unset it",
        )
    # Imported once here, before the fork, so that workers start without importing them.
    # Not onnxruntime: its threads do not survive a fork (workers abort at exit).
    import earthseg.serve.app  # noqa: F401

    ModelServer(settings).run()
