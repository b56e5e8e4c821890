"""Whether a raster lies on a scene's grid: a mask or a truth raster is compared with
its scene pixel by pixel, so their size, CRS and transform must be the scene's."""

from __future__ import annotations

from earthseg.serve.geo import Grid


def grid_differences(found: Grid, expected: Grid) -> list[str]:
    """What differs between a raster's grid and the scene's, in words; empty: the same."""
    differences = [
        f"{name} {mine} instead of {theirs}"
        for name, mine, theirs in (
            ("size", (found.width, found.height), (expected.width, expected.height)),
            ("CRS", found.crs, expected.crs),
        )
        if mine != theirs
    ]
    if not found.transform.almost_equals(expected.transform):
        differences.append(
            f"transform {tuple(found.transform)[:6]} instead of {expected.transform[:6]}"
        )
    return differences
