"""Pair scenes with their label sets by stem, as ImageLabeler names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from earthseg.errors import InputError
from earthseg.imagery.exports import LabelSet
from earthseg.preprocess.scenes import SCENE_SUFFIXES


@dataclass(frozen=True)
class Pair:
    """One labelled scene: `high-latitude-dust_2018-01-08_197.tif` + `....shp`."""

    stem: str
    image: Path
    labels: LabelSet


def files_by_stem(folder: Path, suffixes: tuple[str, ...], option: str) -> dict[str, Path]:
    """The files in `folder` with one of `suffixes`, keyed by stem; one file per stem."""
    if not folder.is_dir():
        raise InputError(folder, "is not a folder", f"pass the export's folder with {option}")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, []).append(path)
    if not found:
        raise InputError(
            folder, f"holds no {'/'.join(suffixes)} files", f"point {option} at the export's files"
        )
    clashes = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if clashes:
        listed = "; ".join(", ".join(p.name for p in paths) for paths in clashes.values())
        raise InputError(folder, f"holds several files for one scene ({listed})", "keep one each")
    return {stem: paths[0] for stem, paths in found.items()}


def pair_by_stem(images: Path, labels: list[LabelSet]) -> list[Pair]:
    """Every scene in `images` with its label set (from `open_export`), sorted by stem; any
    scene or label set alone is an error."""
    scenes = files_by_stem(Path(images), SCENE_SUFFIXES, "--images")
    label_sets = {label_set.stem: label_set for label_set in labels}
    unlabelled = sorted(scenes.keys() - label_sets.keys())
    if unlabelled:
        raise InputError(
            images,
            f"{len(unlabelled)} scenes have no label file in the export: {', '.join(unlabelled)}",
            "export their labels with the same file stem, or move those scenes out",
        )
    orphans = sorted(label_sets.keys() - scenes.keys())
    if orphans:
        raise InputError(
            images,
            f"{len(orphans)} label files have no scene in this folder: {', '.join(orphans)}",
            "add the scenes with the same file stem, or move those labels out",
        )
    return [Pair(stem, scenes[stem], label_sets[stem]) for stem in sorted(scenes)]
