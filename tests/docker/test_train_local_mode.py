"""The training image driven by its real client: SageMaker Python SDK v3 in local mode.

`ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)`, built as the launcher builds it
(earthseg.aws.training), writes the /opt/ml tree, runs the image
with docker-compose (no `train` argument, hyperparameters as strings) and tars the
artifacts into model.tar.gz, as a SageMaker training job would.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from earthseg.train.metric_lines import METRIC_DEFINITIONS
from tests.docker.conftest import local_mode_job

pytestmark = pytest.mark.docker


def test_model_trainer_local_mode_produces_the_model_artifact(
    train_image: str, local_mode_channels: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model = local_mode_job(train_image, local_mode_channels, tmp_path)
    logs = capfd.readouterr().out
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], logs), definition["Name"]

    with tarfile.open(model) as archive:
        names = set(archive.getnames())
        card = json.load(archive.extractfile("earthseg.json"))  # type: ignore[arg-type]
    assert {"model.onnx", "earthseg.json", "1/saved_model.pb"} <= names
    assert card["training"]["hyperparameters"]["epochs"] == 2
    assert set(card["metrics"]) == {"validation", "test"}
