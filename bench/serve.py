"""Benchmark: earthseg's inference image beside AWS's bring-your-own layout and a bare ONNX call.

Three contenders answer the same request, one 256x256x3 uint8 tile of the same U-Net
(seed 0, exported once; both containers mount that folder read-only at /opt/ml/model):

- baseline: bench/serve_baseline/, the structure of AWS's scikit_bring_your_own example
  (nginx -> gunicorn sync workers on a unix socket -> Flask), Keras `predict` on
  model.keras, loaded lazily by each worker on its first request.
- earthseg serve: `earthseg-serve:cpu` (containers/serve/), ONNX Runtime on model.onnx.
- bare: `onnxruntime.InferenceSession(model.onnx)` called in this process, the floor no
  server can beat.

Per container: image size; seconds from `docker run` until every worker has its model
(earthseg serve logs `earthseg serve: worker PID ready`; the baseline's workers load on
their first request, so the harness pings it and waits for each worker's `loaded the
model` line); p50 and p99 latency of one tile at concurrency 1; requests/s at
concurrency 4 and 16 (one thread and one persistent HTTP connection per client) and the
container's CPU time per request there (less disturbed by other work on the machine);
the container's memory after the load. Both containers run one at a time on 127.0.0.1
with the same worker count, get the same bytes from the same client, are checked against
the in-process Keras prediction first, and are warmed up before anything is timed. The
client runs on the same cores as the servers; that costs both alike. This machine is
shared, and its speed drifts by 10 % from minute to minute: the bare call's throughput is
timed in windows that take turns with earthseg serve's, so each ratio compares the same
minutes.

Targets for earthseg serve: image <= 1/4 of the baseline's, ready <= 2 s, p50 <= 1.2x the
bare call's, throughput >= 1.4x the baseline's and >= 0.9x the bare call's, p99 <= 1.5x
p50. The figures also go to bench/output/serve.json.

    .venv/bin/python bench/serve.py [--skip-build] [--seconds 12] [--requests 300]
        [--workers N] [--contenders bare,baseline,serve]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import http.client
import io
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import numpy as np
import onnxruntime
from docker.models.containers import Container

from earthseg.contracts.model_card import ONNX_FILE
from earthseg.contracts.serving import server_environment
from earthseg.local.endpoint import ServeContainer
from earthseg.local.engine import docker_client
from earthseg.train.export import ONNX_TOLERANCE
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.seeded_model import export_seeded_model

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
TILE, BANDS = 256, 3
NPY = "application/x-npy"
SERVE_IMAGE = "earthseg-serve:cpu"
BASELINE_IMAGE = "earthseg-serve-baseline:cpu"
BASELINE_DIR = "bench/serve_baseline"
KERAS_FILE = "model.keras"
BASELINE_TOLERANCE = 1e-5  # Keras in the container against Keras here: same code, same weights
CONCURRENCIES = (4, 16)
ROUNDS = 3  # throughput windows per concurrency, alternating with the bare call's
WARMUP_SECONDS = 4.0  # concurrent load before timing a server
WARMUP_CALLS = 20  # sequential calls before timing latencies
READY_TIMEOUT = 180.0
PING_GRACE = 3.0  # after /ping answers 200, how long the worker lines may still take


@dataclass(frozen=True)
class LogPattern:
    """How a server announces its worker count and each worker's loaded model."""

    workers: re.Pattern[str]
    ready: re.Pattern[str]
    pings_load: bool  # workers load on their first request, so readiness needs pings


SERVE_LOG = LogPattern(
    re.compile(r"earthseg serve: (\d+) workers"),
    re.compile(r"earthseg serve: worker (\d+) ready"),
    pings_load=False,
)
BASELINE_LOG = LogPattern(
    re.compile(r"baseline: .*gunicorn with (\d+) workers"),
    re.compile(r"baseline: worker (\d+) loaded the model"),
    pings_load=True,
)


CONTENDERS = ("serve", "baseline", "bare")
TITLES = {"serve": "earthseg serve", "baseline": "baseline", "bare": "bare ORT"}
# name -> image, how its log shows readiness, largest allowed difference to Keras
CONTAINERS = {
    "serve": (SERVE_IMAGE, SERVE_LOG, ONNX_TOLERANCE),
    "baseline": (BASELINE_IMAGE, BASELINE_LOG, BASELINE_TOLERANCE),
}


@dataclass(frozen=True)
class Request:
    """The one request every contender answers, and the answer it must give."""

    body: bytes  # the tile as .npy
    tile: np.ndarray  # (rows, cols, bands) uint8
    expected: np.ndarray  # (rows, cols, 1) float32: Keras in this process


@dataclass
class Figures:
    """What one contender measured; None where it does not apply."""

    image_mb: float | None = None
    workers: int | None = None
    ready_s: float | None = None
    ready_note: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput: dict[int, float] = field(default_factory=dict)  # concurrency -> requests/s
    cpu_ms: dict[int, float] = field(default_factory=dict)  # concurrency -> CPU ms per request
    memory_mb: float | None = None
    ping_max_ms: float | None = None  # slowest GET /ping during the heaviest load
    max_difference: float | None = None  # largest |probability - Keras in process|
    errors: int = 0


# The model and the request


def make_request(model_dir: Path) -> tuple[Request, int]:
    """Export the default U-Net (seed 0) into `model_dir` for every contender (SavedModel,
    ONNX and model card as `earthseg train` writes them, plus model.keras for the
    baseline); return the request and the model's parameter count."""
    defaults = Hyperparameters()
    model = export_seeded_model(
        model_dir, tile=TILE, bands=BANDS, filters=defaults.filters, depth=defaults.depth
    )
    model.save(model_dir / KERAS_FILE)
    for path in [model_dir, *model_dir.rglob("*")]:  # readable whatever user an image runs as
        path.chmod(0o755 if path.is_dir() else 0o644)
    tile = np.random.default_rng(0).integers(0, 256, (TILE, TILE, BANDS), dtype=np.uint8)
    body = io.BytesIO()
    np.save(body, tile)
    expected = np.asarray(model.predict(tile[None].astype(np.float32), verbose=0), np.float32)
    return Request(body.getvalue(), tile, expected[0]), model.count_params()


def difference(answer: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference to `expected` (rows, cols, 1), whatever unit axes the
    answer keeps: (rows, cols), (rows, cols, 1) and (1, rows, cols, 1) all hold one tile."""
    if answer.size != expected.size:
        raise SystemExit(f"an answer of shape {answer.shape} for one tile of {TILE}x{TILE}")
    return float(np.max(np.abs(answer.astype(np.float32).reshape(expected.shape) - expected)))


# Images


def build_client() -> list[str]:
    """A docker command that builds with BuildKit: the buildx plugin, or a client older
    than 23.0 (its `docker build` has BuildKit built in), as scripts/build-image.sh picks."""
    for client in ("docker", "/usr/bin/docker"):
        if not shutil.which(client):
            continue
        if subprocess.run([client, "buildx", "version"], capture_output=True).returncode == 0:
            return [client, "buildx", "build", "--load"]
        version = subprocess.run(
            [client, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        ).stdout
        major = version.split(".")[0]
        if major.isdigit() and 18 <= int(major) < 23:
            return ["env", "DOCKER_BUILDKIT=1", client, "build"]
    raise SystemExit(
        "no docker client here builds with BuildKit: install the buildx plugin, or use "
        "Debian 12's docker.io client (20.10) at /usr/bin/docker"
    )


def build_images(contenders: list[str]) -> None:
    """The serve image through the project's script, the baseline with a plain build."""
    if "serve" in contenders:
        print("building earthseg-serve:cpu (scripts/build-image.sh serve cpu)", flush=True)
        if subprocess.run([ROOT / "scripts" / "build-image.sh", "serve", "cpu"]).returncode:
            raise SystemExit(
                "scripts/build-image.sh serve cpu failed (see above): fix containers/serve/, "
                "or time the others alone with --contenders bare,baseline"
            )
    if "baseline" in contenders:
        print(f"building {BASELINE_IMAGE} ({BASELINE_DIR}/Dockerfile)", flush=True)
        ca = Path("/etc/ssl/certs/ca-certificates.crt")
        secret = ["--secret", f"id=ca,src={ca}"] if ca.is_file() else []
        files = ["constraints.txt", BASELINE_DIR]
        tar = subprocess.Popen(
            ["tar", "-C", ROOT, "-c", "--exclude=__pycache__", *files], stdout=subprocess.PIPE
        )
        command = [*build_client(), "--network", "host", "--file", f"{BASELINE_DIR}/Dockerfile"]
        command += [*secret, "--tag", BASELINE_IMAGE, "-"]
        build = subprocess.run(command, stdin=tar.stdout)
        if tar.wait() or build.returncode:
            raise SystemExit(f"building {BASELINE_IMAGE} failed (see above)")


def image_mb(client: docker.DockerClient, image: str) -> float:
    try:
        return client.images.get(image).attrs["Size"] / 1e6
    except docker.errors.ImageNotFound:
        hint = (
            "drop --skip-build" if image == BASELINE_IMAGE else "scripts/build-image.sh serve cpu"
        )
        raise SystemExit(f"image {image} is missing: build it ({hint})") from None


# HTTP


class Connection:
    """One persistent HTTP/1.1 connection to 127.0.0.1, reopened when the server closes it."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Status and body of one request; .npy both ways when there is a body."""
        try:
            return self._send(method, path, body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()  # the server closed it (keep-alive limit or idle timeout)
            return self._send(method, path, body)

    def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": NPY, "Accept": NPY} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def percentiles(seconds: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
    return float(p50), float(p99)


def latencies(call: Callable[[], Any], count: int) -> np.ndarray:
    """Seconds of each of `count` sequential calls."""
    times = np.empty(count)
    for index in range(count):
        start = time.perf_counter()
        call()
        times[index] = time.perf_counter() - start
    return times


def load(port: int, body: bytes, clients: int, seconds: float) -> tuple[int, float, int]:
    """Requests answered and seconds taken by `clients` threads, each posting `body` back
    to back on its own connection for `seconds`; and how many answers were not 200."""
    counts, errors = [0] * clients, [0] * clients
    failures: list[Exception] = []
    start_line = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = Connection(port)
        start_line.wait()
        deadline = time.perf_counter() + seconds
        try:
            while time.perf_counter() < deadline:
                status, _ = connection.request("POST", "/invocations", body)
                counts[index] += 1
                errors[index] += status != 200
        except Exception as error:  # a figure with a dead client would be wrong: stop
            failures.append(error)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"a client at concurrency {clients} failed: {failures[0]!r}")
    return sum(counts), time.perf_counter() - start, sum(errors)


# Containers


class LogWatch:
    """Follows a container's log in a thread, keeping each line with docker's timestamp."""

    def __init__(self, container: Container) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._follow, args=(container,), daemon=True)
        self.thread.start()

    def _follow(self, container: Container) -> None:
        pending = b""
        for chunk in container.logs(stream=True, follow=True, timestamps=True):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                stamp, _, text = raw.decode(errors="replace").partition(" ")
                self.lines.append((docker_time(stamp), text))

    def matches(self, pattern: re.Pattern[str]) -> list[tuple[float, re.Match[str]]]:
        return [(at, m) for at, text in list(self.lines) if (m := pattern.search(text))]

    def tail(self, count: int = 30) -> str:
        return "\n".join(text for _, text in self.lines[-count:])


def docker_time(stamp: str) -> float:
    """Seconds since the epoch of docker's RFC 3339 log timestamp (nanoseconds cut to micro)."""
    day, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{day}.{(fraction + '000000')[:6]}+00:00").timestamp()


@contextmanager
def running(
    client: docker.DockerClient, name: str, image: str, model_dir: Path, env: dict[str, str]
) -> Iterator[tuple[ServeContainer, LogWatch]]:
    """`docker run IMAGE serve` on the host network, as earthseg runs a local endpoint;
    yields the container and its log. Stopped and removed whatever happens."""
    server = ServeContainer(
        image,
        model_dir,
        environment=env,
        name=f"earthseg-bench-{name}-{os.getpid()}",
        client=client,
    ).start()
    try:
        yield server, LogWatch(server.container)
    finally:
        server.remove()


def wait_ready(
    container: Container, watch: LogWatch, started: float, port: int, log: LogPattern
) -> tuple[int, float, str]:
    """Worker count, seconds from `docker run` until every worker has its model, and how
    that was seen: by the workers' log lines, or by GET /ping when the log does not name
    the worker count. /ping is polled all along; for a server whose workers load on their
    first request, two pinging threads per worker keep a loading worker busy and reach
    the others."""
    stop = threading.Event()
    first_200: list[float] = []

    def pinger() -> None:
        connection = Connection(port, timeout=READY_TIMEOUT)
        while not stop.is_set():
            try:
                status, _ = connection.request("GET", "/ping")
            except OSError:  # not listening yet
                connection.close()
                status = 0
            if status == 200 and not first_200:
                first_200.append(time.time())
            stop.wait(0.05)
        connection.close()

    def add_pingers(count: int) -> None:
        for _ in range(count):
            threads.append(threading.Thread(target=pinger, daemon=True))
            threads[-1].start()

    threads: list[threading.Thread] = []
    add_pingers(1)
    workers = 0
    try:
        while time.time() - started < READY_TIMEOUT:
            if not workers and (announced := watch.matches(log.workers)):
                workers = int(announced[0][1].group(1))
                if log.pings_load:
                    add_pingers(2 * workers - 1)
            ready = {m.group(1): at for at, m in watch.matches(log.ready)}
            if workers and len(ready) >= workers:
                return workers, max(ready.values()) - started, "log lines"
            if not workers and first_200 and time.time() - first_200[0] > PING_GRACE:
                note = f"GET /ping: no '{log.workers.pattern}' line in the log"
                return 0, first_200[0] - started, note
            container.reload()
            if container.status not in ("created", "running"):
                raise SystemExit(f"{container.name} exited; its log:\n{watch.tail()}")
            time.sleep(0.05)
        seen = len({m.group(1) for _, m in watch.matches(log.ready)})
        raise SystemExit(
            f"{container.name}: {seen} of {workers or '?'} workers ready after "
            f"{READY_TIMEOUT:.0f} s; its log:\n{watch.tail()}"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def container_stats(container: Container) -> dict[str, Any]:
    """`docker stats` once, without waiting a second for a second sample."""
    return container.stats(stream=False, one_shot=True)


def memory_mb(container: Container) -> float:
    """Resident memory of the whole container as `docker stats` shows it: usage less the
    page cache the kernel may drop (inactive files)."""
    memory = container_stats(container)["memory_stats"]
    stats = memory.get("stats", {})
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))  # cgroup v1, v2
    return (memory["usage"] - inactive) / 1e6


def cpu_seconds(container: Container) -> float:
    """CPU time every process of the container has used so far."""
    return container_stats(container)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def bench_container(
    client: docker.DockerClient,
    name: str,
    model_dir: Path,
    env: dict[str, str],
    request: Request,
    seconds: float,
    count: int,
    floor: BareFloor | None = None,
) -> Figures:
    """Start one server, wait for its workers, check its answer, warm it up, time it;
    with `floor`, its throughput windows alternate with the bare call's."""
    image, log, tolerance = CONTAINERS[name]
    figures = Figures(image_mb=image_mb(client, image))
    with running(client, name, image, model_dir, env) as (server, watch):
        container, port = server.container, server.port
        figures.workers, figures.ready_s, figures.ready_note = wait_ready(
            container, watch, server.started, port, log
        )
        print(
            f"{name}: {figures.workers or '?'} workers ready {figures.ready_s:.2f} s after "
            f"docker run ({figures.ready_note})",
            flush=True,
        )
        connection = Connection(port)

        def post() -> tuple[int, bytes]:
            return connection.request("POST", "/invocations", request.body)

        status, answer = post()
        if status != 200:
            raise SystemExit(f"{name} answered {status} to a tile: {answer[:500]!r}")
        figures.max_difference = difference(np.load(io.BytesIO(answer)), request.expected)
        if figures.max_difference > tolerance:
            print(
                f"WARNING: {name} differs from Keras by {figures.max_difference:.1e} "
                f"(tolerance {tolerance:.0e}): its figures time different work"
            )
        # Every worker warms up (the baseline traces its predict function) under concurrent
        # load, then the single connection the latencies are timed on.
        load(port, request.body, 2 * (figures.workers or 1), WARMUP_SECONDS)
        latencies(post, WARMUP_CALLS)
        figures.p50_ms, figures.p99_ms = percentiles(latencies(post, count))
        connection.close()
        for clients in CONCURRENCIES:
            answered, taken, cpu = 0, 0.0, 0.0
            with pinging(port) as pings:  # SageMaker's health check goes on under load
                for _ in range(ROUNDS):
                    if floor is not None:
                        floor.time_window(clients, seconds / ROUNDS)
                    before = cpu_seconds(container)
                    count, spent, errors = load(port, request.body, clients, seconds / ROUNDS)
                    cpu += cpu_seconds(container) - before
                    answered, taken = answered + count, taken + spent
                    figures.errors += errors
            figures.ping_max_ms = max(pings) * 1e3 if pings else None
            figures.cpu_ms[clients] = cpu * 1e3 / answered
            figures.throughput[clients] = answered / taken
        figures.memory_mb = memory_mb(container)
    return figures


@contextmanager
def pinging(port: int, every: float = 0.1) -> Iterator[list[float]]:
    """GET /ping on a fresh connection every `every` seconds while the block runs; yields
    the list their latencies (seconds) go into."""
    seconds: list[float] = []
    stop = threading.Event()

    def pinger() -> None:
        while not stop.wait(every):
            connection = Connection(port, timeout=30.0)
            start = time.perf_counter()
            status, _ = connection.request("GET", "/ping")
            seconds.append(time.perf_counter() - start if status == 200 else float("inf"))
            connection.close()

    thread = threading.Thread(target=pinger, daemon=True)
    thread.start()
    try:
        yield seconds
    finally:
        stop.set()
        thread.join()


# The floor


class BareFloor:
    """ONNX Runtime in this process with its default options: no HTTP, no (de)serialising."""

    def __init__(self, model_dir: Path, request: Request) -> None:
        self.session = onnxruntime.InferenceSession(
            str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
        )
        self.feed = {self.session.get_inputs()[0].name: request.tile[None].astype(np.float32)}
        self.figures = Figures()
        self.figures.max_difference = difference(self.call()[0], request.expected)
        self._windows: dict[int, list[tuple[int, float, float]]] = {}

    def call(self) -> Any:
        return self.session.run(None, self.feed)

    def time_latencies(self, count: int) -> None:
        latencies(self.call, WARMUP_CALLS)
        self.figures.p50_ms, self.figures.p99_ms = percentiles(latencies(self.call, count))

    def time_window(self, concurrency: int, seconds: float) -> None:
        """Sequential calls for `seconds`, counted towards the figure shown beside the
        server's at `concurrency` (the windows alternate with the server's, so that both
        see the same state of the machine)."""
        calls, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            self.call()
            calls += 1
        window = (calls, time.perf_counter() - start, time.process_time() - cpu)
        self._windows.setdefault(concurrency, []).append(window)
        calls, taken, cpu = (sum(part) for part in zip(*self._windows[concurrency], strict=True))
        self.figures.throughput[concurrency] = calls / taken
        self.figures.cpu_ms[concurrency] = cpu * 1e3 / calls


def verdicts(results: dict[str, Figures]) -> list[tuple[str, float | None, str, float]]:
    """(what, value, "<=" or ">=", limit) per target; value None where a contender is missing."""
    serve, baseline, bare = (results.get(name, Figures()) for name in CONTENDERS)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    rows = [
        ("image size, serve / baseline", ratio(serve.image_mb, baseline.image_mb), "<=", 0.25),
        ("seconds to ready, serve", serve.ready_s, "<=", 2.0),
        ("p50 at c=1, serve / bare", ratio(serve.p50_ms, bare.p50_ms), "<=", 1.2),
    ]
    for c in CONCURRENCIES:
        rate, base_rate, bare_rate = (f.throughput.get(c) for f in (serve, baseline, bare))
        rows += [
            (f"req/s at c={c}, serve / baseline", ratio(rate, base_rate), ">=", 1.4),
            (f"req/s at c={c}, serve / bare", ratio(rate, bare_rate), ">=", 0.9),
        ]
    rows.append(("p99 / p50 at c=1, serve", ratio(serve.p99_ms, serve.p50_ms), "<=", 1.5))
    slowest_ping = None if serve.ping_max_ms is None else serve.ping_max_ms / 1e3
    rows.append((f"slowest /ping at c={CONCURRENCIES[-1]}, serve (s)", slowest_ping, "<=", 2.0))
    return rows


def report(results: dict[str, Figures], parameters: int, seconds: float, count: int) -> None:
    """The side-by-side table, then each target with PASS/MISS."""
    names = [name for name in ("baseline", "serve", "bare") if name in results]
    workers = {TITLES[name]: results[name].workers or "?" for name in names if name != "bare"}
    print(
        f"\nU-Net {TILE}x{TILE}x{BANDS} ({parameters:,} parameters), one uint8 tile per request "
        f"(.npy in and out), {os.cpu_count()} cores, workers: "
        + ", ".join(f"{title} {number}" for title, number in workers.items())
    )
    if len(set(workers.values())) > 1:
        print("WARNING: the servers ran different worker counts: pass --workers N")
    print(f"latency: {count} requests at c=1; throughput: {seconds:g} s per concurrency")
    rows: list[tuple[str, Callable[[Figures], float | None], str]] = [
        ("image size (MB)", lambda f: f.image_mb, ".0f"),
        ("ready after docker run (s)", lambda f: f.ready_s, ".2f"),
        ("p50 latency c=1 (ms)", lambda f: f.p50_ms, ".1f"),
        ("p99 latency c=1 (ms)", lambda f: f.p99_ms, ".1f"),
        *(
            (f"throughput c={c} (req/s)", lambda f, c=c: f.throughput.get(c), ".1f")
            for c in CONCURRENCIES
        ),
        *(
            (f"CPU per request c={c} (ms)", lambda f, c=c: f.cpu_ms.get(c), ".1f")
            for c in CONCURRENCIES
        ),
        ("memory after load (MB)", lambda f: f.memory_mb, ".0f"),
        (f"slowest /ping c={CONCURRENCIES[-1]} (ms)", lambda f: f.ping_max_ms, ".0f"),
        ("max |p - Keras|", lambda f: f.max_difference, ".1e"),
    ]
    print(f"{'':<28}" + "".join(f"{TITLES[name]:>16}" for name in names))
    for label, value, spec in rows:
        cells = [value(results[name]) for name in names]
        print(
            f"{label:<28}" + "".join(f"{'-' if v is None else format(v, spec):>16}" for v in cells)
        )
    if "bare" in results:
        print(
            "bare: sequential session.run calls in this process, in windows taking turns "
            "with earthseg serve's at each c"
        )
    print("CPU per request: all of a container's processes (the client not included)")
    for name in names:
        if results[name].ready_note not in ("", "log lines"):
            print(f"{TITLES[name]} ready seen by {results[name].ready_note}")
        if results[name].errors:
            print(f"{TITLES[name]}: {results[name].errors} answers were not 200")
    print()
    for what, value, sense, limit in verdicts(results):
        if value is None:
            verdict, shown = "n/a", "-"
        else:
            met = value <= limit if sense == "<=" else value >= limit
            verdict, shown = ("PASS" if met else "MISS"), f"{value:.2f}"
        print(f"{what:<36}{shown:>8}   target {sense} {limit:<6g}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="reuse the existing images")
    parser.add_argument("--seconds", type=float, default=12.0, help="per throughput figure")
    parser.add_argument("--requests", type=int, default=300, help="timed requests at c=1")
    parser.add_argument("--workers", type=int, help="workers per server (default: their own)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of " + ",".join(CONTENDERS),
    )
    args = parser.parse_args()
    contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    if unknown := set(contenders) - set(CONTENDERS):
        parser.error(f"unknown contenders {sorted(unknown)}: pick from {', '.join(CONTENDERS)}")

    load_average = os.getloadavg()[0]
    if load_average > 0.5:
        print(f"WARNING: load average {load_average:.1f}: other work here disturbs the figures")
    client = docker_client()
    if not args.skip_build:
        build_images(contenders)
    for name in CONTAINERS:
        if name in contenders:
            image_mb(client, CONTAINERS[name][0])  # missing images fail here, not minutes later
    env = {}
    if args.workers:
        env = server_environment(workers=args.workers)  # earthseg serve
        env["MODEL_SERVER_WORKERS"] = str(args.workers)  # the baseline, as AWS's example
    OUTPUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(dir=OUTPUT, prefix="serve-") as work:
        model_dir = Path(work) / "model"
        request, parameters = make_request(model_dir)
        # The floor's latency first, alone on the machine; its throughput in windows that
        # alternate with earthseg serve's (or the baseline's, without it), so that a slow
        # minute of this shared machine weighs on both sides of the ratio alike.
        floor = BareFloor(model_dir, request) if "bare" in contenders else None
        if floor is not None:
            floor.time_latencies(args.requests)
            results["bare"] = floor.figures
            print(f"bare: p50 {floor.figures.p50_ms:.1f} ms", flush=True)
        paired = "serve" if "serve" in contenders else "baseline"
        for name in ("baseline", "serve"):
            if name in contenders:
                results[name] = bench_container(
                    client,
                    name,
                    model_dir,
                    env,
                    request,
                    args.seconds,
                    args.requests,
                    floor if name == paired else None,
                )
    report(results, parameters, args.seconds, args.requests)
    summary = {
        "cores": os.cpu_count(),
        "load_average_at_start": load_average,
        "requests_at_c1": args.requests,
        "seconds_per_throughput": args.seconds,
        "contenders": {name: asdict(figures) for name, figures in results.items()},
        "targets": [
            {"what": what, "value": value, "sense": sense, "limit": limit}
            for what, value, sense, limit in verdicts(results)
        ],
    }
    (OUTPUT / "serve.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfigures in {OUTPUT / 'serve.json'}")


if __name__ == "__main__":
    main()
