"""Whole-scene prediction against a running model server, however large the scene: a
server reached over HTTP here, or a SageMaker endpoint (earthseg.aws.invoke); the scene
streams through by rows (earthseg.serve.scene.RemoteScene).

A scene whose request or answer would exceed the server's payload limit is cut into
overlapping chunks that each fit; every chunk goes as a NumPy array and comes back as
probabilities, and the chunks are blended over their overlap exactly as the server blends
its windows (earthseg.serve.windows), so chunk edges leave no seams either. Nodata and
the grid come from the scene on disk; the decision threshold from the server's answer.
"""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

import numpy as np

from earthseg.contracts.serving import MB
from earthseg.errors import InputError
from earthseg.serve.attributes import HEADER, parse_attributes
from earthseg.serve.decoders import NPY

CHUNK_OVERLAP = 128  # pixels shared by neighbouring chunks, blended
PAYLOAD_MARGIN = 0.95  # of the limit, for the .npy header and rounding
REQUEST_TIMEOUT_S = 120.0
PROBABILITY_ATTRIBUTE = "output=probability"


class Transport(Protocol):
    """How a request reaches a model server: POST a .npy body asking for probabilities;
    return the answer and its custom attributes."""

    def send(self, body: bytes) -> tuple[bytes, str | None]: ...


class InvocationsClient:
    """Sends image arrays to a model server's /invocations, one request per image, and
    returns its probabilities, through `transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.threshold: float | None = None  # the server's, from its last answer

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, rows, cols, bands) -> (N, rows, cols) float32, one request per image."""
        return np.stack([self._one(image) for image in images])

    def _one(self, image: np.ndarray) -> np.ndarray:
        body = io.BytesIO()
        np.save(body, np.ascontiguousarray(image))
        answer, attributes = self.transport.send(body.getvalue())
        self.threshold = parse_attributes(attributes).threshold
        return np.asarray(np.load(io.BytesIO(answer), allow_pickle=False), dtype=np.float32)


class HttpTransport:
    """A model server reached over plain HTTP(S), e.g. a local container."""

    def __init__(self, url: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.url = invocations_url(url)
        self.timeout_s = timeout_s

    def send(self, body: bytes) -> tuple[bytes, str | None]:
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": NPY, "Accept": NPY, HEADER: PROBABILITY_ATTRIBUTE},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read(), response.headers.get(HEADER)
        except urllib.error.HTTPError as error:
            raise InputError(
                self.url,
                f"answered HTTP {error.code}: {_server_message(error.read())}",
                "change the request as the message says, or see the server's log",
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise InputError(
                self.url,
                f"cannot be reached ({error})",
                "start the server (`make serve-local`) or correct --url",
            ) from None


def chunk_window(dataset: Any, max_payload_mb: float) -> tuple[tuple[int, int], int]:
    """The chunk (rows, cols) a scene goes to a server in, and the chunks' overlap: the
    largest square whose request and float32 answer fit the limit, no larger than the
    scene."""
    itemsize = np.dtype(dataset.dtypes[0]).itemsize
    side = chunk_side(dataset.count * itemsize, max_payload_mb)
    chunk = (min(side, dataset.height), min(side, dataset.width))
    return chunk, min(CHUNK_OVERLAP, min(chunk) // 2)


def chunk_side(bytes_per_pixel: int, max_payload_mb: float) -> int:
    """The largest square chunk whose request and float32 answer both fit the limit."""
    per_pixel = max(bytes_per_pixel, np.dtype(np.float32).itemsize)
    return math.isqrt(int(max_payload_mb * MB * PAYLOAD_MARGIN) // per_pixel)


def invocations_url(url: str) -> str:
    """`http://host:8080` -> `http://host:8080/invocations`; a full URL stays as it is."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(url, "is not an http(s) URL", "pass e.g. --url http://127.0.0.1:8080")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/invocations")
    return urllib.parse.urlunsplit(parts)


def _server_message(body: bytes) -> str:
    """The `error` a model server put in its JSON answer, or the start of the body."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:500].decode(errors="replace")
