"""`earthseg pipeline` on SageMaker as a SageMaker Pipeline: the definition made from
run.yaml (steps, images, parameters, property references, the condition and the
registration), written by --dry-run without AWS, and upserted and started against the
AWS API emulator; `earthseg tune`'s, with a Tune step in place of Train. The definition
is run for real in local containers by tests/docker/test_pipeline_sagemaker_local.py
(which cannot tune: local mode has no tuning jobs; tests/test_tuning_sagemaker.py sends
a tuning to the emulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from earthseg.aws.pipeline_definition import (
    BELOW_BAR,
    CHECK,
    EVALUATE,
    PREPARE,
    REGISTER,
    TRAIN,
    TUNE,
)
from earthseg.aws.pipeline_graph import graph_steps
from earthseg.aws.pipeline_run import DEFINITION_FILE, EXECUTION_FILE, define
from earthseg.cli import main as cli
from earthseg.contracts.evaluation import IOU_JSON_PATH
from earthseg.contracts.opt_ml import CHECKPOINTS_PER_JOB_ENV
from earthseg.errors import InputError
from earthseg.pipeline.config import load_config
from tests.aws_emulator import Emulator
from tests.pipeline_runs import small_run

BUCKET = "earthseg-runs"
ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"
TRACKING_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/earthseg"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
TRAIN_IMAGE = f"{REGISTRY}/earthseg-train:0.1.0-gpu"
SERVE_IMAGE = f"{REGISTRY}/earthseg-serve:0.1.0-gpu"
RUN = f"s3://{BUCKET}/pipelines/tiny"


def cloud_run(folder: Path, **overrides: Any) -> Path:
    settings: dict[str, Any] = {
        "train": {
            "image": TRAIN_IMAGE,
            "instance_type": "ml.g5.xlarge",
            "spot": True,
            "max_run_hours": 2,
            "hyperparameters": {"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2},
        },
        "deploy": {"image": SERVE_IMAGE},
        "aws": {"s3": f"s3://{BUCKET}/pipelines", "role": ROLE, "region": "us-east-1"},
        "register": {"min_test_iou": 0.4},
        "tracking": {"uri": TRACKING_ARN, "experiment": "dust-experiments"},
    }
    return small_run(folder, **{**settings, **overrides})


def definition_of(config_path: Path, tuning: bool = False) -> dict[str, Any]:
    config = load_config(config_path)
    pipeline = define(config, boto3.Session(region_name="us-east-1"), offline=True, tuning=tuning)
    return dict(json.loads(pipeline.definition()))


def steps_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = {step["Name"]: step for step in definition["Steps"]}
    for step in list(steps.values()):
        for branch in ("IfSteps", "ElseSteps"):
            for inner in step["Arguments"].get(branch, []):
                steps[inner["Name"]] = inner
    return steps


def test_the_definition_of_a_run_chains_prepare_train_evaluate_condition_register(
    tmp_path: Path,
) -> None:
    definition = definition_of(cloud_run(tmp_path))
    steps = steps_by_name(definition)
    assert [step["Name"] for step in definition["Steps"]] == [PREPARE, TRAIN, EVALUATE, CHECK]
    assert {name: steps[name]["Type"] for name in steps} == {
        PREPARE: "Processing",
        TRAIN: "Training",
        EVALUATE: "Processing",
        CHECK: "Condition",
        REGISTER: "RegisterModel",
        BELOW_BAR: "Fail",
    }
    parameters = {item["Name"]: item for item in definition["Parameters"]}
    assert parameters["MinTestIoU"]["DefaultValue"] == 0.4
    assert parameters["TrainingInstanceType"]["DefaultValue"] == "ml.g5.xlarge"
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert parameters["ExportLabels"]["DefaultValue"] == f"{RUN}/export/labels/"
    assert parameters["ExportImages"]["DefaultValue"] == f"{RUN}/export/images/"
    assert parameters["epochs"]["DefaultValue"] == "2"  # every hyperparameter, as strings
    assert parameters["learning_rate"]["DefaultValue"] == "0.001"

    prepare = steps[PREPARE]["Arguments"]
    assert prepare["AppSpecification"]["ImageUri"] == TRAIN_IMAGE
    assert prepare["AppSpecification"]["ContainerArguments"][:2] == ["prepare", "--tile-size=64"]
    assert prepare["ProcessingResources"]["ClusterConfig"]["InstanceType"] == {
        "Get": "Parameters.ProcessingInstanceType"
    }
    assert {
        item["InputName"]: item["S3Input"]["S3Uri"] for item in prepare["ProcessingInputs"]
    } == {
        "labels": {"Get": "Parameters.ExportLabels"},
        "images": {"Get": "Parameters.ExportImages"},
    }
    assert steps[PREPARE]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}

    train = steps[TRAIN]["Arguments"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    assert train["HyperParameters"]["epochs"] == {"Get": "Parameters.epochs"}
    assert train["EnableManagedSpotTraining"] is True
    assert train["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    dataset = {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['dataset'].S3Output.S3Uri"}
    assert {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in train["InputDataConfig"]
    } == {
        name: {"Std:Join": {"On": "/", "Values": [dataset, name]}}
        for name in ("train", "validation")
    }
    checkpoints = train["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
    assert checkpoints == [f"{RUN}/checkpoints", {"Get": "Execution.PipelineExecutionId"}]
    assert "CacheConfig" not in steps[TRAIN]  # its checkpoints are the execution's own
    assert train["Environment"] == {  # the job tracks to MLflow and knows its dataset
        "MLFLOW_TRACKING_URI": TRACKING_ARN,
        "MLFLOW_EXPERIMENT_NAME": "dust-experiments",
        "EARTHSEG_DATASET_URI": dataset,
    }

    evaluate = steps[EVALUATE]["Arguments"]
    model_uri = {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert evaluate["AppSpecification"] == {
        "ImageUri": SERVE_IMAGE,
        "ContainerEntrypoint": ["/usr/local/bin/earthseg-entrypoint"],  # the image's own
        "ContainerArguments": ["evaluate"],
    }
    assert {
        item["InputName"]: item["S3Input"]["S3Uri"] for item in evaluate["ProcessingInputs"]
    } == {
        "model": model_uri,
        "test": {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
    }
    assert steps[EVALUATE]["PropertyFiles"] == [
        {
            "PropertyFileName": "Evaluation",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ]

    (condition,) = steps[CHECK]["Arguments"]["Conditions"]
    test_iou = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
            "Path": IOU_JSON_PATH,
        }
    }
    assert condition == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": test_iou,
        "RightValue": {"Get": "Parameters.MinTestIoU"},
    }
    register = steps[REGISTER]["Arguments"]
    assert register["ModelPackageGroupName"] == "tiny"
    assert register["InferenceSpecification"]["Containers"] == [
        {"Image": SERVE_IMAGE, "ModelDataUrl": model_uri}
    ]
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    metrics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]
    assert metrics["Values"][-1] == "evaluation.json"
    metadata = register["CustomerMetadataProperties"]
    assert metadata["earthseg:run"] == "tiny"
    assert metadata["earthseg:train_image"] == TRAIN_IMAGE  # offline: no digest looked up
    assert metadata["earthseg:training_job"] == {"Get": "Steps.Train.TrainingJobName"}
    assert metadata["earthseg:manifest_sha256"]["Std:JsonGet"]["Path"] == "dataset.manifest_sha256"
    assert "test IoU " in json.dumps(steps[BELOW_BAR]["Arguments"]["ErrorMessage"])


def test_a_run_without_images_fetches_them_in_prepare_and_auto_approval(tmp_path: Path) -> None:
    config = cloud_run(tmp_path, register={"approve": "auto"})
    raw = config.read_text().replace("images: export/images\n", "")
    raw += "imagery:\n  url: https://wms.example/wms\n  resolution: 0.005deg\n"
    config.write_text(raw)
    definition = definition_of(config)
    prepare = steps_by_name(definition)[PREPARE]["Arguments"]
    assert [item["InputName"] for item in prepare["ProcessingInputs"]] == ["labels"]
    arguments = prepare["AppSpecification"]["ContainerArguments"]
    assert "--url=https://wms.example/wms" in arguments
    parameters = {item["Name"]: item for item in definition["Parameters"]}
    assert "ExportImages" not in parameters
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "Approved"


def test_dry_run_writes_the_definition_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing answers there
    config = cloud_run(tmp_path)
    assert cli(["pipeline", "--config", str(config), "--dry-run"]) == 0
    assert "detect: not part of the SageMaker Pipeline" in capsys.readouterr().out
    written = json.loads((tmp_path / "runs" / "tiny" / DEFINITION_FILE).read_text())
    assert written == definition_of(config)
    # The picture beside it, drawn from the definition's own references.
    graph = graph_steps(written)
    assert {name: (step.after, step.branch) for name, step in graph.items()} == {
        PREPARE: (set(), ""),
        TRAIN: ({PREPARE}, ""),
        EVALUATE: ({TRAIN}, ""),
        CHECK: ({EVALUATE}, ""),
        REGISTER: ({CHECK}, "if"),
        BELOW_BAR: ({CHECK}, "else"),
    }
    picture = tmp_path / "runs" / "tiny" / "pipeline.png"
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_the_pipeline_is_upserted_and_started_in_sagemaker(
    aws_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    digests = push_images(aws_env)
    config = cloud_run(tmp_path)
    assert cli(["pipeline", "--config", str(config), "--no-wait"]) == 0
    assert "left running" in capsys.readouterr().out
    sagemaker = aws_env.client("sagemaker")
    described = sagemaker.describe_pipeline(PipelineName="tiny")
    folder = tmp_path / "runs" / "tiny"
    assert json.loads(described["PipelineDefinition"]) == json.loads(
        (folder / DEFINITION_FILE).read_text()
    )
    assert described["RoleArn"] == ROLE
    register = steps_by_name(json.loads(described["PipelineDefinition"]))[REGISTER]
    metadata = register["Arguments"]["CustomerMetadataProperties"]
    assert metadata["earthseg:train_image"] == f"{TRAIN_IMAGE}@{digests['earthseg-train']}"
    assert metadata["earthseg:serve_image"] == f"{SERVE_IMAGE}@{digests['earthseg-serve']}"
    (execution,) = sagemaker.list_pipeline_executions(PipelineName="tiny")[
        "PipelineExecutionSummaries"
    ]
    assert (
        json.loads((folder / EXECUTION_FILE).read_text())["execution"]
        == execution["PipelineExecutionArn"]
    )
    uploaded = aws_env.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="pipelines/tiny/export/")
    keys = {item["Key"].split("/")[3] for item in uploaded["Contents"]}
    assert keys == {"labels", "images"}
    group = sagemaker.describe_model_package_group(ModelPackageGroupName="tiny")
    assert group["ModelPackageGroupName"] == "tiny"

    # A rerun that changes what parameters hold (hyperparameters, the bar) leaves the
    # pipeline as it is: the new execution carries the values.
    changed = cloud_run(tmp_path, register={"min_test_iou": 0.6})
    raw = changed.read_text().replace("epochs: 2", "epochs: 3")
    changed.write_text(raw)
    assert cli(["pipeline", "--config", str(changed), "--no-wait"]) == 0
    assert "unchanged; this execution runs with MinTestIoU=0.6, epochs=3" in capsys.readouterr().out
    assert aws_env.received("UpdatePipeline") == []
    again = sagemaker.describe_pipeline(PipelineName="tiny")
    assert again["PipelineDefinition"] == described["PipelineDefinition"]
    newest = json.loads((folder / EXECUTION_FILE).read_text())["execution"]
    given = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=newest)
    assert {item["Name"]: item["Value"] for item in given["PipelineParameters"]} == {
        "MinTestIoU": "0.6",
        "epochs": "3",
    }
    # A change of the steps themselves (here managed spot training) redefines it.
    raw = raw.replace("spot: true", "spot: false")
    changed.write_text(raw)
    assert cli(["pipeline", "--config", str(changed), "--no-wait"]) == 0
    assert len(aws_env.received("UpdatePipeline")) == 1
    executions = sagemaker.list_pipeline_executions(PipelineName="tiny")
    assert len(executions["PipelineExecutionSummaries"]) == 3


def push_images(emulator: Emulator) -> dict[str, str]:
    """The two images in the emulator's ECR, as `make push` leaves them; their digests."""
    ecr = emulator.client("ecr")
    digests = {}
    for image in (TRAIN_IMAGE, SERVE_IMAGE):
        repository, tag = image.split("/", 1)[1].split(":")
        ecr.create_repository(repositoryName=repository)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{repository}"},
            "layers": [],
        }
        pushed = ecr.put_image(
            repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
        )
        digests[repository] = pushed["image"]["imageId"]["imageDigest"]
    return digests


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"train": {"instance_type": "ml.g5.xlarge"}}, "train.image"),
        ({"name": "a" * 70}, "name"),
        ({"register": {"group": "no spaces allowed"}}, "register.group"),
        ({"register": {"min_test_iou": 1.5}}, "register.min_test_iou"),
    ],
)
def test_bad_pipeline_configs_are_refused_before_anything_starts(
    tmp_path: Path, change: dict[str, Any], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cloud_run(tmp_path, **change)
    assert cli(["pipeline", "--config", str(config), "--dry-run"]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_condition_reads_a_metric_the_evaluation_produces() -> None:
    from earthseg.aws.pipeline_definition import condition_path

    assert condition_path("test_iou") == IOU_JSON_PATH
    with pytest.raises(InputError, match="test_accuracy"):
        condition_path("test_accuracy")


def test_status_and_follow_read_an_execution_step_by_step(
    aws_env: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """moto has no ListPipelineExecutionSteps and never runs an execution: its answers are
    scripted here as SageMaker's API reference shapes them, one per call."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    push_images(aws_env)
    config = cloud_run(tmp_path)
    assert cli(["pipeline", "--config", str(config), "--no-wait"]) == 0
    capsys.readouterr()
    reason = "test IoU 0.31 is below register.min_test_iou (MinTestIoU = 0.4)"
    cached = {"CacheHitResult": {"SourcePipelineExecutionArn": "arn:aws:sagemaker:x"}}
    scripts = [
        [{"StepName": PREPARE, "StepStatus": "Executing"}],
        [
            {"StepName": PREPARE, "StepStatus": "Succeeded", **cached},
            {"StepName": TRAIN, "StepStatus": "Executing"},
        ],
        [
            {"StepName": PREPARE, "StepStatus": "Succeeded", **cached},
            {"StepName": TRAIN, "StepStatus": "Succeeded"},
            {"StepName": EVALUATE, "StepStatus": "Succeeded"},
            {"StepName": CHECK, "StepStatus": "Succeeded"},
            {"StepName": BELOW_BAR, "StepStatus": "Failed", "FailureReason": reason},
        ],
    ]
    answers = iter(scripts + [scripts[-1]] * 10)

    def list_steps(self: SageMakerResponse) -> ActionResult:
        return ActionResult({"PipelineExecutionSteps": next(answers)})

    monkeypatch.setattr(
        SageMakerResponse, "list_pipeline_execution_steps", list_steps, raising=False
    )
    aws_env.script_states(
        monkeypatch,
        "describe_pipeline_execution",
        [{"PipelineExecutionStatus": "Executing"}] * 3 + [{"PipelineExecutionStatus": "Failed"}],
    )

    assert cli(["pipeline", "--status", "tiny"]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].endswith(": Executing") and status[1:] == [f"  {PREPARE}: Executing"]

    assert cli(["pipeline", "--config", str(config), "--follow"]) == 2
    followed = capsys.readouterr()
    lines = [line.split("] ", 1)[1] for line in followed.out.splitlines() if "] " in line]
    assert lines[0] == f"Executing: {PREPARE} Succeeded (cached), {TRAIN} Executing"
    assert lines[-1].startswith(f"Failed: {PREPARE} Succeeded (cached), {TRAIN} Succeeded")
    assert f"ended Failed: {BELOW_BAR}: {reason}" in followed.err


TUNE_SECTION: dict[str, Any] = {
    "trials": 6,
    "parallel": 3,
    "ranges": {
        "learning_rate": {"min": 0.0003, "max": 0.01, "scale": "log"},
        "filters": {"values": [16, 24, 32]},
        "depth": {"min": 2, "max": 4},
        "augment": {"values": [True, False]},
    },
    "warm_start": ["tiny-tune-0101", "tiny-tune-0102"],
}


def test_a_tuning_replaces_train_with_a_tune_step_whose_best_model_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from earthseg.train.metric_lines import METRIC_DEFINITIONS
    from earthseg.train.tracking import PARENT_RUN_ENV

    config = cloud_run(tmp_path, tune=TUNE_SECTION)
    assert cli(["tune", "--config", str(config), "--dry-run"]) == 0
    assert "nothing was sent to AWS" in capsys.readouterr().out
    folder = tmp_path / "runs" / "tiny"
    definition = json.loads((folder / DEFINITION_FILE).read_text())
    assert definition == definition_of(config, tuning=True)
    assert [step["Name"] for step in definition["Steps"]] == [PREPARE, TUNE, EVALUATE, CHECK]
    graph = graph_steps(definition)
    assert {name: step.after for name, step in graph.items()} == {
        PREPARE: set(),
        TUNE: {PREPARE},
        EVALUATE: {TUNE},
        CHECK: {EVALUATE},
        REGISTER: {CHECK},
        BELOW_BAR: {CHECK},
    }
    assert graph[TUNE].kind == "Tuning"
    assert graph[TUNE].detail == "earthseg-train\n6 trials, 3 at a time"
    assert (folder / "pipeline.png").read_bytes().startswith(b"\x89PNG")

    # What a rerun may change stays a parameter; what the tuner searches is its own.
    parameters = {item["Name"]: item for item in definition["Parameters"]}
    assert parameters["MlflowParentRunId"]["DefaultValue"] == ""  # the launcher's to give
    assert parameters["TrainingInstanceType"]["DefaultValue"] == "ml.g5.xlarge"
    assert parameters["epochs"]["DefaultValue"] == "2"
    assert not {"learning_rate", "filters", "depth", "augment"} & set(parameters)

    tune = steps_by_name(definition)[TUNE]["Arguments"]
    assert tune["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:iou"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {
                    "Name": "learning_rate",
                    "MinValue": "0.0003",
                    "MaxValue": "0.01",
                    "ScalingType": "Logarithmic",
                }
            ],
            "IntegerParameterRanges": [  # depth takes whole numbers: searched as such
                {"Name": "depth", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}
            ],
            "CategoricalParameterRanges": [  # JSON, as the image reads hyperparameters
                {"Name": "augment", "Values": ["true", "false"]},  # run.yaml's order
                {"Name": "filters", "Values": ["16", "24", "32"]},
            ],
        },
        "TrainingJobEarlyStoppingType": "Auto",
    }
    job = tune["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"] == {
        "TrainingImage": TRAIN_IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": METRIC_DEFINITIONS,
    }
    assert job["RoleArn"] == ROLE
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    checkpoints = job["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
    assert checkpoints == [f"{RUN}/checkpoints", {"Get": "Execution.PipelineExecutionId"}]
    assert job["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert job["OutputDataConfig"]["S3OutputPath"] == f"{RUN}/jobs"
    assert job["StaticHyperParameters"] == {
        name: {"Get": f"Parameters.{name}"}
        for name in ("epochs", "batch_size", "patience", "seed", "steps_per_epoch")
    }
    dataset = {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['dataset'].S3Output.S3Uri"}
    assert {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in job["InputDataConfig"]
    } == {
        name: {"Std:Join": {"On": "/", "Values": [dataset, name]}}
        for name in ("train", "validation")
    }
    assert job["Environment"] == {  # every trial tracks, as a child of the launcher's run
        "MLFLOW_TRACKING_URI": TRACKING_ARN,
        "MLFLOW_EXPERIMENT_NAME": "dust-experiments",
        "EARTHSEG_DATASET_URI": dataset,
        PARENT_RUN_ENV: {"Get": "Parameters.MlflowParentRunId"},
        CHECKPOINTS_PER_JOB_ENV: "1",  # one checkpoint URI for all: each trial its folder
    }
    assert tune["WarmStartConfig"] == {
        "WarmStartType": "IdenticalDataAndAlgorithm",
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "tiny-tune-0101"},
            {"HyperParameterTuningJobName": "tiny-tune-0102"},
        ],
    }

    # The best trial's model is evaluated and registered, and named as the version's job.
    best_model = {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                BUCKET,
                "pipelines/tiny/jobs",  # where its training job definition puts models
                {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"},
                "output/model.tar.gz",
            ],
        }
    }
    evaluate = steps_by_name(definition)[EVALUATE]["Arguments"]
    (model,) = [item for item in evaluate["ProcessingInputs"] if item["InputName"] == "model"]
    assert model["S3Input"]["S3Uri"] == best_model
    register = steps_by_name(definition)[REGISTER]["Arguments"]
    assert register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == best_model
    metadata = register["CustomerMetadataProperties"]
    assert metadata["earthseg:training_job"] == {
        "Get": "Steps.Tune.BestTrainingJob.TrainingJobName"
    }


def test_a_tuning_minimising_a_loss_without_early_stopping_or_tracking(tmp_path: Path) -> None:
    config = cloud_run(
        tmp_path,
        tracking={},
        tune={
            "objective": "val_loss",
            "early_stopping": False,
            "ranges": {"batch_size": {"values": [8, 16]}},
        },
    )
    definition = definition_of(config, tuning=True)
    tune = steps_by_name(definition)[TUNE]["Arguments"]
    settings = tune["HyperParameterTuningJobConfig"]
    assert settings["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "validation:loss",
    }
    assert settings["TrainingJobEarlyStoppingType"] == "Off"
    assert settings["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 8,
        "MaxParallelTrainingJobs": 2,
    }
    assert "WarmStartConfig" not in tune
    # Not tracked: no parent run to pass, the trials' environment only names their data
    # and that each checkpoints into a folder of its own.
    assert "MlflowParentRunId" not in {item["Name"] for item in definition["Parameters"]}
    assert set(tune["TrainingJobDefinition"]["Environment"]) == {
        "EARTHSEG_DATASET_URI",
        CHECKPOINTS_PER_JOB_ENV,
    }
