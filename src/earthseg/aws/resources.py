"""What SageMaker runs a job or an endpoint on: instance types and counts, spot, limits.

The options models the command line and the run config share; kept free of boto3 and
the SDK, so that `earthseg --help` and a config check load neither.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from earthseg.errors import InputError
from earthseg.gpu.hosts import Service, ami_request, images_host
from earthseg.validation import Integer, Number, Options, invalid

LOCAL_INSTANCE_TYPES = ("local_cpu", "local_gpu")  # the SDK's local mode
HOURS = 3600
SPOT_WAIT_FACTOR = 2  # default spot max wait: twice the max run time
DEFAULT_GPU_INSTANCE = "ml.g5.xlarge"  # one A10G: trains and serves the U-Net well
VARIANT = "AllTraffic"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
AMI_HELP = (
    "GPU host image: {field} (default: the newest AWS documents for the instance family, "
    "earthseg.gpu.hosts; none on CPU instances)"
)
ALLOW_CPU_HELP = (
    "let the gpu image run on the CPU when the host's NVIDIA driver is too old for its CUDA, "
    "instead of refusing to start (EARTHSEG_ALLOW_CPU)"
)


def check_host(instance_type: str, service: Service, ami_version: str | None) -> None:
    """Refuse, as a validator does, a GPU family the host table does not know, an
    ami_version the family does not offer for `service`, or a host whose driver is too old
    for the gpu images' CUDA."""
    try:
        images_host(instance_type, service, ami_version)
    except InputError as error:
        key = "ami_version" if error.source == "ami_version" else "instance_type"
        raise invalid(error.problem, error.fix, (key,)) from None


class TrainingResources(Options):
    """Where a training job runs and for how long: `earthseg train --image`'s options and
    the run config's `train` section."""

    instance_type: str = Field(
        DEFAULT_GPU_INSTANCE, description="training instance type (local_cpu: the SDK's local mode)"
    )
    instances: Integer = Field(1, ge=1, description="instances; more: multi-worker training")
    spot: bool = Field(False, description="managed spot training; resumes from checkpoints")
    max_run_hours: Number = Field(24.0, gt=0, description="stop the job after this long")
    max_wait_hours: Number | None = Field(
        None, gt=0, description="spot: give up after this long, waiting included (2 x run)"
    )
    volume_size_gb: Integer = Field(30, ge=1, description="EBS volume per instance, GB")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not (self.instance_type.startswith("ml.") or self.local):
            raise invalid(
                f"{self.instance_type} is not a SageMaker training instance type",
                f"give one such as {DEFAULT_GPU_INSTANCE} (local runs: earthseg pipeline --local)",
                ("instance_type",),
            )
        if self.local and self.spot:
            raise invalid("applies to SageMaker only", "drop it for local runs", ("spot",))
        if self.max_wait_hours is not None and not self.spot:
            raise invalid(
                "applies to spot training only",
                "add spot, or drop the max wait",
                ("max_wait_hours",),
            )
        if self.spot and self.wait_s < self.max_run_s:
            raise invalid(
                f"the max wait of {self.wait_s} s is shorter than the max run time of "
                f"{self.max_run_s} s",
                "allow at least the max run time (SageMaker requires it)",
                ("max_wait_hours",),
            )
        return self

    @property
    def local(self) -> bool:
        """Whether the job runs on this machine (the SDK's local mode)."""
        return self.instance_type in LOCAL_INSTANCE_TYPES

    @property
    def max_run_s(self) -> int:
        return round(self.max_run_hours * HOURS)

    @property
    def wait_s(self) -> int:
        """Spot: how long the job may take, waiting for capacity included."""
        if self.max_wait_hours is None:
            return SPOT_WAIT_FACTOR * self.max_run_s
        return round(self.max_wait_hours * HOURS)


class ProcessingResources(Options):
    """Where a Processing job runs."""

    instance_type: str = Field("ml.m5.xlarge", description="Processing instance type")


class Serverless(Options):
    """A serverless variant: memory (1-6 GB in 1 GB steps) and concurrent invocations."""

    memory_mb: Integer = Field(
        6144, description="serverless memory in MB, 1024 to 6144 in steps of 1024"
    )
    max_concurrency: Integer = Field(
        5, ge=1, le=200, description="serverless concurrent invocations"
    )

    @field_validator("memory_mb")
    @classmethod
    def _offered(cls, memory_mb: int) -> int:
        if memory_mb not in SERVERLESS_MEMORY_MB:
            raise invalid(
                f"{memory_mb} MB is not a size SageMaker offers",
                f"choose one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}",
            )
        return memory_mb


class EndpointOptions(Options):
    """What an endpoint runs on: instances, or (instead) serverless."""

    instance_type: str = Field(DEFAULT_GPU_INSTANCE, description="real-time instance type")
    instances: Integer = Field(1, ge=1, description="real-time instances")
    ami_version: str | None = Field(None, description=AMI_HELP.format(field="InferenceAmiVersion"))
    allow_cpu: bool = Field(False, description=ALLOW_CPU_HELP)
    serverless: Serverless | None = Field(
        None, description="a serverless endpoint (CPU) instead of instances"
    )

    @model_validator(mode="after")
    def _host(self) -> Self:
        if self.serverless is None:
            check_host(self.instance_type, "endpoint", self.ami_version)
        elif self.ami_version is not None:
            raise invalid(
                "applies to instances, and a serverless endpoint has none",
                "drop it, or drop serverless",
                ("ami_version",),
            )
        return self

    def describe(self) -> str:
        """Where the model runs, in a few words."""
        if self.serverless is not None:
            return (
                f"serverless, {self.serverless.memory_mb} MB, up to "
                f"{self.serverless.max_concurrency} at once"
            )
        return f"{self.instances} x {self.instance_type}"

    def variant(self, model: str, service: Service = "endpoint") -> dict[str, Any]:
        """The production variant serving `model` on a real-time (or, with `service`
        "async", an asynchronous) endpoint, on the GPU host earthseg.gpu.hosts chooses."""
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model}
        if self.serverless is None:
            return variant | {
                "InstanceType": self.instance_type,
                "InitialInstanceCount": self.instances,
                "InitialVariantWeight": 1.0,
                **ami_request(self.instance_type, service, self.ami_version),
            }
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": self.serverless.memory_mb,
            "MaxConcurrency": self.serverless.max_concurrency,
        }
        return variant


# Asynchronous inference, as botocore's service models (sagemaker 2017-07-24,
# sagemaker-runtime 2017-05-13) bound it: InvokeEndpointAsync's InvocationTimeoutSeconds
# (InvocationTimeoutSecondsHeader) is 1-3600 s; AsyncInferenceClientConfig's
# MaxConcurrentInvocationsPerInstance is 1-1000; AsyncInferenceOutputConfig's S3OutputPath
# and S3FailurePath (DestinationS3Uri) are at most 512 characters.
MAX_INVOCATION_TIMEOUT_S = 3600
MAX_CONCURRENT_INVOCATIONS = 1000
MAX_DESTINATION_CHARS = 512
DEFAULT_WAIT_MINUTES = 90.0  # the longest invocation, and half an hour in the queue
ASYNC_FLAGS = {"invocation_timeout_s": "--invocation-timeout"}


class InvocationTimeout(Options):
    """How long an asynchronous endpoint may work on one request."""

    invocation_timeout_s: Integer = Field(
        MAX_INVOCATION_TIMEOUT_S,
        ge=1,
        le=MAX_INVOCATION_TIMEOUT_S,
        description="seconds the endpoint may work on one scene (SageMaker allows up to 3600)",
    )


class AsyncOptions(InvocationTimeout):
    """An asynchronous endpoint: requests queue, bodies (up to 1 GB) come from S3 and
    answers go to S3. The invocation timeout also becomes the model server's timeout."""

    output_path: str | None = Field(
        None,
        description="s3:// folder for answers "
        "(default s3://<default bucket>/earthseg/async/<endpoint>/output)",
    )
    failure_path: str | None = Field(
        None,
        description="s3:// folder for failure messages "
        "(default s3://<default bucket>/earthseg/async/<endpoint>/failures)",
    )
    # One whole scene at a time per instance: a prediction uses every core (or the GPU),
    # and a scene's memory follows its area.
    max_concurrent_invocations: Integer = Field(
        1,
        ge=1,
        le=MAX_CONCURRENT_INVOCATIONS,
        description="requests each instance works on at once",
    )

    @field_validator("output_path", "failure_path")
    @classmethod
    def _s3_folder(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("s3://"):
            raise invalid(f"{path!r} is not in S3", "give an s3://bucket/prefix folder")
        if path is not None and len(path) > MAX_DESTINATION_CHARS:
            raise invalid(f"is {len(path)} characters long", f"use at most {MAX_DESTINATION_CHARS}")
        return path


class AsyncInvocation(InvocationTimeout):
    """How `earthseg invoke --async` asks an asynchronous endpoint and waits for it."""

    wait_minutes: Number = Field(
        DEFAULT_WAIT_MINUTES,
        gt=0,
        description="stop waiting for the answer after this long, queueing included",
    )
