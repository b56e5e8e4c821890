"""SageMaker's serving contract as settings: port, workers, timeout, payload limit, model.

The variables are SageMaker's own, read through the sagemaker-inference toolkit where it
reads them; the defaults are what SageMaker documents (port 8080, 60 s, 6 MB) and one
worker per core on CPU or per GPU, each worker owning its device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sagemaker_inference import environment as toolkit_environment

from earthseg.contracts.opt_ml import MODEL, base_dir
from earthseg.contracts.serving import (
    DEFAULT_ACCEPT_ENV,
    DEFAULT_MAX_PAYLOAD_MB,
    MAX_PAYLOAD_ENV,
    MB,
    OUTPUT_ENV,
    PORT_ENV,
    TIMEOUT_ENV,
    WORKERS_ENV,
)
from earthseg.errors import InputError
from earthseg.serve.attributes import OUTPUTS, Output


@dataclass(frozen=True)
class ServerSettings:
    """How the model server runs; `from_environment` reads them the way SageMaker sets them."""

    model_dir: Path
    port: int
    workers: int
    timeout_s: int
    max_payload_mb: float
    gpus: int
    default_accept: str | None  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, when set
    default_output: Output | None = None  # EARTHSEG_OUTPUT: what GeoTIFF/PNG answers hold

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * MB)

    @classmethod
    def from_environment(cls, model_dir: Path | None = None, gpus: int = 0) -> ServerSettings:
        """Settings from SageMaker's variables; a bad value names the variable and the fix.
        `gpus`: the GPUs to serve on, as the start-up check decided (earthseg.gpu.doctor)."""
        try:
            toolkit = toolkit_environment.Environment()
        except ValueError as error:  # the toolkit int()s the timeout
            raise InputError(
                TIMEOUT_ENV, f"is not a whole number of seconds ({error})", "set e.g. 60"
            ) from None
        workers_default = gpus or available_cores()
        return cls(
            model_dir=model_dir or base_dir() / MODEL,
            port=_integer(PORT_ENV, toolkit.inference_http_port, 1, 65535),
            workers=_integer(WORKERS_ENV, toolkit.model_server_workers or workers_default, 1, 512),
            timeout_s=_positive(TIMEOUT_ENV, toolkit.model_server_timeout),
            max_payload_mb=_megabytes(os.environ.get(MAX_PAYLOAD_ENV)),
            gpus=gpus,
            default_accept=os.environ.get(DEFAULT_ACCEPT_ENV) or None,
            default_output=_output(os.environ.get(OUTPUT_ENV)),
        )


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0))


def _integer(name: str, value: str | int, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise InputError(name, f"is {value!r}", f"set a whole number from {low} to {high}")
    return number


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise InputError(name, f"is {value}", "set a positive number of seconds, e.g. 60")
    return value


def _megabytes(value: str | None) -> float:
    if value is None:
        return DEFAULT_MAX_PAYLOAD_MB
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = 0.0
    if not megabytes > 0:
        raise InputError(MAX_PAYLOAD_ENV, f"is {value!r}", "set a positive number of MB, e.g. 6")
    return megabytes


def _output(value: str | None) -> Output | None:
    if not value:
        return None
    for output in OUTPUTS:
        if value.strip().lower() == output:
            return output
    raise InputError(OUTPUT_ENV, f"is {value!r}", f"set one of {', '.join(OUTPUTS)}, or unset it")
