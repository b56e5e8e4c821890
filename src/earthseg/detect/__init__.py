"""The model over many scenes: per-scene masks as Cloud-Optimized GeoTIFFs, and one
catalogue of the events detected, with a daily summary (`earthseg detect`)."""
