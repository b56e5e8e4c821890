"""What decides a dataset's content besides its inputs: `earthseg preprocess`'s options.

Kept free of raster libraries, so that launchers check them before starting a job.
"""

from __future__ import annotations

from dataclasses import dataclass

from earthseg.errors import InputError


@dataclass(frozen=True)
class PreprocessOptions:
    """Everything besides the inputs that decides a dataset's content."""

    tile_size: int = 256
    overlap: int = 0
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    min_valid: float = 0.9
    all_touched: bool = False
    write_tiles: bool = False

    def check(self) -> None:
        if self.tile_size < 16:
            raise InputError(f"--tile-size {self.tile_size}", "is too small", "use 16 or more")
        if not 0 <= self.overlap < self.tile_size:
            raise InputError(
                f"--overlap {self.overlap}",
                f"must be at least 0 and less than the tile size {self.tile_size}",
                f"use e.g. --overlap {self.tile_size // 4}",
            )
        if not 0 <= self.min_valid <= 1:
            raise InputError(
                f"--min-valid {self.min_valid}", "is not a fraction", "use e.g. --min-valid 0.9"
            )

    def arguments(self) -> list[str]:
        """The `earthseg preprocess` options that ask for these (a container's command)."""
        arguments = [
            f"--tile-size={self.tile_size}",
            f"--overlap={self.overlap}",
            f"--splits={','.join(str(share) for share in self.splits)}",
            f"--seed={self.seed}",
            f"--min-valid={self.min_valid}",
        ]
        if self.all_touched:
            arguments.append("--all-touched")
        if self.write_tiles:
            arguments.append("--write-tiles")
        return arguments


DEFAULT_OPTIONS = PreprocessOptions()
