"""Where `make push` sends the images, and the names they get there.

`REGISTRY` picks the target: unset, the ECR registry of the configured AWS account and
region; an ECR host name (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]`, the FIPS and
dual-stack forms too), that ECR registry; anything else, a plain registry. A path after
the host (`ghcr.io/team`) is a namespace the repositories live under. `REGISTRY_AUTH=ecr`
treats any host as ECR (repositories created through the ECR API, login with an ECR
authorization token): ECR reached through a VPC endpoint or proxy name, and the tests,
which point it at a local registry and the ECR API at an emulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from earthseg.errors import InputError

ROLES = ("train", "serve")
FLAVORS = ("cpu", "gpu")
AUTH_ECR = "ecr"
LOCAL_REPOSITORY = "earthseg-{role}"  # what scripts/build-image.sh tags; also the remote name
UNKNOWN_REVISION = "unknown"  # build-image.sh's revision outside a git checkout
IMAGES_JSON = "build/images-{flavor}.json"  # what was pushed, for the launcher

ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr[.-]ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
    r"\.(?:amazonaws\.com(?:\.cn)?|on\.aws)"
)
HOST = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?|\[[0-9A-Fa-f:]+\](?::\d+)?"
)
# The OCI distribution spec's path components: lowercase, separated by . _ __ or dashes.
NAMESPACE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)

REGISTRY_FIX = (
    "set REGISTRY to a registry host with an optional namespace (e.g. "
    "123456789012.dkr.ecr.us-east-1.amazonaws.com, ghcr.io/team, 127.0.0.1:5000), "
    "or leave it unset for the ECR registry of the configured AWS account"
)


@dataclass(frozen=True)
class Registry:
    """A push target. `host` is None for the configured account's ECR registry, whose
    host name comes with its authorization token; `ecr_account` and `ecr_region` are the
    registry's own when its host name says them (else the configured ones apply)."""

    host: str | None
    namespace: str = ""
    ecr: bool = False
    ecr_account: str | None = None
    ecr_region: str | None = None

    def repository(self, role: str) -> str:
        """The repository name of a role's image inside the registry."""
        name = LOCAL_REPOSITORY.format(role=role)
        return f"{self.namespace}/{name}" if self.namespace else name

    def describe(self) -> str:
        """How the user would name this target, for messages."""
        host = self.host or "the ECR registry of the configured AWS account"
        return f"{host}/{self.namespace}" if self.namespace else host


def parse_registry(setting: str | None, auth: str | None = None) -> Registry:
    """The target that REGISTRY and REGISTRY_AUTH name (see the module docstring)."""
    auth = (auth or "").strip().lower()
    if auth not in ("", AUTH_ECR):
        raise InputError(
            "REGISTRY_AUTH",
            f"unknown value {auth!r}",
            "leave it unset (ECR for ECR host names, else REGISTRY_USERNAME/REGISTRY_PASSWORD "
            "or Docker's own login), or set REGISTRY_AUTH=ecr for ECR behind another host name",
        )
    setting = (setting or "").strip()
    if not setting:
        return Registry(host=None, ecr=True)
    host, _, namespace = _strip_scheme(setting).rstrip("/").partition("/")
    if not HOST.fullmatch(host):
        raise InputError("REGISTRY", f"{setting!r} does not start with a host name", REGISTRY_FIX)
    if namespace and not NAMESPACE.fullmatch(namespace):
        raise InputError(
            "REGISTRY",
            f"namespace {namespace!r} is not a valid repository path "
            "(lowercase letters, digits, and . _ - between them, / between parts)",
            REGISTRY_FIX,
        )
    parts = ecr_host_parts(host)
    if parts is not None:
        account, region = parts
        return Registry(host, namespace, ecr=True, ecr_account=account, ecr_region=region)
    return Registry(host, namespace, ecr=auth == AUTH_ECR)


def ecr_host_parts(host: str) -> tuple[str, str] | None:
    """(account, region) of an ECR registry host name, None for any other host."""
    match = ECR_HOST.fullmatch(host.lower())
    return (match["account"], match["region"]) if match else None


def remote_tags(version: str, revision: str | None, flavor: str) -> list[str]:
    """`<version>-<flavor>`, and `<commit>-<flavor>` when the image knows its commit.

    The commit is the image's own `org.opencontainers.image.revision` label, set by
    scripts/build-image.sh (`-dirty` when built from uncommitted changes), so the tag
    says what the pushed image was built from, not what the checkout holds now.
    """
    tags = [f"{version}-{flavor}"]
    if revision and revision != UNKNOWN_REVISION:
        tags.append(f"{revision}-{flavor}")
    return tags


def _strip_scheme(setting: str) -> str:
    """Registries are named without a scheme; accept one pasted from a URL anyway."""
    for scheme in ("https://", "http://"):
        if setting.lower().startswith(scheme):
            return setting[len(scheme) :]
    return setting
