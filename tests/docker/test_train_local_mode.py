"""The training image driven by its real client: SageMaker Python SDK v3 in local mode.

`ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)` writes the /opt/ml tree, runs the image
with docker-compose (no `train` argument, hyperparameters as strings) and tars the
artifacts into model.tar.gz, as a SageMaker training job would.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from earthseg.preprocess.dataset import PreprocessOptions, build_dataset
from earthseg.synthetic import write_sample_export
from earthseg.train.metric_lines import METRIC_DEFINITIONS

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local-mode")
    write_sample_export(root / "export", scenes=4, size=256, seed=11)
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        root / "dataset",
        PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25)),
    )
    return root / "dataset"


def test_model_trainer_local_mode_produces_the_model_artifact(
    train_image: str, channels: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=train_image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        hyperparameters={"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2},
        base_job_name="earthseg-local",
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
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], logs), definition["Name"]

    with tarfile.open(tmp_path / "compressed_artifacts" / "model.tar.gz") as archive:
        names = set(archive.getnames())
        card = json.load(archive.extractfile("earthseg.json"))  # type: ignore[arg-type]
    assert {"model.onnx", "earthseg.json", "1/saved_model.pb"} <= names
    assert card["training"]["hyperparameters"]["epochs"] == 2
    assert set(card["metrics"]) == {"validation", "test"}
