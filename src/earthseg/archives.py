"""SageMaker's tar archives (model.tar.gz, output.tar.gz) unpacked into a folder that
appears only complete: a half-extracted artifact never looks like a model."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from earthseg.atomic import atomic_dir
from earthseg.errors import InputError


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
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
            tar.extractall(tmp, members=members, filter="data")
        else:  # the images' Debian 12 Python 3.11.2: refuse what the data filter refuses
            for member in members:
                _check_member(archive, member)
            tar.extractall(tmp, members=members)
    return target


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Plain files and folders inside the target only: no absolute or `..` paths, links
    or devices."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
        raise InputError(
            archive,
            f"holds {member.name}, which is not a plain file or folder inside the archive",
            "tar the model folder again (SageMaker's model.tar.gz holds only those)",
        )
