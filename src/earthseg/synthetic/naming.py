"""Names of synthetic scenes, shaped like ImageLabeler's `<event>_<YYYY-MM-DD>_<id>` stems."""

from __future__ import annotations

import calendar
import datetime

import numpy as np

EVENT = "high-latitude-dust"
LABEL_CLASS = "dust"
FIRST_ID = 100
ID_COUNT = 900  # three-digit ids, as in the real exports
YEARS = (2003, 2023)  # Aqua and Terra both flying
# Dry, windy, snow-free months of the northern (Iceland, Alaska) and southern
# (Patagonia) high-latitude dust seasons.
DUST_MONTHS = {True: (3, 4, 5, 9, 10, 11), False: (10, 11, 12, 1, 2, 3)}


def scene_ids(seed: int, scenes: int) -> list[int]:
    """Return `scenes` distinct three-digit ids; the first k do not depend on `scenes`."""
    order = np.random.default_rng(seed).permutation(ID_COUNT)
    return [FIRST_ID + int(i) for i in order[:scenes]]


def dust_season_date(rng: np.random.Generator, north: bool) -> datetime.date:
    """Return a plausible acquisition date in the dust season of the hemisphere."""
    year = int(rng.integers(YEARS[0], YEARS[1] + 1))
    month = int(rng.choice(DUST_MONTHS[north]))
    day = int(rng.integers(1, calendar.monthrange(year, month)[1] + 1))
    return datetime.date(year, month, day)


def scene_stem(date: datetime.date, scene_id: int) -> str:
    """Return the file stem shared by a scene's image and its labels."""
    return f"{EVENT}_{date.isoformat()}_{scene_id}"
