"""Asynchronous endpoints against moto: `earthseg deploy --async` and `invoke --async`.

The control plane is moto in server mode (tests/aws_emulator.py). moto answers
InvokeEndpointAsync with canned bodies (see tests/async_host.py), so the requests that
should be answered go through a stand-in for SageMaker's asynchronous host to the real
model server app, in this process on loopback, set up with the environment `deploy --async`
gives the container. The container itself is in tests/docker/test_async_container.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio
import requests
from werkzeug.serving import make_server

from earthseg.aws.async_inference import async_environment, invoke_async
from earthseg.aws.endpoints import is_async
from earthseg.aws.resources import AsyncOptions
from earthseg.aws.session import open_session
from earthseg.contracts.serving import MB
from earthseg.errors import InputError
from earthseg.synthetic.export import write_sample_export
from tests.async_host import AsyncHost, async_host
from tests.scenes import write_scene
from tests.test_launch import (
    BUCKET,
    DEFAULT_BUCKET,
    DEPLOY,
    deployed_name,
    describe_deployment,
    earthseg,
    make_bucket,
)

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

ASYNC_DEPLOY = (*DEPLOY, "--instance-type", "ml.m5.xlarge", "--async")


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for answers often: the stand-in host answers in well under a second."""
    monkeypatch.setattr("earthseg.aws.async_inference.POLL_S", 0.05)
    monkeypatch.setattr("earthseg.aws.async_inference.MAX_POLL_S", 0.2)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    export = tmp_path_factory.mktemp("async-scene")
    stem = write_sample_export(export, scenes=1, size=256, seed=7)[0]
    return export / "images" / f"{stem}.tif"


@pytest.fixture(scope="module")
def model_server(test_model: Path) -> Iterator[str]:
    """The model server's app (not its container) on loopback, set up from the environment
    `deploy --async` gives the container."""
    from earthseg.serve.app import create_app
    from earthseg.serve.predictor import load_predictor
    from earthseg.serve.settings import ServerSettings

    with pytest.MonkeyPatch.context() as patch:
        for name, value in async_environment(AsyncOptions()).items():
            patch.setenv(name, value)
        settings = ServerSettings.from_environment(test_model)
    server = make_server(
        "127.0.0.1", 0, create_app(load_predictor(test_model), settings), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def host(
    aws_env: Emulator, monkeypatch: pytest.MonkeyPatch, model_server: str
) -> Iterator[AsyncHost]:
    with async_host(aws_env, monkeypatch, model_server) as running:
        yield running


def deploy_async(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = earthseg(capsys, *ASYNC_DEPLOY, *extra)
    assert code == 0, err
    return deployed_name(out)


def keys(aws: Emulator, bucket: str, prefix: str) -> list[str]:
    listing = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


# --- deploy --async -----------------------------------------------------------------------


def test_deploy_async_puts_the_async_config_and_the_servers_environment(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    make_bucket(aws_env)
    code, out, err = earthseg(
        capsys,
        *ASYNC_DEPLOY,
        "--output-path", f"s3://{BUCKET}/async/answers/",
        "--failure-path", f"s3://{BUCKET}/async/failed",
        "--max-concurrent-invocations", "4",
        "--invocation-timeout", "1800",
        "--workers", "2",
    )  # fmt: skip
    assert code == 0, err
    name = deployed_name(out)
    endpoint, config, model = describe_deployment(aws_env, name)
    expected = {
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/async/answers",
            "S3FailurePath": f"s3://{BUCKET}/async/failed",
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }
    assert config["AsyncInferenceConfig"] == expected
    (request,) = aws_env.received("CreateEndpointConfig")
    assert request["AsyncInferenceConfig"] == expected
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.xlarge", 1)
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "1800",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024",
        "EARTHSEG_OUTPUT": "probability",
    }
    assert endpoint["EndpointStatus"] == "InService"
    assert f"endpoint {name} (1 x ml.m5.xlarge, asynchronous)" in out
    assert f"answers in s3://{BUCKET}/async/answers, failures in s3://{BUCKET}/async/failed" in out


def test_deploy_async_defaults_to_folders_of_the_endpoint_in_the_default_bucket(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    name = deploy_async(capsys)
    _, config, model = describe_deployment(aws_env, name)
    home = f"s3://{DEFAULT_BUCKET}/earthseg/async/{name}"
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": f"{home}/output", "S3FailurePath": f"{home}/failures"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
    }
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024",
        "EARTHSEG_OUTPUT": "probability",
    }


def test_deploy_async_refuses_what_sagemaker_would_before_creating_anything(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto itself accepts a serverless variant with an AsyncInferenceConfig; SageMaker
    does not, so earthseg refuses it first."""
    cases = {
        "--serverless, --async: do not go together": [*DEPLOY, "--serverless", "--async"],
        "--timeout: does not apply to --async": [*ASYNC_DEPLOY, "--timeout", "120"],
        "--invocation-timeout: '3601' is too large": [
            *ASYNC_DEPLOY, "--invocation-timeout", "3601"
        ],
        "--max-concurrent-invocations: '0' is too small": [
            *ASYNC_DEPLOY, "--max-concurrent-invocations", "0"
        ],
        "--output-path: 'https://b/x' is not in S3": [*ASYNC_DEPLOY, "--output-path", "https://b/x"],
        "--failure-path: bucket no-such-bucket does not exist": [
            *ASYNC_DEPLOY, "--failure-path", "s3://no-such-bucket/failures"
        ],
        "--output-path: they set up an asynchronous endpoint, which needs --async": [
            *DEPLOY, "--output-path", f"s3://{BUCKET}/x"
        ],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("earthseg deploy: error: ") and expected in err, err
    sagemaker = aws_env.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_is_async_tells_asynchronous_endpoints_from_real_time_ones(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    asynchronous = deploy_async(capsys)
    _, out, _ = earthseg(capsys, *DEPLOY, "--instance-type", "ml.m5.xlarge")
    real_time = deployed_name(out)
    session = open_session()
    assert is_async(session, asynchronous) is True
    assert is_async(session, real_time) is False
    with pytest.raises(InputError, match="there is no endpoint earthseg-nope in us-east-1"):
        is_async(session, "earthseg-nope")


# --- invoke --async -----------------------------------------------------------------------


def test_invoke_async_sends_the_scene_whole_and_writes_the_mask_of_the_answer(
    aws_env: Emulator,
    host: AsyncHost,
    scene: Path,
    test_model: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    name = deploy_async(capsys)
    mask, polygons = tmp_path / "out" / "mask.tif", tmp_path / "out" / "mask.geojson"
    code, out, err = earthseg(
        capsys, "invoke", "--async", "--endpoint", name, "--image", str(scene),
        "--out", str(mask), "--geojson", str(polygons),
    )  # fmt: skip
    assert code == 0, err
    (request,) = host.requests
    home = f"s3://{DEFAULT_BUCKET}/earthseg/async/{name}"
    assert request.endpoint == name
    assert request.headers == {
        "content_type": "image/tiff",
        "accept": "image/tiff",
        "custom_attributes": "output=probability",
        "input_location": f"{home}/input/{request.inference_id}-{scene.name}",
        "invocation_timeout": "3600",
    }
    assert request.input_sha256 == hashlib.sha256(scene.read_bytes()).hexdigest()
    assert request.status == 200
    assert f"queued on {name} as {request.inference_id}" in out
    assert f"wrote {mask}: 256x256" in out
    # The scene sent is removed once answered; the answer stays where SageMaker put it.
    assert keys(aws_env, DEFAULT_BUCKET, f"earthseg/async/{name}/input/") == []
    output_bucket, _, output_key = request.output_location.removeprefix("s3://").partition("/")
    assert keys(aws_env, output_bucket, output_key) == [output_key]
    assert sorted(path.name for path in mask.parent.iterdir()) == ["mask.geojson", "mask.tif"]

    reference = tmp_path / "reference.tif"
    code, _, err = earthseg(
        capsys, "predict", "--model", str(test_model), "--image", str(scene),
        "--out", str(reference),
    )  # fmt: skip
    assert code == 0, err
    with rasterio.open(mask) as got, rasterio.open(reference) as want, rasterio.open(scene) as s:
        assert (got.crs, got.transform, got.shape) == (s.crs, s.transform, s.shape)
        assert np.array_equal(got.read(1), want.read(1))
        assert 0 < (got.read(1) == 1).sum() < got.width * got.height
    assert polygons.stat().st_size > 0


def test_a_failure_written_by_the_endpoint_is_shown_with_the_fix(
    aws_env: Emulator,
    host: AsyncHost,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A one-band scene reaches the model server, which refuses it (the card says 3 bands):
    the host writes its error to the FailureLocation."""
    name = deploy_async(capsys)
    one_band = tmp_path / "one_band.tif"
    write_scene(one_band, size=(96, 96), bands=1)
    out = tmp_path / "mask.tif"
    code, _, err = earthseg(
        capsys, "invoke", "--async", "--endpoint", name, "--image", str(one_band), "--out", str(out)
    )
    (request,) = host.requests
    assert code == 2 and request.status == 400
    assert err.startswith(
        f"earthseg invoke: error: endpoint {name}: could not predict {one_band}: "
    ), err
    assert "band" in err and f"/aws/sagemaker/Endpoints/{name}" in err
    assert f"the failure is kept at {request.failure_location}" in err
    assert not out.exists()
    assert keys(aws_env, DEFAULT_BUCKET, f"earthseg/async/{name}/input/") == []


def test_moto_alone_answers_canned_bodies_which_are_named_as_such(
    aws_env: Emulator, scene: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without the stand-in host, moto writes `{"default": "response"}` as the answer, or
    a failure queued through its API: neither is taken for a prediction."""
    name = deploy_async(capsys)
    argv = ["invoke", "--async", "--endpoint", name, "--image", str(scene)]
    code, _, err = earthseg(capsys, *argv, "--out", str(tmp_path / "a.tif"))
    assert code == 2
    assert f"endpoint {name}: answered something that is not a GeoTIFF" in err
    assert "earthseg deploy --async" in err
    requests.post(
        f"{aws_env.url}/moto-api/static/sagemaker/async-endpoint-results",
        json={
            "results": [{"is_failure": True, "data": '{"error": "the model ran out of memory"}'}]
        },
        timeout=10,
    ).raise_for_status()
    code, _, err = earthseg(capsys, *argv, "--out", str(tmp_path / "b.tif"))
    assert code == 2
    assert f"could not predict {scene}: the model ran out of memory. Fix:" in err
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "b.tif").exists()


def test_waiting_without_an_answer_stops_and_says_where_it_will_appear(
    aws_env: Emulator, monkeypatch: pytest.MonkeyPatch, scene: Path, tmp_path: Path
) -> None:
    """A request that stays in the queue: the wait ends, the scene stays for it in S3."""
    make_bucket(aws_env)
    with async_host(aws_env, monkeypatch, url=None) as stalled, pytest.raises(InputError) as raised:
        invoke_async(
            open_session(),
            "earthseg-queued",
            scene,
            tmp_path / "answer.tif",
            input_location=f"s3://{BUCKET}/scenes",
            invocation_timeout_s=600,
            timeout_s=0.5,
            say=lambda _: None,
        )
    (request,) = stalled.requests
    error = raised.value
    assert error.source == "endpoint earthseg-queued"
    assert error.problem.startswith(f"gave no answer for {scene} within 0.5 s")
    assert f"its answer will appear at {request.output_location}" in error.fix
    assert f"aws s3 cp {request.output_location} ." in error.fix
    assert "--wait-minutes" in error.fix
    assert request.headers["invocation_timeout"] == "600"
    assert request.headers["input_location"] == (
        f"s3://{BUCKET}/scenes/{request.inference_id}-{scene.name}"
    )
    assert keys(aws_env, BUCKET, "scenes/") == [f"scenes/{request.inference_id}-{scene.name}"]
    assert not (tmp_path / "answer.tif").exists()


def test_invoke_async_refuses_what_cannot_work_before_sending_anything(
    aws_env: Emulator, scene: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = deploy_async(capsys)
    _, out, _ = earthseg(capsys, *DEPLOY, "--instance-type", "ml.m5.xlarge")
    real_time = deployed_name(out)
    too_large = tmp_path / "huge.tif"
    with too_large.open("wb") as sparse:
        sparse.truncate(1024 * MB + 1)
    not_raster = tmp_path / "notes.tif"
    not_raster.write_text("a scene, honestly")
    base = ["invoke", "--image", str(scene), "--out", str(tmp_path / "mask.tif")]
    cases = {
        f"--endpoint: {real_time} is a real-time endpoint, not an asynchronous one. Fix: drop "
        "--async": [*base, "--async", "--endpoint", real_time],
        "--endpoint: there is no endpoint earthseg-nope": [
            *base, "--async", "--endpoint", "earthseg-nope"
        ],
        "--max-payload-mb: does not apply to --async": [
            *base, "--async", "--endpoint", name, "--max-payload-mb", "4"
        ],
        "--invocation-timeout: they ask an asynchronous endpoint, which needs --async": [
            *base, "--endpoint", name, "--invocation-timeout", "60"
        ],
        "--wait-minutes: '0' is too small": [
            *base, "--async", "--endpoint", name, "--wait-minutes", "0"
        ],
        f"{too_large}: is 1,024 MB, over the 1024 MB an asynchronous endpoint takes": [
            "invoke", "--async", "--endpoint", name, "--image", str(too_large),
            "--out", str(tmp_path / "mask.tif"),
        ],
        f"{not_raster}: cannot be read as a raster": [
            "invoke", "--async", "--endpoint", name, "--image", str(not_raster),
            "--out", str(tmp_path / "mask.tif"),
        ],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("earthseg invoke: error: ") and expected in err, err
    assert keys(aws_env, DEFAULT_BUCKET, "earthseg/async/") == []
    assert not (tmp_path / "mask.tif").exists()
    assert os.path.getsize(too_large) > 1024 * MB


def test_the_async_host_answers_in_the_place_moto_named(
    aws_env: Emulator, host: AsyncHost, scene: Path, tmp_path: Path
) -> None:
    """The library call: the answer file is the model server's probability GeoTIFF; the
    scene may be kept."""
    target = invoke_async(
        open_session(),
        "earthseg-any",
        scene,
        tmp_path / "answer.tif",
        keep_input=True,
        say=lambda _: None,
    )
    (request,) = host.requests
    with rasterio.open(target) as answer:
        assert answer.dtypes == ("float32",) and answer.tags()["EARTHSEG_THRESHOLD"] == "0.5"
    bucket, _, key = request.output_location.removeprefix("s3://").partition("/")
    stored = aws_env.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == target.read_bytes()
    assert keys(aws_env, DEFAULT_BUCKET, "earthseg/async/earthseg-any/input/") == [
        f"earthseg/async/earthseg-any/input/{request.inference_id}-{scene.name}"
    ]
