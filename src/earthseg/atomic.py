"""Outputs that appear only when complete: build in a temporary place, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

PARTIAL_PREFIX = ".earthseg-partial-"


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _partial_name(target.parent, target.suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path, last: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `target`, else it vanishes.

    A missing `target` is created by one rename of a sibling folder. An existing empty
    `target` (a SageMaker Processing output is a mount point that cannot be replaced) is
    filled by moving each entry in, with `last` (e.g. the manifest) moved last so that
    its presence marks a complete output.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    fill_in_place = target.is_dir()
    parent = target if fill_in_place else target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_name(parent)
    tmp.mkdir()
    try:
        yield tmp
        if not fill_in_place:
            os.rename(tmp, target)
            return
        entries = sorted(tmp.iterdir(), key=lambda p: p.name == last)
        for entry in entries:
            os.rename(entry, target / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _partial_name(folder: Path, suffix: str = "") -> Path:
    """A fresh name in `folder`; created by the caller so it gets the usual permissions."""
    return folder / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}{suffix}"


def remove_stale_partials(folder: Path) -> None:
    """Remove what a killed run left half-written in `folder`."""
    for stale in folder.glob(f"{PARTIAL_PREFIX}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
