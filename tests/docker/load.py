"""Load on a serve container from this host, and the container's processes as the host sees
them: many requests from a pool of threads with every outcome kept (with the client-side
port of the connection that carried it), resident memory per process, the connections a
worker holds and the core locks it has taken.

The container runs on the host network and these tests run as root, so its gunicorn master
(the container's PID 1) and workers are ordinary processes here, and a worker's sockets are
the other ends of this host's connections to the server's port.
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from earthseg.local.endpoint import ServeContainer

T = TypeVar("T")
READY = re.compile(r"earthseg serve: worker (\d+) ready")
REQUEST_TIMEOUT_S = 30.0  # no request here should take a tenth of it: a hang fails, not waits
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str
    accept: str


@dataclass(frozen=True)
class Outcome:
    """What became of one request."""

    index: int
    port: int  # client-side port of its connection (0: the connection never opened)
    status: int | None  # None: no answer (refused, reset, closed, timed out)
    problem: str  # "" when the answer is the one expected
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.problem


# request index -> the request; (index, answer body) -> None, or raises if the body is wrong
RequestFor = Callable[[int], Request]
Check = Callable[[int, bytes], None]


def send(connection: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
    headers = {"Content-Type": request.content_type, "Accept": request.accept}
    connection.request("POST", "/invocations", request.body, headers)
    answer = connection.getresponse()
    return answer.status, answer.read()


def outcome(
    connection: http.client.HTTPConnection, index: int, request: Request, check: Check
) -> Outcome:
    """Send one request on `connection` (opened here if not yet) and judge its answer."""
    start, port, status, problem = time.perf_counter(), 0, None, ""
    try:
        if connection.sock is None:
            connection.connect()
        port = connection.sock.getsockname()[1]
        status, body = send(connection, request)
        if status == 200:
            check(index, body)
        else:
            problem = f"HTTP {status}: {body[:300]!r}"
    except Exception as error:  # every failure is an outcome to report, not a crash
        problem = f"{type(error).__name__}: {error}"
        connection.close()  # a broken connection is not used again
    return Outcome(index, port, status, problem, time.perf_counter() - start)


class Progress:
    """A count of finished requests, shared by the load's threads: every `every` requests,
    `callback(count)` runs in the thread that finished the last of them."""

    def __init__(self, every: int = 0, callback: Callable[[int], None] | None = None) -> None:
        self.every = every
        self.callback = callback
        self.done = 0
        self._lock = threading.Lock()

    def finished(self) -> None:
        with self._lock:
            self.done += 1
            count = self.done
        if self.callback is not None and self.every and count % self.every == 0:
            self.callback(count)


def keepalive_load(
    port: int,
    total: int,
    concurrency: int,
    request_for: RequestFor,
    check: Check,
    progress: Progress | None = None,
    on_connect: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """`total` requests from `concurrency` threads, each on one keep-alive connection (as a
    load balancer in front of an endpoint sends them); `on_connect(client_port)` once a
    thread's first answer has come (the server has accepted its connection by then)."""
    indices = itertools.count()
    progress = progress or Progress()

    def thread() -> list[Outcome]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        outcomes: list[Outcome] = []
        try:
            while (index := next(indices)) < total:  # next() of a count is atomic in CPython
                result = outcome(connection, index, request_for(index), check)
                if on_connect is not None and not outcomes and result.status is not None:
                    on_connect(result.port)
                outcomes.append(result)
                progress.finished()
        finally:
            connection.close()
        return outcomes

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(thread) for _ in range(concurrency)]
        outcomes = [result for future in futures for result in future.result()]
    return sorted(outcomes, key=lambda result: result.index)


class FreshConnectionLoad:
    """Requests from `concurrency` threads, each on a connection of its own (closed after
    its answer), until stopped: every request's connection, and so the worker holding it,
    is known by its client-side port."""

    def __init__(self, port: int, concurrency: int, request_for: RequestFor, check: Check) -> None:
        self.port = port
        self.concurrency = concurrency
        self.request_for = request_for
        self.check = check
        self.outcomes: list[Outcome] = []
        self._indices = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def one(self, index: int | None = None) -> Outcome:
        """One request on a connection of its own, closed once answered."""
        index = next(self._indices) if index is None else index
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            return outcome(connection, index, self.request_for(index), self.check)
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.outcomes.append(self.one())  # list.append is atomic

    def __enter__(self) -> FreshConnectionLoad:
        self._threads = [threading.Thread(target=self._run) for _ in range(self.concurrency)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 5)

    def answered_since(self, index: int) -> int:
        return sum(1 for result in self.outcomes if result.index >= index and result.ok)


# The container's processes, seen from the host.


def master(server: ServeContainer) -> psutil.Process:
    """The gunicorn master: the container's PID 1, or LookupError if this host cannot see
    or inspect it (an engine on another machine or in a VM, or not root here)."""
    server.container.reload()
    try:
        process = psutil.Process(server.container.attrs["State"]["Pid"])
        if container_pid(process) != 1:
            raise psutil.NoSuchProcess(process.pid)
        process.net_connections()  # /proc/PID/fd of a process of another user: root only
    except (psutil.Error, OSError) as error:
        raise LookupError(
            f"the serve container's processes are not visible here ({error!r}): these tests "
            "need the engine on this machine and root"
        ) from None
    return process


def workers(arbiter: psutil.Process) -> list[psutil.Process]:
    """The master's live workers (not one that died and awaits reaping)."""
    alive = []
    for child in arbiter.children():
        with suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    return alive


def container_pid(process: psutil.Process) -> int:
    """A host process's PID inside its container (the PID its log lines carry)."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(re.search(r"^NSpid:.*\s(\d+)$", status, re.MULTILINE)[1])  # type: ignore[index]


def resident(arbiter: psutil.Process) -> dict[int, int]:
    """Resident bytes of the master and each of its workers, by host PID."""
    return {process.pid: process.memory_info().rss for process in [arbiter, *workers(arbiter)]}


def peer_ports(process: psutil.Process, server_port: int) -> set[int]:
    """Client-side ports of the connections to `server_port` that `process` holds."""
    return {
        connection.raddr.port
        for connection in process.net_connections(kind="tcp")
        if connection.raddr and connection.laddr.port == server_port
    }


def holder(arbiter: psutil.Process, server_port: int, client_port: int) -> psutil.Process | None:
    """The worker holding the server side of the connection from `client_port`, if any
    (none while the connection waits in the listening socket's queue)."""
    for worker in workers(arbiter):
        try:
            if client_port in peer_ports(worker, server_port):
                return worker
        except psutil.NoSuchProcess:
            continue
    return None


def core_locks(arbiter: psutil.Process) -> dict[str, set[int]]:
    """The CoreSlots lock files of the server (earthseg.serve.cores), each with the host
    PIDs holding a lock on it now (from /proc/locks; an empty set: free)."""
    files = {
        _file_id(path): path.name
        for path in Path(f"/proc/{arbiter.pid}/root").glob("tmp/earthseg-cores-*/core-*")
    }
    held: dict[str, set[int]] = {name: set() for name in files.values()}
    for line in Path("/proc/locks").read_text().splitlines():
        # "1: FLOCK  ADVISORY  WRITE 5836 fe:00:1442731 0 EOF"; a waiter's has "1: -> FLOCK"
        fields = line.split()
        if fields[1] == "FLOCK" and fields[5] in files:
            held[files[fields[5]]].add(int(fields[4]))
    return held


def _file_id(path: Path) -> str:
    """A file's device and inode as /proc/locks writes them: "00:32:2031897"."""
    stat = path.stat()
    return f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"


def stop(process: psutil.Process, timeout_s: float = 5.0) -> None:
    """SIGSTOP, and wait until every thread of the process has stopped (the signal is
    delivered when sent, obeyed by each thread when it next runs)."""
    process.suspend()
    tasks = Path(f"/proc/{process.pid}/task")

    def stopped() -> bool:
        # /proc/PID/task/TID/stat: "TID (name) STATE ...", T when stopped by a signal
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()
        ]
        return all(state == "T" for state in states)

    wait_until(stopped, lambda: f"process {process.pid} stopped", timeout_s)


def ready_workers(server: ServeContainer) -> int:
    return len(READY.findall(server.logs()))


def wait_until(
    condition: Callable[[], object], what: Callable[[], str], timeout_s: float = STARTUP_TIMEOUT_S
) -> float:
    """Poll `condition` until true: the seconds it took, or an AssertionError saying `what()`
    was awaited."""
    return wait_for(condition, what, timeout_s)[1]


def wait_for(
    find: Callable[[], T | None], what: Callable[[], str], timeout_s: float = STARTUP_TIMEOUT_S
) -> tuple[T, float]:
    """Poll `find` until it gives something: that, and the seconds it took; or an
    AssertionError saying `what()` was awaited."""
    start = time.monotonic()
    while not (found := find()):
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what()}")
        time.sleep(0.005)
    return found, time.monotonic() - start


@contextmanager
def running(server: ServeContainer, workers_expected: int) -> Iterator[ServeContainer]:
    """`server` started, every one of its workers ready; removed afterwards."""
    server.start()
    try:
        server.wait_ready()
        wait_until(
            lambda: ready_workers(server) >= workers_expected,
            lambda: f"{workers_expected} workers ready; the log:\n{server.logs()}",
        )
        yield server
    finally:
        server.remove()
