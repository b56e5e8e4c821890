"""`earthseg push` (`make push`): send the images `make build` made to a registry, and say
where they went.

Pushes `earthseg-{train,serve}:<version>-<flavor>` as they are (never rebuilding: a
missing image is an error that says to build it) under the tags `<version>-<flavor>` and
`<commit>-<flavor>`, through the Docker engine's API (the docker SDK), so no Docker or
AWS command-line tool is needed. ECR targets get their repositories created and a login
from an ECR authorization token; other registries take REGISTRY_USERNAME and
REGISTRY_PASSWORD, or whatever login Docker already holds. Credentials go to the engine
for this push only and are not written to ~/.docker/config.json.

The URIs are printed (`train image: <uri>`) and written as JSON (`build/images-<flavor>.json`
by default) with the digests, for the launcher.

    earthseg push [--flavor gpu|cpu] [--json PATH]
    env: REGISTRY, REGISTRY_AUTH, REGISTRY_USERNAME, REGISTRY_PASSWORD, and AWS's usual ones
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, ImageNotFound
from docker.models.images import Image

from earthseg import __version__
from earthseg.atomic import atomic_file
from earthseg.aws.session import open_session
from earthseg.errors import InputError
from earthseg.local.engine import docker_client
from earthseg.shipping.ecr import PERMISSIONS_FIX, Credentials, authorization, ensure_repository
from earthseg.shipping.registry import (
    IMAGES_JSON,
    LOCAL_REPOSITORY,
    ROLES,
    Registry,
    parse_registry,
    remote_tags,
)

ENGINE_TIMEOUT_S = 600  # per read: a slow uplink may stay quiet a while between progress events
REVISION_LABEL = "org.opencontainers.image.revision"
LAYER_DONE = ("Pushed", "Layer already exists")
PROGRESS_EVERY_S = 15.0
DENIED_WORDS = ("denied", "unauthorized", "authentication required", "no basic auth", "forbidden")

Say = Callable[[str], None]


@dataclass(frozen=True)
class PushedImage:
    """One role's image in the registry: the tags it was pushed under, and its digest."""

    role: str
    repository: str  # host/name
    tags: list[str]
    digest: str  # of the manifest, as the registry stores it
    image_id: str  # the local image pushed (also the manifest's config digest)
    revision: str | None

    @property
    def uris(self) -> list[str]:
        return [f"{self.repository}:{tag}" for tag in self.tags]

    @property
    def pinned(self) -> str:
        """The URI by digest: names exactly this image even if a tag moves."""
        return f"{self.repository}@{self.digest}"


def push(
    flavor: str,
    json_path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    say: Say = print,
) -> list[PushedImage]:
    """`earthseg push`: both images of `flavor` to the registry `environ` names (REGISTRY,
    REGISTRY_AUTH, REGISTRY_USERNAME, REGISTRY_PASSWORD; unset: the account's ECR), and
    their URIs and digests to `json_path` (default build/images-<flavor>.json)."""
    registry = parse_registry(environ.get("REGISTRY"), environ.get("REGISTRY_AUTH"))
    credentials = credentials_from_env(environ)
    if registry.ecr and credentials is not None:
        say("note: REGISTRY_USERNAME/REGISTRY_PASSWORD are not used for ECR (a token is)")
        credentials = None
    client = docker_client(ENGINE_TIMEOUT_S)
    pushed = push_images(client, registry, flavor, __version__, credentials, say)
    path = json_path or Path(IMAGES_JSON.format(flavor=flavor))
    write_json(path, flavor, pushed)
    say(f"wrote {path}")
    return pushed


def local_image(client: docker.DockerClient, role: str, flavor: str, version: str) -> Image:
    """The image `make build` tagged `earthseg-<role>:<version>-<flavor>`."""
    tag = f"{LOCAL_REPOSITORY.format(role=role)}:{version}-{flavor}"
    try:
        return client.images.get(tag)
    except ImageNotFound:
        raise InputError(
            tag,
            "no such image here: push sends what `make build` made and does not build",
            f"build it first: `make build push FLAVOR={flavor}` (or `make build FLAVOR={flavor}`)",
        ) from None


def login(client: docker.DockerClient, host: str, credentials: Credentials, fix: str) -> None:
    """Log the engine in to `host`, so a wrong password fails before any layer moves."""
    try:
        client.login(credentials.username, credentials.password, registry=host, reauth=True)
    except APIError as error:
        message = str(error.explanation or error)
        problem = f"refused the login as {credentials.username}: {message}"
        if not _denied(message):
            fix = "check REGISTRY and that the Docker engine reaches that registry"
        raise InputError(f"registry {host}", problem, fix) from None


def push_images(
    client: docker.DockerClient,
    registry: Registry,
    flavor: str,
    version: str = __version__,
    credentials: Credentials | None = None,
    say: Say = print,
) -> list[PushedImage]:
    """Push both roles' `<version>-<flavor>` images to `registry`; what went where.

    Local images are checked first (no network), then the registry login, then the pushes.
    """
    images = {role: local_image(client, role, flavor, version) for role in ROLES}
    if registry.ecr:
        host, credentials, login_fix = _prepare_ecr(registry, say)
        denied_fix = PERMISSIONS_FIX
    else:
        assert registry.host is not None  # only ECR targets learn their host from AWS
        host = registry.host
        denied_fix = login_fix = (
            "check REGISTRY_USERNAME and REGISTRY_PASSWORD, and that this user may push there"
            if credentials
            else f"set REGISTRY_USERNAME and REGISTRY_PASSWORD, or run `docker login {host}`"
        )
    if credentials is not None:
        say(f"logging in to {host} as {credentials.username}")
        login(client, host, credentials, login_fix)
    auth_config = credentials._asdict() if credentials is not None else None
    pushed = []
    for role, image in images.items():
        repository = f"{host}/{registry.repository(role)}"
        revision = image.labels.get(REVISION_LABEL)
        tags, digest = remote_tags(version, revision, flavor), ""
        for tag in tags:
            with _remote_tag(image, repository, tag):
                say(f"pushing {repository}:{tag} ({image.short_id})")
                digest = _push(client, repository, tag, auth_config, denied_fix, say)
        if revision and revision.endswith("-dirty"):
            say(f"note: the {role} image was built from uncommitted changes ({revision})")
        pushed.append(PushedImage(role, repository, tags, digest, image.id, revision))
    return pushed


def write_json(path: Path, flavor: str, pushed: list[PushedImage]) -> None:
    """The pushed images for the launcher: `images[<role>]["uri"]` is the one to run."""
    images = {
        image.role: {
            "uri": image.uris[0],
            "uris": image.uris,
            "pinned": image.pinned,
            "digest": image.digest,
            "image_id": image.image_id,
            "revision": image.revision,
        }
        for image in pushed
    }
    document = {"flavor": flavor, "version": __version__, "images": images}
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as error:
        raise InputError(
            path, f"cannot be written ({error.strerror})", "pass --json a writable path"
        ) from None


def _prepare_ecr(registry: Registry, say: Say) -> tuple[str, Credentials, str]:
    """Authorization token and repositories for an ECR target: its host name, its login,
    and what to do if the registry refuses that login."""
    session = open_session(region=registry.ecr_region)
    ecr = session.client("ecr")
    auth = authorization(ecr, registry.ecr_account)
    host = registry.host or auth.host
    via = f", reached as {host}" if host != auth.host else ""
    say(f"ECR registry {auth.host} in {session.region_name}{via}")
    for role in ROLES:
        name = registry.repository(role)
        if ensure_repository(ecr, name, registry.ecr_account):
            say(f"created ECR repository {name} (scan on push)")
    login_fix = (
        f"the token is for {auth.host}: check that REGISTRY reaches that registry, "
        "or unset REGISTRY_AUTH for a registry that is not ECR"
    )
    return host, auth.credentials, login_fix


@contextmanager
def _remote_tag(image: Image, repository: str, tag: str) -> Iterator[None]:
    """The local tag `docker push` needs, removed afterwards: local names stay earthseg-*."""
    image.tag(repository, tag)
    try:
        yield
    finally:
        with suppress(APIError):
            image.client.images.remove(f"{repository}:{tag}", noprune=True)


def _push(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    auth_config: dict[str, str] | None,
    denied_fix: str,
    say: Say,
) -> str:
    """Push one tag; the digest of the manifest the registry took."""
    reference = f"{repository}:{tag}"
    progress = _LayerProgress(say)
    digest = ""
    try:
        events = client.api.push(
            repository, tag=tag, stream=True, decode=True, auth_config=auth_config
        )
        for event in events:
            if "errorDetail" in event or "error" in event:
                message = event.get("errorDetail", {}).get("message") or event.get("error")
                raise _push_error(reference, str(message), denied_fix)
            progress.update(event)
            digest = event.get("aux", {}).get("Digest", digest)
    except (APIError, requests.RequestException) as error:
        raise _push_error(reference, str(error), denied_fix) from None
    if not digest:
        raise InputError(
            reference,
            "the Docker engine ended the push without the registry's digest",
            "run `make push` again; if it persists, try `docker push` by hand to see why",
        )
    return str(digest)


class _LayerProgress:
    """The engine's push events as a few lines: each layer once when done, and the layers
    in flight every PROGRESS_EVERY_S, so a long upload is not silent for minutes."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.sent: dict[str, tuple[int, int]] = {}  # layer: (bytes sent, layer size)
        self.last = time.monotonic()

    def update(self, event: dict[str, Any]) -> None:
        status, layer = event.get("status", ""), event.get("id", "")
        detail = event.get("progressDetail") or {}
        if status == "Pushing" and detail.get("total"):
            self.sent[layer] = (int(detail.get("current", 0)), int(detail["total"]))
            if time.monotonic() - self.last >= PROGRESS_EVERY_S:
                self.last = time.monotonic()
                self.say(
                    "  sending "
                    + ", ".join(
                        f"{name} {_mb(sent)} of {_mb(total)}"
                        for name, (sent, total) in self.sent.items()
                    )
                )
        elif layer and (status in LAYER_DONE or status.startswith("Mounted from")):
            size = f", {_mb(self.sent.pop(layer)[1])}" if layer in self.sent else ""
            self.say(f"  layer {layer}: {status.lower()}{size}")


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def _push_error(reference: str, message: str, denied_fix: str) -> InputError:
    """A failed push as the user's problem: permissions when the registry said so."""
    registry = reference.split("/", 1)[0]
    if _denied(message):
        return InputError(
            reference, f"the registry {registry} refused the push: {message}", denied_fix
        )
    return InputError(
        reference,
        f"the push to {registry} failed: {message}",
        "check that the registry is up and reachable from the Docker engine, then run "
        "`make push` again",
    )


def _denied(message: str) -> bool:
    """Whether a registry's or engine's message says the credentials are wrong or lacking."""
    return any(word in message.lower() for word in DENIED_WORDS)


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    """REGISTRY_USERNAME and REGISTRY_PASSWORD, both or neither."""
    username = environ.get("REGISTRY_USERNAME", "")
    password = environ.get("REGISTRY_PASSWORD", "")
    if bool(username) != bool(password):
        missing = "REGISTRY_PASSWORD" if username else "REGISTRY_USERNAME"
        raise InputError(missing, "is not set while its partner is", "set both, or neither")
    return Credentials(username, password) if username else None
