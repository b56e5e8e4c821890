"""What both pipeline backends do on this machine: preprocessing an export when no
container or job does it, and saying what a finished dataset holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earthseg.contracts.manifest import read_manifest
from earthseg.pipeline.config import RunConfig


def preprocess_on_host(
    config: RunConfig, images: Path, labels: Path, dataset: Path
) -> dict[str, Any]:
    """`earthseg preprocess` in this process: the export in, the dataset in `dataset`."""
    from earthseg.preprocess.dataset import build_dataset

    build_dataset(images, labels, dataset, config.preprocess.options())
    return dataset_outputs(dataset)


def dataset_outputs(dataset: Path) -> dict[str, Any]:
    """What state.json records of a finished dataset."""
    totals = read_manifest(dataset).totals
    return {"dataset": str(dataset), "scenes": totals.scenes, "tiles": totals.tiles}
