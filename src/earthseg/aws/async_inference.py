"""Asynchronous SageMaker endpoints: whole scenes through S3, with no 6 MB limit and no
60 s budget.

A scene goes to S3 whole (boto3's managed transfer, multipart when large), then through
sagemaker-runtime's InvokeEndpointAsync by reference; SageMaker queues it, hands the body
to the container, and writes the answer to the OutputLocation (or the container's error to
the FailureLocation) it named at once. The client waits for either object.

Names and limits, as botocore's service models state them (botocore/data/sagemaker/
2017-07-24 and sagemaker-runtime/2017-05-13, service-2.json):
- CreateEndpointConfig `AsyncInferenceConfig`: `OutputConfig` (required) with
  `S3OutputPath` and `S3FailurePath` (DestinationS3Uri, at most 512 characters) and
  `ClientConfig.MaxConcurrentInvocationsPerInstance` (1-1000; SageMaker picks one when
  absent); `OutputConfig.KmsKeyId` encrypts the answers and failures. SNS topics
  (`OutputConfig.NotificationConfig`) are not used.
- InvokeEndpointAsync: `EndpointName`, `InputLocation` (an s3:// URI, at most 1024
  characters), `ContentType`, `Accept`, `CustomAttributes` (at most 1024 ASCII
  characters), `InferenceId` (1-64 printable characters), `InvocationTimeoutSeconds`
  (1-3600, default 900), `RequestTTLSeconds` (60-21600, default 21600: time in the queue);
  it answers `OutputLocation`, `FailureLocation` and `InferenceId`.
The 1 GB input limit (contracts.serving.ASYNC_MAX_PAYLOAD_MB) is SageMaker's documented
quota for asynchronous inference, not part of the service model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws.resources import (
    DEFAULT_WAIT_MINUTES,
    MAX_INVOCATION_TIMEOUT_S,
    AsyncInvocation,
    AsyncOptions,
)
from earthseg.aws.s3 import (
    S3Uri,
    check_bucket,
    default_bucket,
    download_file,
    parse_s3_uri,
    upload_file,
)
from earthseg.aws.security import NO_SECURITY, Security
from earthseg.aws.session import call
from earthseg.contracts.serving import (
    ASYNC_MAX_PAYLOAD_MB,
    MAX_PAYLOAD_ENV,
    MB,
    OUTPUT_ENV,
    TIMEOUT_ENV,
)
from earthseg.errors import InputError
from earthseg.serve.client import PROBABILITY_ATTRIBUTE
from earthseg.serve.decoders import TIFF
from earthseg.serve.geo import THRESHOLD_TAG, Grid, describe
from earthseg.serve.scene import ProbabilityScene, scene_grid

# Default folders: s3://<default bucket>/earthseg/async/<endpoint>/{input,output,failures}
ASYNC_PREFIX = "earthseg/async"
POLL_S = 2.0  # first wait between looks for the answer ...
MAX_POLL_S = 20.0  # ... growing by BACKOFF up to this
BACKOFF = 1.5
FAILURE_CHARS = 2000  # of a failure message shown


def async_environment(options: AsyncOptions) -> dict[str, str]:
    """The model server's environment on an asynchronous endpoint: its timeout is the
    invocation's (not the real-time 60 s), its body limit SageMaker's 1 GB, and GeoTIFF
    answers hold probabilities unless a request asks otherwise."""
    return {
        TIMEOUT_ENV: str(options.invocation_timeout_s),
        MAX_PAYLOAD_ENV: str(ASYNC_MAX_PAYLOAD_MB),
        OUTPUT_ENV: "probability",
    }


def async_inference_config(
    session: boto3.Session,
    options: AsyncOptions,
    endpoint: str,
    security: Security = NO_SECURITY,
) -> dict[str, Any]:
    """CreateEndpointConfig's `AsyncInferenceConfig` for `endpoint`: the folders given
    (their buckets checked), else folders of the endpoint in SageMaker's default bucket;
    what SageMaker writes there encrypted under the `security`'s KMS key."""
    home: S3Uri | None = None
    paths: dict[str, str] = {}
    for key, given, flag, default in (
        ("S3OutputPath", options.output_path, "--output-path", "output"),
        ("S3FailurePath", options.failure_path, "--failure-path", "failures"),
    ):
        if given is None:
            home = home or default_bucket(session).child(ASYNC_PREFIX, endpoint)
            paths[key] = str(home.child(default))
            continue
        folder = parse_s3_uri(given, flag)
        check_bucket(session, folder, flag)
        paths[key] = str(folder)
    return {
        "OutputConfig": {**paths, **security.kms("KmsKeyId")},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": options.max_concurrent_invocations},
    }


def invoke_async(
    session: boto3.Session,
    endpoint: str,
    scene: Path,
    target: Path,
    *,
    accept: str = TIFF,
    custom_attributes: str | None = PROBABILITY_ATTRIBUTE,
    input_location: str | None = None,
    invocation_timeout_s: int = MAX_INVOCATION_TIMEOUT_S,
    timeout_s: float = DEFAULT_WAIT_MINUTES * 60,
    poll_s: float | None = None,
    keep_input: bool = False,
    encryption: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Send the scene GeoTIFF `scene` through the asynchronous `endpoint` and write its
    answer to `target` (which appears only once complete); return `target`.

    The scene is uploaded into the S3 folder `input_location` (default
    `s3://<default bucket>/earthseg/async/<endpoint>/input`) as `<inference id>-<name>`
    and removed once answered, unless `keep_input`; `encryption`: its server-side
    encryption (`Security.s3_encryption`). The answer stays in S3. A failure
    written by the endpoint, no answer within `timeout_s` seconds, or Ctrl-C while waiting
    is an InputError saying where the answer will appear.
    """
    scene = Path(scene)
    _checked_scene(scene)
    folder = (
        default_bucket(session).child(ASYNC_PREFIX, endpoint, "input")
        if input_location is None
        else parse_s3_uri(input_location, "input location")
    )
    inference_id = uuid.uuid4().hex
    source = folder.child(f"{inference_id}-{scene.name}")
    upload_file(session, scene, source, encryption=encryption)
    request: dict[str, Any] = {
        "EndpointName": endpoint,
        "InputLocation": str(source),
        "ContentType": TIFF,
        "Accept": accept,
        "InvocationTimeoutSeconds": invocation_timeout_s,
        "InferenceId": inference_id,
    }
    if custom_attributes:
        request["CustomAttributes"] = custom_attributes
    try:
        answer = call(session.client("sagemaker-runtime"), "invoke_endpoint_async", **request)
    except ClientError as error:
        _remove(session, source)
        raise _invoke_error(endpoint, error) from None
    output = parse_s3_uri(answer["OutputLocation"], "OutputLocation")
    failure = answer.get("FailureLocation")
    places = (output, *([parse_s3_uri(failure, "FailureLocation")] if failure else []))
    say(f"{scene.name}: queued on {endpoint} as {inference_id}; the answer goes to {output}")
    awaited = Awaited(endpoint, scene, inference_id, source, places)
    found = awaited.wait(session, timeout_s, POLL_S if poll_s is None else poll_s)
    if not keep_input:
        _remove(session, source)
    if found != output:
        raise awaited.failed(session, found)
    return download_file(session, str(output), Path(target))


@dataclasses.dataclass(frozen=True)
class Awaited:
    """A request SageMaker has queued: where its answer or failure will appear."""

    endpoint: str
    scene: Path
    inference_id: str
    source: S3Uri  # the uploaded scene
    places: tuple[S3Uri, ...]  # the OutputLocation, then the FailureLocation (if any)

    def wait(self, session: boto3.Session, timeout_s: float, poll_s: float) -> S3Uri:
        """The first of `places` to hold an object, looking with a growing pause."""
        client = session.client("s3")
        deadline = time.monotonic() + timeout_s
        pause = poll_s
        try:
            while True:
                for place in self.places:
                    if _exists(client, place):
                        return place
                left = deadline - time.monotonic()
                if left <= 0:
                    raise InputError(
                        f"endpoint {self.endpoint}",
                        f"gave no answer for {self.scene} within {timeout_s:g} s "
                        f"(inference {self.inference_id}; it may still be queued or at work)",
                        f"{self._later()}, or wait longer (--wait-minutes)",
                    )
                time.sleep(min(pause, left))
                pause = min(pause * BACKOFF, MAX_POLL_S)
        except KeyboardInterrupt:
            raise InputError(
                f"endpoint {self.endpoint}",
                f"goes on with {self.scene} in SageMaker: only the waiting was interrupted",
                self._later(),
            ) from None

    def failed(self, session: boto3.Session, failure: S3Uri) -> InputError:
        """The endpoint's failure message, as an error naming the scene and the fix."""
        body = call(session.client("s3"), "get_object", Bucket=failure.bucket, Key=failure.key)
        message = _message(body["Body"].read())
        return InputError(
            f"endpoint {self.endpoint}",
            f"could not predict {self.scene}: {message}",
            "change the scene or the request as the message says, or read the model "
            f"server's log (earthseg logs --endpoint {self.endpoint}; CloudWatch "
            f"/aws/sagemaker/Endpoints/{self.endpoint}); the failure is kept at {failure}",
        )

    def _later(self) -> str:
        output, *failure = self.places
        failed = f" (a failure at {failure[0]})" if failure else ""
        return (
            f"its answer will appear at {output}{failed}: fetch it with `aws s3 cp {output} .`; "
            f"remove the scene it reads, {self.source}, once it has"
        )


@contextlib.contextmanager
def async_scene(
    session: boto3.Session,
    endpoint: str,
    scene: Path,
    threshold: float | None = None,
    invocation: AsyncInvocation | None = None,
    work_dir: Path | None = None,
    say: Callable[[str], None] = print,
    encryption: Mapping[str, str] | None = None,
) -> Iterator[ProbabilityScene]:
    """The scene GeoTIFF `scene` through the asynchronous `endpoint` (uploaded with
    `encryption`, as `invoke_async` takes it): its probabilities (read by rows from the
    answer, a temporary file in `work_dir`, default the system's temporary folder, for as
    long as the context lasts), thresholded at `threshold` or the threshold the answer
    carries."""
    invocation = invocation or AsyncInvocation()
    grid = _checked_scene(scene)
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".earthseg-async-") as folder:
        answer = invoke_async(
            session,
            endpoint,
            scene,
            Path(folder) / "probability.tif",
            invocation_timeout_s=invocation.invocation_timeout_s,
            timeout_s=invocation.wait_minutes * 60,
            encryption=encryption,
            say=say,
        )
        check_answer(answer, grid, threshold, f"endpoint {endpoint}")
        yield ProbabilityScene(answer, threshold)


def check_answer(answer: Path, expected: Grid, threshold: float | None, source: str) -> None:
    """Refuse, naming `source` (who answered), an answer that is not a float32
    probability GeoTIFF on the `expected` grid (the scene's), or that carries no
    threshold when `threshold` is None."""
    import rasterio
    from rasterio.errors import RasterioIOError

    fix = "serve the earthseg inference image on this endpoint (earthseg deploy --async)"
    try:
        with rasterio.open(answer) as dataset:
            grid, count, dtype = describe(dataset), dataset.count, dataset.dtypes[0]
            carried = dataset.tags().get(THRESHOLD_TAG)
    except RasterioIOError as error:
        raise InputError(
            source, f"answered something that is not a GeoTIFF ({error})", fix
        ) from None
    if (count, dtype) != (1, "float32"):
        raise InputError(
            source, f"answered a {count}-band {dtype} raster, not float32 probabilities", fix
        )
    if (grid.width, grid.height, grid.transform, grid.crs) != (
        expected.width,
        expected.height,
        expected.transform,
        expected.crs,
    ):
        raise InputError(
            source,
            f"answered a {grid.width}x{grid.height} raster off the grid of the "
            f"{expected.width}x{expected.height} scene",
            fix,
        )
    if threshold is None and carried is None:
        raise InputError(
            source,
            f"answered probabilities without a decision threshold ({THRESHOLD_TAG})",
            "pass --threshold",
        )


def _checked_scene(scene: Path) -> Grid:
    """The scene's grid; a scene too large or not a raster is refused before it is sent."""
    if not scene.is_file():
        raise InputError(scene, "does not exist", "give a scene GeoTIFF")
    size = scene.stat().st_size
    if size > ASYNC_MAX_PAYLOAD_MB * MB:
        raise InputError(
            scene,
            f"is {size / MB:,.0f} MB, over the {ASYNC_MAX_PAYLOAD_MB} MB an asynchronous "
            "endpoint takes",
            "cut it into parts (e.g. gdal_translate -srcwin) or compress it "
            "(gdal_translate -co COMPRESS=DEFLATE)",
        )
    return scene_grid(scene)


def _exists(client: Any, place: S3Uri) -> bool:
    try:
        call(client, "head_object", Bucket=place.bucket, Key=place.key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise InputError(
            str(place),
            f"cannot be read with these credentials ({code})",
            f"allow s3:GetObject and s3:ListBucket on bucket {place.bucket} (without "
            "ListBucket, S3 answers 403 for an answer not written yet)",
        ) from None
    return True


def _remove(session: boto3.Session, place: S3Uri) -> None:
    call(session.client("s3"), "delete_object", Bucket=place.bucket, Key=place.key)


def _message(body: bytes) -> str:
    """The `error` of a model server's JSON answer, or the text as it is, shortened."""
    text = body.decode(errors="replace").strip()
    with contextlib.suppress(ValueError, KeyError, TypeError):
        text = str(json.loads(text)["error"])
    return text if len(text) <= FAILURE_CHARS else text[:FAILURE_CHARS] + " ..."


def _invoke_error(endpoint: str, error: ClientError) -> InputError:
    details = error.response.get("Error", {})
    code, message = details.get("Code", ""), details.get("Message", str(error))
    if code == "ValidationError" and "not found" in message:
        return InputError(
            f"endpoint {endpoint}",
            f"does not exist in this account and region ({message})",
            "check --endpoint and AWS_REGION, or deploy one with `earthseg deploy --async`",
        )
    return InputError(
        f"endpoint {endpoint}",
        f"InvokeEndpointAsync failed: {code}: {message}",
        "check that it is an InService asynchronous endpoint "
        f"(`aws sagemaker describe-endpoint --endpoint-name {endpoint}`) and retry",
    )
