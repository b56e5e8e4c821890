"""Cut a scene into tile windows, read strip by strip so no scene is held whole."""

from __future__ import annotations

from collections.abc import Iterator

from rasterio.windows import Window

from earthseg.errors import InputError


def offsets(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: every `stride`, plus one flush with the far edge.

    The last tile is shifted back to end at the edge rather than padded, so every tile
    holds real pixels and the whole scene is covered.
    """
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def strips(
    width: int, height: int, tile: int, overlap: int, scene: str
) -> Iterator[tuple[Window, list[Window]]]:
    """(strip window, tile windows within it) for each row of tiles of a scene."""
    if width < tile or height < tile:
        raise InputError(
            scene,
            f"is {width}x{height} pixels, smaller than one {tile}x{tile} tile",
            f"use --tile-size {min(width, height)} or less, or remove the scene",
        )
    stride = tile - overlap
    columns = offsets(width, tile, stride)
    for row in offsets(height, tile, stride):
        strip = Window(0, row, width, tile)
        yield strip, [Window(col, row, tile, tile) for col in columns]
