"""The SageMaker Pipeline `earthseg pipeline` sends to SageMaker, run for real: the same
definition through the SDK's LocalPipelineSession, its Processing and Training steps in
the real images in local containers, S3 being the AWS API emulator's. Local mode cannot
register a model, so the Register step's request, resolved from the execution, goes to
the emulator; the results come home into the run folder and the report is written, as
after a run on SageMaker."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from earthseg.aws.pipeline_definition import (
    CHECK,
    EVALUATE,
    PREPARE,
    REGISTER,
    TRAIN,
    build_pipeline,
)
from earthseg.aws.pipeline_run import fetch_results, lineage, pipeline_inputs, upload_export
from earthseg.aws.registry import describe_version, ensure_group, register
from earthseg.contracts.evaluation import read_evaluation
from earthseg.pipeline.config import load_config
from tests.aws_emulator import Emulator
from tests.pipeline_runs import small_run

pytestmark = pytest.mark.docker

BUCKET = "earthseg-runs"
ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"
LOCAL = "local"  # the SDK's local mode instance type


def test_the_sagemaker_pipeline_runs_in_local_containers(
    aws_env: Emulator, train_image: str, serve_image: str, tmp_path: Path
) -> None:
    from sagemaker.core.workflow.pipeline_context import LocalPipelineSession
    from sagemaker.mlops.local.local_pipeline_session import (
        LocalPipelineSession as MlopsLocalSession,
    )
    from sagemaker.mlops.local.pipeline import LocalPipelineExecutor

    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    config = load_config(
        small_run(
            tmp_path,
            train={"image": train_image, "instance_type": "ml.m5.xlarge"},
            deploy={"image": serve_image},
            aws={"s3": f"s3://{BUCKET}/pipelines", "role": ROLE, "region": "us-east-1"},
            register={"min_test_iou": 0.0},  # a 2-epoch model: the bar only needs a number
        )
    )
    aws = boto3.Session()
    upload_export(config, aws, say=lambda _: None)
    session = LocalPipelineSession(
        boto_session=aws, default_bucket=BUCKET, s3_endpoint_url=aws_env.url
    )
    inputs = pipeline_inputs(config)
    full = build_pipeline(config, inputs, session, ROLE, lineage(config, None))
    local = build_pipeline(config, inputs, session, ROLE, lineage(config, None), registration=False)
    assert json.loads(local.definition())["Steps"][:3] == json.loads(full.definition())["Steps"][:3]

    # The SDK's Pipeline.create/start in local mode call a client method that moved to
    # sagemaker.mlops.local's session (SDK 3.27): that session runs it instead.
    runner = MlopsLocalSession(boto_session=aws, default_bucket=BUCKET, s3_endpoint_url=aws_env.url)
    runner.create_pipeline(local, "earthseg run tiny")
    execution = runner.start_pipeline_execution(
        PipelineName=local.name,
        PipelineParameters={
            "ProcessingInstanceType": LOCAL,
            "TrainingInstanceType": LOCAL,
            "EvaluationInstanceType": LOCAL,
        },
    )
    steps = {step["StepName"]: step for step in execution.list_steps()["PipelineExecutionSteps"]}
    assert {name: step["StepStatus"] for name, step in steps.items()} == {
        PREPARE: "Succeeded",
        TRAIN: "Succeeded",
        EVALUATE: "Succeeded",
        CHECK: "Succeeded",
    }, [(step["StepName"], step.get("FailureReason")) for step in steps.values()]
    assert steps[CHECK]["Metadata"]["Condition"]["Outcome"] is True  # "true" on SageMaker

    # The registration SageMaker would make, resolved from this execution.
    (check,) = [step for step in full.steps if step.name == CHECK]
    (register_step,) = check.if_steps
    assert register_step.name == REGISTER
    request = LocalPipelineExecutor(execution, runner).evaluate_step_arguments(register_step)
    results = {
        name: execution.step_execution[name].properties for name in (PREPARE, TRAIN, EVALUATE)
    }
    model_uri = results[TRAIN]["ModelArtifacts"]["S3ModelArtifacts"]
    assert request["InferenceSpecification"]["Containers"] == [
        {"Image": serve_image, "ModelDataUrl": model_uri}
    ]
    ensure_group(aws, config.model_package_group)
    version = describe_version(aws, register(aws, request).arn)
    assert version.status == "PendingManualApproval"
    assert version.model_data == (model_uri,)
    assert version.metadata["earthseg:training_job"] == results[TRAIN]["TrainingJobName"]
    assert version.metadata["earthseg:manifest_sha256"].startswith("sha256:")

    # The results come home, and the report is written from them.
    report = fetch_results(config, aws, results, say=lambda _: None)
    layout = Path(config.folder)
    evaluation = read_evaluation(layout / "evaluation" / "evaluation.json")
    assert evaluation.metrics["test_iou"].value is not None
    assert version.metadata["earthseg:manifest_sha256"] == evaluation.dataset.manifest_sha256
    assert (layout / "model" / "earthseg.json").is_file()
    assert (layout / "training" / "metrics.json").is_file()
    markdown = (report / "report.md").read_text()
    for scene in evaluation.scenes:
        assert scene.scene in markdown
