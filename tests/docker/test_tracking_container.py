"""The training image tracks its job to a real MLflow server: `docker run IMAGE train` on
the host network with MLFLOW_TRACKING_URI, as the launcher passes it."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound
from mlflow import MlflowClient

from earthseg.contracts.model_card import read_model_card
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.metric_lines import LOGGED
from earthseg.train.tracking import DATASET_URI_ENV, EXPERIMENT_ENV, TRACKING_URI_ENV
from tests.conftest import make_opt_ml
from tests.docker.conftest import RUN_TIMEOUT_S
from tests.mlflow_server import mlflow_server  # noqa: F401

pytestmark = pytest.mark.docker

SMALL = {"epochs": "2", "batch_size": "8", "filters": "8", "depth": "2"}


def test_the_image_tracks_its_job_to_an_mlflow_server(
    docker_client: docker.DockerClient,
    train_image: str,
    mlflow_server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    export, dataset = tmp_path / "export", tmp_path / "dataset"
    write_sample_export(export, scenes=4, size=128, seed=4)
    options = PreprocessOptions(tile_size=32, splits=(0.5, 0.25, 0.25))
    build_dataset(export / "images", export / "labels", dataset, options)
    opt_ml = make_opt_ml(tmp_path / "opt_ml", dataset, SMALL)
    environment = {
        TRACKING_URI_ENV: mlflow_server,
        EXPERIMENT_ENV: "in-the-image",
        DATASET_URI_ENV: "s3://bucket/dust/",
    }
    container = docker_client.containers.run(
        train_image,
        ["train"],
        network_mode="host",
        environment=environment,
        volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}},
        detach=True,
    )
    try:
        status = container.wait(timeout=RUN_TIMEOUT_S)["StatusCode"]
        logs = container.logs().decode()
    finally:
        with suppress(NotFound):
            container.remove(force=True)
    assert status == 0, logs[-3000:]
    for noise in ("MLflow tracking at", "resolving request headers"):
        assert noise not in logs, logs[-3000:]

    card = read_model_card(opt_ml / "model")
    assert card.tracking is not None and card.tracking.uri == mlflow_server
    client = MlflowClient(mlflow_server)
    run = client.get_run(card.tracking.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2"
    assert run.data.params["data.source"] == "s3://bucket/dust/"
    for key in LOGGED:
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    assert run.data.metrics["validation_iou"] == pytest.approx(card.metrics["validation"]["iou"])
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == str(card.data.manifest_sha256)[7:43]
    assert {"earthseg.json", "training"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    (version,) = client.search_model_versions("name='in-the-image'")
    assert version.run_id == run.info.run_id
    assert client.get_logged_model(version.source.removeprefix("models:/")).source_run_id == (
        run.info.run_id
    )
