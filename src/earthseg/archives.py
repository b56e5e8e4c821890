"""SageMaker's tar archives (model.tar.gz, output.tar.gz) unpacked into a folder that
appears only complete: a half-extracted artifact never looks like a model."""

from __future__ import annotations

import tarfile
from pathlib import Path

from earthseg.atomic import atomic_dir


def extract(archive: Path, target: Path, member_prefix: str = "") -> Path:
    """Unpack `archive` into `target` as a whole, replacing what it held; with
    `member_prefix` (output.tar.gz's "data/"), only the members under it, prefix removed."""
    with tarfile.open(archive) as tar, atomic_dir(target, replace=True) as tmp:
        members = []
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not name.startswith(member_prefix) or name == member_prefix.rstrip("/"):
                continue
            member.name = name.removeprefix(member_prefix)
            members.append(member)
        tar.extractall(tmp, members=members, filter="data")
    return target
