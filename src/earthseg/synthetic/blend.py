"""Colour mixing shared by every layer: surface cover, dust and cloud."""

from __future__ import annotations

import numpy as np


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Colour `t` of the way from `a` to `b`."""
    return a + (b - a) * np.float32(t)


def over(under: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Paint `colour` (an RGB triple or an image) over an image with opacity `alpha`.

    Images are (rows, cols, 3) float32; `alpha` is (rows, cols) in 0..1.
    """
    return under + (colour - under) * alpha[..., None]
