"""The U-Net of the original notebook, in backend-neutral Keras 3.

Every level has the same number of filters (the notebook's small, fast design: about
133 k parameters at 24 filters and depth 4). The model takes raw pixel values and scales
them itself, so a SavedModel or ONNX consumer feeds tiles as they come from the scene.
"""

from __future__ import annotations

import keras
from keras import layers

from earthseg.errors import InputError


def build_unet(
    tile_size: int,
    bands: int,
    filters: int = 24,
    depth: int = 4,
    scale: float = 1 / 255,
    *,
    sync_batch_norm: bool = False,
) -> keras.Model:
    """A U-Net for (tile_size, tile_size, bands) float32 tiles of raw pixel values.

    `depth` is the number of 2x poolings (the tile size must be divisible by 2**depth);
    `scale` multiplies the pixel values first (1/255 for 8-bit scenes). The output is the
    probability of the positive class per pixel, (tile_size, tile_size, 1) in float32
    whatever the global dtype policy, so mixed precision keeps a stable sigmoid.
    `sync_batch_norm` (TensorFlow backend, for training on several replicas) takes batch
    statistics over the global batch of all replicas, so that every replica normalises,
    and keeps moving statistics, as one device training on the whole batch would;
    otherwise each replica's moving statistics follow its own slice and drift apart.
    Inference is the same either way.
    """
    step = 2**depth
    if tile_size < step or tile_size % step:
        raise InputError(
            f"tile size {tile_size}",
            f"is not a multiple of 2**depth = {step}, which a U-Net of depth {depth} needs",
            f"preprocess with --tile-size a multiple of {step} (e.g. 256), or lower depth",
        )
    # Any height and width (multiples of 2**depth): the network is fully convolutional, so
    # a scene can be predicted in windows larger than the training tile (less overlap).
    inputs = keras.Input((None, None, bands), dtype="float32", name="pixels")
    x = layers.Rescaling(scale, name="rescale")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_block(x, filters, f"down{level}", sync_batch_norm)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_block(x, filters, "bottom", sync_batch_norm)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"up{level}_up")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = _conv_block(x, filters, f"up{level}", sync_batch_norm)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name="unet")


def _conv_block(
    x: keras.KerasTensor, filters: int, name: str, sync_batch_norm: bool
) -> keras.KerasTensor:
    """Two 3x3 convolutions, each without bias (batch norm supplies it), batch norm, ReLU."""
    for index in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_conv{index}",
        )(x)
        # Momentum 0.9, not 0.99: a few hundred steps must suffice for the moving
        # statistics, or validation sees a different network than training (short jobs).
        x = layers.BatchNormalization(
            momentum=0.9, synchronized=sync_batch_norm, name=f"{name}_norm{index}"
        )(x)
        x = layers.ReLU(name=f"{name}_relu{index}")(x)
    return x
