"""Local tuning with its trials in the training image: `docker run IMAGE train` on each
trial's /opt/ml tree, two at a time, each held to one core, and a trial that cannot learn
stopped by the median pruner through the container (SIGTERM, a clean end of the fit)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from earthseg.contracts.channels import channel_folders
from earthseg.contracts.model_card import read_model_card
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.tune.local import TuningJob, trial_folder, tune
from earthseg.tune.options import ParameterRange, TuneConfig

pytestmark = pytest.mark.docker

EPOCHS = 6
STUCK = 1e-5


def test_trials_run_in_the_image_and_a_stuck_one_is_pruned(
    docker_client: docker.DockerClient, train_image: str, tmp_path: Path
) -> None:
    export, dataset = tmp_path / "export", tmp_path / "dataset"
    write_sample_export(export, scenes=4, size=256, seed=3)
    options = PreprocessOptions(tile_size=64, splits=(0.5, 0.25, 0.25))
    build_dataset(export / "images", export / "labels", dataset, options)
    # As in tests/test_tune_local.py: the seed draws two learning rates that learn, then
    # the stuck one, judged once both others finished.
    settings = TuneConfig(
        trials=3,
        parallel=2,
        objective="val_loss",
        seed=10,
        ranges={
            "filters": ParameterRange(values=[8, 12]),
            "learning_rate": ParameterRange(values=[0.01, 0.003, STUCK]),
        },
    )
    job = TuningJob(
        name="in-the-image",
        channels=channel_folders(dataset),
        hyperparameters=Hyperparameters(epochs=EPOCHS, batch_size=8, depth=2),
        environment={},
        experiment="in-the-image",
        image=train_image,
    )
    seen: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def watch_containers() -> None:
        while not done.is_set():
            for container in docker_client.containers.list(filters={"label": "earthseg.trial"}):
                seen[container.labels["earthseg.trial"]] = container.attrs["HostConfig"]
            done.wait(0.5)

    watcher = threading.Thread(target=watch_containers, daemon=True)
    watcher.start()
    try:
        result = tune(settings, job, tmp_path / "tuning", "in-the-image")
    finally:
        done.set()
        watcher.join()

    states = {trial.name: trial for trial in result.trials}
    (pruned,) = [trial for trial in result.trials if trial.state == "pruned"]
    assert pruned.hyperparameters["learning_rate"] == STUCK, states
    assert pruned.epochs < EPOCHS
    log = (trial_folder(result.folder, pruned.name) / "train.log").read_text()
    assert "SIGTERM: training stops after this batch" in log
    assert "stopped by SIGTERM; checkpoint saved" in log
    assert [trial.epochs for trial in result.trials if trial.state == "complete"] == [6, 6]
    best = trial_folder(result.folder, result.best.name)
    card = read_model_card(best / "model")
    assert (
        card.training.hyperparameters["learning_rate"]
        == result.best.hyperparameters["learning_rate"]
    )
    assert (best / "output/data/metrics.json").is_file()
    assert (best / "input/config/resourceconfig.json").is_file()

    # each trial in its own container on the host's network, held to its core, removed
    assert set(seen) == set(states)
    for host_config in seen.values():
        assert host_config["NetworkMode"] == "host"
        assert host_config["NanoCpus"] == 1_000_000_000  # 2 cores, 2 trials at a time
    assert not docker_client.containers.list(all=True, filters={"label": "earthseg.trial"})
