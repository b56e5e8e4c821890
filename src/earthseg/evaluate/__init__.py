"""A model judged on the test set `earthseg prepare` set apart: the serve image's own
prediction code over whole test scenes, scored against their truth rasters
(`earthseg evaluate`, the pipeline's Evaluate step). Imports only what the serve image
carries: rasterio, numpy, ONNX Runtime, pydantic and earthseg.serve."""
