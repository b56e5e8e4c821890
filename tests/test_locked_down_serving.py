"""Serving in a locked-down account, against the AWS API emulator: every model, endpoint
config, endpoint and transform job earthseg creates carries the VPC, network isolation,
the KMS keys and the tags given on the command line, and what it uploads to S3 is SSE-KMS.

The requests are read as moto received them (tests/aws_emulator.py); S3's server-side
encryption from head_object, which moto answers with the settings each object was put with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.async_host import async_host
from tests.test_async import scene  # noqa: F401  (a fixture)
from tests.test_gpu_hosts import current_instance_types  # noqa: F401  (a fixture)
from tests.test_launch import (  # noqa: F401  (fixtures: dataset, export_and_dataset)
    BUCKET,
    DEPLOY,
    dataset,
    deployed_name,
    earthseg,
    export_and_dataset,
    make_bucket,
)
from tests.test_transform import put, transform

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
GROUPS = ["sg-0123456789abcdef0"]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOCKED_DOWN = (
    "--subnets", ",".join(SUBNETS), "--security-groups", ",".join(GROUPS),
    "--kms-key", KEY, "--network-isolation", "--tag", "project=dust", "--tag", "cost-centre=4711",
)  # fmt: skip
VPC = {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}
TAGS = [
    {"Key": "earthseg:run", "Value": "dust"},  # the base name, --name
    {"Key": "project", "Value": "dust"},
    {"Key": "cost-centre", "Value": "4711"},
]
LOCKED_DOWN_MODEL = {"VpcConfig": VPC, "EnableNetworkIsolation": True, "Tags": TAGS}
NVME = "kms_key: not sent as {field}: ml.g5.xlarge stores on NVMe instance storage"


def sse(aws: Emulator, bucket: str, key: str) -> tuple[str | None, str | None]:
    head = aws.client("s3").head_object(Bucket=bucket, Key=key)
    return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")


def serving_keys(request: dict[str, Any]) -> dict[str, Any]:
    """What a CreateModel request says of the serving container's network, and its tags."""
    return {key: request.get(key) for key in LOCKED_DOWN_MODEL}


def test_an_async_deploy_is_locked_down_and_invoke_encrypts_the_scene_it_sends(
    aws_env: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    scene: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    code, out, err = earthseg(
        capsys, *DEPLOY, "--name", "dust", "--instance-type", "ml.m5.xlarge", "--async",
        *LOCKED_DOWN,
    )  # fmt: skip
    assert code == 0, err
    name = deployed_name(out)
    (model,) = aws_env.received("CreateModel")
    assert serving_keys(model) == LOCKED_DOWN_MODEL and model["ModelName"] == name
    (config,) = aws_env.received("CreateEndpointConfig")
    assert config["KmsKeyId"] == KEY  # the instances' ML storage volume
    assert config["AsyncInferenceConfig"]["OutputConfig"]["KmsKeyId"] == KEY  # the answers
    assert config["Tags"] == TAGS
    (endpoint,) = aws_env.received("CreateEndpoint")
    assert endpoint == {"EndpointName": name, "EndpointConfigName": name, "Tags": TAGS}
    assert "kms_key" not in out  # nothing left out

    # The scene goes to S3 under the key; SageMaker never answers here, so it stays.
    with async_host(aws_env, monkeypatch, url=None) as stalled:
        code, _, err = earthseg(
            capsys, "invoke", "--async", "--endpoint", name, "--image", str(scene),
            "--out", str(tmp_path / "mask.tif"), "--kms-key", KEY, "--wait-minutes", "0.005",
        )  # fmt: skip
    assert code == 2 and "gave no answer" in err, err
    (request,) = stalled.requests
    bucket, _, key = (request.headers["input_location"] or "").removeprefix("s3://").partition("/")
    assert sse(aws_env, bucket, key) == ("aws:kms", KEY)

    argv = ["invoke", "--endpoint", name, "--image", str(scene), "--out", str(tmp_path / "m.tif")]
    code, _, err = earthseg(capsys, *argv, "--kms-key", KEY)
    assert code == 2 and "--kms-key: they ask an asynchronous endpoint" in err, err
    code, _, err = earthseg(capsys, *argv, "--async", "--kms-key", "my-key")
    assert code == 2 and "--kms-key: 'my-key' is not a KMS key" in err, err


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.g5.xlarge"])
@pytest.mark.usefixtures("current_instance_types")
def test_a_real_time_deploy_keys_its_volume_where_sagemaker_takes_a_key(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], instance_type: str
) -> None:
    """g5 instances keep their data on NVMe instance storage, encrypted by the hardware, for
    which SageMaker refuses a KmsKeyId: it is left out there, and said so."""
    code, out, err = earthseg(
        capsys, *DEPLOY, "--name", "dust", "--instance-type", instance_type, *LOCKED_DOWN
    )
    assert code == 0, err
    (model,) = aws_env.received("CreateModel")
    assert serving_keys(model) == LOCKED_DOWN_MODEL
    (config,) = aws_env.received("CreateEndpointConfig")
    assert config["Tags"] == TAGS and "AsyncInferenceConfig" not in config
    (endpoint,) = aws_env.received("CreateEndpoint")
    assert endpoint["Tags"] == TAGS
    if instance_type == "ml.m5.xlarge":
        assert config["KmsKeyId"] == KEY
        assert "kms_key" not in out
    else:
        assert "KmsKeyId" not in config
        assert NVME.format(field="KmsKeyId") in out


def test_serverless_takes_no_vpc_isolation_or_volume_key(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """SageMaker offers serverless endpoints neither a VPC nor network isolation: refused
    before anything is created. Their tags are kept; a key has no volume to encrypt."""
    code, _, err = earthseg(capsys, *DEPLOY, "--serverless", *LOCKED_DOWN)
    assert code == 2
    assert "--serverless: cannot run in a VPC or with network isolation" in err
    assert aws_env.received("CreateModel") == []
    code, out, err = earthseg(
        capsys, *DEPLOY, "--name", "dust", "--serverless", "--kms-key", KEY, "--tag", "project=dust"
    )
    assert code == 0, err
    (model,) = aws_env.received("CreateModel")
    assert "VpcConfig" not in model and "EnableNetworkIsolation" not in model
    (config,) = aws_env.received("CreateEndpointConfig")
    assert "KmsKeyId" not in config and config["Tags"] == TAGS[:2]
    assert "kms_key: not sent as KmsKeyId: a serverless endpoint has no storage volume" in out


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.g5.xlarge"])
def test_a_transform_job_and_its_model_are_locked_down(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], instance_type: str
) -> None:
    """The launcher uploads no scenes for a transform (they are in S3 already); SageMaker
    writes the answers under TransformOutput's key."""
    put(aws_env, {"scenes/a.tif": 2048})
    code, out, err = earthseg(
        capsys, *transform("--name", "dust", "--instance-type", instance_type, *LOCKED_DOWN)
    )
    assert code == 0, err
    (model,) = aws_env.received("CreateModel")
    assert serving_keys(model) == LOCKED_DOWN_MODEL
    (job,) = aws_env.received("CreateTransformJob")
    assert job["TransformOutput"]["KmsKeyId"] == KEY
    assert job["Tags"] == TAGS
    if instance_type == "ml.m5.xlarge":
        assert job["TransformResources"]["VolumeKmsKeyId"] == KEY
    else:
        assert "VolumeKmsKeyId" not in job["TransformResources"]
        assert NVME.format(field="VolumeKmsKeyId") in out


def test_upload_with_a_key_stores_every_object_sse_kms(
    aws_env: Emulator,
    dataset: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_bucket(aws_env)
    code, _, err = earthseg(
        capsys, "upload", "--data", str(dataset), "--to", f"s3://{BUCKET}/dust", "--kms-key", KEY
    )
    assert code == 0, err
    listing = aws_env.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="dust/")["Contents"]
    keys = [item["Key"] for item in listing]
    assert "dust/manifest.json" in keys and any(key.startswith("dust/train/") for key in keys)
    assert {sse(aws_env, BUCKET, key) for key in keys} == {("aws:kms", KEY)}
    code, _, err = earthseg(
        capsys, "upload", "--data", str(dataset), "--to", f"s3://{BUCKET}/x", "--kms-key", "k"
    )
    assert code == 2 and "--kms-key: 'k' is not a KMS key" in err, err


def fail_with_log(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch, describe: str, status: str, group: str
) -> None:
    """moto's `describe` answers Failed for good, once SageMaker's log of the job or
    endpoint holds a line (a stream as SageMaker names them) in CloudWatch Logs."""
    from moto.sagemaker.models import SageMakerModelBackend

    original = getattr(SageMakerModelBackend, describe)

    def failed(self: SageMakerModelBackend, *args: str, **kwargs: str) -> dict[str, Any]:
        (name,) = [*args, *kwargs.values()]
        logs = aws.client("logs")
        where = group.format(name=name)
        if not logs.describe_log_groups(logGroupNamePrefix=where)["logGroups"]:
            stream = "AllTraffic/i-0abc" if "Endpoints" in group else f"{name}/i-0abc-1700000000"
            logs.create_log_group(logGroupName=where)
            logs.create_log_stream(logGroupName=where, logStreamName=stream)
            logs.put_log_events(
                logGroupName=where,
                logStreamName=stream,
                logEvents=[
                    {"timestamp": round(time.time() * 1000), "message": "model.onnx: not found"}
                ],
            )
        return {**original(self, *args, **kwargs), status: "Failed", "FailureReason": "see the log"}

    monkeypatch.setattr(SageMakerModelBackend, describe, failed)


def test_a_failed_endpoint_or_transform_job_shows_its_log_and_names_earthseg_logs(
    aws_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = {"endpoint": "/aws/sagemaker/Endpoints/{name}", "job": "/aws/sagemaker/TransformJobs"}
    fail_with_log(aws_env, monkeypatch, "describe_endpoint", "EndpointStatus", groups["endpoint"])
    fail_with_log(
        aws_env, monkeypatch, "describe_transform_job", "TransformJobStatus", groups["job"]
    )
    code, out, err = earthseg(capsys, *DEPLOY, "--instance-type", "ml.m5.xlarge")
    (model,) = aws_env.received("CreateModel")
    name = model["ModelName"]
    assert code == 2 and "is Failed: see the log" in err
    assert f"earthseg logs --endpoint {name}" in err
    assert "  model.onnx: not found" in out.splitlines()
    put(aws_env, {"scenes/a.tif": 2048})
    code, out, err = earthseg(capsys, *transform())
    job = aws_env.received("CreateTransformJob")[0]["TransformJobName"]
    assert code == 2 and "ended Failed: see the log" in err
    assert f"earthseg logs --job {job}" in err
    assert any(line.endswith("model.onnx: not found") for line in out.splitlines())


def test_detect_refuses_settings_for_an_endpoint_and_says_a_local_model_ignores_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An endpoint is made by deploy: detect creates nothing there (--kms-key alone stays,
    for scenes sent to an asynchronous one). A model run here ignores them, and says so."""
    base = ["detect", "--scenes", str(tmp_path), "--out", str(tmp_path / "out")]
    code, _, err = earthseg(capsys, *base, "--endpoint", "dust", *LOCKED_DOWN)
    assert code == 2
    assert "--subnets, --security-groups, --network-isolation, --tag: apply to what detect " in err
    code, out, _ = earthseg(capsys, *base, "--model", str(tmp_path), *LOCKED_DOWN)
    assert out.splitlines()[0] == (
        "aws: vpc, kms_key, network_isolation, tags apply on SageMaker only; this local run "
        "ignores them"
    )
