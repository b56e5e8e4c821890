"""The serve image under load on loopback (issue 12, item 5): 10,000 requests at
concurrency 16 with no error and flat resident memory, and a worker killed with SIGKILL in
the middle of requests, replaced, with no request failing but those it held.

A tiny model (32 px tiles, 4 filters, depth 1) makes the server, not the U-Net, the cost.
Every answer is checked against the same model run here, so that an answer crossed between
threads or connections would fail as surely as an error status.
"""

from __future__ import annotations

import http.client
import io
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from earthseg.local.endpoint import ServeContainer
from earthseg.serve.decoders import NPY, TIFF, decode
from earthseg.serve.predictor import Predictor, load_predictor
from tests.docker import load
from tests.docker.load import Outcome, Request

pytestmark = pytest.mark.docker

TILE = 32
TILES = 8  # distinct tiles, so that an answer given to the wrong request shows
SCENE = (48, 80)  # a GeoTIFF that is not a whole number of tiles: overlapping windows
WORKERS = 2
SOAK_REQUESTS = 10_000
CONCURRENCY = 16
SAMPLE_EVERY = 1_000
BACKGROUND = 8  # threads of the load a worker is killed under
MAX_GROWTH = 1.10  # resident memory at the last request over that at the 1,000th
ATOL = 1e-5


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def geotiff(pixels: np.ndarray) -> bytes:
    """(bands, rows, cols) uint8 as a GeoTIFF in EPSG:4326."""
    bands, rows, cols = pixels.shape
    memory = MemoryFile()
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": bands, "dtype": "uint8"}
    transform = from_origin(-20.0, 70.0, 0.005, 0.005)
    with memory.open(**profile, crs="EPSG:4326", transform=transform) as dataset:
        dataset.write(pixels)
    return bytes(memory.read())


def blank_scene(side: int) -> bytes:
    """A side x side GeoTIFF with no block written: a kB to send, seconds to predict."""
    memory = MemoryFile()
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8"}
    transform = from_origin(-20.0, 70.0, 0.005, 0.005)
    with memory.open(**profile, crs="EPSG:4326", transform=transform, tiled=True, sparse_ok=True):
        pass
    return bytes(memory.read())


class Traffic:
    """The requests of these tests and the answers the model gives them: one GeoTIFF in
    ten (answered with a mask GeoTIFF), the others a NumPy tile (answered with
    probabilities)."""

    def __init__(self, predictor: Predictor) -> None:
        rng = np.random.default_rng(12)
        tiles = rng.integers(0, 256, (TILES, TILE, TILE, 3), dtype=np.uint8)
        self.tiles = [Request(npy(tile), NPY, NPY) for tile in tiles]
        self.probabilities = predictor.model.probabilities(tiles)
        scene = rng.integers(0, 256, (3, *SCENE), dtype=np.uint8)
        self.scene = Request(geotiff(scene), TIFF, TIFF)
        expected = predictor.predict(decode(self.scene.body, TIFF, predictor.card))
        self.mask = expected.mask()[0]
        # Pixels a last-bit difference between ONNX Runtime thread counts cannot flip.
        self.decided = np.abs(expected.probabilities[0] - expected.threshold) > ATOL

    def request(self, index: int) -> Request:
        return self.scene if index % 10 == 9 else self.tiles[index % TILES]

    def check(self, index: int, body: bytes) -> None:
        if index % 10 == 9:
            with MemoryFile(body) as memory, memory.open() as mask:
                values = mask.read(1)
            assert values.shape == SCENE, values.shape
            assert (values == self.mask)[self.decided].all(), "a mask unlike the model's"
        else:
            values = np.load(io.BytesIO(body))
            assert values.shape == (TILE, TILE) and values.dtype == np.float32, values.shape
            assert ((values >= 0) & (values <= 1)).all(), "probabilities out of [0, 1]"
            np.testing.assert_allclose(values, self.probabilities[index % TILES], atol=ATOL)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from earthseg.train.seeded_model import export_seeded_model

    folder = tmp_path_factory.mktemp("tiny") / "model"
    export_seeded_model(folder, tile=TILE, filters=4, depth=1)
    return folder


@pytest.fixture(scope="module")
def traffic(tiny_model: Path) -> Traffic:
    return Traffic(load_predictor(tiny_model))


@pytest.fixture
def server(serve_image: str, tiny_model: Path, docker_client: object) -> Iterator[ServeContainer]:
    container = ServeContainer(serve_image, tiny_model, workers=WORKERS, client=docker_client)
    with load.running(container, WORKERS) as running:
        try:
            load.master(running)
        except LookupError as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true and {error}", pytrace=False)
            pytest.skip(str(error))
        yield running


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if not outcome.ok]


def test_10000_requests_at_concurrency_16_all_answer_and_memory_stays_flat(
    server: ServeContainer, traffic: Traffic
) -> None:
    arbiter = load.master(server)
    workers_before = {worker.pid for worker in load.workers(arbiter)}
    samples: dict[int, dict[int, int]] = {}
    progress = load.Progress(
        SAMPLE_EVERY, lambda count: samples.__setitem__(count, load.resident(arbiter))
    )
    connection_worker: dict[int, int] = {}  # client port -> worker PID

    def on_connect(port: int) -> None:
        holder = load.holder(arbiter, server.port, port)
        connection_worker[port] = holder.pid if holder else 0

    start = time.perf_counter()
    outcomes = load.keepalive_load(
        server.port,
        SOAK_REQUESTS,
        CONCURRENCY,
        traffic.request,
        traffic.check,
        progress,
        on_connect,
    )
    seconds = time.perf_counter() - start

    per_worker = Counter(connection_worker.get(outcome.port, 0) for outcome in outcomes)
    first, last = samples[SAMPLE_EVERY], samples[SOAK_REQUESTS]
    growth = {pid: last[pid] / first[pid] for pid in first}
    total_growth = sum(last.values()) / sum(first.values())
    mib = {
        count: {pid: round(rss / 2**20, 1) for pid, rss in sample.items()}
        for count, sample in samples.items()
    }
    print(
        f"\nsoak: {len(outcomes)} requests in {seconds:.1f} s ({len(outcomes) / seconds:.0f}/s), "
        f"{len(failures(outcomes))} failed; slowest {max(o.seconds for o in outcomes):.3f} s; "
        f"requests per worker {dict(per_worker)}; master {arbiter.pid}\n"
        f"RSS MiB by request count: {mib}\n"
        f"RSS growth 1,000 -> {SOAK_REQUESTS:,}: total x{total_growth:.4f}, "
        f"per process { {pid: round(ratio, 4) for pid, ratio in growth.items()} }"
    )

    assert len(outcomes) == SOAK_REQUESTS
    assert not failures(outcomes), failures(outcomes)[:5]
    assert set(per_worker) == workers_before  # each worker took its share of the load
    # The same processes throughout: a worker restarted on the way would hide a leak.
    assert set(last) == set(first) == {arbiter.pid, *workers_before}
    assert {worker.pid for worker in load.workers(arbiter)} == workers_before
    assert total_growth < MAX_GROWTH, mib
    assert all(ratio < MAX_GROWTH for ratio in growth.values()), growth
    logs = server.logs()
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs, logs[-3000:]


def test_a_worker_killed_mid_request_is_replaced_and_only_its_requests_fail(
    server: ServeContainer, traffic: Traffic
) -> None:
    arbiter = load.master(server)
    background = load.FreshConnectionLoad(server.port, BACKGROUND, traffic.request, traffic.check)
    with background:
        load.wait_until(lambda: background.answered_since(0) >= 200, lambda: "200 answers")
        # A request that takes seconds, on a connection whose port is known: the worker that
        # accepts it is the one killed, while it holds that request and others.
        slow, slow_port, sending = send_slow_request(server.port)
        victim, _ = load.wait_for(
            lambda: load.holder(arbiter, server.port, slow_port),
            lambda: "a worker holding the slow request",
            timeout_s=10,
        )
        survivor = next(worker for worker in load.workers(arbiter) if worker.pid != victim.pid)
        victim_in_log = load.container_pid(victim)
        # Stopped, it can neither answer nor take another connection: what it holds now is
        # exactly what dies with it, core locks included.
        locks = stop_in_a_model_run(victim, arbiter)
        held = load.peer_ports(victim, server.port)
        last_before = max(outcome.index for outcome in background.outcomes)
        victim.kill()
        killed = time.monotonic()

        new, spawned_s = load.wait_for(
            lambda: next(
                (w for w in load.workers(arbiter) if w.pid not in (victim.pid, survivor.pid)), None
            ),
            lambda: "a new worker",
            timeout_s=30,
        )
        ready = f"earthseg serve: worker {load.container_pid(new)} ready"
        load.wait_until(lambda: ready in server.logs(), lambda: server.logs(), timeout_s=30)
        ready_s = time.monotonic() - killed
        count = len(background.outcomes)
        load.wait_until(
            lambda: background.answered_since(count) >= 500, lambda: "500 answers after the kill"
        )
        sending.join(load.REQUEST_TIMEOUT_S)
    after_s = time.monotonic() - killed

    outcomes = [*background.outcomes, *slow]
    failed = failures(outcomes)
    print(
        f"\nkill: worker {victim.pid} held {len(held)} connections and core locks "
        f"{sorted(locks)} when killed; of {len(outcomes)} requests {len(failed)} failed "
        f"(ports {sorted(o.port for o in failed)}); replacement {new.pid} forked "
        f"{spawned_s:.3f} s and ready {ready_s:.3f} s after the SIGKILL; "
        f"{after_s:.1f} s of load after it"
    )
    assert slow and slow[0].status is None, slow  # the slow request died with its worker
    assert slow_port in held
    assert {outcome.port for outcome in failed} <= held, [o for o in failed if o.port not in held]
    assert all(outcome.status is None for outcome in failed), failed  # no error answer either
    # Requests begun after the kill (BACKGROUND were under way when it came) all succeeded.
    assert not failures([o for o in background.outcomes if o.index > last_before + BACKGROUND])
    assert f"Worker (pid:{victim_in_log}) was sent SIGKILL" in server.logs()

    # The replacement serves on its own (the survivor stopped): the core locks the dead
    # worker held are free again. Once idle, nobody holds one.
    load.stop(survivor)
    try:
        alone = [background.one(index) for index in range(10**6, 10**6 + 20)]
    finally:
        survivor.resume()
    assert not failures(alone), failures(alone)
    assert {worker.pid for worker in load.workers(arbiter)} == {survivor.pid, new.pid}
    core_locks = load.core_locks(arbiter)
    assert len(core_locks) == len(os.sched_getaffinity(0)), core_locks
    assert not any(core_locks.values()), core_locks


def stop_in_a_model_run(worker: psutil.Process, arbiter: psutil.Process) -> set[str]:
    """Stop `worker` (SIGSTOP) at a moment it runs the model, holding core locks that only
    the kernel can free once it is dead; their names."""
    for _ in range(200):
        load.stop(worker)
        locks = {name for name, pids in load.core_locks(arbiter).items() if worker.pid in pids}
        if locks:
            return locks
        worker.resume()
        time.sleep(0.002)
    raise AssertionError(f"worker {worker.pid} was never caught holding a core lock")


def send_slow_request(port: int) -> tuple[list[Outcome], int, threading.Thread]:
    """A 3000 x 3000 px GeoTIFF sent from a thread: (its outcome once answered, its
    connection's client port, the thread)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=load.REQUEST_TIMEOUT_S)
    connection.connect()
    request = Request(blank_scene(3000), TIFF, TIFF)
    outcome: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: outcome.append(load.outcome(connection, -1, request, lambda *_: None))
    )
    thread.start()
    return outcome, connection.sock.getsockname()[1], thread
