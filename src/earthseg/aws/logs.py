"""CloudWatch Logs of SageMaker jobs and endpoints, read without the console.

SageMaker writes a job's log into its kind's group, a stream per instance and start
(`<job>/algo-1-1700000000`; a transform job also `<job>/<instance>-<epoch>/data-log`), and
an endpoint's into a group of its own (`/aws/sagemaker/Endpoints/<name>`), a stream per
variant and instance. Each stream is read with GetLogEvents and carried on with its forward
token, as the SageMaker SDK follows a job: every line comes once, also a line one instance
delivers late. (FilterLogEvents from the last time seen would repeat the lines stamped with
that time and drop such late ones.) Several streams' lines are merged by time and labelled
with their instance: `[algo-2] ...`.

`earthseg logs` shows a job's or endpoint's last lines and its status, or follows it;
`log_tail` and `show_failure_logs` are what a command whose job failed prints: never an
error of their own, since the failure is the news.

Heavy imports (boto3, the SageMaker side in `earthseg.aws.jobs`) happen in the functions:
the CLI reads `LogOptions` while building its parser.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from earthseg.errors import InputError
from earthseg.validation import Integer, Options

if TYPE_CHECKING:
    import boto3
    from botocore.exceptions import ClientError

    from earthseg.aws.jobs import JobKind

LogKind = Literal["training", "processing", "transform", "endpoint"]
TAIL_LINES = 30
JOB_GROUPS = {
    "training": "/aws/sagemaker/TrainingJobs",
    "processing": "/aws/sagemaker/ProcessingJobs",
    "transform": "/aws/sagemaker/TransformJobs",
}
ENDPOINT_GROUPS = "/aws/sagemaker/Endpoints"  # + /<endpoint name>
READ_PERMISSIONS = ("logs:DescribeLogStreams", "logs:GetLogEvents")
UNSUCCESSFUL = ("Failed", "Stopped")
# The start time SageMaker appends to a job's stream per instance: algo-1-1700000000.
STARTED = re.compile(r"-\d{10}(?=/|$)")

Say = Callable[[str], None]


class LogOptions(Options):
    """What `earthseg logs` shows of a job's or endpoint's log."""

    lines: Integer = Field(100, ge=1, le=10_000, description="how many of the last lines to show")
    follow: bool = Field(
        False,
        description="then print new lines as they come, until the job ends (an endpoint's: "
        "until Ctrl-C)",
    )


@dataclass(frozen=True)
class LogSource:
    """Where CloudWatch keeps the log of one job or endpoint."""

    kind: LogKind
    name: str

    @property
    def group(self) -> str:
        return JOB_GROUPS.get(self.kind) or f"{ENDPOINT_GROUPS}/{self.name}"

    @property
    def prefix(self) -> str:
        """Its streams' common start: a job shares its group, an endpoint does not."""
        return "" if self.kind == "endpoint" else f"{self.name}/"

    @property
    def what(self) -> str:
        return (
            f"endpoint {self.name}" if self.kind == "endpoint" else f"{self.kind} job {self.name}"
        )

    def label(self, stream: str) -> str:
        """A stream's short name: its instance (`algo-2`), without the job and start time."""
        return STARTED.sub("", stream.removeprefix(self.prefix))

    def __str__(self) -> str:
        return f"{self.group} {self.prefix}*" if self.prefix else self.group


class Throttled(InputError):
    """CloudWatch Logs refused a read as too many: a follower tries again at its next poll."""


@dataclass(frozen=True)
class _Event:
    timestamp: int
    stream: str
    message: str


class LogReader:
    """The log of one job or endpoint, stream by stream: `tail` reads the last lines,
    then each `new` the lines delivered since, each line once. Once the log has several
    streams, every line carries its stream's label."""

    def __init__(self, session: boto3.Session, source: LogSource) -> None:
        self.source = source
        self._client = session.client("logs")
        self._tokens: dict[str, str | None] = {}  # stream: forward token (None: from its start)
        self._labelled = False

    @property
    def found(self) -> bool:
        """Whether any of its streams exists yet."""
        return bool(self._tokens)

    def tail(self, lines: int) -> list[str]:
        """The last `lines` lines over all streams, oldest first; `new` goes on from there."""
        events: list[_Event] = []
        for stream in self._streams():
            page = self._get(stream, limit=lines, startFromHead=False)
            if page is not None:
                events += _events(stream, page)
                self._tokens[stream] = page["nextForwardToken"]
        return self._lines(sorted(events, key=lambda event: event.timestamp)[-lines:])[-lines:]

    def new(self) -> list[str]:
        """The lines delivered since the last read, also those of streams begun since. A
        throttled read ends early: the tokens moved only past the lines returned."""
        events: list[_Event] = []
        try:
            for stream in self._streams():
                self._tokens.setdefault(stream, None)
            for stream in list(self._tokens):
                self._forward(stream, events)
        except Throttled:
            pass
        return self._lines(sorted(events, key=lambda event: event.timestamp))

    def _forward(self, stream: str, events: list[_Event]) -> None:
        """Read `stream` from its token to its end: GetLogEvents answers the token it was
        given once nothing newer is there."""
        token = self._tokens[stream]
        while True:
            page = self._get(stream, startFromHead=True, **({"nextToken": token} if token else {}))
            if page is None:  # the stream was deleted
                del self._tokens[stream]
                return
            events += _events(stream, page)
            if page["nextForwardToken"] == token:
                return
            token = self._tokens[stream] = page["nextForwardToken"]

    def _streams(self) -> list[str]:
        """Its streams' names (none while the group does not exist)."""
        source = self.source
        request: dict[str, Any] = {"logGroupName": source.group}
        if source.prefix:
            request["logStreamNamePrefix"] = source.prefix
        names: list[str] = []
        while True:
            page = self._call("describe_log_streams", **request)
            if page is None:
                return names
            streams = page.get("logStreams", [])
            names += [stream["logStreamName"] for stream in streams]
            if not streams or not page.get("nextToken"):
                return names
            request["nextToken"] = page["nextToken"]

    def _get(self, stream: str, **request: Any) -> dict[str, Any] | None:
        return self._call(
            "get_log_events", logGroupName=self.source.group, logStreamName=stream, **request
        )

    def _call(self, operation: str, **request: Any) -> dict[str, Any] | None:
        """The answer, or None when the group or stream does not exist (yet)."""
        from botocore.exceptions import ClientError

        from earthseg.aws.session import call

        try:
            return dict(call(self._client, operation, **request))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise unreadable(error, self.source, self._client.meta.region_name) from None

    def _lines(self, events: list[_Event]) -> list[str]:
        self._labelled = self._labelled or len(self._tokens) > 1
        lines = []
        for event in events:
            label = f"[{self.source.label(event.stream)}] " if self._labelled else ""
            lines += [label + text for text in event.message.rstrip("\r\n").splitlines() or [""]]
        return lines


def unreadable(error: ClientError, source: LogSource, region: str) -> InputError:
    """A CloudWatch Logs error as an InputError naming the log, and for a denial the
    permission and the log group to grant it on."""
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", "Error"), detail.get("Message", str(error))
    what = f"the log of {source.what} ({source})"
    denied = code in {"AccessDeniedException", "AccessDenied"} or (
        error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403
    )
    if denied:
        return InputError(
            what,
            f"cannot be read: logs:{error.operation_name} was denied",
            f"give the credentials {' and '.join(READ_PERMISSIONS)} on the log group "
            f"{source.group} (arn:aws:logs:{region}:*:log-group:{source.group}:*)",
        )
    if code == "ThrottlingException":
        return Throttled(what, "cannot be read now (throttled)", "wait a minute and try again")
    return InputError(
        what,
        f"cannot be read ({code}: {message})",
        "correct what the message names, or run the command again",
    )


def log_tail(
    session: boto3.Session, kind: LogKind, name: str, lines: int = TAIL_LINES
) -> list[str]:
    """What a failing command shows of job or endpoint `name`'s log: a heading and its
    last `lines` lines, indented, oldest first; or one line saying there are none, or why
    they could not be read. Never raises."""
    source = LogSource(kind, name)
    try:
        tail = LogReader(session, source).tail(lines)
    except InputError as error:
        return [str(error)]
    if not tail:
        return [_none(source)]
    return [f"last {len(tail)} lines of {source}:", *(f"  {line}" for line in tail)]


def show_failure_logs(session: boto3.Session, kind: LogKind, name: str, say: Say = print) -> None:
    """Say the tail of a failed job's or endpoint's logs (or that there are none yet)."""
    for line in log_tail(session, kind, name):
        say(line)


def job_logs(session: boto3.Session, name: str, options: LogOptions, say: Say = print) -> bool:
    """`earthseg logs --job`: the last lines of job `name` (a training, processing or
    transform job, whichever has the name) and its status; following, the lines as they
    come until it ends. False when the job failed or was stopped."""
    from earthseg.aws import jobs

    kind, job = find_job(session, name)
    client = session.client("sagemaker")
    source = LogSource(kind.kind, name)
    reader = LogReader(session, source)
    try:
        _say_all(say, reader.tail(options.lines))
        running = job[kind.status_key] not in jobs.JOB_ENDED
        if not reader.found:
            waiting = ": waiting for them" if options.follow and running else ""
            say(f"no logs yet for {source.what}{waiting}" if running else _none(source))
        if options.follow and running:
            while job[kind.status_key] not in jobs.JOB_ENDED:
                time.sleep(jobs.POLL_S)
                job = kind.describe(client, name)
                _say_all(say, reader.new())
            time.sleep(jobs.POLL_S)  # CloudWatch can take a moment for the last lines
            _say_all(say, reader.new())
    except KeyboardInterrupt:
        status = job[kind.status_key]
        goes_on = ": it goes on in SageMaker" if status not in jobs.JOB_ENDED else ""
        say(f"stopped following {source.what} ({status}){goes_on}")
        return True
    say(job_status(kind, name, job))
    return job[kind.status_key] not in UNSUCCESSFUL


def endpoint_logs(session: boto3.Session, name: str, options: LogOptions, say: Say = print) -> bool:
    """`earthseg logs --endpoint`: the last lines of endpoint `name` and its status;
    following, the lines as they come until Ctrl-C. A deleted endpoint's log is still
    shown. False when the endpoint failed."""
    from botocore.exceptions import ClientError

    from earthseg.aws import jobs
    from earthseg.aws.registry import is_missing
    from earthseg.aws.session import call

    source = LogSource("endpoint", name)
    try:
        endpoint: dict[str, Any] | None = dict(
            call(session.client("sagemaker"), "describe_endpoint", EndpointName=name)
        )
    except ClientError as error:
        if not is_missing(error):
            raise jobs.refused(error, source.what) from None
        endpoint = None
    reader = LogReader(session, source)
    try:
        _say_all(say, reader.tail(options.lines))
        if endpoint is None:
            if not reader.found:
                raise InputError(
                    "--endpoint",
                    f"there is no endpoint {name} in {session.region_name}, nor a log of one",
                    "check the name and region (aws sagemaker list-endpoints)",
                )
            say(f"endpoint {name}: deleted (its log stays in CloudWatch)")
            return True
        if not reader.found:
            say(f"no logs yet for {source.what}{': waiting for them' if options.follow else ''}")
        while options.follow:
            time.sleep(jobs.POLL_S)
            _say_all(say, reader.new())
    except KeyboardInterrupt:
        return True
    status = endpoint["EndpointStatus"]
    reason = endpoint.get("FailureReason") if status == "Failed" else None
    say(f"endpoint {name}: {status}{f': {reason}' if reason else ''}")
    return bool(status != "Failed")


def find_job(session: boto3.Session, name: str) -> tuple[JobKind, dict[str, Any]]:
    """The kind and description of job `name`: SageMaker asked as a training, then a
    processing, then a transform job."""
    from botocore.exceptions import ClientError

    from earthseg.aws import jobs
    from earthseg.aws.registry import is_missing

    client = session.client("sagemaker")
    for kind in jobs.JOB_KINDS:
        try:
            return kind, kind.describe(client, name)
        except ClientError as error:
            if not is_missing(error):
                raise jobs.refused(error, f"{kind.noun} {name}") from None
    raise InputError(
        "--job",
        f"there is no training, processing or transform job {name} in {session.region_name}",
        "check the name and the region; `aws sagemaker list-training-jobs --sort-by "
        "CreationTime` lists the newest (and list-processing-jobs, list-transform-jobs)",
    )


def job_status(kind: JobKind, name: str, job: dict[str, Any]) -> str:
    """One line: the job's status, its secondary status, and why it failed."""
    from earthseg.aws.jobs import failure_reason

    status = job[kind.status_key]
    secondary = job.get("SecondaryStatus")
    line = f"{kind.noun} {name}: {status}"
    if secondary and secondary != status:
        line += f" / {secondary}"
    reason = failure_reason(job) if status in UNSUCCESSFUL else ""
    return f"{line}: {reason}" if reason else line


def _events(stream: str, page: dict[str, Any]) -> list[_Event]:
    return [_Event(event["timestamp"], stream, event["message"]) for event in page["events"]]


def _none(source: LogSource) -> str:
    return f"no logs in CloudWatch for {source.what}"


def _say_all(say: Say, lines: list[str]) -> None:
    for line in lines:
        say(line)
