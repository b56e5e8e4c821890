"""`make push` end to end: a real registry with authentication, an ECR emulator, the real images.

The registry is Debian's docker-registry with htpasswd auth on loopback. The ECR API
(DescribeRepositories, CreateRepository, GetAuthorizationToken) is moto in server mode,
and the registry's password is the token moto hands out, so `REGISTRY=<that registry>
REGISTRY_AUTH=ecr` runs the whole ECR flow (as for ECR behind a VPC endpoint name): the
push only succeeds if the repositories were made through the API and the login came from
the token. The images are pushed once per module; the error cases fail before any layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import docker
import pytest
import requests
from moto.server import ThreadedMotoServer

from earthseg import __version__
from earthseg.errors import InputError
from earthseg.local.engine import free_port
from earthseg.shipping.push import local_image
from tests.docker.conftest import REPO
from tests.docker.registry import LocalRegistry, local_registry

pytestmark = pytest.mark.docker

MOTO_ACCOUNT = "123456789012"  # moto's default account
ECR_PASSWORD = f"{MOTO_ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken hands out
REGION = "us-east-1"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
}
ROLES = ("train", "serve")
PUSH_TIMEOUT_S = 15 * 60
ERROR_TIMEOUT_S = 120
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


class PushRun(NamedTuple):
    result: subprocess.CompletedProcess[str]
    images_json: Path
    seconds: float
    image_ids: dict[str, str]  # what earthseg-<role>:<version>-cpu was when the push began


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on a free loopback port: the AWS API the push talks to.

    Its backends live in this process, shared with any other moto here: start empty.
    """
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def ecr_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """The registry standing in for ECR: user AWS, the emulator's token as password."""
    with local_registry(tmp_path_factory.mktemp("registry"), "AWS", ECR_PASSWORD) as registry:
        yield registry


@pytest.fixture(scope="module")
def pushed(
    train_image: str,
    serve_image: str,
    docker_client: docker.DockerClient,
    moto_endpoint: str,
    ecr_registry: LocalRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> PushRun:
    """`make push FLAVOR=cpu` of the real cpu images, once for the module."""
    folder = tmp_path_factory.mktemp("push")
    env = ecr_env(folder, moto_endpoint, ecr_registry)
    ids = {
        role: docker_client.images.get(f"earthseg-{role}:{__version__}-cpu").id for role in ROLES
    }
    start = time.monotonic()
    result = make_push(env, folder / "images.json", PUSH_TIMEOUT_S)
    return PushRun(result, folder / "images.json", time.monotonic() - start, ids)


def test_push_creates_the_repositories_logs_in_with_the_token_and_pushes_both_tags(
    pushed: PushRun,
    ecr_registry: LocalRegistry,
    moto_endpoint: str,
    docker_client: docker.DockerClient,
) -> None:
    result = pushed.result
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    print(f"make push of both cpu images: {pushed.seconds:.1f}s", file=sys.stderr)
    host = ecr_registry.host

    ecr = aws_client("ecr", moto_endpoint)
    names = [f"earthseg-{role}" for role in ROLES]
    repositories = ecr.describe_repositories(repositoryNames=names)["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == sorted(names)
    assert all(r["imageScanningConfiguration"]["scanOnPush"] for r in repositories)
    for name in names:
        assert f"created ECR repository {name} (scan on push)" in result.stdout

    # The registry lets nobody in without the password: the push really used the token.
    assert ecr_registry.get("_catalog").json()["repositories"] == sorted(names)
    assert LocalRegistry(host, "AWS", "wrong").get("_catalog").status_code == 401

    document = json.loads(pushed.images_json.read_text())
    assert document["flavor"] == "cpu" and document["version"] == __version__
    for role in ROLES:
        # By ID: a concurrent `make build` may have moved the tag since.
        local = docker_client.images.get(pushed.image_ids[role])
        revision = local.labels["org.opencontainers.image.revision"]
        tags = [f"{__version__}-cpu", f"{revision}-cpu"]
        repository = f"{host}/earthseg-{role}"
        entry = document["images"][role]
        assert entry["uri"] == f"{repository}:{__version__}-cpu"
        assert entry["uris"] == [f"{repository}:{tag}" for tag in tags]
        assert entry["image_id"] == local.id
        assert entry["pinned"] == f"{repository}@{entry['digest']}"
        assert f"{role} image: {entry['uri']}\n" in result.stdout

        listed = ecr_registry.get(f"earthseg-{role}/tags/list").json()["tags"]
        assert sorted(listed) == sorted(tags)
        for tag in tags:
            manifest = ecr_registry.get(f"earthseg-{role}/manifests/{tag}", accept=MANIFEST_V2)
            assert manifest.headers["Docker-Content-Digest"] == entry["digest"]
            # The manifest's config is the local image itself: the same image ID.
            assert manifest.json()["config"]["digest"] == local.id
        # The registry-named tags push needed are gone again: local names stay earthseg-*.
        assert docker_client.images.list(name=repository) == []


def test_a_second_push_finds_the_repositories_and_the_layers_in_place(
    pushed: PushRun, moto_endpoint: str, ecr_registry: LocalRegistry, tmp_path: Path
) -> None:
    assert pushed.result.returncode == 0
    start = time.monotonic()
    result = make_push(ecr_env(tmp_path, moto_endpoint, ecr_registry), tmp_path / "again.json")
    seconds = time.monotonic() - start
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "created ECR repository" not in result.stdout
    assert "layer already exists" in result.stdout and ": pushed" not in result.stdout
    first = json.loads(pushed.images_json.read_text())["images"]
    again = json.loads((tmp_path / "again.json").read_text())["images"]
    assert {r: again[r]["digest"] for r in ROLES} == {r: first[r]["digest"] for r in ROLES}
    print(f"second make push: {seconds:.1f}s", file=sys.stderr)


def test_any_other_registry_takes_a_namespace_and_registry_credentials_without_aws(
    pushed: PushRun, ecr_registry: LocalRegistry, moto_endpoint: str, tmp_path: Path
) -> None:
    assert pushed.result.returncode == 0
    env = {
        **base_env(tmp_path),  # no AWS configuration at all
        "REGISTRY": f"{ecr_registry.host}/team",
        "REGISTRY_USERNAME": ecr_registry.username,
        "REGISTRY_PASSWORD": ecr_registry.password,
    }
    result = make_push(env, tmp_path / "images.json")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert (
        f"train image: {ecr_registry.host}/team/earthseg-train:{__version__}-cpu" in result.stdout
    )
    catalog = ecr_registry.get("_catalog").json()["repositories"]
    assert {"team/earthseg-train", "team/earthseg-serve"} <= set(catalog)
    ecr = aws_client("ecr", moto_endpoint)
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert not [name for name in names if name.startswith("team/")]  # ECR untouched


def test_a_registry_that_refuses_the_token_is_named_with_the_fix(
    pushed: PushRun,
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    with local_registry(tmp_path / "registry", "AWS", "not-the-ecr-token") as other:
        result = make_push(ecr_env(tmp_path, moto_endpoint, other), tmp_path / "images.json")
    assert_user_error(result, f"push: error: registry {other.host}: refused the login as AWS")
    assert f"Fix: the token is for {MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com" in result.stderr
    assert not (tmp_path / "images.json").exists()


def test_a_push_the_registry_denies_names_the_image_and_the_fix(
    pushed: PushRun, ecr_registry: LocalRegistry, tmp_path: Path
) -> None:
    """No credentials for a registry that wants them: the engine's push itself is refused."""
    env = {**base_env(tmp_path), "REGISTRY": ecr_registry.host}
    result = make_push(env, tmp_path / "images.json")
    assert_user_error(
        result,
        f"push: error: {ecr_registry.host}/earthseg-train:{__version__}-cpu: the registry "
        f"{ecr_registry.host} refused the push: no basic auth credentials",
    )
    assert f"or run `docker login {ecr_registry.host}`" in result.stderr
    assert not (tmp_path / "images.json").exists()


@pytest.mark.parametrize(
    ("aws", "message"),
    [
        ({}, "push: error: AWS region: is not configured. Fix: set AWS_REGION"),
        ({"AWS_REGION": REGION}, "push: error: AWS credentials: none were found. Fix: configure"),
    ],
    ids=["no-region", "no-credentials"],
)
def test_no_aws_configuration_says_what_to_configure(
    train_image: str, serve_image: str, aws: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = make_push({**base_env(tmp_path), **aws}, tmp_path / "images.json")
    assert_user_error(result, message)


def test_no_docker_engine_says_to_start_one(tmp_path: Path) -> None:
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    env = {**base_env(tmp_path), **FAKE_AWS, "DOCKER_HOST": nowhere}
    result = make_push(env, tmp_path / "images.json")
    assert result.returncode != 0  # `make push` checks the engine first (scripts/ensure-docker.sh)
    assert f"DOCKER_HOST={nowhere} does not answer" in result.stderr

    entry = [str(REPO / ".venv" / "bin" / "earthseg"), "push", "--flavor", "cpu"]
    direct = subprocess.run(
        entry, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=ERROR_TIMEOUT_S
    )
    assert_user_error(direct, f"push: error: Docker engine: none answers at {nowhere}")
    assert "Fix: start one with `make docker`" in direct.stderr


def test_a_missing_local_image_says_to_build_it(docker_client: docker.DockerClient) -> None:
    with pytest.raises(InputError) as caught:
        local_image(docker_client, "train", "gpu", "0.0.0-never-built")
    assert caught.value.source == "earthseg-train:0.0.0-never-built-gpu"
    assert "`make build push FLAVOR=gpu`" in caught.value.fix


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: no AWS configuration, no Docker login (HOME is empty), and no
    instance metadata lookup, which on a CI runner in EC2 would find the runner's role."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return env


def ecr_env(home: Path, moto_endpoint: str, registry: LocalRegistry) -> dict[str, str]:
    """The ECR flow against the emulator, pushing to `registry` under its own host name."""
    return {
        **base_env(home),
        **FAKE_AWS,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "REGISTRY": registry.host,
        "REGISTRY_AUTH": "ecr",
    }


def make_push(
    env: dict[str, str], images_json: Path, timeout: float = ERROR_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", "push", "FLAVOR=cpu", f"IMAGES_JSON={images_json}"]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_user_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit status 2 and one readable line: no traceback."""
    assert result.returncode == 2, f"{result.stdout}\n{result.stderr}"
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
