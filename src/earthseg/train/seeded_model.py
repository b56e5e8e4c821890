"""An untrained U-Net with seeded weights, exported as `earthseg train` exports a model:
a real artifact (SavedModel, ONNX, model card) to serve without training first. The tests
and the serving benchmark serve it; it also smoke-tests an inference image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from earthseg.train.export import export_model, model_card
from earthseg.train.model import build_unet

UINT8_SCALE = 1 / 255
CHECK_TILES = 2  # tiles the ONNX export is checked on against Keras


def export_seeded_model(
    folder: Path,
    *,
    tile: int = 64,
    bands: int = 3,
    filters: int = 8,
    depth: int = 2,
    threshold: float = 0.5,
    seed: int = 0,
) -> Any:
    """Export into `folder` a U-Net for `bands`-band uint8 scenes in `tile` px tiles,
    weights drawn from `seed`; return the Keras model (the same weights)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_unet(tile, bands, filters=filters, depth=depth, scale=UINT8_SCALE)
    card = model_card(
        tile_shape=[tile, tile, bands],
        dtype="uint8",
        scale=UINT8_SCALE,
        threshold=threshold,
        metrics={},
        hyperparameters={"filters": filters, "depth": depth, "seed": seed},
        parameters=model.count_params(),
        epochs=0,
        manifest_sha256=None,
    )
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 256, (CHECK_TILES, tile, tile, bands)).astype(np.float32)
    export_model(model, folder, card, samples)
    return model
