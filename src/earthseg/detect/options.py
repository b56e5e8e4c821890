"""What `earthseg detect` is asked: the area and days, and how scenes become events.

Light on purpose (pydantic only): `earthseg --help` reads these.
"""

from __future__ import annotations

import datetime

from pydantic import Field

from earthseg.contracts.serving import DEFAULT_MAX_PAYLOAD_MB
from earthseg.errors import InputError
from earthseg.validation import Integer, Number, Options

MAX_DAYS = 36_600  # a century of days: more is surely a typo


class DetectOptions(Options):
    """How each scene's prediction becomes masks and events; every field is part of what
    makes a scene "done" for a rerun."""

    threshold: Number | None = Field(
        None, ge=0, le=1, description="decision threshold (default the model card's)"
    )
    probabilities: bool = Field(
        False, description="also write each scene's probabilities (float32 COG)"
    )
    min_pixels: Integer = Field(
        1, ge=1, description="smallest event kept, in pixels (drops specks)"
    )
    max_payload_mb: Number = Field(
        DEFAULT_MAX_PAYLOAD_MB,
        gt=0,
        description="with --url or a real-time --endpoint: the largest request (4 for "
        "serverless endpoints); scenes go in chunks under it",
    )


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """`W,S,E,N` in degrees (west < east, south < north, on the globe)."""
    fix = "give --bbox WEST,SOUTH,EAST,NORTH in degrees, e.g. --bbox -170,55,-140,72"
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError("--bbox", f"{text!r} is not four numbers", fix) from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InputError(
            "--bbox",
            f"{text!r} is not a box on the globe (west < east within ±180, south < north "
            "within ±90; boxes across the antimeridian are not supported)",
            fix,
        )
    return west, south, east, north


def parse_dates(text: str) -> list[datetime.date]:
    """`START..END` (both included) or one `DATE`, ISO dates, as a list of days."""
    fix = "give --dates 2023-05-01..2023-05-31 (both days included) or one date"
    start_text, _, end_text = text.partition("..")
    try:
        start = datetime.date.fromisoformat(start_text.strip())
        end = datetime.date.fromisoformat(end_text.strip()) if end_text else start
    except ValueError as error:
        raise InputError("--dates", f"{text!r}: {error}", fix) from None
    days = (end - start).days + 1
    if days < 1:
        raise InputError("--dates", f"{text!r} ends before it starts", fix)
    if days > MAX_DAYS:
        raise InputError("--dates", f"{text!r} spans {days} days", "split it into shorter runs")
    return [start + datetime.timedelta(days=offset) for offset in range(days)]
