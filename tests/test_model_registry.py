"""The SageMaker Model Registry against the AWS API emulator: registering versions,
`earthseg models list|show|approve|reject`, and `earthseg deploy --model-package`.

moto in server mode stands in for SageMaker, S3 and ECR (tests/aws_emulator.py); the CLI
runs in-process and the assertions read what moto keeps and what it received.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.validate import validate_parameters

from earthseg import __version__
from earthseg.aws import lineage, registry
from earthseg.aws.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    image_digest,
    image_reference,
    lineage_metadata,
    metadata_value,
    model_package_request,
    source_commit,
)
from earthseg.aws.session import open_session
from earthseg.cli import main
from earthseg.errors import InputError

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SERVE_IMAGE = f"{REPOSITORY}/earthseg-serve:0.1.0-gpu"
TRAIN_IMAGE = f"{REPOSITORY}/earthseg-train:0.1.0-gpu"
BUCKET = "earthseg-test"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/earthseg-sagemaker"
GROUP = "dust"
JOB = "dust-20260131120000"
MODEL = f"s3://{BUCKET}/runs/{JOB}/output/model.tar.gz"  # where the training job wrote it
EVALUATION = f"s3://{BUCKET}/runs/dust/evaluation/evaluation.json"
DIGEST = "sha256:" + "ab" * 32
EVALUATION_JSON = {
    "format": "earthseg.evaluation/1",
    "metrics": {
        "test_iou": {"value": 0.9123},
        "test_f1": {"value": 0.9541},
        "test_precision": {"value": 0.93},
        "test_recall": {"value": 0.98},
    },
    "threshold": 0.5,
    "scenes": [
        {"scene": "dust_2024-05-01_1", "iou": 0.9, "f1": 0.94, "pixels": 4096, "positive": 800},
        {"scene": "dust_2024-05-03_2", "iou": 0.93, "f1": 0.96, "pixels": 4096, "positive": 610},
    ],
    "dataset": {"manifest_sha256": "f" * 64},
    "model": {"onnx_sha256": "e" * 64, "card": {"hyperparameters": {"epochs": "3"}}},
}
VERSION_ARN = re.compile(rf"^arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/dust/(\d+)$")


def earthseg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def aws(aws_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator with the test bucket, the model and its evaluation in S3.

    moto 5.2.5's UpdateModelPackage replaces a version's CustomerMetadataProperties with
    the request's, None when the request has none; SageMaker keeps them (the request's
    are added). Approving would then lose the lineage in moto only, so moto is made to
    keep them, as SageMaker does.
    """
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.update_model_package

    def keeping(self: SageMakerModelBackend, **request: Any) -> str:
        package = self.describe_model_package(request["model_package_arn"])
        kept = dict(package.customer_metadata_properties or {})
        request["customer_metadata_properties"] = {
            **kept,
            **(request.get("customer_metadata_properties") or {}),
        }
        return original(self, **request)

    monkeypatch.setattr(SageMakerModelBackend, "update_model_package", keeping)
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"runs/{JOB}/output/model.tar.gz", Body=b"model")
    s3.put_object(
        Bucket=BUCKET,
        Key=EVALUATION.removeprefix(f"s3://{BUCKET}/"),
        Body=json.dumps(EVALUATION_JSON).encode(),
    )
    yield aws_env


def session() -> boto3.Session:
    return open_session()


def metadata(**overrides: Any) -> dict[str, Any]:
    given = {
        "run": "dust",
        "manifest_sha256": "f" * 64,
        "imagery": "GIBS WMS, MODIS_Terra_CorrectedReflectance_TrueColor (2024-05-01..03)",
        "train_image": image_reference(TRAIN_IMAGE, DIGEST),
        "serve_image": image_reference(SERVE_IMAGE, DIGEST),
        "commit": "0e61a94e7d7bc127b82e50c2a5af0d2d905234c4",
        "training_job": JOB,
    }
    return lineage_metadata(**{**given, **overrides})


def register(approval: str = PENDING, **overrides: Any) -> registry.ModelVersion:
    request = model_package_request(
        **{
            "group": GROUP,
            "image": SERVE_IMAGE,
            "model_uri": MODEL,
            "evaluation_uri": EVALUATION,
            "metadata": metadata(),
            "approval": approval,
            "description": "test IoU 0.9123 over 2 scenes",
            **overrides,
        }
    )
    return registry.register(session(), request)


def nothing_deployed(aws: Emulator) -> bool:
    sagemaker = aws.client("sagemaker")
    return (
        sagemaker.list_models()["Models"] == []
        and sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        and sagemaker.list_endpoints()["Endpoints"] == []
    )


# --- the request ---------------------------------------------------------------------------


def test_the_request_is_a_valid_create_model_package_for_a_version() -> None:
    request = model_package_request(
        group=GROUP,
        image=SERVE_IMAGE,
        model_uri=MODEL,
        evaluation_uri=EVALUATION,
        metadata={"earthseg:run": "dust", "earthseg:training_job": None},
        description="test IoU 0.91",
    )
    assert request == {
        "ModelPackageGroupName": GROUP,
        "ModelPackageDescription": "test IoU 0.91",
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": SERVE_IMAGE, "ModelDataUrl": MODEL}],
            "SupportedContentTypes": [
                "image/tiff", "application/x-npy", "application/json", "image/png", "image/jpeg",
            ],
            "SupportedResponseMIMETypes": [
                "image/tiff", "application/geo+json", "application/json", "application/x-npy",
                "image/png",
            ],
            "SupportedRealtimeInferenceInstanceTypes": [
                "ml.g5.xlarge", "ml.g4dn.xlarge", "ml.m5.xlarge", "ml.c5.2xlarge",
            ],
            "SupportedTransformInstanceTypes": [
                "ml.m5.xlarge", "ml.c5.2xlarge", "ml.g4dn.xlarge", "ml.g5.xlarge",
            ],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": EVALUATION}
            }
        },
        "CustomerMetadataProperties": {"earthseg:run": "dust"},
    }  # fmt: skip
    # botocore's own check of the request against SageMaker's API model.
    operation = boto3.client("sagemaker", region_name=REGION).meta.service_model
    validate_parameters(request, operation.operation_model("CreateModelPackage").input_shape)
    bare = model_package_request(group=GROUP, image=SERVE_IMAGE, model_uri=MODEL)
    assert "ModelMetrics" not in bare and "CustomerMetadataProperties" not in bare
    assert "ModelPackageDescription" not in bare


def test_the_content_types_are_what_the_model_server_reads_and_answers() -> None:
    from earthseg.aws.transform import DEFAULT_INSTANCE
    from earthseg.serve.decoders import DECODERS
    from earthseg.serve.encoders import ENCODERS

    assert set(registry.CONTENT_TYPES) == set(DECODERS)
    assert set(registry.RESPONSE_TYPES) == set(ENCODERS)
    assert DEFAULT_INSTANCE in registry.TRANSFORM_INSTANCE_TYPES


def test_pipeline_variables_pass_through_untouched() -> None:
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.core.workflow.properties import Properties

    image = ParameterString(name="ServeImage")
    model = Properties(
        step_name="Train", path="ModelArtifacts.S3ModelArtifacts", shape_name="S3Uri"
    )
    evaluation = Join(on="/", values=["s3:/", BUCKET, "evaluation", "evaluation.json"])
    approval = ParameterString(name="ModelApprovalStatus", default_value=PENDING)
    digest = JsonGet(step_name="Evaluate", property_file="Evaluation", json_path="dataset.sha")
    job = Properties(step_name="Train", path="TrainingJobName", shape_name="TrainingJobName")
    group = ParameterString(name="ModelPackageGroup")
    description = Join(on=" ", values=["test IoU", digest])
    instance = ParameterString(name="ServeInstance")
    with pytest.raises(TypeError):
        str(image)  # what must never happen to them inside

    lineage = lineage_metadata(run="dust", manifest_sha256=digest, training_job=job)
    assert lineage["earthseg:manifest_sha256"] is digest
    assert lineage["earthseg:training_job"] is job
    request = model_package_request(
        group=group,
        image=image,
        model_uri=model,
        evaluation_uri=evaluation,
        metadata=lineage,
        approval=approval,
        description=description,
        realtime_instance_types=[instance],
    )
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container["Image"] is image and container["ModelDataUrl"] is model
    assert request["ModelPackageGroupName"] is group
    assert request["ModelApprovalStatus"] is approval
    assert request["ModelPackageDescription"] is description
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] is evaluation
    assert request["CustomerMetadataProperties"]["earthseg:manifest_sha256"] is digest
    assert request["CustomerMetadataProperties"]["earthseg:training_job"] is job
    (realtime,) = request["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"]
    assert realtime is instance


@pytest.mark.parametrize(
    ("change", "source", "words"),
    [
        ({"group": "dust_2026"}, "model package group", "not a model package group name"),
        ({"group": "d" * 64}, "model package group", "not a model package group name"),
        ({"approval": "approved"}, "approval", "PendingManualApproval"),
        ({"image": "earthseg serve"}, "image", "not an image URI"),
        ({"model_uri": f"s3://{BUCKET}/model/"}, "model data", "not a model.tar.gz"),
        ({"model_uri": "/tmp/model.tar.gz"}, "model data", "not an S3 URI"),
        ({"evaluation_uri": "evaluation.json"}, "evaluation", "not an S3 URI"),
        ({"description": "two\nlines"}, "description", "line breaks"),
        ({"metadata": {"earthseg:imagery": "GIBS (MODIS)"}}, "metadata earthseg:imagery", "_.:/"),
        ({"metadata": {"k" * 129: "v"}}, "metadata key", "up to 128"),
        ({"metadata": {"earthseg:run": "x" * 257}}, "metadata earthseg:run", "up to 256"),
        ({"realtime_instance_types": ["g5.xlarge"]}, "real-time instance types", "ml.g5.xlarge"),
    ],
)
def test_plain_values_sagemaker_would_refuse_are_refused_here(
    change: dict[str, Any], source: str, words: str
) -> None:
    given = {"group": GROUP, "image": SERVE_IMAGE, "model_uri": MODEL, **change}
    with pytest.raises(InputError) as refused:
        model_package_request(**given)
    assert refused.value.source.startswith(source)
    assert words in str(refused.value)


def test_lineage_metadata_holds_only_values_sagemaker_accepts() -> None:
    lineage = metadata(imagery="GIBS WMS, MODIS (2024-05-01..03); 4 scenes", run=None)
    assert lineage == {
        "earthseg:manifest_sha256": "f" * 64,
        "earthseg:imagery": "GIBS WMS MODIS 2024-05-01..03 4 scenes",
        "earthseg:train_image": f"{TRAIN_IMAGE}@{DIGEST}",
        "earthseg:serve_image": f"{SERVE_IMAGE}@{DIGEST}",
        "earthseg:source_commit": "0e61a94e7d7bc127b82e50c2a5af0d2d905234c4",
        "earthseg:training_job": JOB,
    }
    long = metadata_value("é" * 300)
    assert len(long) == 256 and long.endswith("...")
    assert lineage_metadata(run="", imagery="(;)") == {}
    assert image_reference(f"{SERVE_IMAGE}@{DIGEST}", DIGEST) == f"{SERVE_IMAGE}@{DIGEST}"
    assert image_reference(SERVE_IMAGE, None) == SERVE_IMAGE
    # What it makes, model_package_request takes.
    model_package_request(group=GROUP, image=SERVE_IMAGE, model_uri=MODEL, metadata=lineage)


# --- images and source ---------------------------------------------------------------------


def test_image_digest_asks_ecr_for_ecr_images_only(aws: Emulator) -> None:
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="earthseg-serve")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": 7, "digest": "sha256:" + "c" * 64},
            "layers": [],
        }
    )  # fmt: skip
    pushed = ecr.put_image(
        repositoryName="earthseg-serve", imageManifest=manifest, imageTag="0.1.0-gpu"
    )
    digest = pushed["image"]["imageId"]["imageDigest"]
    assert digest.startswith("sha256:")
    assert image_digest(session(), SERVE_IMAGE) == digest
    assert image_digest(session(), f"{REPOSITORY}/earthseg-serve@{DIGEST}") == DIGEST
    assert image_digest(session(), "earthseg-serve:cpu") is None
    assert image_digest(session(), "ghcr.io/team/earthseg-serve:0.1.0-gpu") is None
    for missing in (f"{REPOSITORY}/earthseg-serve:nope", TRAIN_IMAGE):
        with pytest.raises(InputError) as refused:
            image_digest(session(), missing)
        assert refused.value.source == missing and "make push" in refused.value.fix


def test_source_commit_is_the_checkouts_commit_or_the_version(tmp_path: Path) -> None:
    package = Path(registry.__file__).parents[1]
    head = subprocess.run(
        ["git", "-C", package, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", package, "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert source_commit() == (f"{head}-dirty" if changed else head)
    assert source_commit(tmp_path) == f"earthseg {__version__}"
    assert metadata_value(source_commit()) == source_commit()


# --- registering and reading ----------------------------------------------------------------


def test_a_version_is_registered_in_a_group_made_on_first_use_and_read_back(
    aws: Emulator,
) -> None:
    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    first = register()
    second = register(approval=APPROVED)
    (group,) = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert group["ModelPackageGroupName"] == GROUP
    assert len(aws.received("CreateModelPackageGroup")) == 1

    assert VERSION_ARN.match(first.arn) and VERSION_ARN.match(second.arn)
    assert (first.version, second.version) == (1, 2)
    assert (first.group, first.status, first.reason) == (GROUP, PENDING, "")
    assert second.status == APPROVED
    assert first.images == (SERVE_IMAGE,)
    assert first.model_data == (MODEL,)
    assert first.content_types == registry.CONTENT_TYPES
    assert first.response_types == registry.RESPONSE_TYPES
    assert first.realtime_instance_types == registry.REALTIME_INSTANCE_TYPES
    assert first.transform_instance_types == registry.TRANSFORM_INSTANCE_TYPES
    assert first.metrics_uri == EVALUATION
    assert first.description == "test IoU 0.9123 over 2 scenes"
    assert first.metadata == metadata()
    assert isinstance(first.created, datetime)


def test_versions_are_listed_in_order_with_their_status(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    arns = [register().arn, register(approval=APPROVED).arn, register(approval=REJECTED).arn]
    versions = registry.list_versions(session(), GROUP)
    assert [(v.version, v.arn, v.status) for v in versions] == [
        (1, arns[0], PENDING),
        (2, arns[1], APPROVED),
        (3, arns[2], REJECTED),
    ]
    code, out, err = earthseg(capsys, "models", "list", "--group", GROUP)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "model package group dust: 3 version(s)"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for line, arn, status in zip(lines[1:], arns, (PENDING, APPROVED, REJECTED), strict=True):
        number, shown_status, date, _, _, shown_arn = line.split()
        assert (number, shown_status, date, shown_arn) == (arn[-1], status, today, arn)
    code, out, err = earthseg(capsys, "models", "list")
    assert code == 0, err
    assert out.split()[0] == GROUP and "created" in out


def test_approve_and_reject_keep_the_reason_and_the_lineage(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = register(), register()
    reason = "IoU checked on the 2024 season by the field team"
    code, out, err = earthseg(capsys, "models", "approve", first.arn, "--reason", reason)
    assert code == 0, err
    assert out.splitlines() == [
        f"{first.arn}: Approved: {reason}",
        f"serve it: earthseg deploy --model-package {first.arn}",
    ]
    code, out, err = earthseg(
        capsys, "models", "reject", "--group", GROUP, "--version", "2", "--reason", "misses plumes"
    )
    assert code == 0, err
    assert out.splitlines() == [f"{second.arn}: Rejected: misses plumes"]
    assert aws.received("UpdateModelPackage") == [
        {"ModelPackageArn": first.arn, "ModelApprovalStatus": APPROVED,
         "ApprovalDescription": reason},
        {"ModelPackageArn": second.arn, "ModelApprovalStatus": REJECTED,
         "ApprovalDescription": "misses plumes"},
    ]  # fmt: skip
    approved = registry.describe_version(session(), first.arn)
    assert (approved.status, approved.reason) == (APPROVED, reason)
    assert approved.metadata == metadata()
    # Approving again without a reason clears the old one.
    code, _, err = earthseg(capsys, "models", "approve", second.arn)
    assert code == 0, err
    assert registry.describe_version(session(), second.arn).status_line() == APPROVED
    # A rejection says why.
    code, out, err = earthseg(capsys, "models", "reject", first.arn, "--reason", "  ")
    assert code == 2 and out == ""
    assert "--reason: is empty" in err


def test_the_latest_approved_version_is_the_newest_approved_one(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    register(approval=APPROVED)
    newest = register(approval=APPROVED)
    register()  # pending, newer still
    assert registry.latest_approved(session(), GROUP).arn == newest.arn
    code, out, err = earthseg(capsys, "models", "show", "--group", GROUP, "--latest-approved")
    assert code == 0, err
    assert out.splitlines()[0] == newest.arn


def test_show_prints_the_lineage_of_a_version(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.client("sagemaker").create_training_job(
        TrainingJobName=JOB,
        HyperParameters={"epochs": "20", "learning_rate": "0.001"},
        AlgorithmSpecification={"TrainingImage": TRAIN_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/runs"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    # The training job is found from the model data's path, without the metadata too.
    version = register(approval=APPROVED, metadata=metadata(training_job=None))
    # (moto knows no g5 instances for endpoints)
    code, out, err = earthseg(
        capsys, "deploy", "--model-package", version.arn, "--role", ROLE,
        "--instance-type", "ml.g4dn.xlarge",
    )  # fmt: skip
    assert code == 0, err
    endpoint = re.search(r"^endpoint:\s+(\S+) \(InService\)$", out, re.M)
    assert endpoint

    code, out, err = earthseg(capsys, "models", "show", version.arn)
    assert code == 0, err
    shown = [" ".join(line.split()) for line in out.splitlines()]
    expected = [
        version.arn,
        "version 1 of model package group dust",
        "status Approved",
        f"image {SERVE_IMAGE}",
        f"model data {MODEL}",
        "takes image/tiff, application/x-npy, application/json, image/png, image/jpeg",
        "trained on",
        "run dust",
        f"manifest {'f' * 64}",
        "imagery GIBS WMS MODIS_Terra_CorrectedReflectance_TrueColor 2024-05-01..03",
        f"train image {TRAIN_IMAGE}@{DIGEST}",
        f"serve image {SERVE_IMAGE}@{DIGEST}",
        "source 0e61a94e7d7bc127b82e50c2a5af0d2d905234c4",
        "training job",
        f"{JOB} (Completed, 1 x ml.g5.xlarge)",
        "hyperparameters (training job):",
        "epochs 20",
        "learning_rate 0.001",
        "metrics",
        f"from {EVALUATION}",
        "test_iou 0.9123",
        "test_f1 0.9541",
        "(threshold 0.5, 2 test scenes)",
        "deployed",
        f"endpoint {endpoint[1]} (InService, model {endpoint[1]})",
    ]
    assert [line for line in shown if line in expected] == expected, out


def test_show_says_what_it_cannot_find(aws: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    aws.client("s3").delete_object(Bucket=BUCKET, Key=EVALUATION.removeprefix(f"s3://{BUCKET}/"))
    version = register(metadata={})
    code, out, err = earthseg(capsys, "models", "show", "--group", GROUP, "--version", "1")
    assert code == 0, err
    shown = [" ".join(line.split()) for line in out.splitlines()]
    assert "(no earthseg metadata: not registered by earthseg pipeline)" in shown
    assert f"{JOB}: not found in {REGION}" in shown
    assert "is missing, or not a JSON object" in shown
    assert "(no endpoint serves it)" in shown
    assert shown[0] == version.arn


# --- deploying a version -------------------------------------------------------------------


def test_deploy_of_an_approved_version_serves_the_package(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register(approval=APPROVED)
    code, out, err = earthseg(
        capsys, "deploy", "--model-package", version.arn, "--role", ROLE, "--name", "dust",
        "--instance-type", "ml.m5.xlarge", "--workers", "2",
    )  # fmt: skip
    assert code == 0, err
    assert f"with model package dust version 1 ({SERVE_IMAGE})" in out
    (model,) = aws.received("CreateModel")
    name = model["ModelName"]
    assert re.fullmatch(r"dust-\d{4}(-\d\d){5}-\d{3}", name)
    assert model == {
        "ModelName": name,
        "Containers": [
            {
                "ModelPackageName": version.arn,
                "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
            }
        ],
        "ExecutionRoleArn": ROLE,
        "Tags": [{"Key": "earthseg:run", "Value": "dust"}],
    }
    sagemaker = aws.client("sagemaker")
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"]) == (name, "ml.m5.xlarge")
    assert [d.endpoint for d in lineage.deployments(session(), version)] == [name]

    # Rejecting it later says where it still serves.
    code, out, err = earthseg(capsys, "models", "reject", version.arn, "--reason", "drifted")
    assert code == 0, err
    assert (
        f"note: endpoint {name} still serves it; remove it: earthseg delete --endpoint {name}"
        in out
    )


def test_deploy_of_a_groups_latest_approved_version_asynchronously(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    register(approval=APPROVED)
    newest = register(approval=APPROVED)
    register(approval=REJECTED)
    code, _, err = earthseg(
        capsys, "deploy", "--group", GROUP, "--latest-approved", "--role", ROLE,
        "--instance-type", "ml.m5.xlarge", "--async", "--invocation-timeout", "900",
    )  # fmt: skip
    assert code == 0, err
    (model,) = aws.received("CreateModel")
    (container,) = model["Containers"]
    assert container["ModelPackageName"] == newest.arn
    assert container["Environment"]["SAGEMAKER_MODEL_SERVER_TIMEOUT"] == "900"
    (config,) = aws.received("CreateEndpointConfig")
    assert "AsyncInferenceConfig" in config


@pytest.mark.parametrize(
    ("status", "reason"), [(PENDING, ""), (REJECTED, "misses the thin plumes of 2024-05-03")]
)
def test_deploy_of_a_version_not_approved_is_refused_and_creates_nothing(
    aws: Emulator, capsys: pytest.CaptureFixture[str], status: str, reason: str
) -> None:
    version = register()
    if status == REJECTED:
        registry.set_approval(session(), version.arn, REJECTED, reason)
    code, out, err = earthseg(capsys, "deploy", "--model-package", version.arn, "--role", ROLE)
    assert code == 2 and out == ""
    assert f"--model-package {version.arn}: is {status}" in err
    assert reason in err
    assert f"earthseg models approve {version.arn}" in err
    assert nothing_deployed(aws)
    assert aws.received("CreateModel") == []


def test_bad_versions_and_groups_are_named_with_the_fix(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    register()
    other_region = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/dust/1"
    cases = [
        (["models", "show", "dust/1"], "ARN: 'dust/1' is not the ARN of a model package version",
         "earthseg models list --group NAME"),
        (["deploy", "--model-package", "arn:aws:sagemaker:us-east-1:1:model-package/dust",
          "--role", ROLE], "--model-package: ", "model-package/GROUP/VERSION"),
        (["models", "show", other_region], "is in eu-west-1", "--region eu-west-1"),
        (["models", "approve", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/dust/7"],
         "there is no model package version", "models list --group dust"),
        (["models", "list", "--group", "smoke"], "--group smoke: there is no model package group",
         "earthseg models list shows"),
        (["deploy", "--group", "smoke", "--latest-approved", "--role", ROLE],
         "there is no model package group smoke", "earthseg models list"),
        (["deploy", "--group", GROUP, "--latest-approved", "--role", ROLE],
         "--group dust: has no Approved version (it holds 1 PendingManualApproval)",
         "earthseg models approve ARN"),
        (["models", "show", "--group", GROUP, "--version", "9"], "has no version 9",
         "models list --group dust"),
        (["models", "show", "--group", GROUP], "needs one version", "models list --group dust"),
        (["models", "show"], "ARN: was not given", "--group NAME --version N"),
        (["models", "list", "--group", "dust_1"], "not a model package group name", "hyphens"),
        (["deploy", "--role", ROLE], "none was given", "--model-package ARN"),
        (["deploy", "--model", MODEL, "--role", ROLE], "--image: is needed with --model", "URI"),
        (["deploy", "--image", SERVE_IMAGE, "--model-package", "x", "--role", ROLE],
         "--image: does not go with --model-package", "drop --image"),
        (["deploy", "--group", GROUP, "--role", ROLE], "--group dust: needs --latest-approved",
         "--model-package ARN"),
        (["deploy", "--model", MODEL, "--group", GROUP, "--role", ROLE],
         "--model, --group: name what serves in different ways", "give one"),
    ]  # fmt: skip
    for argv, problem, fix in cases:
        code, out, err = earthseg(capsys, *argv)
        assert code == 2 and out == "", (argv, out, err)
        assert problem in err and "Fix:" in err and fix in err.split("Fix:")[1], (argv, err)
        assert "Traceback" not in err
    assert nothing_deployed(aws)
