"""Serve a WMS archive (`earthseg.synthetic.wms_archive`) over HTTP on loopback by running
MapServer's CGI binary once per request: a real WMS standing in for NASA GIBS in tests,
the benchmark and the demo, without Apache or FastCGI.

Clients call `http://127.0.0.1:PORT/wms?SERVICE=WMS&...` with no `map=`: the archive's
`mapserver.conf` names the mapfile. MapServer answers WMS errors as XML with HTTP 200;
they are relayed as they are. Set EARTHSEG_WMS_LOG=1 to log requests and mapserv's stderr.

    python -m earthseg.synthetic.wms_server ARCHIVE [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from earthseg.errors import InputError
from earthseg.synthetic.wms_archive import CONFIG

MAPSERV = Path("/usr/lib/cgi-bin/mapserv")  # Debian's cgi-mapserver
ENDPOINT = "/wms"
HOST = "127.0.0.1"
LOG_ENV = "EARTHSEG_WMS_LOG"
TIMEOUT = 120  # seconds for one mapserv run
INSTALL_FIX = (
    "run scripts/ensure-mapserver.sh (as root), or: "
    "sudo apt-get install --no-install-recommends cgi-mapserver mapserver-bin"
)


def find_mapserv() -> Path:
    """MapServer's CGI binary (Debian's, else `mapserv` on PATH)."""
    if os.access(MAPSERV, os.X_OK):
        return MAPSERV
    found = shutil.which("mapserv")
    if found is None:
        raise InputError("mapserv", "MapServer's CGI binary is not installed", INSTALL_FIX)
    return Path(found)


@contextlib.contextmanager
def serve_wms(archive: Path, port: int = 0) -> Iterator[str]:
    """Serve `archive` on 127.0.0.1:`port` (0: a free port) for the `with` block; yield
    the WMS base URL, e.g. http://127.0.0.1:8080/wms."""
    archive = Path(archive).resolve()
    if not (archive / CONFIG).is_file():
        raise InputError(archive, f"has no {CONFIG}", "give a folder written by write_wms_archive")
    mapserv = find_mapserv()
    try:
        server = _Server((HOST, port), archive, mapserv)
    except OSError as error:
        raise InputError(
            f"port {port}", f"cannot be listened on ({error})", "choose a free port, or 0 for any"
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="wms-server", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}{ENDPOINT}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], archive: Path, mapserv: Path) -> None:
        super().__init__(address, _Handler)
        self.archive = archive
        self.mapserv = mapserv

    def handle_error(self, request: Any, client_address: Any) -> None:
        if _verbose():  # e.g. a client that hung up; the server carries on either way
            super().handle_error(request, client_address)

    def run_mapserv(self, query: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """One CGI run of mapserv: its status, headers and body."""
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "MAPSERVER_CONFIG_FILE": str(self.archive / CONFIG),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": "GET",
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": HOST,  # with the next two: the OnlineResource in Capabilities
            "SERVER_PORT": str(self.server_address[1]),
            "SCRIPT_NAME": ENDPOINT,
        }
        done = subprocess.run(
            [str(self.mapserv)],
            env=environment,  # not ours: a wheel's PROJ_DATA would not fit Debian's PROJ
            cwd=self.archive,  # mapserver.conf's paths are relative to the archive
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.stderr and _verbose():
            sys.stderr.write(done.stderr.decode(errors="replace"))
        return parse_cgi(done.stdout)


def parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a CGI program's output (RFC 3875: a `Status` header,
    else 200; an output without headers is a server error)."""
    ends = [(output.find(mark), len(mark)) for mark in (b"\r\n\r\n", b"\n\n")]
    found = [(at, size) for at, size in ends if at >= 0]
    if not found:
        return HTTPStatus.BAD_GATEWAY, [("Content-Type", "text/plain")], b"mapserv sent no headers"
    at, size = min(found)
    status, headers = int(HTTPStatus.OK), []
    for line in output[:at].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers.append((name.strip(), value.strip()))
    return status, headers, output[at + size :]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, for clients with connection pools

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.rstrip("/") != ENDPOINT:
            self._reply(HTTPStatus.NOT_FOUND, [], f"the WMS is at {ENDPOINT}\n".encode())
            return
        try:
            status, headers, body = self.server.run_mapserv(query)
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            self._reply(HTTPStatus.BAD_GATEWAY, [], f"mapserv failed: {error}\n".encode())
            return
        self._reply(status, headers, body)

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if _verbose():
            super().log_message(format, *args)


def _verbose() -> bool:
    return os.environ.get(LOG_ENV, "") not in ("", "0")


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m earthseg.synthetic.wms_server",
        description="Serve a WMS archive with MapServer on loopback until SIGTERM or Ctrl-C; "
        "prints the WMS URL.",
    )
    parser.add_argument("archive", type=Path, help="a folder written by write_wms_archive")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: ignored in background jobs
        signal.signal(signum, _stop)
    try:
        with serve_wms(args.archive, args.port) as url:
            print(url, flush=True)
            threading.Event().wait()
    except InputError as error:
        print(f"wms_server: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
