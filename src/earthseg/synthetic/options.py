"""What `earthseg sample` makes: kept free of raster libraries, so the command line can
show and check them without loading those."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from earthseg.errors import InputError
from earthseg.synthetic.naming import ID_COUNT
from earthseg.validation import Integer, Options, validate

MIN_SIZE = 64


class SampleOptions(Options):
    """How many scenes, how large, from which seed."""

    scenes: Integer = Field(8, ge=1, le=ID_COUNT, description="number of scenes")
    size: Integer = Field(1024, ge=MIN_SIZE, description="scene width and height in pixels")
    seed: Integer = Field(0, ge=0, description="random seed (same seed, same files)")
    imagelabeler: bool = Field(
        False,
        description="write what ImageLabeler gives instead: export.zip (labels only, a folder "
        "per event) and imagery/, the scenes for a local WMS standing in for GIBS",
    )


def check_sample(out: Path, scenes: int, size: int, seed: int) -> None:
    """A sample's options by `sample`'s rules, and `out` new or empty."""
    options = {"scenes": scenes, "size": size, "seed": seed}
    validate(SampleOptions, options, key=lambda location: f"--{location[0]}")  # as `sample` says
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a new --out or remove it")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(out, "already exists and is not empty", "choose a new --out or remove it")
