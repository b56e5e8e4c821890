"""`earthseg invoke`: a whole scene through a SageMaker endpoint (sagemaker-runtime).

InvokeEndpoint takes at most 6 MB per request (4 MB on serverless endpoints), so scenes
go in the same blended chunks as `earthseg predict --url` (earthseg.serve.client): only
the transport differs. Requests are signed HTTPS calls by boto3, which also retries
throttling and transient errors.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from earthseg.aws.session import call
from earthseg.contracts.serving import DEFAULT_MAX_PAYLOAD_MB
from earthseg.errors import InputError
from earthseg.serve.client import PROBABILITY_ATTRIBUTE, REQUEST_TIMEOUT_S
from earthseg.serve.decoders import NPY
from earthseg.serve.scene import RemoteScene

RETRIES = {"max_attempts": 5, "mode": "standard"}


class EndpointTransport:
    """Requests to a model server behind a SageMaker real-time or serverless endpoint."""

    def __init__(self, aws: boto3.Session, endpoint: str) -> None:
        self.endpoint = endpoint
        self.runtime = aws.client(
            "sagemaker-runtime",
            config=Config(read_timeout=REQUEST_TIMEOUT_S, retries=RETRIES),  # type: ignore[arg-type]
        )

    def send(self, body: bytes) -> tuple[bytes, str | None]:
        try:
            response = call(
                self.runtime,
                "invoke_endpoint",
                EndpointName=self.endpoint,
                Body=body,
                ContentType=NPY,
                Accept=NPY,
                CustomAttributes=PROBABILITY_ATTRIBUTE,
            )
        except ClientError as error:
            raise _endpoint_error(self.endpoint, error) from None
        return response["Body"].read(), response.get("CustomAttributes")


def invoke_scene(
    aws: boto3.Session,
    endpoint: str,
    scene: Path,
    threshold: float | None = None,
    max_payload_mb: float = DEFAULT_MAX_PAYLOAD_MB,
) -> RemoteScene:
    """A scene GeoTIFF through `endpoint`, in chunks under the payload limit, by rows."""
    return RemoteScene(EndpointTransport(aws, endpoint), scene, threshold, max_payload_mb)


def _endpoint_error(endpoint: str, error: ClientError) -> InputError:
    """What went wrong, from the runtime's error or the container's own answer."""
    details = error.response.get("Error", {})
    code = details.get("Code", "")
    message = details.get("Message", str(error))
    if code == "ModelError":  # the container answered with an error status
        status = error.response.get("OriginalStatusCode", "")
        original = error.response.get("OriginalMessage") or message
        return InputError(
            f"endpoint {endpoint}",
            f"the model server answered {status}: {original}",
            "change the request as the message says, or read the endpoint's CloudWatch log "
            f"(/aws/sagemaker/Endpoints/{endpoint})",
        )
    if code == "ValidationError" and "not found" in message:
        return InputError(
            f"endpoint {endpoint}",
            f"does not exist in this account and region ({message})",
            "check --endpoint and AWS_REGION, or deploy one with `earthseg deploy`",
        )
    if code == "ValidationError" and "payload" in message.lower():
        return InputError(
            f"endpoint {endpoint}",
            f"refused the request size ({message})",
            "lower --max-payload-mb (4 for serverless endpoints)",
        )
    return InputError(
        f"endpoint {endpoint}",
        f"InvokeEndpoint failed: {code}: {message}",
        "check that the endpoint is InService (`aws sagemaker describe-endpoint`) and retry",
    )
