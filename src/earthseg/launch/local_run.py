"""`earthseg pipeline --local`: every stage on this machine, in the images SageMaker runs.

Preprocessing runs in the training image with the Processing mounts, training through
the SageMaker SDK's local mode (the SDK writes /opt/ml and runs the image with
docker-compose, as it would start a job), serving in the serve image on a loopback
port, predicting over HTTP. Without a Docker engine (`local.docker: never`, or `auto`
with none answering) the same library code runs on this machine without containers
instead, and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_dir
from earthseg.errors import InputError
from earthseg.launch.config import RunConfig
from earthseg.launch.host_steps import dataset_totals, extract, preprocess_on_host
from earthseg.launch.local_containers import (
    docker_available,
    docker_client,
    local_endpoint,
    run_processing,
)
from earthseg.launch.run_folder import RunFolder
from earthseg.serve.predictor import Prediction

CHANNELS = ("train", "validation", "test")


class LocalBackend:
    """The stages in local containers, or on this machine when there is no Docker engine."""

    def __init__(self, config: RunConfig, folder: RunFolder, say: Callable[[str], None]) -> None:
        self.config = config
        self.folder = folder
        wanted = config.local.docker
        if wanted == "always":
            docker_client().close()  # or the error that says how to get an engine
        self.docker = wanted == "always" or (wanted == "auto" and docker_available())
        self.mode = "local" if self.docker else "host"
        self.images = (
            {"train": config.local.train_image, "serve": config.local.serve_image}
            if self.docker
            else {}
        )
        if not self.docker:
            say(
                "no Docker engine: every stage runs on this machine without containers "
                "(`make docker` as root installs and starts one)"
            )

    def preprocess(self, dataset: Path) -> dict[str, Any]:
        if not self.docker:
            return preprocess_on_host(self.config, dataset)
        run_processing(
            self.config.local.train_image,
            {"images": self.config.export.images, "labels": self.config.export.labels},
            dataset,
            ["preprocess", *self.config.preprocess.options().arguments()],
            self.folder.logs / "preprocess-container.log",
        )
        return {"dataset": str(dataset), **dataset_totals(dataset)}

    def train(self, dataset: dict[str, Any], model: Path, training: Path) -> dict[str, Any]:
        channels = {
            name: Path(dataset["dataset"]) / name
            for name in CHANNELS
            if (Path(dataset["dataset"]) / name).is_dir()
        }
        if self.docker:
            artifacts = self._train_in_container(channels)
            extract(artifacts / "model.tar.gz", model)
            extract(artifacts / "output.tar.gz", training, member_prefix="data/")
        else:
            self._train_on_host(channels, model, training)
        card = json.loads((model / "earthseg.json").read_text())
        return {"model": str(model), "threshold": card["threshold"]}

    @contextmanager
    def deploy(
        self, trained: dict[str, Any]
    ) -> Iterator[Callable[[Path, float | None], Prediction]]:
        model = Path(trained["model"])
        if not self.docker:
            from earthseg.serve.predictor import load_predictor

            predictor = load_predictor(model)
            yield predictor.predict_file
            return
        from earthseg.serve.client import predict_remote

        log_file = self.folder.logs / "deploy-container.log"
        with local_endpoint(
            self.config.local.serve_image, model, log_file, self.config.deploy.workers
        ) as endpoint:
            yield lambda scene, threshold: predict_remote(
                endpoint.url, scene, threshold, self.config.invoke.max_payload_mb
            )

    def _train_in_container(self, channels: dict[str, Path]) -> Path:
        """The SDK's local mode; returns the folder holding model.tar.gz and output.tar.gz."""
        from earthseg.launch.training import TrainingSpec, run_training

        spec = TrainingSpec(
            image=self.config.local.train_image,
            channels={name: str(path) for name, path in channels.items()},
            hyperparameters=self.config.train.hyperparameters,
            instance_type="local_cpu",
            instance_count=self.config.train.instances,
            base_job_name=self.config.name,
        )
        result = run_training(None, spec, local_root=self.folder.root / "train-local")
        return Path(result.model_uri).parent

    def _train_on_host(self, channels: dict[str, Path], model: Path, training: Path) -> None:
        """`earthseg train` in a process of its own (the toolkit fixes /opt/ml per process)
        on a /opt/ml tree in the run folder."""
        opt_ml = self.folder.root / "opt_ml"
        shutil.rmtree(opt_ml, ignore_errors=True)
        config = opt_ml / "input" / "config"
        config.mkdir(parents=True)
        hyperparameters = {k: str(v) for k, v in self.config.train.hyperparameters.items()}
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        data = opt_ml / "input" / "data"
        data.mkdir(parents=True)
        for name, path in channels.items():
            (data / name).symlink_to(path.resolve(), target_is_directory=True)
        command = [sys.executable, "-m", "earthseg.cli", "train", "--base-dir", str(opt_ml)]
        with open(self.folder.logs / "train-process.log", "w") as log_file:
            status = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT).returncode
        if status != 0:
            failure = opt_ml / "output" / "failure"
            reason = failure.read_text().strip() if failure.exists() else f"exit status {status}"
            raise InputError("training", reason, f"see {log_file.name} in {self.folder.logs}")
        _replace_with_copy(opt_ml / "model", model)
        _replace_with_copy(opt_ml / "output" / "data", training)


def _replace_with_copy(source: Path, target: Path) -> None:
    with atomic_dir(target, replace=True) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
