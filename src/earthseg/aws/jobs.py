"""A SageMaker job or endpoint as the user sees it: created (or refused), then followed
until it settles.

Following prints one line whenever the state changes, with the time since it started:
readable on a terminal and in a CI log alike, unlike the SDK's full-screen panels. The
poll goes through boto3 (`earthseg.aws.session.call`), so missing credentials read the same
everywhere. A job that fails shows the tail of its CloudWatch log (`earthseg.aws.logs`)
before its reason, and names `earthseg logs --job` for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from earthseg.aws.logs import JOB_GROUPS, LogKind, show_failure_logs
from earthseg.aws.session import call
from earthseg.errors import InputError

POLL_S = 15.0  # DescribeTrainingJob & co. are throttled per account; jobs take minutes

REFUSAL_FIXES = {
    "ResourceLimitExceeded": (
        "request a higher quota for that instance type (Service Quotas > Amazon SageMaker), "
        "or choose another instance type or count"
    ),
    "AccessDeniedException": (
        "give the credentials the SageMaker permission the message names, and iam:PassRole "
        "on the execution role"
    ),
    "ResourceInUse": "choose another name, or delete the resource that has it",
    "ThrottlingException": "wait a minute and run the command again",
}

JOB_ENDED = ("Completed", "Failed", "Stopped")

Describe = Callable[[], dict[str, Any]]


def refused(error: ClientError, what: str) -> InputError:
    """A service error on creating `what` as an InputError carrying AWS's own message."""
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", "Error"), detail.get("Message", str(error))
    fix = REFUSAL_FIXES.get(code, "correct what the message names and run the command again")
    return InputError(what, f"was refused by SageMaker ({code}: {message})", fix)


def paged(client: Any, operation: str, key: str, what: str, **request: Any) -> Iterator[Any]:
    """Every item (under `key`) of a paginated List call, page by page; a service error
    as `refused` says it, naming `what` was listed."""
    token = None
    while True:
        page_request = {**request, **({"NextToken": token} if token else {})}
        try:
            page = call(client, operation, **page_request)
        except ClientError as error:
            raise refused(error, what) from None
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def follow(
    describe: Describe,
    state: Callable[[dict[str, Any]], str],
    settled: Callable[[dict[str, Any]], bool],
    say: Callable[[str], None],
    what: str,
    still_running_fix: str,
) -> dict[str, Any]:
    """Poll `describe` until `settled`; `say` each new `state` line; return the last
    description. Ctrl-C stops the waiting only, and says so: the resource lives on."""
    start = time.monotonic()
    last = ""
    try:
        while True:
            description = describe()
            line = state(description)
            if line != last:
                say(f"  [{_clock(time.monotonic() - start)}] {line}")
                last = line
            if settled(description):
                return description
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        raise InputError(
            what, "goes on in SageMaker: only the waiting was interrupted", still_running_fix
        ) from None


@dataclass(frozen=True)
class JobKind:
    """A kind of SageMaker job as the API and the CLI name it."""

    noun: str  # "training job"
    api: str  # "training_job": describe_training_job, TrainingJobName, TrainingJobStatus
    kind: LogKind  # "training": its CloudWatch log group (earthseg.aws.logs)

    @property
    def status_key(self) -> str:
        return f"{_camel(self.api)}Status"

    def describe(self, client: Any, name: str) -> dict[str, Any]:
        return dict(call(client, f"describe_{self.api}", **{f"{_camel(self.api)}Name": name}))


TRAINING_JOB = JobKind("training job", "training_job", "training")
PROCESSING_JOB = JobKind("processing job", "processing_job", "processing")
TRANSFORM_JOB = JobKind("transform job", "transform_job", "transform")
JOB_KINDS = (TRAINING_JOB, PROCESSING_JOB, TRANSFORM_JOB)


def failure_reason(job: dict[str, Any]) -> str:
    """Why a job that ended failed, in SageMaker's words ("" if it gave none)."""
    return str(job.get("FailureReason") or job.get("ExitMessage") or "")


def follow_job(
    session: boto3.Session,
    kind: JobKind,
    name: str,
    state: Callable[[dict[str, Any]], str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Follow job `name` until it ends; its last description if it completed. Else say
    the tail of its log, and raise an InputError carrying SageMaker's reason (what the
    image wrote to its failure file), how to read the whole log and, for a job with
    checkpoints, how a new job resumes it."""
    client = session.client("sagemaker")
    what = f"{kind.noun} {name}"
    stop = f"aws sagemaker stop-{kind.api.replace('_', '-')} --{kind.api.replace('_', '-')}-name"
    job = follow(
        lambda: kind.describe(client, name),
        state,
        lambda job: job[kind.status_key] in JOB_ENDED,
        say,
        what,
        f"follow it with `earthseg logs --job {name} --follow`, or stop it: {stop} {name}",
    )
    status = job[kind.status_key]
    if status != "Completed":
        show_failure_logs(session, kind.kind, name, say)
        reason = failure_reason(job) or job.get("SecondaryStatus")
        checkpoints = job.get("CheckpointConfig", {}).get("S3Uri")
        resume = f"; a new job given --checkpoints {checkpoints} resumes it" if checkpoints else ""
        raise InputError(
            what,
            f"ended {status}: {reason or 'no reason given'}",
            f"correct what the reason names and run it again; the whole log: earthseg logs "
            f"--job {name} (CloudWatch {JOB_GROUPS[kind.kind]}){resume}",
        )
    return job


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
