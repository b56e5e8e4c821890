"""`earthseg preprocess --processing`: preprocessing as a SageMaker Processing job that
runs the training image, started from here through the SDK v3 `Processor`.

This is the launching side of the Processing contract (earthseg.contracts.processing):
the export's images and labels in S3 are mounted at /opt/ml/processing/input/{images,labels},
the dataset is written to /opt/ml/processing/output and uploaded to the output URI when
the job ends, ready for `earthseg train --data`. The image's entry point maps
`preprocess` to `earthseg preprocess`, which defaults to those mounts.

A locked-down account's settings go on the job as on every Processing job the launcher
and the pipeline make (`processor_security`): its NetworkConfig (preprocessing needs no
network: isolated when isolation is asked), the key on its volume and outputs, its tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws import jobs, s3
from earthseg.aws.names import DEFAULT_NAME, PROCESSING_JOB, check_name
from earthseg.aws.resources import ProcessingResources
from earthseg.aws.role import execution_role
from earthseg.aws.sdk import sdk_session
from earthseg.aws.security import NO_SECURITY, Security
from earthseg.aws.session import account_id
from earthseg.contracts.processing import container_input, container_output
from earthseg.errors import InputError
from earthseg.preprocess.options import PreprocessOptions

if TYPE_CHECKING:
    from sagemaker.core.network import NetworkConfig

MAX_RUN_S = 24 * 3600
VOLUME_SIZE_GB = 30


@dataclass(frozen=True)
class PreprocessJobResult:
    """The finished job and where its dataset is."""

    job_name: str
    output_uri: str


def run_preprocess_job(
    session: boto3.Session,
    image: str,
    images_uri: str,
    labels_uri: str,
    out_uri: str,
    options: PreprocessOptions,
    resources: ProcessingResources | None = None,
    role: str | None = None,
    name: str = DEFAULT_NAME,
    say: Callable[[str], None] = print,
    security: Security = NO_SECURITY,
) -> PreprocessJobResult:
    """Run `earthseg preprocess OPTIONS` in `image` on the export in S3 as the Processing
    job `<name>-preprocess-<timestamp>`, and follow it to the end. A failed job raises an
    InputError with SageMaker's reason. `security`: the job's VPC, isolation, KMS key
    (volume and dataset) and tags (the run named `name`)."""
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )

    resources = resources or ProcessingResources()
    base_job_name = PROCESSING_JOB.base(check_name(name, (PROCESSING_JOB,), "--name"))
    sources = {
        "images": s3.parse_s3_uri(images_uri, "--images"),
        "labels": s3.parse_s3_uri(labels_uri, "--labels"),
    }
    out = s3.parse_s3_uri(out_uri, "--out")
    role = execution_role(role)
    account_id(session)  # missing or refused credentials fail here, readably
    for folder, uri in sources.items():
        if not s3.has_objects(session, uri):
            raise InputError(
                f"--{folder}", f"{uri.folder} holds nothing", "give the export's S3 folder"
            )
    s3.check_bucket(session, out, "--out")
    processor = Processor(
        role=role,
        image_uri=image,
        instance_count=1,
        instance_type=resources.instance_type,
        volume_size_in_gb=VOLUME_SIZE_GB,
        max_runtime_in_seconds=MAX_RUN_S,
        base_job_name=base_job_name,
        sagemaker_session=sdk_session(session),
        **processor_security(security, name, isolated=True),
    )
    inputs = [
        ProcessingInput(
            input_name=folder,
            s3_input=ProcessingS3Input(
                s3_uri=uri.folder,
                local_path=container_input(folder),
                s3_data_type="S3Prefix",
                s3_input_mode="File",
            ),
        )
        for folder, uri in sources.items()
    ]
    arguments = ["preprocess", *options.arguments()]
    output = ProcessingOutput(
        output_name="dataset",
        s3_output=ProcessingS3Output(
            s3_uri=out.folder, local_path=container_output(), s3_upload_mode="EndOfJob"
        ),
    )
    try:
        processor.run(
            inputs=inputs,
            outputs=[output],
            arguments=arguments,
            wait=False,
            logs=False,
        )
    except ClientError as error:
        raise jobs.refused(error, f"processing job {base_job_name}") from None
    job_name = str(processor.latest_job.processing_job_name)
    say(
        f"processing job {job_name} (1 x {resources.instance_type}) with {image}: "
        f"{' '.join(arguments)}"
    )
    jobs.follow_job(
        session,
        jobs.PROCESSING_JOB,
        job_name,
        lambda job: str(job["ProcessingJobStatus"]),
        say,
    )
    return PreprocessJobResult(job_name, out.folder)


def processor_security(security: Security, run: str, isolated: bool) -> dict[str, Any]:
    """A Processor's keyword arguments for `security`: its NetworkConfig (`isolated`:
    whether this job may be cut off from the network; one fetching imagery may not),
    the key on its volume and outputs, and its tags (naming `run`)."""
    return {
        "network_config": network_config(security, isolated),
        "volume_kms_key": security.kms_key,
        "output_kms_key": security.kms_key,
        "tags": security.tag_list(run),
    }


def network_config(security: Security, isolated: bool) -> NetworkConfig | None:
    """`security.network_config(isolated)` as the SDK's NetworkConfig (None: nothing to
    set)."""
    from sagemaker.core.network import NetworkConfig

    request = security.network_config(isolated)
    if not request:
        return None
    vpc = request.get("VpcConfig") or {}
    return NetworkConfig(
        enable_network_isolation=request.get("EnableNetworkIsolation", False),
        security_group_ids=vpc.get("SecurityGroupIds"),
        subnets=vpc.get("Subnets"),
        encrypt_inter_container_traffic=request.get("EnableInterContainerTrafficEncryption"),
    )
