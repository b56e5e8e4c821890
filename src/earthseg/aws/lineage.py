"""What a registered model version came from and went to, for `earthseg models show`:
its evaluation (read leniently: a version may come from another earthseg release), the
training job that made it, and the endpoints serving it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws import jobs
from earthseg.aws.registry import (
    TRAINING_JOB_KEY,
    TRAINING_OUTPUT,
    ModelVersion,
    as_mapping,
    is_missing,
)
from earthseg.aws.s3 import parse_s3_uri, read_json
from earthseg.aws.session import call
from earthseg.errors import InputError


@dataclass(frozen=True)
class Evaluation:
    """What `earthseg evaluate` wrote (evaluation.json), as far as it could be read."""

    uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    scenes: int | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)  # from the model card
    problem: str = ""  # why the file could not be read


@dataclass(frozen=True)
class TrainingJob:
    name: str
    status: str = ""
    instance: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why it could not be described


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    status: str
    model: str


@dataclass(frozen=True)
class Lineage:
    """A version, and what it came from and went to."""

    version: ModelVersion
    evaluation: Evaluation | None
    training_job: TrainingJob | None
    deployments: list[Deployment]


def lineage(session: boto3.Session, version: ModelVersion) -> Lineage:
    """What `version` was trained on (its metadata), its metrics (the evaluation JSON its
    model metrics name), the training job that made it (from the metadata, or the model
    data's path: <output>/<job>/output/model.tar.gz) and the endpoints serving it."""
    evaluation = _evaluation(session, version.metrics_uri) if version.metrics_uri else None
    job = version.metadata.get(TRAINING_JOB_KEY) or next(
        (
            match["job"]
            for uri in version.model_data
            if (match := TRAINING_OUTPUT.match(uri)) is not None
        ),
        None,
    )
    training = _training_job(session, job) if job else None
    return Lineage(version, evaluation, training, deployments(session, version))


def deployments(session: boto3.Session, version: ModelVersion) -> list[Deployment]:
    """The endpoints whose model references `version` (its ARN, or its model data)."""
    client = session.client("sagemaker")
    found = []
    endpoints = jobs.paged(client, "list_endpoints", "Endpoints", "endpoints")
    for endpoint in endpoints:
        name = endpoint["EndpointName"]
        try:
            described = call(client, "describe_endpoint", EndpointName=name)
            config = call(
                client,
                "describe_endpoint_config",
                EndpointConfigName=described["EndpointConfigName"],
            )
            models = {variant["ModelName"] for variant in config.get("ProductionVariants", [])}
            for model in sorted(models):
                if _serves(call(client, "describe_model", ModelName=model), version):
                    found.append(Deployment(name, described.get("EndpointStatus", ""), model))
        except ClientError as error:
            if not is_missing(error):  # gone meanwhile: not serving anything
                raise jobs.refused(error, f"endpoint {name}") from None
    return found


def _serves(model: Mapping[str, Any], version: ModelVersion) -> bool:
    containers = [model.get("PrimaryContainer") or {}, *(model.get("Containers") or [])]
    return any(
        str(container.get("ModelPackageName", "")).lower() == version.arn.lower()
        or container.get("ModelDataUrl") in version.model_data
        for container in containers
    )


def _evaluation(session: boto3.Session, uri: str) -> Evaluation:
    """The evaluation JSON's metrics, threshold, scene count and model card hyperparameters.

    Read here with a small reader of its own rather than the evaluation contract
    (earthseg.contracts.evaluation): a version's file may come from another earthseg
    release, and `show` should print what it can of it rather than refuse it.
    """
    try:
        document = read_json(session, parse_s3_uri(uri, "model metrics"))
    except (ClientError, InputError) as error:
        return Evaluation(uri, problem=f"could not be read ({error})")
    if not isinstance(document, dict):
        return Evaluation(uri, problem="is missing, or not a JSON object")
    metrics = {}
    for name, entry in (as_mapping(document.get("metrics"))).items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[str(name)] = float(value)
    threshold = document.get("threshold")
    scenes = document.get("scenes")
    card = as_mapping(as_mapping(document.get("model")).get("card"))
    return Evaluation(
        uri,
        metrics=metrics,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        scenes=len(scenes) if isinstance(scenes, list) else None,
        hyperparameters={
            str(key): str(value) for key, value in as_mapping(card.get("hyperparameters")).items()
        },
        problem="" if metrics else "holds no metrics",
    )


def _training_job(session: boto3.Session, name: str) -> TrainingJob:
    try:
        job = jobs.TRAINING_JOB.describe(session.client("sagemaker"), name)
    except ClientError as error:
        if is_missing(error):
            return TrainingJob(name, problem=f"not found in {session.region_name}")
        return TrainingJob(name, problem=str(jobs.refused(error, f"training job {name}")))
    resources = job.get("ResourceConfig") or {}
    instance = (
        f"{resources.get('InstanceCount', 1)} x {resources['InstanceType']}"
        if resources.get("InstanceType")
        else ""
    )
    return TrainingJob(
        name,
        status=str(job.get("TrainingJobStatus", "")),
        instance=instance,
        hyperparameters={str(k): str(v) for k, v in (job.get("HyperParameters") or {}).items()},
    )
