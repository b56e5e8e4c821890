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

The job's environment carries what the launcher knows and the job cannot: where to track
the run in MLflow (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`) and where the dataset
lies (`EARTHSEG_DATASET_URI`); see earthseg.train.tracking.

A locked-down account's settings (`Security`: VPC, KMS key, network isolation, tags) go
into every job's request through `job_networking`, `job_tags` and the key on its volume
and output, here and in the pipeline's and the tuner's trainers alike; a local run
ignores them, saying so once.

Checkpoints are on for every job: the image resumes from them, so a spot job that was
interrupted continues where it stopped, and a new job given an old job's checkpoint URI
continues that job. Channels are `FullyReplicated` also on several instances: every host
needs the channel's `shards.json` beside its shards, and TensorFlow's
MultiWorkerMirroredStrategy shards the batches between the workers itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws import datasets, jobs, s3
from earthseg.aws.names import DEFAULT_NAME, TRAINING_JOB, check_name
from earthseg.aws.resources import TrainingResources
from earthseg.aws.role import execution_role
from earthseg.aws.sdk import sdk_session
from earthseg.aws.security import NO_SECURITY, Security
from earthseg.aws.session import account_id
from earthseg.contracts.channels import check_channel_names
from earthseg.contracts.opt_ml import CHECKPOINTS, in_container
from earthseg.errors import InputError
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from earthseg.train.tracking import (
    EXPERIMENT_ENV,
    TRACKING_URI_ENV,
    check_cloud_uri,
    job_environment,
)

if TYPE_CHECKING:
    from sagemaker.core.shapes import Tag
    from sagemaker.core.training.configs import Networking
    from sagemaker.train import ModelTrainer

ROLE_FIX = "grant the role what the message lists, or pass another --role"


@dataclass(frozen=True)
class TrainingSpec:
    """What a training run is: image, data, hyperparameters and where it runs.

    `channels` maps channel names to S3 folder URIs (SageMaker) or local folders (local
    mode). Hyperparameters go to the job as SageMaker passes them (strings), and only
    those given: the image's defaults apply to the others. `environment`: the job's
    environment variables (tracking, `job_environment`). `security`: what a locked-down
    account demands of the job (its tags name the run by `base_job_name`).
    """

    image: str
    channels: Mapping[str, str]
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    resources: TrainingResources = field(default_factory=TrainingResources)
    role: str | None = None
    output_uri: str | None = None
    checkpoint_uri: str | None = None
    base_job_name: str = DEFAULT_NAME
    environment: Mapping[str, str] = field(default_factory=dict)
    security: Security = NO_SECURITY

    def __post_init__(self) -> None:
        check_channel_names(self.channels, "training channels")
        check_name(self.base_job_name, (TRAINING_JOB,), "job name")


@dataclass(frozen=True)
class TrainingResult:
    """How a job ended and where it left its artifacts."""

    job_name: str
    model_uri: str
    output_uri: str = ""
    checkpoint_uri: str = ""
    training_s: int | None = None
    billable_s: int | None = None

    @property
    def spot_saving(self) -> float | None:
        """The share of the training time spot did not bill, when SageMaker said both."""
        if not self.billable_s or not self.training_s:
            return None
        return 1 - self.billable_s / self.training_s


def model_trainer(
    spec: TrainingSpec, session: boto3.Session | None = None, local_root: Path | None = None
) -> ModelTrainer:
    """The SDK v3 ModelTrainer for `spec`: local mode (in `local_root`) for the local
    instance types, otherwise a SageMaker training job through `session`."""
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    resources = spec.resources
    channels = [
        InputData(channel_name=name, data_source=str(source))
        for name, source in spec.channels.items()
    ]
    compute = Compute(
        instance_type=resources.instance_type,
        instance_count=resources.instances,
        volume_size_in_gb=resources.volume_size_gb,
        enable_managed_spot_training=resources.spot,
        volume_kms_key_id=None if resources.local else spec.security.kms_key,
    )
    common: dict[str, Any] = {
        "training_image": spec.image,
        "base_job_name": spec.base_job_name,
        "compute": compute,
        "input_data_config": channels,
        "hyperparameters": spec.hyperparameters.as_strings(),
        "training_input_mode": "File",
        "environment": dict(spec.environment),
    }
    if resources.local:
        if local_root is None:
            raise ValueError(f"{resources.instance_type} runs in local mode: give local_root")
        return ModelTrainer(
            training_mode=Mode.LOCAL_CONTAINER, local_container_root=str(local_root), **common
        )
    if session is None:
        raise ValueError(f"{resources.instance_type} runs on SageMaker: give a boto3 session")
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
    resources = spec.resources
    stopping = StoppingCondition(
        max_runtime_in_seconds=resources.max_run_s,
        max_wait_time_in_seconds=resources.wait_s if resources.spot else None,
    )
    try:
        trainer = ModelTrainer(
            training_mode=Mode.SAGEMAKER_TRAINING_JOB,
            sagemaker_session=sdk_session(session, root),
            role=role,
            stopping_condition=stopping,
            output_data_config=OutputDataConfig(
                s3_output_path=str(root.child(spec.base_job_name)),
                kms_key_id=spec.security.kms_key,
            ),
            # s3_uri None: the SDK's <root>/<base job name>/<job>/checkpoints, per job.
            checkpoint_config=CheckpointConfig(
                s3_uri=spec.checkpoint_uri, local_path=in_container(CHECKPOINTS)
            ),
            networking=job_networking(spec.security),
            tags=job_tags(spec.security, spec.base_job_name),
            **common,
        )
    except RoleValidationError as error:
        raise InputError(role, f"cannot run SageMaker training: {error}", ROLE_FIX) from None
    return trainer.with_metric_definitions(
        [MetricDefinition(name=item["Name"], regex=item["Regex"]) for item in METRIC_DEFINITIONS]
    )


def job_networking(security: Security) -> Networking | None:
    """A ModelTrainer's `networking`: CreateTrainingJob's VpcConfig, EnableNetworkIsolation
    and EnableInterContainerTrafficEncryption as `security.training_job()` gives them
    (None: none of them)."""
    from sagemaker.core.training.configs import Networking

    request = security.training_job()
    if not request:
        return None
    vpc = request.get("VpcConfig") or {}
    return Networking(
        subnets=vpc.get("Subnets"),
        security_group_ids=vpc.get("SecurityGroupIds"),
        enable_network_isolation=request.get("EnableNetworkIsolation"),
        enable_inter_container_traffic_encryption=request.get(
            "EnableInterContainerTrafficEncryption"
        ),
    )


def job_tags(security: Security, run: str) -> list[Tag]:
    """A ModelTrainer's `tags`: the run's name and the user's tags."""
    from sagemaker.core.shapes import Tag

    return [Tag(key=item["Key"], value=item["Value"]) for item in security.tag_list(run)]


def run_training(
    session: boto3.Session | None,
    spec: TrainingSpec,
    local_root: Path | None = None,
    say: Callable[[str], None] = print,
) -> TrainingResult:
    """Run `spec` as a training job and follow it to the end (local mode: in `local_root`).

    A job that fails raises an InputError carrying SageMaker's FailureReason: what the
    image wrote to /opt/ml/output/failure.
    """
    resources = spec.resources
    if resources.local:
        spec.security.ignored_locally(say)
        return _run_local(spec, local_root)
    if session is None:
        raise ValueError(f"{resources.instance_type} runs on SageMaker: give a boto3 session")
    account_id(session)  # missing or refused credentials fail here, readably
    trainer = model_trainer(spec, session)
    try:
        trainer.train(wait=False, logs=False)
    except ClientError as error:
        raise jobs.refused(error, f"training job {spec.base_job_name}") from None
    # The SDK's documented handle on the job it just created.
    name = str(trainer._latest_training_job.training_job_name)
    say(
        f"training job {name} ({resources.instances} x {resources.instance_type}"
        f"{', spot' if resources.spot else ''}) with {spec.image}"
    )
    return _result(jobs.follow_job(session, jobs.TRAINING_JOB, name, _training_state, say))


def launch_training(
    session: boto3.Session,
    image: str,
    data: str,
    hyperparameters: Hyperparameters,
    resources: TrainingResources,
    *,
    name: str = DEFAULT_NAME,
    role: str | None = None,
    output: str | None = None,
    checkpoints: str | None = None,
    say: Callable[[str], None] = print,
    environ: Mapping[str, str] = os.environ,
    security: Security = NO_SECURITY,
) -> TrainingResult:
    """`earthseg train --image`: a training job on `data`, a dataset in S3 (an s3:// folder
    holding the channels) or a local dataset folder, uploaded first under `output` (default:
    the SageMaker default bucket), where the job writes too. With MLFLOW_TRACKING_URI in
    `environ`, the job tracks there (`job_environment`). `security`: the job's VPC, KMS
    key (also on the dataset uploaded: SSE-KMS), isolation and tags."""
    root = s3.resolve_root(session, output, "--output")
    if s3.is_s3_uri(data):
        location = s3.parse_s3_uri(data, "--data")
        channels = datasets.s3_channels(session, location)
        dataset = location.folder
    else:
        uploaded = datasets.upload(
            session,
            Path(data),
            say=say,
            root=root,
            name=name,
            encryption=security.s3_encryption(),
        )
        channels, dataset = uploaded.channels, uploaded.folder
    tracking_uri = environ.get(TRACKING_URI_ENV)
    if tracking_uri:
        check_cloud_uri(tracking_uri, TRACKING_URI_ENV)
    spec = TrainingSpec(
        image=image,
        channels=channels,
        hyperparameters=hyperparameters,
        resources=resources,
        role=role,
        output_uri=str(root),
        checkpoint_uri=checkpoints and s3.parse_s3_uri(checkpoints, "--checkpoints").folder,
        base_job_name=name,
        environment=job_environment(
            tracking_uri, environ.get(EXPERIMENT_ENV) or name, str(dataset)
        ),
        security=security,
    )
    return run_training(session, spec, say=say)


def _run_local(spec: TrainingSpec, local_root: Path | None) -> TrainingResult:
    """The SDK's local mode; the image's failure file becomes the error."""
    if local_root is None:
        raise ValueError(f"{spec.resources.instance_type} runs in local mode: give local_root")
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
        model_uri=job.get("ModelArtifacts", {}).get(
            "S3ModelArtifacts", f"{output}/{name}/output/model.tar.gz"
        ),
        output_uri=f"{output}/{name}/output/output.tar.gz",
        checkpoint_uri=job.get("CheckpointConfig", {}).get("S3Uri", ""),
        training_s=job.get("TrainingTimeInSeconds"),
        billable_s=job.get("BillableTimeInSeconds"),
    )
