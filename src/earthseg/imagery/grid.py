"""The pixel grid a scene is fetched on, and the requests it is split into.

Grids are snapped to multiples of the pixel size from (-180, 90), so the same labels ask
for the same pixels on every run and neighbouring scenes share a grid. A chunk's bounding
box is computed from whole pixel indices of that grid, the same way for the scene and its
chunks, so chunks mosaic back exactly: no seams, no half-pixel shifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rasterio.transform import Affine
from rasterio.windows import Window

from earthseg.imagery.options import degrees

SNAP_TOLERANCE = 1e-6  # of a pixel: bounds within this of a grid line are on it


@dataclass(frozen=True)
class SceneGrid:
    """`width` x `height` pixels of `xres` x `yres` degrees, whose top-left pixel is
    column `col0`, row `row0` of the global grid starting at (-180, 90)."""

    xres: float
    yres: float
    col0: int
    row0: int
    width: int
    height: int

    def bbox(self, window: Window | None = None) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the scene or of a window of it, in degrees."""
        window = window or Window(0, 0, self.width, self.height)
        col, row = self.col0 + int(window.col_off), self.row0 + int(window.row_off)
        return (
            -180.0 + col * self.xres,
            90.0 - (row + int(window.height)) * self.yres,
            -180.0 + (col + int(window.width)) * self.xres,
            90.0 - row * self.yres,
        )

    @property
    def transform(self) -> Affine:
        west, _, _, north = self.bbox()
        return Affine(self.xres, 0.0, west, 0.0, -self.yres, north)


def scene_grid(
    bounds: tuple[float, float, float, float], resolution: str, margin: str
) -> SceneGrid:
    """The grid covering `bounds` (lon/lat) plus `margin` on every side at `resolution`,
    clipped to the globe."""
    west, south, east, north = bounds
    latitude = (south + north) / 2
    margin_x, margin_y = degrees(margin, latitude)
    xres, yres = degrees(resolution, latitude)
    columns, rows = math.floor(360 / xres + SNAP_TOLERANCE), math.floor(180 / yres + SNAP_TOLERANCE)
    col0 = max(0, math.floor((west - margin_x + 180) / xres + SNAP_TOLERANCE))
    col1 = min(columns, math.ceil((east + margin_x + 180) / xres - SNAP_TOLERANCE))
    row0 = max(0, math.floor((90 - north - margin_y) / yres + SNAP_TOLERANCE))
    row1 = min(rows, math.ceil((90 - south + margin_y) / yres - SNAP_TOLERANCE))
    return SceneGrid(xres, yres, col0, row0, max(1, col1 - col0), max(1, row1 - row0))


def chunk_windows(width: int, height: int, max_width: int, max_height: int) -> list[Window]:
    """Windows tiling a `width` x `height` image, none larger than the limits, in as few
    and as even pieces as the limits allow (row-major)."""
    columns, rows = math.ceil(width / max_width), math.ceil(height / max_height)
    col_edges = [round(i * width / columns) for i in range(columns + 1)]
    row_edges = [round(i * height / rows) for i in range(rows + 1)]
    return [
        Window(
            col_edges[c],
            row_edges[r],
            col_edges[c + 1] - col_edges[c],
            row_edges[r + 1] - row_edges[r],
        )
        for r in range(rows)
        for c in range(columns)
    ]
