"""A WMS 1.3.0 client for fetching scenes: capabilities through OWSLib, GetMap over one
pooled HTTP session with retries, answers decoded into pixels and a validity mask.

WMS 1.3.0 with CRS=EPSG:4326 orders BBOX as latitude, longitude: this module is the one
place that knows it. Everything else speaks (west, south, east, north).
"""

from __future__ import annotations

import datetime
import threading
import warnings
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import numpy as np
import requests
from owslib.map.wms130 import WebMapService_1_3_0
from owslib.util import nspath
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader, MemoryFile
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from earthseg.errors import InputError
from earthseg.imagery.options import TransferOptions
from earthseg.imagery.times import TimeSpan, describe, parse_time_extent

WMS_NS = "http://www.opengis.net/wms"
RETRIED_STATUSES = (500, 502, 503, 504)
_WARNING_FILTERS = threading.Lock()
NETWORK_FIX = "check --url and the network, or allow more with --timeout / --retries"


@dataclass(frozen=True)
class Capabilities:
    """What fetching needs from GetCapabilities."""

    url: str
    times: dict[str, list[TimeSpan] | None]  # per layer; None: the layer has no time dimension
    max_width: int | None
    max_height: int | None
    formats: tuple[str, ...]

    def serves(self, layer: str, date: datetime.date) -> bool:
        """Whether `layer`'s time extent holds `date` (a layer without one holds every day)."""
        spans = self.times.get(layer)
        return spans is None or any(date in span for span in spans)

    def check(self, layers: tuple[str, ...], dates: list[datetime.date], image_format: str) -> None:
        """Every layer served, every date in every layer's time extent: refused before any
        download, naming what is not there."""
        unknown = [layer for layer in layers if layer not in self.times]
        if unknown:
            known = ", ".join(sorted(self.times)[:8])
            raise InputError(
                ", ".join(unknown),
                f"is not a layer of {self.url}",
                f"choose among its layers (GetCapabilities), e.g. {known}",
            )
        if self.formats and image_format not in self.formats:
            raise InputError(
                image_format, f"is not a GetMap format of {self.url}", f"use one of {self.formats}"
            )
        for layer in layers:
            spans = self.times[layer]
            if spans is None:
                continue
            missing = sorted({date for date in dates if not any(date in s for s in spans)})
            if missing:
                shown = ", ".join(d.isoformat() for d in missing[:5])
                raise InputError(
                    f"layer {layer}",
                    f"has no imagery on {shown}{' ...' if len(missing) > 5 else ''} "
                    f"(its time extent: {describe(spans)})",
                    "check the dates in the label names, or choose a layer that covers them "
                    "(MODIS Aqua starts 2002-07-04, Terra 2000-02-24, VIIRS SNPP 2015-11-24)",
                )


@dataclass(frozen=True)
class Picture:
    """A decoded GetMap answer: (bands, rows, cols) pixels and a mask (True: has data)."""

    pixels: np.ndarray
    valid: np.ndarray


class WmsClient:
    """One server, one pooled session: `workers` connections kept alive, 5xx answers
    and time-outs retried with exponential backoff."""

    def __init__(self, url: str, transfer: TransferOptions) -> None:
        self.url = url
        self.timeout = transfer.timeout
        retry = Retry(
            total=transfer.retries,
            connect=transfer.retries,
            read=transfer.retries,
            status=transfer.retries,
            backoff_factor=0.5,
            status_forcelist=RETRIED_STATUSES,
            allowed_methods=("GET",),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=transfer.workers)
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.tries = transfer.retries + 1

    def close(self) -> None:
        self.session.close()

    def _get(self, params: dict[str, Any], what: str) -> requests.Response:
        try:
            response = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException as error:
            raise InputError(
                self.url,
                f"did not answer {what} after {self.tries} tries ({type(error).__name__}: "
                f"{_short(str(error))})",
                NETWORK_FIX,
            ) from None
        if response.status_code >= 400 and not _is_xml(response):
            retried = response.status_code in RETRIED_STATUSES
            raise InputError(
                self.url,
                f"answered {what} with HTTP {response.status_code}"
                f"{f' after {self.tries} tries' if retried else ''} ({_short(response.text)})",
                NETWORK_FIX,
            )
        return response

    def capabilities(self) -> Capabilities:
        params = {"SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0"}
        response = self._get(params, "GetCapabilities")
        _check_answer(response, self.url, "GetCapabilities", image=False)
        try:
            service = WebMapService_1_3_0(self.url, version="1.3.0", xml=response.content)
        except Exception as error:  # OWSLib raises whatever its XML parser does
            raise InputError(
                self.url,
                f"did not answer GetCapabilities with a WMS 1.3.0 document ({error})",
                "give --url the WMS endpoint itself, e.g. "
                "https://gibs.earthdata.nasa.gov/wms/epsg4326/best/wms.cgi",
            ) from None
        times = {
            name: parse_time_extent(layer.timepositions) if layer.timepositions else None
            for name, layer in service.contents.items()
        }
        getmap = next((op for op in service.operations if op.name == "GetMap"), None)
        return Capabilities(
            url=self.url,
            times=times,
            max_width=_service_int(service, "MaxWidth"),
            max_height=_service_int(service, "MaxHeight"),
            formats=tuple(getmap.formatOptions) if getmap else (),
        )

    def get_map(
        self,
        layer: str,
        bbox: tuple[float, float, float, float],
        size: tuple[int, int],
        date: datetime.date,
        image_format: str,
    ) -> Picture:
        """The layer over `bbox` (west, south, east, north) at `size` (width, height)."""
        params = getmap_query(layer, bbox, size, date, image_format)
        what = f"GetMap of {layer} on {date.isoformat()}"
        response = self._get(params, what)
        _check_answer(response, self.url, what, image=True)
        return decode(response.content, size, f"{self.url} ({what})")


def getmap_query(
    layer: str,
    bbox: tuple[float, float, float, float],
    size: tuple[int, int],
    date: datetime.date,
    image_format: str,
) -> dict[str, str]:
    """The query of a GetMap 1.3.0 in EPSG:4326, as GIBS takes it, over `bbox` (west,
    south, east, north) at `size` (width, height). BBOX goes in lat,lon order, each
    number written exactly (repr), so neighbouring chunks name the same edge."""
    west, south, east, north = bbox
    return {
        "SERVICE": "WMS",
        "VERSION": "1.3.0",
        "REQUEST": "GetMap",
        "LAYERS": layer,
        "STYLES": "",
        "CRS": "EPSG:4326",
        "BBOX": f"{south!r},{west!r},{north!r},{east!r}",
        "WIDTH": str(size[0]),
        "HEIGHT": str(size[1]),
        "FORMAT": image_format,
        "TRANSPARENT": "TRUE",
        "TIME": date.isoformat(),
    }


def decode(content: bytes, size: tuple[int, int], source: str) -> Picture:
    """Pixels and validity of a GetMap image. Validity comes from the image's alpha (PNG
    with TRANSPARENT=TRUE), its palette's alpha, or its GDAL mask (a TIFF's nodata)."""
    try:
        with MemoryFile(content) as memory, _open_quietly(memory) as image:
            if (image.width, image.height) != tuple(size):
                raise InputError(
                    source,
                    f"sent a {image.width}x{image.height} image for a {size[0]}x{size[1]} request",
                    "lower --max-size below the server's real limit",
                )
            data = image.read()
            colormap = _colormap(image)
            if colormap is not None:
                lookup = np.zeros((256, 4), np.uint8)
                for index, colour in colormap.items():
                    lookup[index] = colour
                rgba = lookup[data[0]].transpose(2, 0, 1)
                return Picture(rgba[:3], rgba[3] > 0)
            if image.count in (2, 4):  # grey + alpha, RGB + alpha
                return Picture(data[:-1], data[-1] > 0)
            return Picture(data, image.dataset_mask() > 0)
    except InputError:
        raise
    except RasterioIOError as error:  # bytes that are no image
        raise InputError(
            source, f"sent bytes that are not an image ({error})", "check --url and --format"
        ) from None


def _open_quietly(memory: MemoryFile) -> DatasetReader:
    """Open a GetMap image without rasterio's warning that it has no georeferencing (its
    grid is the request's). `catch_warnings` swaps process-wide state, so the decoding
    threads take turns, only while opening."""
    with _WARNING_FILTERS, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return memory.open()


def _colormap(image: Any) -> dict[int, tuple[int, int, int, int]] | None:
    if image.count != 1:
        return None
    try:
        colormap: dict[int, tuple[int, int, int, int]] = image.colormap(1)
        return colormap
    except ValueError:  # no palette
        return None


def _is_xml(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "")
    return "xml" in kind or response.content.lstrip()[:5] in (b"<?xml", b"<Serv")


def _check_answer(response: requests.Response, url: str, what: str, image: bool) -> None:
    """A WMS answers a request it cannot serve with an XML ServiceExceptionReport, often
    with HTTP 200: one error naming the request and the server's words."""
    messages = _exception_messages(response.content) if _is_xml(response) else None
    if messages is not None:
        raise InputError(
            url,
            f"refused {what}: WMS ServiceException {'; '.join(messages)}",
            "check the layer name and the date (GetCapabilities lists both)",
        )
    kind = response.headers.get("Content-Type", "")
    if image and not (response.ok and kind.startswith("image/")):
        raise InputError(
            url,
            f"answered {what} with HTTP {response.status_code} {kind or 'without a content type'}, "
            f"not an image ({_short(response.text)})",
            "check --url (the WMS endpoint) and --format",
        )


def _exception_messages(content: bytes) -> list[str] | None:
    """The messages of a ServiceExceptionReport; None for any other document."""
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError:
        return None
    if root.tag.split("}")[-1] != "ServiceExceptionReport":
        return None
    found = []
    for element in root.iter():
        if element.tag.split("}")[-1] == "ServiceException":
            code = element.attrib.get("code")
            text = " ".join((element.text or "").split())
            found.append(f"{code}: {text}" if code else text)
    return found


def _service_int(service: WebMapService_1_3_0, name: str) -> int | None:
    """MaxWidth / MaxHeight of the Service section (OWSLib does not parse them)."""
    element = service._capabilities.find(nspath(f"Service/{name}", WMS_NS))
    try:
        value = int(element.text) if element is not None and element.text else None
    except ValueError:
        return None
    return value if value and value > 0 else None


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
