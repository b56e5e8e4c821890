"""The run report's last section: the detection the run made with its model over the
archive's scenes (earthseg.detect), told as `detect`'s own page tells it
(earthseg.detect.page), with links to the catalogue."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from earthseg.report.document import Block, Code, Heading, Link, Paragraph

DAILY_FIGURE = "detection_daily.png"


def detection_blocks(detection: Path, report: Path, written: Path) -> list[Block]:
    """Blocks for the detection in `detection`, linked from the report folder `report`;
    its daily plot is copied into `written` (the report folder being written)."""
    from earthseg.detect.catalogue import DAILY_CSV, DAILY_PLOT, GEOJSON, PARQUET
    from earthseg.detect.events import read_scene_events
    from earthseg.detect.page import catalogue_blocks
    from earthseg.detect.run import EVENTS, MASKS, RECORD

    record = json.loads((detection / RECORD).read_text())
    scenes = [
        read_scene_events(detection / EVENTS / f"{scene['scene']}.geojson")
        for scene in record["scenes"]
    ]
    failures = [(failure["scene"], failure["reason"]) for failure in record["failures"]]
    shutil.copyfile(detection / DAILY_PLOT, written / DAILY_FIGURE)

    def link(name: str) -> Link:
        return Link(name, Path(os.path.relpath(detection / name, report)).as_posix())

    files = (
        "The run's model over every scene of the config's ",
        Code("detect"),
        " section; the catalogue: ",
        link(PARQUET),
        ", ",
        link(GEOJSON),
        "; per day: ",
        link(DAILY_CSV),
        "; masks: ",
        link(MASKS),
        ".",
    )
    return [
        Heading("Detection"),
        Paragraph(files),
        *catalogue_blocks(scenes, failures, DAILY_FIGURE),
    ]
