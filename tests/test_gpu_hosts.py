"""The GPU host table (earthseg.gpu.hosts) and the requests it shapes: which NVIDIA driver
an instance family has per service, the AMI earthseg asks for, what it refuses, and the
AMI fields `deploy`, `deploy --async` and `transform` send to the AWS API emulator.

The requests are read from what moto received over real HTTP (its recorder, as
tests/aws_emulator.py reads them), so they are checked as sent, whatever moto's describe
answers keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import botocore.session
import pytest

from earthseg.aws.resources import EndpointOptions, Serverless
from earthseg.aws.transform import TransformOptions
from earthseg.errors import InputError
from earthseg.gpu.cuda import IMAGES_CUDA, min_driver
from earthseg.gpu.hosts import (
    TABLE_DATE,
    HostDriver,
    ami_request,
    choose_host,
    gpu_family,
    host_drivers,
)
from earthseg.gpu.startup import ALLOW_CPU_ENV
from earthseg.pipeline.config import load_config
from earthseg.validation import validate
from tests.test_launch import DEPLOY, deployed_name, earthseg, make_bucket
from tests.test_transform import put, transform

if TYPE_CHECKING:
    from pathlib import Path

    from tests.aws_emulator import Emulator

GPU_2_1 = "al2-ami-sagemaker-inference-gpu-2-1"
GPU_4_1 = "al2023-ami-sagemaker-inference-gpu-4-1"
GPU_3_1 = "al2-ami-sagemaker-inference-gpu-3-1"
BATCH_535 = "al2-ami-sagemaker-batch-gpu-535"


@pytest.mark.parametrize(
    ("instance_type", "family"),
    [
        ("ml.g5.xlarge", "g5"),
        ("ml.p4de.24xlarge", "p4de"),
        ("ml.p5en.48xlarge", "p5en"),
        ("ml.m5.xlarge", None),
        ("ml.c5.2xlarge", None),
        ("ml.inf2.xlarge", None),
        ("ml.trn1.2xlarge", None),
        ("local", None),
        ("local_gpu", None),
    ],
)
def test_the_gpu_family_is_the_nvidia_family_of_the_instance_type(
    instance_type: str, family: str | None
) -> None:
    assert gpu_family(instance_type) == family


def test_a_g5_endpoint_gets_the_newest_ami_aws_documents_for_its_family() -> None:
    assert host_drivers("ml.g5.xlarge", "endpoint")[0] == HostDriver(None, 470, "11.4")
    # gpu-3-1 and gpu-4-1 are seen on g5 only outside AWS's documentation: named, not default
    assert choose_host("ml.g5.xlarge", "endpoint") == HostDriver(GPU_2_1, 535, "12.2")
    assert ami_request("ml.g5.xlarge", "endpoint", None) == {"InferenceAmiVersion": GPU_2_1}
    assert choose_host("ml.g5.xlarge", "endpoint", GPU_4_1) == HostDriver(GPU_4_1, 580, "13.0")
    assert ami_request("ml.g5.xlarge", "async", GPU_3_1) == {"InferenceAmiVersion": GPU_3_1}


def test_a_g6_endpoint_starts_from_535_and_gets_the_newest_ami() -> None:
    drivers = [host.driver for host in host_drivers("ml.g6.xlarge", "endpoint")]
    assert drivers == [535, 535, 535, 550, 580]  # the default, then the AMIs oldest first
    assert choose_host("ml.g6.xlarge", "async") == HostDriver(GPU_2_1, 535, "12.2")


def test_a_g5_transform_job_gets_the_535_batch_image() -> None:
    assert choose_host("ml.g5.xlarge", "transform") == HostDriver(BATCH_535, 535, "12.2")
    assert ami_request("ml.g5.xlarge", "transform", None) == {"TransformAmiVersion": BATCH_535}


def test_cpu_instance_types_have_no_host_driver_and_no_request_field() -> None:
    for service in ("endpoint", "async", "transform", "training"):
        assert host_drivers("ml.m5.xlarge", service) == []
        assert choose_host("ml.m5.xlarge", service) is None
        assert ami_request("ml.m5.xlarge", service, None) == {}
    with pytest.raises(InputError, match="has no NVIDIA GPU") as refused:
        choose_host("ml.m5.xlarge", "endpoint", GPU_4_1, source="--ami-version")
    assert refused.value.source == "--ami-version"


def test_a_family_no_ami_lifts_past_the_images_cuda_is_refused_at_load() -> None:
    """p2 has only its default 470 driver (CUDA 11.4); the gpu images carry CUDA 12."""
    assert choose_host("ml.p2.xlarge", "endpoint") == HostDriver(None, 470, "11.4")
    with pytest.raises(InputError) as refused:
        ami_request("ml.p2.xlarge", "endpoint", None)
    assert "has NVIDIA driver 470" in refused.value.problem
    assert f"needs driver {min_driver(IMAGES_CUDA)} or newer" in refused.value.problem
    assert "g6, p5, p5e, p5en as they are" in refused.value.fix
    assert "g5 with ami_version al2-ami-sagemaker-inference-gpu-2" in refused.value.fix
    with pytest.raises(InputError, match=r"instance_type: its endpoint host .* driver 470"):
        validate(EndpointOptions, {"instance_type": "ml.p2.xlarge"}, source="deploy")
    # a transform host whose driver AWS does not publish is not refused: the start-up
    # check (earthseg.gpu.startup) is what guards it
    assert ami_request("ml.p5.48xlarge", "transform", None) == {}


def test_training_hosts_drivers_are_unknown() -> None:
    assert host_drivers("ml.g5.xlarge", "training") == [HostDriver(None, None, None)]
    # an unpublished driver is never refused for being too old
    assert choose_host("ml.g5.xlarge", "training", needs_driver=580) == HostDriver(None, None, None)


def test_an_ami_the_family_does_not_offer_is_refused_with_the_ones_it_does() -> None:
    with pytest.raises(InputError) as refused:
        choose_host("ml.p3.2xlarge", "endpoint", GPU_4_1)
    error = refused.value
    assert error.source == "ami_version"
    assert f"{GPU_4_1} is not offered for endpoint on ml.p3.2xlarge" in error.problem
    assert "al2-ami-sagemaker-inference-gpu-2, al2-ami-sagemaker-inference-gpu-2-1" in error.problem
    with pytest.raises(InputError, match="not offered for transform"):
        choose_host("ml.g5.xlarge", "transform", GPU_4_1)  # an endpoint image


def test_a_host_whose_driver_is_too_old_is_refused_with_the_reason_and_the_fix() -> None:
    with pytest.raises(InputError) as refused:
        choose_host("ml.g6.xlarge", "endpoint", "al2-ami-sagemaker-inference-gpu-2", 580)
    error = refused.value
    assert error.source == "instance type ml.g6.xlarge"
    assert "has NVIDIA driver 535 (CUDA up to 12.2)" in error.problem
    assert "needs driver 580 or newer" in error.problem
    assert f"g6, p5, p5e, p5en with ami_version {GPU_4_1}" in error.fix
    with pytest.raises(InputError, match="no transform host in the table"):
        choose_host("ml.g5.xlarge", "transform", needs_driver=580)
    assert choose_host("ml.g5.xlarge", "endpoint", needs_driver=525).driver == 535


def test_a_gpu_family_the_table_does_not_know_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InputError) as refused:
        choose_host("ml.g6e.xlarge", "endpoint")
    error = refused.value
    assert "its GPU family g6e is not in earthseg's table" in error.problem
    assert f"dated {TABLE_DATE}" in error.problem and "g4dn, g5, g6" in error.problem
    assert "add g6e to earthseg.gpu.hosts" in error.fix


def test_options_refuse_a_bad_host_when_they_are_read(tmp_path: Path) -> None:
    with pytest.raises(InputError) as refused:
        validate(EndpointOptions, {"instance_type": "ml.p3.2xlarge", "ami_version": GPU_4_1})
    assert refused.value.source == "ami_version"
    with pytest.raises(InputError) as refused:
        validate(TransformOptions, {"instance_type": "ml.g6e.xlarge"})
    assert refused.value.source == "instance_type"
    with pytest.raises(InputError, match="serverless endpoint has none"):
        validate(EndpointOptions, {"serverless": Serverless(), "ami_version": GPU_4_1})
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: hosts\nexport: {labels: labels}\n"
        f"deploy: {{instance_type: ml.p3.2xlarge, ami_version: {GPU_4_1}}}\n"
    )
    with pytest.raises(InputError, match=r"deploy\.ami_version") as refused:
        load_config(config)
    assert "not offered for endpoint on ml.p3.2xlarge" in str(refused.value)


# --- the requests, against the AWS API emulator ---------------------------------------------


@pytest.fixture
def current_instance_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's endpoint configs take the instance types of botocore's service model
    (ProductionVariantInstanceType): moto's own list predates g5 and g6."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpointConfig

    model = botocore.session.get_session().get_service_model("sagemaker")
    offered = set(model.shape_for("ProductionVariantInstanceType").enum)

    def validate(self: FakeEndpointConfig, instance_type: str) -> None:
        if instance_type not in offered:
            raise ValidationError(message=f"{instance_type} is not a production variant type")

    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", validate)


@pytest.mark.parametrize(
    ("instance_type", "ami"),
    [("ml.g5.xlarge", GPU_2_1), ("ml.g6.xlarge", GPU_2_1), ("ml.m5.xlarge", None)],
)
@pytest.mark.usefixtures("current_instance_types")
def test_deploy_asks_for_the_hosts_ami(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], instance_type: str, ami: str | None
) -> None:
    code, out, err = earthseg(capsys, *DEPLOY, "--instance-type", instance_type)
    assert code == 0, err
    (request,) = aws_env.received("CreateEndpointConfig")
    (variant,) = request["ProductionVariants"]
    assert variant["InstanceType"] == instance_type
    assert variant.get("InferenceAmiVersion") == ami
    name = deployed_name(out)
    described = aws_env.client("sagemaker").describe_endpoint_config(EndpointConfigName=name)
    assert described["ProductionVariants"][0].get("InferenceAmiVersion") == ami


@pytest.mark.parametrize(
    ("instance_type", "ami"),
    [("ml.g5.xlarge", GPU_3_1), ("ml.g6.xlarge", GPU_2_1), ("ml.m5.xlarge", None)],
)
@pytest.mark.usefixtures("current_instance_types")
def test_async_deploy_asks_for_the_hosts_ami(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], instance_type: str, ami: str | None
) -> None:
    make_bucket(aws_env)
    chosen = ["--ami-version", ami] if ami == GPU_3_1 else []  # given, or the default
    code, _, err = earthseg(capsys, *DEPLOY, "--async", "--instance-type", instance_type, *chosen)
    assert code == 0, err
    (request,) = aws_env.received("CreateEndpointConfig")
    assert "AsyncInferenceConfig" in request
    (variant,) = request["ProductionVariants"]
    assert variant.get("InferenceAmiVersion") == ami


@pytest.mark.parametrize(
    ("instance_type", "ami"),
    [("ml.g5.xlarge", BATCH_535), ("ml.g6.xlarge", BATCH_535), ("ml.m5.xlarge", None)],
)
def test_transform_asks_for_the_hosts_ami(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str], instance_type: str, ami: str | None
) -> None:
    put(aws_env, {"scenes/a.tif": 2048})
    code, _, err = earthseg(capsys, *transform("--instance-type", instance_type))
    assert code == 0, err
    (request,) = aws_env.received("CreateTransformJob")
    expected = {"InstanceType": instance_type, "InstanceCount": 1}
    assert request["TransformResources"] == expected | ({"TransformAmiVersion": ami} if ami else {})


def test_a_refused_ami_version_stops_the_command_before_any_request(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = earthseg(
        capsys, *DEPLOY, "--instance-type", "ml.p3.2xlarge", "--ami-version", GPU_4_1
    )
    assert code == 2
    assert "--ami-version" in err and "not offered for endpoint on ml.p3.2xlarge" in err
    put(aws_env, {"scenes/a.tif": 2048})
    code, _, err = earthseg(
        capsys, *transform("--instance-type", "ml.m5.xlarge", "--ami-version", BATCH_535)
    )
    assert code == 2 and "--ami-version" in err and "has no NVIDIA GPU" in err
    code, _, err = earthseg(capsys, *DEPLOY, "--serverless", "--ami-version", GPU_4_1)
    assert code == 2 and "--ami-version" in err
    assert aws_env.received("CreateEndpointConfig") == []
    assert aws_env.received("CreateTransformJob") == []


@pytest.mark.usefixtures("current_instance_types")
def test_allow_cpu_reaches_the_model_servers_environment(
    aws_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--allow-cpu is the image's EARTHSEG_ALLOW_CPU (earthseg.gpu.startup): a gpu image on
    a host whose driver is too old then serves on the CPU instead of refusing to start."""
    code, _, err = earthseg(capsys, *DEPLOY, "--instance-type", "ml.g5.xlarge", "--allow-cpu")
    assert code == 0, err
    (model,) = aws_env.received("CreateModel")
    assert model["PrimaryContainer"]["Environment"][ALLOW_CPU_ENV] == "true"
    put(aws_env, {"scenes/a.tif": 2048})
    code, _, err = earthseg(capsys, *transform("--instance-type", "ml.g5.xlarge", "--allow-cpu"))
    assert code == 0, err
    served = aws_env.received("CreateModel")[-1]["PrimaryContainer"]["Environment"]
    assert served[ALLOW_CPU_ENV] == "true"
    code, _, err = earthseg(capsys, *transform("--instance-type", "ml.g5.xlarge"))
    assert code == 0, err
    assert (
        ALLOW_CPU_ENV not in aws_env.received("CreateModel")[-1]["PrimaryContainer"]["Environment"]
    )
