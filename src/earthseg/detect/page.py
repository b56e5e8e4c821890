"""The page a detection run ends with: what was processed, what was found, the daily plot,
the largest events and the scenes that failed, as Markdown and as one self-contained HTML
page, from the same blocks (earthseg.report.document) so the two never disagree. A run
report embeds the same blocks or the Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from earthseg.detect.events import Event, SceneEvents
from earthseg.report.document import (
    Block,
    Bullets,
    Code,
    Figure,
    Heading,
    Inline,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)

PLOT_CAPTION = "Dust area per day (km²); a day without a scene is a gap, a clear day is zero."
LARGEST_HEADER = (
    "event",
    "date",
    "scene",
    "area (km²)",
    "mean probability",
    "max probability",
    "bounds (W, S, E, N)",
)


def catalogue_blocks(
    scenes: Sequence[SceneEvents],
    failures: Sequence[tuple[str, str]],
    plot_name: str,
    largest: int = 10,
) -> list[Block]:
    """The page's body: facts, the plot (`plot_name`, relative), the `largest` events by
    area, the failed scenes as (scene, reason)."""
    events = [event for scene in scenes for event in scene.events]
    blocks: list[Block] = [
        Bullets(_facts(scenes, events, failures)),
        Figure(plot_name, PLOT_CAPTION),
        Heading("Largest events"),
    ]
    if events:
        ranked = sorted(events, key=lambda event: -event.area_km2)[:largest]
        shown = f"The {len(ranked)} largest of {len(events)} events, by geodesic area."
        blocks.append(Paragraph((shown,)))
        blocks.append(Table(LARGEST_HEADER, tuple(_event_row(event) for event in ranked)))
    else:
        blocks.append(Paragraph(("No events were detected.",)))
    if failures:
        blocks.append(Heading("Failed scenes"))
        blocks.append(Table(("scene", "reason"), tuple((name, why) for name, why in failures)))
    return blocks


def catalogue_markdown(
    scenes: Sequence[SceneEvents],
    failures: Sequence[tuple[str, str]],
    plot_name: str,
    title: str,
    largest: int = 10,
) -> str:
    """The page as Markdown, `# title` first; the plot linked as `plot_name`."""
    return to_markdown(title, catalogue_blocks(scenes, failures, plot_name, largest))


def catalogue_html(
    scenes: Sequence[SceneEvents],
    failures: Sequence[tuple[str, str]],
    plot: Path,
    title: str,
    largest: int = 10,
) -> str:
    """The page as standalone HTML, the plot (a PNG that must exist) embedded."""
    blocks = catalogue_blocks(scenes, failures, plot.name, largest)
    return to_html(title, blocks, plot.parent)


def _facts(
    scenes: Sequence[SceneEvents], events: list[Event], failures: Sequence[tuple[str, str]]
) -> tuple[tuple[Inline, ...], ...]:
    dates = sorted({scene.key.date for scene in scenes if scene.key.date is not None})
    if dates:
        span = f"{dates[0].isoformat()} to {dates[-1].isoformat()} ({len(dates)} days with scenes)"
    else:
        span = "none (no scene has a date)"
    layers = sorted({scene.key.layer for scene in scenes if scene.key.layer is not None})
    processed = f"Scenes processed: {len(scenes)}"
    if layers:
        processed += f" (layer{'s' if len(layers) > 1 else ''} {', '.join(layers)})"
    dust = sum(event.area_km2 for event in events)
    observed = sum(scene.observed_km2 for scene in scenes)
    area = f"Total dust area: {_km2(dust)} km²"
    if observed > 0:
        area += f" ({dust / observed:.2%} of the {_km2(observed)} km² observed)"
    facts: list[tuple[Inline, ...]] = [
        (f"Dates: {span}",),
        (processed,),
        (f"Scenes failed: {len(failures)}",),
        (f"Events found: {len(events)}",),
        (area,),
    ]
    thresholds = sorted({scene.threshold for scene in scenes})
    if thresholds:
        facts.append((f"Threshold: {', '.join(f'{value:g}' for value in thresholds)}",))
    return tuple(facts)


def _event_row(event: Event) -> tuple[Inline, ...]:
    return (
        Code(event.id),
        "" if event.date is None else event.date.isoformat(),
        event.scene,
        _km2(event.area_km2),
        f"{event.mean_probability:.3f}",
        f"{event.max_probability:.3f}",
        ", ".join(f"{value:.4f}" for value in event.bounds),
    )


def _km2(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"
