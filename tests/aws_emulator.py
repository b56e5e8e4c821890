"""moto in server mode as the AWS API the launcher talks to, over real HTTP on loopback.

Every boto3 client (the launcher's own and those the SageMaker SDK makes on its session)
reaches it through AWS_ENDPOINT_URL. Two things moto cannot show through its describe
calls are read from what it received instead: its recorder keeps each request as it
arrived (moto answers DescribeTrainingJob with fixed MetricDefinitions and keeps no
Environment, and DescribeProcessingJob has no ProcessingResources or Environment).
Jobs and endpoints are born finished in moto; `Emulator.script_states` makes its describe
calls walk through states first, as a real job would, to show following and failure.

tests/conftest.py loads it as a plugin: every test module can take its fixtures.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

REGION = "us-east-1"
SDK_CONFIG = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)


@dataclass(frozen=True)
class Emulator:
    """A running moto server: its URL, clients on it, and what it received."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
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
        recording = requests.get(f"{self.url}/moto-api/recorder/download-recording", timeout=10)
        bodies = []
        for line in recording.text.splitlines():
            entry = json.loads(line)
            if entry["headers"].get("X-Amz-Target") != f"SageMaker.{operation}":
                continue
            body = entry["body"]
            bodies.append(json.loads(base64.b64decode(body) if entry["body_encoded"] else body))
        return bodies


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
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
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
    requests.post(f"{emulator.url}/moto-api/recorder/stop-recording", timeout=10)
