"""Two instances training as one: SageMaker Python SDK v3 local mode with instance_count=2.

`ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)` with two instances writes a
resourceconfig.json per host (`algo-1`, `algo-2`), runs one container of the training
image per host on a Compose network where each reaches the other by its host name, and
tars the model folder the hosts share into model.tar.gz. The workers must join one
TensorFlow cluster, train in step (the same weights digest on both), and leave exactly
one model, written by the chief.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.docker.conftest import local_mode_job

pytestmark = pytest.mark.docker

HOSTS = ("algo-1", "algo-2")


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def host_lines(logs: str, host: str) -> str:
    """What one host's container printed: Compose prefixes each line with its service
    (`algo-1_1  | `, `algo-1-1  | ` in Compose v2), in colour."""
    prefix = re.compile(rf"^{re.escape(host)}[-_]1\s+\| ?(.*)$")
    lines = (prefix.match(ANSI_COLOUR.sub("", line)) for line in logs.splitlines())
    return "\n".join(found.group(1) for found in lines if found)


def test_two_instances_train_together_and_the_chief_writes_one_model(
    train_image: str, local_mode_channels: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model = local_mode_job(train_image, local_mode_channels, tmp_path, instances=len(HOSTS))
    logs = capfd.readouterr().out

    digests = {}
    for index, host in enumerate(HOSTS):
        lines = host_lines(logs, host)
        assert f"joined as worker {index} of 2, chief algo-1, replicas_in_sync=2" in lines, logs
        assert re.findall(r"^epoch=(\d+) loss=", lines, re.MULTILINE) == ["1", "2"], lines
        (digests[host],) = re.findall(r"^weights_sha256=([0-9a-f]{64}) host=", lines, re.M)
    assert digests["algo-1"] == digests["algo-2"], digests

    with tarfile.open(model) as archive:
        names = set(archive.getnames())
        card = json.load(archive.extractfile("earthseg.json"))  # type: ignore[arg-type]
    assert {"model.onnx", "earthseg.json", "1/saved_model.pb"} <= names
    assert card["training"]["instances"] == 2
    assert card["training"]["hosts"] == list(HOSTS)
    assert card["training"]["replicas"] == 2
    assert card["training"]["epochs"] == 2
