"""`earthseg preprocess --processing`: preprocessing as a SageMaker Processing job that
runs the training image, started from here through the SDK v3 `Processor`.

This is the launching side; `earthseg.processing` is the other side, the mounts the
command finds inside the job. The export's images and labels in S3 are mounted at
/opt/ml/processing/input/{images,labels}, the dataset is written to
/opt/ml/processing/output and uploaded to the output URI when the job ends, ready for
`earthseg train --data`. The image's entry point maps `preprocess` to `earthseg
preprocess`, which defaults to those mounts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.errors import InputError
from earthseg.launch import aws, lifecycle, s3
from earthseg.launch.role import execution_role
from earthseg.launch.sdk import sdk_session
from earthseg.opt_ml import DEFAULT_BASE_DIR

PROCESSING = f"{DEFAULT_BASE_DIR}/processing"
INPUTS = ("images", "labels")
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
TIMESTAMP_LENGTH = 24  # the Processor's "-2026-01-31-12-00-00-000"
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class PreprocessJobResult:
    """The finished job and where its dataset is."""

    job_name: str
    status: str
    output_uri: str


def run_preprocess_job(
    session: boto3.Session,
    image: str,
    images_uri: str,
    labels_uri: str,
    out_uri: str,
    options: Sequence[str] = (),
    role: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    base_job_name: str = "earthseg-preprocess",
    max_run_s: int = 24 * 3600,
    volume_size_gb: int = 30,
    wait: bool = True,
    say: Callable[[str], None] = print,
) -> PreprocessJobResult:
    """Run `earthseg preprocess OPTIONS` in `image` on the export in S3; with `wait`,
    follow it to the end. A failed job raises an InputError with SageMaker's reason."""
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )

    lifecycle.check_base_name(base_job_name, TIMESTAMP_LENGTH, "job name")
    sources = {
        "images": s3.parse_s3_uri(images_uri, "--images"),
        "labels": s3.parse_s3_uri(labels_uri, "--labels"),
    }
    out = s3.parse_s3_uri(out_uri, "--out")
    role = execution_role(role)
    aws.account_id(session)  # missing or refused credentials fail here, readably
    for name, uri in sources.items():
        if not s3.has_objects(session, uri):
            raise InputError(
                f"--{name}", f"{uri.folder} holds nothing", "give the export's S3 folder"
            )
    s3.check_bucket(session, out, "--out")
    processor = Processor(
        role=role,
        image_uri=image,
        instance_count=1,
        instance_type=instance_type,
        volume_size_in_gb=volume_size_gb,
        max_runtime_in_seconds=max_run_s,
        base_job_name=base_job_name,
        sagemaker_session=sdk_session(session),
    )
    inputs = [
        ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=uri.folder,
                local_path=f"{PROCESSING}/input/{name}",
                s3_data_type="S3Prefix",
                s3_input_mode="File",
            ),
        )
        for name, uri in sources.items()
    ]
    output = ProcessingOutput(
        output_name="dataset",
        s3_output=ProcessingS3Output(
            s3_uri=out.folder, local_path=f"{PROCESSING}/output", s3_upload_mode="EndOfJob"
        ),
    )
    try:
        processor.run(
            inputs=inputs,
            outputs=[output],
            arguments=["preprocess", *options],
            wait=False,
            logs=False,
        )
    except ClientError as error:
        raise lifecycle.refused(error, f"processing job {base_job_name}") from None
    name = str(processor.latest_job.processing_job_name)
    say(f"processing job {name} (1 x {instance_type}) with {image}: preprocess {' '.join(options)}")
    client = session.client("sagemaker")

    def describe() -> dict[str, Any]:
        return dict(aws.call(client, "describe_processing_job", ProcessingJobName=name))

    if not wait:
        return PreprocessJobResult(name, describe()["ProcessingJobStatus"], out.folder)
    job = lifecycle.follow(
        describe,
        lambda job: job["ProcessingJobStatus"],
        lambda job: job["ProcessingJobStatus"] in TERMINAL,
        say,
        f"processing job {name}",
        f"stop it with: aws sagemaker stop-processing-job --processing-job-name {name}",
    )
    status = job["ProcessingJobStatus"]
    if status != "Completed":
        reason = job.get("FailureReason") or job.get("ExitMessage") or "no reason given"
        raise InputError(
            f"processing job {name}",
            f"ended {status}: {reason}",
            "correct what the reason names and run it again; the full log is in CloudWatch "
            f"(/aws/sagemaker/ProcessingJobs, stream {name}/algo-1-*)",
        )
    return PreprocessJobResult(name, status, out.folder)
