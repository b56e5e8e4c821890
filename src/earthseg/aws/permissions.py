"""The IAM policies a run needs, made from its run.yaml for an administrator to grant: the
execution role's (what SageMaker jobs, endpoints and the SageMaker Pipeline run as) and
the caller's (the credentials the launcher runs with).

Locked-down accounts grant nothing broad, so each policy names the run's own resources
wherever IAM can scope an action: S3 under `aws.s3`, the SageMaker resources the run
names (`<name>-<timestamp>` jobs, models and endpoints; the pipeline and the model package
group by name; the jobs SageMaker Pipelines names `pipelines-*`), the ECR repositories of
the run's images, the KMS key, the VPC's subnets and security groups. Account, region
and partition come from the config (the role's ARN, `aws.region`, the images' ECR
hosts), without calling AWS.

The caller's policy is made from `LAUNCHER_CALLS`: one line per AWS API operation the
launcher calls (earthseg.aws, earthseg.cli, earthseg.shipping, and the SDK calls they
trigger), with the IAM action it needs and the kind of resource it acts on. So the
policy and the calls cannot drift apart: tests/test_iam_policy.py maps every request the
test suite's launcher commands send to the AWS emulator to its IAM action, and fails on
any action this policy lacks. The execution role's is `EXECUTION_ROLE_NEEDS`: what
SageMaker does as the role, which no launcher request shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earthseg.aws.async_inference import ASYNC_PREFIX
from earthseg.aws.logs import ENDPOINT_GROUPS, JOB_GROUPS
from earthseg.aws.role import ROLE_ENV, execution_role
from earthseg.aws.s3 import S3Uri, parse_s3_uri
from earthseg.aws.security import KMS_KEY_ARN
from earthseg.errors import InputError
from earthseg.shipping.registry import LOCAL_REPOSITORY, ecr_host_parts
from earthseg.train.tracking import ARN as TRACKING_ARN

if TYPE_CHECKING:
    from earthseg.aws.security import Vpc
    from earthseg.pipeline.config import RunConfig

POLICY_VERSION = "2012-10-17"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
PIPELINE_JOBS = "pipelines-*"  # SageMaker Pipelines names a step's job pipelines-<execution>-...
METRICS_NAMESPACE = "/aws/sagemaker/*"  # where SageMaker jobs put their CloudWatch metrics
MANAGED_POLICY_CHARS = 6144  # IAM's limit for a managed policy, whitespace not counted
POLICY_FILES = {"execution-role": "execution-role-policy.json", "caller": "caller-policy.json"}


@dataclass(frozen=True)
class Call:
    """An AWS API operation (botocore's service and operation names), the IAM actions it
    needs, and the kinds of resource they act on (`Scope` turns kinds into ARNs)."""

    feature: str
    service: str
    operation: str
    actions: tuple[str, ...]
    on: tuple[str, ...]


def _call(feature: str, service: str, operation: str, actions: str, on: str) -> Call:
    """A table line: `actions` and `on` space-separated."""
    return Call(feature, service, operation, tuple(actions.split()), tuple(on.split()))


# What the launcher calls, by feature. A new call needs its line here: the caller's policy
# is made from this table, and the test of the recorded requests fails without it. (STS
# GetCallerIdentity, which commands call first to check the credentials, needs no
# permission.)
DATA = "data in S3 under aws.s3: datasets, the export, models, results"
DEFAULT_BUCKET = "SageMaker's default bucket: asynchronous inference folders"
PIPELINE = "earthseg pipeline / tune: the SageMaker Pipeline, its executions and results"
TRAINING = "earthseg train: training jobs"
PROCESSING = "earthseg preprocess --processing: Processing jobs"
TUNING = (
    "earthseg tune: a tuning job (started directly, it is named after the run; a Tune "
    "step's, SageMaker Pipelines names) and its trials"
)
ENDPOINTS = "earthseg deploy / delete / invoke / detect: models and endpoints"
TRANSFORM = "earthseg transform / detect --transform: Batch Transform"
REGISTRY = "earthseg models and the pipeline's registration: the Model Registry"
TAGS = "tags on every resource a run creates (sagemaker:AddTags on create)"
LOGS = "earthseg logs and the logs of failed jobs: CloudWatch Logs"
PUSH = "make push / earthseg push: the images to ECR; their digests for the registry"
ROLE = "the execution role: passed to SageMaker, checked by the SDK first"
KMS = "SSE-KMS uploads and downloads, and resources encrypted with aws.kms_key"
MLFLOW = "tracking.uri as a SageMaker managed MLflow ARN: the tuning's parent run"

LAUNCHER_CALLS: tuple[Call, ...] = (
    _call(DATA, "s3", "HeadBucket", "s3:ListBucket", "run-bucket"),
    # The SDK looks for the bucket of a job's S3 root among the account's (its
    # Session.default_bucket: boto3's Bucket.creation_date).
    _call(DATA, "s3", "ListBuckets", "s3:ListAllMyBuckets", "any"),
    _call(DATA, "s3", "ListObjectsV2", "s3:ListBucket", "run-bucket"),
    _call(DATA, "s3", "PutObject", "s3:PutObject", "run-objects"),
    _call(DATA, "s3", "CreateMultipartUpload", "s3:PutObject", "run-objects"),
    _call(DATA, "s3", "UploadPart", "s3:PutObject", "run-objects"),
    _call(DATA, "s3", "CompleteMultipartUpload", "s3:PutObject", "run-objects"),
    _call(DATA, "s3", "AbortMultipartUpload", "s3:AbortMultipartUpload", "run-objects"),
    _call(DATA, "s3", "HeadObject", "s3:GetObject", "run-objects"),
    _call(DATA, "s3", "GetObject", "s3:GetObject", "run-objects"),
    _call(DEFAULT_BUCKET, "s3", "HeadBucket", "s3:ListBucket", "async-buckets"),
    _call(DEFAULT_BUCKET, "s3", "CreateBucket", "s3:CreateBucket", "default-bucket"),
    _call(DEFAULT_BUCKET, "s3", "PutObject", "s3:PutObject", "async-objects"),
    _call(DEFAULT_BUCKET, "s3", "HeadObject", "s3:GetObject", "async-objects"),
    _call(DEFAULT_BUCKET, "s3", "GetObject", "s3:GetObject", "async-objects"),
    _call(DEFAULT_BUCKET, "s3", "DeleteObject", "s3:DeleteObject", "async-objects"),
    _call(PIPELINE, "sagemaker", "DescribePipeline", "sagemaker:DescribePipeline", "pipeline"),
    _call(PIPELINE, "sagemaker", "CreatePipeline", "sagemaker:CreatePipeline", "pipeline"),
    _call(PIPELINE, "sagemaker", "UpdatePipeline", "sagemaker:UpdatePipeline", "pipeline"),
    _call(PIPELINE, "sagemaker", "ListTags", "sagemaker:ListTags", "pipeline"),
    _call(
        PIPELINE,
        "sagemaker",
        "StartPipelineExecution",
        "sagemaker:StartPipelineExecution",
        "pipeline",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "ListPipelineExecutions",
        "sagemaker:ListPipelineExecutions",
        "pipeline",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "DescribePipelineExecution",
        "sagemaker:DescribePipelineExecution",
        "pipeline-execution",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "ListPipelineExecutionSteps",
        "sagemaker:ListPipelineExecutionSteps",
        "pipeline-execution",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "ListPipelineParametersForExecution",
        "sagemaker:ListPipelineParametersForExecution",
        "pipeline-execution",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "DescribeProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "processing-job",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "DescribeTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "training-job",
    ),
    _call(
        PIPELINE,
        "sagemaker",
        "DescribeHyperParameterTuningJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "tuning-job",
    ),
    _call(
        TRAINING, "sagemaker", "CreateTrainingJob", "sagemaker:CreateTrainingJob", "training-job"
    ),
    _call(
        TRAINING,
        "sagemaker",
        "DescribeTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "training-job",
    ),
    _call(
        PROCESSING,
        "sagemaker",
        "CreateProcessingJob",
        "sagemaker:CreateProcessingJob",
        "processing-job",
    ),
    _call(
        PROCESSING,
        "sagemaker",
        "DescribeProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "processing-job",
    ),
    _call(
        TUNING,
        "sagemaker",
        "CreateHyperParameterTuningJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "run-tuning-job",
    ),
    _call(
        TUNING,
        "sagemaker",
        "ListTrainingJobsForHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
        "tuning-job",
    ),
    _call(TUNING, "sagemaker", "DescribeTrainingJob", "sagemaker:DescribeTrainingJob", "trial"),
    _call(ENDPOINTS, "sagemaker", "CreateModel", "sagemaker:CreateModel", "model"),
    _call(
        ENDPOINTS,
        "sagemaker",
        "CreateEndpointConfig",
        "sagemaker:CreateEndpointConfig",
        "endpoint-config",
    ),
    _call(
        ENDPOINTS,
        "sagemaker",
        "CreateEndpoint",
        "sagemaker:CreateEndpoint",
        "endpoint-creation",
    ),
    _call(ENDPOINTS, "sagemaker", "DescribeEndpoint", "sagemaker:DescribeEndpoint", "endpoint"),
    _call(
        ENDPOINTS,
        "sagemaker",
        "DescribeEndpointConfig",
        "sagemaker:DescribeEndpointConfig",
        "endpoint-config",
    ),
    _call(ENDPOINTS, "sagemaker", "DescribeModel", "sagemaker:DescribeModel", "model"),
    _call(ENDPOINTS, "sagemaker", "ListEndpoints", "sagemaker:ListEndpoints", "any"),
    _call(ENDPOINTS, "sagemaker", "DeleteEndpoint", "sagemaker:DeleteEndpoint", "endpoint"),
    _call(
        ENDPOINTS,
        "sagemaker",
        "DeleteEndpointConfig",
        "sagemaker:DeleteEndpointConfig",
        "endpoint-config",
    ),
    _call(ENDPOINTS, "sagemaker", "DeleteModel", "sagemaker:DeleteModel", "model"),
    _call(ENDPOINTS, "sagemaker-runtime", "InvokeEndpoint", "sagemaker:InvokeEndpoint", "endpoint"),
    _call(
        ENDPOINTS,
        "sagemaker-runtime",
        "InvokeEndpointAsync",
        "sagemaker:InvokeEndpointAsync",
        "endpoint",
    ),
    _call(TRANSFORM, "sagemaker", "CreateModel", "sagemaker:CreateModel", "model"),
    _call(
        TRANSFORM,
        "sagemaker",
        "CreateTransformJob",
        "sagemaker:CreateTransformJob",
        "transform-job",
    ),
    _call(
        TRANSFORM,
        "sagemaker",
        "DescribeTransformJob",
        "sagemaker:DescribeTransformJob",
        "transform-job",
    ),
    _call(TRANSFORM, "sagemaker", "DeleteModel", "sagemaker:DeleteModel", "model"),
    _call(
        REGISTRY,
        "sagemaker",
        "DescribeModelPackageGroup",
        "sagemaker:DescribeModelPackageGroup",
        "model-package-group",
    ),
    _call(
        REGISTRY,
        "sagemaker",
        "CreateModelPackageGroup",
        "sagemaker:CreateModelPackageGroup",
        "model-package-group",
    ),
    _call(
        REGISTRY,
        "sagemaker",
        "CreateModelPackage",
        "sagemaker:CreateModelPackage",
        "model-package model-package-group",
    ),
    _call(
        REGISTRY,
        "sagemaker",
        "DescribeModelPackage",
        "sagemaker:DescribeModelPackage",
        "model-package",
    ),
    _call(
        REGISTRY,
        "sagemaker",
        "UpdateModelPackage",
        "sagemaker:UpdateModelPackage",
        "model-package",
    ),
    _call(
        REGISTRY, "sagemaker", "ListModelPackageGroups", "sagemaker:ListModelPackageGroups", "any"
    ),
    _call(REGISTRY, "sagemaker", "ListModelPackages", "sagemaker:ListModelPackages", "any"),
    _call(
        TAGS,
        "sagemaker",
        "AddTags",
        "sagemaker:AddTags",
        "pipeline training-job processing-job run-tuning-job model endpoint-config endpoint "
        "transform-job model-package-group model-package",
    ),
    _call(LOGS, "logs", "DescribeLogStreams", "logs:DescribeLogStreams", "log-groups"),
    _call(LOGS, "logs", "GetLogEvents", "logs:GetLogEvents", "log-groups"),
    _call(LOGS, "logs", "FilterLogEvents", "logs:FilterLogEvents", "log-groups"),
    _call(PUSH, "ecr", "GetAuthorizationToken", "ecr:GetAuthorizationToken", "any"),
    _call(PUSH, "ecr", "DescribeRepositories", "ecr:DescribeRepositories", "repositories"),
    _call(PUSH, "ecr", "CreateRepository", "ecr:CreateRepository", "repositories"),
    _call(PUSH, "ecr", "DescribeImages", "ecr:DescribeImages", "repositories"),
    # The Docker engine's pushes go to the registry API, which IAM authorizes as these.
    _call(
        PUSH,
        "ecr",
        "registry push",
        "ecr:BatchCheckLayerAvailability ecr:InitiateLayerUpload ecr:UploadLayerPart "
        "ecr:CompleteLayerUpload ecr:PutImage ecr:BatchGetImage",
        "repositories",
    ),
    _call(ROLE, "iam", "PassRole", "iam:PassRole", "role-passed"),
    _call(ROLE, "iam", "GetRole", "iam:GetRole", "role"),
    _call(ROLE, "iam", "SimulatePrincipalPolicy", "iam:SimulatePrincipalPolicy", "role"),
    # S3 asks KMS with the caller's credentials for SSE-KMS objects; SageMaker asks it (and
    # makes grants) as the caller for the volumes and outputs of what the caller creates.
    _call(KMS, "kms", "GenerateDataKey", "kms:GenerateDataKey", "kms-key"),
    _call(KMS, "kms", "Decrypt", "kms:Decrypt", "kms-key"),
    _call(KMS, "kms", "DescribeKey", "kms:DescribeKey", "kms-key"),
    _call(KMS, "kms", "CreateGrant", "kms:CreateGrant", "kms-grant"),
    _call(
        MLFLOW,
        "sagemaker-mlflow",
        "MLflow REST API",
        "sagemaker-mlflow:Get* sagemaker-mlflow:Search* sagemaker-mlflow:Create* "
        "sagemaker-mlflow:Log* sagemaker-mlflow:Set* sagemaker-mlflow:UpdateRun",
        "mlflow-server",
    ),
)


@dataclass(frozen=True)
class Need:
    """What SageMaker does as the execution role: IAM actions on a kind of resource."""

    feature: str
    actions: tuple[str, ...]
    on: str


def _need(feature: str, actions: str, on: str) -> Need:
    return Need(feature, tuple(actions.split()), on)


EXECUTION_ROLE_NEEDS: tuple[Need, ...] = (
    _need("jobs read and write the run's data", "s3:ListBucket", "run-listing"),
    _need(
        "jobs read and write the run's data",
        "s3:GetObject s3:PutObject s3:DeleteObject s3:AbortMultipartUpload",
        "run-objects",
    ),
    _need(
        "asynchronous endpoints read requests and write answers", "s3:ListBucket", "async-listing"
    ),
    _need(
        "asynchronous endpoints read requests and write answers",
        "s3:GetObject s3:PutObject s3:AbortMultipartUpload",
        "async-objects",
    ),
    _need(
        "jobs and endpoints pull the images",
        "ecr:BatchGetImage ecr:GetDownloadUrlForLayer ecr:BatchCheckLayerAvailability",
        "repositories",
    ),
    _need("jobs and endpoints pull the images", "ecr:GetAuthorizationToken", "any"),
    _need(
        "volumes, outputs and S3 objects under aws.kms_key",
        "kms:Decrypt kms:Encrypt kms:GenerateDataKey* kms:DescribeKey",
        "kms-key",
    ),
    _need("volumes, outputs and S3 objects under aws.kms_key", "kms:CreateGrant", "kms-grant"),
    _need(
        "jobs and endpoints write their logs",
        "logs:CreateLogGroup logs:CreateLogStream logs:PutLogEvents logs:DescribeLogStreams",
        "log-groups",
    ),
    _need("jobs and endpoints put their metrics", "cloudwatch:PutMetricData", "metrics"),
    _need(
        "jobs and models in the VPC: their network interfaces",
        "ec2:CreateNetworkInterface",
        "vpc-interfaces",
    ),
    _need(
        "jobs and models in the VPC: their network interfaces",
        "ec2:CreateNetworkInterfacePermission ec2:DeleteNetworkInterface "
        "ec2:DeleteNetworkInterfacePermission",
        "network-interfaces",
    ),
    _need(
        "jobs and models in the VPC: their network interfaces",
        "ec2:DescribeNetworkInterfaces ec2:DescribeVpcs ec2:DescribeDhcpOptions "
        "ec2:DescribeSubnets ec2:DescribeSecurityGroups",
        "vpc-description",
    ),
    _need(
        "the SageMaker Pipeline runs its steps as the role",
        "sagemaker:CreateProcessingJob sagemaker:DescribeProcessingJob "
        "sagemaker:StopProcessingJob sagemaker:AddTags",
        "pipeline-processing-job",
    ),
    _need(
        "the SageMaker Pipeline runs its steps as the role",
        "sagemaker:CreateTrainingJob sagemaker:DescribeTrainingJob sagemaker:StopTrainingJob "
        "sagemaker:AddTags",
        "pipeline-training-job",
    ),
    _need(
        "the SageMaker Pipeline runs its steps as the role",
        "sagemaker:CreateHyperParameterTuningJob sagemaker:DescribeHyperParameterTuningJob "
        "sagemaker:StopHyperParameterTuningJob "
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob sagemaker:AddTags",
        "tuning-job",
    ),
    _need(
        "the SageMaker Pipeline runs its steps as the role",
        "sagemaker:CreateModelPackage sagemaker:DescribeModelPackage sagemaker:AddTags",
        "model-package",
    ),
    _need(
        "the SageMaker Pipeline runs its steps as the role",
        "sagemaker:CreateModelPackage sagemaker:DescribeModelPackageGroup",
        "model-package-group",
    ),
    _need("the SageMaker Pipeline passes the role to its jobs", "iam:PassRole", "role-passed"),
    _need(
        "the training job tracks to a SageMaker managed MLflow",
        "sagemaker-mlflow:Get* sagemaker-mlflow:Search* sagemaker-mlflow:Create* "
        "sagemaker-mlflow:Log* sagemaker-mlflow:Set* sagemaker-mlflow:UpdateRun",
        "mlflow-server",
    ),
)


@dataclass(frozen=True)
class Grant:
    """Resources, and the condition (None: none) under which actions on them are allowed."""

    resources: tuple[str, ...]
    condition: Mapping[str, Any] | None = None

    def key(self) -> tuple[tuple[str, ...], str]:
        return self.resources, json.dumps(self.condition, sort_keys=True)


@dataclass(frozen=True)
class Scope:
    """A run's resources, as IAM names them."""

    run: str
    partition: str
    region: str
    account: str
    role: str  # the execution role's ARN
    root: S3Uri  # aws.s3
    group: str  # the model package group
    repositories: tuple[str, ...]  # ECR repository ARNs of the run's images
    kms_key: str | None
    vpc: Vpc | None
    async_folders: tuple[S3Uri, ...]  # deploy's asynchronous answers and failures, if given
    tracking_server: str | None  # a SageMaker managed MLflow ARN

    def grants(self, kind: str) -> list[Grant]:
        """What a kind of resource (a `Call`'s or `Need`'s `on`) is for this run; nothing
        for a kind the run has none of (a key, a VPC, a tracking server not set)."""
        return KINDS[kind](self)

    # --- S3 -------------------------------------------------------------------------

    def bucket_arn(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"

    def objects_arn(self, folder: S3Uri, pattern: str = "*") -> str:
        return self.bucket_arn(folder.bucket) + "/" + folder.key_prefix + pattern

    @property
    def default_bucket(self) -> S3Uri:
        """SageMaker's default bucket, where asynchronous endpoints keep requests and
        answers unless told otherwise (earthseg.aws.async_inference)."""
        return S3Uri(f"sagemaker-{self.region}-{self.account}", ASYNC_PREFIX)

    def listing(self, folder: S3Uri, pattern: str, if_exists: bool) -> Grant:
        """ListBucket on `folder`'s bucket, for keys under it matching `pattern`.
        `if_exists`: also requests without a prefix, which is how HeadBucket (which the
        launcher calls to check a bucket) asks."""
        if not folder.key:
            return Grant((self.bucket_arn(folder.bucket),))
        operator = "StringLikeIfExists" if if_exists else "StringLike"
        prefixes = [folder.key, folder.key_prefix + pattern]
        return Grant((self.bucket_arn(folder.bucket),), {operator: {"s3:prefix": prefixes}})

    def async_grants(self, objects: bool, if_exists: bool) -> list[Grant]:
        endpoints = f"{self.run}-*"
        folders = [(self.default_bucket, endpoints), *((f, "*") for f in self.async_folders)]
        if objects:
            return [Grant(tuple(self.objects_arn(folder, pattern) for folder, pattern in folders))]
        return [self.listing(folder, pattern, if_exists) for folder, pattern in folders]

    # --- SageMaker, logs, ECR, KMS, EC2 ---------------------------------------------

    def sagemaker_arns(self, kind: str, *names: str) -> tuple[str, ...]:
        """ARNs of SageMaker resources of `kind` named `names` (patterns). SageMaker
        writes names in ARNs in lower case: both forms are given for a name with capitals."""
        spelled = dict.fromkeys(spelling for name in names for spelling in (name.lower(), name))
        prefix = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:{kind}/"
        return tuple(prefix + name for name in spelled)

    def named(self, *kinds: str) -> list[Grant]:
        """The run's resources of `kinds`, named `<run>-<timestamp>`."""
        pattern = f"{self.run}-*"
        return [Grant(tuple(arn for kind in kinds for arn in self.sagemaker_arns(kind, pattern)))]

    def log_groups(self) -> list[Grant]:
        """The log groups of SageMaker's jobs, and those of the run's endpoints."""
        prefix = f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:"
        groups = [f"{group}:*" for group in JOB_GROUPS.values()]
        groups.append(f"{ENDPOINT_GROUPS}/{self.run}-*")
        return [Grant(tuple(prefix + group for group in groups))]

    def key(self, condition: Mapping[str, Any] | None = None) -> list[Grant]:
        """The KMS key: its ARN; an alias authorizes nothing as a resource, so keys are
        matched by the alias they carry (kms:ResourceAliases)."""
        if self.kms_key is None:
            return []
        conditions: dict[str, Any] = dict(condition or {})
        region, account, name = self.region, self.account, self.kms_key
        if KMS_KEY_ARN.match(name):
            _, _, _, region, account, name = name.split(":", 5)
        if name.startswith("alias/"):
            conditions["ForAnyValue:StringEquals"] = {"kms:ResourceAliases": name}
            name = "key/*"
        elif not name.startswith("key/"):
            name = f"key/{name}"
        arn = f"arn:{self.partition}:kms:{region}:{account}:{name}"
        return [Grant((arn,), conditions or None)]

    def ec2_arn(self, kind: str, name: str) -> str:
        return f"arn:{self.partition}:ec2:{self.region}:{self.account}:{kind}/{name}"

    def interfaces(self, with_vpc: bool) -> list[Grant]:
        if self.vpc is None:
            return []
        arns = [self.ec2_arn("network-interface", "*")]
        if with_vpc:
            arns += [self.ec2_arn("subnet", subnet) for subnet in self.vpc.subnets]
            arns += [self.ec2_arn("security-group", group) for group in self.vpc.security_groups]
        return [Grant(tuple(arns))]


ANY = Grant(("*",))

KINDS: dict[str, Callable[[Scope], list[Grant]]] = {
    "any": lambda scope: [ANY],
    "run-bucket": lambda scope: [scope.listing(scope.root, "*", if_exists=True)],
    "run-listing": lambda scope: [scope.listing(scope.root, "*", if_exists=False)],
    "run-objects": lambda scope: [Grant((scope.objects_arn(scope.root),))],
    "default-bucket": lambda scope: [Grant((scope.bucket_arn(scope.default_bucket.bucket),))],
    "async-buckets": lambda scope: scope.async_grants(objects=False, if_exists=True),
    "async-listing": lambda scope: scope.async_grants(objects=False, if_exists=False),
    "async-objects": lambda scope: scope.async_grants(objects=True, if_exists=False),
    "pipeline": lambda scope: [Grant(scope.sagemaker_arns("pipeline", scope.run))],
    "pipeline-execution": lambda scope: [
        Grant(scope.sagemaker_arns("pipeline", f"{scope.run}/execution/*"))
    ],
    "training-job": lambda scope: [
        Grant(scope.sagemaker_arns("training-job", f"{scope.run}-*", PIPELINE_JOBS))
    ],
    "processing-job": lambda scope: [
        Grant(scope.sagemaker_arns("processing-job", f"{scope.run}-*", PIPELINE_JOBS))
    ],
    "pipeline-training-job": lambda scope: [
        Grant(scope.sagemaker_arns("training-job", PIPELINE_JOBS))
    ],
    "pipeline-processing-job": lambda scope: [
        Grant(scope.sagemaker_arns("processing-job", PIPELINE_JOBS))
    ],
    # SageMaker Pipelines chooses a Tune step's tuning job name, and its trials are named
    # after it: neither carries the run's name.
    "tuning-job": lambda scope: [Grant(scope.sagemaker_arns("hyper-parameter-tuning-job", "*"))],
    "run-tuning-job": lambda scope: scope.named("hyper-parameter-tuning-job"),
    "trial": lambda scope: [Grant(scope.sagemaker_arns("training-job", "*"))],
    "model": lambda scope: scope.named("model"),
    "endpoint-config": lambda scope: scope.named("endpoint-config"),
    "endpoint": lambda scope: scope.named("endpoint"),
    # CreateEndpoint acts on both, and a statement must allow it on both.
    "endpoint-creation": lambda scope: scope.named("endpoint", "endpoint-config"),
    "transform-job": lambda scope: scope.named("transform-job"),
    "model-package-group": lambda scope: [
        Grant(scope.sagemaker_arns("model-package-group", scope.group))
    ],
    "model-package": lambda scope: [
        Grant(scope.sagemaker_arns("model-package", f"{scope.group}/*"))
    ],
    "log-groups": Scope.log_groups,
    "metrics": lambda scope: [
        Grant(("*",), {"StringLike": {"cloudwatch:namespace": METRICS_NAMESPACE}})
    ],
    "repositories": lambda scope: [Grant(scope.repositories)] if scope.repositories else [],
    "role": lambda scope: [Grant((scope.role,))],
    "role-passed": lambda scope: [
        Grant((scope.role,), {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}})
    ],
    "kms-key": lambda scope: scope.key(),
    "kms-grant": lambda scope: scope.key({"Bool": {"kms:GrantIsForAWSResource": "true"}}),
    "vpc-interfaces": lambda scope: scope.interfaces(with_vpc=True),
    "network-interfaces": lambda scope: scope.interfaces(with_vpc=False),
    "vpc-description": lambda scope: [ANY] if scope.vpc is not None else [],
    "mlflow-server": lambda scope: (
        [Grant((scope.tracking_server,))] if scope.tracking_server else []
    ),
}


# --- the policies ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDocument:
    """A policy to hand to an administrator: what it is for, and the document."""

    name: str  # "execution-role" or "caller"
    heading: str
    document: dict[str, Any]

    @property
    def file_name(self) -> str:
        return POLICY_FILES[self.name]

    def text(self) -> str:
        return json.dumps(self.document, indent=2) + "\n"


def run_scope(config: RunConfig) -> Scope:
    """The run's resources from its config alone (and AWS_REGION, SAGEMAKER_ROLE); an
    InputError naming what to set when the role, the region or the S3 location cannot
    be found there. Images not set yet are the repositories `make push` makes in the
    role's account and the run's region."""
    if not config.role:
        raise InputError(
            "aws.role",
            f"is not set, nor {ROLE_ENV}: the policies are for the execution role and its account",
            f"set aws.role to the execution role's ARN (arn:aws:iam::ACCOUNT:role/NAME), or "
            f"export {ROLE_ENV}",
        )
    role = execution_role(config.role, "aws.role" if config.aws.role else ROLE_ENV)
    _, partition, _, _, account, _ = role.split(":", 5)
    images = {"train": config.train.image, "serve": config.deploy.image}
    region = (
        config.aws.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    region = region or next((found[1] for found in map(_ecr, images.values()) if found), None)
    if not region:
        raise InputError(
            "aws.region",
            "is not set, nor AWS_REGION, and the images are not in ECR: the policies name "
            "the region of every resource",
            "set aws.region in the config (or export AWS_REGION)",
        )
    if not config.aws.s3:
        raise InputError(
            "aws.s3",
            "is not set: the policies grant the run's S3 location",
            "set aws.s3 to the s3://bucket/prefix the run reads and writes",
        )
    repositories = []
    for role_name, image in images.items():
        uri = image or f"{account}.dkr.ecr.{region}.amazonaws.com/" + LOCAL_REPOSITORY.format(
            role=role_name
        )
        found = _ecr(uri)
        if found is not None:
            image_account, image_region, repository = found
            repositories.append(
                f"arn:{partition}:ecr:{image_region}:{image_account}:repository/{repository}"
            )
    tracking = config.tracking_uri(local=False)
    return Scope(
        run=config.name,
        partition=partition,
        region=region,
        account=account,
        role=role,
        root=parse_s3_uri(config.aws.s3, "aws.s3"),
        group=config.model_package_group,
        repositories=tuple(dict.fromkeys(repositories)),
        kms_key=config.aws.kms_key,
        vpc=config.aws.vpc,
        async_folders=_async_folders(config),
        tracking_server=tracking if tracking and TRACKING_ARN.fullmatch(tracking) else None,
    )


def caller_policy(scope: Scope) -> dict[str, Any]:
    """The launcher's policy: every line of `LAUNCHER_CALLS`, on the run's resources."""
    return _policy([(call.actions, kind) for call in LAUNCHER_CALLS for kind in call.on], scope)


def execution_role_policy(scope: Scope) -> dict[str, Any]:
    """The execution role's policy: every line of `EXECUTION_ROLE_NEEDS`, on the run's
    resources."""
    return _policy([(need.actions, need.on) for need in EXECUTION_ROLE_NEEDS], scope)


def run_policies(config: RunConfig, which: str | None = None) -> list[PolicyDocument]:
    """`earthseg iam-policy`: the execution role's and the caller's policies for a run
    (`which`: only "execution-role" or "caller")."""
    scope = run_scope(config)
    documents = [
        (
            "execution-role",
            f"execution role {scope.role}: what SageMaker jobs, endpoints and the SageMaker "
            f"Pipeline of run {scope.run} run as",
            execution_role_policy(scope),
        ),
        (
            "caller",
            f"caller: the credentials that run earthseg for run {scope.run} (launch, follow, "
            "deploy, invoke, push)",
            caller_policy(scope),
        ),
    ]
    return [
        PolicyDocument(name, heading + _size_note(document), document)
        for name, heading, document in documents
        if which in (None, name)
    ]


def _size_note(document: dict[str, Any]) -> str:
    """What to do with a policy too long to be a managed policy."""
    size = len(json.dumps(document, separators=(",", ":")))
    if size <= MANAGED_POLICY_CHARS:
        return ""
    return (
        f" ({size} characters: over the {MANAGED_POLICY_CHARS} of a managed policy, attach it "
        "as a role's inline policy)"
    )


def _policy(rows: list[tuple[tuple[str, ...], str]], scope: Scope) -> dict[str, Any]:
    """One statement per set of resources and condition, its actions sorted; a kind the
    run has nothing of adds nothing. (No Sids: they would take a tenth of the 6,144
    characters a managed policy may have.)"""
    statements: dict[tuple[tuple[str, ...], str], tuple[Grant, set[str]]] = {}
    for actions, kind in rows:
        for grant in scope.grants(kind):
            statements.setdefault(grant.key(), (grant, set()))[1].update(actions)
    body = []
    for grant, granted in statements.values():
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": sorted(granted),
            "Resource": list(grant.resources) if len(grant.resources) > 1 else grant.resources[0],
        }
        if grant.condition:
            statement["Condition"] = grant.condition
        body.append(statement)
    return {"Version": POLICY_VERSION, "Statement": body}


def _ecr(uri: str | None) -> tuple[str, str, str] | None:
    """(account, region, repository) of an ECR image URI
    (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:TAG|@DIGEST]`), None for any other."""
    host, _, path = (uri or "").partition("/")
    parts = ecr_host_parts(host)
    if parts is None or not path:
        return None
    path = path.partition("@")[0]
    folder, _, last = path.rpartition("/")
    repository = "/".join(part for part in (folder, last.partition(":")[0]) if part)
    return parts[0], parts[1], repository


def _async_folders(config: RunConfig) -> tuple[S3Uri, ...]:
    """The asynchronous endpoint's answer and failure folders, when the deploy section
    names them (AsyncOptions' output_path and failure_path)."""
    folders = []
    for key in ("output_path", "failure_path"):
        value = getattr(config.deploy, key, None)
        if value:
            folders.append(parse_s3_uri(str(value), f"deploy.{key}"))
    return tuple(folders)


def write_policies(documents: list[PolicyDocument], folder: Path) -> list[Path]:
    """Each document as JSON in `folder` (execution-role-policy.json, caller-policy.json)."""
    from earthseg.atomic import atomic_file

    written = []
    for document in documents:
        path = Path(folder) / document.file_name
        with atomic_file(path) as partial:
            partial.write_text(document.text())
        written.append(path)
    return written
