"""Fractal noise fields: the raw material of every synthetic texture (land, cloud, dust).

Natural scenes have power spectra close to 1/f^beta, so noise shaped that way looks like
coastlines, cloud fields or wind-drawn streaks depending on `beta` and anisotropy. Built
with numpy's FFT only, so the generator needs no image-processing dependency.
"""

from __future__ import annotations

import math

import numpy as np


def fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    beta: float,
    stretch: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Return a float32 field with a 1/f^beta power spectrum, zero mean and unit variance.

    Larger `beta` gives smoother, larger features (coastlines ~3, cloud detail ~2).
    `stretch` > 1 elongates features along `angle` (radians in array column/row axes),
    as wind draws dust and cirrus into streaks.
    """
    rows, cols = shape
    fy = np.fft.fftfreq(rows).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(cols).astype(np.float32)[None, :]
    along = fx * math.cos(angle) + fy * math.sin(angle)
    across = fy * math.cos(angle) - fx * math.sin(angle)
    k2 = (along * stretch) ** 2 + across**2
    k2[0, 0] = np.inf
    amplitude = k2 ** np.float32(-beta / 4)
    spectrum = amplitude * (
        rng.standard_normal(amplitude.shape, dtype=np.float32)
        + 1j * rng.standard_normal(amplitude.shape, dtype=np.float32)
    )
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.mean()
    field /= field.std()
    return field


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map `x` to 0 below `lo`, 1 above `hi`, smoothly between: noise to soft-edged masks."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
