"""`earthseg pipeline` on SageMaker: the stages as AWS services, the run folder here.

Preprocessing runs here and uploads the channels (or, with `preprocess.processing`, runs
as a Processing job in the training image on the export uploaded to S3); training is a
training job; the model goes to an endpoint, the test scenes through sagemaker-runtime.
Everything lives under `aws.s3`/<name>/. The artifact and the job's reports are fetched
into the run folder, so the report is made here. The endpoint is deleted at the end
unless `deploy.keep`; a resumed run reuses an endpoint it left InService.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from earthseg.archives import extract
from earthseg.aws import s3
from earthseg.aws.role import execution_role
from earthseg.aws.session import account_id, call, open_session
from earthseg.contracts.manifest import MANIFEST
from earthseg.contracts.processing import INPUTS
from earthseg.contracts.serving import server_environment
from earthseg.pipeline.backends.base import ScenePredictor
from earthseg.pipeline.backends.host import preprocess_on_host
from earthseg.pipeline.config import RunConfig
from earthseg.pipeline.run_folder import RunFolder, digest

ENDPOINT_RECORD = "endpoint"  # state.json entry of an endpoint this run left running
TRAINING_JOB_RECORD = "training job"  # ... of a completed job whose artifacts are not fetched


class SageMakerBackend:
    """The stages on SageMaker, for the account and region of the usual AWS config."""

    mode = "sagemaker"

    def __init__(self, config: RunConfig, folder: RunFolder, say: Callable[[str], None]) -> None:
        config.require_cloud()
        self.config = config
        self.folder = folder
        self.say = say
        self.aws = open_session(config.aws.region, config.aws.profile)
        account_id(self.aws)  # missing or refused credentials fail before any stage
        self.role = execution_role(config.role, "aws.role")
        self.root = s3.parse_s3_uri(str(config.aws.s3), "aws.s3").child(config.name)
        self.images = {"train": str(config.train.image), "serve": str(config.deploy.image)}

    def preprocess(self, images: Path, labels: Path, dataset: Path) -> dict[str, Any]:
        from earthseg.aws.datasets import s3_channels, upload_dataset

        destination = self.root.child("dataset")
        if not self.config.preprocess.processing:
            outputs = preprocess_on_host(self.config, images, labels, dataset)
            uploaded = upload_dataset(self.aws, dataset, destination, self.say)
            return {**outputs, "channels": uploaded.channels}

        from earthseg.aws.processing import run_preprocess_job

        export = self.root.child("export")
        images_uri, labels_uri = (
            s3.upload_folder(self.aws, folder, str(export.child(name)))
            for name, folder in zip(INPUTS, (images, labels), strict=True)
        )
        result = run_preprocess_job(
            self.aws,
            self.images["train"],
            images_uri,
            labels_uri,
            destination.folder,
            self.config.preprocess.options(),
            self.config.preprocess,
            role=self.role,
            name=self.config.name,
            say=self.say,
        )
        s3.download_file(self.aws, str(destination.child(MANIFEST)), dataset / MANIFEST)
        return {
            "dataset": str(dataset),
            "job": result.job_name,
            "channels": s3_channels(self.aws, destination, "the Processing job's output"),
        }

    def train(self, dataset: dict[str, Any], model: Path, training: Path) -> dict[str, Any]:
        from earthseg.aws.training import TrainingSpec, run_training

        settings = self.config.train
        spec = TrainingSpec(
            image=self.images["train"],
            channels=dataset["channels"],
            hyperparameters=settings.hyperparameters,
            resources=settings,
            role=self.role,
            output_uri=str(self.root.child("jobs")),
            base_job_name=self.config.name,
        )
        # A job that completed in an interrupted run is not paid for twice: its record
        # is kept until its artifacts are fetched.
        job_digest = digest(spec.image, dict(spec.channels), settings.model_dump(mode="json"))
        job = self.folder.finished(TRAINING_JOB_RECORD, job_digest)
        if job is None:
            result = run_training(self.aws, spec, say=self.say)
            job = {"job": result.job_name, "model": result.model_uri, "output": result.output_uri}
            self.folder.finish(TRAINING_JOB_RECORD, job_digest, job)
        else:
            self.say(
                f"training job {job['job']}: completed in an earlier run, fetching its artifacts"
            )
        for uri, target, prefix in ((job["model"], model, ""), (job["output"], training, "data/")):
            archive = self.folder.root / "downloads" / Path(uri).name
            extract(s3.download_file(self.aws, uri, archive), target, member_prefix=prefix)
        self.folder.forget(TRAINING_JOB_RECORD)  # the train stage's own record takes over
        return {"model_uri": job["model"], "job": job["job"]}

    @contextmanager
    def deploy(self, trained: dict[str, Any]) -> Iterator[ScenePredictor]:
        from earthseg.aws.endpoints import delete_endpoint, deploy
        from earthseg.aws.invoke import invoke_scene

        endpoint = self._endpoint_left_running(trained["model_uri"])
        if endpoint is None:
            settings = self.config.deploy
            endpoint = deploy(
                self.aws,
                self.images["serve"],
                trained["model_uri"],
                self.role,
                name=self.config.name,
                options=settings,
                environment=server_environment(workers=settings.workers),
                say=self.say,
            )
            self.folder.finish(ENDPOINT_RECORD, trained["model_uri"], {"endpoint": endpoint})
        payload_mb = self.config.invoke.max_payload_mb
        try:
            yield lambda scene, threshold: invoke_scene(
                self.aws, endpoint, scene, threshold, payload_mb
            )
        finally:
            if self.config.deploy.keep:
                self.say(f"endpoint {endpoint} kept: earthseg delete --endpoint {endpoint}")
            else:
                delete_endpoint(self.aws, endpoint, self.say)
                self.folder.forget(ENDPOINT_RECORD)

    def _endpoint_left_running(self, model_uri: str) -> str | None:
        """The endpoint an earlier, interrupted run deployed for this model, if InService."""
        record = self.folder.finished(ENDPOINT_RECORD, model_uri)
        if record is None:
            return None
        name = str(record["endpoint"])
        try:
            status = call(self.aws.client("sagemaker"), "describe_endpoint", EndpointName=name)[
                "EndpointStatus"
            ]
        except ClientError:
            status = "gone"
        if status != "InService":
            self.folder.forget(ENDPOINT_RECORD)
            return None
        self.say(f"endpoint {name}: left InService by an earlier run, reused")
        return name
