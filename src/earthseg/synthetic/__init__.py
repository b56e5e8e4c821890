"""Synthetic ImageLabeler-style exports: MODIS-like high-latitude scenes with dust labels."""

from earthseg.synthetic.export import write_sample_export

__all__ = ["write_sample_export"]
