"""A locked-down account's settings as users give them: run.yaml's `aws:` keys and the
launcher's flags, checked when read, turned into the API's request fragments."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from earthseg.aws.security import RUN_TAG, Security
from earthseg.cli.options import add_security_options, security_from_args
from earthseg.errors import InputError
from earthseg.validation import validate

SUBNET = "subnet-0123456789abcdef0"
GROUP = "sg-0a1b2c3d"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/earthseg",
        "mrk-" + "0" * 32,
        "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/earthseg/data",
    ],
)
def test_every_form_sagemaker_takes_for_a_key_is_accepted(key: str) -> None:
    security = Security(kms_key=key)
    assert security.kms("KmsKeyId") == {"KmsKeyId": key}
    assert security.s3_encryption() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}


@pytest.mark.parametrize(
    ("values", "named", "says"),
    [
        ({"kms_key": "my-key"}, "aws.kms_key", "is not a KMS key"),
        ({"kms_key": "arn:aws:kms:us-east-1:123:key/x"}, "aws.kms_key", "is not a KMS key"),
        (
            {"vpc": {"subnets": ["subnet-12"], "security_groups": [GROUP]}},
            "aws.vpc.subnets",
            "'subnet-12' is not a subnet ID",
        ),
        (
            {"vpc": {"subnets": [SUBNET], "security_groups": ["default"]}},
            "aws.vpc.security_groups",
            "is not a security group ID",
        ),
        ({"vpc": {"subnets": [SUBNET]}}, "aws.vpc.security_groups", "is required"),
        ({"vpc": {"subnets": [], "security_groups": [GROUP]}}, "aws.vpc.subnets", "too short"),
        (
            {"vpc": {"subnets": [SUBNET, SUBNET], "security_groups": [GROUP]}},
            "aws.vpc.subnets",
            "names one twice",
        ),
        ({"tags": {"aws:cost": "x"}}, "aws.tags", "is reserved"),
        ({"tags": {RUN_TAG: "x"}}, "aws.tags", "is reserved"),
        ({"tags": {"project": "dust{plumes}"}}, "aws.tags", "is not a SageMaker tag value"),
        ({"tags": {f"k{n}": "v" for n in range(50)}}, "aws.tags", "has 50 tags"),
        ({"network_isolation": "sometimes"}, "aws.network_isolation", ""),
    ],
)
def test_malformed_settings_are_refused_naming_the_key(
    values: dict[str, Any], named: str, says: str
) -> None:
    with pytest.raises(InputError) as refused:
        validate(Security, values, key=lambda location: "aws." + ".".join(map(str, location)))
    assert named in refused.value.source and says in str(refused.value)


def test_a_locked_down_run_makes_the_same_fragments_for_every_request() -> None:
    security = Security(
        vpc={"subnets": [SUBNET], "security_groups": [GROUP]},
        kms_key=KEY,
        network_isolation=True,
        tags={"project": "dust", "cost-centre": "ESD 610"},
    )
    vpc = {"Subnets": [SUBNET], "SecurityGroupIds": [GROUP]}
    assert security.training_job() == {
        "VpcConfig": vpc,
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    assert security.model() == {"VpcConfig": vpc, "EnableNetworkIsolation": True}
    # a job that must reach GIBS keeps its network, still in the VPC and encrypted
    assert security.network_config(isolated=False) == {
        "VpcConfig": vpc,
        "EnableInterContainerTrafficEncryption": True,
    }
    assert security.tag_list("dust-plumes") == [
        {"Key": RUN_TAG, "Value": "dust-plumes"},
        {"Key": "project", "Value": "dust"},
        {"Key": "cost-centre", "Value": "ESD 610"},
    ]


def test_an_open_run_adds_only_its_name_tag() -> None:
    security = Security()
    assert security.training_job() == {} and security.model() == {}
    assert security.kms("KmsKeyId") == {} and security.s3_encryption() == {}
    assert security.tag_list("run") == [{"Key": RUN_TAG, "Value": "run"}]
    lines: list[str] = []
    security.ignored_locally(lines.append)
    assert lines == []


def test_inter_container_encryption_follows_the_lock_down_unless_chosen() -> None:
    assert not Security(tags={"a": "b"}).encrypts_inter_container
    assert Security(kms_key=KEY).encrypts_inter_container
    assert not Security(kms_key=KEY, inter_container_encryption=False).encrypts_inter_container
    assert Security(inter_container_encryption=True).training_job() == {
        "EnableInterContainerTrafficEncryption": True
    }


def test_a_local_run_says_in_one_line_what_it_ignores() -> None:
    lines: list[str] = []
    Security(kms_key=KEY, tags={"a": "b"}).ignored_locally(lines.append)
    assert lines == ["aws: kms_key, tags apply on SageMaker only; this local run ignores them"]


def parse(*argv: str) -> Security:
    parser = argparse.ArgumentParser()
    add_security_options(parser)
    return security_from_args(parser.parse_args(argv))  # type: ignore[no-any-return]


def test_flags_give_the_same_settings_as_run_yaml() -> None:
    security = parse(
        "--subnets", f"{SUBNET}, subnet-0fedcba9",
        "--security-groups", GROUP,
        "--kms-key", "alias/earthseg",
        "--network-isolation",
        "--no-inter-container-encryption",
        "--tag", "project=dust", "--tag", "owner=esd",
    )  # fmt: skip
    assert security == Security(
        vpc={"subnets": [SUBNET, "subnet-0fedcba9"], "security_groups": [GROUP]},
        kms_key="alias/earthseg",
        network_isolation=True,
        inter_container_encryption=False,
        tags={"project": "dust", "owner": "esd"},
    )
    assert parse() == Security()


@pytest.mark.parametrize(
    ("argv", "flag", "says"),
    [
        (["--subnets", SUBNET], "--security-groups", "a VPC needs both"),
        (["--subnets", "subnet-1", "--security-groups", GROUP], "--subnets", "not a subnet ID"),
        (["--kms-key", "key"], "--kms-key", "is not a KMS key"),
        (["--tag", "project"], "--tag project", "is not NAME=VALUE"),
        (["--tag", "aws:x=1"], "--tag", "is reserved"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv: list[str], flag: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        parse(*argv)
    assert refused.value.source == flag and says in str(refused.value)
