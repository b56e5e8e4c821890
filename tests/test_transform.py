"""`earthseg transform` against the AWS API emulator: the model and the Batch Transform job
SageMaker receives, following the job to its end, and what is refused before anything is
created.

The real CLI runs in-process and boto3 sends real HTTP to moto in server mode
(tests/aws_emulator.py); the assertions read the requests moto recorded (its
DescribeModel keeps no Environment) and its state.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from earthseg.cli import main

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

SERVE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-serve:0.1.0-gpu"
BUCKET = "earthseg-test"
ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"  # moto's default account
MODEL = f"s3://{BUCKET}/runs/job/output/model.tar.gz"
SCENES = {"scenes/a.tif": 2048, "scenes/tiles/b.TIFF": 4096}
JOB_NAME = re.compile(r"^earthseg-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}$")


def earthseg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def put(aws: Emulator, objects: dict[str, int]) -> None:
    """Objects of these sizes in the test bucket (made when missing), with the model."""
    s3 = aws.client("s3")
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="runs/job/output/model.tar.gz", Body=b"model")
    for key, size in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"\0" * size)


def transform(*options: str, scenes: str = f"s3://{BUCKET}/scenes") -> list[str]:
    return [
        "transform", "--image", SERVE_IMAGE, "--model", MODEL, "--input", scenes,
        "--output", f"s3://{BUCKET}/masks/", "--role", ROLE, *options,
    ]  # fmt: skip


def nothing_created(aws: Emulator) -> bool:
    sagemaker = aws.client("sagemaker")
    return (
        sagemaker.list_models()["Models"] == []
        and sagemaker.list_transform_jobs()["TransformJobSummaries"] == []
    )


def test_the_model_and_job_are_what_batch_transform_needs_for_whole_scenes(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    put(aws_env, SCENES)
    code, out, err = earthseg(
        capsys,
        *transform("--answer", "probability", "--max-payload-mb", "50", "--concurrency", "2"),
        "--instance-type", "ml.c5.2xlarge", "--instances", "2", "--timeout", "900",
    )  # fmt: skip
    assert code == 0, err

    (model,) = aws_env.received("CreateModel")
    job = model["ModelName"]
    assert JOB_NAME.match(job), job
    assert model == {
        "ModelName": job,
        "PrimaryContainer": {
            "Image": SERVE_IMAGE,
            "ModelDataUrl": MODEL,
            "Environment": {
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "50",
                "SAGEMAKER_MODEL_SERVER_TIMEOUT": "900",
                "EARTHSEG_OUTPUT": "probability",
            },
        },
        "ExecutionRoleArn": ROLE,
        "Tags": [{"Key": "earthseg:run", "Value": "earthseg"}],  # the base name
    }
    (request,) = aws_env.received("CreateTransformJob")
    assert request == {
        "TransformJobName": job,
        "ModelName": job,
        "TransformInput": {
            # A folder: s3://b/scenes-old/ is not sent along.
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/scenes/"}
            },
            "ContentType": "image/tiff",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/masks",
            "Accept": "image/tiff",
            "AssembleWith": "None",
        },
        "TransformResources": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 50,
        "MaxConcurrentTransforms": 2,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 900},
        "Tags": [{"Key": "earthseg:run", "Value": "earthseg"}],
    }
    # Followed to its end, then the model, which only the job used, is gone.
    assert aws_env.received("DescribeTransformJob")
    assert aws_env.received("DeleteModel") == [{"ModelName": job}]
    assert aws_env.client("sagemaker").list_models()["Models"] == []
    assert [line.strip() for line in out.splitlines()[-3:]] == [
        f"answers: 2 under s3://{BUCKET}/masks",
        f"s3://{BUCKET}/masks/a.tif.out",
        f"s3://{BUCKET}/masks/tiles/b.TIFF.out",
    ]
    assert "] Completed" in out


def test_the_defaults_ask_the_container_and_polygons_are_the_masks(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --concurrency: MaxConcurrentTransforms is left to /execution-parameters; one
    object as --input is the job's S3Uri itself."""
    put(aws_env, SCENES)
    code, out, err = earthseg(
        capsys,
        *transform("--accept", "application/geo+json", scenes=f"s3://{BUCKET}/scenes/a.tif"),
    )
    assert code == 0, err
    (model,) = aws_env.received("CreateModel")
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600",
        "EARTHSEG_OUTPUT": "mask",
    }
    (request,) = aws_env.received("CreateTransformJob")
    assert "MaxConcurrentTransforms" not in request
    assert request["MaxPayloadInMB"] == 100
    assert request["TransformOutput"]["Accept"] == "application/geo+json"
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/scenes/a.tif"
    )
    assert request["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    assert out.splitlines()[-1].strip() == f"s3://{BUCKET}/masks/a.tif.out"


def test_a_failed_job_ends_with_its_reason_and_leaves_no_model(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = (
        "ClientError: See job logs for more information: 413 the body (120.0 MB) is over "
        "this server's 100 MB limit"
    )
    aws_env.script_states(
        monkeypatch,
        "describe_transform_job",
        [
            {"TransformJobStatus": "InProgress"},
            {"TransformJobStatus": "InProgress"},
            {"TransformJobStatus": "Failed", "FailureReason": reason},
        ],
    )
    put(aws_env, SCENES)
    code, out, err = earthseg(capsys, *transform())
    assert code == 2
    job = aws_env.received("CreateModel")[0]["ModelName"]
    assert err.startswith(f"earthseg transform: error: transform job {job}: ended Failed: ")
    assert reason in err and f"/aws/sagemaker/TransformJobs, streams {job}/*" in err
    assert [line.split("] ", 1)[1] for line in out.splitlines() if "] " in line] == [
        "InProgress",
        "Failed",
    ]
    assert aws_env.received("DeleteModel") == [{"ModelName": job}]


def test_no_wait_returns_at_once_and_keeps_the_model_for_the_job(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    put(aws_env, SCENES)
    code, out, err = earthseg(capsys, *transform("--no-wait"))
    assert code == 0, err
    job = aws_env.received("CreateTransformJob")[0]["TransformJobName"]
    assert aws_env.received("DescribeTransformJob") == []
    assert aws_env.received("DeleteModel") == []
    assert f"aws sagemaker delete-model --model-name {job}" in out


def test_a_refused_job_leaves_no_model_behind(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend

    def refuse(self: Any, **request: Any) -> None:
        raise ValidationError(message="ml.p5.48xlarge is not a transform instance type")

    monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", refuse)
    put(aws_env, SCENES)
    code, _, err = earthseg(capsys, *transform("--instance-type", "ml.p5.48xlarge"))
    assert code == 2
    assert "was refused by SageMaker (ValidationException: ml.p5.48xlarge" in err
    assert aws_env.client("sagemaker").list_models()["Models"] == []


def test_bad_options_and_inputs_are_refused_with_the_fix_before_anything_is_created(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    put(aws_env, {**SCENES, "mixed/a.tif": 10, "mixed/a.tif.aux.xml": 10, "big/c.tif": 2 * 2**20})
    cases = {
        "--max-payload-mb: '101' is too large: it must be an integer from 1 to 100. Fix: set "
        "--max-payload-mb to an integer from 1 to 100 (default 100)": transform(
            "--max-payload-mb", "101"
        ),
        "--accept: 'text/plain' is not valid: it must be one of image/tiff, "
        "application/geo+json": transform("--accept", "text/plain"),
        "--answer: application/geo+json answers hold the mask's polygons, not probabilities. "
        "Fix: drop it, or accept image/tiff": transform(
            "--accept", "application/geo+json", "--answer", "probability"
        ),
        "--input: 'scenes/' is not in S3 (SageMaker reads and writes S3 only). Fix: give an "
        "s3:// URI, or add --local": transform(scenes="scenes/"),
        "--instance-type: local_cpu is not a SageMaker instance type": transform(
            "--instance-type", "local_cpu"
        ),
        "--concurrency: '0' is too small": transform("--concurrency", "0"),
        f"--input: s3://{BUCKET}/mixed holds files that are not GeoTIFFs (a.tif.aux.xml)": (
            transform(scenes=f"s3://{BUCKET}/mixed")
        ),
        # One scene's key is a prefix too: SageMaker would send its sidecar along.
        f"--input: s3://{BUCKET}/mixed/a.tif holds files that are not GeoTIFFs (a.tif.aux.xml)": (
            transform(scenes=f"s3://{BUCKET}/mixed/a.tif")
        ),
        "--input: c.tif exceed the 1 MB limit of one request. Fix: raise --max-payload-mb": (
            transform("--max-payload-mb", "1", scenes=f"s3://{BUCKET}/big/")
        ),
        f"--input: s3://{BUCKET}/nothing holds no objects": transform(
            scenes=f"s3://{BUCKET}/nothing"
        ),
        f"--model: s3://{BUCKET}/runs/other/model.tar.gz does not exist": [
            *transform()[:3], "--model", f"s3://{BUCKET}/runs/other/model.tar.gz",
            *transform()[5:],
        ],
        "is not a model.tar.gz": [*transform()[:3], "--model", f"s3://{BUCKET}/m/model.onnx",
                                  *transform()[5:]],
        "--name: 'dust-plumes-over-the-whole-arctic-summer' has 40 characters": transform(
            "--name", "dust-plumes-over-the-whole-arctic-summer"
        ),
        "--instance-type, --no-wait, --role: apply to SageMaker jobs only. Fix: drop them, or drop "
        "--local": [*transform("--local", "--instance-type", "ml.m5.xlarge", "--no-wait")],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("earthseg transform: error: ") and expected in err, err
    assert nothing_created(aws_env)


def test_local_runs_refuse_what_local_mode_cannot_read_before_any_container(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenes = tmp_path / "scenes"
    (scenes / "nested").mkdir(parents=True)
    (scenes / "a.tif").write_bytes(b"\0")
    model = tmp_path / "model"
    model.mkdir()
    local = ["transform", "--local", "--image", "earthseg-serve:cpu", "--output", "out"]
    cases = {
        "--input: s3://b/scenes is in S3; a local job reads and writes local paths. Fix: "
        "download it first (aws s3 cp), or drop --local": [
            *local, "--model", str(model), "--input", "s3://b/scenes",
        ],
        f"--input: {scenes} holds folders (nested), which local mode does not read": [
            *local, "--model", str(model), "--input", str(scenes),
        ],
        f"{model}/earthseg.json": [*local, "--model", str(model), "--input", str(scenes / "a.tif")],
        "is neither a model folder nor a model.tar.gz": [
            *local, "--model", str(scenes / "a.tif"), "--input", str(scenes / "a.tif"),
        ],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("earthseg transform: error: ") and expected in err, err
