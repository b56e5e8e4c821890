"""A WMS layer's time dimension (ISO 8601 as WMS 1.3.0 writes it) and whether a date is
in it: GIBS lists intervals such as `2002-07-04/2024-06-01/P1D`, MapServer lists dates."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

DAYS = re.compile(r"^P(\d+)D$")


@dataclass(frozen=True)
class TimeSpan:
    """One item of a time extent: a date, or an interval with an optional period."""

    start: datetime.date
    end: datetime.date
    every_days: int | None  # P<n>D; None: any date in the interval (or a finer period)

    def __contains__(self, date: object) -> bool:
        if not isinstance(date, datetime.date) or not self.start <= date <= self.end:
            return False
        return self.every_days is None or (date - self.start).days % self.every_days == 0

    def __str__(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        period = f"/P{self.every_days}D" if self.every_days else ""
        return f"{self.start.isoformat()}/{self.end.isoformat()}{period}"


def _date(text: str) -> datetime.date:
    """The date of an ISO 8601 instant (`2018-01-08`, `2018-01-08T00:00:00Z`)."""
    return datetime.date.fromisoformat(text.strip()[:10])


def parse_time_extent(values: list[str]) -> list[TimeSpan]:
    """The spans of a `<Dimension name="time">` (its comma-separated items); items that
    are not dates or intervals of dates (`current`, durations) are ignored."""
    spans = []
    for item in (part.strip() for value in values for part in value.split(",")):
        pieces = item.split("/")
        try:
            if len(pieces) == 1:
                date = _date(pieces[0])
                spans.append(TimeSpan(date, date, None))
            elif len(pieces) in (2, 3):
                period = DAYS.match(pieces[2].strip()) if len(pieces) == 3 else None
                every = int(period.group(1)) if period else None
                spans.append(TimeSpan(_date(pieces[0]), _date(pieces[1]), every or None))
        except ValueError:
            continue
    return spans


def describe(spans: list[TimeSpan], limit: int = 4) -> str:
    """A short form of an extent for error messages."""
    shown = ", ".join(str(span) for span in spans[:limit])
    return shown + (f" and {len(spans) - limit} more" if len(spans) > limit else "")
