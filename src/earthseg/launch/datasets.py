"""Datasets in S3: a folder `earthseg preprocess` wrote, as a job's channels.

A dataset in S3 is a folder holding `train/`, `validation/`, optionally `test/` (one
channel each) and `manifest.json`, as `earthseg upload` and `earthseg preprocess
--processing` leave it. Uploaded without an explicit destination, a dataset goes to
`<root>/<name>/datasets/<folder>-<fingerprint>/`: the manifest's fingerprint names
its content, so different datasets never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3

from earthseg.errors import InputError
from earthseg.launch import s3
from earthseg.preprocess.manifest import MANIFEST, read_manifest

CHANNELS = ("train", "validation", "test")
REQUIRED = ("train", "validation")
DATASET_FIX = (
    "give a folder written by earthseg preprocess (holding manifest.json, train/, validation/)"
)


def default_location(root: s3.S3Uri, name: str, folder: Path) -> s3.S3Uri:
    """Where a local dataset goes when no destination is given."""
    manifest = _manifest(folder)
    fingerprint = str(manifest.get("fingerprint", "")).removeprefix("sha256:")[:12]
    return root.child(name, "datasets", f"{Path(folder).resolve().name}-{fingerprint}")


def upload_dataset(
    session: boto3.Session,
    folder: Path,
    destination: s3.S3Uri,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Upload the dataset's channels, then its manifest, to `destination`; return their
    URIs by channel name (and "manifest"). Anything else in the folder is named, not
    uploaded.

    The manifest goes last, so its presence in S3 marks a complete upload: a destination
    that already holds this dataset's manifest is kept as it is, one that holds another
    dataset's is refused.
    """
    folder = Path(folder)
    manifest = _manifest(folder)
    present = [name for name in CHANNELS if (folder / name).is_dir()]
    missing = [name for name in REQUIRED if name not in present]
    if missing:
        raise InputError(folder, f"has no {' or '.join(missing)} channel folder", DATASET_FIX)
    uris = {name: destination.child(name).folder for name in present}
    target = destination.child(MANIFEST)
    existing = s3.read_json(session, target)
    if existing is not None:
        if existing.get("fingerprint") != manifest.get("fingerprint"):
            raise InputError(
                destination.folder,
                "already holds another dataset (its manifest.json differs)",
                "choose another destination, or remove it first (aws s3 rm --recursive)",
            )
        say(f"{destination.folder} already holds this dataset: kept")
        return {**uris, "manifest": str(target)}
    others = sorted(
        entry.name for entry in folder.iterdir() if entry.name not in {*CHANNELS, MANIFEST}
    )
    if others:
        say(f"not uploaded (not channels): {', '.join(others)}")
    for name in present:
        s3.upload_folder(session, folder / name, uris[name])
    s3.upload_file(session, folder / MANIFEST, target)
    return {**uris, "manifest": str(target)}


def s3_channels(
    session: boto3.Session, dataset: s3.S3Uri, source: str = "--data"
) -> dict[str, str]:
    """The channel folder URIs of a dataset in S3; train and validation must hold data."""
    channels = {
        name: dataset.child(name).folder
        for name in CHANNELS
        if s3.has_objects(session, dataset.child(name))
    }
    missing = [name for name in REQUIRED if name not in channels]
    if missing:
        raise InputError(
            source,
            f"{dataset.folder} has no {' or '.join(f'{name}/' for name in missing)} folder",
            "give the S3 folder holding train/ and validation/ (what earthseg upload or "
            "earthseg preprocess --processing printed)",
        )
    return channels


def _manifest(folder: Path) -> dict[str, object]:
    manifest = read_manifest(Path(folder))
    if manifest is None:
        raise InputError(
            folder, "is not a finished earthseg dataset (no manifest.json)", DATASET_FIX
        )
    return manifest
