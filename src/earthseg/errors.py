"""The one error type users see: it names the input at fault and the fix."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: printed as one readable message, never as a traceback.

    `source` is the file, folder or option at fault; `fix` tells the user what to do.
    """

    def __init__(self, source: str | Path, problem: str, fix: str) -> None:
        self.source = str(source)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.source}: {problem}. Fix: {fix}")
