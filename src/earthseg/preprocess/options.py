"""What decides a dataset's content besides its inputs: `earthseg preprocess`'s options.

Kept free of raster libraries, so that launchers check them before starting a job; the
command line, the run config and a Processing job's arguments all go through this model.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from earthseg.validation import Integer, Number, Options, invalid

SHARES_FIX = "give three shares for train, validation, test summing to 1, e.g. 0.7,0.15,0.15"


class PreprocessOptions(Options):
    """Everything besides the inputs that decides a dataset's content."""

    tile_size: Integer = Field(256, ge=16, description="tile side in pixels (the model's input)")
    overlap: Integer = Field(0, ge=0, description="pixels shared by neighbouring tiles")
    splits: tuple[Number, Number, Number] = Field(
        (0.7, 0.15, 0.15),
        description="train, validation, test shares of the scenes (grouped by scene)",
    )
    seed: Integer = Field(0, ge=0, description="seed of the scene split")
    min_valid: Number = Field(
        0.9, ge=0, le=1, description="drop tiles with a smaller share of valid pixels"
    )
    all_touched: bool = Field(False, description="burn every pixel a label polygon touches")
    write_tiles: bool = Field(
        False, description="also write tiles/<split>/<tile>.tif + _bitmap.png (to look at)"
    )

    @field_validator("splits", mode="before")
    @classmethod
    def _shares(cls, value: Any) -> Any:
        """Three shares summing to 1, train and validation not empty; "0.7,0.15,0.15"
        (the command line's form) too."""
        text = value if isinstance(value, str) else ",".join(str(share) for share in value)
        try:
            shares = tuple(float(part) for part in text.split(","))
        except ValueError:
            shares = ()
        if len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
            raise invalid(
                f"{text} is not three non-negative fractions for train, validation, test "
                "summing to 1",
                SHARES_FIX,
            )
        if shares[0] == 0 or shares[1] == 0:
            raise invalid(f"{text} leaves train or validation empty", "give both a share")
        return shares

    @field_validator("overlap")
    @classmethod
    def _less_than_a_tile(cls, overlap: int, info: ValidationInfo) -> int:
        tile_size = info.data.get("tile_size")
        if tile_size is not None and overlap >= tile_size:
            raise invalid(
                f"{overlap} must be less than the tile size {tile_size}",
                f"use e.g. {tile_size // 4}",
            )
        return overlap

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
