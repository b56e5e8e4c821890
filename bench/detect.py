"""Benchmark: whole scenes through the default model in-process, streamed by rows, beside
the bare ONNX Runtime floor over the same pixels.

Synthetic scenes (uint8 RGB GeoTIFFs in EPSG:4326 as `earthseg fetch` writes them: tiled
256, zstd, an internal nodata mask over a swath edge and a gap) of 8192 x 8192 and
16384 x 16384 px are made once, in strips, and kept under bench/output/detect/ with the
default model (the seeded U-Net: tile 256 as preprocessing's default, filters and depth
as training's). Each measurement runs in a subprocess of its own, and its peak resident
memory is that process's VmHWM (not `ru_maxrss`, which Linux carries over `exec`):

- stream: `earthseg detect`'s per-scene work, `detect_scene` (earthseg.detect.run) with
  the model in-process as `load_predictor` makes it: the scene read, predicted and
  blended in rows of windows with the default window size and overlap, written as a
  mask COG as rows finish (overviews included), and its events collected from the same
  rows and written; windows holding no valid pixel are not run (the swath edge). The
  threshold is THRESHOLD (below), not the untrained model's card's;
- floor: a bare `onnxruntime.InferenceSession` (default options, every core) run on
  the same pixels in 256 x 256 windows without overlap, batch 1, reading the scene one
  row of windows at a time; reading is inside its time (and shown apart), as it is in
  the stream's;
- memory (scenes up to 8192 px): the method before streaming, the scene read whole
  (`read_raster`), `predict_images` over it in 256 px windows with the default overlap,
  and its mask written as one GeoTIFF (`mask_geotiff`).

Model loading is outside every time. Mpx/s counts the scene's pixels, nodata included.
Targets: stream >= 1 Mpx/s on every scene, >= 0.8x the floor's Mpx/s on every scene,
and a peak RSS under 1 GB (10^9 bytes) for the largest scene. Figures also go to
bench/output/detect.json. This machine is shared: the load average is shown beside each
figure (a run of ours on both cores counts 2 in it), and CPU seconds too.

Experiments on the stream (its sessions are then made here, not by OnnxModel):
`--window-pixels` (window size), `--fit` (windows shrunk to cover the scene evenly),
`--sessions N` (N single-threaded sessions running a batch's windows side by side,
instead of one session on every core), `--batch`, `--threads`, `--overlap`, `--no-mem-pattern`
(ONNX Runtime's memory pattern off), and for every method `--gdal-cache-mb` (GDAL's
block cache, by default 5 % of the RAM). `--sizes 16384x2048` times a strip of a scene:
memory follows the width. `--quick`: small scenes, a smoke run.

    .venv/bin/python bench/detect.py [--quick] [--sizes 8192,16384] [--methods ...]
        [--repeats 1] [--window-pixels N] [--fit] [--sessions N] [--batch N]
        [--threads N] [--overlap N] [--no-mem-pattern] [--gdal-cache-mb N] [--threshold P]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
WORK = OUTPUT / "detect"
SIZES = (8192, 16384)
QUICK_SIZES = (1024, 2048)
MEMORY_METHOD_MAX = 8192  # the whole-in-memory method runs on scenes up to this side
METHODS = ("floor", "stream", "memory")
TITLES = {"floor": "floor (bare ORT)", "stream": "stream (detect)", "memory": "in memory"}
BANDS = 3
STRIP = 256  # rows written (and read by the floor) at a time: one row of 256 px tiles
DEGREES = 0.0025  # pixel size of the synthetic scenes
RATE_TARGET = 1.0  # Mpx/s, stream
RATIO_TARGET = 0.8  # stream Mpx/s / floor Mpx/s
MEMORY_TARGET_MB = 1000.0  # peak RSS of the stream on the largest scene
# Above every probability of the untrained model (at most ~0.7): its output is a per-pixel
# checkerboard, so at the card's 0.5 three pixels in four are positive in isolated specks
# (5 M events in the 16384 px scene), a load no trained model gives. Events are then
# scanned for in every block, and none traced: the cost of a scene without dust.
THRESHOLD = 0.99


# The model and the scenes


def default_model() -> Path:
    """The default U-Net (seed 0) as `earthseg train` exports it, made once."""
    from earthseg.preprocess.options import PreprocessOptions
    from earthseg.train.hyperparameters import Hyperparameters

    tile, defaults = PreprocessOptions().tile_size, Hyperparameters()
    folder = WORK / f"model-{tile}-{defaults.filters}-{defaults.depth}"
    if not (folder / "earthseg.json").is_file():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from earthseg.atomic import atomic_dir
        from earthseg.train.seeded_model import export_seeded_model

        print(f"exporting the default model into {folder}", flush=True)
        with atomic_dir(folder) as partial:
            export_seeded_model(
                partial, tile=tile, bands=BANDS, filters=defaults.filters, depth=defaults.depth
            )
    return folder


Size = tuple[int, int]  # a scene's width and height in px


def scene(size: Size) -> Path:
    """A synthetic scene of `size` px, made once, strip by strip."""
    path = WORK / f"scene-{label(size)}.tif"
    if not path.is_file():
        print(f"writing {path.name}", flush=True)
        write_scene(path, size)
    return path


def label(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def parse_size(text: str) -> Size:
    """`8192` (square) or `16384x2048` (width x height)."""
    width, _, height = text.partition("x")
    return int(width), int(height or width)


def write_scene(path: Path, size: Size) -> None:
    """Smooth colour fields with noise, nodata left of a wavy swath edge and in one gap;
    written as `earthseg fetch` writes scenes (tiled, zstd, internal mask)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from earthseg.atomic import atomic_file

    profile = {
        "driver": "GTiff",
        "width": size[0],
        "height": size[1],
        "count": BANDS,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_origin(-150.0, 75.0, DEGREES, DEGREES),
        "compress": "zstd",
        "zstd_level": 1,
        "predictor": 2,
        "tiled": True,
        "blockxsize": STRIP,
        "blockysize": STRIP,
        "interleave": "pixel",
        "photometric": "RGB",
        "bigtiff": "IF_SAFER",
    }
    rng = np.random.default_rng(0)
    with (
        atomic_file(path) as partial,
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(partial, "w", **profile) as dataset,
    ):
        for top in range(0, size[1], STRIP):
            rows = min(STRIP, size[1] - top)
            pixels, valid = scene_strip(size, top, rows, rng)
            window = Window(0, top, size[0], rows)
            dataset.write(np.moveaxis(pixels, -1, 0), window=window)
            dataset.write_mask(valid.astype(np.uint8) * 255, window=window)


def scene_strip(
    size: Size, top: int, rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rows [top, top + rows) of a scene: (rows, width, 3) uint8 pixels, (rows, width) valid."""
    width, height = size
    y = np.arange(top, top + rows, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    field_a = np.sin(x / 233 + y / 517) * np.cos(y / 181)
    field_b = np.cos(x / 371 - y / 293)
    bands = [110 + 70 * field_a, 120 + 60 * field_b, 100 + 40 * (field_a * field_b)]
    pixels = np.stack(bands, axis=-1) + rng.integers(0, 24, (rows, width, BANDS))
    edge = width * (0.08 + 0.05 * np.sin(y / (width / 6)))  # a swath's wavy edge
    valid = x >= edge
    gap_rows = (y >= 0.45 * height) & (y < 0.5 * height)
    valid &= ~(gap_rows & (x >= 0.6 * width) & (x < 0.75 * width))
    pixels = np.clip(pixels, 1, 255).astype(np.uint8)
    pixels[~valid] = 0
    return pixels, valid


# One measurement (in its own process)


@dataclass
class Figures:
    """What one run of one method on one scene measured."""

    method: str
    size: Size
    seconds: float = 0.0  # wall time of the timed part
    cpu_seconds: float = 0.0  # this process's user + system time in it
    model_seconds: float = 0.0  # inside ONNX Runtime runs
    read_seconds: float | None = None  # reading pixels (the floor only)
    load_seconds: float = 0.0  # loading the model (not timed)
    base_rss_mb: float = 0.0  # resident after imports and model load
    peak_rss_mb: float = 0.0  # the process's peak resident memory
    window: tuple[int, int] = (0, 0)
    windows: int = 0
    note: str = ""
    load_before: float = 0.0  # 1-minute load average before and after
    load_after: float = 0.0

    @property
    def megapixels_per_second(self) -> float:
        return self.size[0] * self.size[1] / 1e6 / self.seconds


class Timed:
    """A model run function, its calls counted and timed."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        self.run, self.seconds, self.windows = run, 0.0, 0

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        answer = self.run(tiles)
        self.seconds += time.perf_counter() - start
        self.windows += len(tiles)
        return answer


class SessionsRun:
    """ONNX Runtime sessions made here rather than by OnnxModel, to try other ways:
    `count` sessions of `threads` threads each, each running its share of a batch's
    windows in a thread of its own (ONNX Runtime lets go of the GIL)."""

    def __init__(self, model_dir: Path, count: int, threads: int, mem_pattern: bool) -> None:
        import onnxruntime

        from earthseg.contracts.model_card import ONNX_FILE, read_model_card

        self.card = read_model_card(model_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: every core
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as OnnxModel
        options.enable_mem_pattern = mem_pattern
        self.sessions = [
            onnxruntime.InferenceSession(
                str(model_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
            for _ in range(count)
        ]
        self.pool = ThreadPoolExecutor(count) if count > 1 else None

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Session i runs windows i, i + count, ... of the batch, one at a time."""
        graph = self.card.onnx
        answer = np.empty(tiles.shape[:3], np.float32)

        def share(index: int) -> None:
            session = self.sessions[index]
            for window in range(index, len(tiles), len(self.sessions)):
                batch = tiles[window : window + 1].astype(np.float32)
                (output,) = session.run([graph.output], {graph.input: batch})
                answer[window] = np.asarray(output).reshape(batch.shape[1:3])

        if self.pool is None:
            share(0)
        else:
            for done in [self.pool.submit(share, i) for i in range(len(self.sessions))]:
                done.result()
        return answer


class StreamedScene:
    """A scene through `run` in streamed rows of windows as `Predictor.rows` does it, but
    with any run function and batch: what the experiments change."""

    def __init__(
        self,
        path: Path,
        model_dir: Path,
        run: Callable[[np.ndarray], np.ndarray],
        window_pixels: int,
        batch: int,
        threshold: float,
        fit: bool,
        overlap: int | None,
    ) -> None:
        from earthseg.contracts.model_card import read_model_card
        from earthseg.serve.scene import scene_grid
        from earthseg.serve.windows import default_overlap

        self.path, self.run, self.batch = path, run, batch
        self.card = read_model_card(model_dir)
        self.grid = scene_grid(path, self.card.input.bands, (self.card.input.source_dtype,))
        self.threshold = threshold
        self.overlap = default_overlap(self.card.input.tile_size) if overlap is None else overlap
        self.window_pixels, self.fit = window_pixels, fit

    def window(self) -> tuple[int, int]:
        from earthseg.serve.stream import window_shape

        tile, multiple = self.card.input.tile_size, self.card.onnx.window_multiple
        height, width = self.grid.height, self.grid.width
        if self.fit and multiple is not None:
            return fitted_window(tile, multiple, height, width, self.window_pixels, self.overlap)
        return window_shape(tile, multiple, height, width, self.window_pixels)

    def rows(self) -> Iterator[Any]:
        import rasterio

        from earthseg.serve.stream import RasterSource, stream_probabilities

        with rasterio.open(self.path) as dataset:
            yield from stream_probabilities(
                RasterSource(dataset), self.run, self.window(), self.overlap, batch=self.batch
            )


def fitted_window(
    tile: tuple[int, int], multiple: int, height: int, width: int, pixels: int, overlap: int
) -> tuple[int, int]:
    """Like earthseg.serve.stream.window_shape, but each side shrunk to the smallest
    multiple that covers the scene with as many windows as the side of `pixels` needs,
    so that the last window of a row or column does not overlap its neighbour needlessly
    (16384 px in 768 px windows: 24 of 752 px do, 1.21x the pixels run instead of 1.27x)."""
    target = max(multiple, int(pixels**0.5) // multiple * multiple)

    def fit(length: int, tile_side: int) -> int:
        if length <= target:
            return max(tile_side, length // multiple * multiple)
        count = math.ceil((length - overlap) / (target - overlap))
        side = math.ceil((length + (count - 1) * overlap) / count / multiple) * multiple
        return max(tile_side, side)

    return fit(height, tile[0]), fit(width, tile[1])


class FixedModel:
    """`earthseg detect`'s SceneModel for one scene prediction made here."""

    identity = "bench"

    def __init__(self, scene: Any) -> None:
        self.scene = scene

    def prepare(self, scenes: Any) -> None:
        return None

    def open(self, scene: Any) -> Any:
        return self.scene


def measure_stream(
    figures: Figures, path: Path, model_dir: Path, out: Path, args: argparse.Namespace
) -> None:
    start = time.perf_counter()
    scene: Any
    threads = (0 if args.sessions == 1 else 1) if args.threads is None else args.threads
    if not experiment(args):  # the code as earthseg runs it
        from earthseg.serve.predictor import load_predictor
        from earthseg.serve.scene import LocalScene

        predictor = load_predictor(model_dir)  # as `earthseg detect` and `predict` load it
        predictor.window_pixels = args.window_pixels
        model = predictor.model
        run = Timed(model.probabilities)
        model.probabilities = run  # type: ignore[method-assign]  # timed, as Predictor calls it
        figures.window = predictor.window(figures.size[1], figures.size[0])
        scene = LocalScene(predictor, path, args.threshold)
    else:
        sessions = SessionsRun(model_dir, args.sessions, threads, args.mem_pattern)
        run = Timed(sessions)
        scene = StreamedScene(
            path,
            model_dir,
            run,
            args.window_pixels,
            args.batch,
            args.threshold,
            args.fit,
            args.overlap,
        )
        figures.window = scene.window()
    figures.load_seconds = time.perf_counter() - start
    figures.base_rss_mb = resident_mb()
    from earthseg.detect.events import SceneKey
    from earthseg.detect.options import DetectOptions
    from earthseg.detect.run import EVENTS, MASKS, detect_scene
    from earthseg.detect.scenes import SceneInput

    for folder in (MASKS, EVENTS):
        (out / folder).mkdir()
    options = DetectOptions(threshold=args.threshold)
    key = SceneInput(path, SceneKey(path.stem, None, None))
    with timed(figures):
        found = detect_scene(key, FixedModel(scene), out, options, "bench")
    figures.note = f"earthseg detect's detect_scene: mask COG + events ({len(found.events)} found)"
    figures.note += f"; threshold {args.threshold:g}"
    if experiment(args):
        figures.note += (
            f"; experiment: {args.sessions} session(s) of {threads or 'every core'} "
            f"thread(s), batch {args.batch}, mem_pattern {args.mem_pattern}, fit {args.fit}, "
            f"overlap {scene.overlap}"
        )
    figures.model_seconds, figures.windows = run.seconds, run.windows


def experiment(args: argparse.Namespace) -> bool:
    """Whether the stream runs sessions made here (SessionsRun) rather than OnnxModel's."""
    default = (1, 1, None, True, False, None)
    chosen = (args.sessions, args.batch, args.threads, args.mem_pattern, args.fit, args.overlap)
    return chosen != default


def measure_floor(figures: Figures, path: Path, model_dir: Path) -> None:
    import onnxruntime
    import rasterio
    from rasterio.windows import Window

    from earthseg.contracts.model_card import ONNX_FILE

    start = time.perf_counter()
    session = onnxruntime.InferenceSession(
        str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    feed_name = session.get_inputs()[0].name
    figures.load_seconds = time.perf_counter() - start
    figures.window = (STRIP, STRIP)
    figures.note = "default session options; reading inside the time"
    figures.base_rss_mb = resident_mb()
    read = running = 0.0
    with timed(figures), rasterio.open(path) as dataset:
        if dataset.width % STRIP or dataset.height % STRIP:
            raise SystemExit(f"{path}: the floor needs a scene of whole {STRIP} px windows")
        for top in range(0, dataset.height, STRIP):
            began = time.perf_counter()
            strip = np.moveaxis(dataset.read(window=Window(0, top, dataset.width, STRIP)), 0, -1)
            read += time.perf_counter() - began
            for left in range(0, dataset.width, STRIP):
                began = time.perf_counter()
                tile = strip[np.newaxis, :, left : left + STRIP].astype(np.float32)
                session.run(None, {feed_name: tile})
                running += time.perf_counter() - began
                figures.windows += 1
    figures.read_seconds, figures.model_seconds = read, running


def measure_memory(figures: Figures, path: Path, model_dir: Path, out: Path) -> None:
    import rasterio

    from earthseg.serve.artifact import OnnxModel
    from earthseg.serve.geo import mask_geotiff, read_raster
    from earthseg.serve.predictor import Prediction
    from earthseg.serve.windows import default_overlap, predict_images

    start = time.perf_counter()
    model = OnnxModel(model_dir)
    run = Timed(model.probabilities)
    tile = model.card.input.tile_size
    figures.load_seconds = time.perf_counter() - start
    figures.window = tile
    figures.note = "read_raster + predict_images (batch 8) + mask_geotiff"
    figures.base_rss_mb = resident_mb()
    with timed(figures):
        with rasterio.open(path) as dataset:
            raster = read_raster(dataset)
        probabilities = predict_images(raster.pixels[np.newaxis], run, tile, default_overlap(tile))
        probabilities[~raster.valid[np.newaxis]] = np.nan
        prediction = Prediction(
            probabilities, raster.valid[np.newaxis], model.card.threshold, raster.grid, True
        )
        (out / "mask.tif").write_bytes(mask_geotiff(prediction.mask()[0], raster.grid))
    figures.model_seconds, figures.windows = run.seconds, run.windows


@contextlib.contextmanager
def timed(figures: Figures) -> Iterator[None]:
    """Wall and CPU time (user + system, every thread) of a block into `figures`."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    figures.seconds = time.perf_counter() - wall
    figures.cpu_seconds = time.process_time() - cpu


def resident_mb() -> float:
    return status_kb("VmRSS") * 1024 / 1e6


def peak_resident_mb() -> float:
    """This process's peak RSS since it started this program: VmHWM, not ru_maxrss, which
    Linux carries over `exec` from the parent (whose TensorFlow export would count)."""
    return status_kb("VmHWM") * 1024 / 1e6


def status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise SystemExit(f"/proc/self/status has no {field_name}: Linux only")


def child(args: argparse.Namespace) -> None:
    """One measurement; its figures as JSON on the last line of stdout."""
    import rasterio

    path = Path(args.scene)
    figures = Figures(method=args.child, size=parse_size(args.size))
    model_dir = Path(args.model)
    # rasterio hands GDAL_CACHEMAX to GDALSetCacheMax64: an int is bytes, process-wide.
    cache = {} if args.gdal_cache_mb is None else {"GDAL_CACHEMAX": args.gdal_cache_mb * 10**6}
    with (
        rasterio.Env(**cache),
        tempfile.TemporaryDirectory(dir=WORK, prefix="run-") as folder,
    ):
        if args.child == "stream":
            measure_stream(figures, path, model_dir, Path(folder), args)
        elif args.child == "floor":
            measure_floor(figures, path, model_dir)
        else:
            measure_memory(figures, path, model_dir, Path(folder))
    figures.peak_rss_mb = peak_resident_mb()
    if args.gdal_cache_mb is not None:
        figures.note += f"; GDAL cache {args.gdal_cache_mb} MB"
    print(json.dumps(asdict(figures)), flush=True)


def run_child(method: str, size: Size, model: Path, args: argparse.Namespace) -> Figures:
    """`method` on the scene of `size` px in a fresh interpreter."""
    command = [sys.executable, __file__, "--child", method, "--size", label(size)]
    command += ["--scene", str(scene(size)), "--model", str(model)]
    forwarded = ("window_pixels", "sessions", "batch", "threshold", "threads", "overlap")
    for name in (*forwarded, "gdal_cache_mb"):
        if getattr(args, name) is not None:
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if not args.mem_pattern:
        command.append("--no-mem-pattern")
    if args.fit:
        command.append("--fit")
    before = os.getloadavg()[0]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{method} on the {label(size)} px scene failed (see above)")
    values = json.loads(done.stdout.strip().splitlines()[-1])
    values["window"], values["size"] = tuple(values["window"]), tuple(values["size"])
    figures = Figures(**values)
    figures.load_before, figures.load_after = before, os.getloadavg()[0]
    return figures


# The report


@dataclass
class Results:
    """The fastest run of each method per scene (peak memory: the largest seen)."""

    runs: dict[tuple[Size, str], list[Figures]] = field(default_factory=dict)

    def add(self, figures: Figures) -> None:
        self.runs.setdefault((figures.size, figures.method), []).append(figures)

    def best(self, size: Size, method: str) -> Figures | None:
        runs = self.runs.get((size, method))
        if not runs:
            return None
        fastest = min(runs, key=lambda figures: figures.seconds)
        peak = max(figures.peak_rss_mb for figures in runs)
        return Figures(**{**asdict(fastest), "peak_rss_mb": peak})

    def ratio(self, size: Size) -> float | None:
        stream, floor = self.best(size, "stream"), self.best(size, "floor")
        if stream is None or floor is None:
            return None
        return stream.megapixels_per_second / floor.megapixels_per_second


def verdicts(results: Results, sizes: list[Size]) -> list[tuple[str, float | None, str, float]]:
    """(what, value, sense, limit) per target; value None where a figure is missing."""
    streams = [results.best(size, "stream") for size in sizes]
    rates = [figures.megapixels_per_second for figures in streams if figures is not None]
    ratios = [ratio for size in sizes if (ratio := results.ratio(size)) is not None]
    biggest = max(sizes, key=lambda size: size[0] * size[1])
    largest = results.best(biggest, "stream")
    return [
        ("stream Mpx/s, slowest scene", min(rates) if rates else None, ">=", RATE_TARGET),
        ("stream / floor Mpx/s, worst scene", min(ratios) if ratios else None, ">=", RATIO_TARGET),
        (
            f"stream peak RSS MB, {label(biggest)} scene",
            None if largest is None else largest.peak_rss_mb,
            "<",
            MEMORY_TARGET_MB,
        ),
    ]


def report(results: Results, sizes: list[Size]) -> None:
    print(
        f"\n{os.cpu_count()} cores; MB = 10^6 bytes; times exclude loading the model; "
        "load = 1-min load average before/after"
    )
    header = (
        f"{'scene':>12} {'method':<20} {'window':>10} {'s':>8} {'Mpx/s':>7} {'CPU s':>8} "
        f"{'ORT s':>8} {'peak MB':>8} {'base MB':>8} {'x floor':>8} {'load':>10}"
    )
    print(header)
    for size in sizes:
        floor = results.best(size, "floor")
        for method in METHODS:
            figures = results.best(size, method)
            if figures is None:
                continue
            ratio = (
                "-"
                if floor is None
                else f"{figures.megapixels_per_second / floor.megapixels_per_second:.2f}"
            )
            print(
                f"{label(size):>12} {TITLES[method]:<20} "
                f"{f'{figures.window[0]}x{figures.window[1]}':>10} {figures.seconds:>8.1f} "
                f"{figures.megapixels_per_second:>7.2f} {figures.cpu_seconds:>8.1f} "
                f"{figures.model_seconds:>8.1f} {figures.peak_rss_mb:>8.0f} "
                f"{figures.base_rss_mb:>8.0f} {ratio:>8} "
                f"{f'{figures.load_before:.1f}/{figures.load_after:.1f}':>10}"
            )
    for method in METHODS:
        notes = {
            figures.note for (_, m), runs in results.runs.items() if m == method for figures in runs
        }
        for note in sorted(notes):
            print(f"{TITLES[method]}: {note}")
    floors = [results.best(size, "floor") for size in sizes]
    for figures in floors:
        if figures is not None and figures.read_seconds is not None:
            print(
                f"floor {label(figures.size)}: {figures.read_seconds:.1f} s of its "
                f"{figures.seconds:.1f} s reading"
            )
    print()
    for what, value, sense, limit in verdicts(results, sizes):
        if value is None:
            verdict, shown = "n/a", "-"
        else:
            met = value >= limit if sense == ">=" else value < limit
            verdict, shown = ("PASS" if met else "FAIL"), f"{value:.2f}"
        print(f"{what:<40}{shown:>9}   target {sense} {limit:<7g}{verdict}")


def main() -> None:
    from earthseg.serve.stream import WINDOW_PIXELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"scenes of {QUICK_SIZES} px")
    parser.add_argument(
        "--sizes", help="scenes, comma-separated: 8192 (square) or 16384x2048 (multiples of 256)"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (the fastest)")
    parser.add_argument("--window-pixels", type=int, default=WINDOW_PIXELS, help="stream")
    parser.add_argument("--sessions", type=int, default=1, help="stream: 1 on every core, or N")
    parser.add_argument(
        "--batch", type=int, help="stream: windows per model run (default: one per session)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help="stream: decision threshold of the mask and events",
    )
    parser.add_argument("--threads", type=int, help="stream: threads per session (experiment)")
    parser.add_argument(
        "--no-mem-pattern",
        dest="mem_pattern",
        action="store_false",
        help="stream: ONNX Runtime's memory pattern off (experiment)",
    )
    parser.add_argument(
        "--fit", action="store_true", help="stream: windows fitted to the scene (experiment)"
    )
    parser.add_argument("--overlap", type=int, help="stream: px (default the model's; experiment)")
    parser.add_argument("--gdal-cache-mb", type=int, help="GDAL's block cache in every run")
    parser.add_argument("--json", type=Path, default=OUTPUT / "detect.json")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch is None:
        args.batch = args.sessions
    if args.child:
        child(args)
        return
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(unknown)}: pick from {', '.join(METHODS)}")
    if args.sizes:
        sizes = [parse_size(size) for size in args.sizes.split(",")]
    else:
        sizes = [(side, side) for side in (QUICK_SIZES if args.quick else SIZES)]
    if any(side % STRIP for size in sizes for side in size):
        parser.error(f"scene sides must be multiples of {STRIP}")

    load_average = os.getloadavg()[0]
    if load_average > 0.5:
        print(f"WARNING: load average {load_average:.1f}: other work here disturbs the figures")
    WORK.mkdir(parents=True, exist_ok=True)
    model = default_model()
    for size in sizes:
        scene(size)
    results = Results()
    for size in sizes:
        chosen = [m for m in methods if m != "memory" or max(size) <= MEMORY_METHOD_MAX]
        for repeat in range(args.repeats):
            # the floor and the stream back to back, taking turns going first
            order = chosen if repeat % 2 == 0 else list(reversed(chosen))
            for method in order:
                print(f"{method} on {label(size)} (run {repeat + 1})", flush=True)
                figures = run_child(method, size, model, args)
                print(
                    f"  {figures.seconds:.1f} s, {figures.megapixels_per_second:.2f} Mpx/s, "
                    f"peak {figures.peak_rss_mb:.0f} MB, load {figures.load_before:.1f}",
                    flush=True,
                )
                results.add(figures)
    report(results, sizes)
    summary = {
        "cores": os.cpu_count(),
        "load_average_at_start": load_average,
        "window_pixels": args.window_pixels,
        "sessions": args.sessions,
        "batch": args.batch,
        "runs": [asdict(figures) for runs in results.runs.values() for figures in runs],
        "targets": [
            {"what": what, "value": value, "sense": sense, "limit": limit}
            for what, value, sense, limit in verdicts(results, sizes)
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfigures in {args.json}")


if __name__ == "__main__":
    main()
