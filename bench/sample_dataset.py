"""The small synthetic dataset the training benchmarks train on."""

from __future__ import annotations

from pathlib import Path

from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export


def make_dataset(folder: Path, scenes: int) -> Path:
    """`scenes` synthetic 256 px scenes in 64 px tiles, split 60/20/20."""
    write_sample_export(folder / "export", scenes=scenes, size=256, seed=7)
    build_dataset(
        folder / "export" / "images",
        folder / "export" / "labels",
        folder / "dataset",
        PreprocessOptions(tile_size=64, splits=(0.6, 0.2, 0.2)),
    )
    return folder / "dataset"
