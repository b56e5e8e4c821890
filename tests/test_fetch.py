"""`earthseg fetch` against a real WMS (MapServer standing in for GIBS, tests/wms.py):
the pixels it serves, exactly, on the grid asked for; chunks that mosaic back; nodata kept
as nodata; dates, exceptions, failing and hanging servers; reruns."""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests
import shapely

from earthseg.atomic import PARTIAL_PREFIX
from earthseg.cli import main
from earthseg.contracts.imagery import read_fetch_record, request_from_tags
from earthseg.errors import InputError
from earthseg.imagery.fetch import fetch_export
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.imagery.wms import WmsClient
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.imagelabeler import write_event, zip_events
from earthseg.synthetic.wms_archive import write_wms_archive
from earthseg.synthetic.wms_server import serve_wms
from tests.wms import MAY_1, MAY_2, RESOLUTION, Standin, require_mapserv

GRID = f"{RESOLUTION}deg"
FAST = TransferOptions(workers=2, timeout=5, retries=2)


def export(folder: Path, events: dict[str, list[shapely.Polygon]], prj: bool = True) -> Path:
    """An ImageLabeler export: a folder per event."""
    for stem, polygons in events.items():
        write_event(folder, stem, polygons, prj=prj)
    return folder


def options(url: str, **changes: object) -> FetchOptions:
    return FetchOptions.model_validate(
        {"url": url, "resolution": GRID, "margin": "0.1deg", **changes}
    )


def read(path: Path) -> tuple[np.ndarray, np.ndarray, rasterio.Affine, dict[str, str]]:
    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.dataset_mask() > 0, dataset.transform, dataset.tags()


def source_window(
    scene_transform: rasterio.Affine, fetched: rasterio.Affine, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """The rows and columns of a source scene that a fetched grid covers (same pixel size)."""
    col, row = ~scene_transform * (fetched.c, fetched.f)
    row0, col0 = round(row), round(col)
    return slice(row0, row0 + shape[0]), slice(col0, col0 + shape[1])


@pytest.fixture(scope="module")
def wide_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One event on May 1 inside the `wide` scene, two polygons (one event, one scene)."""
    folder = tmp_path_factory.mktemp("export")
    return export(
        folder,
        {
            "dust_2024-05-01_101": [
                shapely.box(10.5, 50.5, 11.2, 51.5),
                shapely.box(11.3, 50.7, 11.5, 51.0),
            ]
        },
    )


def test_fetched_pixels_are_the_served_source_on_its_grid(
    wide_export: Path, standin: Standin, wms_url: str, tmp_path: Path
) -> None:
    record = fetch_export(wide_export, tmp_path / "out", options(wms_url), FAST, say=print)
    (scene,) = record.scenes
    pixels, valid, transform, tags = read(tmp_path / "out" / scene.image)
    # 10.5 - 0.1 .. 11.5 + 0.1 by 50.5 - 0.1 .. 51.5 + 0.1 at 0.01 degrees
    assert pixels.shape == (3, 120, 120) and (scene.request.width, scene.request.height) == (
        120,
        120,
    )
    wide = standin.scenes["wide"]
    rows, cols = source_window(wide.transform, transform, pixels.shape[1:])
    assert (rows.start, cols.start) == (40, 40)  # not shifted, not swapped
    np.testing.assert_array_equal(pixels, wide.pixels[:, rows, cols])
    assert valid.all()
    assert request_from_tags(tags) == scene.request
    assert (tmp_path / "out" / "labels" / "dust_2024-05-01_101.shp").is_file()
    assert read_fetch_record(tmp_path / "out") == record


def test_a_chunked_scene_equals_the_scene_in_one_request(
    wide_export: Path, wms_url: str, tmp_path: Path
) -> None:
    whole = fetch_export(wide_export, tmp_path / "whole", options(wms_url), FAST)
    chunked = fetch_export(wide_export, tmp_path / "chunked", options(wms_url, max_size=50), FAST)
    assert (whole.scenes[0].requests, chunked.scenes[0].requests) == (1, 9)  # 120 px in 3 x 3
    one, many = (
        read(tmp_path / "whole" / whole.scenes[0].image),
        read(tmp_path / "chunked" / chunked.scenes[0].image),
    )
    np.testing.assert_array_equal(one[0], many[0])
    assert one[2] == many[2]


def test_layers_stack_as_bands(
    wide_export: Path, standin: Standin, wms_url: str, tmp_path: Path
) -> None:
    record = fetch_export(
        wide_export, tmp_path / "out", options(wms_url, layers=standin.layers), FAST
    )
    pixels, _, _, _ = read(tmp_path / "out" / record.scenes[0].image)
    assert pixels.shape[0] == 6
    np.testing.assert_array_equal(pixels[:3], pixels[3:])  # both layers serve the same rasters
    with rasterio.open(tmp_path / "out" / record.scenes[0].image) as dataset:
        assert dataset.descriptions[3].startswith(standin.layers[1])


def test_areas_without_data_are_nodata_not_black(
    standin: Standin, wms_url: str, tmp_path: Path
) -> None:
    """Over `holed`'s internal-mask hole and past its western edge (outside every raster)."""
    holed = standin.scenes["holed"]
    west, south, east, north = holed.bounds(rows=slice(40, 110), cols=slice(0, 130))
    labels = export(
        tmp_path / "export", {"dust_2024-05-01_7": [shapely.box(west, south, east, north)]}
    )
    record = fetch_export(
        labels, tmp_path / "out", options(wms_url, margin="0deg", min_valid=0), FAST
    )
    pixels, valid, transform, _ = read(tmp_path / "out" / record.scenes[0].image)
    rows, cols = source_window(holed.transform, transform, valid.shape)
    assert cols.start == 0 and rows.start == 40
    expected = holed.valid[rows, cols]
    np.testing.assert_array_equal(valid, expected)
    assert not expected.all()
    np.testing.assert_array_equal(pixels[:, valid], holed.pixels[:, rows, cols][:, valid])
    assert (pixels[:, ~valid] == 0).all()  # masked, and marked so in the file's mask


def test_a_scene_mostly_without_data_is_reported_and_left_out(
    standin: Standin, wms_url: str, tmp_path: Path
) -> None:
    """Between `wide` and `holed` on May 1 there is no imagery (a swath gap)."""
    labels = export(
        tmp_path / "export",
        {
            "dust_2024-05-01_1": [shapely.box(13.2, 50.5, 13.8, 51.5)],  # in the gap
            "dust_2024-05-01_2": [shapely.box(10.5, 50.5, 11.5, 51.5)],  # in `wide`
        },
    )
    said: list[str] = []
    record = fetch_export(labels, tmp_path / "out", options(wms_url), FAST, say=said.append)
    assert [s.stem for s in record.scenes] == ["dust_2024-05-01_2"]
    assert [s.stem for s in record.skipped] == ["dust_2024-05-01_1"]
    assert "hold data" in record.skipped[0].reason and any("dust_2024-05-01_1" in s for s in said)
    assert sorted(p.stem for p in (tmp_path / "out" / "images").iterdir()) == ["dust_2024-05-01_2"]
    assert {p.stem for p in (tmp_path / "out" / "labels").iterdir()} == {"dust_2024-05-01_2"}


def test_a_date_outside_the_layer_is_refused_before_any_download(
    wms_url: str, tmp_path: Path
) -> None:
    labels = export(
        tmp_path / "export",
        {
            "dust_2024-05-01_1": [shapely.box(10.5, 50.5, 11.5, 51.5)],
            "dust_2024-05-03_2": [shapely.box(10.5, 50.5, 11.5, 51.5)],
        },
    )
    with pytest.raises(InputError) as caught:
        fetch_export(labels, tmp_path / "out", options(wms_url), FAST)
    message = str(caught.value)
    assert "MODIS_Aqua_CorrectedReflectance_TrueColor" in message and "2024-05-03" in message
    assert "2024-05-01/2024-05-02" in message  # the extent the server advertises
    assert not (tmp_path / "out").exists()


def test_a_service_exception_is_one_error_naming_layer_and_date(wms_url: str) -> None:
    client = WmsClient(wms_url, FAST)
    with pytest.raises(InputError) as caught:
        client.get_map(
            "MODIS_Aqua_CorrectedReflectance_TrueColor",
            (10.0, 50.0, 11.0, 51.0),
            (100, 100),
            datetime.date(2030, 1, 1),
            "image/png",
        )
    message = str(caught.value)
    assert "ServiceException" in message and "InvalidDimensionValue" in message
    assert "MODIS_Aqua_CorrectedReflectance_TrueColor on 2030-01-01" in message


def test_names_without_dates_are_refused_naming_the_file_and_the_form(
    real_data: Path, wms_url: str, tmp_path: Path
) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    for part in (".shp", ".shx", ".dbf", ".prj"):
        (labels / f"rmnp{part}").write_bytes((real_data / f"rmnp{part}").read_bytes())
    with pytest.raises(InputError) as caught:
        fetch_export(labels, tmp_path / "out", options(wms_url), FAST)
    assert "rmnp.shp" in str(caught.value) and "<event>_<YYYY-MM-DD>_<id>" in str(caught.value)


def test_a_rerun_keeps_what_was_fetched_with_the_same_request(
    wide_export: Path, wms_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = fetch_export(wide_export, out, options(wms_url), FAST)
    image = out / first.scenes[0].image
    stamp = image.stat().st_mtime_ns
    debris = out / "images" / f"{PARTIAL_PREFIX}dust_2024-05-01_101.tif-1a2b.tif"
    debris.write_bytes(b"a killed run's half-written scene")
    again = fetch_export(wide_export, out, options(wms_url), FAST)
    assert not debris.exists()
    assert again.scenes[0].requests == 0 and image.stat().st_mtime_ns == stamp
    assert again.scenes[0].sha256 == first.scenes[0].sha256
    wider = fetch_export(wide_export, out, options(wms_url, margin="0.2deg"), FAST)
    assert wider.scenes[0].requests == 1 and wider.scenes[0].request.width == 140


class FlakyFront:
    """A front for the WMS: GetMap answers `failures` times with HTTP 500 (or hangs for
    `hang` seconds) before passing requests through."""

    def __init__(self, upstream: str, failures: int = 0, hang: float = 0.0) -> None:
        self.upstream, self.failures, self.hang = upstream, failures, hang
        self.getmaps = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "GetMap" in self.path:
                    with front.lock:
                        front.getmaps += 1
                        failing = front.getmaps <= front.failures
                    if failing and front.hang:
                        time.sleep(front.hang)
                    if failing:
                        with contextlib.suppress(OSError):  # the client may have given up
                            self.send_error(500, "flaky")
                        return
                query = self.path.partition("?")[2]
                answer = requests.get(f"{front.upstream}?{query}", timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["Content-Type"])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/wms"
        finally:
            server.shutdown()
            server.server_close()


def test_a_server_answering_500_then_200_is_retried(
    wide_export: Path, wms_url: str, tmp_path: Path
) -> None:
    front = FlakyFront(wms_url, failures=2)
    with front.serving() as url:
        record = fetch_export(wide_export, tmp_path / "out", options(url), FAST)
    assert front.getmaps == 3 and len(record.scenes) == 1


def test_a_server_that_hangs_is_given_up_with_a_clear_error(
    wide_export: Path, wms_url: str, tmp_path: Path
) -> None:
    front = FlakyFront(wms_url, failures=100, hang=3.0)
    started = time.monotonic()
    with front.serving() as url, pytest.raises(InputError) as caught:
        fetch_export(
            wide_export,
            tmp_path / "out",
            options(url),
            TransferOptions(workers=1, timeout=0.5, retries=1),
        )
    assert "did not answer GetMap" in str(caught.value) and "2 tries" in str(caught.value)
    assert front.getmaps == 2 and time.monotonic() - started < 10
    assert not list((tmp_path / "out").glob("images/*.tif"))


def test_the_real_true_colour_scene_is_fetched_pixel_for_pixel(
    real_data: Path, tmp_path: Path
) -> None:
    """rmnp-rgb.tif (EPSG:4326, 0.0015 degree pixels off the global grid) served for a date;
    its labels as an ImageLabeler download-all zip without .prj. Each fetched pixel is the
    source pixel under its centre (nearest neighbour), wherever the source has data."""
    require_mapserv()
    archive = write_wms_archive(
        [(real_data / "rmnp-rgb.tif", day) for day in (MAY_1, MAY_2)], tmp_path / "archive"
    )
    import geopandas as gpd

    polygons = list(gpd.read_file(real_data / "rmnp.shp").geometry)
    events = export(
        tmp_path / "events",
        {"park_2024-05-01_jdoe_1": polygons, "park_2024-05-02_jdoe_2": polygons},
        prj=False,
    )
    labels = zip_events(events, tmp_path / "export.zip")
    with serve_wms(archive) as url:
        assert (
            main(
                [
                    "fetch",
                    "--labels",
                    str(labels),
                    "--out",
                    str(tmp_path / "out"),
                    "--url",
                    url,
                    "--resolution",
                    "0.0015deg",
                    "--margin",
                    "0.01deg",
                    "--workers",
                    "2",
                ]
            )
            == 0
        )
    record = read_fetch_record(tmp_path / "out")
    pixels, valid, transform, _ = read(tmp_path / "out" / record.scenes[0].image)
    with rasterio.open(real_data / "rmnp-rgb.tif") as source:
        data, source_valid = source.read(), source.dataset_mask() > 0
        rows, cols = np.indices(valid.shape)
        xs, ys = transform * (cols + 0.5, rows + 0.5)
        src_rows, src_cols = rasterio.transform.rowcol(source.transform, xs, ys)
    src_rows = np.asarray(src_rows).reshape(valid.shape)
    src_cols = np.asarray(src_cols).reshape(valid.shape)
    expected_valid = source_valid[src_rows, src_cols]
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(pixels[:, valid], data[:, src_rows, src_cols][:, valid])
    assert valid.mean() > 0.9
    # and it preprocesses as it is, the request carried into the manifest
    manifest = build_dataset(
        tmp_path / "out" / "images",
        tmp_path / "out" / "labels",
        tmp_path / "dataset",
        PreprocessOptions(tile_size=64, splits=(0.5, 0.5, 0.0)),
    )
    assert manifest.inputs[0].imagery == record.scenes[0].request
    assert (manifest.imagery[0].first_date, manifest.imagery[0].last_date) == (MAY_1, MAY_2)
    assert manifest.totals.positive_fraction > 0.2


def test_a_url_that_is_no_wms_is_refused_naming_it(
    wide_export: Path, wms_url: str, tmp_path: Path
) -> None:
    not_wms = wms_url.replace("/wms", "/maps")  # the front answers 404 off its one path
    with pytest.raises(InputError) as caught:
        fetch_export(wide_export, tmp_path / "out", options(not_wms), FAST)
    assert not_wms in str(caught.value) and "HTTP 404" in str(caught.value)
