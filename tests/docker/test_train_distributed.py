"""Two instances training as one: SageMaker Python SDK v3 local mode with instance_count=2.

`ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)` with two instances writes a
resourceconfig.json per host (`algo-1`, `algo-2`), runs one container of the training
image per host on a Compose network where each reaches the other by its host name, and
tars the model folder the hosts share into model.tar.gz. The workers must join one
TensorFlow cluster, train in step (the same weights digest on both), and leave exactly
one model, written by the chief.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from earthseg.preprocess.dataset import PreprocessOptions, build_dataset
from earthseg.synthetic import write_sample_export

pytestmark = pytest.mark.docker

HOSTS = ("algo-1", "algo-2")


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distributed")
    write_sample_export(root / "export", scenes=4, size=256, seed=11)
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        root / "dataset",
        PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25)),
    )
    return root / "dataset"


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def host_lines(logs: str, host: str) -> str:
    """What one host's container printed: Compose prefixes each line with its service
    (`algo-1_1  | `, `algo-1-1  | ` in Compose v2), in colour."""
    prefix = re.compile(rf"^{re.escape(host)}[-_]1\s+\| ?(.*)$")
    lines = (prefix.match(ANSI_COLOUR.sub("", line)) for line in logs.splitlines())
    return "\n".join(found.group(1) for found in lines if found)


def test_two_instances_train_together_and_the_chief_writes_one_model(
    train_image: str, channels: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=train_image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=2),
        hyperparameters={"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2},
        base_job_name="earthseg-distributed",
        local_container_root=str(tmp_path),
    )
    trainer.train(
        input_data_config=[
            InputData(channel_name=name, data_source=str(channels / name))
            for name in ("train", "validation", "test")
        ],
        wait=True,
    )
    logs = capfd.readouterr().out

    digests = {}
    for index, host in enumerate(HOSTS):
        lines = host_lines(logs, host)
        assert f"joined as worker {index} of 2, chief algo-1, replicas_in_sync=2" in lines, logs
        assert re.findall(r"^epoch=(\d+) loss=", lines, re.MULTILINE) == ["1", "2"], lines
        (digests[host],) = re.findall(r"^weights_sha256=([0-9a-f]{64}) host=", lines, re.M)
    assert digests["algo-1"] == digests["algo-2"], digests

    with tarfile.open(tmp_path / "compressed_artifacts" / "model.tar.gz") as archive:
        names = set(archive.getnames())
        card = json.load(archive.extractfile("earthseg.json"))  # type: ignore[arg-type]
    assert {"model.onnx", "earthseg.json", "1/saved_model.pb"} <= names
    assert card["training"]["instances"] == 2
    assert card["training"]["hosts"] == list(HOSTS)
    assert card["training"]["replicas"] == 2
    assert card["training"]["epochs"] == 2
