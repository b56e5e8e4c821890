"""The SageMaker Python SDK (v3) on the launcher's own boto3 session.

Every SDK call then goes through that session's clients, so the profile, region and
`AWS_ENDPOINT_URL` (the tests' emulator) apply to them too. The SDK's default S3
location is set explicitly to the run's root: the SDK derives per-job paths from it
(ModelTrainer: `<root>/<base job name>/<job>/checkpoints`), and left unset it would look
the account up through an STS URL it builds itself, which ignores `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3

from earthseg.aws.s3 import S3Uri

if TYPE_CHECKING:
    from sagemaker.core.helper.session_helper import Session


class _RegionNoise(logging.Filter):
    """sagemaker-core warns "No region provided" on every resource call made with a
    session (whose region it then uses): noise for the user, dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No region provided")


def sdk_session(session: boto3.Session, root: S3Uri | None = None) -> Session:
    """An SDK Session whose default bucket and prefix are `root`'s (None: for callers
    that give every S3 location themselves)."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.utils.utils import logger

    if not any(isinstance(item, _RegionNoise) for item in logger.filters):
        logger.addFilter(_RegionNoise())

    if root is None:
        return Session(boto_session=session)
    return Session(
        boto_session=session, default_bucket=root.bucket, default_bucket_prefix=root.key or None
    )


@contextlib.contextmanager
def sdk_default_region() -> Iterator[None]:
    """A default region while the SDK's workflow code runs: importing `sagemaker.mlops`
    makes boto3 clients at class definition (`sagemaker.ai_registry.air_hub.AIRHub`), and
    `ProcessingStep` makes a local-mode session only to read a method's name; both fail
    where no region is configured (an offline `--dry-run`, a fresh machine). None of
    those sessions is used for a call: ours all go through the session we pass."""
    if os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"):
        yield
        return
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        yield
    finally:
        os.environ.pop("AWS_DEFAULT_REGION", None)
