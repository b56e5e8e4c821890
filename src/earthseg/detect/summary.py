"""A run's events day by day: per date (and imagery layer) the scenes processed, the events
they held and the share of the observed area that was dust, as `daily.csv` and a plot.

Only days with a scene have a row: a day without imagery is unknown, not dust-free, so the
plot leaves it as a gap where a day that was observed and clear is drawn at zero.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthseg.atomic import atomic_file
from earthseg.detect.events import SceneEvents
from earthseg.train.report import pyplot

DAILY_COLUMNS = ("date", "layer", "scenes", "events", "dust_km2", "observed_km2", "dust_share")
PLOT_DPI = 100
FEW_DAYS = 92  # up to this many days in the plot, bigger markers


@dataclass(frozen=True)
class DailyRow:
    """One date and layer of a run: what its scenes observed and found."""

    date: datetime.date | None
    layer: str | None
    scenes: int
    events: int
    dust_km2: float
    observed_km2: float

    @property
    def dust_share(self) -> float | None:
        """The dust area over the observed area; None when nothing was observed."""
        return self.dust_km2 / self.observed_km2 if self.observed_km2 > 0 else None


def daily_rows(scenes: Sequence[SceneEvents]) -> list[DailyRow]:
    """One row per date and layer of the processed scenes, events or not, by date (scenes
    without a date last), then layer."""
    groups: dict[tuple[datetime.date | None, str | None], list[SceneEvents]] = {}
    for scene in scenes:
        groups.setdefault((scene.key.date, scene.key.layer), []).append(scene)
    rows = [
        DailyRow(
            date=date,
            layer=layer,
            scenes=len(members),
            events=sum(len(scene.events) for scene in members),
            dust_km2=sum(event.area_km2 for scene in members for event in scene.events),
            observed_km2=sum(scene.observed_km2 for scene in members),
        )
        for (date, layer), members in groups.items()
    ]
    return sorted(rows, key=lambda row: (*date_order(row.date), row.layer or ""))


def write_daily_csv(path: Path, rows: Sequence[DailyRow]) -> None:
    """`rows` as CSV with DAILY_COLUMNS; empty cells for a missing date, layer or share."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(DAILY_COLUMNS)
        for row in rows:
            share = row.dust_share
            writer.writerow(
                [
                    "" if row.date is None else row.date.isoformat(),
                    row.layer or "",
                    row.scenes,
                    row.events,
                    f"{row.dust_km2:.6f}",
                    f"{row.observed_km2:.6f}",
                    "" if share is None else f"{share:.6f}",
                ]
            )


def daily_series(rows: Sequence[DailyRow]) -> tuple[np.ndarray, dict[str | None, np.ndarray]]:
    """Every day from the first dated row to the last (datetime64[D]) and, per layer, the
    dust km² of each: NaN on a day without a scene of that layer, 0 on a clear one."""
    dated = [(row.date, row) for row in rows if row.date is not None]
    if not dated:
        return np.array([], dtype="datetime64[D]"), {}
    first = min(date for date, _ in dated)
    last = max(date for date, _ in dated)
    days = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)
    series: dict[str | None, np.ndarray] = {}
    for date, row in dated:
        values = series.setdefault(row.layer, np.full(len(days), np.nan))
        values[(date - first).days] = row.dust_km2
    return days, dict(sorted(series.items(), key=lambda item: item[0] or ""))


def plot_daily(path: Path, rows: Sequence[DailyRow], title: str = "Dust area per day") -> None:
    """Dust km² per day, one line per layer, as a PNG: a marker for every day with a
    scene (at zero when clear), a gap for a day without one."""
    import matplotlib.dates as mdates

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    days, series = daily_series(rows)
    for layer, values in series.items():
        axes.plot(
            days,
            values,
            marker="o",
            markersize=5 if len(days) <= FEW_DAYS else 2,
            linewidth=1,
            label=layer or "all scenes",
            clip_on=False,  # a clear day's marker sits on the axis, whole
        )
    if series:
        locator = mdates.AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.set_xlim(days[0] - np.timedelta64(1, "D"), days[-1] + np.timedelta64(1, "D"))
        axes.set_ylim(bottom=0)
        if len(series) > 1:
            axes.legend()
    else:
        axes.text(0.5, 0.5, "no dated scenes", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel("dust area (km²)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=PLOT_DPI)
    plt.close(figure)


def date_order(date: datetime.date | None) -> tuple[bool, datetime.date]:
    """A sort key putting dates in order and scenes without a date last."""
    return date is None, date or datetime.date.min
