"""`earthseg deploy --async` and `invoke --async` with the real serve container doing the
work: moto is the control plane and S3, a stand-in for SageMaker's asynchronous host
(tests/async_host.py) hands each queued request to the container, which runs with the
environment `deploy --async` gives the model. One container serves every test here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio

from earthseg.aws.async_inference import async_environment
from earthseg.aws.resources import AsyncOptions
from earthseg.contracts.serving import MB, PORT_ENV
from earthseg.local.endpoint import ServeContainer
from earthseg.synthetic.export import write_sample_export
from tests.async_host import AsyncHost, async_host
from tests.scenes import write_scene
from tests.test_launch import DEPLOY, deployed_name, describe_deployment, earthseg

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

pytestmark = pytest.mark.docker

WORKERS = 2
REAL_TIME_LIMIT_BYTES = 6 * MB
BIG_SIDE = 2500  # 2500 x 2500 x 3 uint8, uncompressed: 18.75 MB


@pytest.fixture(scope="module")
def container(
    serve_image: str, test_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeContainer]:
    """The serve image on loopback with an asynchronous endpoint's environment."""
    log = tmp_path_factory.mktemp("async-container") / "serve.log"
    server = ServeContainer(
        serve_image, test_model, workers=WORKERS, environment=async_environment(AsyncOptions())
    ).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.remove(log)


@pytest.fixture
def host(
    aws_env: Emulator, monkeypatch: pytest.MonkeyPatch, container: ServeContainer
) -> Iterator[AsyncHost]:
    monkeypatch.setattr("earthseg.aws.async_inference.POLL_S", 0.1)
    monkeypatch.setattr("earthseg.aws.async_inference.MAX_POLL_S", 0.5)
    with async_host(aws_env, monkeypatch, container.url) as running:
        yield running


@pytest.fixture
def endpoint(host: AsyncHost, container: ServeContainer, capsys: pytest.CaptureFixture[str]) -> str:
    """An asynchronous endpoint in moto whose model has the container's environment."""
    code, out, err = earthseg(
        capsys, *DEPLOY, "--instance-type", "ml.m5.xlarge", "--async", "--workers", str(WORKERS)
    )
    assert code == 0, err
    name = deployed_name(out)
    _, _, model = describe_deployment(host.emulator, name)
    running = {key: value for key, value in container.environment.items() if key != PORT_ENV}
    assert model["PrimaryContainer"]["Environment"] == running
    return name


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    export = tmp_path_factory.mktemp("async-small")
    stem = write_sample_export(export, scenes=1, size=512, seed=5)[0]
    return export / "images" / f"{stem}.tif"


@pytest.fixture(scope="module")
def big_scene(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Landsat scene (nodata collar included) tiled to 2500 x 2500, uncompressed:
    about three times what a real-time request may carry."""
    path = tmp_path_factory.mktemp("async-big") / "big.tif"
    with rasterio.open(real_data / "RGB.byte.tif") as source:
        pixels, profile = source.read(), source.profile
    tiled = np.tile(pixels, (1, 4, 4))[:, :BIG_SIDE, :BIG_SIDE]
    profile.update(width=BIG_SIDE, height=BIG_SIDE, tiled=False, compress=None)
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with rasterio.open(path, "w", **profile) as target:
        target.write(tiled)
    assert path.stat().st_size > 2 * REAL_TIME_LIMIT_BYTES
    return path


def invoke_and_reference(
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    scene: Path,
    model: Path,
    folder: Path,
) -> tuple[Path, Path, Path, Path]:
    """`invoke --async` and the in-process `predict --model` of `scene`: their masks and
    probabilities."""
    got, want = folder / "invoked", folder / "in-process"
    code, _, err = earthseg(
        capsys, "invoke", "--async", "--endpoint", endpoint, "--image", str(scene),
        "--out", str(got / "mask.tif"), "--probabilities", str(got / "probability.tif"),
        "--geojson", str(got / "mask.geojson"),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = earthseg(
        capsys, "predict", "--model", str(model), "--image", str(scene),
        "--out", str(want / "mask.tif"), "--probabilities", str(want / "probability.tif"),
    )  # fmt: skip
    assert code == 0, err
    return got / "mask.tif", want / "mask.tif", got / "probability.tif", want / "probability.tif"


def assert_same_prediction(
    scene: Path, masks: tuple[Path, Path], chances: tuple[Path, Path]
) -> None:
    """On the scene's grid exactly; probabilities to float tolerance; masks equal."""
    with rasterio.open(scene) as source:
        grid = (source.crs, source.transform, source.shape)
    with rasterio.open(masks[0]) as got, rasterio.open(masks[1]) as want:
        assert (got.crs, got.transform, got.shape) == grid
        invoked, in_process = got.read(1), want.read(1)
    with rasterio.open(chances[0]) as got, rasterio.open(chances[1]) as want:
        np.testing.assert_allclose(got.read(1), want.read(1), atol=1e-5, equal_nan=True)
    assert np.array_equal(invoked, in_process)
    assert 0 < (invoked == 1).sum() < (invoked != 255).sum()


def test_invoke_async_through_the_container_equals_in_process_prediction(
    host: AsyncHost,
    endpoint: str,
    small_scene: Path,
    test_model: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    mask, reference, chances, reference_chances = invoke_and_reference(
        capsys, endpoint, small_scene, test_model, tmp_path
    )
    (request,) = host.requests
    assert request.status == 200
    assert request.headers["custom_attributes"] == "output=probability"
    assert request.input_sha256 == hashlib.sha256(small_scene.read_bytes()).hexdigest()
    assert_same_prediction(small_scene, (mask, reference), (chances, reference_chances))
    assert (mask.parent / "mask.geojson").stat().st_size > 0


def test_a_scene_over_the_real_time_limit_goes_whole_in_one_request(
    host: AsyncHost,
    endpoint: str,
    big_scene: Path,
    test_model: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    mask, reference, chances, reference_chances = invoke_and_reference(
        capsys, endpoint, big_scene, test_model, tmp_path
    )
    (request,) = host.requests
    assert request.status == 200
    assert request.input_bytes == big_scene.stat().st_size > 2 * REAL_TIME_LIMIT_BYTES
    assert_same_prediction(big_scene, (mask, reference), (chances, reference_chances))
    with rasterio.open(mask) as got:
        assert (got.read(1) == 255).any()  # the Landsat collar: no data, in the answer too


def test_the_containers_refusal_comes_back_from_the_failure_location(
    host: AsyncHost, endpoint: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one_band = tmp_path / "one_band.tif"
    write_scene(one_band, size=(96, 96), bands=1)
    code, _, err = earthseg(
        capsys, "invoke", "--async", "--endpoint", endpoint, "--image", str(one_band),
        "--out", str(tmp_path / "mask.tif"),
    )  # fmt: skip
    (request,) = host.requests
    assert code == 2 and request.status == 400
    assert f"endpoint {endpoint}: could not predict {one_band}: " in err
    assert "band" in err and request.failure_location in err
    assert not (tmp_path / "mask.tif").exists()
