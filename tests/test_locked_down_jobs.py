"""Runs in a locked-down AWS account (issue 16), against the AWS API emulator: every job,
step and resource the launcher makes carries run.yaml's `aws:` settings (the VPC, the KMS
key on volumes, outputs and uploads, network isolation, inter-container encryption, the
tags); a fetching Prepare keeps its network and says so; a malformed setting is refused
when the config is read; a local run ignores the settings, saying so once; a failed
pipeline step shows the tail of its job's log.

What is checked is what moto received (`Emulator.received`), the requests as sent: moto
describes back only some of these fields.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from earthseg.aws.pipeline_definition import (
    EVALUATE,
    PREPARE,
    REGISTER,
    TRAIN,
    TUNE,
    run_trainer,
    training_channels,
)
from earthseg.aws.pipeline_run import pipeline_inputs
from earthseg.aws.sdk import sdk_session
from earthseg.aws.tuning import run_tuner, static_hyperparameters
from earthseg.cli import main as cli
from earthseg.errors import InputError
from earthseg.pipeline.config import load_config
from tests.aws_emulator import REGION, Emulator
from tests.test_launch import dataset, export_and_dataset  # noqa: F401
from tests.test_pipeline_definition import (
    BUCKET,
    ROLE,
    TRAIN_IMAGE,
    TUNE_SECTION,
    cloud_run,
    push_images,
    steps_by_name,
)
from tests.test_tuning_sagemaker import TUNING_JOB, summary

SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba987654321f"]
GROUP = "sg-0a1b2c3d"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WMS = "https://wms.example/wms"
VPC = {"Subnets": SUBNETS, "SecurityGroupIds": [GROUP]}
TAGS = [  # the run's name, then aws.tags as run.yaml holds them
    {"Key": "earthseg:run", "Value": "tiny"},
    {"Key": "cost-centre", "Value": "ESD 610"},
    {"Key": "project", "Value": "dust"},
]


def locked_down_run(folder: Path, **overrides: Any) -> Path:
    """The tests' cloud run in an account that demands a VPC, a key, isolation and tags
    (untracked: an isolated training could not reach MLflow)."""
    aws = {
        "s3": f"s3://{BUCKET}/pipelines",
        "role": ROLE,
        "region": REGION,
        "vpc": {"subnets": SUBNETS, "security_groups": [GROUP]},
        "kms_key": KEY,
        "network_isolation": True,
        "tags": {"cost-centre": "ESD 610", "project": "dust"},
    }
    return cloud_run(folder, aws=aws, tracking={}, **overrides)


def assert_locked_down_training(job: dict[str, Any]) -> None:
    """A CreateTrainingJob request, or a tuning's TrainingJobDefinition, as the account
    demands it."""
    assert job["VpcConfig"] == VPC
    assert job["EnableNetworkIsolation"] is True
    assert job["EnableInterContainerTrafficEncryption"] is True
    assert job["OutputDataConfig"]["KmsKeyId"] == KEY
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == KEY


def assert_locked_down_processing(job: dict[str, Any], isolated: bool) -> None:
    assert job["NetworkConfig"] == {
        "VpcConfig": VPC,
        "EnableNetworkIsolation": isolated,
        "EnableInterContainerTrafficEncryption": True,
    }
    assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == KEY
    assert job["Tags"] == TAGS


def test_every_step_of_a_pipeline_and_what_it_uploads_is_locked_down(
    aws_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    push_images(aws_env)
    # Labels only: Prepare fetches the scenes, so it must keep its network.
    config = locked_down_run(tmp_path, export={"labels": "export/labels"}, imagery={"url": WMS})
    assert cli(["pipeline", "--config", str(config), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert (
        f"aws.network_isolation: the Prepare step fetches imagery from {WMS}, so it keeps its "
        "network (in the VPC)" in out.splitlines()
    )

    (created,) = aws_env.received("CreatePipeline")
    assert created["Tags"] == TAGS
    steps = steps_by_name(json.loads(created["PipelineDefinition"]))
    assert_locked_down_processing(steps[PREPARE]["Arguments"], isolated=False)
    assert_locked_down_processing(steps[EVALUATE]["Arguments"], isolated=True)
    train = steps[TRAIN]["Arguments"]
    assert_locked_down_training(train)
    assert train["Tags"] == TAGS
    assert steps[REGISTER]["Arguments"]["Tags"] == TAGS
    (group,) = aws_env.received("CreateModelPackageGroup")
    assert group["Tags"] == TAGS

    s3 = aws_env.client("s3")
    uploaded = s3.list_objects_v2(Bucket=BUCKET, Prefix="pipelines/tiny/export/")["Contents"]
    assert {item["Key"].split("/")[3] for item in uploaded} == {"labels"}
    for item in uploaded:
        head = s3.head_object(Bucket=BUCKET, Key=item["Key"])
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY)


def test_a_tunings_trials_and_tuning_job_are_locked_down(
    aws_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Tune step of a tuning pipeline, and the same tuner starting a tuning job
    itself: the SDK's tuner drops isolation, inter-container encryption and the volume's
    key from the trials' definition unless earthseg's Tuner puts them back."""
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    push_images(aws_env)
    path = locked_down_run(tmp_path, tune=TUNE_SECTION)
    assert cli(["tune", "--config", str(path), "--no-wait"]) == 0
    assert "keeps its network" not in capsys.readouterr().out  # the export has its scenes
    (created,) = aws_env.received("CreatePipeline")
    steps = steps_by_name(json.loads(created["PipelineDefinition"]))
    assert steps[PREPARE]["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is True
    tune = steps[TUNE]["Arguments"]
    assert_locked_down_training(tune["TrainingJobDefinition"])
    assert tune["Tags"] == TAGS

    config = load_config(path)
    root = pipeline_inputs(config).root
    data = str(root.child("dataset", "earlier"))
    trainer = run_trainer(
        config,
        sdk_session(boto3.Session(region_name=REGION), root),
        ROLE,
        instance_type=config.train.instance_type,
        hyperparameters=static_hyperparameters(config),
        jobs=root.child("jobs"),
        checkpoints=str(root.child("checkpoints", "earlier")),
        environment=config.cloud_environment(data),
    )
    run_tuner(config, trainer).tune(inputs=training_channels(data), wait=False)
    (sent,) = aws_env.received("CreateHyperParameterTuningJob")
    assert_locked_down_training(sent["TrainingJobDefinition"])
    assert sent["Tags"] == TAGS


def test_train_launches_a_locked_down_job_on_a_dataset_uploaded_under_the_key(
    aws_env: Emulator,
    dataset: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    code = cli(
        [
            "train",
            "--image", TRAIN_IMAGE,
            "--data", str(dataset),
            "--role", ROLE,
            "--output", f"s3://{BUCKET}/runs",
            "--name", "dust",
            "--subnets", ",".join(SUBNETS),
            "--security-groups", GROUP,
            "--kms-key", KEY,
            "--network-isolation",
            "--tag", "project=dust",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (request,) = aws_env.received("CreateTrainingJob")
    assert_locked_down_training(request)
    assert request["Tags"] == [
        {"Key": "earthseg:run", "Value": "dust"},
        {"Key": "project", "Value": "dust"},
    ]
    s3 = aws_env.client("s3")
    uploaded = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/")["Contents"]
    assert uploaded  # the dataset's channels and manifest
    for item in uploaded:
        head = s3.head_object(Bucket=BUCKET, Key=item["Key"])
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY)


@pytest.mark.parametrize(
    ("aws", "named", "says"),
    [
        (
            {"vpc": {"subnets": ["subnet-12"], "security_groups": [GROUP]}},
            "aws.vpc.subnets",
            "'subnet-12' is not a subnet ID",
        ),
        ({"kms_key": "my-key"}, "aws.kms_key", "'my-key' is not a KMS key"),
    ],
)
def test_a_malformed_setting_is_refused_when_the_config_is_read(
    tmp_path: Path, aws: dict[str, Any], named: str, says: str
) -> None:
    config = cloud_run(tmp_path, aws={"s3": f"s3://{BUCKET}/pipelines", "role": ROLE, **aws})
    with pytest.raises(InputError) as refused:
        load_config(config)
    assert named in str(refused.value) and says in str(refused.value)


@pytest.mark.parametrize("failed_step", [TRAIN, TUNE])
def test_a_failed_step_shows_the_tail_of_its_jobs_log(
    aws_env: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failed_step: str,
) -> None:
    """moto never runs an execution and has no ListPipelineExecutionSteps (nor
    ListTrainingJobsForHyperParameterTuningJob): the steps (and a tuning's trials) are
    scripted as SageMaker's API reference shapes them; the job's log is in moto's
    CloudWatch Logs where SageMaker writes it. A failed Tune step's log is its failed
    trial's."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    from earthseg.aws.pipeline_run import EXECUTION_FILE

    sagemaker = aws_env.client("sagemaker")
    sagemaker.create_pipeline(
        PipelineName="tiny", PipelineDefinition=json.dumps({"Steps": []}), RoleArn=ROLE
    )
    arn = sagemaker.start_pipeline_execution(PipelineName="tiny")["PipelineExecutionArn"]
    config = locked_down_run(tmp_path)
    folder = tmp_path / "runs" / "tiny"
    folder.mkdir(parents=True)
    (folder / EXECUTION_FILE).write_text(json.dumps({"execution": arn}))
    job = (
        "pipelines-a1b2c3d4e5-Train-0123456789"
        if failed_step == TRAIN
        else f"{TUNING_JOB}-002-0a1b2c3d"
    )
    logs = aws_env.client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = f"{job}/algo-1-1700000000"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    now = int(time.time() * 1000)  # moto refuses events older than 14 days
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream,
        logEvents=[
            {"timestamp": now - 1000, "message": "epoch=1 loss=0.61;"},
            {"timestamp": now, "message": "MemoryError: batch_size 64 too big"},
        ],
    )
    reason = "AlgorithmError: see the job's log"
    steps = [
        {"StepName": PREPARE, "StepStatus": "Succeeded"},
        {
            "StepName": failed_step,
            "StepStatus": "Failed",
            "FailureReason": reason,
            "Metadata": {
                "TrainingJob": {
                    "Arn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{job}"
                }
            }
            if failed_step == TRAIN
            else {
                "TuningJob": {
                    "Arn": f"arn:aws:sagemaker:{REGION}:123456789012:"
                    f"hyper-parameter-tuning-job/{TUNING_JOB}"
                }
            },
        },
    ]
    if failed_step == TUNE:  # the tuning job and its trial, which the follow-up describes
        definition = {
            "AlgorithmSpecification": {"TrainingImage": TRAIN_IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/jobs"},
            "ResourceConfig": {
                "InstanceType": "ml.g5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        }
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=TUNING_JOB,
            HyperParameterTuningJobConfig={
                "Strategy": "Bayesian",
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            },
            TrainingJobDefinition=definition,
        )
        sagemaker.create_training_job(TrainingJobName=job, **definition)
    trials = [summary(job, "Failed", None, {})]

    def list_steps(self: SageMakerResponse) -> ActionResult:
        return ActionResult({"PipelineExecutionSteps": steps})

    def list_trials(self: SageMakerResponse) -> ActionResult:
        return ActionResult({"TrainingJobSummaries": trials})

    monkeypatch.setattr(
        SageMakerResponse,
        "list_training_jobs_for_hyper_parameter_tuning_job",
        list_trials,
        raising=False,
    )

    monkeypatch.setattr(
        SageMakerResponse, "list_pipeline_execution_steps", list_steps, raising=False
    )
    aws_env.script_states(
        monkeypatch, "describe_pipeline_execution", [{"PipelineExecutionStatus": "Failed"}]
    )
    assert cli(["pipeline", "--config", str(config), "--follow"]) == 2
    followed = capsys.readouterr()
    assert "  MemoryError: batch_size 64 too big" in followed.out.splitlines()
    assert f"ended Failed: {failed_step}: {reason}" in followed.err
    assert f"earthseg logs --job {job}" in followed.err


def test_a_local_run_says_once_that_it_ignores_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = locked_down_run(tmp_path, export={"images": "gone/images", "labels": "gone/labels"})
    assert cli(["pipeline", "--config", str(config), "--local"]) == 2  # no export: stops early
    said = capsys.readouterr()
    assert [line for line in said.out.splitlines() if line.startswith("aws:")] == [
        "aws: vpc, kms_key, network_isolation, tags apply on SageMaker only; this local run "
        "ignores them"
    ]
    assert "gone/" in said.err
