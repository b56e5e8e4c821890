"""A stand-in for the SageMaker Runtime service in front of real model servers.

moto answers InvokeEndpoint with canned data, which proves nothing about chunking or
headers. This front speaks the runtime's REST protocol instead
(`POST /endpoints/<name>/invocations`, custom attributes in
`X-Amzn-SageMaker-Custom-Attributes`, a container's error status as a 424 `ModelError`
with OriginalStatusCode/OriginalMessage, an unknown endpoint as a 400 ValidationError,
the 6 MB body limit) and forwards each request to a real serve container, recording
what arrived. boto3 reaches it through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
LIMIT_BYTES = 6 * 1024 * 1024
LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints"


@dataclass
class RuntimeFront:
    """Endpoint name -> model server URL ("*": any name, for endpoints named at deploy
    time); every request seen, in order."""

    endpoints: dict[str, str]
    url: str = ""
    requests: list[dict[str, object]] = field(default_factory=list)

    def __call__(self, environ: dict, start_response: object) -> object:
        request = Request(environ)
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if (
            request.method != "POST"
            or len(parts) != 3
            or parts[::2] != ["endpoints", "invocations"]
        ):
            return _error(404, "UnknownOperationException", f"no operation at {request.path}")
        name, body = parts[1], request.get_data()
        self.requests.append(
            {
                "endpoint": name,
                "bytes": len(body),
                "content_type": request.headers.get("Content-Type"),
                "accept": request.headers.get("Accept"),
                "attributes": request.headers.get(ATTRIBUTES),
                "signed": request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"),
            }
        )
        target = self.endpoints.get(name, self.endpoints.get("*"))
        if target is None:
            return _error(
                400, "ValidationError", f"Endpoint {name} of account 123456789012 not found."
            )
        if len(body) > LIMIT_BYTES:
            return _error(400, "ValidationError", "Request payload size exceeds 6 MB limit")
        headers = {
            "Content-Type": request.headers.get("Content-Type", ""),
            "Accept": request.headers.get("Accept", "*/*"),
        }
        if request.headers.get(ATTRIBUTES):
            headers[ATTRIBUTES] = request.headers[ATTRIBUTES]
        answer = requests.post(f"{target}/invocations", data=body, headers=headers, timeout=120)
        if answer.status_code != 200:
            return Response(
                json.dumps(
                    {
                        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
                        "OriginalStatusCode": answer.status_code,
                        "OriginalMessage": answer.text,
                        "LogStreamArn": f"{LOG_GROUP}/{name}",
                        "message": f"Received client error ({answer.status_code}) from primary",
                    }
                ),
                status=424,
                headers={"x-amzn-ErrorType": "ModelError", "Content-Type": "application/json"},
            )
        reply = {
            "Content-Type": answer.headers.get("Content-Type", ""),
            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
        }
        if answer.headers.get(ATTRIBUTES):
            reply[ATTRIBUTES] = answer.headers[ATTRIBUTES]
        return Response(answer.content, status=200, headers=reply)


def _error(status: int, kind: str, message: str) -> Response:
    return Response(
        json.dumps({"message": message}),
        status=status,
        headers={"x-amzn-ErrorType": kind, "Content-Type": "application/json"},
    )


@contextmanager
def runtime_front(endpoints: dict[str, str]) -> Iterator[RuntimeFront]:
    """The front on a free loopback port, for as long as the context lasts."""
    front = RuntimeFront(endpoints)
    server = make_server("127.0.0.1", 0, front, threaded=True)
    front.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield front
    finally:
        server.shutdown()
        thread.join()
