"""moto in server mode as the AWS API the launcher talks to, over real HTTP on loopback.

Every boto3 client (the launcher's own and those the SageMaker SDK makes on its session)
reaches it through AWS_ENDPOINT_URL. Two things moto cannot show through its describe
calls are read from what it received instead: its recorder keeps each request as it
arrived (moto answers DescribeTrainingJob with fixed MetricDefinitions and keeps no
Environment, and DescribeProcessingJob has no ProcessingResources or Environment).
Jobs and endpoints are born finished in moto; `Emulator.script_states` makes its describe
calls walk through states first, as a real job would, to show following and failure.

Every request the launcher sends while a test holds `aws_env` is also mapped to the IAM
action it needs and kept on the session's `Emulator` (`actions`), for
tests/test_iam_policy.py to check against the caller's policy: the tests' own setup calls
(made through `Emulator.client`, whose User-Agent says so) are left out.

tests/conftest.py loads it as a plugin: every test module can take its fixtures.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import boto3
import botocore.session
import pytest
import requests
from botocore.config import Config

REGION = "us-east-1"
SDK_CONFIG = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)
SETUP_AGENT = "earthseg-test-setup"  # in the User-Agent of the tests' own clients
# The service a request was signed for (its SigV4 credential scope): IAM's action prefix.
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
# REST APIs by the service they are signed for: their operations by method and path.
REST_SERVICES = {"s3": "s3", "sagemaker": "sagemaker-runtime"}
FREE_ACTIONS = {"sts:GetCallerIdentity"}  # needs no permission: never denied
# S3 operations whose IAM action is not s3:<operation> (the Service Authorization Reference).
S3_ACTIONS = {
    "HeadObject": ("s3:GetObject",),
    "GetObjectAttributes": ("s3:GetObject",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"),
    "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "ListParts": ("s3:ListMultipartUploadParts",),
    "DeleteObjects": ("s3:DeleteObject",),
    "HeadBucket": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListBuckets": ("s3:ListAllMyBuckets",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "GetBucketEncryption": ("s3:GetEncryptionConfiguration",),
    "PutBucketEncryption": ("s3:PutEncryptionConfiguration",),
    "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration",),
    "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration",),
}


@dataclass(frozen=True)
class Emulator:
    """A running moto server: its URL, clients on it, and what it received."""

    url: str
    # IAM action -> one request that needed it (and the test that sent it), over the
    # session: what the launcher asked of AWS (`collect_actions`).
    actions: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def client(self, service: str) -> Any:
        """A client for the tests' own setup and checks: its requests are marked, and
        left out of `actions`."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(user_agent_extra=SETUP_AGENT),
        )

    def reset(self) -> None:
        """Forget every resource and every recorded request; record from now on."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        requests.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=10)
        requests.post(f"{self.url}/moto-api/recorder/start-recording", timeout=10)

    @staticmethod
    def script_states(
        monkeypatch: pytest.MonkeyPatch, describe: str, states: list[dict[str, Any]]
    ) -> None:
        """Make moto's `describe` (e.g. "describe_training_job") answer with each of
        `states` merged into the real answer, one per call, then the last one for good."""
        from moto.sagemaker.models import SageMakerModelBackend

        original = getattr(SageMakerModelBackend, describe)
        script = itertools.chain(states, itertools.repeat(states[-1]))

        def scripted(self: SageMakerModelBackend, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {**original(self, *args, **kwargs), **next(script)}

        monkeypatch.setattr(SageMakerModelBackend, describe, scripted)

    def received(self, operation: str) -> list[dict[str, Any]]:
        """The bodies of the SageMaker `operation` requests moto received, in order."""
        bodies = []
        for entry in self.recording():
            if entry["headers"].get("X-Amz-Target") != f"SageMaker.{operation}":
                continue
            body = entry["body"]
            bodies.append(json.loads(base64.b64decode(body) if entry["body_encoded"] else body))
        return bodies

    def recording(self) -> list[dict[str, Any]]:
        """Every request moto recorded since the last reset, as it arrived.

        Read object by object, not line by line: moto's recorder writes an entry and its
        newline in two writes, so requests answered at once (a launcher and a stand-in
        host) can leave two entries on one line and an empty one after."""
        text = requests.get(f"{self.url}/moto-api/recorder/download-recording", timeout=10).text
        decoder = json.JSONDecoder()
        entries: list[dict[str, Any]] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                return entries
            entry, position = decoder.raw_decode(text, position)
            entries.append(entry)

    def collect_actions(self, test: str = "") -> None:
        """Add the IAM action of every request recorded since the last reset to `actions`,
        but those of the tests' own clients and those needing no permission; `test`
        names the test that sent them, in the examples."""
        for entry in self.recording():
            if SETUP_AGENT in _headers(entry).get("user-agent", ""):
                continue
            for action in request_actions(entry):
                if action not in FREE_ACTIONS:
                    self.actions.setdefault(action, f"{describe_request(entry)} ({test})")


def _headers(entry: dict[str, Any]) -> dict[str, str]:
    return {key.lower(): str(value) for key, value in entry["headers"].items()}


def _body(entry: dict[str, Any]) -> bytes:
    body = entry.get("body") or ""
    return base64.b64decode(body) if entry.get("body_encoded") else str(body).encode()


def describe_request(entry: dict[str, Any]) -> str:
    """A recorded request in one line: method, path and query, and what names its
    operation (X-Amz-Target, a query API's Action)."""
    url = urlsplit(entry["url"])
    line = f"{entry['method']} {url.path}" + (f"?{url.query}" if url.query else "")
    headers = _headers(entry)
    if "x-amz-target" in headers:
        line += f" X-Amz-Target: {headers['x-amz-target']}"
    action = _query_action(entry)
    return line + (f" Action={action}" if action else "")


def request_actions(entry: dict[str, Any]) -> tuple[str, ...]:
    """The IAM actions a recorded request needed (moto's recorder: method, url, headers,
    body): JSON APIs by X-Amz-Target, query APIs (STS, IAM) by their Action, REST APIs
    (S3, sagemaker-runtime) by matching method and path against botocore's service
    model, S3's operations then mapped to IAM's actions. A request none of these names
    comes back as an action no policy holds, naming what it was."""
    url = urlsplit(entry["url"])
    if url.path.startswith("/moto-api/"):
        return ()
    headers = _headers(entry)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    scope = CREDENTIAL_SCOPE.search(headers.get("authorization", "")) or CREDENTIAL_SCOPE.search(
        "Credential=" + query.get("X-Amz-Credential", "")
    )
    if scope is None:
        return (f"unsigned:{describe_request(entry)}",)
    service = scope["service"]
    if "x-amz-target" in headers:
        return (f"{service}:{headers['x-amz-target'].rpartition('.')[2]}",)
    action = _query_action(entry)
    if action:
        return (f"{service}:{action}",)
    if service in REST_SERVICES:
        operation = rest_operation(
            REST_SERVICES[service], entry["method"], unquote(url.path), query, headers
        )
        if operation is not None:
            if service == "s3":
                return S3_ACTIONS.get(operation, (f"s3:{operation}",))
            return (f"{service}:{operation}",)
    return (f"{service}:?{describe_request(entry)}",)


def _query_action(entry: dict[str, Any]) -> str | None:
    """The Action of a query-protocol request (STS, IAM), in its form body or URL."""
    if "application/x-www-form-urlencoded" in _headers(entry).get("content-type", ""):
        given = parse_qs(_body(entry).decode(errors="replace")).get("Action")
        if given:
            return given[0]
    return parse_qs(urlsplit(entry["url"]).query).get("Action", [None])[0]


@functools.cache
def _rest_operations(
    service: str,
) -> list[tuple[str, str, re.Pattern[str], dict[str, str], set[str]]]:
    """Each operation of a REST API: name, method, its path as a pattern, the query keys
    its URI fixes, and the query keys and headers it requires (lower case)."""
    model = botocore.session.get_session().get_service_model(service)
    operations = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        path, _, fixed = operation.http["requestUri"].partition("?")
        pattern = "".join(
            (".+" if part.endswith("+}") else "[^/]+") if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", path)
        )
        required = set()
        shape = operation.input_shape
        for member in shape.required_members if shape is not None else ():
            location = shape.members[member].serialization
            if location.get("location") in ("querystring", "header"):
                required.add(location["name"].lower())
        operations.append(
            (
                name,
                operation.http["method"],
                re.compile(f"^{pattern}/?$"),
                dict(parse_qsl(fixed, keep_blank_values=True)),
                required,
            )
        )
    return operations


def rest_operation(
    service: str, method: str, path: str, query: dict[str, str], headers: dict[str, str]
) -> str | None:
    """The operation of `service` (a botocore REST API) a request was: its method and
    path match, its URI's fixed query keys are there, and of those the most specific
    (the most fixed keys and required parameters present). botocore's `x-id` query
    parameter names it outright."""
    operations = _rest_operations(service)
    if query.get("x-id") in {name for name, *_ in operations}:
        return query["x-id"]
    given = {key.lower() for key in query} | set(headers)
    best: tuple[int, str] | None = None
    for name, verb, pattern, fixed, required in operations:
        if verb != method or not pattern.match(path):
            continue
        if any(key not in query or (value and query[key] != value) for key, value in fixed.items()):
            continue
        if not required <= given:
            continue
        score = len(fixed) + len(required)
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else None


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # One log line per request on stderr would mix with the commands' own stderr.
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as patch:
        # The recorder's file is fixed when moto is imported (MOTO_RECORDER_FILEPATH,
        # default ./moto_recording): keep it out of the working tree.
        patch.setattr(recorder, "_location", str(tmp_path_factory.mktemp("moto") / "recording"))
        try:
            yield Emulator(f"http://127.0.0.1:{port}")
        finally:
            server.stop()
            werkzeug.setLevel(level)


@pytest.fixture()
def aws_env(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Emulator]:
    """A fresh emulator as the only AWS this process knows: fake credentials, one region,
    no profile, no role default, the SDK's telemetry off, no waiting between polls."""
    emulator.reset()
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "SAGEMAKER_ROLE"):
        monkeypatch.delenv(variable, raising=False)
    sdk_config = tmp_path / "sagemaker-config.yaml"
    sdk_config.write_text(SDK_CONFIG)
    settings = {
        "AWS_ENDPOINT_URL": emulator.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
        # ModelTrainer checks the role with iam:SimulatePrincipalPolicy, which moto does
        # not implement (it answers 500): the SDK's documented switch skips the check.
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setattr("earthseg.aws.jobs.POLL_S", 0.0)
    yield emulator
    emulator.collect_actions(request.node.nodeid)
    requests.post(f"{emulator.url}/moto-api/recorder/stop-recording", timeout=10)
