"""SageMaker endpoints serving the earthseg inference image: a model, an endpoint config
and an endpoint created together under one name, and deleted together.

The calls are boto3's, not sagemaker-core's `Model` / `EndpointConfig` / `Endpoint`
resources: sagemaker-core 2.27 (SDK v3) sends a serverless variant's memory as
`MemorySizeInMb`, which botocore rejects before any request (aws/sagemaker-core#225),
and its `Model.create` re-reads the model and refuses an answer with an empty
`VpcConfig` (as moto gives).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.errors import InputError
from earthseg.launch import aws, lifecycle, s3
from earthseg.launch.role import execution_role

DEFAULT_INSTANCE_TYPE = "ml.g5.xlarge"
VARIANT = "AllTraffic"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = 200
TIMESTAMP_LENGTH = 24  # name_from_base's "-2026-01-31-12-00-00-000"
SETTLED = ("InService", "Failed", "OutOfService")
DELETES = {
    "endpoint": ("delete_endpoint", "EndpointName"),
    "endpoint config": ("delete_endpoint_config", "EndpointConfigName"),
    "model": ("delete_model", "ModelName"),
}


@dataclass(frozen=True)
class Serverless:
    """A serverless variant: memory (1-6 GB in 1 GB steps) and concurrent invocations."""

    memory_mb: int = 6144
    max_concurrency: int = 5

    def __post_init__(self) -> None:
        if self.memory_mb not in SERVERLESS_MEMORY_MB:
            raise InputError(
                "serverless memory",
                f"{self.memory_mb} MB is not a size SageMaker offers",
                f"choose one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}",
            )
        if not 1 <= self.max_concurrency <= SERVERLESS_MAX_CONCURRENCY:
            raise InputError(
                "serverless concurrency",
                f"{self.max_concurrency} is out of range",
                f"choose 1 to {SERVERLESS_MAX_CONCURRENCY}",
            )


def deploy(
    session: boto3.Session,
    image: str,
    model_uri: str,
    role: str | None,
    name: str = "earthseg",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    serverless: Serverless | None = None,
    environment: Mapping[str, str] | None = None,
    wait: bool = True,
    say: Callable[[str], None] = print,
) -> str:
    """Serve `model_uri` (a model.tar.gz in S3) from `image`, running as `role` (None:
    $SAGEMAKER_ROLE); return the endpoint's name.

    Model, endpoint config and endpoint share one name, `<name>-<timestamp>`. A real-time
    endpoint runs `instance_count` x `instance_type`; with `serverless` it has no
    instances. With `wait`, follows the endpoint to InService; a failed endpoint raises
    an InputError carrying SageMaker's FailureReason.
    """
    from sagemaker.core.common_utils import name_from_base

    lifecycle.check_base_name(name, TIMESTAMP_LENGTH, "--name")
    s3.parse_s3_uri(model_uri, "--model")
    if not model_uri.endswith(".tar.gz"):
        raise InputError(
            "--model", f"{model_uri} is not a model.tar.gz", "give the URI earthseg train printed"
        )
    if instance_count < 1:
        raise InputError("--instances", f"{instance_count} is not positive", "give 1 or more")
    role = execution_role(role)
    aws.account_id(session)  # missing or refused credentials fail here, readably
    endpoint = name_from_base(name)
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": endpoint}
    if serverless is None:
        variant |= {
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": 1.0,
        }
    else:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": serverless.memory_mb,
            "MaxConcurrency": serverless.max_concurrency,
        }
    container: dict[str, Any] = {"Image": image, "ModelDataUrl": model_uri}
    if environment:
        container["Environment"] = dict(environment)
    client = session.client("sagemaker")
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (
            "model",
            "create_model",
            {"ModelName": endpoint, "PrimaryContainer": container, "ExecutionRoleArn": role},
        ),
        (
            "endpoint config",
            "create_endpoint_config",
            {"EndpointConfigName": endpoint, "ProductionVariants": [variant]},
        ),
        (
            "endpoint",
            "create_endpoint",
            {"EndpointName": endpoint, "EndpointConfigName": endpoint},
        ),
    ]
    for done, (kind, operation, request) in enumerate(steps):
        try:
            aws.call(client, operation, **request)
        except ClientError as error:
            _remove_partial(client, endpoint, [kind for kind, _, _ in steps[:done]])
            raise lifecycle.refused(error, f"{kind} {endpoint}") from None
    where = (
        f"serverless, {serverless.memory_mb} MB, up to {serverless.max_concurrency} at once"
        if serverless
        else f"{instance_count} x {instance_type}"
    )
    say(f"endpoint {endpoint} ({where}) with {image}")
    if wait:
        _follow_endpoint(client, endpoint, say)
    return endpoint


def delete_endpoint(session: boto3.Session, name: str, say: Callable[[str], None] = print) -> None:
    """Delete endpoint `name`, its endpoint config and the model(s) the config serves.

    A config or model already gone is reported and skipped; an endpoint that does not
    exist is an InputError.
    """
    client = session.client("sagemaker")
    try:
        endpoint = aws.call(client, "describe_endpoint", EndpointName=name)
    except ClientError as error:
        if _missing(error):
            raise InputError(
                "--endpoint",
                f"there is no endpoint {name} in {session.region_name}",
                "check the name and region (aws sagemaker list-endpoints)",
            ) from None
        raise lifecycle.refused(error, f"endpoint {name}") from None
    config_name = endpoint["EndpointConfigName"]
    models: list[str] = []
    try:
        config = aws.call(client, "describe_endpoint_config", EndpointConfigName=config_name)
        variants = [*config["ProductionVariants"], *config.get("ShadowProductionVariants", [])]
        models = list(dict.fromkeys(variant["ModelName"] for variant in variants))
    except ClientError as error:
        if not _missing(error):
            raise lifecycle.refused(error, f"endpoint config {config_name}") from None
    _delete(client, "endpoint", name, say)
    _delete(client, "endpoint config", config_name, say)
    for model in models:
        _delete(client, "model", model, say)


def _delete(client: Any, kind: str, name: str, say: Callable[[str], None]) -> None:
    operation, key = DELETES[kind]
    try:
        aws.call(client, operation, **{key: name})
    except ClientError as error:
        if not _missing(error):
            raise lifecycle.refused(error, f"{kind} {name}") from None
        say(f"{kind} {name}: already gone")
        return
    say(f"deleted {kind} {name}")


def _remove_partial(client: Any, name: str, kinds: list[str]) -> None:
    """Undo the resources a refused deploy had created, newest first."""
    for kind in reversed(kinds):
        _delete(client, kind, name, lambda _: None)


def _missing(error: ClientError) -> bool:
    """SageMaker's "Could not find ..." (a ValidationException) or a not-found code."""
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", ""), detail.get("Message", "")
    return code in {"ResourceNotFound", "NotFound"} or (
        code in {"ValidationException", "ValidationError"} and "not find" in message.lower()
    )


def _follow_endpoint(client: Any, name: str, say: Callable[[str], None]) -> None:
    def describe() -> dict[str, Any]:
        return dict(aws.call(client, "describe_endpoint", EndpointName=name))

    endpoint = lifecycle.follow(
        describe,
        lambda endpoint: endpoint["EndpointStatus"],
        lambda endpoint: endpoint["EndpointStatus"] in SETTLED,
        say,
        f"endpoint {name}",
        f"see its status with `aws sagemaker describe-endpoint --endpoint-name {name}`, or "
        f"delete it: earthseg delete --endpoint {name}",
    )
    if endpoint["EndpointStatus"] != "InService":
        raise InputError(
            f"endpoint {name}",
            f"is {endpoint['EndpointStatus']}: {endpoint.get('FailureReason', 'no reason given')}",
            f"read the model server's log in CloudWatch (/aws/sagemaker/Endpoints/{name}), "
            f"correct it, and remove this endpoint: earthseg delete --endpoint {name}",
        )
