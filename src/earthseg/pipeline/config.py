"""`earthseg pipeline --config run.yaml`: what a run does, read from one YAML file.

`run.yaml` at the repository root documents every option with its default. Relative
paths are relative to the config file's folder (as in docker-compose), so a config and
its export can move together. A typo or a wrong value fails before anything runs,
naming the key and the fix: each section is the options model of the code that uses it
(preprocessing, training, endpoints), so a value is checked by the same rule here as on
the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import Field, field_validator, model_validator

from earthseg.aws.names import (
    ENDPOINT,
    MODEL_PACKAGE_GROUP,
    TRAINING_JOB,
    NameRule,
    check_name,
)
from earthseg.aws.resources import EndpointOptions, ProcessingResources, TrainingResources
from earthseg.aws.role import ROLE_ENV
from earthseg.aws.security import Security
from earthseg.contracts.serving import DEFAULT_MAX_PAYLOAD_MB
from earthseg.detect.options import DetectOptions, parse_bbox, parse_dates
from earthseg.errors import InputError
from earthseg.imagery.options import FetchOptions, TransferOptions
from earthseg.preprocess.options import PreprocessOptions
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.tracking import (
    TRACKING_URI_ENV,
    check_cloud_uri,
    check_tracking_uri,
    job_environment,
    local_store_uri,
    sqlite_file,
)
from earthseg.tune.options import TuneConfig
from earthseg.validation import Integer, Number, Options, invalid, validate


class ExportConfig(Options):
    """The ImageLabeler export; without `images`, the scenes are fetched (`imagery`)."""

    labels: Path
    images: Path | None = None


class ImageryConfig(FetchOptions, TransferOptions):
    """`earthseg fetch`'s options, for a run whose export has no images."""

    def options(self) -> FetchOptions:
        """What decides the fetched pixels (the transfer options only change the speed)."""
        return self.part(FetchOptions)

    def transfer(self) -> TransferOptions:
        return self.part(TransferOptions)


class DetectConfig(DetectOptions):
    """`earthseg detect` with the run's model once it is served: over `scenes` (a folder of
    GeoTIFFs), or over scenes fetched for `bbox` and `dates` with `imagery`'s options;
    not run when neither is given."""

    scenes: Path | None = None
    bbox: str | None = Field(None, description="WEST,SOUTH,EAST,NORTH in degrees")
    dates: str | None = Field(None, description="START..END (both included) or one date")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.scenes is not None and (self.bbox or self.dates):
            raise invalid("scenes and bbox/dates are two sources", "give one of them")
        if (self.bbox is None) != (self.dates is None):
            raise invalid("bbox and dates go together", "give both, or neither")
        try:
            if self.bbox is not None and self.dates is not None:
                parse_bbox(self.bbox)
                parse_dates(self.dates)
        except InputError as error:
            raise invalid(f"{error.source}: {error.problem}", error.fix) from None
        return self

    @property
    def enabled(self) -> bool:
        return self.scenes is not None or self.bbox is not None


class PreprocessConfig(PreprocessOptions, ProcessingResources):
    """`earthseg preprocess`'s options (same defaults), and where it runs on SageMaker."""

    @field_validator("splits")
    @classmethod
    def _test_share(cls, shares: tuple[float, float, float]) -> tuple[float, float, float]:
        if shares[2] == 0:
            raise invalid(
                "leaves the test split empty, and a run predicts and reports on the test scenes",
                "give it a share, e.g. [0.7, 0.15, 0.15]",
            )
        return shares

    def options(self) -> PreprocessOptions:
        """The options alone, as `build_dataset` and a Processing job take them (and as
        the dataset's fingerprint names them)."""
        return self.part(PreprocessOptions)


class TrainConfig(TrainingResources):
    """The training job: its resources, image and hyperparameters."""

    image: str | None = None
    hyperparameters: Hyperparameters = Hyperparameters()


class DeployConfig(EndpointOptions):
    """The endpoint: what it runs on, its image and server, whether it outlives the run."""

    image: str | None = None
    workers: Integer | None = Field(None, ge=1)
    keep: bool = False


class EvaluateConfig(ProcessingResources):
    """SageMaker Pipeline: the Processing job that scores the model on the test scenes
    in the serve image."""


class RegisterConfig(Options):
    """SageMaker Pipeline: the Model Registry, and the bar a model must reach to enter it."""

    group: str | None = Field(None, description="model package group (default: the run's name)")
    min_test_iou: Number = Field(0.5, ge=0, le=1, description="the test IoU a model must reach")
    approve: Literal["manual", "auto"] = Field(
        "manual",
        description="manual: versions wait for `earthseg models approve`; auto: approved "
        "when above the bar",
    )

    @field_validator("group")
    @classmethod
    def _group_name(cls, group: str | None) -> str | None:
        if group is not None:
            try:
                check_name(group, (MODEL_PACKAGE_GROUP,), "group")
            except InputError as error:
                raise invalid(error.problem, error.fix) from None
        return group


class InvokeConfig(Options):
    threshold: Number | None = Field(None, ge=0, le=1)
    max_payload_mb: Number = Field(DEFAULT_MAX_PAYLOAD_MB, gt=0, le=DEFAULT_MAX_PAYLOAD_MB)


class TrackingConfig(Options):
    """MLflow tracking of the training job (earthseg.train.tracking)."""

    uri: str | None = Field(
        None,
        description="sqlite:///path/mlflow.db, http(s)://host:port or a SageMaker managed "
        "MLflow ARN; default $MLFLOW_TRACKING_URI, else for --local runs "
        "sqlite:///<runs folder>/mlflow.db",
    )
    experiment: str | None = Field(None, description="default: the run's name")

    @field_validator("uri")
    @classmethod
    def _tracking_uri(cls, uri: str | None) -> str | None:
        if uri is not None:
            try:
                check_tracking_uri(uri)
            except InputError as error:
                raise invalid(error.problem, error.fix) from None
        return uri


class AwsConfig(Security):
    """Where and as whom SageMaker runs go, and what a locked-down account demands of them
    (earthseg.aws.security)."""

    region: str | None = None
    profile: str | None = None
    role: str | None = None
    s3: str | None = None


class LocalConfig(Options):
    train_image: str = "earthseg-train:cpu"
    serve_image: str = "earthseg-serve:cpu"
    docker: Literal["auto", "always", "never"] = "auto"


class RunConfig(Options):
    name: str
    run_dir: Path | None = None
    export: ExportConfig
    imagery: ImageryConfig = ImageryConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    train: TrainConfig = TrainConfig()
    deploy: DeployConfig = DeployConfig()
    invoke: InvokeConfig = InvokeConfig()
    detect: DetectConfig = DetectConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # `register:` in run.yaml; not the field's name, which would hide the class's ABC `register`
    registration: RegisterConfig = Field(RegisterConfig(), alias="register")
    tracking: TrackingConfig = TrackingConfig()
    tune: TuneConfig = TuneConfig()
    aws: AwsConfig = AwsConfig()
    local: LocalConfig = LocalConfig()

    @model_validator(mode="after")
    def _names_fit(self) -> Self:
        """The run's name makes every SageMaker name the run will create, whole."""
        try:
            check_name(self.name, self.name_rules, "name")
        except InputError as error:
            raise invalid(error.problem, error.fix, ("name",)) from None
        return self

    @property
    def name_rules(self) -> tuple[NameRule, ...]:
        """The kinds of SageMaker resources a run of this config creates."""
        return (TRAINING_JOB, ENDPOINT, MODEL_PACKAGE_GROUP)

    @property
    def model_package_group(self) -> str:
        """Where a SageMaker Pipeline of this run registers its models."""
        return self.registration.group or self.name

    @property
    def folder(self) -> Path:
        """The run folder: everything a run writes goes under it."""
        return self.run_dir or Path("runs") / self.name

    @property
    def experiment(self) -> str:
        """The MLflow experiment the run's training is tracked in (and the registered
        model its versions go to)."""
        return self.tracking.experiment or self.name

    def tracking_uri(self, local: bool) -> str | None:
        """Where the training job tracks: `tracking.uri`, else $MLFLOW_TRACKING_URI, else
        for a local run the store in the runs folder (beside the run folder); None: a
        SageMaker run without either is not tracked."""
        uri = self.tracking.uri or os.environ.get(TRACKING_URI_ENV)
        if uri:
            return uri
        return local_store_uri(self.folder.parent) if local else None

    def cloud_environment(self, dataset: Any) -> dict[str, Any]:
        """The environment of the run's training job on SageMaker: the dataset's location
        (`dataset`: an S3 URI, or the pipeline's variable holding it) and, when the run
        is tracked, where to."""
        return job_environment(self.tracking_uri(local=False), self.experiment, dataset)

    def require_cloud(self) -> None:
        """What a run on SageMaker needs beyond a local one, checked before it starts."""
        missing = [
            (key, fix)
            for key, value, fix in (
                ("train.image", self.train.image, "the training image URI `make push` printed"),
                ("deploy.image", self.deploy.image, "the serve image URI `make push` printed"),
                ("aws.s3", self.aws.s3, "an s3://bucket/prefix the role can read and write"),
                ("aws.role", self.role, f"a SageMaker execution role ARN (or set {ROLE_ENV})"),
            )
            if not value
        ]
        if missing:
            keys = ", ".join(key for key, _ in missing)
            fixes = "; ".join(f"{key}: {fix}" for key, fix in missing)
            raise InputError("the config", f"does not set {keys} for a SageMaker run", fixes)
        uri = self.tracking_uri(local=False)
        if uri:
            source = "tracking.uri" if self.tracking.uri else TRACKING_URI_ENV
            check_cloud_uri(uri, source)
            if self.aws.network_isolation:
                raise InputError(
                    "aws.network_isolation",
                    f"cuts the training job off from the MLflow tracking at {uri} ({source})",
                    "drop network_isolation, or leave tracking unset for SageMaker runs",
                )

    @property
    def role(self) -> str | None:
        return self.aws.role or os.environ.get(ROLE_ENV)


def load_config(path: Path) -> RunConfig:
    """The run described by a YAML file, relative paths resolved against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "does not exist", "pass the run's YAML file to --config") from None
    except yaml.YAMLError as error:
        raise InputError(path, f"is not valid YAML ({error})", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise InputError(path, "is not a mapping of options", "start from run.yaml")
    config = validate(
        RunConfig, raw, source=str(path), fix="correct these keys (run.yaml lists them)"
    )
    base = path.resolve().parent
    images = config.export.images
    export = ExportConfig(
        labels=base / config.export.labels, images=base / images if images else None
    )
    run_dir = base / config.run_dir if config.run_dir else base / config.folder
    detect = config.detect
    if detect.scenes is not None:
        detect = detect.model_copy(update={"scenes": base / detect.scenes})
    tracking = config.tracking
    database = sqlite_file(tracking.uri or "")
    if database is not None:
        tracking = tracking.model_copy(update={"uri": f"sqlite:///{base / database}"})
    return config.model_copy(
        update={"export": export, "run_dir": run_dir, "detect": detect, "tracking": tracking}
    )
