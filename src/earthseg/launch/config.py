"""`earthseg pipeline --config run.yaml`: what a run does, read from one YAML file.

`run.yaml` at the repository root documents every option with its default. Relative
paths are relative to the config file's folder (as in docker-compose), so a config and
its export can move together. A typo or a wrong value fails before anything runs,
naming the key and the fix; hyperparameters and preprocessing options are checked by
the same code that uses them later.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from earthseg.errors import InputError
from earthseg.launch.endpoints import Serverless
from earthseg.launch.role import ROLE_ENV
from earthseg.preprocess.options import DEFAULT_OPTIONS, PreprocessOptions

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}$"  # fits SageMaker job/endpoint names


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never silently means default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportConfig(Section):
    images: Path
    labels: Path


class PreprocessConfig(Section):
    """`earthseg preprocess`'s options (same defaults), and where it runs on SageMaker."""

    tile_size: int = DEFAULT_OPTIONS.tile_size
    overlap: int = DEFAULT_OPTIONS.overlap
    splits: tuple[float, float, float] = DEFAULT_OPTIONS.splits
    seed: int = DEFAULT_OPTIONS.seed
    min_valid: float = DEFAULT_OPTIONS.min_valid
    all_touched: bool = DEFAULT_OPTIONS.all_touched
    write_tiles: bool = DEFAULT_OPTIONS.write_tiles
    processing: bool = False
    instance_type: str = "ml.m5.xlarge"

    @model_validator(mode="after")
    def _checked(self) -> PreprocessConfig:
        try:
            self.options().check()
        except InputError as error:
            raise ValueError(f"{error.source} {error.problem}. {error.fix}") from None
        return self

    def options(self) -> PreprocessOptions:
        """The options as `build_dataset` takes them."""
        return PreprocessOptions(
            **{field.name: getattr(self, field.name) for field in fields(PreprocessOptions)}
        )

    @field_validator("splits")
    @classmethod
    def _three_shares(cls, shares: tuple[float, float, float]) -> tuple[float, float, float]:
        from earthseg.preprocess.splits import parse_fractions

        try:
            shares = parse_fractions(",".join(str(share) for share in shares))
        except InputError as error:
            raise ValueError(f"{error.problem}. {error.fix}") from None
        if shares[2] == 0:
            raise ValueError(
                "leaves the test split empty, and a run predicts and reports on the test "
                "scenes. Give it a share, e.g. [0.7, 0.15, 0.15]"
            )
        return shares


class TrainConfig(Section):
    image: str | None = None
    instance_type: str = "ml.g5.xlarge"
    instances: int = Field(default=1, ge=1)
    spot: bool = False
    max_run_hours: float = Field(default=24.0, gt=0)
    max_wait_hours: float | None = Field(default=None, gt=0)
    volume_size_gb: int = Field(default=30, ge=1)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hyperparameters")
    @classmethod
    def _known_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        from earthseg.train.hyperparameters import Hyperparameters

        try:
            Hyperparameters.from_mapping(values)
        except InputError as error:
            raise ValueError(f"{error.source}: {error.problem}. {error.fix}") from None
        return values


class ServerlessConfig(Section):
    """A serverless endpoint's size, checked as `earthseg deploy --serverless` checks it."""

    memory_mb: int = Serverless.memory_mb
    max_concurrency: int = Serverless.max_concurrency

    @model_validator(mode="after")
    def _offered(self) -> ServerlessConfig:
        try:
            self.variant()
        except InputError as error:
            raise ValueError(f"{error.problem}. {error.fix}") from None
        return self

    def variant(self) -> Serverless:
        return Serverless(self.memory_mb, self.max_concurrency)


class DeployConfig(Section):
    image: str | None = None
    instance_type: str = "ml.g5.xlarge"
    instances: int = Field(default=1, ge=1)
    serverless: ServerlessConfig | None = None
    workers: int | None = Field(default=None, ge=1)
    keep: bool = False


class InvokeConfig(Section):
    threshold: float | None = Field(default=None, ge=0, le=1)
    max_payload_mb: float = Field(default=6.0, gt=0, le=6)


class AwsConfig(Section):
    region: str | None = None
    profile: str | None = None
    role: str | None = None
    s3: str | None = None


class LocalConfig(Section):
    train_image: str = "earthseg-train:cpu"
    serve_image: str = "earthseg-serve:cpu"
    docker: Literal["auto", "always", "never"] = "auto"


class RunConfig(Section):
    name: str = Field(pattern=NAME_PATTERN)
    run_dir: Path | None = None
    export: ExportConfig
    preprocess: PreprocessConfig = PreprocessConfig()
    train: TrainConfig = TrainConfig()
    deploy: DeployConfig = DeployConfig()
    invoke: InvokeConfig = InvokeConfig()
    aws: AwsConfig = AwsConfig()
    local: LocalConfig = LocalConfig()

    @property
    def folder(self) -> Path:
        """The run folder: everything a run writes goes under it."""
        return self.run_dir or Path("runs") / self.name

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
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        raise InputError(
            path, _problems(error), "correct these keys (run.yaml lists them)"
        ) from None
    base = path.resolve().parent
    export = ExportConfig(images=base / config.export.images, labels=base / config.export.labels)
    run_dir = base / config.run_dir if config.run_dir else base / config.folder
    return config.model_copy(update={"export": export, "run_dir": run_dir})


def _problems(error: ValidationError) -> str:
    """`train.instances: Input should be greater than or equal to 1; ...`."""
    parts = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "is not an option"
        parts.append(f"{key}: {message}")
    return "; ".join(parts)
