"""The SageMaker Model Registry: a model package group per run name, one version per
registered model, approved or rejected by a person before it may serve.

A version's inference specification is the serve image and `model.tar.gz` with the content
types and instance types the model server takes; its model metrics point at the evaluation
JSON; its metadata (CustomerMetadataProperties) says what it was trained on and with what.
`model_package_request` builds the CreateModelPackage request the pipeline's Register step
sends, with pipeline variables (sagemaker.core.workflow Properties, Join, JsonGet,
parameters) passed through untouched: only plain strings are checked here. The rest reads
what was registered: versions, the latest approved one, and a version's lineage for
`earthseg models show` (metrics from the evaluation JSON, the training job and its
hyperparameters, the endpoints serving it).

The calls are boto3's, as in earthseg.aws.endpoints, through `earthseg.aws.session.call`.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws import jobs
from earthseg.aws.names import NAME_LENGTH, SAGEMAKER_NAME
from earthseg.aws.resources import DEFAULT_GPU_INSTANCE
from earthseg.aws.s3 import parse_s3_uri
from earthseg.aws.session import call
from earthseg.contracts.serving import GEOJSON, TIFF
from earthseg.errors import InputError

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
STATUSES = (PENDING, APPROVED, REJECTED)

# What the model server reads (earthseg.serve.decoders.DECODERS) and answers
# (earthseg.serve.encoders.ENCODERS), named here without importing the server (rasterio,
# ONNX Runtime): tests/test_model_registry.py holds them equal.
NPY, JSON, PNG, JPEG = "application/x-npy", "application/json", "image/png", "image/jpeg"
CONTENT_TYPES = (TIFF, NPY, JSON, PNG, JPEG)
RESPONSE_TYPES = (TIFF, GEOJSON, JSON, NPY, PNG)
# `earthseg deploy`'s default GPU instance and CPU ones for serverless-sized loads;
# `earthseg transform`'s default (earthseg.aws.transform.DEFAULT_INSTANCE) first, then
# bigger CPU instances and the GPU ones.
REALTIME_INSTANCE_TYPES = (DEFAULT_GPU_INSTANCE, "ml.g4dn.xlarge", "ml.m5.xlarge", "ml.c5.2xlarge")
TRANSFORM_INSTANCE_TYPES = ("ml.m5.xlarge", "ml.c5.2xlarge", "ml.g4dn.xlarge", DEFAULT_GPU_INSTANCE)
METRICS_CONTENT_TYPE = "application/json"

# CustomerMetadataProperties, as botocore's service model (sagemaker 2017-07-24) bounds
# them: at most 50; keys 1-128 and values 1-256 characters of letters, separators, digits
# and _ . : / = + - @ (anything else SageMaker refuses).
RUN_KEY = "earthseg:run"
MANIFEST_KEY = "earthseg:manifest_sha256"
IMAGERY_KEY = "earthseg:imagery"
TRAIN_IMAGE_KEY = "earthseg:train_image"
SERVE_IMAGE_KEY = "earthseg:serve_image"
SOURCE_COMMIT_KEY = "earthseg:source_commit"
TRAINING_JOB_KEY = "earthseg:training_job"
MAX_METADATA = 50
METADATA_KEY_CHARS = 128
METADATA_VALUE_CHARS = 256
METADATA_PUNCTUATION = "_.:/=+-@"
DESCRIPTION_CHARS = 1024  # ModelPackageDescription and ApprovalDescription
METADATA_FIX = (
    f"use letters, digits, spaces and {METADATA_PUNCTUATION} only, keys up to "
    f"{METADATA_KEY_CHARS} and values up to {METADATA_VALUE_CHARS} characters "
    "(lineage_metadata makes such values from any text)"
)

VERSION_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model-package/(?P<group>[a-zA-Z0-9](?:-*[a-zA-Z0-9])*)/(?P<version>\d{1,9})$"
)
ARN_FIX = (
    "give a version's ARN as `earthseg models list --group NAME` prints it "
    "(arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION)"
)
# A SageMaker training job writes its model to <output path>/<job>/output/model.tar.gz.
TRAINING_OUTPUT = re.compile(
    r"^s3://[^/]+/(?:.*/)?(?P<job>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})/output/model\.tar\.gz$"
)


# --- registering ---------------------------------------------------------------------------


def model_package_request(
    *,
    group: Any,
    image: Any,
    model_uri: Any,
    evaluation_uri: Any = None,
    metadata: Mapping[str, Any] | None = None,
    approval: Any = PENDING,
    description: Any = "",
    realtime_instance_types: Sequence[Any] = REALTIME_INSTANCE_TYPES,
    transform_instance_types: Sequence[Any] = TRANSFORM_INSTANCE_TYPES,
    tags: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The keyword arguments of `create_model_package` for a new version in `group`:
    `image` serving `model_uri` (a model.tar.gz), the evaluation JSON at `evaluation_uri`
    as its model quality statistics, `metadata` (None values left out) as its
    CustomerMetadataProperties, `tags` (`Security.tag_list`) as its Tags.

    Any value may be a SageMaker pipeline variable, resolved when the pipeline runs: it
    is put into the request as it is. Plain strings are checked against what SageMaker
    accepts, so a bad one fails here, before a pipeline is defined or a model registered.
    """
    if isinstance(group, str):
        check_group(group, "model package group")
    if isinstance(image, str):
        _check_image(image)
    if isinstance(model_uri, str):
        _check_model_uri(model_uri, "model data")
    if isinstance(approval, str) and approval not in STATUSES:
        raise InputError(
            "approval",
            f"{approval!r} is not a model approval status",
            f"use one of {', '.join(STATUSES)}",
        )
    container = {"Image": image, "ModelDataUrl": model_uri}
    specification = {
        "Containers": [container],
        "SupportedContentTypes": list(CONTENT_TYPES),
        "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
        "SupportedRealtimeInferenceInstanceTypes": _instance_types(
            realtime_instance_types, "real-time instance types"
        ),
        "SupportedTransformInstanceTypes": _instance_types(
            transform_instance_types, "transform instance types"
        ),
    }
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "InferenceSpecification": specification,
        "ModelApprovalStatus": approval,
    }
    if isinstance(description, str):
        if description:
            request["ModelPackageDescription"] = _check_text(description, "description")
    else:
        request["ModelPackageDescription"] = description
    if evaluation_uri is not None:
        if isinstance(evaluation_uri, str):
            parse_s3_uri(evaluation_uri, "evaluation")
        request["ModelMetrics"] = {
            "ModelQuality": {
                "Statistics": {"ContentType": METRICS_CONTENT_TYPE, "S3Uri": evaluation_uri}
            }
        }
    properties = _metadata(metadata or {})
    if properties:
        request["CustomerMetadataProperties"] = properties
    if tags:
        request["Tags"] = [dict(tag) for tag in tags]
    return request


def lineage_metadata(
    *,
    run: Any = None,
    manifest_sha256: Any = None,
    imagery: Any = None,
    train_image: Any = None,
    serve_image: Any = None,
    commit: Any = None,
    training_job: Any = None,
) -> dict[str, Any]:
    """The earthseg:* metadata of a version: what it was trained on and with what.

    Plain strings are made into values SageMaker accepts (`metadata_value`); pipeline
    variables pass as they are (their values must then keep to SageMaker's characters);
    None and empty values are left out. Images are best given as `image_reference(uri,
    digest)`, the commit as `source_commit()`.
    """
    given = {
        RUN_KEY: run,
        MANIFEST_KEY: manifest_sha256,
        IMAGERY_KEY: imagery,
        TRAIN_IMAGE_KEY: train_image,
        SERVE_IMAGE_KEY: serve_image,
        SOURCE_COMMIT_KEY: commit,
        TRAINING_JOB_KEY: training_job,
    }
    metadata: dict[str, Any] = {}
    for key, value in given.items():
        if isinstance(value, str):
            value = metadata_value(value)
        if value is not None and value != "":
            metadata[key] = value
    return metadata


def metadata_value(text: str) -> str:
    """`text` as a metadata value SageMaker accepts: other characters become spaces, runs
    of spaces one, and a value over 256 characters is cut, ending in "..."."""
    kept = "".join(char if _metadata_char(char) else " " for char in text)
    value = " ".join(kept.split())
    if len(value) > METADATA_VALUE_CHARS:
        value = value[: METADATA_VALUE_CHARS - 3].rstrip() + "..."
    return value


def image_reference(uri: str, digest: str | None) -> str:
    """`uri@digest` (the image exactly, its tag kept for the reader), or `uri` when the
    digest is unknown or already part of it. For metadata: a container's Image takes a
    tag or a digest, not both."""
    return uri if not digest or "@" in uri else f"{uri}@{digest}"


def image_digest(session: boto3.Session, uri: str) -> str | None:
    """The digest (sha256:...) of an ECR image (ECR DescribeImages in the registry's
    region), None for an image in another registry. An image missing from ECR is an
    InputError: a pipeline or model naming it could not run."""
    from earthseg.shipping.ecr import ecr_error
    from earthseg.shipping.registry import ecr_host_parts

    host, _, path = uri.partition("/")
    parts = ecr_host_parts(host)
    if parts is None or not path:
        return None
    path, _, digest = path.partition("@")
    if digest:
        return digest
    repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "latest")
    account, region = parts
    try:
        answer = call(
            session.client("ecr", region_name=region),
            "describe_images",
            registryId=account,
            repositoryName=repository,
            imageIds=[{"imageTag": tag}],
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"ImageNotFoundException", "RepositoryNotFoundException"}:
            raise InputError(
                uri,
                f"is not in ECR ({code})",
                "push the images first (make push), or name an image that was pushed",
            ) from None
        raise ecr_error(error, "DescribeImages", uri) from None
    return str(answer["imageDetails"][0]["imageDigest"])


def source_commit(folder: Path | None = None) -> str:
    """The git commit the earthseg package runs from (`folder`: its source folder by
    default), with `-dirty` when the package's files differ from it, as
    scripts/build-image.sh tags images; `earthseg <version>` outside a git checkout (an
    installed package)."""
    from earthseg import __file__ as package_file
    from earthseg import __version__

    folder = folder or Path(package_file).parent

    def git(*arguments: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(folder), *arguments],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    # The folder's files must be tracked: a package installed into a virtual environment
    # that lies inside some checkout is not that checkout's code.
    commit = git("rev-parse", "HEAD") if git("ls-files", "--error-unmatch", "--", ".") else None
    if not commit:
        return f"earthseg {__version__}"
    return f"{commit}-dirty" if git("status", "--porcelain", "--", ".") else commit


def check_group(group: str, source: str) -> str:
    """`group` if SageMaker takes it as a model package group name; else an InputError
    naming `source`."""
    if not SAGEMAKER_NAME.match(group) or len(group) > NAME_LENGTH:
        raise InputError(
            source,
            f"{group!r} is not a model package group name",
            f"use up to {NAME_LENGTH} letters, digits and hyphens, starting and ending with a "
            "letter or digit",
        )
    return group


def ensure_group(
    session: boto3.Session,
    group: str,
    description: str = "",
    tags: Sequence[Mapping[str, str]] = (),
) -> str:
    """The ARN of model package group `group`, created when missing (with `tags`,
    `Security.tag_list`; a group that exists keeps its own)."""
    check_group(group, "model package group")
    client = session.client("sagemaker")
    try:
        return str(
            call(client, "describe_model_package_group", ModelPackageGroupName=group)[
                "ModelPackageGroupArn"
            ]
        )
    except ClientError as error:
        if not is_missing(error):
            raise jobs.refused(error, f"model package group {group}") from None
    request: dict[str, Any] = {"ModelPackageGroupName": group}
    if description:
        request["ModelPackageGroupDescription"] = _check_text(description, "group description")
    if tags:
        request["Tags"] = [dict(tag) for tag in tags]
    try:
        return str(call(client, "create_model_package_group", **request)["ModelPackageGroupArn"])
    except ClientError as error:
        raise jobs.refused(error, f"model package group {group}") from None


def register(session: boto3.Session, request: Mapping[str, Any]) -> ModelVersion:
    """Register a version from `model_package_request(...)` (plain values), its group
    created on first use; the version as SageMaker describes it."""
    group = request["ModelPackageGroupName"]
    ensure_group(session, group)
    try:
        arn = call(session.client("sagemaker"), "create_model_package", **request)
    except ClientError as error:
        raise jobs.refused(error, f"a new version in model package group {group}") from None
    return describe_version(session, str(arn["ModelPackageArn"]))


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionArn:
    """A model package version's ARN, in parts."""

    arn: str
    region: str
    account: str
    group: str
    version: int


@dataclass(frozen=True)
class GroupSummary:
    name: str
    created: datetime | None
    description: str


@dataclass(frozen=True)
class VersionSummary:
    """A version as ListModelPackages gives it."""

    arn: str
    version: int
    status: str
    created: datetime | None
    description: str


@dataclass(frozen=True)
class ModelVersion:
    """A registered version as DescribeModelPackage gives it."""

    arn: str
    group: str
    version: int
    status: str
    reason: str  # ApprovalDescription: why it was approved or rejected
    created: datetime | None
    description: str
    images: tuple[str, ...]
    model_data: tuple[str, ...]
    content_types: tuple[str, ...]
    response_types: tuple[str, ...]
    realtime_instance_types: tuple[str, ...]
    transform_instance_types: tuple[str, ...]
    metrics_uri: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> ModelVersion:
        specification = described.get("InferenceSpecification") or {}
        containers = specification.get("Containers") or []
        statistics = (
            (described.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {})
        )
        return cls(
            arn=str(described["ModelPackageArn"]),
            group=str(described.get("ModelPackageGroupName", "")),
            version=int(described.get("ModelPackageVersion") or 0),
            # SageMaker's default for a version registered without a status.
            status=str(described.get("ModelApprovalStatus") or PENDING),
            reason=str(described.get("ApprovalDescription") or ""),
            created=described.get("CreationTime"),
            description=str(described.get("ModelPackageDescription") or ""),
            images=tuple(c["Image"] for c in containers if c.get("Image")),
            model_data=tuple(c["ModelDataUrl"] for c in containers if c.get("ModelDataUrl")),
            content_types=tuple(specification.get("SupportedContentTypes") or ()),
            response_types=tuple(specification.get("SupportedResponseMIMETypes") or ()),
            realtime_instance_types=tuple(
                specification.get("SupportedRealtimeInferenceInstanceTypes") or ()
            ),
            transform_instance_types=tuple(
                specification.get("SupportedTransformInstanceTypes") or ()
            ),
            metrics_uri=statistics.get("S3Uri"),
            metadata=dict(described.get("CustomerMetadataProperties") or {}),
        )

    def status_line(self) -> str:
        """The status with its reason, as people read it."""
        return f"{self.status}: {self.reason}" if self.reason else self.status


def parse_version_arn(arn: str, source: str = "ARN") -> VersionArn:
    """`arn` in parts, or an InputError naming `source` when it is not a version's ARN."""
    match = VERSION_ARN.match(arn.strip())
    if not match:
        raise InputError(source, f"{arn!r} is not the ARN of a model package version", ARN_FIX)
    return VersionArn(
        arn.strip(), match["region"], match["account"], match["group"], int(match["version"])
    )


def format_time(moment: datetime | None) -> str:
    """A creation time as people read it, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def list_groups(session: boto3.Session) -> list[GroupSummary]:
    """The account's model package groups in this region, oldest first."""
    pages = jobs.paged(
        session.client("sagemaker"),
        "list_model_package_groups",
        "ModelPackageGroupSummaryList",
        "model package groups",
        SortBy="CreationTime",
        SortOrder="Ascending",
    )
    return [
        GroupSummary(
            str(item["ModelPackageGroupName"]),
            item.get("CreationTime"),
            str(item.get("ModelPackageGroupDescription") or ""),
        )
        for item in pages
    ]


def list_versions(
    session: boto3.Session, group: str, status: str | None = None, source: str = "--group"
) -> list[VersionSummary]:
    """The versions of `group` (only those of `status`, when given), by version number;
    an unknown group is an InputError naming `source`."""
    check_group(group, source)
    _describe_group(session, group, source)
    filters = {"ModelApprovalStatus": status} if status else {}
    pages = jobs.paged(
        session.client("sagemaker"),
        "list_model_packages",
        "ModelPackageSummaryList",
        f"model package group {group}",
        ModelPackageGroupName=group,
        ModelPackageType="Versioned",
        **filters,
    )
    versions = [
        VersionSummary(
            str(item["ModelPackageArn"]),
            int(item.get("ModelPackageVersion") or 0),
            str(item.get("ModelApprovalStatus") or PENDING),
            item.get("CreationTime"),
            str(item.get("ModelPackageDescription") or ""),
        )
        for item in pages
    ]
    return sorted(versions, key=lambda version: version.version)


def describe_version(session: boto3.Session, arn: str, source: str = "ARN") -> ModelVersion:
    """The version `arn` names, or an InputError naming `source`: a malformed ARN, one
    of another region, one SageMaker does not know."""
    parts = parse_version_arn(arn, source)
    if parts.region != session.region_name:
        raise InputError(
            source,
            f"{arn} is in {parts.region}, and the commands act in {session.region_name}",
            f"add --region {parts.region}",
        )
    try:
        described = call(
            session.client("sagemaker"), "describe_model_package", ModelPackageName=parts.arn
        )
    except ClientError as error:
        if is_missing(error):
            raise InputError(
                source,
                f"there is no model package version {arn} in {parts.region}",
                f"see the versions there are: earthseg models list --group {parts.group}",
            ) from None
        raise jobs.refused(error, f"model package {arn}") from None
    return ModelVersion.from_description(described)


def find_version(
    session: boto3.Session, group: str, version: int, source: str = "--version"
) -> ModelVersion:
    """Version number `version` of `group`."""
    for summary in list_versions(session, group):
        if summary.version == version:
            return describe_version(session, summary.arn)
    raise InputError(
        source,
        f"model package group {group} has no version {version}",
        f"see its versions: earthseg models list --group {group}",
    )


def latest_approved(session: boto3.Session, group: str, source: str = "--group") -> ModelVersion:
    """The newest Approved version of `group`; an InputError when there is none."""
    approved = list_versions(session, group, APPROVED, source)
    if not approved:
        every = list_versions(session, group, source=source)
        counts = _counts(every)
        held = f" (it holds {counts})" if counts else " (it holds no versions yet)"
        raise InputError(
            f"{source} {group}",
            f"has no Approved version{held}",
            "approve one after reviewing it (earthseg models show ARN): "
            "earthseg models approve ARN --reason TEXT; "
            f"earthseg models list --group {group} lists them",
        )
    return describe_version(session, approved[-1].arn)


def set_approval(
    session: boto3.Session, arn: str, status: str, reason: str = "", source: str = "ARN"
) -> ModelVersion:
    """Approve or reject version `arn` (UpdateModelPackage), with `reason` as its approval
    description (an empty one clears an earlier reason); the version as it is now."""
    if status not in STATUSES:
        raise InputError(
            "status", f"{status!r} is not a model approval status", f"use {', '.join(STATUSES)}"
        )
    _check_text(reason, "--reason")
    current = describe_version(session, arn, source)
    try:
        call(
            session.client("sagemaker"),
            "update_model_package",
            ModelPackageArn=current.arn,
            ModelApprovalStatus=status,
            ApprovalDescription=reason,
        )
    except ClientError as error:
        raise jobs.refused(error, f"model package {arn}") from None
    return describe_version(session, current.arn, source)


def deployable(session: boto3.Session, arn: str, source: str = "--model-package") -> ModelVersion:
    """Version `arn` if it is Approved; otherwise an InputError with its status, the
    reason given for it, and how to approve it. Nothing is created either way."""
    version = describe_version(session, arn, source)
    if version.status != APPROVED:
        reason = f" ({version.reason})" if version.reason else ""
        raise InputError(
            f"{source} {version.arn}",
            f"is {version.status}{reason}: only an Approved version may serve",
            f"review it (earthseg models show {version.arn}); to serve it, approve it: "
            f"earthseg models approve {version.arn} --reason TEXT",
        )
    return version


# --- helpers -------------------------------------------------------------------------------


def _describe_group(session: boto3.Session, group: str, source: str) -> dict[str, Any]:
    try:
        return dict(
            call(
                session.client("sagemaker"),
                "describe_model_package_group",
                ModelPackageGroupName=group,
            )
        )
    except ClientError as error:
        if is_missing(error):
            raise InputError(
                f"{source} {group}",
                f"there is no model package group {group} in {session.region_name}",
                "check the name and region; earthseg models list shows the groups there are",
            ) from None
        raise jobs.refused(error, f"model package group {group}") from None


def _counts(versions: Sequence[VersionSummary]) -> str:
    counts: dict[str, int] = {}
    for version in versions:
        counts[version.status] = counts.get(version.status, 0) + 1
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def is_missing(error: ClientError) -> bool:
    """SageMaker's answer for something that does not exist: a not-found code, or a
    ValidationException saying so (its wording differs between resources)."""
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", ""), detail.get("Message", "").lower()
    return code in {"ResourceNotFound", "NotFound"} or (
        code in {"ValidationException", "ValidationError"}
        and any(words in message for words in ("not find", "not found", "does not exist"))
    )


def as_mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _metadata_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LZN" or char in METADATA_PUNCTUATION


def _metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """CustomerMetadataProperties from `metadata`: None values left out, plain strings
    checked against SageMaker's limits."""
    properties = {key: value for key, value in metadata.items() if value is not None}
    if len(properties) > MAX_METADATA:
        raise InputError(
            "metadata", f"has {len(properties)} entries", f"keep at most {MAX_METADATA}"
        )
    for key, value in properties.items():
        if not isinstance(key, str) or not _metadata_text(key, METADATA_KEY_CHARS):
            raise InputError(f"metadata key {key!r}", "is not one SageMaker accepts", METADATA_FIX)
        if isinstance(value, str) and not _metadata_text(value, METADATA_VALUE_CHARS):
            raise InputError(
                f"metadata {key}", f"{value!r} is not a value SageMaker accepts", METADATA_FIX
            )
    return properties


def _metadata_text(text: str, longest: int) -> bool:
    return 1 <= len(text) <= longest and all(_metadata_char(char) for char in text)


def _check_text(text: str, source: str) -> str:
    """A description SageMaker accepts: one line of up to 1024 characters."""
    if len(text) > DESCRIPTION_CHARS:
        raise InputError(
            source, f"has {len(text)} characters", f"shorten it to {DESCRIPTION_CHARS}"
        )
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InputError(source, "holds line breaks or control characters", "write one line")
    return text


def _check_image(image: str) -> None:
    if not image or len(image) > 255 or any(char.isspace() for char in image):
        raise InputError(
            "image",
            f"{image!r} is not an image URI",
            "give the serve image's URI in ECR (make push prints it)",
        )


def _check_model_uri(uri: str, source: str) -> None:
    parse_s3_uri(uri, source)
    if not uri.endswith(".tar.gz"):
        raise InputError(
            source, f"{uri} is not a model.tar.gz", "give the URI the training job wrote"
        )


def _instance_types(types: Sequence[Any], source: str) -> list[Any]:
    if isinstance(types, str):  # one type given where a list belongs
        types = [types]
    for instance_type in types:
        if isinstance(instance_type, str) and not instance_type.startswith("ml."):
            raise InputError(
                source,
                f"{instance_type!r} is not a SageMaker instance type",
                f"give types such as {DEFAULT_GPU_INSTANCE}",
            )
    return list(types)
