"""`earthseg runs`: the tracked training runs, listed and compared."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any) -> None:
    """Filled in by the runs work (placeholder)."""
