"""Steps both pipeline backends run on this machine: preprocessing an export (when no
container or job does it), unpacking a training job's archives into the run folder.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_dir
from earthseg.launch.config import RunConfig
from earthseg.preprocess.manifest import MANIFEST


def preprocess_on_host(config: RunConfig, dataset: Path) -> dict[str, Any]:
    """`earthseg preprocess` in this process: the export in, the dataset in `dataset`."""
    from earthseg.preprocess.dataset import build_dataset

    build_dataset(config.export.images, config.export.labels, dataset, config.preprocess.options())
    return {"dataset": str(dataset), **dataset_totals(dataset)}


def extract(archive: Path, target: Path, member_prefix: str = "") -> None:
    """Unpack `archive` (only members under `member_prefix`, prefix removed) into `target`
    as a whole: a half-extracted artifact never looks like a model."""
    with tarfile.open(archive) as tar, atomic_dir(target, replace=True) as tmp:
        members = []
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not name.startswith(member_prefix) or name == member_prefix.rstrip("/"):
                continue
            member.name = name.removeprefix(member_prefix)
            members.append(member)
        tar.extractall(tmp, members=members, filter="data")


def dataset_totals(dataset: Path) -> dict[str, Any]:
    """What state.json records of a finished dataset."""
    totals: dict[str, Any] = json.loads((dataset / MANIFEST).read_text())["totals"]
    return {"scenes": totals["scenes"], "tiles": totals["tiles"]}
