"""The MapServer stand-in for NASA GIBS answers as the WMS client relies on: time
dimension and size limits in Capabilities, GetMap exactly on the source's pixel grid in
lat,lon order, alpha 0 where there is no data, XML ServiceExceptions, and a server that
outlives bad requests."""

from __future__ import annotations

import datetime
import shutil
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import numpy as np
import pytest
import rasterio
import requests
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from earthseg.errors import InputError
from earthseg.synthetic import wms_server
from earthseg.synthetic.wms_archive import time_extent, write_wms_archive
from earthseg.synthetic.wms_server import parse_cgi, serve_wms
from tests.wms import (
    MAY_1,
    MAY_2,
    MAY_5,
    RESOLUTION,
    Bounds,
    Scene,
    Standin,
    decode,
    get_map,
    require_mapserv,
)

WMS = "{http://www.opengis.net/wms}"
OGC = "{http://www.opengis.net/ogc}"


def capabilities(url: str) -> ElementTree.Element:
    params = {"SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0"}
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


def service_exception(response: requests.Response) -> str | None:
    """The code of a ServiceExceptionReport as MapServer sends it (HTTP 200, text/xml)."""
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=UTF-8"
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{OGC}ServiceExceptionReport"
    return root.find(f"{OGC}ServiceException").get("code")  # type: ignore[union-attr]


def expected_rgba(standin: Standin, names: list[str], bbox: Bounds) -> np.ndarray:
    """The (4, rows, cols) image a WMS must give on the 0.01-degree grid over `bbox`:
    each scene's valid pixels (later ones on top), alpha 0 where none has data."""
    west, south, east, north = bbox
    cols, rows = round((east - west) / RESOLUTION), round((north - south) / RESOLUTION)
    out = np.zeros((4, rows, cols), np.uint8)
    for name in names:
        scene = standin.scenes[name]
        col0 = round((scene.transform.c - west) / RESOLUTION)
        row0 = round((north - scene.transform.f) / RESOLUTION)
        height, width = scene.shape
        target = (slice(row0, row0 + height), slice(col0, col0 + width))
        valid = scene.valid
        out[3][target] = np.where(valid, 255, out[3][target])
        out[:3][(slice(None), *target)] = np.where(
            valid, scene.pixels, out[:3][(slice(None), *target)]
        )
    return out


def assert_same(image: np.ndarray, expected: np.ndarray) -> None:
    """RGB equal where alpha says data, alpha equal everywhere."""
    assert image.shape == expected.shape
    np.testing.assert_array_equal(image[3], expected[3])
    data = expected[3] == 255
    np.testing.assert_array_equal(image[:3][:, data], expected[:3][:, data])


def test_capabilities_list_layers_dates_and_size_limit(standin: Standin, wms_url: str) -> None:
    root = capabilities(wms_url)
    service = root.find(f"{WMS}Service")
    assert service is not None
    assert service.findtext(f"{WMS}MaxWidth") == str(standin.max_size)
    assert service.findtext(f"{WMS}MaxHeight") == str(standin.max_size)
    formats = [f.text for f in root.iter(f"{WMS}GetMap") for f in f.iter(f"{WMS}Format")]
    assert formats == ["image/png", "image/tiff"]
    layers = {
        layer.findtext(f"{WMS}Name"): layer
        for layer in root.iter(f"{WMS}Layer")
        if layer.find(f"{WMS}Dimension") is not None
    }
    assert set(layers) == set(standin.layers)
    for layer in layers.values():
        dimension = layer.find(f"{WMS}Dimension")
        assert dimension is not None
        assert dimension.get("name") == "time"
        assert dimension.get("units") == "ISO8601"
        assert dimension.text == standin.time_extent  # no default: see wms_archive


def test_time_extent_groups_consecutive_days() -> None:
    days = [datetime.date(2024, 5, day) for day in (4, 2, 1, 2)] + [datetime.date(2024, 4, 30)]
    assert time_extent(days) == "2024-04-30/2024-05-02/P1D,2024-05-04"
    assert time_extent([MAY_1]) == "2024-05-01"


@pytest.mark.parametrize(
    ("name", "date", "rows", "cols", "image_format"),
    [
        ("wide", MAY_1, slice(None), slice(None), "image/png"),
        ("holed", MAY_1, slice(None), slice(None), "image/png"),  # internal mask
        ("tall", MAY_2, slice(None), slice(None), "image/png"),  # nodata
        ("tall", MAY_5, slice(None), slice(None), "image/tiff"),  # one scene, two dates
        ("holed", MAY_1, slice(37, 151), slice(41, 230), "image/png"),  # a window
        ("holed", MAY_1, slice(37, 151), slice(41, 230), "image/tiff"),
    ],
)
def test_getmap_on_the_source_grid_returns_the_source_pixels(
    standin: Standin,
    wms_url: str,
    name: str,
    date: datetime.date,
    rows: slice,
    cols: slice,
    image_format: str,
) -> None:
    scene: Scene = standin.scenes[name]
    bbox = scene.bounds(rows, cols)
    window = (slice(None), rows, cols)
    size = (scene.pixels[window].shape[2], scene.pixels[window].shape[1])
    response = get_map(wms_url, bbox, size, date, image_format=image_format)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == image_format
    image = decode(response.content)
    expected = np.concatenate(
        [scene.pixels[window], np.where(scene.valid[rows, cols], 255, 0)[None].astype(np.uint8)]
    )
    assert_same(image, expected)
    if image_format == "image/tiff":  # georeferenced on the requested grid
        with MemoryFile(response.content) as memory, memory.open() as tiff:
            assert tiff.crs.to_epsg() == 4326
            assert tiff.transform.almost_equals(
                from_origin(bbox[0], bbox[3], RESOLUTION, RESOLUTION)
            )


def test_no_data_is_transparent_on_every_layer(standin: Standin, wms_url: str) -> None:
    """Over both May 1 scenes, the gap between them and a margin north of them."""
    bbox = (9.5, 49.8, 17.5, 52.5)
    expected = expected_rgba(standin, ["wide", "holed"], bbox)
    for layer in standin.layers:
        response = get_map(wms_url, bbox, (800, 270), MAY_1, layer=layer)
        assert response.headers["Content-Type"] == "image/png"
        assert_same(decode(response.content), expected)
    assert 0 < (expected[3] == 255).mean() < 1


def test_each_date_shows_only_its_scenes(standin: Standin, wms_url: str) -> None:
    bbox = (10.0, 49.0, 13.0, 52.0)  # wide (May 1) and tall (May 2, May 5) overlap here
    for date, names in ((MAY_1, ["wide"]), (MAY_2, ["tall"]), (MAY_5, ["tall"])):
        image = decode(get_map(wms_url, bbox, (300, 300), date).content)
        assert_same(image, expected_rgba(standin, names, bbox))


def test_halves_equal_the_whole(standin: Standin, wms_url: str) -> None:
    """Requests split along the pixel grid tile the whole one exactly (chunked fetches)."""
    west, south, east, north = 12.5, 49.7, 14.8, 51.6  # across wide, the gap and holed
    whole = decode(get_map(wms_url, (west, south, east, north), (230, 190), MAY_1).content)
    mid_lon, mid_lat = 13.77, 50.93  # 127 columns, 67 rows from the north-west corner
    left = decode(get_map(wms_url, (west, south, mid_lon, north), (127, 190), MAY_1).content)
    right = decode(get_map(wms_url, (mid_lon, south, east, north), (103, 190), MAY_1).content)
    top = decode(get_map(wms_url, (west, mid_lat, east, north), (230, 67), MAY_1).content)
    bottom = decode(get_map(wms_url, (west, south, east, mid_lat), (230, 123), MAY_1).content)
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), whole)
    np.testing.assert_array_equal(np.concatenate([top, bottom], axis=1), whole)
    assert 0 < (whole[3] == 255).mean() < 1


def test_concurrent_requests_get_their_own_answers(standin: Standin, wms_url: str) -> None:
    """The fetcher runs several GetMaps at once over a connection pool."""
    scenes = [standin.scenes[name] for name in ("wide", "holed", "tall")] * 3
    dates = [MAY_1, MAY_1, MAY_2] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(
                lambda pair: get_map(wms_url, pair[0].bounds(), pair[0].shape[::-1], pair[1]),
                zip(scenes, dates, strict=True),
            )
        )
    for scene, answer in zip(scenes, answers, strict=True):
        image = decode(answer.content)
        np.testing.assert_array_equal(image[3] == 255, scene.valid)
        np.testing.assert_array_equal(image[:3][:, scene.valid], scene.pixels[:, scene.valid])


@pytest.mark.parametrize("date", ["2024-05-03", "2024-04-30", "2024-05-06"])
def test_date_outside_the_extent_is_a_service_exception(wms_url: str, date: str) -> None:
    response = get_map(wms_url, (10.0, 50.0, 13.0, 52.0), (300, 200), date)
    assert service_exception(response) == "InvalidDimensionValue"


def test_unknown_layer_is_a_service_exception(wms_url: str) -> None:
    response = get_map(wms_url, (10.0, 50.0, 13.0, 52.0), (300, 200), MAY_1, layer="NoSuchLayer")
    assert service_exception(response) == "LayerNotDefined"


def test_too_large_a_request_is_a_service_exception(standin: Standin, wms_url: str) -> None:
    response = get_map(wms_url, (10.0, 50.0, 13.0, 52.0), (standin.max_size + 1, 200), MAY_1)
    assert service_exception(response) is None  # MapServer gives no code for this one
    assert b"WIDTH and HEIGHT must be between 1 and" in response.content


def test_bad_requests_do_not_take_the_server_down(wms_url: str) -> None:
    base = wms_url.rsplit("/", 1)[0]
    answers = [
        requests.get(wms_url, timeout=30),
        requests.get(f"{wms_url}?garbage", timeout=30),
        requests.get(f"{wms_url}?%ZZ&&=&SERVICE", timeout=30),
        requests.get(f"{wms_url}?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&BBOX=a,b", timeout=30),
        requests.get(f"{wms_url}?map=/etc/passwd&SERVICE=WMS&REQUEST=GetCapabilities", timeout=30),
        requests.get(f"{base}/elsewhere", timeout=30),
        requests.post(wms_url, data=b"x" * 1000, timeout=30),
    ]
    assert [answer.status_code for answer in answers[:5]] == [200] * 5  # MapServer's HTML errors
    assert all(
        b"ServiceException" in a.content or b"MapServer Message" in a.content for a in answers[:5]
    )
    assert b"root:" not in answers[4].content  # MS_MAP_NO_PATH: no mapfile from the URL
    assert answers[5].status_code == 404
    assert answers[6].status_code == 501
    parts = urlsplit(wms_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as hangs_up:
        hangs_up.sendall(b"GET /wms?SERVICE=WMS&REQUEST=GetCap")  # and never finishes
    capabilities(wms_url)


def test_the_archive_is_relocatable(standin: Standin, tmp_path: Path) -> None:
    require_mapserv()
    moved = shutil.copytree(standin.archive, tmp_path / "elsewhere")
    scene = standin.scenes["wide"]
    with serve_wms(moved) as url:
        image = decode(get_map(url, scene.bounds(), (300, 200), MAY_1).content)
    np.testing.assert_array_equal(image[:3], scene.pixels)


def test_module_serves_until_sigterm(standin: Standin) -> None:
    require_mapserv()
    server = subprocess.Popen(
        [sys.executable, "-m", "earthseg.synthetic.wms_server", str(standin.archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/wms")
        capabilities(url)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert server.stderr is not None and server.stderr.read() == ""  # quiet
    finally:
        server.kill()
        server.wait()


def test_archive_refuses_what_it_cannot_serve(standin: Standin, tmp_path: Path) -> None:
    projected = tmp_path / "utm.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 3, "dtype": "uint8"}
    with rasterio.open(
        projected, "w", crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10), **profile
    ) as dst:
        dst.write(np.ones((3, 4, 4), np.uint8))
    with pytest.raises(InputError, match="EPSG:32633"):
        write_wms_archive([(projected, MAY_1)], tmp_path / "a")
    with pytest.raises(InputError, match="not empty"):
        write_wms_archive([(standin.scenes["wide"].path, MAY_1)], standin.archive)
    with pytest.raises(InputError, match="WMS layer names"):
        write_wms_archive([(standin.scenes["wide"].path, MAY_1)], tmp_path / "b", layers=('a"b',))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_missing_mapserv_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(wms_server, "MAPSERV", tmp_path / "mapserv")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match=r"scripts/ensure-mapserver\.sh"):
        wms_server.find_mapserv()


def test_cgi_output_is_parsed() -> None:
    assert parse_cgi(b"Content-Type: image/png\r\n\r\nPNG\r\n\r\nx") == (
        200,
        [("Content-Type", "image/png")],
        b"PNG\r\n\r\nx",
    )
    assert parse_cgi(b"Status: 404 Not Found\nContent-Type: text/plain\n\nno") == (
        404,
        [("Content-Type", "text/plain")],
        b"no",
    )
    assert parse_cgi(b"no headers")[0] == 502
