"""`earthseg iam-policy`: the execution role's and the caller's IAM policies for a run, made
from run.yaml without AWS, and the proof that the caller's covers what the launcher calls:
every request the test suite's launcher commands sent to the AWS emulator, mapped to its
IAM action (tests/aws_emulator.py), must be allowed by the caller's policy. That test runs
after all the others (tests/conftest.py); run alone, it drives a pipeline launch first.
Both policies are linted with parliament (AWS IAM policy checks from Duo Labs)."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from parliament import analyze_policy_string

from earthseg.aws.permissions import (
    LAUNCHER_CALLS,
    caller_policy,
    execution_role_policy,
    run_scope,
)
from earthseg.cli import main as cli
from earthseg.pipeline.config import load_config
from tests.aws_emulator import Emulator, request_actions
from tests.pipeline_runs import small_run
from tests.test_pipeline_definition import SERVE_IMAGE as PUSHED_SERVE_IMAGE
from tests.test_pipeline_definition import TRAIN_IMAGE as PUSHED_TRAIN_IMAGE
from tests.test_pipeline_definition import push_images

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/earthseg-sagemaker"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TRAIN_IMAGE = f"{REGISTRY}/earthseg-train:0.1.0-gpu"
SERVE_IMAGE = f"{REGISTRY}/team/earthseg-serve@sha256:{'0' * 64}"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
TRACKING_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/earthseg"
SUBNET, GROUP = "subnet-0123456789abcdef0", "sg-0123456789abcdef0"
LOCKED_DOWN: dict[str, Any] = {
    "vpc": {"subnets": [SUBNET], "security_groups": [GROUP]},
    "kms_key": KEY_ARN,
    "tags": {"project": "dust", "cost-centre": "geo-42"},
}


@pytest.fixture(autouse=True)
def untracked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracking only where a config asks for it (a run tracks to $MLFLOW_TRACKING_URI too)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def run_yaml(folder: Path, name: str = "dust-plumes", **aws: Any) -> Path:
    """A run config for SageMaker in `folder` (aws: the `aws:` keys besides these)."""
    config = {
        "name": name,
        "export": {"labels": "export.zip"},
        "train": {"image": TRAIN_IMAGE},
        "deploy": {"image": SERVE_IMAGE},
        "aws": {"region": REGION, "role": ROLE, "s3": "s3://dust-bucket/runs", **aws},
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def policies(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    scope = run_scope(load_config(path))
    return execution_role_policy(scope), caller_policy(scope)


def allows(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The statements of `policy` allowing `action` (IAM's wildcards, any case)."""
    return [
        statement
        for statement in policy["Statement"]
        if any(fnmatch(action.lower(), pattern.lower()) for pattern in statement["Action"])
    ]


def resources(statement: dict[str, Any]) -> list[str]:
    given = statement["Resource"]
    return [given] if isinstance(given, str) else list(given)


# --- the command --------------------------------------------------------------------------


def sections(out: str) -> list[tuple[str, dict[str, Any]]]:
    """The printed policies: each heading line ("# ...") and the JSON document under it."""
    found = []
    for part in ("\n" + out).split("\n# ")[1:]:
        heading, document = part.split("\n", 1)
        found.append((heading, json.loads(document)))
    return found


def test_the_command_prints_both_policies_under_a_heading_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = run_yaml(tmp_path)
    role_policy, caller = policies(config)
    assert cli(["iam-policy", "--config", str(config)]) == 0
    (role_heading, printed_role), (caller_heading, printed_caller) = sections(
        capsys.readouterr().out
    )
    assert role_heading.startswith(f"execution role {ROLE}: what SageMaker jobs")
    assert caller_heading.startswith("caller: the credentials that run earthseg")
    assert (printed_role, printed_caller) == (role_policy, caller)

    assert cli(["iam-policy", "--config", str(config), "--caller"]) == 0
    assert [document for _, document in sections(capsys.readouterr().out)] == [caller]
    assert cli(["iam-policy", "--config", str(config), "--execution-role"]) == 0
    assert [document for _, document in sections(capsys.readouterr().out)] == [role_policy]


def test_out_writes_the_two_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = run_yaml(tmp_path)
    folder = tmp_path / "policies"
    assert cli(["iam-policy", "--config", str(config), "--out", str(folder)]) == 0
    role_policy, caller = policies(config)
    assert json.loads((folder / "execution-role-policy.json").read_text()) == role_policy
    assert json.loads((folder / "caller-policy.json").read_text()) == caller
    out = capsys.readouterr().out
    assert str(folder / "caller-policy.json") in out
    assert sorted(path.name for path in folder.iterdir()) == [
        "caller-policy.json",
        "execution-role-policy.json",
    ]


def test_without_a_role_region_or_bucket_it_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("SAGEMAKER_ROLE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    config = run_yaml(tmp_path, role=None)
    assert cli(["iam-policy", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "aws.role: is not set, nor SAGEMAKER_ROLE" in err
    assert "export SAGEMAKER_ROLE" in err

    monkeypatch.setenv("SAGEMAKER_ROLE", "not-a-role")
    assert cli(["iam-policy", "--config", str(config)]) == 2
    assert "SAGEMAKER_ROLE: 'not-a-role' is not an IAM role ARN" in capsys.readouterr().err

    monkeypatch.setenv("SAGEMAKER_ROLE", ROLE)  # the role may come from the environment
    assert cli(["iam-policy", "--config", str(config), "--caller"]) == 0
    assert ROLE in capsys.readouterr().out

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = run_yaml(elsewhere, region=None)
    raw = yaml.safe_load(config.read_text())
    raw["train"]["image"] = "ghcr.io/team/earthseg-train:0.1.0-gpu"
    raw["deploy"]["image"] = "ghcr.io/team/earthseg-serve:0.1.0-gpu"
    config.write_text(yaml.safe_dump(raw))
    assert cli(["iam-policy", "--config", str(config)]) == 2
    assert "aws.region: is not set, nor AWS_REGION" in capsys.readouterr().err

    config = run_yaml(elsewhere, region=None, s3=None)  # the ECR images name the region
    assert cli(["iam-policy", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "aws.s3: is not set" in err and "s3://bucket/prefix" in err


# --- what the policies grant --------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, LOCKED_DOWN], ids=["plain", "locked-down"])
def test_the_execution_role_names_only_the_runs_prefix_repositories_and_key(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    role_policy, _ = policies(run_yaml(tmp_path, **settings))
    default_async = f"arn:aws:s3:::sagemaker-{REGION}-{ACCOUNT}"
    for statement in role_policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not any(action.endswith(":*") or action == "*" for action in statement["Action"])
        services = {action.split(":")[0] for action in statement["Action"]}
        if "*" in resources(statement):  # only what IAM cannot scope
            assert set(statement["Action"]) <= {
                "ecr:GetAuthorizationToken",
                "cloudwatch:PutMetricData",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            }
        if services == {"s3"}:
            for resource in resources(statement):
                if resource.startswith(default_async):  # the run's asynchronous endpoints
                    assert resource in (
                        default_async,
                        f"{default_async}/earthseg/async/dust-plumes-*",
                    )
                else:
                    assert resource in (
                        "arn:aws:s3:::dust-bucket",
                        "arn:aws:s3:::dust-bucket/runs/*",
                    )
            if statement["Action"] == ["s3:ListBucket"]:
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert all(prefix.startswith(("runs", "earthseg/async")) for prefix in prefixes)
        if services == {"ecr"} and "*" not in resources(statement):
            assert resources(statement) == [
                f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/earthseg-train",
                f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/earthseg-serve",
            ]
        if services == {"kms"}:
            assert resources(statement) == [KEY_ARN]
        if services == {"cloudwatch"}:
            assert statement["Condition"] == {
                "StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}
            }
    granted = {action for statement in role_policy["Statement"] for action in statement["Action"]}
    assert {"s3:GetObject", "s3:PutObject", "ecr:BatchGetImage", "logs:PutLogEvents"} <= granted
    assert {"sagemaker:CreateTrainingJob", "sagemaker:CreateModelPackage"} <= granted
    assert ("kms:Decrypt" in granted) == bool(settings)
    assert ("ec2:CreateNetworkInterface" in granted) == bool(settings)
    (passing,) = allows(role_policy, "iam:PassRole")
    assert passing["Resource"] == ROLE


def test_the_vpc_interfaces_are_made_in_the_runs_subnets_and_groups(tmp_path: Path) -> None:
    role_policy, caller = policies(run_yaml(tmp_path, **LOCKED_DOWN))
    (create,) = allows(role_policy, "ec2:CreateNetworkInterface")
    assert resources(create) == [
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/*",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{SUBNET}",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{GROUP}",
    ]
    assert not allows(caller, "ec2:CreateNetworkInterface")  # SageMaker does it as the role


def test_the_caller_passes_the_execution_role_only_and_only_to_sagemaker(tmp_path: Path) -> None:
    _, caller = policies(run_yaml(tmp_path, **LOCKED_DOWN))
    (passing,) = allows(caller, "iam:PassRole")
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Resource"] == ROLE
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    for statement in caller["Statement"]:
        if any(action.startswith("iam:") for action in statement["Action"]):
            assert resources(statement) == [ROLE]


def test_the_caller_acts_on_the_runs_resources(tmp_path: Path) -> None:
    _, caller = policies(run_yaml(tmp_path))
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    (create,) = allows(caller, "sagemaker:CreateTrainingJob")
    assert resources(create) == [
        f"{arn}:training-job/dust-plumes-*",
        f"{arn}:training-job/pipelines-*",
    ]
    (endpoint,) = allows(caller, "sagemaker:CreateEndpoint")  # needs both, in one statement
    assert resources(endpoint) == [
        f"{arn}:endpoint/dust-plumes-*",
        f"{arn}:endpoint-config/dust-plumes-*",
    ]
    (start,) = allows(caller, "sagemaker:StartPipelineExecution")
    assert start["Resource"] == f"{arn}:pipeline/dust-plumes"
    tagged = {
        resource
        for statement in allows(caller, "sagemaker:AddTags")
        for resource in resources(statement)
    }
    assert f"{arn}:model-package-group/dust-plumes" in tagged
    assert {resource.rpartition("/")[2] for resource in tagged} == {
        "dust-plumes",
        "dust-plumes-*",
        "pipelines-*",
        "*",
    }
    assert all(resource.startswith(arn) for resource in tagged)
    for action in ("logs:FilterLogEvents", "logs:GetLogEvents", "logs:DescribeLogStreams"):
        (reads,) = allows(caller, action)
        assert (
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:*"
            in resources(reads)
        )
        assert (
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/dust-plumes-*"
            in resources(reads)
        )
    (listing,) = [
        statement
        for statement in allows(caller, "s3:ListBucket")
        if statement["Resource"] == "arn:aws:s3:::dust-bucket"
    ]
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": ["runs", "runs/*"]}}
    granted = {action for statement in caller["Statement"] for action in statement["Action"]}
    assert not any(action.startswith("kms:") for action in granted)  # no key, no KMS


def test_a_run_name_with_capitals_is_named_both_ways(tmp_path: Path) -> None:
    """SageMaker writes some names in ARNs in lower case, and IAM compares them exactly."""
    _, caller = policies(run_yaml(tmp_path, name="DustPlumes"))
    (start,) = allows(caller, "sagemaker:StartPipelineExecution")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline"
    assert resources(start) == [f"{arn}/dustplumes", f"{arn}/DustPlumes"]


@pytest.mark.parametrize(
    ("key", "resource"),
    [
        (KEY_ARN, KEY_ARN),
        (KEY_ID, KEY_ARN),
        ("alias/earthseg", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"),
        (
            f"arn:aws:kms:us-east-2:{ACCOUNT}:alias/earthseg",
            f"arn:aws:kms:us-east-2:{ACCOUNT}:key/*",
        ),
    ],
    ids=["key-arn", "key-id", "alias", "alias-arn"],
)
def test_the_key_is_granted_by_its_arn_or_the_alias_it_carries(
    tmp_path: Path, key: str, resource: str
) -> None:
    role_policy, caller = policies(run_yaml(tmp_path, kms_key=key))
    aliased = {"kms:ResourceAliases": "alias/earthseg"} if "alias" in key else None
    for policy, actions in (
        (role_policy, "kms:Decrypt kms:Encrypt kms:GenerateDataKey*"),
        (caller, "kms:Decrypt kms:GenerateDataKey"),
    ):
        for action in actions.split():
            (statement,) = allows(policy, action)
            assert statement["Resource"] == resource
            assert statement.get("Condition", {}).get("ForAnyValue:StringEquals") == aliased
        (grant,) = allows(policy, "kms:CreateGrant")
        assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


# --- parliament -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "tracked"),
    [
        ({}, False),
        (LOCKED_DOWN, True),
        ({**LOCKED_DOWN, "kms_key": KEY_ID, "network_isolation": True}, False),
        ({"tags": {"project": "dust"}}, True),
    ],
    ids=["plain", "locked-down-tracked", "key-id-isolated", "tags-tracked"],
)
def test_parliament_finds_nothing_in_either_policy(
    tmp_path: Path, settings: dict[str, Any], tracked: bool
) -> None:
    config = run_yaml(tmp_path, **settings)
    if tracked:  # a SageMaker managed MLflow: sagemaker-mlflow's statements too
        raw = yaml.safe_load(config.read_text())
        raw["tracking"] = {"uri": TRACKING_ARN}
        config.write_text(yaml.safe_dump(raw))
    for policy in policies(config):
        assert bool(allows(policy, "sagemaker-mlflow:LogBatch")) == tracked
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert [(finding.issue, finding.detail) for finding in findings] == []


def test_parliament_does_not_know_kms_resource_aliases_but_iam_does(tmp_path: Path) -> None:
    """A key named by its alias is granted as AWS documents it ("Use aliases to control
    access to KMS keys": Resource key/*, Condition kms:ResourceAliases): an alias ARN as
    the Resource would authorize nothing. parliament 1.6.4 lists kms:ResourceAliases among
    the key resource's condition keys but checks conditions against the actions' own
    keys only, so it reports UNKNOWN_CONDITION_FOR_ACTION for exactly those statements;
    nothing else is found."""
    for policy in policies(run_yaml(tmp_path, **{**LOCKED_DOWN, "kms_key": "alias/earthseg"})):
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert findings
        for finding in findings:
            assert finding.issue == "UNKNOWN_CONDITION_FOR_ACTION"
            assert finding.detail.startswith(
                "Unknown condition kms:ResourceAliases for action kms:"
            )


# --- the proof: the caller's policy covers what the launcher called -----------------------


def test_the_request_mapping_names_the_iam_action_of_each_kind_of_request() -> None:
    def entry(method: str, url: str, service: str, **headers: str) -> dict[str, Any]:
        authorization = (
            f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        )
        return {
            "method": method,
            "url": f"http://127.0.0.1:5000{url}",
            "headers": {"Authorization": authorization, **headers},
            "body": "",
            "body_encoded": False,
        }

    assert request_actions(
        entry("POST", "/", "sagemaker", **{"X-Amz-Target": "SageMaker.CreateTrainingJob"})
    ) == ("sagemaker:CreateTrainingJob",)
    assert request_actions(
        entry("POST", "/", "logs", **{"X-Amz-Target": "Logs_20140328.FilterLogEvents"})
    ) == ("logs:FilterLogEvents",)
    assert request_actions(entry("POST", "/endpoints/e-1/invocations", "sagemaker")) == (
        "sagemaker:InvokeEndpoint",
    )
    assert request_actions(entry("HEAD", "/bucket", "s3")) == ("s3:ListBucket",)
    assert request_actions(entry("GET", "/bucket?list-type=2&prefix=a%2F", "s3")) == (
        "s3:ListBucket",
    )
    assert request_actions(entry("HEAD", "/bucket/a/b.tif", "s3")) == ("s3:GetObject",)
    assert request_actions(entry("POST", "/bucket/a/b.tif?uploads", "s3")) == ("s3:PutObject",)
    assert request_actions(entry("PUT", "/bucket/a/b.tif?partNumber=1&uploadId=x", "s3")) == (
        "s3:PutObject",
    )
    assert request_actions(
        entry("PUT", "/bucket/a/b.tif", "s3", **{"x-amz-copy-source": "o/k"})
    ) == ("s3:GetObject", "s3:PutObject")
    assert request_actions(entry("DELETE", "/bucket/a/b.tif?uploadId=x", "s3")) == (
        "s3:AbortMultipartUpload",
    )
    assert request_actions(entry("POST", "/bucket?delete", "s3")) == ("s3:DeleteObject",)
    query = {
        **entry("POST", "/", "sts", **{"Content-Type": "application/x-www-form-urlencoded"}),
        "body": "Action=GetCallerIdentity&Version=2011-06-15",
    }
    assert request_actions(query) == ("sts:GetCallerIdentity",)


def full_run(folder: Path) -> Path:
    """A run with every setting that adds to a policy: VPC, key, tags, managed MLflow."""
    config = run_yaml(folder, **LOCKED_DOWN)
    raw = yaml.safe_load(config.read_text())
    raw["tracking"] = {"uri": TRACKING_ARN}
    config.write_text(yaml.safe_dump(raw))
    return config


def uncovered(actions: dict[str, str], policy: dict[str, Any]) -> str:
    """The recorded actions (action: an example request) `policy` does not allow, one a
    line, or "" when it allows them all."""
    return "\n".join(
        f"  {action}: e.g. {example}"
        for action, example in sorted(actions.items())
        if not allows(policy, action)
    )


def test_an_action_missing_from_the_table_is_named_with_its_request(tmp_path: Path) -> None:
    _, caller = policies(full_run(tmp_path))
    recorded = {
        "sagemaker:CreateTrainingJob": "POST / X-Amz-Target: SageMaker.CreateTrainingJob (a)",
        "sagemaker-mlflow:LogBatch": "POST /api/2.0/mlflow/runs/log-batch (b)",
        "sagemaker:DeleteModelPackageGroup": "POST / X-Amz-Target: "
        "SageMaker.DeleteModelPackageGroup (tests/test_x.py::test_y)",
    }
    assert uncovered(recorded, caller) == (
        "  sagemaker:DeleteModelPackageGroup: e.g. POST / X-Amz-Target: "
        "SageMaker.DeleteModelPackageGroup (tests/test_x.py::test_y)"
    )


def test_the_table_names_operations_as_botocore_does() -> None:
    """Each line is an operation of the service's API as botocore names it (the names the
    recorded requests carry), but the calls other software makes on the caller's behalf:
    the Docker engine's pushes (the registry API), SageMaker's passing of the role, the
    MLflow client's REST calls."""
    session = botocore.session.get_session()
    others = {
        ("ecr", "registry push"),
        ("iam", "PassRole"),
        ("sagemaker-mlflow", "MLflow REST API"),
    }
    for call in LAUNCHER_CALLS:
        if (call.service, call.operation) not in others:
            model = session.get_service_model(call.service)
            assert call.operation in model.operation_names, call


def test_every_call_the_launcher_made_is_allowed_to_the_caller(
    aws_env: Emulator, tmp_path: Path
) -> None:
    """Runs last (tests/conftest.py): the IAM action of every request the launcher sent
    in this session's tests is in the caller's policy of a run with every setting."""
    if not aws_env.actions:  # run alone: launch a pipeline to have something to check
        launch_pipeline(aws_env, tmp_path)
        aws_env.collect_actions("test_every_call_the_launcher_made_is_allowed_to_the_caller")
    assert aws_env.actions, "no request of the launcher was recorded: nothing was checked"
    _, caller = policies(full_run(tmp_path))
    missing = uncovered(aws_env.actions, caller)
    assert not missing, (
        "the launcher called these, and the caller's policy does not allow them: add their "
        f"lines to earthseg.aws.permissions.LAUNCHER_CALLS\n{missing}"
    )
    tabled = {action for call in LAUNCHER_CALLS for action in call.actions}
    assert {
        "logs:FilterLogEvents",
        "logs:GetLogEvents",
        "logs:DescribeLogStreams",
        "sagemaker:AddTags",
    } <= tabled


def launch_pipeline(emulator: Emulator, folder: Path) -> None:
    """`earthseg pipeline --no-wait` of a small run against the emulator, its bucket and
    images made as `make push` would leave them."""
    bucket, region = "earthseg-runs", "us-east-1"
    emulator.client("s3").create_bucket(Bucket=bucket)
    push_images(emulator)
    config = small_run(
        folder / "launched",
        train={"image": PUSHED_TRAIN_IMAGE},
        deploy={"image": PUSHED_SERVE_IMAGE},
        aws={"s3": f"s3://{bucket}/pipelines", "role": ROLE, "region": region},
    )
    assert cli(["pipeline", "--config", str(config), "--no-wait"]) == 0
