"""One synthetic scene: surface, dust plumes and clouds composed into a MODIS-like image."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine
from shapely.geometry import Polygon

from earthseg.synthetic.blend import lerp, over
from earthseg.synthetic.clouds import render_clouds
from earthseg.synthetic.naming import dust_season_date, scene_stem
from earthseg.synthetic.placement import place_scene
from earthseg.synthetic.plumes import DARK_DUST, LIGHT_DUST, draw_plume, dust_sources, plume_density
from earthseg.synthetic.terrain import render_terrain
from earthseg.synthetic.textures import fractal_noise

SENSOR_NOISE = 1.5  # digital numbers, one standard deviation


@dataclass(frozen=True)
class Scene:
    """A rendered scene: RGB pixels (3, rows, cols; uint8), its grid and its dust labels."""

    stem: str
    date: datetime.date
    rgb: np.ndarray
    transform: Affine
    plumes: list[Polygon]


def make_scene(seed: int, index: int, size: int, scene_id: int) -> Scene:
    """Render scene `index` of the export made with `seed`.

    Each scene draws from its own generator, so it does not depend on how many scenes
    are made. Layers go bottom to top: ground, dust, cloud.
    """
    rng = np.random.default_rng([seed, index])
    transform, north = place_scene(rng, size)
    date = dust_season_date(rng, north)
    terrain = render_terrain(rng, size)

    sources = dust_sources(rng, terrain.land, count=int(rng.integers(1, 4)))
    streaks = fractal_noise(
        rng, (size, size), beta=2.2, stretch=rng.uniform(3.0, 6.0), angle=sources[0].heading
    )
    rgb = terrain.rgb
    plumes = []
    for source in sources:
        plume = draw_plume(rng, source, transform, size)
        edge = max(1.0, rng.uniform(0.005, 0.01) * size)
        density = plume_density(plume, transform, size, edge, streaks)
        colour = lerp(LIGHT_DUST, DARK_DUST, rng.uniform())
        rgb = over(rgb, colour, np.minimum(rng.uniform(0.7, 0.95) * density, 1.0))
        plumes.append(plume.outline)

    clouds = render_clouds(rng, size)
    rgb = over(rgb, clouds.rgb, clouds.opacity)
    rgb += SENSOR_NOISE * rng.standard_normal(rgb.shape, dtype=np.float32)
    pixels = np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return Scene(
        stem=scene_stem(date, scene_id),
        date=date,
        rgb=np.ascontiguousarray(pixels),
        transform=transform,
        plumes=plumes,
    )
