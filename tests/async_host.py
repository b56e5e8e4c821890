"""A stand-in for SageMaker's asynchronous inference host, between moto and a real model
server: what turns an InvokeEndpointAsync into an answer in S3.

What moto 5.2.5 does with InvokeEndpointAsync (moto/sagemakerruntime): it answers at once
with an OutputLocation and a FailureLocation in a new bucket of its own
(`s3://sagemaker-output-<uuid>/response.json`, `.../failure.json`) and at once writes a
canned body to one of them: `{"default": "response"}`, or the next result queued through
`/moto-api/static/sagemaker/async-endpoint-results`. It does not check that the endpoint
exists or is asynchronous, never reads the InputLocation, passes on none of ContentType,
Accept, CustomAttributes or InvocationTimeoutSeconds, and ignores the endpoint config's
AsyncInferenceConfig paths.

This host keeps moto's answer (its locations and InferenceId) and does what SageMaker's
host does: it removes moto's canned body before the caller can see it, then, in a thread,
reads the input object from moto's S3, POSTs it to the model server's /invocations with
the request's Content-Type, Accept and X-Amzn-SageMaker-Custom-Attributes, and writes a
2xx answer to the OutputLocation, anything else (the server's error body) to the
FailureLocation. Without a model server (`url=None`) requests are recorded and never
answered, as when they wait in SageMaker's queue.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
HEADERS = {  # InvokeEndpointAsync's request headers (botocore's sagemaker-runtime model)
    "content_type": "X-Amzn-SageMaker-Content-Type",
    "accept": "X-Amzn-SageMaker-Accept",
    "custom_attributes": ATTRIBUTES,
    "input_location": "X-Amzn-SageMaker-InputLocation",
    "invocation_timeout": "X-Amzn-SageMaker-InvocationTimeoutSeconds",
}


@dataclass
class AsyncRequest:
    """One InvokeEndpointAsync as moto received and answered it, and what became of it."""

    endpoint: str
    headers: dict[str, str | None]  # by the keys of HEADERS
    inference_id: str
    output_location: str
    failure_location: str
    input_sha256: str = ""  # of the input object, when the host read it
    input_bytes: int = 0
    status: int = 0  # the model server's


@dataclass
class AsyncHost:
    """The requests seen, in order; the model server they go to (None: none answered)."""

    emulator: Emulator
    url: str | None
    requests: list[AsyncRequest] = field(default_factory=list)
    work: queue.Queue[AsyncRequest | None] = field(default_factory=queue.Queue)

    def received(self, response: Any, moto_answer: tuple[int, dict[str, str], str]) -> None:
        """Record a request moto answered, remove moto's canned body, queue the work."""
        from moto.s3.models import s3_backends

        _, headers, body = moto_answer
        request = AsyncRequest(
            endpoint=response.path.split("/")[2],
            headers={key: response.headers.get(name) for key, name in HEADERS.items()},
            inference_id=json.loads(body)["InferenceId"],
            output_location=headers["X-Amzn-SageMaker-OutputLocation"],
            failure_location=headers["X-Amzn-SageMaker-FailureLocation"],
        )
        backend = response.sagemakerruntime_backend
        s3 = s3_backends[backend.account_id][backend.partition]
        for location in (request.output_location, request.failure_location):
            bucket, key = _split(location)
            s3.delete_object(bucket, key)
        self.requests.append(request)
        if self.url is not None:
            self.work.put(request)

    def serve(self) -> None:
        """Answer queued requests until told to stop (None)."""
        s3 = self.emulator.client("s3")
        while (request := self.work.get()) is not None:
            try:
                place, body, content_type = self._answer(s3, request)
            except Exception as error:  # as SageMaker does when it cannot reach the model
                place, body = request.failure_location, f"{type(error).__name__}: {error}".encode()
                content_type = "text/plain"
            bucket, key = _split(place)
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def _answer(self, s3: Any, request: AsyncRequest) -> tuple[str, bytes, str]:
        """Where the model server's answer goes, the answer, and its content type."""
        bucket, key = _split(request.headers["input_location"] or "")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        request.input_sha256 = hashlib.sha256(body).hexdigest()
        request.input_bytes = len(body)
        forwarded = {"Content-Type": request.headers["content_type"] or ""}
        forwarded["Accept"] = request.headers["accept"] or "*/*"
        if request.headers["custom_attributes"]:
            forwarded[ATTRIBUTES] = request.headers["custom_attributes"] or ""
        answer = requests.post(
            f"{self.url}/invocations",
            data=body,
            headers=forwarded,
            timeout=float(request.headers["invocation_timeout"] or 900),
        )
        request.status = answer.status_code
        place = request.output_location if answer.ok else request.failure_location
        content_type = answer.headers.get("Content-Type", "application/octet-stream")
        return place, answer.content, content_type


@contextmanager
def async_host(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, url: str | None
) -> Iterator[AsyncHost]:
    """moto's InvokeEndpointAsync, answered by the model server at `url` (None: never)."""
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    host = AsyncHost(emulator, url)
    original = SageMakerRuntimeResponse.invoke_endpoint_async

    def hosted(response: SageMakerRuntimeResponse) -> Any:
        answer = original(response)
        host.received(response, answer)
        return answer

    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint_async", hosted)
    worker = threading.Thread(target=host.serve, daemon=True)
    worker.start()
    try:
        yield host
    finally:
        host.work.put(None)
        worker.join(timeout=60)


def _split(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key
