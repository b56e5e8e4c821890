"""The CPU's cores, shared by the worker processes of one model server.

A model run alone is fastest on every core; several runs at once are fastest one core
each, as two runs of two threads on two cores only fight (measured on this U-Net, 2
cores: 26.5 tiles/s that way, 31 with one thread each, 28 for one run at a time on both).
So a run takes every core when all are free, and otherwise its worker's own core, waiting
for it if need be; a run that had to wait keeps to that one core, since taking every core
the moment they come free would make the workers take turns again. Each core is an
advisory file lock, which the kernel drops if a worker dies holding it; a thread lock
orders the runs of one worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class CoreSlots:
    """One lock file per core in `folder`; `home` is the calling worker's own core."""

    def __init__(self, folder: Path, count: int) -> None:
        self.paths = [Path(folder) / f"core-{index}.lock" for index in range(count)]
        self.home = 0
        self._files: list[IO[bytes]] = []
        self._runs = threading.Lock()

    def create(self) -> None:
        """Make the lock files (once, in the parent, before the workers start)."""
        for path in self.paths:
            path.touch()

    @contextlib.contextmanager
    def take(self) -> Iterator[int]:
        """Hold cores for one run; yields how many (all of them, or 1)."""
        with self._runs:
            if not self._files:  # opened per process: a lock held through a shared file
                self._files = [open(path, "rb") for path in self.paths]  # noqa: SIM115
            home = self._files[self.home % len(self._files)]
            held = [file for file in self._files if _try_lock(file)]
            if len(held) < len(self._files):  # others run: its own core only, waited for
                _unlock([file for file in held if file is not home])
                if home not in held:
                    fcntl.flock(home, fcntl.LOCK_EX)
                held = [home]
            try:
                yield len(held)
            finally:
                _unlock(held)


def _try_lock(file: IO[bytes]) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(files: list[IO[bytes]]) -> None:
    for file in files:
        fcntl.flock(file, fcntl.LOCK_UN)
