"""MLflow tracking of `earthseg train`: small trainings in this process logging to a real
`mlflow server` on loopback, read back through MlflowClient; a store that is down; the
run config's `tracking:`; what the launchers pass to the job; the local store and
`earthseg ui`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from mlflow import MlflowClient

from earthseg.contracts.channels import read_channel_index
from earthseg.contracts.manifest import file_digest
from earthseg.contracts.model_card import read_model_card
from earthseg.errors import InputError
from earthseg.pipeline.config import load_config
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.environment import TrainingEnvironment
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.metric_lines import LOGGED
from earthseg.train.run import train
from earthseg.train.tracking import (
    DATASET_URI_ENV,
    EXPERIMENT_ENV,
    PARENT_RUN_ENV,
    TRACKING_URI_ENV,
    child_environment,
    end_run,
    final_metric,
    local_store_uri,
    serve_store,
    start_parent_run,
)
from tests.mlflow_server import closed_port_uri, free_port, mlflow_server  # noqa: F401
from tests.pipeline_runs import small_run

REPO = Path(__file__).resolve().parents[1]
SMALL = {"epochs": "2", "batch_size": "8", "filters": "8", "depth": "2", "patience": "5"}
ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/dust"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracked-data")
    write_sample_export(root / "export", scenes=4, size=128, seed=5)
    out = root / "dataset"
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        out,
        PreprocessOptions(tile_size=32, splits=(0.5, 0.25, 0.25)),
    )
    return out


def job(base: Path, dataset: Path) -> TrainingEnvironment:
    """The environment SageMaker would give a job on `dataset`, in `base`."""
    return TrainingEnvironment(
        base_dir=base,
        hyperparameters=Hyperparameters.from_mapping(SMALL),
        channels={name: dataset / name for name in ("train", "validation", "test")},
        hosts=["algo-1"],
        current_host="algo-1",
    )


def test_a_training_is_tracked_whole_and_its_model_registered(
    mlflow_server: str,  # noqa: F811
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    experiment = "tracked-dust"
    parent = start_parent_run(mlflow_server, experiment, "tuning", {"trials": 1})
    environment = child_environment(mlflow_server, experiment, parent)
    for name, value in {**environment, DATASET_URI_ENV: "s3://bucket/datasets/dust/"}.items():
        monkeypatch.setenv(name, value)
    base = tmp_path / "ml"
    train(job(base, dataset))
    end_run(mlflow_server, parent)

    card = read_model_card(base / "model")
    assert card.tracking is not None
    assert (card.tracking.uri, card.tracking.experiment) == (mlflow_server, experiment)
    client = MlflowClient(mlflow_server)
    run = client.get_run(card.tracking.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent

    # every hyperparameter, as SageMaker passes them, and the dataset and its imagery
    params = run.data.params
    for name, value in Hyperparameters.from_mapping(SMALL).model_dump().items():
        assert params[name] == json.dumps(value), name
    manifest_digest = file_digest(dataset / "manifest.json")
    assert params["data.manifest_sha256"] == manifest_digest
    assert params["data.source"] == "s3://bucket/datasets/dust/"
    for split in ("train", "validation", "test"):
        index = read_channel_index(dataset / split)
        assert params[f"data.{split}.tiles"] == str(index.tiles)
        assert float(params[f"data.{split}.positive_fraction"]) == pytest.approx(
            index.positive_fraction, abs=1e-6
        )

    # the metrics line's values per epoch, and the final scores
    for key in LOGGED:
        history = client.get_metric_history(run.info.run_id, key)
        assert [point.step for point in history] == [1, 2], key
    for split, scores in card.metrics.items():
        for score, value in scores.items():
            assert run.data.metrics[final_metric(split, score)] == pytest.approx(value)
    assert run.data.metrics["threshold"] == pytest.approx(card.threshold)

    # the dataset as an MLflow dataset input
    (dataset_input,) = run.inputs.dataset_inputs
    logged = dataset_input.dataset
    assert logged.digest == manifest_digest.removeprefix("sha256:")[:36]
    assert "s3://bucket/datasets/dust" in logged.source
    profile = json.loads(logged.profile)
    assert profile["tiles"]["train"] == read_channel_index(dataset / "train").tiles
    assert set(profile["positive_fraction"]) == {"train", "validation", "test"}
    assert {tag.key: tag.value for tag in dataset_input.tags}["mlflow.data.context"] == "training"

    # the model card and the figures
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"earthseg.json", "training"} <= artifacts
    figures = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "training")}
    assert {"training_curves.png", "predictions.png", "metrics.json"} <= figures
    downloaded = client.download_artifacts(run.info.run_id, "earthseg.json", str(tmp_path))
    assert json.loads(Path(downloaded).read_text())["tracking"]["run_id"] == run.info.run_id

    # the ONNX model, logged with the onnx flavour and registered as a version
    (version,) = client.search_model_versions(f"name='{experiment}'")
    assert version.run_id == run.info.run_id
    model_id = version.source.removeprefix("models:/")
    logged_model = client.get_logged_model(model_id)
    assert logged_model.source_run_id == run.info.run_id
    import mlflow.onnx

    onnx_model = mlflow.onnx.load_model(f"models:/{experiment}/{version.version}")
    assert onnx_model.graph.input[0].name == card.onnx.input
    assert onnx_model.SerializeToString() == (base / "model" / "model.onnx").read_bytes()


def test_a_store_that_is_down_is_one_warning_and_training_goes_on(
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    uri = closed_port_uri()
    # with credentials, which no log line may show
    monkeypatch.setenv(TRACKING_URI_ENV, uri.replace("http://", "http://someone:secret@"))
    monkeypatch.setenv(EXPERIMENT_ENV, "nobody-listens")
    base = tmp_path / "ml"
    started = time.monotonic()
    summary = train(job(base, dataset))
    assert time.monotonic() - started < 120
    assert "trained 2 epochs" in summary
    card = read_model_card(base / "model")
    assert card.tracking is None
    assert (base / "model" / "model.onnx").is_file()
    assert (base / "output" / "data" / "training_curves.png").is_file()
    _, err = capfd.readouterr()
    warnings = [line for line in err.splitlines() if uri in line]
    assert len(warnings) == 1, err[-3000:]
    assert "secret" not in err
    assert "warning" in warnings[0] and "training goes on without tracking" in warnings[0]


def test_tracking_in_the_run_config_is_checked_and_documented(tmp_path: Path) -> None:
    documented = yaml.safe_load((REPO / "run.yaml").read_text())
    assert set(documented["tracking"]) == {"uri", "experiment"}
    config = load_config(small_run(tmp_path, tracking={"uri": "sqlite:///store/mlflow.db"}))
    assert config.tracking.uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert config.experiment == "tiny"
    for uri in (ARN, "https://mlflow.example.org", "postgresql://user@db/mlflow"):
        config = load_config(small_run(tmp_path, tracking={"uri": uri, "experiment": "dust"}))
        assert (config.tracking_uri(local=False), config.experiment) == (uri, "dust")
    for bad in ("ftp://host/x", "localhost:5000", "file:///tmp/mlruns", "arn:aws:s3:::bucket"):
        with pytest.raises(InputError) as refused:
            load_config(small_run(tmp_path, tracking={"uri": bad}))
        assert "tracking.uri" in str(refused.value) and "sqlite:///path" in str(refused.value)


def test_a_local_run_tracks_to_the_runs_folder_and_a_cloud_run_needs_a_reachable_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    config = load_config(small_run(tmp_path))
    assert config.tracking_uri(local=True) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert config.tracking_uri(local=False) is None
    assert config.cloud_environment("s3://b/d/") == {DATASET_URI_ENV: "s3://b/d/"}
    monkeypatch.setenv(TRACKING_URI_ENV, ARN)
    assert config.tracking_uri(local=True) == ARN
    assert config.cloud_environment("s3://b/d/") == {
        TRACKING_URI_ENV: ARN,
        EXPERIMENT_ENV: "tiny",
        DATASET_URI_ENV: "s3://b/d/",
    }
    sqlite = load_config(
        small_run(
            tmp_path,
            tracking={"uri": "sqlite:///x.db"},
            aws={"s3": "s3://b/p", "role": "arn:aws:iam::123456789012:role/r"},
            train={"image": "i"},
            deploy={"image": "i"},
        )
    )
    with pytest.raises(InputError, match="cannot reach"):
        sqlite.require_cloud()


def test_the_launcher_passes_the_arn_and_the_dataset_to_the_sagemaker_job(
    aws_env: object,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`earthseg train --image` against the AWS API emulator: what CreateTrainingJob got."""
    from earthseg.cli import main

    aws_env.client("s3").create_bucket(Bucket="tracked")  # type: ignore[attr-defined]
    monkeypatch.setenv(TRACKING_URI_ENV, ARN)
    code = main(["upload", "--data", str(dataset), "--to", "s3://tracked/dust"])
    assert code == 0, capsys.readouterr().err
    code = main([
        "train", "--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-train:gpu",
        "--data", "s3://tracked/dust/", "--role", "arn:aws:iam::123456789012:role/r",
        "--output", "s3://tracked/runs", "--name", "dust",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (request,) = aws_env.received("CreateTrainingJob")  # type: ignore[attr-defined]
    assert request["Environment"] == {
        TRACKING_URI_ENV: ARN,
        EXPERIMENT_ENV: "dust",
        DATASET_URI_ENV: "s3://tracked/dust/",
    }
    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///here.db")
    assert main(["train", "--image", "x", "--data", "s3://tracked/dust/", "--role", "r"]) == 2
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.slow  # two MLflow servers, one after the other: about 20 s
def test_the_local_store_is_served_for_jobs_and_opened_by_earthseg_ui(tmp_path: Path) -> None:
    """A run logged through the served store (as a pipeline's job logs) is there when
    `earthseg ui` opens the runs folder."""
    runs = tmp_path / "runs"
    uri = local_store_uri(runs)
    with serve_store(uri, tmp_path / "server.log") as url:
        run_id = start_parent_run(url, "tiny", "a-run", {"epochs": 2})
        end_run(url, run_id)
    assert (runs / "mlflow.db").is_file()

    port = free_port()
    earthseg = Path(sys.executable).parent / "earthseg"
    ui = subprocess.Popen(
        [earthseg, "ui", "--runs", str(runs), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        assert re.search(
            rf"mlflow ui --backend-store-uri {re.escape(uri)} --artifacts-destination "
            rf"{re.escape(str(runs.resolve() / 'mlartifacts'))} .*--port {port}",
            line,
        ), line
        answer = None
        deadline = time.monotonic() + 120
        while answer is None and time.monotonic() < deadline:
            assert ui.poll() is None, ui.stdout.read()
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get",
                    params={"run_id": run_id},
                    timeout=5,
                )
            except requests.RequestException:
                time.sleep(0.2)
        assert answer is not None and answer.ok
        assert answer.json()["run"]["info"]["run_name"] == "a-run"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)


def test_earthseg_ui_names_a_runs_folder_without_a_store(tmp_path: Path) -> None:
    from earthseg.cli import main

    assert main(["ui", "--runs", str(tmp_path)]) == 2


def test_parent_run_environment_names_the_parent() -> None:
    environment = child_environment("http://127.0.0.1:5000", "dust", "abc123")
    assert environment[PARENT_RUN_ENV] == "abc123"
    assert environment[TRACKING_URI_ENV] == "http://127.0.0.1:5000"
