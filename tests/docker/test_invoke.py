"""`earthseg invoke`: a scene through sagemaker-runtime's InvokeEndpoint, in chunks.

boto3 signs and sends real InvokeEndpoint requests to a stand-in of the runtime service
(tests/runtime_front.py) that forwards them to the real serve container, which serves
the model the training image made in this session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthseg.cli import main as cli
from earthseg.local.endpoint import local_endpoint
from earthseg.synthetic.export import write_sample_export
from tests.docker.conftest import TrainedJob
from tests.runtime_front import RuntimeFront, runtime_front
from tests.scenes import write_scene

pytestmark = pytest.mark.docker

ENDPOINT = "earthseg-dust"
PAYLOAD_MB = 0.25  # a 512 px scene goes in several chunks


@pytest.fixture(scope="module")
def front(
    serve_image: str, trained_job: TrainedJob, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RuntimeFront, str]]:
    assert trained_job.status == 0, trained_job.stdout + trained_job.stderr
    logs = tmp_path_factory.mktemp("invoke") / "serve.log"
    with (
        local_endpoint(serve_image, trained_job.opt_ml / "model", logs, workers=2) as server,
        runtime_front({ENDPOINT: server.url}) as runtime,
    ):
        yield runtime, server.url


@pytest.fixture
def aws_runtime(front: tuple[RuntimeFront, str], monkeypatch: pytest.MonkeyPatch) -> RuntimeFront:
    runtime, _ = front
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    runtime.requests.clear()
    return runtime


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    export = tmp_path_factory.mktemp("invoke-scene")
    stem = write_sample_export(export, scenes=1, size=512, seed=5)[0]
    return export / "images" / f"{stem}.tif"


def test_invoke_sends_signed_chunks_under_the_limit_and_matches_predict_url(
    aws_runtime: RuntimeFront, front: tuple[RuntimeFront, str], scene: Path, tmp_path: Path
) -> None:
    _, server_url = front
    invoked, direct = tmp_path / "invoked.tif", tmp_path / "direct.tif"
    assert (
        cli(
            [
                "invoke",
                "--endpoint",
                ENDPOINT,
                "--image",
                str(scene),
                "--out",
                str(invoked),
                "--geojson",
                str(tmp_path / "invoked.geojson"),
                "--max-payload-mb",
                str(PAYLOAD_MB),
            ]
        )
        == 0
    )
    sent = list(aws_runtime.requests)
    assert len(sent) > 4
    assert all(request["endpoint"] == ENDPOINT for request in sent)
    assert all(request["signed"] for request in sent)
    assert all(request["bytes"] <= PAYLOAD_MB * 1024 * 1024 for request in sent)
    assert {request["content_type"] for request in sent} == {"application/x-npy"}
    assert {request["attributes"] for request in sent} == {"output=probability"}

    assert (
        cli(
            [
                "predict",
                "--url",
                server_url,
                "--image",
                str(scene),
                "--out",
                str(direct),
                "--max-payload-mb",
                str(PAYLOAD_MB),
            ]
        )
        == 0
    )
    with rasterio.open(invoked) as a, rasterio.open(direct) as b, rasterio.open(scene) as s:
        assert (a.crs, a.transform, a.shape) == (s.crs, s.transform, s.shape)
        assert np.array_equal(a.read(1), b.read(1))
    assert (tmp_path / "invoked.geojson").stat().st_size > 0


def test_an_unknown_endpoint_is_named_with_the_fix(
    aws_runtime: RuntimeFront, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mask.tif"
    code = cli(
        ["invoke", "--endpoint", "no-such-endpoint", "--image", str(scene), "--out", str(out)]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "no-such-endpoint" in error and "does not exist" in error and "earthseg deploy" in error
    assert not out.exists()


def test_the_model_servers_own_error_comes_through(
    aws_runtime: RuntimeFront, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-band scene reaches the container, which refuses it (the card says 3 bands)."""
    one_band = tmp_path / "one_band.tif"
    write_scene(one_band, size=(96, 96), bands=1)
    code = cli(
        [
            "invoke",
            "--endpoint",
            ENDPOINT,
            "--image",
            str(one_band),
            "--out",
            str(tmp_path / "mask.tif"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "answered 400" in error and "band" in error
