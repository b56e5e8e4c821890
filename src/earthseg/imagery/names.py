"""ImageLabeler's names: `<event>_<YYYY-MM-DD>[_<user>]_<id>`, the only place the date lives."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

from earthseg.errors import InputError
from earthseg.preprocess.labels import LABEL_SUFFIXES

EXPECTED_FORM = (
    "<event>_<YYYY-MM-DD>_<id> (or <event>_<YYYY-MM-DD>_<user>_<id>, as download-all names them)"
)
# The event is everything before the date and may hold hyphens and underscores; the user
# and the id hold no underscore, so the date is the one followed by one or two `_` parts.
_NAME = re.compile(
    r"(?P<event>.+)_(?P<date>\d{4}-\d{2}-\d{2})(?:_(?P<user>[A-Za-z0-9.-]+))?_(?P<id>[A-Za-z0-9.-]+)"
)


@dataclass(frozen=True)
class EventName:
    """One labelled event as ImageLabeler names it: `high-latitude-dust_2018-01-08_jdoe_197`."""

    event: str
    date: datetime.date
    user: str | None
    id: str


def parse_event_name(stem: str) -> EventName | None:
    """The event, date, user and id in `stem`; None if it is not an ImageLabeler name."""
    match = _NAME.fullmatch(stem)
    if match is None:
        return None
    try:
        date = datetime.date.fromisoformat(match["date"])
    except ValueError:
        return None
    return EventName(match["event"], date, match["user"], match["id"])


def event_name(path: Path) -> EventName:
    """The ImageLabeler name of a label file or event folder, or an InputError naming it."""
    name = optional_event_name(path)
    if name is None:
        raise InputError(
            path,
            "is not an ImageLabeler event name (it does not end in _<YYYY-MM-DD>_<id>)",
            f"name it {EXPECTED_FORM}, as ImageLabeler exports it",
        )
    return name


def optional_event_name(path: Path) -> EventName | None:
    """The ImageLabeler name of a label file or event folder; None for a name without a
    date (a flat folder of label files may hold those), an InputError for a false date."""
    stem = path.stem if path.suffix.lower() in LABEL_SUFFIXES else path.name
    match = _NAME.fullmatch(stem)
    if match is None:
        return None
    name = parse_event_name(stem)
    if name is None:
        raise InputError(
            path,
            f"is named for {match['date']}, which is not a real date",
            f"name it {EXPECTED_FORM} with the date the event was labelled on",
        )
    return name
