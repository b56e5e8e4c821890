"""`docker run IMAGE doctor` in both images, as a user checks a host before paying for it:
here, with no GPU, the cpu images say so and exit 0."""

from __future__ import annotations

import json

import docker
import pytest

from tests.docker.conftest import run_container

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("role", ["serve", "train"])
def test_doctor_reports_no_gpu_and_exits_0(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, role: str
) -> None:
    image = request.getfixturevalue(f"{role}_image")
    status, stdout, stderr = run_container(docker_client, image, ["doctor", "--json"])
    assert status == 0, stdout + stderr
    diagnosis = json.loads(stdout)
    assert (diagnosis["driver"], diagnosis["gpus"]) == (None, 0)
    assert diagnosis["cuda"]["runtime"] is None and diagnosis["cuda"]["packages"] == {}
    assert diagnosis["verdict"]["ok"] and diagnosis["verdict"]["device"] == "cpu"
    # Each image asks the framework it carries: ONNX Runtime in serve, TensorFlow in train.
    if role == "serve":
        assert "CPUExecutionProvider" in diagnosis["onnxruntime"]
        assert diagnosis["tensorflow"] is None
    else:
        assert diagnosis["tensorflow"] == []
