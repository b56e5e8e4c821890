"""Benchmark: `earthseg fetch` beside the same GetMap requests made bare, from the local WMS.

Makes (once, cached under bench/output) an ImageLabeler sample export and the MapServer
archive of its scenes, serves the archive on loopback (`serve_wms`: mapserv runs as a CGI
process per request), fetches the export once to warm up and to learn the exact GetMap
requests fetch makes (`fetch.json`), then times in one run, `--repeats` times each taking
the median:

- bare, one at a time: the same GetMap URLs (built as `WmsClient.get_map` builds them)
  downloaded with a plain `requests.Session`, bytes only (no decode, no write);
- bare, concurrent: the same with a ThreadPoolExecutor of N threads;
- earthseg fetch with N workers, into a fresh output folder each time;

for N = 1, 2, 4, 8 (fetch's default, `TransferOptions().workers`, among them): bare and
fetch with the same N run back to back, in turns going first, so each ratio compares the
same minutes. Also: a rerun of fetch into a complete output folder, which keeps every scene
and makes no GetMap. Besides wall time, the CPU seconds of each (this process plus the
mapserv runs): mapserv shares the cores with the client here, so once they are saturated
the client's own work adds to the wall time; CPU seconds drift less on a shared machine.

Target: fetch with its default concurrency costs at most 1.2x the bare concurrent requests
with as many threads. `--profile` adds a cProfile of one default fetch.

    .venv/bin/python bench/fetch.py [--scenes 36] [--size 1024] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from earthseg.contracts.imagery import WmsRequest, read_fetch_record
from earthseg.imagery.fetch import fetch_export
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.imagery.wms import getmap_query
from earthseg.synthetic.imagelabeler import EXPORT_ZIP, IMAGERY, write_imagelabeler_sample
from earthseg.synthetic.wms_server import serve_wms

TARGET_RATIO = 1.2
CACHE = Path(__file__).resolve().parent / "output"
WORKERS = (1, 2, 4, 8)


def sample(scenes: int, size: int) -> Path:
    """Generate (once, cached under bench/output) an export of `scenes` of `size` px."""
    folder = CACHE / f"imagelabeler-{scenes}x{size}"
    if not folder.exists():
        write_imagelabeler_sample(folder, scenes=scenes, size=size, seed=0)
    return folder


def get_map_params(request: WmsRequest, layer: str) -> dict[str, str]:
    """The query `WmsClient.get_map` sends for a whole scene."""
    size = (request.width, request.height)
    return getmap_query(layer, request.bbox, size, request.time, request.format)


def bare_get(session: requests.Session, url: str, params: dict[str, str]) -> int:
    """One GetMap's bytes, checked to be an image; returns their count."""
    response = session.get(url, params=params, timeout=60)
    response.raise_for_status()
    if not response.headers.get("Content-Type", "").startswith("image/"):
        raise RuntimeError(f"GetMap answered {response.headers.get('Content-Type')}")
    return len(response.content)


def cpu_seconds() -> float:
    """CPU time of this process (client and the WMS's HTTP front) and its finished
    children (the mapserv runs)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Timing:
    """Wall and CPU seconds of each run of one contender."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def seconds(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(self.cpu)


def bare(url: str, queries: list[dict[str, str]], threads: int, into: Timing) -> int:
    """Time downloading every GetMap in a loop (`threads` 1) or from a thread pool, over
    one pooled session; return the bytes downloaded."""
    with requests.Session() as session:
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(threads, 1)))
        start, cpu = time.perf_counter(), cpu_seconds()
        if threads == 1:
            sizes = [bare_get(session, url, query) for query in queries]
        else:
            with ThreadPoolExecutor(threads) as pool:
                sizes = list(pool.map(lambda query: bare_get(session, url, query), queries))
        into.add(time.perf_counter() - start, cpu_seconds() - cpu)
    return sum(sizes)


def fetch(export: Path, out: Path, options: FetchOptions, workers: int, into: Timing) -> None:
    """Time `earthseg fetch` with `workers` into `out`."""
    start, cpu = time.perf_counter(), cpu_seconds()
    fetch_export(export, out, options, TransferOptions(workers=workers), say=lambda _: None)
    into.add(time.perf_counter() - start, cpu_seconds() - cpu)


def profile(run: Callable[[], object], lines: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(run)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(lines)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=36, help="events in the export")
    parser.add_argument("--size", type=int, default=1024, help="source scene side in pixels")
    parser.add_argument("--resolution", default="0.005deg", help="fetch --resolution")
    parser.add_argument("--margin", default="0.3deg", help="fetch --margin")
    parser.add_argument("--repeats", type=int, default=3, help="timings per contender")
    parser.add_argument("--profile", action="store_true", help="cProfile one default fetch")
    args = parser.parse_args()
    logging.getLogger("earthseg").setLevel(logging.ERROR)  # every third event has no .prj

    default = TransferOptions().workers
    workers = sorted({*WORKERS, default})
    folder = sample(args.scenes, args.size)
    export = folder / EXPORT_ZIP
    bare_t = {n: Timing() for n in workers}
    fetch_t = {n: Timing() for n in workers}
    rerun_t, warm = Timing(), Timing()
    with serve_wms(folder / IMAGERY) as url, tempfile.TemporaryDirectory(dir=CACHE) as work:
        options = FetchOptions(url=url, resolution=args.resolution, margin=args.margin)
        first = Path(work) / "first"
        fetch(export, first, options, default, warm)  # warms mapserv, the page cache, imports
        record = read_fetch_record(first)
        queries = [
            get_map_params(scene.request, layer)
            for scene in record.scenes
            for layer in scene.request.layers
        ]
        chunked = [scene.stem for scene in record.scenes if scene.requests > len(options.layers)]
        written = sum((first / scene.image).stat().st_size for scene in record.scenes)
        pixels = sum(scene.request.width * scene.request.height for scene in record.scenes)
        scenes = len(record.scenes)
        bare(url, queries[: 2 * default], default, warm)  # warm the bare client too
        transferred = 0

        for repeat in range(args.repeats):
            for n in workers:
                out = Path(work) / f"fetch-{n}-{repeat}"
                if repeat % 2:  # take turns at going first
                    fetch(export, out, options, n, fetch_t[n])
                transferred = bare(url, queries, n, bare_t[n])
                if not repeat % 2:
                    fetch(export, out, options, n, fetch_t[n])
                if n == default:
                    fetch(export, out, options, n, rerun_t)
                    kept = read_fetch_record(out).scenes
                    assert all(scene.requests == 0 for scene in kept), "the rerun fetched again"
                shutil.rmtree(out)
        if args.profile:
            out = Path(work) / "profiled"
            report = profile(lambda: fetch(export, out, options, default, Timing()))

    floor = bare_t[default].seconds
    mb_in, mb_out = transferred / 1e6, written / 1e6
    print(
        f"{scenes} scenes ({len(record.skipped)} left out) of {pixels / scenes / 1e6:.2f} Mpx "
        f"on average, cut from {args.scenes} synthetic {args.size} px sources at "
        f"{args.resolution} + {args.margin} margin; {len(queries)} GetMaps, "
        f"{mb_in:.1f} MB of {options.format} transferred, {mb_out:.1f} MB of GeoTIFF written; "
        f"{os.cpu_count()} cores shared by mapserv and the client; median of {args.repeats}"
    )
    if chunked:
        print(
            f"note: {len(chunked)} scenes were chunked by fetch; the bare requests ask for "
            "them whole"
        )
    print(
        f"{'':<40}{'seconds':>9}{'scenes/s':>10}{'MB/s in':>9}{'MB/s out':>10}"
        f"{'x bare':>8}{'CPU s':>8}"
    )
    rows = [  # name, timing, MB transferred, MB of GeoTIFF written
        ("bare GetMap, one at a time", bare_t[1], mb_in, None),
        (f"bare GetMap, {default} threads (floor)", bare_t[default], mb_in, None),
        (f"earthseg fetch, default {default} workers", fetch_t[default], mb_in, mb_out),
        ("earthseg fetch rerun, all kept", rerun_t, None, None),
    ]
    for name, timing, into, out_of in rows:
        seconds = timing.seconds
        rate_in = f"{into / seconds:>9.1f}" if into else f"{'':>9}"
        rate_out = f"{out_of / seconds:>10.1f}" if out_of else f"{'':>10}"
        print(
            f"{name:<40}{seconds:>9.2f}{scenes / seconds:>10.1f}{rate_in}{rate_out}"
            f"{seconds / floor:>8.2f}{timing.cpu_seconds:>8.2f}"
        )
    print(
        "CPU s: this process (client and the WMS's HTTP front) plus the mapserv runs; "
        f"{os.cpu_count()} cores give at most {os.cpu_count()} CPU s a second"
    )
    print("concurrency (threads for bare, --workers for fetch):")
    print(
        f"{'workers':>10}{'bare s':>9}{'fetch s':>9}{'fetch/bare':>12}{'scenes/s':>10}"
        f"{'bare CPU s':>12}{'fetch CPU s':>13}"
    )
    for n in workers:
        mark = " (default)" if n == default else ""
        b, f = bare_t[n], fetch_t[n]
        print(
            f"{n:>10}{b.seconds:>9.2f}{f.seconds:>9.2f}{f.seconds / b.seconds:>12.2f}"
            f"{scenes / f.seconds:>10.1f}{b.cpu_seconds:>12.2f}{f.cpu_seconds:>13.2f}{mark}"
        )
    ratio = fetch_t[default].seconds / floor
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    pairs = zip(fetch_t[default].wall, bare_t[default].wall, strict=True)
    runs = ", ".join(f"{f:.2f}/{b:.2f}" for f, b in pairs)
    print(
        f"fetch / bare concurrent = {ratio:.2f} at {default} workers: {verdict} "
        f"(target <= {TARGET_RATIO}; runs, fetch/bare s: {runs})"
    )
    cpu_ratio = fetch_t[default].cpu_seconds / bare_t[default].cpu_seconds
    print(
        f"fetch / bare concurrent in CPU s = {cpu_ratio:.2f}: with the cores saturated "
        "(mapserv runs beside the client) the wall ratio approaches it when nothing else runs"
    )
    fastest = min(workers, key=lambda n: fetch_t[n].seconds)
    print(
        f"fastest fetch: {fastest} workers ({fetch_t[fastest].seconds:.2f} s); the default "
        f"{default} takes {fetch_t[default].seconds / fetch_t[fastest].seconds:.2f}x that"
    )
    if args.profile:
        print(report)


if __name__ == "__main__":
    main()
