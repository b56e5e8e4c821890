"""Labels to training data: pairing, rasterizing, tiling, splitting, packing."""
