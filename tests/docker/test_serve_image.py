"""The inference image, built from the repository and run as SageMaker runs it
(`docker run -v MODEL:/opt/ml/model IMAGE serve`), serving the model the training image
made, spoken to over real HTTP on loopback."""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import docker
import numpy as np
import pytest
import rasterio
import requests
from docker.errors import NotFound
from PIL import Image
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from earthseg.cli import main as cli
from earthseg.local.endpoint import ServeContainer
from earthseg.serve.geo import MASK_NODATA
from earthseg.serve.predictor import load_predictor
from tests.docker.conftest import TrainedJob

pytestmark = pytest.mark.docker

READY = re.compile(r"earthseg serve: worker (\d+) ready")
START_TIMEOUT_S = 60
NPY, JSON, TIFF, GEOJSON = (
    "application/x-npy",
    "application/json",
    "image/tiff",
    "application/geo+json",
)


class Server(ServeContainer):
    """A serve container, as earthseg runs one, with what the tests ask of it."""

    def ping(self, timeout: float = 5.0) -> int | None:
        """The status /ping answers, or None: refused, or queued with no worker to take it."""
        try:
            return requests.get(f"{self.url}/ping", timeout=timeout).status_code
        except requests.RequestException:
            return None

    def invoke(
        self, body: bytes, content_type: str, accept: str = "*/*", attributes: str = ""
    ) -> requests.Response:
        headers = {"Content-Type": content_type, "Accept": accept}
        if attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=120)

    def worker_pids(self) -> set[str]:
        """PIDs of the gunicorn workers (the master is PID 1 in the container)."""
        top = self.container.top(ps_args="-o pid,ppid,args")
        processes = [dict(zip(top["Titles"], row, strict=True)) for row in top["Processes"]]
        master = min(processes, key=lambda process: int(process["PID"]))
        return {process["PID"] for process in processes if process["PPID"] == master["PID"]}


@pytest.fixture(scope="module")
def model(trained_job: TrainedJob) -> Path:
    assert trained_job.status == 0, trained_job.stdout + trained_job.stderr
    return trained_job.opt_ml / "model"


def start(
    client: docker.DockerClient, image: str, model: Path, env: dict[str, str] | None = None
) -> Server:
    """`docker run -v MODEL:/opt/ml/model IMAGE serve` on a free loopback port."""
    return Server(image, model, environment=env, client=client).start()


@contextmanager
def serving(
    client: docker.DockerClient,
    image: str,
    model: Path,
    env: dict[str, str] | None = None,
    workers: int | None = None,
) -> Iterator[Server]:
    """Run the image with `model` mounted and wait until every worker says it is ready."""
    server = Server(image, model, workers=workers, environment=env, client=client).start()
    try:
        expected = workers or int(re.search(r"(\d+) workers", wait_for(server, r"\d+ workers"))[1])
        wait_for(server, READY.pattern, count=expected)
        yield server
    finally:
        with suppress(NotFound):
            server.container.remove(force=True)


def wait_for(server: Server, pattern: str, count: int = 1) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        logs = server.logs()
        if len(re.findall(pattern, logs)) >= count:
            return logs
        server.container.reload()
        if server.container.status == "exited":
            pytest.fail(f"the server exited while starting:\n{logs}")
        time.sleep(0.1)
    pytest.fail(f"no {count} x {pattern!r} in the log within {START_TIMEOUT_S}s:\n{server.logs()}")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def blank_scene(side: int) -> bytes:
    """A side x side 3-band GeoTIFF of zeros with no block written: a few kB to send,
    seconds of work for the server."""
    memory = MemoryFile()
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8"}
    transform = from_origin(-20.0, 70.0, 0.005, 0.005)
    with memory.open(**profile, crs="EPSG:4326", transform=transform, tiled=True, sparse_ok=True):
        pass
    return bytes(memory.read())


@pytest.fixture(scope="module")
def server(docker_client: docker.DockerClient, serve_image: str, model: Path) -> Iterator[Server]:
    with serving(docker_client, serve_image, model) as running:
        yield running


def test_the_model_of_the_training_image_answers_every_content_type(
    server: Server, model: Path, real_data: Path
) -> None:
    assert server.ping() == 200
    local = load_predictor(model)
    tiles = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = local.model.probabilities(tiles)

    answer = server.invoke(npy(tiles), NPY, NPY)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == NPY
    np.testing.assert_allclose(np.load(io.BytesIO(answer.content)), expected, atol=1e-5)

    answer = server.invoke(json.dumps({"instances": tiles.tolist()}).encode(), JSON)
    predictions = np.array(answer.json()["predictions"])
    np.testing.assert_allclose(predictions[..., 0], expected, atol=1e-5)

    picture = io.BytesIO()
    Image.fromarray(tiles[0]).save(picture, format="PNG")
    answer = server.invoke(picture.getvalue(), "image/png", "image/png", "threshold=0.5")
    mask = np.asarray(Image.open(io.BytesIO(answer.content)))
    np.testing.assert_array_equal(mask == 255, expected[0] >= 0.5)

    scene = real_data / "RGB.byte.tif"
    answer = server.invoke(scene.read_bytes(), TIFF, TIFF)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == TIFF
    with (
        rasterio.open(scene) as source,
        MemoryFile(answer.content) as memory,
        memory.open() as returned,
    ):
        assert returned.crs == source.crs and returned.transform == source.transform
        assert returned.shape == source.shape
        np.testing.assert_array_equal(returned.read(1) == MASK_NODATA, source.dataset_mask() == 0)

    answer = server.invoke(scene.read_bytes(), TIFF, GEOJSON, "crs=EPSG:4326")
    assert answer.headers["Content-Type"] == GEOJSON
    assert answer.json()["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::4326"

    parameters = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
    assert parameters == {
        "MaxConcurrentTransforms": len(server.worker_pids()),
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 6,
    }


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        (b"\x93NUMPY garbage", NPY, NPY, 400),
        (npy(np.zeros((64, 64, 4), np.uint8)), NPY, NPY, 400),
        (npy(np.zeros((64, 64, 3), np.int16)), NPY, NPY, 400),
        (npy(np.zeros((64, 64, 3), np.uint8)), NPY, "text/html", 406),
        (b"\0" * (6 * 1024 * 1024 + 1), TIFF, TIFF, 413),
        (b"1,2,3", "text/csv", JSON, 415),
    ],
)
def test_bad_requests_get_json_errors_and_cost_no_worker(
    server: Server, body: bytes, content_type: str, accept: str, status: int
) -> None:
    workers = server.worker_pids()
    answer = server.invoke(body, content_type, accept)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == JSON
    assert "Fix:" in answer.json()["error"]
    assert server.ping() == 200
    assert server.worker_pids() == workers


def test_garbage_of_every_kind_takes_no_worker_down(server: Server) -> None:
    workers = server.worker_pids()
    rng = np.random.default_rng(1)
    statuses = set()
    for content_type in (NPY, JSON, TIFF, "image/png", "image/jpeg"):
        for size in (1, 100, 10_000):
            answer = server.invoke(rng.bytes(size), content_type, TIFF)
            statuses.add(answer.status_code)
    assert statuses == {400}
    assert server.worker_pids() == workers


def test_settings_come_from_sagemaker_variables(
    docker_client: docker.DockerClient, serve_image: str, model: Path
) -> None:
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}
    with serving(docker_client, serve_image, model, env, workers=3) as server:
        assert len(server.worker_pids()) == 3
        assert len(READY.findall(server.logs())) == 3
        parameters = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
        assert parameters["MaxConcurrentTransforms"] == 3 and parameters["MaxPayloadInMB"] == 1

        too_big = server.invoke(npy(np.zeros((600, 600, 3), np.uint8)), NPY, NPY)
        assert too_big.status_code == 413 and "1 MB" in too_big.json()["error"]

        slow = server.invoke(blank_scene(3000), TIFF, TIFF)  # seconds of work, a 1 s timeout
        assert slow.status_code == 504
        assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in slow.json()["error"]
        assert server.ping() == 200


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(
    docker_client: docker.DockerClient, serve_image: str, model: Path
) -> None:
    with serving(docker_client, serve_image, model, workers=1) as server:
        answers: list[requests.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(server.invoke(blank_scene(3000), TIFF, TIFF))
        )
        # A client that keeps an idle connection open (as SageMaker's front end and HTTP
        # pools do) must not hold the stop until its keep-alive (75 s) runs out.
        idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        idle.request("GET", "/ping")
        assert idle.getresponse().read() == b""
        request.start()
        time.sleep(1.0)  # the request is being predicted (it takes several seconds)
        server.container.kill(signal="SIGTERM")
        request.join(timeout=120)
        # Well under the keep-alive and the 60 s graceful timeout: had the idle connection
        # been waited for, this would time out.
        status = server.container.wait(timeout=40)
        idle.close()

        assert status["StatusCode"] == 0, server.logs()
        assert "SIGABRT" not in server.logs() and "terminate called" not in server.logs()
        assert answers and answers[0].status_code == 200, server.logs()
        with MemoryFile(answers[0].content) as memory, memory.open() as mask:
            assert mask.shape == (3000, 3000)
        assert server.ping() is None  # gone: nothing listens any more


def test_a_missing_model_stops_the_server_with_the_reason(
    docker_client: docker.DockerClient, serve_image: str, tmp_path: Path
) -> None:
    server = start(docker_client, serve_image, tmp_path)
    try:
        status = server.container.wait(timeout=60)
        logs = server.logs()
    finally:
        server.container.remove(force=True)
    assert status["StatusCode"] != 0
    assert "/opt/ml/model/earthseg.json" in logs and "Fix:" in logs


def test_a_model_that_cannot_load_never_answers_ping(
    docker_client: docker.DockerClient, serve_image: str, model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "earthseg.json").write_bytes((model / "earthseg.json").read_bytes())
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    server = start(docker_client, serve_image, broken)
    pings = []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while server.container.status != "exited" and time.monotonic() < deadline:
            pings.append(server.ping(timeout=2))
            time.sleep(0.05)
            server.container.reload()
        status = server.container.wait(timeout=60)
        logs = server.logs()
    finally:
        server.container.remove(force=True)
    assert 200 not in pings
    assert status["StatusCode"] == 4  # gunicorn's "app failed to load": the server stops
    assert "model.onnx: cannot be loaded by ONNX Runtime" in logs


def test_ping_answers_only_once_a_worker_has_its_model(
    docker_client: docker.DockerClient, serve_image: str, model: Path
) -> None:
    server = start(docker_client, serve_image, model)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        first_200 = None
        while first_200 is None and time.monotonic() < deadline:
            if server.ping() == 200:
                first_200 = datetime.now(UTC)
            time.sleep(0.01)
        assert first_200 is not None, server.logs()
        logs = wait_for(server, READY.pattern)
    finally:
        server.container.remove(force=True)
    # The container shares this clock; its log lines carry milliseconds (UTC).
    stamps = re.findall(r"\[([\d-]+ [\d:]+,\d{3}) \+0000\] \[\d+\] \[INFO\] " + READY.pattern, logs)
    ready = min(
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC) for stamp, _ in stamps
    )
    assert ready <= first_200, f"/ping said 200 at {first_200}, before any model was ready:\n{logs}"


def test_predict_through_the_container_in_chunks(
    server: Server, model: Path, real_data: Path, tmp_path: Path
) -> None:
    scene = real_data / "RGB.byte.tif"
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    command = ["predict", "--image", str(scene), "--out"]
    assert cli([*command, str(remote), "--url", server.url, "--max-payload-mb", "0.3"]) == 0
    assert cli([*command, str(local), "--model", str(model)]) == 0
    with rasterio.open(remote) as chunked, rasterio.open(local) as whole:
        assert (chunked.crs, chunked.transform, chunked.shape) == (
            whole.crs,
            whole.transform,
            whole.shape,
        )
        agreement = (chunked.read(1) == whole.read(1)).mean()
    assert agreement > 0.98
