"""`earthseg pipeline --local`: every stage on this machine, in the images SageMaker runs.

Preprocessing runs in the training image with the Processing mounts, training through
the SageMaker SDK's local mode (the SDK writes /opt/ml and runs the image with
docker-compose, as it would start a job), serving in the serve image on a loopback
port, predicting over HTTP. Without a Docker engine (`local.docker: never`, or `auto`
with none answering) the same library code runs on this machine without containers
instead, and says so.

Tuning (`earthseg tune --local`) trains many jobs, the run's training job with other
hyperparameters, driven by Optuna (earthseg.tune.local); the best one's model and
reports take the place of a single training's.

Training is tracked in MLflow (`tracking:`; by default the store `mlflow.db` in the runs
folder). A SQLite store is a file a job in a container cannot open, and its artifacts
are paths on this machine: so for the job's duration an `mlflow server` on this machine
serves the store, artifacts proxied into `mlartifacts/` beside it, and the job logs over
HTTP, in a container as on the host. The server listens on 127.0.0.1 for a job on the
host or on the host's network (a tuning's trials), and on the gateway of the SDK local
mode's network (`sagemaker-local`, a bridge) for a job in local mode, which reaches this
machine there and nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from earthseg.archives import extract
from earthseg.atomic import atomic_dir
from earthseg.contracts.channels import channel_folders
from earthseg.contracts.model_card import read_model_card
from earthseg.contracts.opt_ml import FAILURE, MODEL, OUTPUT_DATA
from earthseg.contracts.processing import INPUTS
from earthseg.errors import InputError
from earthseg.local.engine import docker_available, docker_client
from earthseg.pipeline.backends.base import ScenePredictor
from earthseg.pipeline.backends.host import dataset_outputs, preprocess_on_host
from earthseg.pipeline.config import RunConfig
from earthseg.pipeline.run_folder import RunFolder
from earthseg.train.tracking import (
    STORE_URI_ENV,
    job_environment,
    serve_store,
    sqlite_file,
)

LOCAL_MODE_NETWORK = "sagemaker-local"  # the network the SDK's local mode runs jobs on
TRACKING_SERVER_LOG = "tracking-server.log"


class LocalBackend:
    """The stages in local containers, or on this machine when there is no Docker engine."""

    def __init__(self, config: RunConfig, folder: RunFolder, say: Callable[[str], None]) -> None:
        self.config = config
        self.folder = folder
        self.say = say
        wanted = config.local.docker
        if wanted == "always":
            docker_client(
                fix="start one with `make docker`, or run the pipeline without Docker "
                "(local.docker: never)"
            ).close()
        self.docker = wanted == "always" or (wanted == "auto" and docker_available())
        self.mode = "local" if self.docker else "host"
        self.images = (
            {"train": config.local.train_image, "serve": config.local.serve_image}
            if self.docker
            else {}
        )
        if wanted == "never":
            say("local.docker: never: every stage runs on this machine without containers")
        elif not self.docker:
            say(
                "no Docker engine: every stage runs on this machine without containers "
                "(`make docker` as root installs and starts one)"
            )

    def preprocess(self, images: Path, labels: Path, dataset: Path) -> dict[str, Any]:
        if not self.docker:
            return preprocess_on_host(self.config, images, labels, dataset)
        from earthseg.local.processing import run_processing

        run_processing(
            self.config.local.train_image,
            dict(zip(INPUTS, (images, labels), strict=True)),
            dataset,
            ["preprocess", *self.config.preprocess.options().arguments()],
            self.folder.logs / "preprocess-container.log",
        )
        return dataset_outputs(dataset)

    def train(self, dataset: dict[str, Any], model: Path, training: Path) -> dict[str, Any]:
        channels = channel_folders(Path(dataset["dataset"]))
        with self.job_environment(str(Path(dataset["dataset"]).resolve())) as environment:
            if self.docker:
                artifacts = self._train_in_container(channels, environment)
                extract(artifacts / "model.tar.gz", model)
                extract(artifacts / "output.tar.gz", training, member_prefix="data/")
            else:
                self._train_on_host(channels, model, training, environment)
        tracked = read_model_card(model).tracking
        return {"mlflow_run_id": tracked.run_id} if tracked else {}

    def tune(
        self, dataset: dict[str, Any], model: Path, training: Path, tuning: Path, key: str
    ) -> dict[str, Any]:
        from earthseg.tune.leaderboard import FAILED, PRUNED
        from earthseg.tune.local import TuningJob, tune

        folder = Path(dataset["dataset"])
        with self.job_environment(str(folder.resolve()), "tune", host_network=True) as environment:
            job = TuningJob(
                name=self.config.name,
                channels=channel_folders(folder),
                hyperparameters=self.config.train.hyperparameters,
                environment=environment,
                experiment=self.config.experiment,
                image=self.config.local.train_image if self.docker else None,
            )
            result = tune(self.config.tune, job, tuning, key, self.say)
        _replace_with_copy(result.best_folder / MODEL, model)
        _replace_with_copy(result.best_folder / OUTPUT_DATA, training)
        best = result.best
        outputs = {
            "trials": len(result.trials),
            "pruned": result.count(PRUNED),
            "failed": result.count(FAILED),
            "best trial": best.name,
            result.objective: None if best.objective is None else round(best.objective, 4),
            "mlflow_run_id": best.mlflow_run_id,
            "mlflow_parent_run_id": result.mlflow_parent_run_id,
        }
        return {name: value for name, value in outputs.items() if value is not None}

    @contextmanager
    def job_environment(
        self, dataset: str, stage: str = "train", host_network: bool = False
    ) -> Iterator[dict[str, str]]:
        """The training jobs' environment (dataset location, tracking) for as long as
        they run; a SQLite store served meanwhile (see the module's docstring). A server
        that does not start is a warning: the jobs train untracked. `host_network`: the
        jobs' containers run on the host's network (a tuning's trials), not local mode's."""
        uri = self.config.tracking_uri(local=True)
        experiment = self.config.experiment
        if uri is None or sqlite_file(uri) is None:
            yield job_environment(uri, experiment, dataset)
            return
        with ExitStack() as stack:
            try:
                local_mode = self.docker and not host_network
                host = _local_mode_gateway() if local_mode else "127.0.0.1"
                log_file = self.folder.logs / TRACKING_SERVER_LOG
                url: str | None = stack.enter_context(serve_store(uri, log_file, host))
            except Exception as error:  # no server, no engine, no network: train untracked
                self.say(
                    f"{stage}: warning: cannot serve the tracking store {uri} ({error}); "
                    "training goes on without tracking"
                )
                url = None
            environment = job_environment(url, experiment, dataset)
            yield {**environment, STORE_URI_ENV: uri} if url else environment

    @contextmanager
    def deploy(self, trained: dict[str, Any]) -> Iterator[ScenePredictor]:
        model = Path(trained["model"])
        if not self.docker:
            from earthseg.serve.predictor import load_predictor
            from earthseg.serve.scene import LocalScene

            predictor = load_predictor(model)
            yield lambda scene, threshold: LocalScene(predictor, scene, threshold)
            return
        from earthseg.local.endpoint import local_endpoint
        from earthseg.serve.client import HttpTransport
        from earthseg.serve.scene import RemoteScene

        log_file = self.folder.logs / "deploy-container.log"
        payload_mb = self.config.invoke.max_payload_mb
        with local_endpoint(
            self.config.local.serve_image, model, log_file, self.config.deploy.workers
        ) as endpoint:
            yield lambda scene, threshold: RemoteScene(
                HttpTransport(endpoint.url), scene, threshold, payload_mb
            )

    def _train_in_container(
        self, channels: dict[str, Path], environment: Mapping[str, str]
    ) -> Path:
        """The SDK's local mode; returns the folder holding model.tar.gz and output.tar.gz."""
        from earthseg.aws.resources import TrainingResources
        from earthseg.aws.training import TrainingSpec, run_training

        spec = TrainingSpec(
            image=self.config.local.train_image,
            channels={name: str(path) for name, path in channels.items()},
            hyperparameters=self.config.train.hyperparameters,
            resources=TrainingResources(
                instance_type="local_cpu", instances=self.config.train.instances
            ),
            base_job_name=self.config.name,
            environment=environment,
        )
        result = run_training(None, spec, local_root=self.folder.root / "train-local")
        return Path(result.model_uri).parent

    def _train_on_host(
        self,
        channels: dict[str, Path],
        model: Path,
        training: Path,
        environment: Mapping[str, str],
    ) -> None:
        """`earthseg train` in a process of its own (the toolkit fixes /opt/ml per process)
        on a /opt/ml tree in the run folder."""
        opt_ml = self.folder.root / "opt_ml"
        shutil.rmtree(opt_ml, ignore_errors=True)
        config = opt_ml / "input" / "config"
        config.mkdir(parents=True)
        hyperparameters = self.config.train.hyperparameters.as_strings()
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        data = opt_ml / "input" / "data"
        data.mkdir(parents=True)
        for name, path in channels.items():
            (data / name).symlink_to(path.resolve(), target_is_directory=True)
        command = [sys.executable, "-m", "earthseg.cli", "train", "--base-dir", str(opt_ml)]
        with open(self.folder.logs / "train-process.log", "w") as log_file:
            status = subprocess.run(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **environment},
            ).returncode
        if status != 0:
            failure = opt_ml / FAILURE
            reason = failure.read_text().strip() if failure.exists() else f"exit status {status}"
            raise InputError("training", reason, f"see {log_file.name} in {self.folder.logs}")
        _replace_with_copy(opt_ml / MODEL, model)
        _replace_with_copy(opt_ml / OUTPUT_DATA, training)


def _local_mode_gateway() -> str:
    """This machine's address on the SDK local mode's network, where its containers
    reach it (the network made now when no local-mode job has made it yet)."""
    client = docker_client()
    try:
        listed = client.networks.list(names=[LOCAL_MODE_NETWORK])  # names match in part
        found = [network for network in listed if network.name == LOCAL_MODE_NETWORK]
        network = (
            found[0]
            if found
            else client.networks.create(
                LOCAL_MODE_NETWORK,
                driver="bridge",
                labels={"com.docker.compose.network": LOCAL_MODE_NETWORK},
            )
        )
        network.reload()
        gateway: str = network.attrs["IPAM"]["Config"][0]["Gateway"]
        return gateway
    finally:
        client.close()


def _replace_with_copy(source: Path, target: Path) -> None:
    with atomic_dir(target, replace=True) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
