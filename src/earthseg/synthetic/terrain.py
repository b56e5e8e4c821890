"""The ground under the air: dark ocean, vegetated land, bare soil, rock and snow.

Bare-soil patches are deliberately close to dust in colour, and snow and sea ice are as
bright as cloud, so that a model must learn shape and texture rather than one colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earthseg.synthetic.blend import lerp, over
from earthseg.synthetic.textures import fractal_noise, smoothstep

DEEP_WATER = np.array([6.0, 14.0, 32.0], dtype=np.float32)
SHALLOW_WATER = np.array([22.0, 40.0, 54.0], dtype=np.float32)
TURBID_WATER = np.array([48.0, 58.0, 52.0], dtype=np.float32)
FOREST = np.array([34.0, 54.0, 30.0], dtype=np.float32)
TUNDRA = np.array([96.0, 92.0, 62.0], dtype=np.float32)
ROCK = np.array([112.0, 108.0, 102.0], dtype=np.float32)
LIGHT_SOIL = np.array([196.0, 170.0, 132.0], dtype=np.float32)
DARK_SOIL = np.array([146.0, 120.0, 90.0], dtype=np.float32)
SNOW = np.array([232.0, 240.0, 252.0], dtype=np.float32)
SEA_ICE = np.array([206.0, 218.0, 234.0], dtype=np.float32)


@dataclass(frozen=True)
class Terrain:
    """Surface colours (rows, cols, 3; float32 0..255) and the land field behind them.

    `relief` is positive on land and grows inland; its zero contour is the coastline.
    """

    rgb: np.ndarray
    relief: np.ndarray

    @property
    def land(self) -> np.ndarray:
        """Boolean land mask."""
        return self.relief > 0


def render_terrain(rng: np.random.Generator, size: int) -> Terrain:
    """Draw one scene's surface: a fractal coastline with land on one side."""
    shape = (size, size)
    relief = _relief(rng, shape, land_fraction=rng.uniform(0.3, 0.65))
    land = relief > 0
    detail = fractal_noise(rng, shape, beta=2.0)
    cover = fractal_noise(rng, shape, beta=2.6)
    patches = fractal_noise(rng, shape, beta=2.8) + 0.2 * detail

    rgb = _water(rng, relief, detail)
    ground = _vegetation_and_rock(relief, cover, detail)
    soil = lerp(DARK_SOIL, LIGHT_SOIL, rng.uniform())
    soil_cover = _patches(patches, land, fraction=rng.uniform(0.06, 0.18))
    ground = over(ground, soil * (1.0 + 0.06 * detail[..., None]), soil_cover)
    snow_cover = _patches(relief + 0.3 * cover, land, fraction=rng.uniform(0.04, 0.3))
    ground = over(ground, SNOW * (0.94 + 0.04 * detail[..., None]), snow_cover)
    rgb = np.where(land[..., None], ground, rgb)
    if rng.random() < 0.3:
        ice = _patches(-patches, ~land, fraction=rng.uniform(0.05, 0.25))
        rgb = over(rgb, SEA_ICE * (0.92 + 0.05 * detail[..., None]), 0.9 * ice)
    return Terrain(rgb=rgb, relief=relief)


def _relief(rng: np.random.Generator, shape: tuple[int, int], land_fraction: float) -> np.ndarray:
    """Smooth noise plus a tilt, so land gathers on one side of a rough coastline."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    tilt = rng.uniform(0.0, 2.0 * np.pi)
    centre = np.float32(max(shape) / 2.0)
    ramp = (np.cos(tilt) * (cols - centre) + np.sin(tilt) * (rows - centre)) / (2.0 * centre)
    field = fractal_noise(rng, shape, beta=3.2) + rng.uniform(2.0, 4.0) * ramp
    return field - np.quantile(field, 1.0 - land_fraction).astype(np.float32)


def _water(rng: np.random.Generator, relief: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Near-black deep water, lighter (and sometimes silty) towards the coast."""
    coastal = smoothstep(relief, -0.4, 0.0)[..., None]
    shallow = lerp(SHALLOW_WATER, TURBID_WATER, rng.uniform(0.0, 0.6))
    water = DEEP_WATER + (shallow - DEEP_WATER) * coastal
    return water * (1.0 + 0.08 * detail[..., None])


def _vegetation_and_rock(relief: np.ndarray, cover: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Forest and tundra mixed by a noise field, grey rock on high ground."""
    green = smoothstep(cover, -0.8, 0.8)[..., None]
    ground = FOREST + (TUNDRA - FOREST) * green
    high = np.quantile(relief[relief > 0], [0.5, 0.95]) if np.any(relief > 0) else [0.0, 1.0]
    rock = 0.8 * smoothstep(relief + 0.2 * detail, float(high[0]), float(high[1]))
    ground = over(ground, ROCK, rock)
    return ground * (1.0 + 0.12 * detail[..., None])


def _patches(field: np.ndarray, where: np.ndarray, fraction: float) -> np.ndarray:
    """Soft mask covering about `fraction` of `where` at the highest values of `field`."""
    if not np.any(where):
        return np.zeros(field.shape, dtype=np.float32)
    threshold = float(np.quantile(field[where], 1.0 - fraction))
    spread = 0.15 * float(field.std())
    return smoothstep(field, threshold - spread, threshold + spread) * where
