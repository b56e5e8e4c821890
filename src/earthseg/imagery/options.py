"""What `earthseg fetch` asks a WMS for: kept free of raster and HTTP libraries, so the
command line and a run config check these before anything is downloaded."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from earthseg.validation import Integer, Number, Options, invalid

GIBS_WMS = "https://gibs.earthdata.nasa.gov/wms/epsg4326/best/wms.cgi"
MODIS_AQUA_TRUE_COLOUR = "MODIS_Aqua_CorrectedReflectance_TrueColor"
KM_PER_DEGREE = 111.32  # a degree of latitude (and of longitude at the equator), in km
DISTANCE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(km|m|deg)\s*$")
DISTANCE_FIX = "give a number with its unit: km, m or deg, e.g. 0.25km, 250m or 0.0015deg"


def parse_distance(text: str) -> tuple[float, str]:
    """`"0.25km"` -> (0.25, "km"): a length on the ground, or an angle in degrees."""
    match = DISTANCE.match(text)
    if not match:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2)
    return (value / 1000, "km") if unit == "m" else (value, unit)


def degrees(text: str, latitude: float) -> tuple[float, float]:
    """A distance as (longitude, latitude) degrees at `latitude`: a kilometre spans more
    degrees of longitude towards the poles (the notebooks' cosine scaling)."""
    value, unit = parse_distance(text)
    if unit == "deg":
        return value, value
    dy = value / KM_PER_DEGREE
    return dy / math.cos(math.radians(min(abs(latitude), 89.0))), dy


class FetchOptions(Options):
    """Where the imagery comes from and on which grid; every field changes the pixels."""

    url: str = Field(GIBS_WMS, description="the WMS 1.3.0 endpoint (NASA GIBS by default)")
    layers: tuple[str, ...] = Field(
        (MODIS_AQUA_TRUE_COLOUR,),
        description="WMS layers; several stack as bands (e.g. MODIS_Terra_CorrectedReflectance_"
        "TrueColor, VIIRS_SNPP_CorrectedReflectance_TrueColor)",
    )
    resolution: str = Field(
        "0.25km", description="pixel size: km or m on the ground (as the notebooks), or deg"
    )
    margin: str = Field(
        "50km",
        description="context added around the labels' bounds on every side (200 px at 0.25 km); "
        "without it the model sees almost no dust-free ground",
    )
    format: Literal["image/png", "image/tiff"] = Field(
        "image/png", description="GetMap format; PNG with TRANSPARENT=TRUE marks no-data pixels"
    )
    max_size: Integer | None = Field(
        None, ge=16, description="largest request side in pixels (default the server's MaxWidth)"
    )
    min_valid: Number = Field(
        0.5, ge=0, le=1, description="leave out scenes with a smaller share of pixels with data"
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_list(cls, value: Any) -> Any:
        """`"A,B"` (the command line's form) or a list."""
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if not value:
            raise invalid("names no layer", f"name at least one, e.g. {MODIS_AQUA_TRUE_COLOUR}")
        return value

    @field_validator("resolution", "margin")
    @classmethod
    def _distance(cls, text: str) -> str:
        try:
            value, _ = parse_distance(text)
        except ValueError:
            raise invalid(f"{text!r} is not a distance", DISTANCE_FIX) from None
        if value > 1000:
            raise invalid(f"{text} is far too large for a scene", DISTANCE_FIX)
        return text.strip()

    @field_validator("resolution")
    @classmethod
    def _positive(cls, text: str) -> str:
        if parse_distance(text)[0] <= 0:
            raise invalid(f"{text} is not a pixel size", "give a positive size, e.g. 0.25km")
        return text


class TransferOptions(Options):
    """How requests are made: these change the speed, never the pixels."""

    workers: Integer = Field(4, ge=1, le=32, description="concurrent GetMap requests")
    timeout: Number = Field(60.0, gt=0, description="seconds to wait for a server's answer")
    retries: Integer = Field(4, ge=0, le=10, description="retries of a 5xx or timed-out request")
