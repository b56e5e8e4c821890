"""Outputs that appear only when complete: build in a temporary place, then rename.

Temporary names carry the target's name, so a run killed half-way (no `finally` runs on
SIGKILL) leaves debris that the next run for the same target recognises and removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

PARTIAL_PREFIX = ".earthseg-partial-"


@contextlib.contextmanager
def atomic_file(target: Path, sweep: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success.

    `sweep=False` skips looking for a killed run's debris of `target`, for a writer of
    many files into one folder that swept it once (`remove_partials`): the look lists the
    folder, so doing it per file costs time in the square of the files.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(target.parent, target, sweep)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path, last: str | None = None, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `target`, else it vanishes.

    A missing `target` is created by one rename of a sibling folder. An existing
    `target` (SageMaker's /opt/ml/model or a Processing output is a mount point that
    cannot be replaced) is filled by moving each entry in, with `last` (e.g. the
    manifest) moved last so that its presence marks a complete output; with `replace`,
    what it held before is removed first, once the new content is complete.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    fill_in_place = target.is_dir()
    workspace = target if fill_in_place else target.parent
    workspace.mkdir(parents=True, exist_ok=True)
    tmp = _partial(workspace, target)
    tmp.mkdir()
    try:
        yield tmp
        if not fill_in_place:
            os.rename(tmp, target)
            return
        if replace:
            for old in target.iterdir():
                if old != tmp:
                    _remove(old)
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == last):
            os.rename(entry, target / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_partials(folder: Path) -> None:
    """Remove every killed run's debris in `folder` (before `atomic_file(sweep=False)`)."""
    if folder.is_dir():
        for stale in folder.glob(f"{PARTIAL_PREFIX}*"):
            _remove(stale)


def _partial(folder: Path, target: Path, sweep: bool = True) -> Path:
    """A fresh temporary name for `target` in `folder`, after clearing stale ones.

    Left for the caller to create, so that it gets the usual permissions.
    """
    stem = f"{PARTIAL_PREFIX}{target.name}-"
    for stale in folder.glob(f"{stem}*") if sweep else ():
        _remove(stale)
    return folder / f"{stem}{uuid.uuid4().hex}{target.suffix}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
