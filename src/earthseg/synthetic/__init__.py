"""Synthetic ImageLabeler-style exports: MODIS-like high-latitude scenes with dust labels
(`earthseg.synthetic.export.write_sample_export`)."""
