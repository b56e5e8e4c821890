"""SageMaker endpoints serving the earthseg inference image (given as an image and a
model.tar.gz, or as an approved version in the Model Registry): a model, an endpoint config
and an endpoint created together under one name, and deleted together.

The calls are boto3's, not sagemaker-core's `Model` / `EndpointConfig` / `Endpoint`
resources: sagemaker-core 2.27 (SDK v3) sends a serverless variant's memory as
`MemorySizeInMb`, which botocore rejects before any request (aws/sagemaker-core#225),
and its `Model.create` re-reads the model and refuses an answer with an empty
`VpcConfig` (as moto gives).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws import jobs, s3
from earthseg.aws.names import DEFAULT_NAME, ENDPOINT, check_name
from earthseg.aws.resources import AsyncOptions, EndpointOptions
from earthseg.aws.role import execution_role
from earthseg.aws.security import NO_SECURITY, Security
from earthseg.aws.session import account_id, call
from earthseg.errors import InputError
from earthseg.gpu.startup import ALLOW_CPU_ENV

SETTLED = ("InService", "Failed", "OutOfService")
DELETES = {
    "endpoint": ("delete_endpoint", "EndpointName"),
    "endpoint config": ("delete_endpoint_config", "EndpointConfigName"),
    "model": ("delete_model", "ModelName"),
}


def deploy(
    session: boto3.Session,
    image: str,
    model_uri: str,
    role: str | None,
    name: str = DEFAULT_NAME,
    options: EndpointOptions | None = None,
    environment: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
    asynchronous: AsyncOptions | None = None,
    security: Security = NO_SECURITY,
) -> str:
    """Serve `model_uri` (a model.tar.gz in S3) from `image`, running as `role` (None:
    $SAGEMAKER_ROLE), and follow the endpoint to InService; return its name.

    Model, endpoint config and endpoint share one name, `<name>-<timestamp>`. A failed
    endpoint shows the tail of its log and raises an InputError carrying SageMaker's
    FailureReason.

    `asynchronous`: an asynchronous endpoint (CreateEndpointConfig's AsyncInferenceConfig,
    see earthseg.aws.async_inference), whose model server takes SageMaker's 1 GB bodies
    and works as long as the invocation timeout. SageMaker runs these on instances only.

    `security`: the model in its VPC and network isolation, the endpoint's storage volume
    and asynchronous answers under its KMS key, every part tagged (`storage_key` says where
    SageMaker takes no key).
    """
    environment = _server_environment(name, options, environment, asynchronous, security)
    s3.parse_s3_uri(model_uri, "--model")
    if not model_uri.endswith(".tar.gz"):
        raise InputError(
            "--model", f"{model_uri} is not a model.tar.gz", "give the URI earthseg train printed"
        )
    role = execution_role(role)
    account_id(session)  # missing or refused credentials fail here, readably
    container = {"PrimaryContainer": {"Image": image, "ModelDataUrl": model_uri}}
    return _create(
        session,
        container,
        role,
        name,
        options,
        environment,
        asynchronous,
        security,
        say,
        f"with {image}",
    )


def deploy_package(
    session: boto3.Session,
    package: str,
    role: str | None,
    name: str = DEFAULT_NAME,
    options: EndpointOptions | None = None,
    environment: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
    asynchronous: AsyncOptions | None = None,
    security: Security = NO_SECURITY,
) -> str:
    """Serve model package version `package` (its ARN) as `deploy` serves a model: the
    version must be Approved, or it is refused (with its status and the reason given for
    it) before anything is created.

    The model names the package (CreateModel's `Containers: [{"ModelPackageName": ARN}]`,
    as the SageMaker Python SDK sends it for a package) rather than copying its image and
    model data: SageMaker then takes both from the registered version, so what serves is
    what was approved, enforces the approval itself, and links the endpoint to the version
    in its lineage. moto stores such a container as given, which the tests read back.
    """
    from earthseg.aws.registry import deployable

    environment = _server_environment(name, options, environment, asynchronous, security)
    role = execution_role(role)
    account_id(session)  # missing or refused credentials fail here, readably
    version = deployable(session, package)
    container = {"Containers": [{"ModelPackageName": version.arn}]}
    images = ", ".join(version.images) or "its image"
    return _create(
        session,
        container,
        role,
        name,
        options,
        environment,
        asynchronous,
        security,
        say,
        f"with model package {version.group} version {version.version} ({images})",
    )


def _server_environment(
    name: str,
    options: EndpointOptions | None,
    environment: Mapping[str, str] | None,
    asynchronous: AsyncOptions | None,
    security: Security,
) -> dict[str, str]:
    """The model server's environment, the name and endpoint kind checked first."""
    from earthseg.aws.async_inference import async_environment

    options = options or EndpointOptions()
    check_name(name, (ENDPOINT,), "--name")
    if options.serverless is not None and security.model():
        raise InputError(
            "--serverless",
            "cannot run in a VPC or with network isolation (SageMaker offers neither for "
            "serverless endpoints)",
            "deploy on instances (drop --serverless, choose --instance-type), or drop "
            "--subnets, --security-groups and --network-isolation",
        )
    environment = dict(environment or {})
    if options.allow_cpu:
        environment[ALLOW_CPU_ENV] = "true"
    if asynchronous is not None:
        if options.serverless is not None:
            raise InputError(
                "--serverless, --async",
                "do not go together: SageMaker runs asynchronous endpoints on instances only",
                "drop --serverless (and choose --instance-type), or drop --async",
            )
        server = async_environment(asynchronous)
        clash = sorted(key for key, value in server.items() if environment.get(key, value) != value)
        if clash:
            raise InputError(
                ", ".join(clash),
                "is set by the asynchronous endpoint's options",
                "leave it out: --invocation-timeout sets the model server's timeout",
            )
        environment.update(server)
    return environment


def _create(
    session: boto3.Session,
    containers: dict[str, Any],
    role: str,
    name: str,
    options: EndpointOptions | None,
    environment: dict[str, str],
    asynchronous: AsyncOptions | None,
    security: Security,
    say: Callable[[str], None],
    serving: str,
) -> str:
    """Create the model (its `containers`: CreateModel's PrimaryContainer or Containers,
    each given `environment`), endpoint config and endpoint, undoing them if one is
    refused, and follow the endpoint to InService; `serving` says what it serves."""
    from sagemaker.core.common_utils import name_from_base

    from earthseg.aws.async_inference import async_inference_config

    options = options or EndpointOptions()
    endpoint = name_from_base(name)
    tags = {"Tags": security.tag_list(name)}
    if environment:
        for container in [containers.get("PrimaryContainer"), *containers.get("Containers", [])]:
            if container is not None:
                container["Environment"] = environment
    instance_type = None if options.serverless is not None else options.instance_type
    config: dict[str, Any] = {
        "EndpointConfigName": endpoint,
        "ProductionVariants": [
            options.variant(endpoint, "endpoint" if asynchronous is None else "async")
        ],
        **storage_key(security, instance_type, "KmsKeyId", "endpoint", say),
        **tags,
    }
    if asynchronous is not None:
        config["AsyncInferenceConfig"] = async_inference_config(
            session, asynchronous, endpoint, security
        )
    client = session.client("sagemaker")
    model = {"ModelName": endpoint, **containers, "ExecutionRoleArn": role, **security.model()}
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("model", "create_model", {**model, **tags}),
        ("endpoint config", "create_endpoint_config", config),
        (
            "endpoint",
            "create_endpoint",
            {"EndpointName": endpoint, "EndpointConfigName": endpoint, **tags},
        ),
    ]
    for done, (kind, operation, request) in enumerate(steps):
        try:
            call(client, operation, **request)
        except ClientError as error:
            _remove_partial(client, endpoint, [kind for kind, _, _ in steps[:done]])
            raise jobs.refused(error, f"{kind} {endpoint}") from None
    kind = "" if asynchronous is None else ", asynchronous"
    say(f"endpoint {endpoint} ({options.describe()}{kind}) {serving}")
    if asynchronous is not None:
        output = config["AsyncInferenceConfig"]["OutputConfig"]
        say(f"  answers in {output['S3OutputPath']}, failures in {output['S3FailurePath']}")
    _follow_endpoint(session, client, endpoint, say)
    return endpoint


def storage_key(
    security: Security,
    instance_type: str | None,
    field: str,
    what: str,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """`{field: the KMS key}` for the storage volume of `what` (an endpoint, a transform
    job) on `instance_type` (None: serverless), where SageMaker takes one.

    SageMaker refuses a volume key for instance types whose storage is NVMe instance
    storage (g5, g6, p4d, p5, any family with a "d"), which their hardware encrypts, and a
    serverless endpoint has no volume of its own: there the key is left out, and said so.
    The SDK's `instance_supports_kms` keeps the list of such families.
    """
    from sagemaker.core.common_utils import instance_supports_kms

    if not security.kms_key:
        return {}
    if instance_type is None:
        say(f"kms_key: not sent as {field}: a serverless {what} has no storage volume to encrypt")
        return {}
    if not instance_supports_kms(instance_type):
        say(
            f"kms_key: not sent as {field}: {instance_type} stores on NVMe instance storage, "
            "which its hardware encrypts, and SageMaker takes no key for it"
        )
        return {}
    return security.kms(field)


def is_async(session: boto3.Session, name: str) -> bool:
    """Whether endpoint `name` is asynchronous: its endpoint config holds an
    `AsyncInferenceConfig` (DescribeEndpoint, then DescribeEndpointConfig)."""
    client = session.client("sagemaker")
    config_name = _describe_endpoint(session, client, name)["EndpointConfigName"]
    try:
        config = call(client, "describe_endpoint_config", EndpointConfigName=config_name)
    except ClientError as error:
        if _missing(error):
            raise InputError(
                f"endpoint {name}",
                f"has lost its endpoint config {config_name}",
                f"delete it (earthseg delete --endpoint {name}) and deploy again",
            ) from None
        raise jobs.refused(error, f"endpoint config {config_name}") from None
    return "AsyncInferenceConfig" in config


def delete_endpoint(session: boto3.Session, name: str, say: Callable[[str], None] = print) -> None:
    """Delete endpoint `name`, its endpoint config and the model(s) the config serves.

    A config or model already gone is reported and skipped; an endpoint that does not
    exist is an InputError.
    """
    client = session.client("sagemaker")
    config_name = _describe_endpoint(session, client, name)["EndpointConfigName"]
    models: list[str] = []
    try:
        config = call(client, "describe_endpoint_config", EndpointConfigName=config_name)
        variants = [*config["ProductionVariants"], *config.get("ShadowProductionVariants", [])]
        models = list(dict.fromkeys(variant["ModelName"] for variant in variants))
    except ClientError as error:
        if not _missing(error):
            raise jobs.refused(error, f"endpoint config {config_name}") from None
    _delete(client, "endpoint", name, say)
    _delete(client, "endpoint config", config_name, say)
    for model in models:
        _delete(client, "model", model, say)


def _describe_endpoint(session: boto3.Session, client: Any, name: str) -> dict[str, Any]:
    """DescribeEndpoint's answer; an endpoint that does not exist is an InputError."""
    try:
        return dict(call(client, "describe_endpoint", EndpointName=name))
    except ClientError as error:
        if _missing(error):
            raise InputError(
                "--endpoint",
                f"there is no endpoint {name} in {session.region_name}",
                "check the name and region (aws sagemaker list-endpoints)",
            ) from None
        raise jobs.refused(error, f"endpoint {name}") from None


def _delete(client: Any, kind: str, name: str, say: Callable[[str], None]) -> None:
    operation, key = DELETES[kind]
    try:
        call(client, operation, **{key: name})
    except ClientError as error:
        if not _missing(error):
            raise jobs.refused(error, f"{kind} {name}") from None
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


def _follow_endpoint(
    session: boto3.Session, client: Any, name: str, say: Callable[[str], None]
) -> None:
    from earthseg.aws.logs import show_failure_logs

    def describe() -> dict[str, Any]:
        return dict(call(client, "describe_endpoint", EndpointName=name))

    endpoint = jobs.follow(
        describe,
        lambda endpoint: endpoint["EndpointStatus"],
        lambda endpoint: endpoint["EndpointStatus"] in SETTLED,
        say,
        f"endpoint {name}",
        f"see its status with `aws sagemaker describe-endpoint --endpoint-name {name}`, or "
        f"delete it: earthseg delete --endpoint {name}",
    )
    if endpoint["EndpointStatus"] != "InService":
        show_failure_logs(session, "endpoint", name, say)
        raise InputError(
            f"endpoint {name}",
            f"is {endpoint['EndpointStatus']}: {endpoint.get('FailureReason', 'no reason given')}",
            f"read the model server's log (earthseg logs --endpoint {name}), correct it, and "
            f"remove this endpoint: earthseg delete --endpoint {name}",
        )
