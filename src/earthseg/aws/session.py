"""The AWS account a launcher command acts in, from the usual configuration.

Credentials, region and profile come from boto3's own chain (environment, ~/.aws,
instance role); endpoints from `AWS_ENDPOINT_URL[_<SERVICE>]`, which is how the tests
point every call at an emulator. Failures to find credentials or a region become one
readable `InputError` instead of a botocore traceback.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ProfileNotFound,
)

from earthseg.errors import InputError

CREDENTIALS_FIX = (
    "configure AWS credentials (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY) for the account to use"
)
REGION_FIX = "set AWS_REGION (or AWS_DEFAULT_REGION, or a region in ~/.aws/config)"


def open_session(region: str | None = None, profile: str | None = None) -> boto3.Session:
    """A boto3 session with a region; credentials are checked by the first call.

    AWS_REGION counts as the other AWS SDKs and the CLI count it (before AWS_DEFAULT_REGION
    and the profile's region): botocore itself reads only AWS_DEFAULT_REGION.
    """
    region = region or os.environ.get("AWS_REGION") or None
    try:
        result = boto3.Session(region_name=region, profile_name=profile)
    except ProfileNotFound:
        raise InputError(
            f"AWS profile {profile}", "is not configured", "name a profile of ~/.aws/config"
        ) from None
    if not result.region_name:
        raise InputError("AWS region", "is not configured", REGION_FIX)
    return result


def account_id(aws: boto3.Session) -> str:
    """The 12-digit account the credentials belong to (STS GetCallerIdentity)."""
    identity = call(aws.client("sts"), "get_caller_identity")
    return str(identity["Account"])


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """`client.<operation>(**kwargs)` with credential and region problems made readable.

    Service errors (access denied, throttling, validation) pass through as `ClientError`
    for the caller, who knows what the operation was for.
    """
    try:
        return getattr(client, operation)(**kwargs)
    except NoCredentialsError:
        raise InputError("AWS credentials", "none were found", CREDENTIALS_FIX) from None
    except NoRegionError:
        raise InputError("AWS region", "is not configured", REGION_FIX) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken"}:
            raise InputError("AWS credentials", f"were refused ({code})", CREDENTIALS_FIX) from None
        raise
    except ParamValidationError:
        raise  # a request this code built wrongly: a bug to see, not the user's network
    except BotoCoreError as error:
        service = client.meta.service_model.service_name
        raise InputError(
            f"AWS {service}",
            f"{operation} failed ({error})",
            "check the network and AWS_ENDPOINT_URL settings",
        ) from None
