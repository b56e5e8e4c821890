"""ImageLabeler exports as they come, read into one label set per event.

An export is a flat folder of label files, a folder per event (`<name>/<name>.shp`), the
download-all zip (a folder per event inside), a folder holding that zip (how a SageMaker
Processing job sees an uploaded zip), or a mix of these. A zip whose shapefile sits at its
root is one zipped label set, read in place; a zip with folders is extracted into a
temporary folder that lives as long as `open_export`'s context.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from earthseg.errors import InputError
from earthseg.imagery.names import (
    EXPECTED_FORM,
    EventName,
    event_name,
    optional_event_name,
    parse_event_name,
)
from earthseg.preprocess.labels import FORMATS_HINT, LABEL_SUFFIXES, label_files

__all__ = [
    "EXPECTED_FORM",
    "EventName",
    "LabelSet",
    "event_name",
    "open_export",
    "parse_event_name",
]

log = logging.getLogger(__name__)

# What an event folder holds: ImageLabeler's shapefile, or one converted from it.
EVENT_SUFFIXES = (".shp", ".geojson", ".gpkg")
# Left by file managers and notebooks, never labels.
JUNK_PREFIXES = (".", "__MACOSX")


@dataclass(frozen=True)
class LabelSet:
    """One event's labels. `stem` pairs them with their scene (in the folder forms, the
    event folder's name: what ImageLabeler pairs on); `path` is the file to read; `name` is
    what the stem says (None for an undated stem in a flat folder of label files); `shown`
    is where the user finds it (inside a zip: the zip's path, then the member's)."""

    stem: str
    path: Path
    name: EventName | None
    shown: Path

    def files(self) -> list[Path]:
        """The label file and its sidecars: what the labels' digest covers."""
        return label_files(self.path)


@contextmanager
def open_export(path: Path, option: str = "--labels") -> Iterator[list[LabelSet]]:
    """The label sets of the export at `path`, sorted by stem; one set per stem."""
    path = Path(path)
    fix = f"pass the ImageLabeler export (its folder or its download-all .zip) with {option}"
    with ExitStack() as stack:
        found = _Found(stack)
        if path.is_dir():
            found.folder(path, path)
        elif path.is_file() and path.suffix.lower() == ".zip":
            found.zip(path, path)
        else:
            raise InputError(path, "is neither a folder nor a .zip", fix)
        if not found.sets:
            raise InputError(path, f"holds no label files ({FORMATS_HINT})", fix)
        yield found.sorted(path)


class _Found:
    """Label sets found so far, each with the path to name it by (inside a zip: the zip's
    path, then the member's)."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.sets: list[LabelSet] = []

    def folder(self, folder: Path, shown: Path) -> None:
        """Label files, event folders and zips, in a folder or under its one wrapping folder."""
        folder, shown = _unwrap(folder, shown)
        for entry in _visible(folder):
            where = shown / entry.name
            if entry.is_dir():
                self.event_folder(entry, where)
            elif entry.suffix.lower() == ".zip":
                self.zip(entry, where)
            elif entry.suffix.lower() in LABEL_SUFFIXES:
                self.sets.append(LabelSet(entry.stem, entry, optional_event_name(where), where))

    def event_folder(self, folder: Path, shown: Path) -> None:
        name = event_name(shown)
        files = [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in EVENT_SUFFIXES]
        if not files:
            raise InputError(
                shown, "holds no shapefile", "export the event again, or remove its folder"
            )
        if len(files) > 1:
            listed = ", ".join(p.name for p in files)
            raise InputError(shown, f"holds several label files ({listed})", "keep one per event")
        (file,) = files
        if file.stem != folder.name:
            log.warning(
                "%s: named unlike its folder; paired with scenes by the folder's name, %s",
                shown / file.name,
                folder.name,
            )
        self.sets.append(LabelSet(folder.name, file, name, shown / file.name))

    def zip(self, archive: Path, shown: Path) -> None:
        """A zipped label set (shapefile at the root) or a download-all zip (folders)."""
        try:
            with zipfile.ZipFile(archive) as opened:
                members = opened.namelist()
                files = _visible_members(members)
                labels = [m for m in files if PurePosixPath(m).suffix.lower() in LABEL_SUFFIXES]
                if not labels:
                    raise InputError(
                        shown, f"holds no label files ({FORMATS_HINT})", "zip the export again"
                    )
                if all("/" not in m for m in labels):
                    label_set = LabelSet(archive.stem, archive, optional_event_name(shown), shown)
                    self.sets.append(label_set)
                    return
                _check_members(members, shown)
                temporary = tempfile.TemporaryDirectory(prefix="earthseg-labels-")
                target = Path(self.stack.enter_context(temporary))
                for member in files:
                    opened.extract(member, target)
        except zipfile.BadZipFile as error:
            raise InputError(
                shown, f"cannot be read as a zip ({error})", "download the export again"
            ) from error
        self.folder(target, shown)

    def sorted(self, export: Path) -> list[LabelSet]:
        """The label sets by stem, refusing two for one stem."""
        by_stem: dict[str, list[Path]] = {}
        for label_set in self.sets:
            by_stem.setdefault(label_set.stem, []).append(label_set.shown)
        for stem, shown_paths in by_stem.items():
            if len(shown_paths) > 1:
                listed = ", ".join(str(p) for p in shown_paths)
                raise InputError(
                    export,
                    f"holds several label sets for {stem} ({listed})",
                    "keep one label file per event",
                )
        return sorted(self.sets, key=lambda s: s.stem)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(JUNK_PREFIXES))


def _visible_members(members: list[str]) -> list[str]:
    """A zip's files, without folders and what file managers leave in zips."""
    return [
        m
        for m in members
        if not m.endswith("/") and not any(p.startswith(JUNK_PREFIXES) for p in m.split("/"))
    ]


def _check_members(members: list[str], shown: Path) -> None:
    """Refuse a zip whose paths would reach outside the folder it is extracted to."""
    for member in members:
        path = PurePosixPath(member)
        if path.is_absolute() or ".." in path.parts:
            raise InputError(
                shown,
                f"holds {member}, which would be extracted outside the export's folder",
                "zip the export's folders again, with paths relative to them",
            )


def _unwrap(folder: Path, shown: Path) -> tuple[Path, Path]:
    """Step into a folder that only wraps the export (`export/<event folders>`): the one
    entry, a folder neither named nor holding files as an event folder is."""
    entries = _visible(folder)
    while (
        len(entries) == 1
        and entries[0].is_dir()
        and parse_event_name(entries[0].name) is None
        and not any(p.suffix.lower() in LABEL_SUFFIXES for p in _visible(entries[0]))
    ):
        folder, shown = entries[0], shown / entries[0].name
        entries = _visible(folder)
    return folder, shown
