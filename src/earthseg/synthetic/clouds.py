"""Cloud cover: white-grey fractal fields, partly transparent, with occasional thin cirrus.

Clouds are the main bright distractor for dust and often hide parts of a plume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earthseg.synthetic.textures import fractal_noise, smoothstep

TINT = np.array([0.96, 0.98, 1.0], dtype=np.float32)  # cloud is faintly bluish white


@dataclass(frozen=True)
class Clouds:
    """Per-pixel cloud opacity (0..1) and colour (rows, cols, 3; float32 0..255)."""

    opacity: np.ndarray
    rgb: np.ndarray


def render_clouds(rng: np.random.Generator, size: int) -> Clouds:
    """Draw a cloud field covering roughly 10-45% of the scene."""
    shape = (size, size)
    field = fractal_noise(rng, shape, beta=3.0) + 0.3 * fractal_noise(rng, shape, beta=2.2)
    threshold = float(np.quantile(field, 1.0 - rng.uniform(0.1, 0.4)))
    opacity = rng.uniform(0.85, 0.97) * smoothstep(field, threshold - 0.3, threshold + 0.8)
    brightness = 170.0 + 80.0 * smoothstep(field, threshold, threshold + 1.5)
    if rng.random() < 0.5:
        cirrus = fractal_noise(
            rng, shape, beta=3.0, stretch=rng.uniform(2.5, 4.0), angle=rng.uniform(0.0, np.pi)
        )
        thin = rng.uniform(0.2, 0.4) * smoothstep(cirrus, 0.5, 2.0)
        opacity = 1.0 - (1.0 - opacity) * (1.0 - thin)
    return Clouds(opacity=opacity, rgb=brightness[..., None] * TINT)
