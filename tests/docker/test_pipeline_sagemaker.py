"""`earthseg pipeline` on SageMaker, with AWS emulated: the control plane (S3, training
job, model, endpoint config, endpoint) is moto in server mode, InvokeEndpoint goes to the
runtime stand-in in front of the real serve container.

moto's training jobs complete at once without running anything, so the first run stops
where the artifact should be; the test then puts there the artifact the training image
made in this session, as SageMaker would have, and the rerun resumes: the job is not
started again, the rest of the chain runs for real.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from earthseg.cli import main as cli
from earthseg.local.endpoint import local_endpoint
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from tests.aws_emulator import Emulator
from tests.docker.conftest import TrainedJob
from tests.pipeline_runs import small_run, stage_lines
from tests.runtime_front import RuntimeFront, runtime_front

pytestmark = pytest.mark.docker

BUCKET = "earthseg-runs"
ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
TRAIN_IMAGE = f"{REGISTRY}/earthseg-train:0.1.0-gpu"
SERVE_IMAGE = f"{REGISTRY}/earthseg-serve:0.1.0-gpu"


@pytest.fixture(scope="module")
def served(
    serve_image: str, trained_job: TrainedJob, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeFront]:
    """The session's trained model in the real serve container, behind the runtime."""
    assert trained_job.status == 0, trained_job.stdout + trained_job.stderr
    log = tmp_path_factory.mktemp("sagemaker-serve") / "serve.log"
    with (
        local_endpoint(serve_image, trained_job.opt_ml / "model", log) as server,
        runtime_front({"*": server.url}) as runtime,
    ):
        yield runtime


def archive(folder: Path, path: Path, arcname: str = "") -> Path:
    """A .tar.gz of `folder`'s content, as SageMaker packs /opt/ml/model and output."""
    with tarfile.open(path, "w:gz") as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=f"{arcname}{entry.name}")
    return path


def test_pipeline_on_sagemaker_sends_the_right_requests_and_resumes_a_finished_job(
    aws_env: Emulator,
    served: RuntimeFront,
    trained_job: TrainedJob,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", served.url)
    aws_env.client("s3").create_bucket(Bucket=BUCKET)
    config = small_run(
        tmp_path,
        train={
            "image": TRAIN_IMAGE,
            "instance_type": "ml.g5.xlarge",
            "spot": True,
            "max_run_hours": 2,
            "hyperparameters": {"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2},
        },
        deploy={"image": SERVE_IMAGE, "instance_type": "ml.m5.large"},
        detect={},  # one endpoint here; the detect stage is tested in the local runs
        aws={"s3": f"s3://{BUCKET}/pipelines", "role": ROLE},
    )

    assert cli(["pipeline", "--config", str(config)]) == 2
    first = capsys.readouterr()
    assert stage_lines(first.out) == {"preprocess": "finished", "train": "running"}
    assert "could not be downloaded" in first.err

    sagemaker = aws_env.client("sagemaker")
    (job,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    prefix = f"s3://{BUCKET}/pipelines/tiny"
    assert described["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    assert described["RoleArn"] == ROLE
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in described["InputDataConfig"]
    } == {name: f"{prefix}/dataset/{name}/" for name in ("train", "validation", "test")}
    assert described["HyperParameters"] == {
        "epochs": "2",
        "batch_size": "8",
        "filters": "8",
        "depth": "2",
    }
    assert described["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    assert described["CheckpointConfig"]["S3Uri"].startswith(f"{prefix}/jobs/")
    (request,) = aws_env.received("CreateTrainingJob")
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS

    # What SageMaker uploads when the job ends: the artifact and the job's reports.
    model_uri = described["ModelArtifacts"]["S3ModelArtifacts"]
    output_uri = model_uri.replace("model.tar.gz", "output.tar.gz")
    s3 = aws_env.client("s3")
    for uri, folder, arcname in (
        (model_uri, trained_job.opt_ml / "model", ""),
        (output_uri, trained_job.opt_ml / "output" / "data", "data/"),
    ):
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        s3.upload_file(str(archive(folder, tmp_path / "upload.tar.gz", arcname)), bucket, key)

    assert cli(["pipeline", "--config", str(config)]) == 0
    second = capsys.readouterr().out
    assert stage_lines(second) == {
        "preprocess": "kept",
        "train": "finished",
        "invoke": "finished",
        "report": "finished",
    }
    assert "completed in an earlier run" in second
    assert len(aws_env.received("CreateTrainingJob")) == 1  # resumed, not paid for twice

    (model,) = aws_env.received("CreateModel")
    assert model["PrimaryContainer"] == {"Image": SERVE_IMAGE, "ModelDataUrl": model_uri}
    assert model["ExecutionRoleArn"] == ROLE
    (endpoint_config,) = aws_env.received("CreateEndpointConfig")
    assert endpoint_config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    endpoint = model["ModelName"]
    assert {request["endpoint"] for request in served.requests} == {endpoint}
    assert sagemaker.list_endpoints()["Endpoints"] == []  # deleted at the end (keep: false)

    run = tmp_path / "runs" / "tiny"
    manifest = json.loads((run / "dataset" / "manifest.json").read_text())
    for item in manifest["inputs"]:
        if item["split"] == "test":
            assert (run / "predictions" / f"{Path(item['image']['file']).stem}.tif").exists()
    assert json.loads((run / "model" / "earthseg.json").read_text())["threshold"] >= 0
    assert (run / "report" / "report.html").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["aws"]["role"] == ROLE
