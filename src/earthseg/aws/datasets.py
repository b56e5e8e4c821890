"""Datasets in S3: a folder `earthseg preprocess` wrote, as a job's channels.

A dataset in S3 is a folder holding `train/`, `validation/`, optionally `test/` (one
channel each) and `manifest.json`, as `earthseg upload` and `earthseg preprocess
--processing` leave it. Uploaded without an explicit destination, a dataset goes to
`<root>/<name>/datasets/<folder>-<fingerprint>/`: the manifest's fingerprint names
its content, so different datasets never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import boto3

from earthseg.aws import s3
from earthseg.aws.names import DEFAULT_NAME
from earthseg.contracts.channels import CHANNELS, REQUIRED, channel_folders
from earthseg.contracts.manifest import MANIFEST, DatasetManifest, read_manifest
from earthseg.errors import InputError

DATASET_FIX = (
    "give a folder written by earthseg preprocess (holding manifest.json, train/, validation/)"
)


@dataclass(frozen=True)
class UploadedDataset:
    """Where a dataset's channels and manifest are in S3."""

    folder: str  # s3://bucket/prefix/
    channels: dict[str, str]  # channel name -> folder URI
    manifest: str


def default_location(root: s3.S3Uri, name: str, folder: Path) -> s3.S3Uri:
    """Where a local dataset goes when no destination is given."""
    fingerprint = _manifest(folder).fingerprint.removeprefix("sha256:")[:12]
    return root.child(name, "datasets", f"{Path(folder).resolve().name}-{fingerprint}")


def upload(
    session: boto3.Session,
    folder: Path,
    to: str | None = None,
    say: Callable[[str], None] = print,
    *,
    root: s3.S3Uri | None = None,
    name: str = DEFAULT_NAME,
    encryption: Mapping[str, str] | None = None,
) -> UploadedDataset:
    """`earthseg upload`: the dataset to `to` (its bucket checked), or to its default
    location for `name` under `root` (default: the SageMaker default bucket); `encryption`
    as `s3.upload_file` takes it."""
    if to:
        destination = s3.parse_s3_uri(to, "--to")
        s3.check_bucket(session, destination, "--to")
    else:
        destination = default_location(root or s3.default_bucket(session), name, folder)
    say(f"uploading {folder} to {destination.folder}")
    return upload_dataset(session, folder, destination, say, encryption)


def upload_dataset(
    session: boto3.Session,
    folder: Path,
    destination: s3.S3Uri,
    say: Callable[[str], None] = print,
    encryption: Mapping[str, str] | None = None,
) -> UploadedDataset:
    """Upload the dataset's channels, then its manifest, to `destination`. Anything else
    in the folder is named, not uploaded.

    The manifest goes last, so its presence in S3 marks a complete upload: a destination
    that already holds this dataset's manifest is kept as it is, one that holds another
    dataset's is refused.
    """
    folder = Path(folder)
    manifest = _manifest(folder)
    present = channel_folders(folder)
    missing = [name for name in REQUIRED if name not in present]
    if missing:
        raise InputError(folder, f"has no {' or '.join(missing)} channel folder", DATASET_FIX)
    uploaded = UploadedDataset(
        folder=destination.folder,
        channels={name: destination.child(name).folder for name in present},
        manifest=str(destination.child(MANIFEST)),
    )
    existing = s3.read_json(session, destination.child(MANIFEST))
    if existing is not None:
        if existing.get("fingerprint") != manifest.fingerprint:
            raise InputError(
                destination.folder,
                "already holds another dataset (its manifest.json differs)",
                "choose another destination, or remove it first (aws s3 rm --recursive)",
            )
        say(f"{destination.folder} already holds this dataset: kept")
        return uploaded
    others = sorted(
        entry.name for entry in folder.iterdir() if entry.name not in {*CHANNELS, MANIFEST}
    )
    if others:
        say(f"not uploaded (not channels): {', '.join(others)}")
    for name, channel in present.items():
        s3.upload_folder(session, channel, uploaded.channels[name], encryption)
    s3.upload_file(session, folder / MANIFEST, destination.child(MANIFEST), None, encryption)
    return uploaded


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


def _manifest(folder: Path) -> DatasetManifest:
    return read_manifest(Path(folder), DATASET_FIX)
