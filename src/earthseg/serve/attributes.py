"""Per-request options from SageMaker's `X-Amzn-SageMaker-Custom-Attributes` header.

`key=value` pairs separated by commas or semicolons, e.g. `threshold=0.4,output=mask`.
Unknown keys are refused rather than ignored, so a misspelt option cannot silently leave
the default in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rasterio.crs import CRS
from rasterio.errors import CRSError

from earthseg.serve.errors import bad_request

HEADER = "X-Amzn-SageMaker-Custom-Attributes"
Output = Literal["probability", "mask"]
OUTPUTS: tuple[Output, ...] = ("probability", "mask")
KNOWN = ("threshold", "output", "crs")


@dataclass(frozen=True)
class Options:
    """What a request asks for beyond its body; None means the default."""

    threshold: float | None = None  # default: the model card's
    output: Output | None = None  # default: by response type (see encoders)
    crs: CRS | None = None  # GeoJSON polygons in this CRS instead of the scene's


def parse_attributes(header: str | None) -> Options:
    """Options from the header's value (None or empty: all defaults)."""
    values: dict[str, str] = {}
    for item in re.split(r"[,;]", header or ""):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in KNOWN:
            raise bad_request(
                f"{HEADER} has {item.strip()!r}, which is not an option",
                f"use key=value pairs with keys {', '.join(KNOWN)} "
                "(e.g. threshold=0.4,output=mask,crs=EPSG:4326)",
            )
        values[key] = value
    return Options(
        threshold=_threshold(values["threshold"]) if "threshold" in values else None,
        output=_output(values["output"]) if "output" in values else None,
        crs=_crs(values["crs"]) if "crs" in values else None,
    )


def _threshold(value: str) -> float:
    try:
        threshold = float(value)
    except ValueError:
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        raise bad_request(
            f"{HEADER} threshold={value!r} is not a probability",
            "give a number from 0 to 1, e.g. threshold=0.4",
        )
    return threshold


def _output(value: str) -> Output:
    for output in OUTPUTS:
        if value.lower() == output:
            return output
    raise bad_request(
        f"{HEADER} output={value!r} is not an output", f"use output={' or output='.join(OUTPUTS)}"
    )


def _crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError as error:
        raise bad_request(
            f"{HEADER} crs={value!r} is not a coordinate reference system ({error})",
            "name one GDAL knows, e.g. crs=EPSG:4326",
        ) from None
