"""The NVIDIA driver of each SageMaker GPU host, as a table, and the host earthseg asks for.

A container brings its CUDA runtime; the host brings the driver, which SageMaker fixes per
instance family and service, and which a production variant's `InferenceAmiVersion` (real-
time and asynchronous endpoints) or a transform job's `TransformAmiVersion` can raise. An
image whose CUDA needs a newer driver than the host has fails to start
(CannotStartContainerError) with no log of its own, so the choice is made here, before any
request, and a host that cannot run the image is refused with the reason.

By default earthseg asks for the newest AMI AWS documents for the family and service: the
newest driver runs every older CUDA runtime (NVIDIA's backward compatibility), and pinning
an AMI keeps SageMaker's own default from changing under a deployed endpoint. AMIs seen
working on a family only outside AWS's documentation ([observed] below) are offered when
asked for by name, never chosen by default: a default SageMaker refused would fail every
deploy.

The table, as of TABLE_DATE, from these sources:
- [drivers] AWS, "Best practices to minimize interruptions during GPU driver upgrades",
  https://docs.aws.amazon.com/sagemaker/latest/dg/inference-gpu-drivers.html : the
  default driver per service and family. Real-time and asynchronous: 470 (CUDA 11.4) on
  p2, p3, p4d, p4de, g4dn, g5; 535 (CUDA 12.2) on p5, g6; 550 (CUDA 12.4) on p5e, p5en.
  Batch: 470 (CUDA 11.4) on p2, p3, p4d, p4de, g4dn, g5, and no other family listed.
- [api] botocore 1.44.5's SageMaker service model (the ProductionVariant and
  TransformResources API reference,
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariant.html):
  al2-ami-sagemaker-inference-gpu-2 and -2-1: driver 535, CUDA 12.2;
  al2-ami-sagemaker-inference-gpu-3-1: 550, CUDA 12.4;
  al2023-ami-sagemaker-inference-gpu-4-1: 580, CUDA 13.0;
  al2-ami-sagemaker-batch-gpu-470 / -535: drivers 470 / 535 (no CUDA version given: the
  highest each driver branch runs, 11.4 / 12.2, is NVIDIA's).
- [families-2] the same reference as of botocore 1.36.20 (2025-02-14) listed the families
  of al2-ami-sagemaker-inference-gpu-2: g4dn, g5, g6, p3, p4d, p4de, p5. Current
  references list no families per AMI; -2-1 is taken to have those of -2 (same driver).
- [observed] not in AWS's table, seen in public deployment code and examples (2025-2026):
  inference-gpu-3-1 on g4dn and g5; inference-gpu-4-1 on g4dn, g5, g6 (tested there), g6e,
  p4d, p4de, p5, p5e, p5en; batch-gpu-535 on g4dn, g5, g6, g6e. Families listed only
  there (g6e) are left out, as are AMIs on p3 beyond -2/-2-1 and batch-gpu-470.
Training: AWS publishes no NVIDIA driver for SageMaker training hosts (the drivers page
covers inference only), so every training host's driver is unknown (None) here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from earthseg.errors import InputError
from earthseg.gpu.cuda import IMAGES_CUDA, CudaStack, min_driver

Service = Literal["endpoint", "async", "transform", "training"]
TABLE_DATE = "2026-12-03"
SOURCE = "https://docs.aws.amazon.com/sagemaker/latest/dg/inference-gpu-drivers.html"
NVIDIA_FAMILY_LETTERS = ("g", "p")  # ml.g*, ml.p*: NVIDIA GPUs; inf*, trn*: AWS Neuron


@dataclass(frozen=True)
class HostDriver:
    """What a GPU host runs containers on: the AMI asked for and its NVIDIA driver."""

    ami: str | None  # None: the service's default image
    driver: int | None  # major branch, e.g. 535; None: not published
    cuda: str | None  # the highest CUDA the driver runs, e.g. "12.2"


@dataclass(frozen=True)
class HostFit:
    """Whether a host runs an image's CUDA: True, False, or None where the host's driver
    is not published; `reason` says which, with the numbers."""

    runs: bool | None
    reason: str


UNPUBLISHED = HostDriver(None, None, None)
DEFAULT_470 = HostDriver(None, 470, "11.4")
DEFAULT_535 = HostDriver(None, 535, "12.2")
DEFAULT_550 = HostDriver(None, 550, "12.4")

# InferenceAmiVersion (production variants: real-time and asynchronous endpoints) [api].
GPU_2 = HostDriver("al2-ami-sagemaker-inference-gpu-2", 535, "12.2")
GPU_2_1 = HostDriver("al2-ami-sagemaker-inference-gpu-2-1", 535, "12.2")
GPU_3_1 = HostDriver("al2-ami-sagemaker-inference-gpu-3-1", 550, "12.4")
GPU_4_1 = HostDriver("al2023-ami-sagemaker-inference-gpu-4-1", 580, "13.0")
# TransformAmiVersion (Batch Transform) [api].
BATCH_470 = HostDriver("al2-ami-sagemaker-batch-gpu-470", 470, "11.4")
BATCH_535 = HostDriver("al2-ami-sagemaker-batch-gpu-535", 535, "12.2")

FamilyHosts = dict[str, tuple[HostDriver, ...]]  # family: the default, then AMIs oldest first

ENDPOINT_HOSTS: FamilyHosts = {
    "p2": (DEFAULT_470,),
    "p3": (DEFAULT_470, GPU_2, GPU_2_1),
    "p4d": (DEFAULT_470, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "p4de": (DEFAULT_470, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "g4dn": (DEFAULT_470, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "g5": (DEFAULT_470, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "g6": (DEFAULT_535, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "p5": (DEFAULT_535, GPU_2, GPU_2_1, GPU_3_1, GPU_4_1),
    "p5e": (DEFAULT_550, GPU_3_1, GPU_4_1),
    "p5en": (DEFAULT_550, GPU_3_1, GPU_4_1),
}
# Batch Transform: AWS lists a default driver for the 470 families only; the others run
# transform jobs too (SageMaker decides which instance types it offers), on a driver AWS
# does not publish.
TRANSFORM_HOSTS: FamilyHosts = {
    "p2": (DEFAULT_470,),
    "p3": (DEFAULT_470, BATCH_470),
    "p4d": (DEFAULT_470, BATCH_470),
    "p4de": (DEFAULT_470, BATCH_470),
    "g4dn": (DEFAULT_470, BATCH_470, BATCH_535),
    "g5": (DEFAULT_470, BATCH_470, BATCH_535),
    "g6": (UNPUBLISHED, BATCH_535),
    "p5": (UNPUBLISHED,),
    "p5e": (UNPUBLISHED,),
    "p5en": (UNPUBLISHED,),
}
# (family, AMI) pairs known only from [observed]: offered when named, never the default.
OBSERVED = {
    *((family, GPU_3_1.ami) for family in ("g4dn", "g5", "p4d", "p4de", "g6", "p5")),
    *((family, GPU_4_1.ami) for family in ENDPOINT_HOSTS),
}
HOSTS: dict[Service, FamilyHosts] = {
    "endpoint": ENDPOINT_HOSTS,
    "async": ENDPOINT_HOSTS,  # the same production variants, the same AMIs [drivers]
    "transform": TRANSFORM_HOSTS,
}
AMI_FIELDS: dict[Service, str] = {
    "endpoint": "InferenceAmiVersion",
    "async": "InferenceAmiVersion",
    "transform": "TransformAmiVersion",
}


def gpu_family(instance_type: str) -> str | None:
    """The NVIDIA GPU family of a SageMaker instance type ("g5" for "ml.g5.xlarge"); None
    for CPU types, AWS's own accelerators (inf, trn) and local mode."""
    prefix, _, rest = instance_type.partition(".")
    family = rest.partition(".")[0]
    if prefix != "ml" or not family.startswith(NVIDIA_FAMILY_LETTERS):
        return None
    return family


def host_drivers(instance_type: str, service: Service) -> list[HostDriver]:
    """The hosts `service` offers on `instance_type`: its default first, then each AMI the
    family allows, oldest to newest; [] for CPU types. A GPU family the table does not
    know is an InputError."""
    family = gpu_family(instance_type)
    if family is None:
        return []
    if service == "training":
        return [UNPUBLISHED]  # AWS publishes no driver for any training host
    hosts = HOSTS[service]
    if family not in hosts:
        raise InputError(
            f"instance type {instance_type}",
            f"its GPU family {family} is not in earthseg's table of SageMaker host drivers "
            f"for {service} (dated {TABLE_DATE}; it knows {', '.join(hosts)})",
            f"choose an instance type of a family it knows, or add {family} to "
            f"earthseg.gpu.hosts from AWS's table ({SOURCE})",
        )
    return list(hosts[family])


def choose_host(
    instance_type: str,
    service: Service,
    ami: str | None = None,
    needs_driver: int | None = None,
    source: str = "ami_version",
) -> HostDriver | None:
    """The host to ask for: `ami` if given (refused, naming `source`, where the family or
    service does not offer it), else the newest AMI AWS documents for the family; None for a CPU
    instance type. A known driver below `needs_driver` is refused with the fix."""
    hosts = host_drivers(instance_type, service)
    if not hosts:
        if ami is not None:
            raise InputError(
                source,
                f"{ami} is a GPU host image, and {instance_type} has no NVIDIA GPU",
                "drop it, or choose a GPU instance type",
            )
        return None
    offered = [host for host in hosts if host.ami is not None]
    if ami is None:
        family = gpu_family(instance_type)
        documented = [host for host in offered if (family, host.ami) not in OBSERVED]
        host = documented[-1] if documented else hosts[0]
    else:
        matching = [host for host in offered if host.ami == ami]
        if not matching:
            listed = ", ".join(str(host.ami) for host in offered) or "none"
            raise InputError(
                source,
                f"{ami} is not offered for {service} on {instance_type} (this family takes: "
                f"{listed}; table of {TABLE_DATE})",
                "give one of those, or leave it out for the newest",
            )
        host = matching[0]
    if needs_driver is not None and host.driver is not None and host.driver < needs_driver:
        raise InputError(
            f"instance type {instance_type}",
            f"its {service} host ({host.ami or 'the default image'}) has NVIDIA driver "
            f"{host.driver} (CUDA up to {host.cuda}), and the image needs driver "
            f"{needs_driver} or newer",
            _newer_host_fix(service, needs_driver, source),
        )
    return host


def images_host(
    instance_type: str, service: Service, ami: str | None, source: str = "ami_version"
) -> HostDriver | None:
    """The host `choose_host` picks for earthseg's gpu images: one whose driver runs their
    CUDA (IMAGES_CUDA), or an InputError saying which families and AMIs have one."""
    return choose_host(instance_type, service, ami, min_driver(IMAGES_CUDA), source)


def ami_request(instance_type: str, service: Service, ami: str | None) -> dict[str, str]:
    """The request fields that ask `service` for the host earthseg's images run on:
    {"InferenceAmiVersion": ...} or {"TransformAmiVersion": ...}; {} on CPU types or the
    service's default."""
    host = images_host(instance_type, service, ami)
    if host is None or host.ami is None:
        return {}
    return {AMI_FIELDS[service]: host.ami}


def _newer_host_fix(service: Service, needs_driver: int, source: str) -> str:
    """Where a driver of at least `needs_driver` is to be had for `service`: the families
    whose default has it, and for the others the oldest AMI that does (never training:
    its drivers are unpublished, so never refused)."""
    as_they_are: list[str] = []
    with_ami: dict[str, list[str]] = {}
    for family, hosts in HOSTS[service].items():
        fitting = [
            host for host in hosts if host.driver is not None and host.driver >= needs_driver
        ]
        if fitting and fitting[0].ami is None:
            as_they_are.append(family)
        elif fitting:
            with_ami.setdefault(str(fitting[0].ami), []).append(family)
    if not as_they_are and not with_ami:
        return f"no {service} host in the table (of {TABLE_DATE}) has it: use an older CUDA image"
    ways = [f"{', '.join(as_they_are)} as they are"] if as_they_are else []
    ways += [f"{', '.join(families)} with {source} {ami}" for ami, families in with_ami.items()]
    return f"choose an instance family whose host has it: {'; '.join(ways)}"


def host_runs(stack: CudaStack, host: HostDriver) -> HostFit:
    """Whether `host`'s NVIDIA driver runs `stack`'s CUDA runtime (minor-version
    compatibility: a runtime's major release needs at least `min_driver`)."""
    if stack.runtime is None:
        return HostFit(True, "no CUDA runtime: runs on any host, on the CPU")
    needs = min_driver(stack.runtime)
    where = host.ami or "the service's default image"
    if host.driver is None:
        return HostFit(
            None,
            f"CUDA {stack.runtime} needs driver {needs}; the driver of {where} is not published",
        )
    runs = host.driver >= needs
    return HostFit(
        runs,
        f"CUDA {stack.runtime} needs driver {needs}; {where} has driver {host.driver} "
        f"(CUDA up to {host.cuda}): {'runs' if runs else 'refused'}",
    )
