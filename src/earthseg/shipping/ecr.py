"""The ECR side of a push: repositories that exist, and a registry login from IAM.

ECR has no passwords: `GetAuthorizationToken` returns a base64 `AWS:<password>` valid for
12 hours, for the registry host it names. Repositories must exist before a push; they are
created with scan on push, so every pushed image gets a vulnerability scan.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from earthseg.aws.session import call
from earthseg.errors import InputError

PUSH_PERMISSIONS = (
    "ecr:GetAuthorizationToken, ecr:DescribeRepositories, ecr:CreateRepository, "
    "ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart, "
    "ecr:CompleteLayerUpload and ecr:PutImage"
)
PERMISSIONS_FIX = (
    f"give the AWS identity in use {PUSH_PERMISSIONS} (e.g. the managed policy "
    "AmazonEC2ContainerRegistryPowerUser), and check the repository policy"
)
DENIED_CODES = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}


class Credentials(NamedTuple):
    """A registry user name and password (for ECR: `AWS` and the token's password)."""

    username: str
    password: str


class Authorization(NamedTuple):
    """What GetAuthorizationToken gives: the login, and the host it is for."""

    credentials: Credentials
    host: str


def authorization(ecr: Any, registry_id: str | None = None) -> Authorization:
    """A Docker login for the ECR registry of `registry_id` (default: the caller's account)."""
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    try:
        answer = call(ecr, "get_authorization_token", **kwargs)
    except ClientError as error:
        subject = f"ECR registry of account {registry_id}" if registry_id else "ECR registry"
        raise ecr_error(error, "GetAuthorizationToken", subject) from None
    data = answer["authorizationData"][0]
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return Authorization(decode_token(data["authorizationToken"]), host)


def decode_token(token: str) -> Credentials:
    """The user name and password inside an ECR authorization token."""
    try:
        username, separator, password = (
            base64.b64decode(token, validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        separator = ""
    if not separator or not username or not password:
        raise InputError(
            "ECR authorization token",
            "is not base64 of `user:password`",
            "check that AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_ECR) points at ECR",
        )
    return Credentials(username, password)


def ensure_repository(ecr: Any, name: str, registry_id: str | None = None) -> bool:
    """Make sure repository `name` exists; True when it was created here (scan on push)."""
    registry = {"registryId": registry_id} if registry_id else {}
    try:
        call(ecr, "describe_repositories", repositoryNames=[name], **registry)
        return False
    except ClientError as error:
        if _code(error) != "RepositoryNotFoundException":
            raise ecr_error(error, "DescribeRepositories", f"ECR repository {name}") from None
    try:
        call(
            ecr,
            "create_repository",
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            **registry,
        )
    except ClientError as error:
        if _code(error) == "RepositoryAlreadyExistsException":  # created meanwhile: fine
            return False
        raise ecr_error(error, "CreateRepository", f"ECR repository {name}") from None
    return True


def ecr_error(error: ClientError, operation: str, subject: str) -> InputError:
    """An ECR refusal as the user's problem to fix: permissions, or what ECR said."""
    code = _code(error)
    message = error.response.get("Error", {}).get("Message", str(error))
    if code in DENIED_CODES:
        return InputError(subject, f"{operation} was denied: {message}", PERMISSIONS_FIX)
    return InputError(
        subject,
        f"{operation} failed ({code}): {message}",
        "check REGISTRY, the AWS account and region in use, and the message above",
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
