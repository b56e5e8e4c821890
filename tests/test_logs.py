"""`earthseg logs` and the log tail of failed jobs, against CloudWatch Logs in the emulator.

Lines go into the groups and streams SageMaker writes (`/aws/sagemaker/TrainingJobs`,
`<job>/algo-1-<epoch>` per instance; `/aws/sagemaker/Endpoints/<name>`), jobs and
endpoints into moto's SageMaker. Lines that arrive while a job runs are put by moto itself
as it answers a call (`on_call`), so what a follower sees at each poll is fixed, not raced.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

from earthseg.aws.logs import log_tail
from earthseg.aws.session import open_session
from earthseg.cli import main

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator

ROLE = "arn:aws:iam::123456789012:role/earthseg-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-train:0.1.0-gpu"
TRAINING = "/aws/sagemaker/TrainingJobs"
JOB = "dust-20260131120000"
REASON = "AlgorithmError: channel validation: shards.json is missing"
T0 = int(time.time() * 1000) - 600_000  # moto keeps only lines of the last 14 days


def earthseg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def put_lines(aws: Emulator, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
    """Lines (ms after T0, message) into `stream` of `group`, both made if missing."""
    logs = aws.client("logs")
    for make in (
        lambda: logs.create_log_group(logGroupName=group),
        lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream),
    ):
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            make()
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": T0 + at, "message": message} for at, message in lines],
    )


def putting(
    aws: Emulator, group: str, streams: dict[str, list[tuple[int, str]]]
) -> Callable[[], None]:
    """An action putting lines into `group`, by stream."""

    def put() -> None:
        for stream, lines in streams.items():
            put_lines(aws, group, stream, lines)

    return put


def on_call(
    monkeypatch: pytest.MonkeyPatch,
    backend: type,
    method: str,
    actions: dict[int, Callable[[], None]],
) -> None:
    """Make moto run `actions[n]()` as it takes the n-th call (from 1) of `method` on
    `backend`, before answering it: e.g. lines that arrive while a job runs."""
    original = getattr(backend, method)
    calls = itertools.count(1)

    def acting(self: Any, *args: Any, **kwargs: Any) -> Any:
        action = actions.get(next(calls))
        if action:
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(backend, method, acting)


def on_log_stream_listing(
    monkeypatch: pytest.MonkeyPatch, actions: dict[int, Callable[[], None]]
) -> None:
    """`on_call` for DescribeLogStreams, which a reader calls once per read."""
    from moto.logs.models import LogsBackend

    on_call(monkeypatch, LogsBackend, "describe_log_streams", actions)


def create_training_job(aws: Emulator, name: str = JOB, instances: int = 2) -> None:
    aws.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://earthseg-test/runs"},
        ResourceConfig={
            "InstanceType": "ml.g5.xlarge",
            "InstanceCount": instances,
            "VolumeSizeInGB": 30,
        },
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def training(status: str, secondary: str, reason: str | None = None) -> dict[str, Any]:
    """A DescribeTrainingJob state."""
    return {
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        **({"FailureReason": reason} if reason else {}),
    }


def failed(monkeypatch: pytest.MonkeyPatch, aws: Emulator) -> None:
    aws.script_states(monkeypatch, "describe_training_job", [training("Failed", "Failed", REASON)])


# --- the last lines and the status ----------------------------------------------------------


def test_a_failed_jobs_log_merges_its_instances_by_time_and_ends_with_why(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_training_job(aws_env)
    failed(monkeypatch, aws_env)
    put_lines(aws_env, TRAINING, f"{JOB}/algo-1-1700000000", [(0, "start 1"), (20, "epoch=1")])
    put_lines(aws_env, TRAINING, f"{JOB}/algo-2-1700000000", [(10, "start 2"), (30, "boom\n")])
    put_lines(aws_env, TRAINING, "other-job/algo-1-1700000000", [(15, "not this job")])
    code, out, err = earthseg(capsys, "logs", "--job", JOB)
    assert code == 1, err
    assert out.splitlines() == [
        "[algo-1] start 1",
        "[algo-2] start 2",
        "[algo-1] epoch=1",
        "[algo-2] boom",
        f"training job {JOB}: Failed: {REASON}",
    ]
    code, out, _ = earthseg(capsys, "logs", "--job", JOB, "--lines", "2")
    assert out.splitlines()[:-1] == ["[algo-1] epoch=1", "[algo-2] boom"]


def test_one_instance_is_not_labelled_and_a_completed_job_exits_0(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    create_training_job(aws_env, instances=1)  # moto's jobs are born Completed
    put_lines(aws_env, TRAINING, f"{JOB}/algo-1-1700000000", [(0, "one"), (5, "two\nthree")])
    code, out, err = earthseg(capsys, "logs", "--job", JOB)
    assert code == 0, err
    assert out.splitlines() == ["one", "two", "three", f"training job {JOB}: Completed"]


def test_processing_and_transform_jobs_are_found_by_name(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker = aws_env.client("sagemaker")
    sagemaker.create_processing_job(
        ProcessingJobName="dust-preprocess",
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 30,
            }
        },
        AppSpecification={"ImageUri": IMAGE},
        RoleArn=ROLE,
    )
    sagemaker.create_model(
        ModelName="dust-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}
    )
    sagemaker.create_transform_job(
        TransformJobName="dust-detect",
        ModelName="dust-model",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}
        },
        TransformOutput={"S3OutputPath": "s3://b/out/"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    put_lines(
        aws_env,
        "/aws/sagemaker/ProcessingJobs",
        "dust-preprocess/algo-1-1700000000",
        [(0, "tiles: 48")],
    )
    put_lines(
        aws_env,
        "/aws/sagemaker/TransformJobs",
        "dust-detect/i-0123456789abcdef0-1700000000",
        [(0, "serving")],
    )
    put_lines(
        aws_env,
        "/aws/sagemaker/TransformJobs",
        "dust-detect/i-0123456789abcdef0-1700000000/data-log",
        [(1, "scene-1.tif: 200")],
    )
    code, out, err = earthseg(capsys, "logs", "--job", "dust-preprocess")
    assert code == 0, err
    assert out.splitlines() == ["tiles: 48", "processing job dust-preprocess: Completed"]
    code, out, err = earthseg(capsys, "logs", "--job", "dust-detect")
    assert code == 0, err
    assert out.splitlines() == [
        "[i-0123456789abcdef0] serving",
        "[i-0123456789abcdef0/data-log] scene-1.tif: 200",
        "transform job dust-detect: Completed",
    ]


def test_a_job_without_logs_yet_says_so(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_training_job(aws_env)
    aws_env.script_states(
        monkeypatch, "describe_training_job", [training("InProgress", "Starting")]
    )
    code, out, err = earthseg(capsys, "logs", "--job", JOB)
    assert code == 0, err
    assert out.splitlines() == [
        f"no logs yet for training job {JOB}",
        f"training job {JOB}: InProgress / Starting",
    ]


def test_a_job_that_does_not_exist_is_named_with_how_to_list_jobs(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = earthseg(capsys, "logs", "--job", "dust-nope")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "earthseg logs: error: --job: there is no training, processing or transform job "
        "dust-nope in us-east-1. Fix: check the name and the region; `aws sagemaker "
        "list-training-jobs --sort-by CreationTime` lists the newest (and "
        "list-processing-jobs, list-transform-jobs)"
    ]


# --- following ------------------------------------------------------------------------------


def test_follow_prints_each_line_once_until_the_job_fails(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines arrive between polls, one instance's late (stamped before lines already
    printed: following from the last time seen would drop it), and after the job ended."""
    create_training_job(aws_env)
    aws_env.script_states(
        monkeypatch,
        "describe_training_job",
        [
            training("InProgress", "Starting"),  # found; no logs yet
            training("InProgress", "Training"),
            training("InProgress", "Training"),
            training("Failed", "Failed", REASON),
        ],
    )
    one, two = f"{JOB}/algo-1-1700000000", f"{JOB}/algo-2-1700000000"
    on_log_stream_listing(
        monkeypatch,
        {
            # 1: the tail, before any stream exists
            2: putting(aws_env, TRAINING, {one: [(0, "a1"), (20, "a2")], two: [(10, "b1")]}),
            3: putting(aws_env, TRAINING, {two: [(15, "b2, late")], one: [(30, "a3")]}),
            4: putting(aws_env, TRAINING, {one: [(40, "a4: Traceback")]}),
            5: putting(aws_env, TRAINING, {two: [(41, "b3, after the end")]}),
        },
    )
    code, out, err = earthseg(capsys, "logs", "--job", JOB, "--follow")
    assert code == 1, err
    assert out.splitlines() == [
        f"no logs yet for training job {JOB}: waiting for them",
        "[algo-1] a1",
        "[algo-2] b1",
        "[algo-1] a2",
        "[algo-2] b2, late",
        "[algo-1] a3",
        "[algo-1] a4: Traceback",
        "[algo-2] b3, after the end",
        f"training job {JOB}: Failed: {REASON}",
    ]


def test_follow_of_a_running_job_starts_from_its_last_lines(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_training_job(aws_env, instances=1)
    aws_env.script_states(
        monkeypatch,
        "describe_training_job",
        [training("InProgress", "Training"), training("Completed", "Completed")],
    )
    stream = f"{JOB}/algo-1-1700000000"
    put_lines(aws_env, TRAINING, stream, [(at, f"line {at}") for at in range(5)])
    on_log_stream_listing(monkeypatch, {2: putting(aws_env, TRAINING, {stream: [(9, "line 9")]})})
    code, out, err = earthseg(capsys, "logs", "--job", JOB, "--follow", "--lines", "2")
    assert code == 0, err
    assert out.splitlines() == [
        "line 3",
        "line 4",
        "line 9",
        f"training job {JOB}: Completed",
    ]


# --- endpoints ------------------------------------------------------------------------------


def create_endpoint(aws: Emulator, name: str) -> None:
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.xlarge",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)


def test_an_endpoints_log_then_its_status(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    create_endpoint(aws_env, "dust")
    group = "/aws/sagemaker/Endpoints/dust"
    put_lines(aws_env, group, "AllTraffic/i-0aaa", [(0, "worker 1 ready"), (20, "POST 200")])
    put_lines(aws_env, group, "AllTraffic/i-0bbb", [(10, "worker 2 ready")])
    put_lines(aws_env, "/aws/sagemaker/Endpoints/dust-2", "AllTraffic/i-0ccc", [(5, "other")])
    code, out, err = earthseg(capsys, "logs", "--endpoint", "dust")
    assert code == 0, err
    assert out.splitlines() == [
        "[AllTraffic/i-0aaa] worker 1 ready",
        "[AllTraffic/i-0bbb] worker 2 ready",
        "[AllTraffic/i-0aaa] POST 200",
        "endpoint dust: InService",
    ]


def test_following_an_endpoint_ends_cleanly_on_ctrl_c(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_endpoint(aws_env, "dust")
    group = "/aws/sagemaker/Endpoints/dust"
    put_lines(aws_env, group, "AllTraffic/i-0aaa", [(0, "ready")])
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        on_log_stream_listing(
            monkeypatch,
            {
                2: putting(aws_env, group, {"AllTraffic/i-0aaa": [(5, "POST 200")]}),
                # The line above was printed in the round before: Ctrl-C in the next one.
                3: lambda: os.kill(os.getpid(), signal.SIGINT),
            },
        )
        code, out, err = earthseg(capsys, "logs", "--endpoint", "dust", "--follow")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0, err
    assert out.splitlines() == ["ready", "POST 200"]
    assert err == ""


def test_a_deleted_endpoints_log_is_still_shown_and_an_unknown_one_is_an_error(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    put_lines(aws_env, "/aws/sagemaker/Endpoints/gone", "AllTraffic/i-0aaa", [(0, "bye")])
    code, out, err = earthseg(capsys, "logs", "--endpoint", "gone")
    assert code == 0, err
    assert out.splitlines() == ["bye", "endpoint gone: deleted (its log stays in CloudWatch)"]
    code, out, err = earthseg(capsys, "logs", "--endpoint", "never")
    assert code == 2
    assert "--endpoint: there is no endpoint never in us-east-1, nor a log of one" in err


# --- failing commands -----------------------------------------------------------------------


def test_a_failing_training_job_shows_its_log_tail_and_names_earthseg_logs(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="earthseg-test")
    for channel in ("train", "validation"):
        s3.put_object(Bucket="earthseg-test", Key=f"dust/{channel}/shard-0.tfrecord", Body=b"x")
    aws_env.script_states(
        monkeypatch,
        "describe_training_job",
        [training("InProgress", "Training"), training("Failed", "Failed", REASON)],
    )
    from moto.sagemaker.models import SageMakerModelBackend

    job_names: list[str] = []

    def write_the_log() -> None:
        (summary,) = aws_env.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
        job_names.append(summary["TrainingJobName"])
        stream = f"{job_names[0]}/algo-1-1700000000"
        put_lines(aws_env, TRAINING, stream, [(0, "epoch=1 loss=0.5;"), (1, REASON)])

    on_call(monkeypatch, SageMakerModelBackend, "describe_training_job", {1: write_the_log})
    code, out, err = earthseg(
        capsys,
        "train", "--image", IMAGE, "--data", "s3://earthseg-test/dust/", "--role", ROLE,
        "--output", "s3://earthseg-test/runs", "--name", "dust",
    )  # fmt: skip
    assert code == 2
    (name,) = job_names
    assert out.splitlines()[-3:] == [
        f"last 2 lines of {TRAINING} {name}/*:",
        "  epoch=1 loss=0.5;",
        f"  {REASON}",
    ]
    assert f"training job {name}: ended Failed: {REASON}" in err
    assert f"the whole log: earthseg logs --job {name} (CloudWatch {TRAINING})" in err


def test_the_tail_of_a_job_without_logs_says_so(aws_env: Emulator) -> None:
    create_training_job(aws_env)
    assert log_tail(open_session(), "training", JOB) == [
        f"no logs in CloudWatch for training job {JOB}"
    ]


# --- permissions ----------------------------------------------------------------------------


@contextlib.contextmanager
def allowed_only(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch, actions: list[str]
) -> Iterator[None]:
    """The process's credentials become a user allowed only `actions`, and the emulator
    checks every request's permissions meanwhile."""
    iam = aws.client("iam")
    iam.create_user(UserName="limited")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName="limited", PolicyName="some", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="limited")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    checks = f"{aws.url}/moto-api/reset-auth"
    requests.post(checks, data=b"0", timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.post(checks, data=b"inf", timeout=10).raise_for_status()


@pytest.mark.parametrize(
    ("allowed", "denied"),
    [
        (["sagemaker:*"], "logs:DescribeLogStreams"),
        (["sagemaker:*", "logs:DescribeLogStreams"], "logs:GetLogEvents"),
    ],
)
def test_a_denied_read_names_the_permission_and_the_log_group(
    aws_env: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    allowed: list[str],
    denied: str,
) -> None:
    create_training_job(aws_env)
    failed(monkeypatch, aws_env)
    put_lines(aws_env, TRAINING, f"{JOB}/algo-1-1700000000", [(0, "a line")])
    message = (
        f"the log of training job {JOB} ({TRAINING} {JOB}/*): cannot be read: {denied} was "
        "denied. Fix: give the credentials logs:DescribeLogStreams and logs:GetLogEvents on "
        f"the log group {TRAINING} (arn:aws:logs:us-east-1:*:log-group:{TRAINING}:*)"
    )
    with allowed_only(aws_env, monkeypatch, allowed):
        code, out, err = earthseg(capsys, "logs", "--job", JOB)
        assert (code, out) == (2, "")
        assert err.splitlines() == [f"earthseg logs: error: {message}"]
        # What a failing command prints instead of its tail: the reason, never an error.
        assert log_tail(open_session(), "training", JOB) == [message]
