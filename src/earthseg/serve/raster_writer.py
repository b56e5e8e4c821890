"""A scene's prediction written as it is computed: row blocks in, a Cloud-Optimized
GeoTIFF out (tiled, compressed, with overviews) on exactly the scene's grid.

Rows go first into a tiled GeoTIFF beside the target, a whole row of tiles at a time (a
compressed tile written twice would be stored twice), then GDAL's COG driver copies it
with overviews. Only one row of tiles is held in memory, whatever the scene's size.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from earthseg.serve.geo import MASK_NODATA, THRESHOLD_TAG, Grid
from earthseg.serve.stream import Rows

Kind = Literal["mask", "probability"]
BLOCK = 512  # COG tile side
KINDS: dict[Kind, dict[str, Any]] = {
    # uint8 0/1/255: deflate with horizontal differencing; overviews keep classes (nearest).
    "mask": {"dtype": "uint8", "nodata": MASK_NODATA, "predictor": 2, "resampling": "NEAREST"},
    # float32, NaN without data: floating-point prediction; overviews average.
    "probability": {
        "dtype": "float32",
        "nodata": float("nan"),
        "predictor": 3,
        "resampling": "AVERAGE",
    },
}


class RasterRows:
    """Rows of one band (a mask from probabilities, or the probabilities) into a tiled
    GeoTIFF at `path`, held back until a whole row of tiles is complete."""

    def __init__(self, path: str, grid: Grid, kind: Kind, threshold: float) -> None:
        import rasterio

        self.kind, self.threshold, self.grid = kind, threshold, grid
        spec = KINDS[kind]
        self.dtype = np.dtype(spec["dtype"])
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": 1,
            "dtype": spec["dtype"],
            "crs": grid.crs,
            "transform": grid.transform,
            "nodata": spec["nodata"],
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "zlevel": 1,  # temporary: written fast, compressed properly by the COG copy
            "predictor": spec["predictor"],
            "bigtiff": "IF_SAFER",
        }
        with warnings.catch_warnings(action="ignore", category=NotGeoreferencedWarning):
            self.dataset = rasterio.open(path, "w", **profile)
        if kind == "probability":
            self.dataset.update_tags(**{THRESHOLD_TAG: repr(float(threshold))})
        self.pending: list[np.ndarray] = []
        self.top = 0  # first row not yet written

    def write(self, rows: Rows) -> None:
        """The next block of rows (blocks come in order, from row 0)."""
        self.pending.append(self.values(rows.probabilities))
        held = sum(block.shape[0] for block in self.pending)
        whole = held // BLOCK * BLOCK
        if whole:
            self._flush(whole)

    def values(self, probabilities: np.ndarray) -> np.ndarray:
        """What this raster holds for a block of probabilities."""
        if self.kind == "probability":
            return probabilities.astype(np.float32, copy=False)
        mask = (probabilities >= self.threshold).astype(np.uint8)
        mask[np.isnan(probabilities)] = MASK_NODATA
        return mask

    def close(self) -> None:
        """Write what is held and close the file; every row must have been written."""
        held = sum(block.shape[0] for block in self.pending)
        if held:
            self._flush(held)
        self.dataset.close()
        if self.top != self.grid.height:
            raise ValueError(f"{self.top} of {self.grid.height} rows were written")

    def _flush(self, rows: int) -> None:
        from rasterio.windows import Window

        stacked = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.dataset.write(stacked[:rows], 1, window=Window(0, self.top, self.grid.width, rows))
        self.top += rows
        self.pending = [stacked[rows:].copy()] if rows < stacked.shape[0] else []  # not a view


def copy_as_cog(source: str, target: str, kind: Kind) -> None:
    """`source` (a tiled GeoTIFF) as a Cloud-Optimized GeoTIFF at `target`, with overviews."""
    import rasterio.shutil

    spec = KINDS[kind]
    with warnings.catch_warnings(action="ignore", category=NotGeoreferencedWarning):
        rasterio.shutil.copy(
            source,
            target,
            driver="COG",
            compress="DEFLATE",
            predictor="YES",
            blocksize=BLOCK,
            overview_resampling=spec["resampling"],
            bigtiff="IF_SAFER",
            num_threads="ALL_CPUS",
        )


@contextlib.contextmanager
def cog_writer(target: Path, grid: Grid, kind: Kind, threshold: float) -> Iterator[RasterRows]:
    """Rows into a COG at `target`, which appears only once complete."""
    from earthseg.atomic import atomic_file

    with atomic_file(target, sweep=False) as partial:
        staging = partial.with_name(partial.name + ".rows.tif")
        try:
            with rows_into_cog(str(staging), str(partial), grid, kind, threshold) as writer:
                yield writer
        finally:
            staging.unlink(missing_ok=True)


@contextlib.contextmanager
def rows_into_cog(
    staging: str, target: str, grid: Grid, kind: Kind, threshold: float
) -> Iterator[RasterRows]:
    """Rows into a tiled GeoTIFF at `staging`, then as a COG to `target` (paths GDAL
    opens, /vsimem/ ones included); on an error the staging file is left closed."""
    writer = RasterRows(staging, grid, kind, threshold)
    try:
        yield writer
    except BaseException:
        writer.dataset.close()
        raise
    writer.close()
    copy_as_cog(staging, target, kind)
