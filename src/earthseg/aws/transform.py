"""Batch Transform with the earthseg inference image: every scene GeoTIFF under an input
prefix through the model, one whole scene per request, each answer named after its scene.

The job is SageMaker's: a model (the image, model.tar.gz and the server's environment)
and a transform job sending each object as one record (`SplitType` None, `BatchStrategy`
SingleRecord) of up to `MaxPayloadInMB`. SageMaker names each answer after its input:

    <output>/<path of the scene under the input prefix>.out

`transform` runs it on SageMaker through boto3 (as `earthseg deploy` does); `transform_local`
sends the same requests to the SageMaker Python SDK's local mode (`LocalSession`), whose
`_LocalTransformJob` runs the image with docker-compose, asks it for
/execution-parameters, posts each file and writes `<file>.out` as SageMaker does.

Scenes are checked before anything starts (GeoTIFFs only, none over the payload limit):
SageMaker would send every object under the prefix, and one refused record fails the job
after the others were paid for.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from earthseg.aws.names import DEFAULT_NAME, NameRule, check_name
from earthseg.aws.resources import ALLOW_CPU_HELP, AMI_HELP, check_host
from earthseg.aws.security import NO_SECURITY, Security
from earthseg.contracts.serving import (
    GEOJSON,
    MAX_PAYLOAD_ENV,
    MB,
    OUTPUT_ENV,
    TIFF,
    TIMEOUT_ENV,
    TRANSFORM_MAX_PAYLOAD_MB,
)
from earthseg.errors import InputError
from earthseg.gpu.hosts import ami_request
from earthseg.gpu.startup import ALLOW_CPU_ENV
from earthseg.validation import Integer, Options, invalid

if TYPE_CHECKING:
    import boto3
    from sagemaker.core.local.local_session import LocalSession

    from earthseg.aws.s3 import S3Uri

Accept = Literal["image/tiff", "application/geo+json"]
Output = Literal["mask", "probability"]

# CPU by default: the U-Net is small, ONNX Runtime predicts a scene on 4 cores in
# seconds, and a job over many scenes is billed per instance-hour, where an m5 costs a
# fraction of a GPU instance; its 16 GB hold a 100 MB scene and its prediction many times.
# SageMaker's own quota for GPU transform instances often starts at 0, too. The GPU build
# of the image runs on it as well (ONNX Runtime falls back to its CPU provider).
DEFAULT_INSTANCE = "ml.m5.xlarge"
DEFAULT_TIMEOUT_S = 600  # Batch Transform's default for InvocationsTimeoutInSeconds
MAX_TIMEOUT_S = 3600  # and its largest
SCENE_SUFFIXES = (".tif", ".tiff")
OUT_SUFFIX = ".out"  # SageMaker's name for an answer: <input name>.out
LOCAL_INSTANCE = "local"  # the SDK's local mode: one container on this machine
TRANSFORM_JOB = NameRule("transform job", len("-2026-01-31-12-00-00-000"))  # and its model
JOB_ENDED = ("Completed", "Failed", "Stopped")
LOGS = "/aws/sagemaker/TransformJobs"

log = logging.getLogger(__name__)


class TransformOptions(Options):
    """How a transform job runs and what it answers: `earthseg transform`'s options."""

    instance_type: str = Field(DEFAULT_INSTANCE, description="transform instance type")
    instances: Integer = Field(1, ge=1, description="instances; scenes are shared among them")
    ami_version: str | None = Field(None, description=AMI_HELP.format(field="TransformAmiVersion"))
    allow_cpu: bool = Field(False, description=ALLOW_CPU_HELP)
    accept: Accept = Field(
        TIFF, description="answers: a GeoTIFF on each scene's grid, or the mask's polygons"
    )
    output: Output = Field(
        "mask",
        description=f"what answer GeoTIFFs hold: the mask (uint8, 255 without data) or "
        f"probabilities (float32, NaN without data) ({OUTPUT_ENV})",
    )
    max_payload_mb: Integer = Field(
        TRANSFORM_MAX_PAYLOAD_MB,
        ge=1,
        le=TRANSFORM_MAX_PAYLOAD_MB,
        description=f"largest scene in MB (MaxPayloadInMB, {MAX_PAYLOAD_ENV})",
    )
    concurrency: Integer | None = Field(
        None,
        ge=1,
        description="requests per instance at once (MaxConcurrentTransforms; default: what "
        "the container's /execution-parameters says, one per model server worker)",
    )
    timeout: Integer = Field(
        DEFAULT_TIMEOUT_S,
        ge=1,
        le=MAX_TIMEOUT_S,
        description=f"seconds per scene (InvocationsTimeoutInSeconds, {TIMEOUT_ENV})",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.instance_type.startswith("ml."):
            raise invalid(
                f"{self.instance_type} is not a SageMaker instance type",
                f"give one such as {DEFAULT_INSTANCE} (runs on this machine: --local)",
                ("instance_type",),
            )
        check_host(self.instance_type, "transform", self.ami_version)
        if self.accept == GEOJSON and self.output != "mask":
            raise invalid(
                f"{GEOJSON} answers hold the mask's polygons, not probabilities",
                f"drop it, or accept {TIFF} for probability GeoTIFFs",
                ("output",),
            )
        return self

    def resources(self) -> dict[str, Any]:
        """CreateTransformJob's TransformResources: the instances, on the GPU host
        earthseg.gpu.hosts chooses (TransformAmiVersion)."""
        return {
            "InstanceType": self.instance_type,
            "InstanceCount": self.instances,
            **ami_request(self.instance_type, "transform", self.ami_version),
        }

    def environment(self) -> dict[str, str]:
        """The model server's variables: its body limit and timeout as the job's, and what
        its GeoTIFF answers hold (transform requests carry no custom attributes)."""
        return {
            MAX_PAYLOAD_ENV: str(self.max_payload_mb),
            TIMEOUT_ENV: str(self.timeout),
            OUTPUT_ENV: self.output,
            **({ALLOW_CPU_ENV: "true"} if self.allow_cpu else {}),
        }


@dataclass(frozen=True)
class TransformResult:
    """A transform job and where its answers are: one per scene, `<output>/<scene>.out`."""

    job_name: str
    output: str
    outputs: list[str]


def container(image: str, model_data: str, options: TransformOptions) -> dict[str, Any]:
    """The model's primary container: `image` serving `model_data` as `options` ask."""
    return {"Image": image, "ModelDataUrl": model_data, "Environment": options.environment()}


def job_request(
    job: str, input_uri: str, output_uri: str, options: TransformOptions, instances: dict[str, Any]
) -> dict[str, Any]:
    """The CreateTransformJob request: whole GeoTIFFs in, one per request, the answers
    stored whole (AssembleWith None) under `output_uri`. The model has the job's name."""
    request: dict[str, Any] = {
        "TransformJobName": job,
        "ModelName": job,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": TIFF,
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": options.accept,
            "AssembleWith": "None",
        },
        "TransformResources": instances,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": options.max_payload_mb,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": options.timeout},
    }
    if options.concurrency is not None:
        request["MaxConcurrentTransforms"] = options.concurrency
    return request


# --- on SageMaker ------------------------------------------------------------------------


def transform(
    session: boto3.Session,
    image: str,
    model: str,
    input: str,
    output: str,
    options: TransformOptions,
    role: str | None,
    *,
    name: str = DEFAULT_NAME,
    wait: bool = True,
    security: Security = NO_SECURITY,
    say: Callable[[str], None] = print,
) -> TransformResult:
    """Run `image` serving `model` (a model.tar.gz in S3) over every scene under `input`
    (an S3 prefix, or one object) as a transform job writing under `output`; follow it to
    its end unless not `wait`, then delete its model.

    Job and model share one name, `<name>-<timestamp>`. A job that fails shows the tail of
    its log and raises an InputError carrying SageMaker's FailureReason.

    `security`: the model in its VPC and network isolation, the answers and the
    instances' volumes under its KMS key (volumes where SageMaker takes one, see
    earthseg.aws.endpoints.storage_key), model and job tagged.
    """
    from botocore.exceptions import ClientError
    from sagemaker.core.common_utils import name_from_base

    from earthseg.aws import jobs, s3
    from earthseg.aws.endpoints import storage_key
    from earthseg.aws.logs import show_failure_logs
    from earthseg.aws.role import execution_role
    from earthseg.aws.session import account_id, call

    check_name(name, (TRANSFORM_JOB,), "--name")
    model_at = _in_s3(model, "--model")
    if not model_at.key.endswith(".tar.gz"):
        raise InputError(
            "--model", f"{model} is not a model.tar.gz", "give the URI earthseg train printed"
        )
    source, destination = _in_s3(input, "--input"), _in_s3(output, "--output")
    role = execution_role(role)
    account_id(session)  # missing or refused credentials fail here, readably
    _check_model(session, model_at)
    input_uri, scenes = _s3_scenes(session, source, options)
    s3.check_bucket(session, destination, "--output")

    job = name_from_base(name)
    client = session.client("sagemaker")
    tags = security.tag_list(name)
    volume = storage_key(security, options.instance_type, "VolumeKmsKeyId", "transform job", say)
    request = job_request(
        job, input_uri, str(destination), options, {**options.resources(), **volume}
    )
    request["TransformOutput"].update(security.kms("KmsKeyId"))
    request["Tags"] = tags
    try:
        call(
            client,
            "create_model",
            ModelName=job,
            PrimaryContainer=container(image, str(model_at), options),
            ExecutionRoleArn=role,
            **security.model(),
            Tags=tags,
        )
    except ClientError as error:
        raise jobs.refused(error, f"model {job}") from None
    try:
        call(client, "create_transform_job", **request)
    except ClientError as error:
        _delete_model(client, job, lambda _: None)
        raise jobs.refused(error, f"transform job {job}") from None
    say(
        f"transform job {job} ({options.instances} x {options.instance_type}) with {image}: "
        f"{len(scenes)} scenes from {input_uri} to {destination}"
    )
    result = TransformResult(
        job, str(destination), [str(destination.child(scene + OUT_SUFFIX)) for scene in scenes]
    )
    if not wait:
        say(
            f"  not waiting: follow it with `aws sagemaker describe-transform-job "
            f"--transform-job-name {job}`; once it ends, remove its model: "
            f"aws sagemaker delete-model --model-name {job}"
        )
        return result
    ended = _follow(client, job, say)
    _delete_model(client, job, say)
    status = ended["TransformJobStatus"]
    if status != "Completed":
        show_failure_logs(session, "transform", job, say)
        raise InputError(
            f"transform job {job}",
            f"ended {status}: {ended.get('FailureReason') or 'no reason given'}",
            f"correct what the reason names and run it again; read its log with earthseg logs "
            f"--job {job} (CloudWatch {LOGS}, streams {job}/*: the data-log streams name each "
            "scene that failed)",
        )
    return result


def _in_s3(value: str, source: str) -> S3Uri:
    from earthseg.aws import s3

    if not s3.is_s3_uri(value):
        raise InputError(
            source,
            f"{value!r} is not in S3 (SageMaker reads and writes S3 only)",
            "give an s3:// URI, or add --local to run the job on this machine",
        )
    return s3.parse_s3_uri(value, source)


def _check_model(session: boto3.Session, model: S3Uri) -> None:
    """Fail now, not once the job's instances are up, when the model is not there."""
    from botocore.exceptions import ClientError

    from earthseg.aws.session import call

    try:
        call(session.client("s3"), "head_object", Bucket=model.bucket, Key=model.key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        missing = code in {"404", "NoSuchKey", "NoSuchBucket"}
        problem = "does not exist" if missing else f"cannot be read with these credentials ({code})"
        raise InputError(
            "--model", f"{model} {problem}", "give the URI earthseg train printed"
        ) from None


def _s3_scenes(
    session: boto3.Session, source: S3Uri, options: TransformOptions
) -> tuple[str, list[str]]:
    """The job's S3Uri and each scene's path as SageMaker names its answer, checked.

    `source` is a folder (S3Uri `source/`), or else a key prefix such as one scene's key,
    which SageMaker matches as a string: `a.tif` also sends `a.tif.aux.xml`, so those are
    checked too; their names are then relative to the prefix's folder.
    """
    from earthseg.aws import s3

    client = session.client("s3")
    s3.check_bucket(session, source, "--input")
    inside = _sizes(client, source.bucket, source.key_prefix)
    if inside:
        return source.folder, _checked(inside, str(source), options)
    folder = source.key.rpartition("/")[0]
    matched = _sizes(client, source.bucket, source.key, f"{folder}/" if folder else "")
    if not matched:
        raise InputError(
            "--input",
            f"{source} holds no objects",
            "upload the scenes first (aws s3 cp --recursive) or correct the prefix",
        )
    return str(source), _checked(matched, str(source), options)


def _sizes(client: Any, bucket: str, prefix: str, relative_to: str | None = None) -> dict[str, int]:
    """The size of each object whose key starts with `prefix`, by its key after
    `relative_to` (default `prefix`)."""
    from botocore.exceptions import ClientError

    start = prefix if relative_to is None else relative_to
    sizes: dict[str, int] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                sizes[item["Key"].removeprefix(start)] = item["Size"]
    except ClientError as error:
        raise InputError(
            "--input", f"cannot be listed ({error})", "use a prefix the credentials may read"
        ) from None
    return sizes


def _follow(client: Any, job: str, say: Callable[[str], None]) -> dict[str, Any]:
    from earthseg.aws import jobs
    from earthseg.aws.session import call

    def describe() -> dict[str, Any]:
        return dict(call(client, "describe_transform_job", TransformJobName=job))

    return jobs.follow(
        describe,
        lambda described: described["TransformJobStatus"],
        lambda described: described["TransformJobStatus"] in JOB_ENDED,
        say,
        f"transform job {job}",
        f"follow it with earthseg logs --job {job} --follow, or stop it: "
        f"aws sagemaker stop-transform-job "
        f"--transform-job-name {job}; once it ends, remove its model: "
        f"aws sagemaker delete-model --model-name {job}",
    )


def _delete_model(client: Any, job: str, say: Callable[[str], None]) -> None:
    """The job's model, which only it used; a failure to delete is said, not raised: the
    job's own outcome matters more."""
    from botocore.exceptions import ClientError

    from earthseg.aws.session import call

    try:
        call(client, "delete_model", ModelName=job)
    except ClientError as error:
        say(f"model {job} was not deleted ({error}): aws sagemaker delete-model --model-name {job}")
        return
    say(f"deleted model {job}")


# --- on this machine ---------------------------------------------------------------------


def transform_local(
    image: str,
    model: Path | str,
    input: Path | str,
    output: Path | str,
    options: TransformOptions,
    *,
    security: Security = NO_SECURITY,
    say: Callable[[str], None] = print,
) -> TransformResult:
    """The same job on this machine, through the SageMaker SDK's local mode: `image`
    serving `model` (a model folder or model.tar.gz) over the GeoTIFFs in the folder `input`
    (or that one file), each answer written to `output/<file name>.out`. The `security`
    settings, SageMaker's, are ignored, and said so.

    Local mode runs one container and one request at a time whatever the options say. A
    scene the container refuses fails the job, as on SageMaker: the other scenes' answers
    are kept, the refused ones' are not written.
    """
    from sagemaker.core.common_utils import name_from_base

    from earthseg.local.engine import docker_client, local_image

    for value, source in ((model, "--model"), (input, "--input"), (output, "--output")):
        if str(value).startswith("s3://"):
            raise InputError(
                source,
                f"{value} is in S3; a local job reads and writes local paths",
                "download it first (aws s3 cp), or drop --local",
            )
    scenes_at = Path(input).resolve()
    destination = Path(output).resolve()
    scenes = _local_scenes(scenes_at, options)
    security.ignored_locally(say)
    job = name_from_base(DEFAULT_NAME)
    with tempfile.TemporaryDirectory(
        prefix="earthseg-transform-", ignore_cleanup_errors=True
    ) as work:
        root = Path(work)
        model_dir = _model_folder(Path(model), root / "model")
        engine = docker_client()
        try:
            local_image(engine, image)  # docker-compose would try to pull it, and fail unseen
            session = _local_session(root)
            # file:// URIs as the SDK reads them: netloc + path, not percent-decoded.
            session.sagemaker_client.create_model(
                ModelName=job, PrimaryContainer=container(image, f"file://{model_dir}", options)
            )
            instances = {"InstanceType": LOCAL_INSTANCE, "InstanceCount": 1}
            request = job_request(
                job, f"file://{scenes_at}", f"file://{destination}", options, instances
            )
            say(f"transform job {job} (local container) with {image}: {len(scenes)} scenes")
            try:
                refused = _run_local_job(session, request)
            finally:
                session.sagemaker_client.delete_model(ModelName=job)
                _remove_containers(engine, root)
        finally:
            engine.close()
    for name, _, _ in refused:
        (destination / (name + OUT_SUFFIX)).unlink(missing_ok=True)
    if refused:
        listed = "; ".join(f"{name}: {status} {body}" for name, status, body in refused)
        raise InputError(
            f"local transform job {job}",
            f"ended Failed: {len(refused)} of {len(scenes)} scenes were refused ({listed})",
            "correct what the answers name and run it again",
        )
    say(f"  Completed: {len(scenes)} answers in {destination}")
    return TransformResult(
        job, str(destination), [str(destination / (scene + OUT_SUFFIX)) for scene in scenes]
    )


def _run_local_job(session: LocalSession, request: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Run the job in the SDK's local mode; the scenes the container refused, with the
    status and error of each."""
    from sagemaker.core.local.data import get_data_source_instance

    client = session.sagemaker_client
    job = request["TransformJobName"]
    try:
        with _quiet_start(), _unseeded_random():
            client.create_transform_job(**request)
    except RuntimeError as error:  # the SDK's: the container never answered /ping
        _stop_local_job(client, job)
        raise InputError(
            f"local transform job {job}",
            f"failed: {error}",
            "read the container's log above; check the model with `earthseg serve --model`",
        ) from None
    except BaseException:  # interrupted, or the container went away mid-job
        _stop_local_job(client, job)
        raise
    # The SDK sends the files in its own listing's order, one request each.
    input_uri = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    sent = get_data_source_instance(input_uri, session).get_file_list()
    answers = session.sagemaker_runtime_client.statuses
    return [
        (Path(path).name, status, body)
        for path, (status, body) in zip(sent, answers, strict=True)
        if status != 200
    ]


def _local_scenes(source: Path, options: TransformOptions) -> list[str]:
    """The files of the folder `source` (or the file itself) the SDK will send, checked.

    The SDK's local data source sends a folder's own files only (os.listdir), where
    SageMaker would send every object under a prefix: nested folders are refused rather
    than left out in silence.
    """
    if source.is_file():
        return _checked({source.name: source.stat().st_size}, str(source), options)
    if not source.is_dir():
        raise InputError("--input", f"{source} does not exist", "give a folder of scene GeoTIFFs")
    nested = sorted(path.name for path in source.iterdir() if path.is_dir())
    if nested:
        raise InputError(
            "--input",
            f"{source} holds folders ({', '.join(nested)}), which local mode does not read",
            "run one job per folder, or move their scenes up",
        )
    sizes = {path.name: path.stat().st_size for path in source.iterdir()}
    if not sizes:
        raise InputError("--input", f"{source} holds no files", "give a folder of scene GeoTIFFs")
    return _checked(sizes, str(source), options)


def _checked(sizes: dict[str, int], where: str, options: TransformOptions) -> list[str]:
    """The scenes' paths, sorted, if every one is a GeoTIFF within the payload limit."""
    others = sorted(name for name in sizes if not name.lower().endswith(SCENE_SUFFIXES))
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise InputError(
            "--input",
            f"{where} holds files that are not GeoTIFFs ({shown}); the job would send them "
            "too, and fail on them",
            "move them out, or point --input at a place holding scene GeoTIFFs only",
        )
    limit = options.max_payload_mb * MB
    large = sorted(name for name, size in sizes.items() if size > limit)
    if large:
        raise InputError(
            "--input",
            f"{', '.join(large)} exceed the {options.max_payload_mb} MB limit of one request",
            f"raise --max-payload-mb (up to {TRANSFORM_MAX_PAYLOAD_MB}), or split the scenes, "
            "or predict them in parts through an endpoint (earthseg invoke)",
        )
    return sorted(sizes)


def _model_folder(model: Path, unpacked: Path) -> Path:
    """The model as a folder holding its card: `model` itself, or its model.tar.gz
    unpacked into `unpacked`, as SageMaker unpacks it into /opt/ml/model."""
    from earthseg.archives import extract
    from earthseg.contracts.model_card import RETRAIN, read_model_card

    if model.is_dir():
        folder = model.resolve()
    elif model.is_file() and tarfile.is_tarfile(model):
        folder = extract(model, unpacked)
    else:
        raise InputError(
            "--model", f"{model} is neither a model folder nor a model.tar.gz", RETRAIN
        )
    read_model_card(folder)  # not an earthseg model: said now, not after the container fails
    return folder


def _local_session(root: Path) -> LocalSession:
    """The SDK's local session, working in `root`, serving on a free port (8080 may be
    taken), with no AWS credentials: the scenes and model are local, and the SDK would
    otherwise write the caller's credentials into its docker-compose file."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialResolver
    from sagemaker.core.local.local_session import LocalSession

    from earthseg.local.engine import free_port

    core = botocore.session.get_session()
    core.register_component("credential_provider", CredentialResolver(providers=[]))
    region = core.get_config_variable("region") or "us-east-1"  # any: nothing is called
    session = LocalSession(boto_session=boto3.Session(botocore_session=core, region_name=region))
    session.config = {
        "local": {"local_code": True, "serving_port": free_port(), "container_root": str(root)}
    }
    session.sagemaker_runtime_client = _runtime_client(session.config)
    return session


def _runtime_client(config: dict[str, Any]) -> Any:
    """The SDK's local runtime client, keeping each answer's status: SageMaker fails a
    record (and the job) that the container refuses, where the SDK's local mode would store
    the error as the scene's answer."""
    from sagemaker.core.local.local_session import LocalSagemakerRuntimeClient

    class StatusKeeping(LocalSagemakerRuntimeClient):  # type: ignore[misc]
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self.statuses: list[tuple[int, str]] = []

        def invoke_endpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            response = super().invoke_endpoint(*args, **kwargs)
            stream = response["Body"]
            body = stream.read()
            stream.release_conn()
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            self.statuses.append((status, "" if status == 200 else _reason(body)))
            return {**response, "Body": io.BytesIO(body)}

    return StatusKeeping(config)


def _reason(body: bytes) -> str:
    """An error answer's message: the serve image's `{"error": ...}`, else its text."""
    text = body.decode(errors="replace").strip()
    with contextlib.suppress(ValueError, TypeError, KeyError):
        text = str(json.loads(text)["error"])
    return text[:500]


def _stop_local_job(client: Any, job: str) -> None:
    """Stop the container of a local job that failed before the SDK stopped it. The SDK
    keeps its jobs in a class attribute and offers no call for this."""
    running = client._transform_jobs.get(job)
    if running is not None and running.container is not None:
        running.container.stop_serving()


@contextlib.contextmanager
def _unseeded_random() -> Iterator[None]:
    """Python's random numbers from fresh entropy, the caller's sequence left as it was.

    The SDK names containers with `random.choice`: after a seeded model export or training
    run, each run would get the last one's names, and the SDK leaves its stopped containers
    behind ("Conflict. The container name ... is already in use").
    """
    state = random.getstate()
    random.seed()
    try:
        yield
    finally:
        random.setstate(state)


def _remove_containers(engine: Any, root: Path) -> None:
    """The stopped containers the SDK's docker-compose left, found by their project folder
    (under `root`)."""
    label = "com.docker.compose.project.working_dir"
    for stopped in engine.containers.list(all=True, filters={"label": label}):
        if stopped.labels.get(label, "").startswith(f"{root}/"):
            stopped.remove(force=True)


@contextlib.contextmanager
def _quiet_start() -> Iterator[None]:
    """Without urllib3's warnings for each refused /ping while the container starts."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool.setLevel(level)
