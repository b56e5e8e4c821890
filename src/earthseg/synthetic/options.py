"""What `earthseg sample` makes: kept free of raster libraries, so the command line can
show and check them without loading those."""

from __future__ import annotations

from pydantic import Field

from earthseg.synthetic.naming import ID_COUNT
from earthseg.validation import Integer, Options

MIN_SIZE = 64


class SampleOptions(Options):
    """How many scenes, how large, from which seed."""

    scenes: Integer = Field(8, ge=1, le=ID_COUNT, description="number of scenes")
    size: Integer = Field(1024, ge=MIN_SIZE, description="scene width and height in pixels")
    seed: Integer = Field(0, ge=0, description="random seed (same seed, same files)")
