"""S3 locations the launcher reads and writes: URIs checked before anything starts,
folders uploaded whole with a progress bar, and SageMaker's default bucket.

Channel and dataset URIs end with "/": SageMaker's `S3Prefix` matches keys by string
prefix, so `s3://b/data/train` would also feed `s3://b/data/train-old/` into a job.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from tqdm import tqdm

from earthseg.atomic import atomic_file
from earthseg.aws.session import account_id, call
from earthseg.errors import InputError

# Bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")
URI_FIX = "write it as s3://bucket/prefix (bucket names: 3-63 lowercase letters, digits, . and -)"
TRANSFER = TransferConfig(multipart_threshold=64 * 2**20, max_concurrency=8)


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key prefix ("" for the whole bucket), without a trailing "/"."""

    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}".rstrip("/")

    def child(self, *parts: str) -> S3Uri:
        """This prefix extended by `parts` (joined with "/")."""
        return S3Uri(self.bucket, "/".join(part for part in (self.key, *parts) if part))

    @property
    def key_prefix(self) -> str:
        """The key prefix of the objects beneath: "prefix/" ("" for the whole bucket)."""
        return f"{self.key}/" if self.key else ""

    @property
    def folder(self) -> str:
        """The URI as a folder, "s3://bucket/prefix/": exactly the objects beneath it."""
        return f"{self}/"


def parse_s3_uri(value: str, source: str = "S3 URI") -> S3Uri:
    """`value` as an `S3Uri`, or an InputError naming `source` (the option) and the fix."""
    match = S3_URI.match(value.strip())
    key = (match.group("key") or "").strip("/") if match else ""
    if not match or "//" in key:
        raise InputError(source, f"{value!r} is not an S3 URI", URI_FIX)
    return S3Uri(match.group("bucket"), key)


def is_s3_uri(value: str) -> bool:
    """Whether `value` is meant as an S3 location (checked further by `parse_s3_uri`)."""
    return value.strip().startswith("s3://")


def check_bucket(session: boto3.Session, uri: S3Uri, source: str) -> None:
    """Fail early, naming `source`, when the bucket is missing or out of reach."""
    try:
        call(session.client("s3"), "head_bucket", Bucket=uri.bucket)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"404", "NoSuchBucket"}:
            raise InputError(
                source,
                f"bucket {uri.bucket} does not exist",
                f"create it (`aws s3 mb s3://{uri.bucket}`) or choose another bucket",
            ) from None
        raise InputError(
            source,
            f"bucket {uri.bucket} cannot be reached with these credentials ({code})",
            "use a bucket the credentials may read and write, in this account",
        ) from None


def default_bucket(session: boto3.Session) -> S3Uri:
    """SageMaker's default bucket, `sagemaker-<region>-<account>`, created when missing.

    The SDK's own `Session.default_bucket()` finds the account through an STS endpoint
    URL it builds itself, which bypasses `AWS_ENDPOINT_URL`; this asks through `aws`.
    The owner is checked as the SDK does, so a same-named bucket of another account
    is never written to.
    """
    account = account_id(session)
    region = session.region_name
    name = f"sagemaker-{region}-{account}"
    client = session.client("s3")
    try:
        call(client, "head_bucket", Bucket=name, ExpectedBucketOwner=account)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in {"404", "NoSuchBucket"}:
            raise InputError(
                f"s3://{name}",
                f"the default SageMaker bucket is not usable ({code}: owned by another "
                "account, or access denied)",
                "pass an s3:// location of your own (--to / --output)",
            ) from None
        location = {} if region == "us-east-1" else {"LocationConstraint": region}
        kwargs: dict[str, Any] = {"CreateBucketConfiguration": location} if location else {}
        call(client, "create_bucket", Bucket=name, **kwargs)
    return S3Uri(name)


def resolve_root(session: boto3.Session, uri: str | None, source: str) -> S3Uri:
    """The S3 location a command writes under: `uri` (its bucket checked), else the
    SageMaker default bucket."""
    if uri is None:
        return default_bucket(session)
    root = parse_s3_uri(uri, source)
    check_bucket(session, root, source)
    return root


def upload_folder(
    session: boto3.Session,
    folder: Path,
    s3_uri: str,
    encryption: Mapping[str, str] | None = None,
) -> str:
    """Upload every file under `folder` to `s3_uri` (keys keep the relative paths);
    return the destination as a folder URI ("s3://bucket/prefix/"). A file (an export's
    zip) goes into the destination folder by its name. `encryption`: PutObject's
    server-side encryption arguments (`Security.s3_encryption`).

    A progress bar counts bytes (on a terminal, not in CI). An empty or missing folder
    is an error rather than an empty channel.
    """
    destination = parse_s3_uri(s3_uri, "upload destination")
    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
    if folder.is_file():
        files, folder = [folder], folder.parent
    if not files:
        problem = "holds no files" if folder.is_dir() else "is not a folder"
        raise InputError(
            folder, problem, "point at a dataset folder written by earthseg preprocess"
        )
    total = sum(path.stat().st_size for path in files)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=folder.name, disable=_quiet()
    ) as progress:
        for path in files:
            target = destination.child(path.relative_to(folder).as_posix())
            upload_file(session, path, target, progress.update, encryption)
    return destination.folder


def upload_file(
    session: boto3.Session,
    path: Path,
    destination: S3Uri,
    progress: Callable[[int], object] | None = None,
    encryption: Mapping[str, str] | None = None,
) -> str:
    """Upload one file to the object `destination` (multipart and threaded when large);
    `progress` is told each chunk's size; `encryption`: server-side encryption arguments
    (SSE-KMS under the run's key, `Security.s3_encryption`). Returns the object's URI."""
    try:
        call(
            session.client("s3"),
            "upload_file",
            Filename=os.fspath(path),
            Bucket=destination.bucket,
            Key=destination.key,
            Callback=progress,
            Config=TRANSFER,
            ExtraArgs=dict(encryption or {}),
        )
    except (S3UploadFailedError, ClientError) as error:
        raise InputError(
            path,
            f"could not be uploaded to {destination} ({error})",
            "check that the bucket exists and the credentials may write to it",
        ) from None
    return str(destination)


def read_json(session: boto3.Session, uri: S3Uri) -> Any:
    """The JSON object at `uri`, or None when there is none."""
    try:
        body = call(session.client("s3"), "get_object", Bucket=uri.bucket, Key=uri.key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    try:
        return json.loads(body["Body"].read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def has_objects(session: boto3.Session, uri: S3Uri) -> bool:
    """Whether any object lies under the folder `uri`."""
    page = call(
        session.client("s3"), "list_objects_v2", Bucket=uri.bucket, Prefix=uri.key_prefix, MaxKeys=1
    )
    return bool(page.get("KeyCount", 0))


def _quiet() -> bool | None:
    """No progress bar in CI; otherwise tqdm shows one only on a terminal (None)."""
    return True if os.environ.get("CI", "").lower() == "true" else None


def download_file(session: boto3.Session, uri: str, path: Path) -> Path:
    """The object at `uri` as the file `path`, which appears only once complete."""
    source = parse_s3_uri(uri, "S3 object")
    try:
        with atomic_file(path) as partial:
            call(
                session.client("s3"),
                "download_file",
                Bucket=source.bucket,
                Key=source.key,
                Filename=os.fspath(partial),
                Config=TRANSFER,
            )
    except ClientError as error:
        raise InputError(
            uri,
            f"could not be downloaded ({error})",
            "check that the object exists (a finished job wrote it) and that the "
            "credentials may read it",
        ) from None
    return path
