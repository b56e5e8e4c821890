"""The launcher commands against an AWS API emulator: what SageMaker and S3 received.

The real `earthseg` CLI runs in-process (`earthseg.cli.main`), the real SDK v3 and boto3
send real HTTP requests to moto in server mode (tests/aws_emulator.py), and the
assertions read the emulator's own state (describe calls, S3 objects) or, for what its
describe calls leave out, the requests it recorded.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from earthseg.cli import build_parser, main
from earthseg.cli.options import model_from_args
from earthseg.contracts.manifest import MANIFEST, read_manifest
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.metric_lines import METRIC_DEFINITIONS

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator


TRAIN_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-train:0.1.0-gpu"
SERVE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-serve:0.1.0-cpu"
BUCKET = "earthseg-test"
ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"  # moto's default account
DEFAULT_BUCKET = "sagemaker-us-east-1-123456789012"
DEPLOY = (
    "deploy",
    "--image",
    SERVE_IMAGE,
    "--model",
    f"s3://{BUCKET}/m/model.tar.gz",
    "--role",
    ROLE,
)


@pytest.fixture(scope="module")
def export_and_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small real export and the dataset `earthseg preprocess` makes of it (with tiles/,
    which is not a channel)."""
    root = tmp_path_factory.mktemp("launch")
    write_sample_export(root / "export", scenes=3, size=128, seed=5)
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        root / "dataset",
        PreprocessOptions(tile_size=32, splits=(0.34, 0.33, 0.33), write_tiles=True),
    )
    return root / "export", root / "dataset"


@pytest.fixture()
def dataset(export_and_dataset: tuple[Path, Path]) -> Path:
    return export_and_dataset[1]


def earthseg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def objects(aws: Emulator, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"].removeprefix(prefix): s3.get_object(Bucket=bucket, Key=item["Key"])[
            "Body"
        ].read()
        for item in listing
    }


def local_files(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    files = {f"{MANIFEST}": (folder / MANIFEST).read_bytes()}
    for name in names:
        for path in (folder / name).rglob("*"):
            if path.is_file():
                files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def uploaded(aws: Emulator, dataset: Path, bucket: str, prefix: str) -> None:
    """The dataset's channels and manifest are in S3 byte for byte, and nothing else."""
    assert objects(aws, bucket, prefix) == local_files(dataset, ("train", "validation", "test"))


def make_bucket(aws: Emulator, name: str = BUCKET) -> None:
    aws.client("s3").create_bucket(Bucket=name)


def upload_dataset(aws: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]) -> str:
    make_bucket(aws)
    code, _, err = earthseg(capsys, "upload", "--data", str(dataset), "--to", f"s3://{BUCKET}/dust")
    assert code == 0, err
    return f"s3://{BUCKET}/dust/"


# --- upload -------------------------------------------------------------------------------


def test_upload_puts_the_channels_and_manifest_in_s3(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_bucket(aws_env)
    code, out, err = earthseg(
        capsys, "upload", "--data", str(dataset), "--to", f"s3://{BUCKET}/datasets/dust"
    )
    assert code == 0, err
    uploaded(aws_env, dataset, BUCKET, "datasets/dust/")
    for name in ("train", "validation", "test"):
        assert re.search(rf"^\s+{name}\s+s3://{BUCKET}/datasets/dust/{name}/$", out, re.M)
    assert "not uploaded (not channels): tiles" in out


def test_an_export_zip_is_uploaded_into_its_folder(aws_env: Emulator, tmp_path: Path) -> None:
    """A download-all zip given as export.labels lands as one object in the labels prefix,
    which a Processing job mounts as the folder holding that zip."""
    from earthseg.aws import s3
    from earthseg.aws.session import open_session

    make_bucket(aws_env)
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"PK zipped event folders")
    uri = s3.upload_folder(open_session(), archive, f"s3://{BUCKET}/run/export/labels")
    assert uri == f"s3://{BUCKET}/run/export/labels/"
    assert objects(aws_env, BUCKET, "run/export/labels/") == {"export.zip": archive.read_bytes()}


def test_upload_without_destination_uses_the_default_bucket_and_names_the_content(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = earthseg(capsys, "upload", "--data", str(dataset))
    assert code == 0, err
    fingerprint = read_manifest(dataset).fingerprint.removeprefix("sha256:")[:12]
    prefix = f"earthseg/datasets/{dataset.name}-{fingerprint}/"
    uploaded(aws_env, dataset, DEFAULT_BUCKET, prefix)
    assert f"--data s3://{DEFAULT_BUCKET}/{prefix}" in out


def test_upload_keeps_the_same_dataset_and_refuses_to_mix_another_in(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    to = upload_dataset(aws_env, dataset, capsys)
    before = objects(aws_env, BUCKET, "dust/")
    code, out, err = earthseg(capsys, "upload", "--data", str(dataset), "--to", to)
    assert code == 0, err
    assert f"{to} already holds this dataset: kept" in out
    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(json.dumps({**manifest, "fingerprint": "sha256:0123"}))
    code, _, err = earthseg(capsys, "upload", "--data", str(other), "--to", to)
    assert code == 2 and f"{to}: already holds another dataset" in err
    assert objects(aws_env, BUCKET, "dust/") == before


def test_upload_refuses_a_folder_that_is_not_a_dataset(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_bucket(aws_env)
    code, _, err = earthseg(
        capsys, "upload", "--data", str(dataset / "train"), "--to", f"s3://{BUCKET}/x"
    )
    assert code == 2
    assert "manifest.json: is missing" in err and "earthseg preprocess" in err
    code, _, err = earthseg(capsys, "upload", "--data", str(dataset), "--to", "https://x/y")
    assert code == 2 and "--to: 'https://x/y' is not an S3 URI. Fix: write it as s3://" in err
    assert objects(aws_env, BUCKET, "") == {}


# --- train --------------------------------------------------------------------------------


def test_train_creates_the_job_sagemaker_is_meant_to_run(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = upload_dataset(aws_env, dataset, capsys)
    code, out, err = earthseg(
        capsys,
        "train",
        "--image", TRAIN_IMAGE,
        "--data", data,
        "--role", ROLE,
        "--output", f"s3://{BUCKET}/runs",
        "--instance-type", "ml.g5.2xlarge",
        "--instances", "2",
        "--spot",
        "--max-run-hours", "2",
        "--volume-gb", "50",
        "--name", "dust",
        "-H", "epochs=20",
        "-H", "learning_rate=0.0005",
        "-H", "augment=false",
    )  # fmt: skip
    assert code == 0, err
    sagemaker = aws_env.client("sagemaker")
    (summary,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    name = job["TrainingJobName"]
    assert re.fullmatch(r"dust-\d{14}", name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert job["RoleArn"] == ROLE
    assert job["HyperParameters"] == {"epochs": "20", "learning_rate": "0.0005", "augment": "false"}
    channels = {channel["ChannelName"]: channel for channel in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "test"}
    for channel_name, channel in channels.items():
        source = channel["DataSource"]["S3DataSource"]
        assert source["S3Uri"] == f"{data}{channel_name}/"
        assert source["S3DataType"] == "S3Prefix"
        assert source["S3DataDistributionType"] == "FullyReplicated"
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert job["ResourceConfig"]["VolumeSizeInGB"] == 50
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    assert job["StoppingCondition"]["MaxWaitTimeInSeconds"] == 14400
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/runs/dust"
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/runs/dust/{name}/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    # moto's DescribeTrainingJob answers fixed MetricDefinitions: read what it received.
    (request,) = aws_env.received("CreateTrainingJob")
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert request["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    model = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model == f"s3://{BUCKET}/runs/dust/{name}/output/model.tar.gz"
    assert out.rstrip().splitlines()[-1] == f"model:       {model}"
    assert f"training job {name} (2 x ml.g5.2xlarge, spot)" in out


def test_train_uploads_a_local_dataset_first_and_trains_on_it(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = earthseg(
        capsys, "train", "--image", TRAIN_IMAGE, "--data", str(dataset), "--role", ROLE
    )
    assert code == 0, err
    fingerprint = read_manifest(dataset).fingerprint.removeprefix("sha256:")[:12]
    prefix = f"earthseg/datasets/{dataset.name}-{fingerprint}/"
    uploaded(aws_env, dataset, DEFAULT_BUCKET, prefix)
    sagemaker = aws_env.client("sagemaker")
    (summary,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    sources = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in job["InputDataConfig"]
    }
    assert sources == {
        name: f"s3://{DEFAULT_BUCKET}/{prefix}{name}/" for name in ("train", "validation", "test")
    }
    # The defaults: one on-demand ml.g5.xlarge for at most a day, checkpoints per job.
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert job["EnableManagedSpotTraining"] is False
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 24 * 3600
    assert "MaxWaitTimeInSeconds" not in job["StoppingCondition"]
    assert job["CheckpointConfig"]["S3Uri"] == (
        f"s3://{DEFAULT_BUCKET}/earthseg/{job['TrainingJobName']}/checkpoints"
    )
    assert f"uploading {dataset} to s3://{DEFAULT_BUCKET}/{prefix}" in out


def test_a_failed_job_ends_the_command_with_its_failure_reason(
    aws_env: Emulator,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = upload_dataset(aws_env, dataset, capsys)
    reason = "AlgorithmError: channel validation: shards.json is missing"
    aws_env.script_states(
        monkeypatch,
        "describe_training_job",
        [
            _training("InProgress", "Starting", "Launching requested ML instances"),
            _training("InProgress", "Starting", "Launching requested ML instances"),
            _training("InProgress", "Training", "Training image download completed."),
            _training("InProgress", "Training", "Training image download completed.", 0.61),
            {**_training("Failed", "Failed", "Training job failed", 0.61), "FailureReason": reason},
        ],
    )
    code, out, err = earthseg(
        capsys, "train", "--image", TRAIN_IMAGE, "--data", data, "--role", ROLE
    )
    assert code == 2
    assert reason in err and "ended Failed" in err and "/aws/sagemaker/TrainingJobs" in err
    lines = [line for line in out.splitlines() if line.startswith("  [")]
    assert [line.split("] ", 1)[1] for line in lines] == [
        "InProgress / Starting: Launching requested ML instances",
        "InProgress / Training: Training image download completed.",
        "InProgress / Training: Training image download completed.  validation:iou=0.61",
        "Failed / Failed: Training job failed  validation:iou=0.61",
    ]


def _training(status: str, secondary: str, message: str, iou: float | None = None) -> dict:
    """A DescribeTrainingJob state; metrics as SageMaker reports them while training."""
    metrics = (
        []
        if iou is None
        else [{"MetricName": "validation:iou", "Value": iou, "Timestamp": datetime.now(UTC)}]
    )
    return {
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "SecondaryStatusTransitions": [
            {"Status": secondary, "StartTime": datetime.now(UTC), "StatusMessage": message}
        ],
        "FinalMetricDataList": metrics,
    }


def test_training_refuses_bad_input_before_anything_is_created(
    aws_env: Emulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = upload_dataset(aws_env, dataset, capsys)
    base = ["train", "--image", TRAIN_IMAGE, "--role", ROLE]
    cases = {
        "learning_rte": [*base, "--data", data, "-H", "learning_rte=0.1"],
        "not an S3 URI": [*base, "--data", "s3://Bad_Bucket/x"],
        "has no train/": [*base, "--data", f"s3://{BUCKET}/nothing"],
        "shorter than the max run time": [
            *base, "--data", data, "--spot", "--max-run-hours", "4", "--max-wait-hours", "2"
        ],
        "bucket no-such-bucket does not exist": [
            *base, "--data", data, "--output", "s3://no-such-bucket/runs"
        ],
        "needs --image": ["train", "--data", data, "--spot"],
        "--base-dir": [*base, "--data", data, "--base-dir", "/tmp"],
        "--instance-type: local_cpu is the SDK's local mode": [
            *base, "--data", data, "--instance-type", "local_cpu"
        ],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("earthseg train: error: ") and expected in err, err
    assert aws_env.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_the_role_is_required_and_comes_from_role_or_sagemaker_role(
    aws_env: Emulator,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = upload_dataset(aws_env, dataset, capsys)
    without_role = {
        "train": ["train", "--image", TRAIN_IMAGE, "--data", data],
        "deploy": [*DEPLOY[:5], "--instance-type", "ml.m5.xlarge"],
        "preprocess": [
            "preprocess", "--processing", "--image", TRAIN_IMAGE, "--images", f"{data}train",
            "--labels", f"{data}validation", "--out", f"s3://{BUCKET}/out",
        ],
    }  # fmt: skip
    for command, argv in without_role.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2
        assert err.startswith(
            f"earthseg {command}: error: --role: was not given and SAGEMAKER_ROLE is not set"
        ), err
    monkeypatch.setenv("SAGEMAKER_ROLE", "earthseg-sagemaker")
    code, _, err = earthseg(capsys, *without_role["deploy"])
    assert code == 2 and "SAGEMAKER_ROLE: 'earthseg-sagemaker' is not an IAM role ARN" in err
    sagemaker = aws_env.client("sagemaker")
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    assert sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
    assert sagemaker.list_models()["Models"] == []
    monkeypatch.setenv("SAGEMAKER_ROLE", ROLE)
    code, out, err = earthseg(capsys, *without_role["deploy"])
    assert code == 0, err
    _, _, model = describe_deployment(aws_env, deployed_name(out))
    assert model["ExecutionRoleArn"] == ROLE


def test_no_credentials_is_one_readable_line(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for argv in (
        ["train", "--image", TRAIN_IMAGE, "--data", f"s3://{BUCKET}/dust/", "--role", ROLE],
        ["delete", "--endpoint", "earthseg-1"],
        ["deploy", "--image", SERVE_IMAGE, "--model", f"s3://{BUCKET}/m/model.tar.gz",
         "--role", ROLE],
    ):  # fmt: skip
        code, _, err = earthseg(capsys, *argv)
        assert code == 2
        assert err.splitlines() == [
            f"earthseg {argv[0]}: error: AWS credentials: none were found. Fix: configure AWS "
            "credentials (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY) for the account to use"
        ]


def test_interrupting_the_wait_says_the_job_goes_on() -> None:
    from earthseg.aws.jobs import follow
    from earthseg.errors import InputError

    def describe() -> dict[str, Any]:
        raise KeyboardInterrupt

    with pytest.raises(InputError) as raised:
        follow(describe, str, bool, print, "training job dust-1", "stop it: aws sagemaker ...")
    assert str(raised.value) == (
        "training job dust-1: goes on in SageMaker: only the waiting was interrupted. "
        "Fix: stop it: aws sagemaker ..."
    )


def test_one_builder_makes_the_local_mode_trainer_too(tmp_path: Path, dataset: Path) -> None:
    """`earthseg pipeline --local` trains through the same builder, in the SDK's local mode
    (building the trainer runs nothing)."""
    from sagemaker.train.model_trainer import Mode

    from earthseg.aws.resources import TrainingResources
    from earthseg.aws.training import TrainingSpec, model_trainer
    from earthseg.train.hyperparameters import Hyperparameters

    spec = TrainingSpec(
        image="earthseg-train:cpu",
        channels={name: str(dataset / name) for name in ("train", "validation")},
        hyperparameters=Hyperparameters(epochs=2, augment=False, learning_rate=0.01),
        resources=TrainingResources(instance_type="local_cpu"),
    )
    trainer = model_trainer(spec, local_root=tmp_path)
    assert trainer.training_mode == Mode.LOCAL_CONTAINER
    assert trainer.local_container_root == str(tmp_path)
    assert trainer.training_image == "earthseg-train:cpu"
    assert trainer.compute.instance_type == "local_cpu"
    assert trainer.hyperparameters == {"epochs": "2", "augment": "false", "learning_rate": "0.01"}
    assert {item.channel_name: item.data_source for item in trainer.input_data_config} == {
        "train": str(dataset / "train"),
        "validation": str(dataset / "validation"),
    }


# --- deploy and delete --------------------------------------------------------------------


def describe_deployment(aws: Emulator, endpoint: str) -> tuple[dict, dict, dict]:
    sagemaker = aws.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return described, config, model


def deployed_name(out: str) -> str:
    match = re.search(r"^endpoint:\s+(\S+) \(InService\)$", out, re.M)
    assert match, out
    return match.group(1)


def test_deploy_creates_model_config_and_endpoint_with_the_serve_image(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    model_uri = f"s3://{BUCKET}/runs/dust/dust-20260101000000/output/model.tar.gz"
    code, out, err = earthseg(
        capsys,
        "deploy",
        "--image", SERVE_IMAGE,
        "--model", model_uri,
        "--role", ROLE,
        "--name", "dust",
        "--instance-type", "ml.m5.xlarge",
        "--instances", "2",
        "--workers", "4",
        "--timeout", "120",
    )  # fmt: skip
    assert code == 0, err
    name = deployed_name(out)
    assert re.fullmatch(r"dust-\d{4}(-\d\d){5}-\d{3}", name)
    endpoint, config, model = describe_deployment(aws_env, name)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == name and config["EndpointConfigName"] == name
    assert model["ModelName"] == name
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"] == {
        "Image": SERVE_IMAGE,
        "ModelDataUrl": model_uri,
        "Environment": {
            "SAGEMAKER_MODEL_SERVER_WORKERS": "4",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120",
        },
    }
    (variant,) = config["ProductionVariants"]
    assert variant["ModelName"] == name
    assert variant["InstanceType"] == "ml.m5.xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert "ServerlessConfig" not in variant
    assert f"earthseg delete --endpoint {name}" in out


def test_deploy_serverless_has_memory_and_concurrency_instead_of_instances(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = earthseg(
        capsys,
        "deploy",
        "--image", SERVE_IMAGE,
        "--model", f"s3://{BUCKET}/m/model.tar.gz",
        "--role", ROLE,
        "--serverless",
        "--memory-mb", "4096",
        "--max-concurrency", "3",
    )  # fmt: skip
    assert code == 0, err
    _, config, model = describe_deployment(aws_env, deployed_name(out))
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 3}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "Environment" not in model["PrimaryContainer"]


def test_a_failed_endpoint_ends_deploy_with_its_reason(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "The primary container for production variant AllTraffic did not pass the ping"
    aws_env.script_states(
        monkeypatch,
        "describe_endpoint",
        [{"EndpointStatus": "Creating"}, {"EndpointStatus": "Failed", "FailureReason": reason}],
    )
    code, out, err = earthseg(capsys, *DEPLOY, "--instance-type", "ml.g4dn.xlarge")
    assert code == 2
    assert reason in err and "earthseg delete --endpoint earthseg-" in err
    assert [line.split("] ", 1)[1] for line in out.splitlines() if "] " in line] == [
        "Creating",
        "Failed",
    ]


def test_a_refused_deploy_leaves_nothing_behind(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = earthseg(capsys, *DEPLOY, "--instance-type", "ml.nope.xlarge")
    assert code == 2
    assert "endpoint config earthseg-" in err and "was refused by SageMaker" in err
    assert "ml.nope.xlarge" in err
    sagemaker = aws_env.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_delete_removes_the_endpoint_its_config_and_its_model(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = earthseg(capsys, *DEPLOY, "--instance-type", "ml.g4dn.xlarge")
    name = deployed_name(out)
    code, out, err = earthseg(capsys, "delete", "--endpoint", name)
    assert code == 0, err
    assert out.splitlines() == [
        f"deleted endpoint {name}",
        f"deleted endpoint config {name}",
        f"deleted model {name}",
    ]
    sagemaker = aws_env.client("sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []


def test_delete_reports_parts_already_gone(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = earthseg(capsys, *DEPLOY, "--instance-type", "ml.g4dn.xlarge")
    name = deployed_name(out)
    sagemaker = aws_env.client("sagemaker")
    sagemaker.delete_model(ModelName=name)
    code, out, err = earthseg(capsys, "delete", "--endpoint", name)
    assert code == 0, err
    assert out.splitlines() == [
        f"deleted endpoint {name}",
        f"deleted endpoint config {name}",
        f"model {name}: already gone",
    ]
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_delete_of_an_unknown_endpoint_says_so(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = earthseg(capsys, "delete", "--endpoint", "earthseg-nope")
    assert code == 2 and out == ""
    assert err.startswith(
        "earthseg delete: error: --endpoint: there is no endpoint earthseg-nope in us-east-1"
    )


# --- preprocess --processing --------------------------------------------------------------


def test_preprocess_processing_runs_the_training_image_on_the_export_in_s3(
    aws_env: Emulator,
    export_and_dataset: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = export_and_dataset[0]
    make_bucket(aws_env)
    s3 = aws_env.client("s3")
    for path in export.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"export/{path.relative_to(export).as_posix()}")
    code, out, err = earthseg(
        capsys,
        "preprocess",
        "--processing",
        "--image", TRAIN_IMAGE,
        "--images", f"s3://{BUCKET}/export/images",
        "--labels", f"s3://{BUCKET}/export/labels",
        "--out", f"s3://{BUCKET}/datasets/dust",
        "--tile-size", "128",
        "--splits", "0.6,0.2,0.2",
        "--all-touched",
        "--role", ROLE,
        "--instance-type", "ml.m5.2xlarge",
        "--subnets", "subnet-0123456789abcdef0", "--security-groups", "sg-0a1b2c3d",
        "--kms-key", "alias/earthseg", "--network-isolation", "--tag", "project=dust",
    )  # fmt: skip
    assert code == 0, err
    sagemaker = aws_env.client("sagemaker")
    (summary,) = sagemaker.list_processing_jobs()["ProcessingJobSummaries"]
    job = sagemaker.describe_processing_job(ProcessingJobName=summary["ProcessingJobName"])
    assert job["ProcessingJobName"].startswith("earthseg-preprocess-")
    assert job["RoleArn"] == ROLE
    assert job["AppSpecification"]["ImageUri"] == TRAIN_IMAGE
    arguments = job["AppSpecification"]["ContainerArguments"]
    inputs = {item["InputName"]: item["S3Input"] for item in job["ProcessingInputs"]}
    assert {name: (item["S3Uri"], item["LocalPath"]) for name, item in inputs.items()} == {
        "images": (f"s3://{BUCKET}/export/images/", "/opt/ml/processing/input/images"),
        "labels": (f"s3://{BUCKET}/export/labels/", "/opt/ml/processing/input/labels"),
    }
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/datasets/dust/"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    # DescribeProcessingJob in moto keeps no ProcessingResources: read what it received.
    (request,) = aws_env.received("CreateProcessingJob")
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceType": "ml.m5.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": "alias/earthseg",
    }
    # a locked-down account's settings: preprocessing needs no network, so it is isolated
    assert request["NetworkConfig"] == {
        "VpcConfig": {"Subnets": ["subnet-0123456789abcdef0"], "SecurityGroupIds": ["sg-0a1b2c3d"]},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == "alias/earthseg"
    assert {tag["Key"]: tag["Value"] for tag in request["Tags"]} == {
        "earthseg:run": "earthseg",
        "project": "dust",
    }
    # The image's entry point maps `preprocess` to `earthseg preprocess`: the arguments
    # must be that command with the options given and the Processing mounts as defaults.
    assert arguments[0] == "preprocess"
    parsed = build_parser().parse_args(arguments)
    assert model_from_args(parsed, PreprocessOptions) == PreprocessOptions(
        tile_size=128, splits=(0.6, 0.2, 0.2), all_touched=True
    )
    assert (parsed.images, parsed.labels, parsed.out, parsed.processing) == (
        None,
        None,
        None,
        False,
    )
    assert out.splitlines()[-2] == f"dataset: s3://{BUCKET}/datasets/dust/"


def test_preprocess_processing_refuses_local_folders_and_missing_inputs(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    make_bucket(aws_env)
    base = ["preprocess", "--processing", "--image", TRAIN_IMAGE, "--role", ROLE]
    cases = {
        "--labels, --out: must be given": [*base, "--images", f"s3://{BUCKET}/e/images"],
        "'export/images' is not an S3 URI": [
            *base, "--images", "export/images", "--labels", f"s3://{BUCKET}/e/labels",
            "--out", f"s3://{BUCKET}/d",
        ],
        f"s3://{BUCKET}/e/images/ holds nothing": [
            *base, "--images", f"s3://{BUCKET}/e/images", "--labels", f"s3://{BUCKET}/e/labels",
            "--out", f"s3://{BUCKET}/d",
        ],
        "needs --processing": ["preprocess", "--images", "x", "--instance-type", "ml.m5.large"],
        "--images: s3://b/x is in S3. Fix: add --processing": ["preprocess", "--images", "s3://b/x"],
    }  # fmt: skip
    for expected, argv in cases.items():
        code, _, err = earthseg(capsys, *argv)
        assert code == 2, argv
        assert expected in err, err
    assert aws_env.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []


def test_the_name_rules_are_the_longest_bases_the_sdk_keeps_whole() -> None:
    """The SDK cuts a name to 63 characters (its base, or its timestamp, which makes it
    unique); the rules refuse exactly the names it would cut."""
    from sagemaker.core.common_utils import name_from_base
    from sagemaker.train.utils import _get_unique_name

    from earthseg.aws.names import ENDPOINT, PROCESSING_JOB, TRAINING_JOB, check_name
    from earthseg.errors import InputError

    makers = {
        TRAINING_JOB: _get_unique_name,
        PROCESSING_JOB: name_from_base,
        ENDPOINT: name_from_base,
    }
    for rule, make in makers.items():
        longest = "a" * rule.longest_base
        whole = make(rule.base(longest))
        assert whole.startswith(rule.base(longest)) and len(whole) == 63
        assert len(whole) == len(rule.base(longest)) + rule.timestamp
        cut = make(rule.base(longest + "a"))
        assert len(cut) < len(rule.base(longest + "a")) + rule.timestamp
        check_name(longest, (rule,), "name")
        with pytest.raises(InputError, match=f"use at most {rule.longest_base} characters"):
            check_name(longest + "a", (rule,), "name")
