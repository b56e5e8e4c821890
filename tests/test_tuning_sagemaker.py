"""`earthseg tune` on SageMaker against the AWS API emulator (moto in server mode) and a
real MLflow tracking server: the tuning job the run's tuner sends (image, ranges,
objective, metric definitions, strategy, spot, warm start), read back from
DescribeHyperParameterTuningJob; a tuning pipeline started with its MLflow parent run and
followed to its end, its trials brought home as the leaderboard and the best trial's
model as the run's; and bad tunings refused before anything is sent.

moto 5.2.5 creates, describes and lists tuning jobs but neither runs their trials nor
has ListTrainingJobsForHyperParameterTuningJob (or ListPipelineExecutionSteps): those
answers are scripted here in the shapes of botocore's SageMaker service model, and the
trials are real training jobs in moto's state.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from mlflow import MlflowClient

from earthseg.aws.pipeline_definition import (
    CHECK,
    EVALUATE,
    PARENT_RUN_PARAMETER,
    PREPARE,
    TUNE,
    run_trainer,
    training_channels,
)
from earthseg.aws.pipeline_run import EXECUTION_FILE, pipeline_inputs
from earthseg.aws.sdk import sdk_session
from earthseg.aws.tuning import run_tuner, static_hyperparameters, trial
from earthseg.cli import main as cli
from earthseg.pipeline.config import load_config
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from earthseg.train.tracking import PARENT_RUN_ENV, PARENT_TAG, TRAINING_JOB_TAG
from earthseg.tune.leaderboard import Trial, read_leaderboard
from earthseg.tune.parent_run import STATE_TAG
from tests.aws_emulator import REGION, Emulator
from tests.mlflow_server import mlflow_server  # noqa: F401
from tests.test_pipeline_definition import (
    BUCKET,
    ROLE,
    TRAIN_IMAGE,
    TUNE_SECTION,
    cloud_run,
    push_images,
)

ACCOUNT = "123456789012"  # moto's
TUNING_JOB = "tiny-tune-0103"  # as SageMaker would name the execution's tuning job


def test_the_tuning_job_sagemaker_receives_is_the_runs_tuning(
    aws_env: Emulator, tmp_path: Path
) -> None:
    """The same trainer and tuner the pipeline's Tune step is made of, on a plain SDK
    session: CreateHyperParameterTuningJob sent, read back as SageMaker describes it."""
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    config = load_config(cloud_run(tmp_path, tune=TUNE_SECTION))
    root = pipeline_inputs(config).root
    dataset = str(root.child("dataset", "earlier"))
    trainer = run_trainer(
        config,
        sdk_session(boto3.Session(region_name=REGION), root),
        ROLE,
        instance_type=config.train.instance_type,
        hyperparameters=static_hyperparameters(config),
        jobs=root.child("jobs"),
        checkpoints=str(root.child("checkpoints", "earlier")),
        environment={**config.cloud_environment(dataset), PARENT_RUN_ENV: "parent-run-id"},
    )
    run_tuner(config, trainer).tune(inputs=training_channels(dataset), wait=False)

    (sent,) = aws_env.received("CreateHyperParameterTuningJob")
    name = sent["HyperParameterTuningJobName"]
    assert name.startswith("tiny-") and len(name) <= 32
    described = aws_env.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )
    settings = described["HyperParameterTuningJobConfig"]
    assert settings["Strategy"] == "Bayesian"
    assert settings["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:iou",
    }
    assert settings["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 6,
        "MaxParallelTrainingJobs": 3,
    }
    assert settings["TrainingJobEarlyStoppingType"] == "Auto"
    ranges = settings["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {
            "Name": "learning_rate",
            "MinValue": "0.0003",
            "MaxValue": "0.01",
            "ScalingType": "Logarithmic",
        }
    ]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "depth", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}
    ]
    assert {item["Name"]: item["Values"] for item in ranges["CategoricalParameterRanges"]} == {
        "filters": ["16", "24", "32"],
        "augment": ["true", "false"],
    }

    job = described["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"] == {
        "TrainingImage": TRAIN_IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": METRIC_DEFINITIONS,
    }
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/pipelines/tiny/checkpoints/earlier",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/pipelines/tiny/jobs"
    assert job["StaticHyperParameters"] == {
        "epochs": "2",
        "batch_size": "8",
        "patience": "6",
        "seed": "0",
        "steps_per_epoch": "0",
    }
    assert {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in job["InputDataConfig"]
    } == {name: f"{dataset}/{name}" for name in ("train", "validation")}
    assert job["Environment"][PARENT_RUN_ENV] == "parent-run-id"
    assert job["Environment"]["EARTHSEG_DATASET_URI"] == dataset
    assert described["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "tiny-tune-0101"},
            {"HyperParameterTuningJobName": "tiny-tune-0102"},
        ],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }


def summary(
    name: str,
    status: str,
    objective: float | None,
    tuned: dict[str, str],
) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary, as ListTrainingJobsForHyperParameterTuningJob
    gives it (botocore's SageMaker service model)."""
    item: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
        "TuningJobName": TUNING_JOB,
        "CreationTime": datetime(2026, 1, 31, 12, tzinfo=UTC),
        "TrainingJobStatus": status,
        "TunedHyperParameters": tuned,
        "ObjectiveStatus": "Succeeded" if objective is not None else "Failed",
    }
    if objective is not None:
        item["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Maximize",
            "MetricName": "validation:iou",
            "Value": objective,
        }
    return item


def test_trials_read_from_sagemakers_answers() -> None:
    searched = {"learning_rate": "0.0012", "filters": "24", "augment": "false"}
    epochs = {"FinalMetricDataList": [{"MetricName": "epoch", "Value": 7.0}]}
    assert trial(summary("t-001", "Completed", 0.71, searched), epochs, "run-1") == Trial(
        name="t-001",
        hyperparameters={"learning_rate": 0.0012, "filters": 24, "augment": False},
        objective=0.71,
        state="complete",
        epochs=7,
        mlflow_run_id="run-1",
    )
    stopped = trial(summary("t-002", "Stopped", 0.4, searched))  # SageMaker's early stopping
    assert stopped is not None and (stopped.state, stopped.epochs) == ("pruned", 0)
    failed = trial(summary("t-003", "Failed", None, searched))
    assert failed is not None and (failed.state, failed.objective) == ("failed", None)
    assert trial(summary("t-004", "InProgress", None, searched)) is None  # no result yet


def trial_job(emulator: Emulator, name: str, model: bytes, epochs: int) -> None:
    """A training job a tuning launched, finished in moto, its model and output in S3."""
    from moto.sagemaker.models import sagemaker_backends

    jobs = f"s3://{BUCKET}/pipelines/tiny/jobs"
    emulator.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": TRAIN_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": jobs},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 7200},
    )
    # What SageMaker scraped last from the job's metrics lines (moto keeps a fixed list).
    backend = sagemaker_backends[ACCOUNT][REGION]
    backend.training_jobs[name].final_metric_data_list = [
        {"MetricName": "epoch", "Value": float(epochs), "Timestamp": datetime.now(UTC)}
    ]
    s3 = emulator.client("s3")
    for archive, members in (
        ("model.tar.gz", {"model.onnx": model}),
        ("output.tar.gz", {"data/metrics.json": b'{"epochs": %d}' % epochs}),
    ):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member, content in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        key = f"pipelines/tiny/jobs/{name}/output/{archive}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())


def test_a_tuning_on_sagemaker_tracks_its_trials_under_one_run_and_brings_them_home(
    aws_env: Emulator,
    mlflow_server: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    push_images(aws_env)
    config = cloud_run(
        tmp_path,
        tune=TUNE_SECTION,
        tracking={"uri": mlflow_server, "experiment": "dust-tuning"},
    )
    assert cli(["tune", "--config", str(config), "--no-wait"]) == 0
    started = capsys.readouterr().out
    assert "the tuning's trials are its children" in started
    sagemaker = aws_env.client("sagemaker")
    described = sagemaker.describe_pipeline(PipelineName="tiny")
    assert TUNE in {step["Name"] for step in json.loads(described["PipelineDefinition"])["Steps"]}
    arn = json.loads((tmp_path / "runs" / "tiny" / EXECUTION_FILE).read_text())["execution"]
    given = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    parent = {item["Name"]: item["Value"] for item in given["PipelineParameters"]}[
        PARENT_RUN_PARAMETER
    ]
    mlflow = MlflowClient(mlflow_server)
    opened = mlflow.get_run(parent)
    assert opened.info.status == "RUNNING"
    assert json.loads(opened.data.params["objective"]) == "val_iou"
    assert json.loads(opened.data.params["trials"]) == 6

    # The tuning job and its trials, as SageMaker leaves them; each trial's job tracked
    # its run as the parent's child (earthseg.train.tracking, with PARENT_RUN_ENV).
    best, pruned, failed = (f"{TUNING_JOB}-00{n}-a1b2c3d4" for n in (1, 2, 3))
    for name, epochs in ((best, 9), (pruned, 3), (failed, 1)):
        trial_job(aws_env, name, model=name.encode(), epochs=epochs)
    runs = {}
    experiment = opened.info.experiment_id
    for name in (best, pruned):
        run = mlflow.create_run(experiment, tags={PARENT_TAG: parent, TRAINING_JOB_TAG: name})
        runs[name] = run.info.run_id
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=TUNING_JOB,
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 3},
        },
    )
    aws_env.script_states(
        monkeypatch,
        "describe_hyper_parameter_tuning_job",
        [
            {
                "BestTrainingJob": {
                    **summary(best, "Completed", 0.71, {}),
                    "TuningJobName": TUNING_JOB,
                }
            }
        ],
    )
    searched = {"learning_rate": "0.0012", "filters": "24", "depth": "3", "augment": "true"}
    trials = [
        summary(best, "Completed", 0.71, searched),
        summary(pruned, "Stopped", 0.38, {**searched, "learning_rate": "0.009"}),
        summary(failed, "Failed", None, {**searched, "filters": "16"}),
    ]
    steps = [
        {"StepName": PREPARE, "StepStatus": "Succeeded"},
        {
            "StepName": TUNE,
            "StepStatus": "Succeeded",
            "Metadata": {
                "TuningJob": {
                    "Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
                    f"hyper-parameter-tuning-job/{TUNING_JOB}"
                }
            },
        },
        {"StepName": EVALUATE, "StepStatus": "Failed", "FailureReason": "no test scenes"},
    ]

    def list_steps(self: SageMakerResponse) -> ActionResult:
        return ActionResult({"PipelineExecutionSteps": steps})

    def list_trials(self: SageMakerResponse) -> ActionResult:
        assert self._get_param("HyperParameterTuningJobName") == TUNING_JOB
        return ActionResult({"TrainingJobSummaries": trials})

    monkeypatch.setattr(
        SageMakerResponse, "list_pipeline_execution_steps", list_steps, raising=False
    )
    monkeypatch.setattr(
        SageMakerResponse,
        "list_training_jobs_for_hyper_parameter_tuning_job",
        list_trials,
        raising=False,
    )
    aws_env.script_states(
        monkeypatch, "describe_pipeline_execution", [{"PipelineExecutionStatus": "Failed"}]
    )

    assert cli(["tune", "--config", str(config), "--follow"]) == 2
    followed = capsys.readouterr()
    assert f"ended Failed: {EVALUATE}: no test scenes" in followed.err
    assert f"tuning job {TUNING_JOB}: 3 trials, the best {best}" in followed.out
    assert f"warm_start: [{TUNING_JOB}]" in followed.out

    folder = tmp_path / "runs" / "tiny"
    board = read_leaderboard(folder / "tuning")
    assert board is not None and (board.objective, board.maximize) == ("val_iou", True)
    assert [(item.name, item.state, item.objective, item.epochs) for item in board.trials] == [
        (best, "complete", 0.71, 9),
        (pruned, "pruned", 0.38, 3),
        (failed, "failed", None, 1),
    ]
    assert board.trials[0].hyperparameters == {
        "learning_rate": 0.0012,
        "filters": 24,
        "depth": 3,
        "augment": True,
    }
    assert [item.mlflow_run_id for item in board.trials] == [runs[best], runs[pruned], None]
    # The best trial's model and training output are the run's, as a training's would be.
    assert (folder / "model" / "model.onnx").read_bytes() == best.encode()
    assert json.loads((folder / "training" / "metrics.json").read_text()) == {"epochs": 9}
    # The parent run holds the outcome and is closed as the execution ended.
    closed = mlflow.get_run(parent)
    assert closed.info.status == "FAILED"
    assert closed.data.metrics["best_val_iou"] == 0.71
    assert mlflow.get_run(runs[pruned]).data.tags[STATE_TAG] == "pruned"
    assert {item.path for item in mlflow.list_artifacts(parent, "leaderboard")} >= {
        "leaderboard/leaderboard.csv"
    }
    assert CHECK not in followed.out  # the steps after Evaluate never ran


@pytest.mark.parametrize(
    ("tune", "named", "said"),
    [
        ({"trials": 4}, "tune.ranges", "add tune: {ranges:"),
        (
            {**TUNE_SECTION, "warm_start": ["tiny tune 1"]},
            "tune.warm_start",
            "not a tuning job's name",
        ),
        (
            {**TUNE_SECTION, "warm_start": ["a" * 33]},
            "tune.warm_start",
            "at most 32 characters",
        ),
        (
            {
                **TUNE_SECTION,
                "warm_start": [
                    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/tiny-1"
                ],
            },
            "tune.warm_start",
            "give the part after 'hyper-parameter-tuning-job/'",
        ),
        ({**TUNE_SECTION, "warm_start": ["tiny-1", "tiny-1"]}, "tune.warm_start", "twice"),
        # SageMaker's limit of 5 parents: the config's own rule (its message is the
        # validation layer's).
        ({**TUNE_SECTION, "warm_start": [f"t-{n}" for n in range(6)]}, "tune.warm_start", ""),
    ],
)
def test_bad_tunings_are_refused_before_anything_is_sent(
    aws_env: Emulator,
    tmp_path: Path,
    tune: dict[str, Any],
    named: str,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    config = cloud_run(tmp_path, tune=tune)
    assert cli(["tune", "--config", str(config), "--no-wait"]) == 2
    error = capsys.readouterr().err
    assert named in error and said in error
    assert aws_env.received("CreatePipeline") == []
    assert "Contents" not in aws_env.client("s3").list_objects_v2(Bucket=BUCKET)
    assert not (tmp_path / "runs").exists()
