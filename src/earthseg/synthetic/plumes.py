"""Dust plumes: where they start, their outline in lon/lat, and their soft pixel density.

A plume is defined first as a polygon (the label) and its visible density is rendered
from that polygon, so the label always matches what the image shows: dense inside, fading
just inside the border, with a faint halo outside, as a person would outline it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.affinity import affine_transform
from shapely.geometry import Point, Polygon, box

from earthseg.synthetic.blur import gaussian_blur
from earthseg.synthetic.textures import smoothstep

LIGHT_DUST = np.array([204.0, 176.0, 134.0], dtype=np.float32)
DARK_DUST = np.array([158.0, 126.0, 90.0], dtype=np.float32)
OUTLINE_POINTS = 64
MIN_INSIDE = 0.6  # share of a plume that must fall inside the scene
CANDIDATES = 400  # coastal points tried as further sources


@dataclass(frozen=True)
class Source:
    """A coastal point that emits dust, in pixel coordinates.

    `heading` (radians, in column/row axes) is where the wind carries the dust.
    """

    col: float
    row: float
    heading: float


@dataclass(frozen=True)
class Plume:
    """One plume: its outline in lon/lat (the label), its source and length in pixels."""

    outline: Polygon
    source: Source
    length: float


def dust_sources(rng: np.random.Generator, land: np.ndarray, count: int) -> list[Source]:
    """Pick up to `count` coastal sources whose dust blows out to sea on one shared wind.

    The wind is the direction with the most open water downwind of the first source;
    later sources are coastal points that the same wind also carries out to sea.
    """
    size = land.shape[0]
    rows, cols = _coast_pixels(land, margin=int(0.08 * size))
    reach = 0.35 * size
    first = int(rng.integers(len(rows)))
    headings = rng.uniform(0.0, 2.0 * np.pi) + np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    scores = [_seaward(land, rows[first], cols[first], h, reach) for h in headings]
    wind = float(headings[int(np.argmax(scores))])
    chosen = [first]
    for i in rng.permutation(len(rows))[:CANDIDATES]:
        if len(chosen) == count:
            break
        far = all(np.hypot(rows[i] - rows[j], cols[i] - cols[j]) > 0.12 * size for j in chosen)
        if far and _seaward(land, rows[i], cols[i], wind, reach) > 0.6:
            chosen.append(int(i))
    return [
        Source(
            col=float(cols[i]) + 0.5,
            row=float(rows[i]) + 0.5,
            heading=wind + float(rng.normal(0.0, 0.15)),
        )
        for i in chosen
    ]


def draw_plume(rng: np.random.Generator, source: Source, transform: Affine, size: int) -> Plume:
    """Outline a fan that widens downwind from `source`, clipped to the scene."""
    scene = box(0.0, 0.0, size, size)
    for shrink in (1.0, 0.7, 0.5, 0.35):
        length = shrink * rng.uniform(0.25, 0.6) * size
        outline = _fan(rng, source, length)
        inside = outline.intersection(scene)
        if inside.area >= MIN_INSIDE * outline.area:
            break
    polygon = _largest_polygon(inside)
    a, b, c, d, e, f = transform[:6]
    lonlat = affine_transform(polygon, [a, b, d, e, c, f])
    return Plume(outline=lonlat, source=source, length=length)


def plume_density(
    plume: Plume, transform: Affine, size: int, edge: float, streaks: np.ndarray
) -> np.ndarray:
    """Render a plume's density (0..1 per pixel) from its outline.

    `edge` is the width of the soft border in pixels; `streaks` is a wind-aligned noise
    field that gives the dust its filaments. Dust thins with distance from the source.
    """
    mask = rasterize(
        [(plume.outline, 1)], out_shape=(size, size), transform=transform, fill=0, dtype="uint8"
    )
    density = np.zeros((size, size), dtype=np.float32)
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return density
    pad = math.ceil(3.0 * edge) + 1
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, size)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, size)
    soft = gaussian_blur(mask[r0:r1, c0:c1], edge)
    rr, cc = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    distance = np.hypot(cc + 0.5 - plume.source.col, rr + 0.5 - plume.source.row)
    thinning = 1.0 - 0.55 * np.clip(distance / plume.length, 0.0, 1.0)
    filaments = 0.65 + 0.35 * smoothstep(streaks[r0:r1, c0:c1], -1.5, 1.5)
    density[r0:r1, c0:c1] = soft * thinning * filaments
    return density


def _coast_pixels(land: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of land pixels touching water, away from the scene border."""
    wet = np.zeros_like(land)
    wet[1:] |= ~land[:-1]
    wet[:-1] |= ~land[1:]
    wet[:, 1:] |= ~land[:, :-1]
    wet[:, :-1] |= ~land[:, 1:]
    coast = land & wet
    inner = np.zeros_like(land)
    inner[margin : land.shape[0] - margin, margin : land.shape[1] - margin] = True
    candidates = coast & inner
    rows, cols = np.nonzero(candidates if candidates.any() else inner)
    return rows, cols


def _seaward(land: np.ndarray, row: int, col: int, heading: float, reach: float) -> float:
    """Share of points along a ray from (row, col) that lie over water inside the scene."""
    steps = np.linspace(0.1, 1.0, 16) * reach
    r = np.floor(row + 0.5 + steps * math.sin(heading)).astype(int)
    c = np.floor(col + 0.5 + steps * math.cos(heading)).astype(int)
    inside = (r >= 0) & (r < land.shape[0]) & (c >= 0) & (c < land.shape[1])
    wet = ~land[r[inside], c[inside]]
    return float(wet.sum()) / len(steps)


def _fan(rng: np.random.Generator, source: Source, length: float) -> Polygon:
    """A wavy centreline from the source whose width grows downwind, as a polygon."""
    t = np.linspace(0.0, 1.0, OUTLINE_POINTS)
    theta = source.heading + rng.normal(0.0, 0.35) * t  # the wind turns a little
    step = length / (OUTLINE_POINTS - 1)
    x = source.col + np.concatenate([[0.0], np.cumsum(step * np.cos(theta[:-1]))])
    y = source.row + np.concatenate([[0.0], np.cumsum(step * np.sin(theta[:-1]))])
    wobble = rng.uniform(0.0, 0.06) * length * t * _wiggle(rng, t)
    x -= wobble * np.sin(theta)
    y += wobble * np.cos(theta)

    start = max(1.5, rng.uniform(0.01, 0.03) * length)
    end = rng.uniform(0.1, 0.28) * length
    half = start + (end - start) * t ** rng.uniform(0.6, 1.0)
    half *= np.sqrt(1.0 - smoothstep(t, 0.75, 1.0) ** 2)  # round off the far end
    dx, dy = np.gradient(x), np.gradient(y)
    norm = np.hypot(dx, dy)
    nx, ny = -dy / norm, dx / norm
    left = half * (1.0 + 0.25 * _wiggle(rng, t))
    right = half * (1.0 + 0.25 * _wiggle(rng, t))
    ring = np.concatenate(
        [
            np.column_stack([x + nx * left, y + ny * left]),
            np.column_stack([x - nx * right, y - ny * right])[::-1],
        ]
    )
    body = shapely.make_valid(Polygon(ring))
    tail = Point(x[0], y[0]).buffer(start)
    return _largest_polygon(shapely.union_all([body, tail])).simplify(0.3)


def _wiggle(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A smooth random curve over `t` in -1..1: a few sines of random phase."""
    curve = np.zeros_like(t)
    for _ in range(3):
        curve += np.sin(2.0 * np.pi * (rng.uniform(0.5, 3.0) * t + rng.uniform()))
    return curve / 3.0


def _largest_polygon(geometry: shapely.Geometry) -> Polygon:
    """The biggest polygon in a geometry (repairs can split a self-touching outline)."""
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon)]
    return max(parts, key=lambda p: p.area)
