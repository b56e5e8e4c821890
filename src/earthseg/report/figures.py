"""One three-panel figure per test scene: the scene in true colour, the expert labels over
it, the predicted mask over it with the labels' outline, on axes in the scene's CRS.

Scenes of any size are read decimated (GDAL reads with `out_shape`, from overviews when
the file has them), so a 10k x 10k scene makes a figure as small as a 1k one; the labels
are burned directly on the decimated grid, exact rather than resampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from earthseg.preprocess.rasterize import burn
from earthseg.preprocess.scenes import open_scene
from earthseg.serve.geo import MASK_NODATA
from earthseg.train.report import displayable, draw_panels, pyplot, save_figure

PANEL_PIXELS = 640  # longest side of the raster drawn in each panel
PANEL_INCHES = 5.0
MARGIN_INCHES = 0.4  # beside each panel: tick labels, spacing
TITLES_INCHES = 1.5  # above and below the panels: figure and panel titles, axis labels
DPI = 100


def scene_figure(
    image: Path, polygons: np.ndarray, mask: Path, title: str, threshold: float, out: Path
) -> Path:
    """Draw the scene `image`, its label `polygons` (in its CRS) and its predicted `mask`
    side by side under `title`; write the PNG to `out`."""
    with open_scene(image) as scene:
        shape = _panel_shape(scene.height, scene.width)
        bands = list(range(1, min(scene.count, 3) + 1))
        pixels = scene.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average)
        valid = scene.dataset_mask(out_shape=shape) > 0
        transform = scene.transform * Affine.scale(scene.width / shape[1], scene.height / shape[0])
        crs, bounds = scene.crs, scene.bounds
    label = burn(polygons, shape, transform) > 0
    with rasterio.open(mask) as dataset:
        predicted = dataset.read(1, out_shape=shape, resampling=Resampling.nearest)
        nodata = MASK_NODATA if dataset.nodata is None else int(dataset.nodata)
    north_up = transform.b == 0 and transform.d == 0
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top) if north_up else None

    plt = pyplot()
    if extent is None:
        aspect = shape[0] / shape[1]
    else:
        aspect = (bounds.top - bounds.bottom) / (bounds.right - bounds.left)
    # Panels as wide as they can be; the height holds the drawing and the titles, no more.
    height = (PANEL_INCHES - MARGIN_INCHES) * aspect + TITLES_INCHES
    figure, row = plt.subplots(1, 3, figsize=(3 * PANEL_INCHES, height), sharex=True, sharey=True)
    draw_panels(
        row,
        displayable(np.moveaxis(pixels, 0, -1), valid),
        label,
        predicted == 1,
        ("scene (true colour)", "expert labels", f"prediction (threshold {threshold:.2f})"),
        extent=extent,
        unscored=(predicted == nodata) & valid,
    )
    if extent is not None:
        _map_axes(row, crs)
    figure.suptitle(title)
    return save_figure(plt, figure, out, dpi=DPI)


def _panel_shape(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the decimated raster: at most PANEL_PIXELS a side, never upsampled."""
    factor = max(1.0, max(height, width) / PANEL_PIXELS)
    return max(1, round(height / factor)), max(1, round(width / factor))


def _map_axes(row: Any, crs: CRS) -> None:
    """Label the axes with the CRS's coordinates; plain numbers, few ticks (UTM metres are long)."""
    epsg = crs.to_epsg()
    name = f"EPSG:{epsg}" if epsg else "scene CRS"
    if crs.is_geographic:
        x_label, y_label = f"longitude (°, {name})", "latitude (°)"
    else:
        units = crs.linear_units or "map units"
        x_label, y_label = f"easting ({units}, {name})", f"northing ({units})"
    for axis in row:
        axis.ticklabel_format(useOffset=False, style="plain")
        axis.locator_params(nbins=4)
        axis.set_xlabel(x_label)
    row[0].set_ylabel(y_label)
