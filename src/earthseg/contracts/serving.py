"""The model server's environment, as SageMaker sets it for a serving container.

The variables are SageMaker's own (the sagemaker-inference toolkit reads the same names;
a test holds them equal). The serve image reads them (earthseg.serve.settings); launchers
set them through `server_environment`: deploy, the pipeline's backends, local containers.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from earthseg.contracts.opt_ml import MODEL, in_container
from earthseg.validation import Integer, Options

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
# What GeoTIFF and PNG answers hold when a request does not say (custom attribute output=):
# "mask" or "probability". Batch Transform and asynchronous endpoints set it, as their
# requests carry no custom attributes.
OUTPUT_ENV = "EARTHSEG_OUTPUT"
TIFF: Final = "image/tiff"  # whole scenes in and out (GeoTIFF)
GEOJSON: Final = "application/geo+json"  # a mask's polygons
DEFAULT_MAX_PAYLOAD_MB = 6.0  # SageMaker real-time endpoints refuse larger bodies anyway
MB = 1024 * 1024  # SageMaker's megabyte, of payload limits
DEFAULT_TIMEOUT_S = 60
TRANSFORM_MAX_PAYLOAD_MB = 100  # Batch Transform's largest record
ASYNC_MAX_PAYLOAD_MB = 1024  # an asynchronous endpoint's largest input (1 GB)
MODEL_DIR = in_container(MODEL)  # where SageMaker unpacks model.tar.gz


def server_environment(
    *, port: int | None = None, workers: int | None = None, timeout_s: int | None = None
) -> dict[str, str]:
    """The variables that ask a serving container for these settings (None: its default)."""
    settings = ((PORT_ENV, port), (WORKERS_ENV, workers), (TIMEOUT_ENV, timeout_s))
    return {name: str(value) for name, value in settings if value is not None}


class ServerOptions(Options):
    """What a launcher may ask of the model server (None: its default)."""

    workers: Integer | None = Field(None, ge=1, description=f"model server workers ({WORKERS_ENV})")
    timeout: Integer | None = Field(
        None,
        ge=1,
        description=f"seconds per prediction ({TIMEOUT_ENV}, default {DEFAULT_TIMEOUT_S})",
    )

    def environment(self) -> dict[str, str]:
        return server_environment(workers=self.workers, timeout_s=self.timeout)
