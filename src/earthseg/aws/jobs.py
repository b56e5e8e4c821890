"""A SageMaker job or endpoint as the user sees it: created (or refused), then followed
until it settles.

Following prints one line whenever the state changes, with the time since it started:
readable on a terminal and in a CI log alike, unlike the SDK's full-screen panels. The
poll goes through boto3 (`aws.call`), so missing credentials read the same everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

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


def follow_job(
    describe: Describe,
    status_key: str,
    state: Callable[[dict[str, Any]], str],
    what: str,
    stop_command: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Follow a job (`status_key`: its status field) until it ends; its last description."""
    return follow(
        describe,
        state,
        lambda job: job[status_key] in JOB_ENDED,
        say,
        what,
        f"follow it in the SageMaker console, or stop it: {stop_command}",
    )


def failure_reason(job: dict[str, Any]) -> str:
    """Why a job did not complete, as SageMaker says it (the image's failure file)."""
    return str(
        job.get("FailureReason")
        or job.get("ExitMessage")
        or job.get("SecondaryStatus")
        or "no reason given"
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"
