"""Training jobs with the earthseg training image, through the SDK v3 `ModelTrainer`.

`model_trainer` builds the trainer for both places a job runs: SageMaker (an `ml.*`
instance type: a training job) and this machine (`local_cpu` / `local_gpu`: the SDK's
local mode runs the image with docker-compose on the same /opt/ml layout), so a local
run trains exactly as a job would.

A job on SageMaker writes under the run's root (`--output`, default the SageMaker default
bucket), in the SDK's own layout:

    <root>/<base job name>/<job>/output/model.tar.gz    the model artifact
    <root>/<base job name>/<job>/output/output.tar.gz   /opt/ml/output/data: metrics, figures
    <root>/<base job name>/<job>/checkpoints/           /opt/ml/checkpoints, synced as written

Checkpoints are on for every job: the image resumes from them, so a spot job that was
interrupted continues where it stopped, and a new job given an old job's checkpoint URI
continues that job. Channels are `FullyReplicated` also on several instances: every host
needs the channel's `shards.json` beside its shards, and TensorFlow's
MultiWorkerMirroredStrategy shards the batches between the workers itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from earthseg.errors import InputError
from earthseg.launch import aws, lifecycle, s3
from earthseg.launch.role import execution_role
from earthseg.launch.sdk import sdk_session
from earthseg.train.metric_lines import METRIC_DEFINITIONS

if TYPE_CHECKING:
    from sagemaker.train import ModelTrainer

LOCAL_INSTANCE_TYPES = ("local_cpu", "local_gpu")  # the SDK's local mode
CHECKPOINT_DIR = "/opt/ml/checkpoints"
REQUIRED_CHANNELS = ("train", "validation")
OPTIONAL_CHANNELS = ("test",)
TIMESTAMP_LENGTH = 15  # ModelTrainer's "-20260131120000"
SPOT_WAIT_FACTOR = 2  # default spot max wait: twice the max run time
TERMINAL = ("Completed", "Failed", "Stopped")
ROLE_FIX = "grant the role what the message lists, or pass another --role"


@dataclass(frozen=True)
class TrainingSpec:
    """What a training run is: image, data, hyperparameters and where it runs.

    `channels` maps channel names to S3 folder URIs (SageMaker) or local folders (local
    mode). Hyperparameter values become strings, as SageMaker passes them; names and
    values are checked by the same code the image uses, so a typo fails here.
    """

    image: str
    channels: Mapping[str, str]
    role: str | None = None
    hyperparameters: Mapping[str, object] = field(default_factory=dict)
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    spot: bool = False
    max_run_s: int = 24 * 3600
    max_wait_s: int | None = None
    output_uri: str | None = None
    checkpoint_uri: str | None = None
    base_job_name: str = "earthseg"
    volume_size_gb: int = 30
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from earthseg.train.hyperparameters import Hyperparameters

        Hyperparameters.from_mapping(self.string_hyperparameters)
        missing = [name for name in REQUIRED_CHANNELS if name not in self.channels]
        unknown = set(self.channels) - {*REQUIRED_CHANNELS, *OPTIONAL_CHANNELS}
        if missing or unknown:
            raise InputError(
                "training channels",
                f"are {sorted(self.channels)}",
                "give train and validation, and optionally test",
            )
        lifecycle.check_base_name(self.base_job_name, TIMESTAMP_LENGTH, "job name")
        if self.instance_count < 1 or self.max_run_s < 1 or self.volume_size_gb < 1:
            raise InputError(
                "training resources",
                "instance count, max run time and volume size must be positive",
                "give positive values",
            )
        if self.local and self.spot:
            raise InputError("--spot", "applies to SageMaker only", "drop --spot for local runs")
        if self.max_wait_s is not None and not self.spot:
            raise InputError(
                "max wait", "applies to spot training only", "add --spot, or drop the max wait"
            )
        if self.spot and self.wait_s < self.max_run_s:
            raise InputError(
                "max wait",
                f"{self.wait_s} s is shorter than the max run time of {self.max_run_s} s",
                "allow at least the max run time (SageMaker requires it)",
            )

    @property
    def local(self) -> bool:
        """Whether the job runs on this machine (the SDK's local mode)."""
        return self.instance_type in LOCAL_INSTANCE_TYPES

    @property
    def wait_s(self) -> int:
        """Spot: how long the job may take, waiting for capacity included."""
        return self.max_wait_s or SPOT_WAIT_FACTOR * self.max_run_s

    @property
    def string_hyperparameters(self) -> dict[str, str]:
        """Values as SageMaker passes them: strings, non-strings JSON-encoded (True: "true")."""
        return {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in self.hyperparameters.items()
        }


@dataclass(frozen=True)
class TrainingResult:
    """How a job ended and where it left its artifacts."""

    job_name: str
    status: str
    model_uri: str
    output_uri: str = ""
    checkpoint_uri: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    training_s: int | None = None
    billable_s: int | None = None


def model_trainer(
    spec: TrainingSpec, session: boto3.Session | None = None, local_root: Path | None = None
) -> ModelTrainer:
    """The SDK v3 ModelTrainer for `spec`: local mode (in `local_root`) for the local
    instance types, otherwise a SageMaker training job through `session`."""
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    channels = [
        InputData(channel_name=name, data_source=str(source))
        for name, source in spec.channels.items()
    ]
    compute = Compute(
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        volume_size_in_gb=spec.volume_size_gb,
        enable_managed_spot_training=spec.spot,
    )
    common: dict[str, Any] = {
        "training_image": spec.image,
        "base_job_name": spec.base_job_name,
        "compute": compute,
        "input_data_config": channels,
        "hyperparameters": spec.string_hyperparameters,
        "environment": dict(spec.environment),
        "training_input_mode": "File",
    }
    if spec.local:
        if local_root is None:
            raise ValueError(f"{spec.instance_type} runs in local mode: give local_root")
        return ModelTrainer(
            training_mode=Mode.LOCAL_CONTAINER, local_container_root=str(local_root), **common
        )
    if session is None:
        raise ValueError(f"{spec.instance_type} runs on SageMaker: give a boto3 session")
    return _cloud_trainer(spec, session, common)


def _cloud_trainer(
    spec: TrainingSpec, session: boto3.Session, common: dict[str, Any]
) -> ModelTrainer:
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        MetricDefinition,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    not_s3 = {name: uri for name, uri in spec.channels.items() if not s3.is_s3_uri(uri)}
    if not_s3:
        raise InputError(
            "training channels",
            f"{not_s3} are not in S3",
            "upload the dataset first (earthseg upload) and give its s3:// URIs",
        )
    role = execution_role(spec.role)
    root = s3.resolve_root(session, spec.output_uri, "--output")
    stopping = StoppingCondition(
        max_runtime_in_seconds=spec.max_run_s,
        max_wait_time_in_seconds=spec.wait_s if spec.spot else None,
    )
    try:
        trainer = ModelTrainer(
            training_mode=Mode.SAGEMAKER_TRAINING_JOB,
            sagemaker_session=sdk_session(session, root),
            role=role,
            stopping_condition=stopping,
            output_data_config=OutputDataConfig(s3_output_path=str(root.child(spec.base_job_name))),
            # s3_uri None: the SDK's <root>/<base job name>/<job>/checkpoints, per job.
            checkpoint_config=CheckpointConfig(
                s3_uri=spec.checkpoint_uri, local_path=CHECKPOINT_DIR
            ),
            **common,
        )
    except RoleValidationError as error:
        raise InputError(role, f"cannot run SageMaker training: {error}", ROLE_FIX) from None
    return trainer.with_metric_definitions(
        [MetricDefinition(name=item["Name"], regex=item["Regex"]) for item in METRIC_DEFINITIONS]
    )


def run_training(
    session: boto3.Session | None,
    spec: TrainingSpec,
    wait: bool = True,
    local_root: Path | None = None,
    say: Callable[[str], None] = print,
) -> TrainingResult:
    """Run `spec` as a training job and (with `wait`) follow it to the end.

    A job that fails raises an InputError carrying SageMaker's FailureReason: what the
    image wrote to /opt/ml/output/failure. Local mode always waits.
    """
    if spec.local:
        return _run_local(spec, local_root)
    if session is None:
        raise ValueError(f"{spec.instance_type} runs on SageMaker: give a boto3 session")
    aws.account_id(session)  # missing or refused credentials fail here, readably
    trainer = model_trainer(spec, session)
    try:
        trainer.train(wait=False, logs=False)
    except ClientError as error:
        raise lifecycle.refused(error, f"training job {spec.base_job_name}") from None
    # The SDK's documented handle on the job it just created.
    name = str(trainer._latest_training_job.training_job_name)
    say(
        f"training job {name} ({spec.instance_count} x {spec.instance_type}"
        f"{', spot' if spec.spot else ''}) with {spec.image}"
    )
    client = session.client("sagemaker")

    def describe() -> dict[str, Any]:
        return dict(aws.call(client, "describe_training_job", TrainingJobName=name))

    if not wait:
        return _result(describe())
    job = lifecycle.follow(
        describe,
        _training_state,
        lambda job: job["TrainingJobStatus"] in TERMINAL,
        say,
        f"training job {name}",
        f"follow it in the SageMaker console, or stop it: aws sagemaker stop-training-job "
        f"--training-job-name {name}",
    )
    result = _result(job)
    if result.status != "Completed":
        reason = job.get("FailureReason") or job.get("SecondaryStatus", "")
        raise InputError(
            f"training job {name}",
            f"ended {result.status}: {reason}",
            "correct what the reason names and train again; the full log is in CloudWatch "
            f"(/aws/sagemaker/TrainingJobs, streams {name}/algo-*)"
            + (
                f"; a new job given --checkpoints {result.checkpoint_uri} resumes it"
                if result.checkpoint_uri
                else ""
            ),
        )
    return result


def _run_local(spec: TrainingSpec, local_root: Path | None) -> TrainingResult:
    """The SDK's local mode; the image's failure file becomes the error."""
    if local_root is None:
        raise ValueError(f"{spec.instance_type} runs in local mode: give local_root")
    trainer = model_trainer(spec, local_root=local_root)
    # The SDK merges into these folders: a rerun must not pick up an earlier run's files.
    for stale in ("artifacts", "compressed_artifacts"):
        shutil.rmtree(local_root / stale, ignore_errors=True)
    try:
        trainer.train(wait=True)
        error = None
    except RuntimeError as raised:  # the SDK's "Process exited with code: N"
        error = raised
    failure = local_root / "artifacts" / "output" / "failure"
    if failure.is_file() or error is not None:
        reason = failure.read_text().strip() if failure.is_file() else str(error)
        raise InputError(
            f"local training in {spec.image}",
            f"failed: {reason}",
            "correct what the message says and run it again",
        )
    artifacts = local_root / "compressed_artifacts"
    return TrainingResult(
        job_name=spec.base_job_name,
        status="Completed",
        model_uri=str(artifacts / "model.tar.gz"),
        output_uri=str(artifacts / "output.tar.gz"),
    )


def _training_state(job: dict[str, Any]) -> str:
    """One line: status / secondary status: its message, then the latest metrics."""
    line = f"{job['TrainingJobStatus']} / {job.get('SecondaryStatus', '')}"
    transitions = job.get("SecondaryStatusTransitions") or []
    if transitions and transitions[-1].get("StatusMessage"):
        line += f": {transitions[-1]['StatusMessage']}"
    metrics = _final_metrics(job)
    if metrics:
        line += "  " + " ".join(f"{name}={value:.4g}" for name, value in metrics.items())
    return line


def _final_metrics(job: dict[str, Any]) -> dict[str, float]:
    return {item["MetricName"]: float(item["Value"]) for item in job.get("FinalMetricDataList", [])}


def _result(job: dict[str, Any]) -> TrainingResult:
    name = job["TrainingJobName"]
    output = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return TrainingResult(
        job_name=name,
        status=job["TrainingJobStatus"],
        model_uri=job.get("ModelArtifacts", {}).get(
            "S3ModelArtifacts", f"{output}/{name}/output/model.tar.gz"
        ),
        output_uri=f"{output}/{name}/output/output.tar.gz",
        checkpoint_uri=job.get("CheckpointConfig", {}).get("S3Uri", ""),
        metrics=_final_metrics(job),
        training_s=job.get("TrainingTimeInSeconds"),
        billable_s=job.get("BillableTimeInSeconds"),
    )
