"""Choosing the push target, naming the images there, and ECR's side of a push (no Docker).

The ECR calls run against moto's in-process emulator; `tests/docker/test_push.py` runs the
whole push against a real registry and moto in server mode.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from earthseg.errors import InputError
from earthseg.shipping.ecr import (
    PERMISSIONS_FIX,
    Credentials,
    authorization,
    decode_token,
    ecr_error,
    ensure_repository,
)
from earthseg.shipping.push import _push_error, credentials_from_env
from earthseg.shipping.registry import Registry, ecr_host_parts, parse_registry, remote_tags

ACCOUNT = "123456789012"  # moto's default account


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            Registry(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "", True, ACCOUNT, "eu-west-1"
            ),
        ),
        (
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ml/",
            Registry(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "team/ml",
                True,
                ACCOUNT,
                "eu-west-1",
            ),
        ),
        (
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
            Registry(
                "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "",
                True,
                "210987654321",
                "cn-north-1",
            ),
        ),
        ("ghcr.io/team", Registry("ghcr.io", "team", False)),
        ("127.0.0.1:5000", Registry("127.0.0.1:5000", "", False)),
        ("localhost:5000/a/b-c", Registry("localhost:5000", "a/b-c", False)),
    ],
)
def test_registry_names_the_host_namespace_and_whether_it_is_ecr(
    setting: str, expected: Registry
) -> None:
    assert parse_registry(setting) == expected


def test_no_registry_means_the_configured_accounts_ecr() -> None:
    registry = parse_registry("", None)
    assert registry == Registry(host=None, ecr=True)
    assert registry.repository("train") == "earthseg-train"
    assert "ECR registry of the configured AWS account" in registry.describe()


def test_registry_auth_ecr_makes_any_host_ecr_with_the_configured_account() -> None:
    """ECR behind a VPC endpoint or proxy name: the account and region are the configured."""
    registry = parse_registry("vpce-0abc.dkr.ecr.example.internal:443/team", "ECR")
    assert registry == Registry("vpce-0abc.dkr.ecr.example.internal:443", "team", True)
    assert registry.repository("serve") == "team/earthseg-serve"


@pytest.mark.parametrize(
    ("host", "parts"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", (ACCOUNT, "us-east-1")),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", (ACCOUNT, "us-gov-west-1")),
        ("123456789012.dkr-ecr.ap-southeast-2.on.aws", (ACCOUNT, "ap-southeast-2")),
        ("123456789012.DKR.ECR.us-east-1.AMAZONAWS.COM", (ACCOUNT, "us-east-1")),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", None),
        ("12345.dkr.ecr.us-east-1.amazonaws.com", None),
        ("public.ecr.aws", None),
        ("ghcr.io", None),
    ],
)
def test_ecr_host_names_give_account_and_region_and_lookalikes_do_not(
    host: str, parts: tuple[str, str] | None
) -> None:
    assert ecr_host_parts(host) == parts


@pytest.mark.parametrize(
    ("setting", "auth", "source", "words"),
    [
        ("ghcr.io", "basic", "REGISTRY_AUTH", "REGISTRY_AUTH=ecr"),
        ("ghcr.io/Team", None, "REGISTRY", "'Team'"),
        ("ghcr.io/team//ml", None, "REGISTRY", "'team//ml'"),
        ("/team", None, "REGISTRY", "host name"),
        ("https://", None, "REGISTRY", "host name"),
    ],
)
def test_a_bad_registry_setting_is_named_with_the_fix(
    setting: str, auth: str | None, source: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_registry(setting, auth)
    assert caught.value.source == source
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("revision", "tags"),
    [
        ("a648c5a", ["0.1.0-gpu", "a648c5a-gpu"]),
        ("a648c5a-dirty", ["0.1.0-gpu", "a648c5a-dirty-gpu"]),
        ("unknown", ["0.1.0-gpu"]),  # built outside a git checkout
        (None, ["0.1.0-gpu"]),  # an image without the label
    ],
)
def test_remote_tags_are_the_version_and_the_images_own_commit(
    revision: str | None, tags: list[str]
) -> None:
    assert remote_tags("0.1.0", revision, "gpu") == tags


def test_an_ecr_token_decodes_to_user_and_password() -> None:
    token = base64.b64encode(b"AWS:secret:with:colons").decode()
    assert decode_token(token) == Credentials("AWS", "secret:with:colons")


@pytest.mark.parametrize("token", ["not base64!", base64.b64encode(b"no-colon").decode(), ""])
def test_a_garbled_token_says_where_it_came_from(token: str) -> None:
    with pytest.raises(InputError, match="AWS_ENDPOINT_URL"):
        decode_token(token)


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An ECR client on moto's in-process emulator, whatever the host's AWS settings."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("ecr", region_name="eu-west-1")


def test_a_missing_repository_is_created_with_scan_on_push_once(ecr: Any) -> None:
    assert ensure_repository(ecr, "team/earthseg-train") is True
    assert ensure_repository(ecr, "team/earthseg-train") is False
    (repository,) = ecr.describe_repositories(repositoryNames=["team/earthseg-train"])[
        "repositories"
    ]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}


def test_an_existing_repository_is_left_as_it_is(ecr: Any) -> None:
    ecr.create_repository(repositoryName="earthseg-serve")
    assert ensure_repository(ecr, "earthseg-serve") is False
    (repository,) = ecr.describe_repositories()["repositories"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": False}


def test_the_authorization_names_the_registry_host_and_its_login(ecr: Any) -> None:
    auth = authorization(ecr)
    assert auth.host == f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    assert auth.credentials == Credentials("AWS", f"{ACCOUNT}-auth-token")
    other = authorization(ecr, "210987654321")
    assert other.host == "210987654321.dkr.ecr.eu-west-1.amazonaws.com"


def test_a_denied_ecr_call_says_which_permissions_to_grant() -> None:
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
        "CreateRepository",
    )
    error = ecr_error(denied, "CreateRepository", "ECR repository earthseg-train")
    assert error.source == "ECR repository earthseg-train"
    assert error.fix == PERMISSIONS_FIX and "ecr:CreateRepository" in error.fix
    other = ClientError({"Error": {"Code": "LimitExceededException", "Message": "too many"}}, "X")
    assert "LimitExceededException" in ecr_error(other, "CreateRepository", "x").problem


@pytest.mark.parametrize(
    ("message", "denied"),
    [
        ("denied: requested access to the resource is denied", True),
        ("unauthorized: authentication required", True),
        ("no basic auth credentials", True),
        ("denied: User: arn:aws:iam::1:user/x is not authorized to perform ecr:PutImage", True),
        ('Get "https://h/v2/": dial tcp 10.0.0.1:443: connect: connection refused', False),
        ("tag invalid: The image tag '0.1.0-gpu' already exists and cannot be overwritten", False),
    ],
)
def test_a_failed_push_names_the_image_and_registry_and_a_fix_for_its_cause(
    message: str, denied: bool
) -> None:
    error = _push_error("h:5000/earthseg-train:0.1.0-gpu", message, "the denied fix")
    assert error.source == "h:5000/earthseg-train:0.1.0-gpu"
    assert "h:5000" in error.problem and message in error.problem
    assert (error.fix == "the denied fix") is denied


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "p"}, Credentials("u", "p")),
    ],
)
def test_registry_credentials_come_as_a_pair(
    environ: dict[str, str], expected: Credentials | None
) -> None:
    assert credentials_from_env(environ) == expected


def test_half_a_credential_pair_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        credentials_from_env({"REGISTRY_USERNAME": "u"})
    assert caught.value.source == "REGISTRY_PASSWORD"
