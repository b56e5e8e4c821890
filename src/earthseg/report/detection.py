"""The run report's last section: the detection the run made with its model over the
archive's scenes (earthseg.detect), from what `detect` wrote: its record, the daily plot,
and the catalogue's largest events."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from earthseg.report.document import Block, Bullets, Code, Figure, Heading, Link, Paragraph, Table

DAILY_FIGURE = "detection_daily.png"
LARGEST = 10


def detection_blocks(detection: Path, report: Path, written: Path) -> list[Block]:
    """Blocks for the detection in `detection`, linked from the report folder `report`;
    its daily plot is copied into `written` (the report folder being written)."""
    from earthseg.detect.run import RECORD

    record = json.loads((detection / RECORD).read_text())
    catalogue = json.loads((detection / "catalogue.geojson").read_text())
    events = [feature["properties"] for feature in catalogue["features"]]
    dates = sorted(scene["date"] for scene in record["scenes"] if scene["date"])
    area = sum(event["area_km2"] for event in events)
    span = f" from {dates[0]} to {dates[-1]}" if dates else ""
    blocks: list[Block] = [
        Heading("Detection"),
        Paragraph(
            (
                f"The model over {len(record['scenes'])} scenes{span}: {len(events)} events, "
                f"{area:,.0f} km² of dust in all (geodesic areas). Catalogue: ",
                Link("catalogue.geojson", _relative(detection / "catalogue.geojson", report)),
                ", ",
                Link("catalogue.parquet", _relative(detection / "catalogue.parquet", report)),
                "; per day: ",
                Link("daily.csv", _relative(detection / "daily.csv", report)),
                ".",
            )
        ),
    ]
    plot = detection / "daily.png"
    if plot.is_file():
        shutil.copyfile(plot, written / DAILY_FIGURE)
        blocks.append(Figure(DAILY_FIGURE, "Dust area detected per day"))
    largest = sorted(events, key=lambda event: -event["area_km2"])[:LARGEST]
    if largest:
        blocks.append(
            Table(
                ("date", "scene", "area km²", "mean p", "max p", "bounds (W, S, E, N)"),
                tuple(
                    (
                        event["date"] or "",
                        Code(event["scene"]),
                        f"{event['area_km2']:,.1f}",
                        f"{event['mean_probability']:.2f}",
                        f"{event['max_probability']:.2f}",
                        ", ".join(
                            f"{event[side]:.2f}" for side in ("west", "south", "east", "north")
                        ),
                    )
                    for event in largest
                ),
            )
        )
    if record["failures"]:
        blocks.append(Paragraph(("Scenes that could not be detected:",)))
        blocks.append(
            Bullets(tuple((Code(f["scene"]), f": {f['reason']}") for f in record["failures"]))
        )
    return blocks


def _relative(path: Path, report: Path) -> str:
    return Path(os.path.relpath(path, report)).as_posix()
