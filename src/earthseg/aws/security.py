"""What a locked-down AWS account demands of every job, model and endpoint: a VPC, a
customer-managed KMS key, network isolation, inter-container encryption, cost tags.

Institutional accounts refuse (through SCPs or Config rules) any SageMaker resource made
without them, so one set of settings, run.yaml's `aws:` or the launcher's flags, goes into
every create request the launcher and the pipeline make. The request fragments are built
here, in the API's own shapes, so each call site adds the same keys the same way. Forms
are checked when the settings are read: a malformed subnet or key fails before anything
is sent, naming the key and the form it takes. Kept free of boto3 and the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator

from earthseg.validation import Options, invalid

SUBNET = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-f-]{36}|key/mrk-[0-9a-f]{32}|alias/[\w/-]+)$"
)
KMS_KEY_ID = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
KMS_ALIAS = re.compile(r"^alias/[\w/-]{1,250}$")
# SageMaker's Tag shape: keys 1-128, values 0-256 characters of this class; at most 50 per
# resource; the aws: prefix is AWS's own.
TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")
MAX_TAGS = 50
RUN_TAG = "earthseg:run"  # every resource, so costs and clean-ups can find a run's parts
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5

KMS_FORMS = "a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), a key ID, alias/NAME or an alias ARN"


class Vpc(Options):
    """The private subnets and security groups jobs and models run in."""

    subnets: list[str] = Field(
        min_length=1, max_length=MAX_SUBNETS, description="subnet IDs (subnet-...)"
    )
    security_groups: list[str] = Field(
        min_length=1, max_length=MAX_SECURITY_GROUPS, description="security group IDs (sg-...)"
    )

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, subnets: list[str]) -> list[str]:
        return _ids(subnets, SUBNET, "subnet", "subnet-0123456789abcdef0")

    @field_validator("security_groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        return _ids(groups, SECURITY_GROUP, "security group", "sg-0123456789abcdef0")


class Security(Options):
    """The security settings of a run: run.yaml's `aws:` keys, and the launcher's flags."""

    vpc: Vpc | None = Field(None, description="subnets and security groups (VpcConfig)")
    kms_key: str | None = Field(
        None,
        description="customer-managed KMS key for volumes, outputs, endpoint storage and S3 "
        f"uploads: {KMS_FORMS}",
    )
    network_isolation: bool = Field(
        False,
        description="no network for the training and serving containers "
        "(EnableNetworkIsolation); imagery fetching keeps its network",
    )
    inter_container_encryption: bool | None = Field(
        None,
        description="encrypt traffic between training instances "
        "(default: on whenever vpc, kms_key or network_isolation is set)",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="tags on every resource (besides earthseg:run)"
    )

    @field_validator("kms_key")
    @classmethod
    def _key(cls, key: str | None) -> str | None:
        if key is not None and not any(
            form.match(key) for form in (KMS_KEY_ARN, KMS_KEY_ID, KMS_ALIAS)
        ):
            raise invalid(f"{key!r} is not a KMS key", f"give {KMS_FORMS}")
        return key

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) >= MAX_TAGS:
            raise invalid(
                f"has {len(tags)} tags; SageMaker allows {MAX_TAGS} per resource and earthseg "
                f"adds {RUN_TAG}",
                f"keep at most {MAX_TAGS - 1}",
            )
        for key, value in tags.items():
            if key == RUN_TAG or key.lower().startswith("aws:"):
                raise invalid(
                    f"tag {key!r} is reserved", f"rename it ({RUN_TAG} and aws:* are set for you)"
                )
            if not 1 <= len(key) <= 128 or not TAG_TEXT.match(key):
                raise invalid(
                    f"tag key {key!r} is not a SageMaker tag key",
                    "use 1-128 letters, digits, spaces and _ . : / = + - @",
                )
            if len(str(value)) > 256 or not TAG_TEXT.match(str(value)):
                raise invalid(
                    f"tag {key}'s value {value!r} is not a SageMaker tag value",
                    "use up to 256 letters, digits, spaces and _ . : / = + - @",
                )
        return {key: str(value) for key, value in tags.items()}

    # --- what was asked -------------------------------------------------------------

    @property
    def encrypts_inter_container(self) -> bool:
        if self.inter_container_encryption is not None:
            return self.inter_container_encryption
        return self.locked_down

    @property
    def locked_down(self) -> bool:
        """Whether any setting beyond tags is given."""
        return self.vpc is not None or self.kms_key is not None or self.network_isolation

    def given(self) -> list[str]:
        """The settings given, by their run.yaml keys."""
        return [
            key
            for key, value in (
                ("vpc", self.vpc),
                ("kms_key", self.kms_key),
                ("network_isolation", self.network_isolation or None),
                ("inter_container_encryption", self.inter_container_encryption),
                ("tags", self.tags or None),
            )
            if value is not None
        ]

    def ignored_locally(self, say: Callable[[str], None] = print) -> None:
        """One line, for a run on this machine, saying the settings given do not apply."""
        given = self.given()
        if given:
            say(
                f"aws: {', '.join(given)} apply on SageMaker only; this local run ignores "
                f"{'it' if len(given) == 1 else 'them'}"
            )

    # --- request fragments, in the SageMaker API's shapes ---------------------------

    def tag_list(self, run: str) -> list[dict[str, str]]:
        """`Tags` for a create request: the run's name and the user's tags."""
        return [{"Key": RUN_TAG, "Value": run}] + [
            {"Key": key, "Value": value} for key, value in self.tags.items()
        ]

    def vpc_config(self) -> dict[str, list[str]] | None:
        """`VpcConfig` for jobs and models; None outside a VPC."""
        if self.vpc is None:
            return None
        return {
            "Subnets": list(self.vpc.subnets),
            "SecurityGroupIds": list(self.vpc.security_groups),
        }

    def training_job(self) -> dict[str, Any]:
        """The keys CreateTrainingJob (and a tuning's TrainingJobDefinition) takes at its
        top level: VPC, isolation, inter-container encryption."""
        return self._network(isolated=True, encrypted=self.encrypts_inter_container)

    def network_config(self, isolated: bool) -> dict[str, Any]:
        """A Processing job's `NetworkConfig`; `isolated`: whether this job may be cut off
        (a job fetching imagery may not)."""
        return self._network(isolated, encrypted=self.encrypts_inter_container)

    def model(self) -> dict[str, Any]:
        """The keys CreateModel takes: VPC and isolation of the serving container."""
        return self._network(isolated=True, encrypted=False)

    def _network(self, isolated: bool, encrypted: bool) -> dict[str, Any]:
        """VpcConfig, EnableNetworkIsolation and EnableInterContainerTrafficEncryption, as
        the job and model APIs all name them; only those that apply."""
        request: dict[str, Any] = {}
        vpc = self.vpc_config()
        if vpc:
            request["VpcConfig"] = vpc
        if self.network_isolation and isolated:
            request["EnableNetworkIsolation"] = True
        if encrypted:
            request["EnableInterContainerTrafficEncryption"] = True
        return request

    def kms(self, key: str) -> dict[str, str]:
        """`{key: the KMS key}` when one is set (`key`: the request's field name, e.g.
        KmsKeyId, VolumeKmsKeyId), else nothing."""
        return {key: self.kms_key} if self.kms_key else {}

    def s3_encryption(self) -> dict[str, str]:
        """Extra arguments of S3 PutObject/upload_file: SSE-KMS under the key."""
        if not self.kms_key:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key}


NO_SECURITY = Security()


def _ids(values: list[str], form: re.Pattern[str], noun: str, example: str) -> list[str]:
    wrong = [value for value in values if not form.match(value)]
    if wrong:
        listed = ", ".join(map(repr, wrong))
        what = f"is not a {noun} ID" if len(wrong) == 1 else f"are not {noun} IDs"
        raise invalid(
            f"{listed} {what}", f"give IDs such as {example} (the VPC console lists them)"
        )
    if len(set(values)) != len(values):
        raise invalid("names one twice", "list each once")
    return values
