"""Hyperparameter tuning on SageMaker: a run's `tune:` section as a HyperparameterTuner, and
its trials read back as a leaderboard.

The tuner drives the run's own ModelTrainer (`earthseg.aws.pipeline_definition.run_trainer`:
the training image, its instances, spot and checkpoints, its environment), so a trial is
the training job a single training would have been, on other values. It searches with
SageMaker's Bayesian strategy for the objective's metric (`validation:iou`) as the image's
metric lines print it, scraped with the package's metric definitions; with
`tune.early_stopping`, SageMaker stops trials that do worse than the others at the same
epoch; `tune.warm_start` names earlier tuning jobs whose trials this one learns from
(IdenticalDataAndAlgorithm: same image, same dataset). The same tuner serves a SageMaker
Pipeline's Tune step (under a PipelineSession) and a tuning job started directly.

Searched values travel as the static ones do, JSON-encoded strings ("0.001", "true"),
which the training image reads back (`Hyperparameters.from_mapping`).

A locked-down account's settings reach the trials as they reach a training job: the
SDK's tuner carries the trainer's VPC, output key and tags over, and `Tuner` adds what
it drops (network isolation, inter-container encryption, the volume's key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from earthseg.aws.names import SAGEMAKER_NAME
from earthseg.aws.sdk import sdk_default_region
from earthseg.errors import InputError
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from earthseg.train.tracking import TRAINING_JOB_TAG

with sdk_default_region():
    from sagemaker.core.parameter import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
        ParameterRange,
    )
    from sagemaker.core.shapes import (
        HyperParameterTuningJobWarmStartConfig,
        ParentHyperParameterTuningJob,
    )
    from sagemaker.train.tuner import HyperparameterTuner, WarmStartTypes

if TYPE_CHECKING:
    import boto3
    from sagemaker.train import ModelTrainer

    from earthseg.pipeline.config import RunConfig
    from earthseg.tune.leaderboard import Trial
    from earthseg.tune.options import TuneConfig

STRATEGY = "Bayesian"
SCALING = {"linear": "Linear", "log": "Logarithmic"}
WARM_START = WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM.value
TUNING_JOB_NAME_LENGTH = 32  # SageMaker's longest tuning job name
EPOCH_METRIC = "epoch"  # in METRIC_DEFINITIONS: the last epoch a trial printed
# A trial's TrainingJobStatus as the leaderboard says it; SageMaker stops the trials its
# early stopping gives up on. Trials still running have no result and are left out.
TRIAL_STATES = {
    "Completed": "complete",
    "Stopped": "pruned",
    "Stopping": "pruned",
    "Failed": "failed",
}


def encode(value: object) -> str:
    """A hyperparameter's value as a training job receives it: JSON, as a string."""
    return json.dumps(value)


def decode(value: str) -> Any:
    """A value `encode` made (or SageMaker chose in a range) back as JSON's."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def static_hyperparameters(config: RunConfig) -> dict[str, str]:
    """The run's hyperparameters the tuning leaves as they are (every one not searched),
    encoded. All of them are given, so that a warm start's parents and children always
    count as many static and searched hyperparameters as SageMaker requires."""
    return {
        name: encode(value)
        for name, value in config.train.hyperparameters.model_dump().items()
        if name not in config.tune.ranges
    }


def parameter_ranges(tune: TuneConfig) -> dict[str, ParameterRange]:
    """`tune.ranges` as the SDK's ranges: `{values}` categorical (encoded), `{min, max}`
    integer where the hyperparameter is, continuous otherwise, on a linear or
    logarithmic scale."""
    ranges: dict[str, ParameterRange] = {}
    for name, search in tune.ranges.items():
        if search.values is not None:
            ranges[name] = CategoricalParameter([encode(value) for value in search.values])
            continue
        assert search.min is not None and search.max is not None  # ParameterRange checks
        scaling = SCALING[search.scale]
        if tune.is_integer(name):
            ranges[name] = IntegerParameter(int(search.min), int(search.max), scaling)
        else:
            ranges[name] = ContinuousParameter(float(search.min), float(search.max), scaling)
    return ranges


def warm_start_config(parents: Sequence[str]) -> HyperParameterTuningJobWarmStartConfig | None:
    """A warm start from the tuning jobs named `parents` (None: none), their names
    checked: SageMaker takes names, not ARNs (at most 5: `TuneConfig` keeps to that)."""
    if not parents:
        return None
    source = "tune.warm_start"
    for name in parents:
        if name.startswith("arn:"):
            raise InputError(
                source,
                f"{name!r} is an ARN; SageMaker takes the tuning job's name",
                "give the part after 'hyper-parameter-tuning-job/'",
            )
        if len(name) > TUNING_JOB_NAME_LENGTH or not SAGEMAKER_NAME.match(name):
            raise InputError(
                source,
                f"{name!r} is not a tuning job's name (letters, digits and hyphens, at most "
                f"{TUNING_JOB_NAME_LENGTH} characters)",
                "copy the name `earthseg tune` printed when the earlier tuning came home "
                "(its trials' names start with it), or from "
                "`aws sagemaker list-hyper-parameter-tuning-jobs`",
            )
    if len(set(parents)) != len(parents):
        raise InputError(source, "names a tuning job twice", "name each earlier tuning once")
    return HyperParameterTuningJobWarmStartConfig(
        parent_hyper_parameter_tuning_jobs=[
            ParentHyperParameterTuningJob(hyper_parameter_tuning_job_name=name) for name in parents
        ],
        warm_start_type=WARM_START,
    )


def check_tuning(tune: TuneConfig) -> None:
    """What SageMaker would refuse, or a tuning could not do, as an InputError before
    anything is sent: nothing to search, a warm start's malformed name."""
    tune.require_ranges()
    warm_start_config(tune.warm_start)


class Tuner(HyperparameterTuner):
    """The SDK's tuner, whose trials are the ModelTrainer's training job in full.

    Its TrainingJobDefinition (sagemaker.train.tuner, SDK 3.27) takes the trainer's VPC
    and OutputDataConfig but drops EnableNetworkIsolation,
    EnableInterContainerTrafficEncryption and ResourceConfig.VolumeKmsKeyId; a locked-down
    account refuses trials without them.
    """

    def _build_training_job_definition(self, inputs: Any) -> Any:
        definition = super()._build_training_job_definition(inputs)
        trainer = self.model_trainer
        networking = trainer.networking
        if networking is not None:
            if networking.enable_network_isolation is not None:
                definition.enable_network_isolation = networking.enable_network_isolation
            encryption = networking.enable_inter_container_traffic_encryption
            if encryption is not None:
                definition.enable_inter_container_traffic_encryption = encryption
        volume_key = trainer.compute.volume_kms_key_id if trainer.compute else None
        if volume_key is not None:
            definition.resource_config.volume_kms_key_id = volume_key
        return definition


def run_tuner(config: RunConfig, trainer: ModelTrainer) -> Tuner:
    """The run's tuner over `trainer` (whose hyperparameters are the static ones): `.tune(
    inputs=channels)` starts a tuning job, or under a PipelineSession gives a Tune step's
    arguments. An InputError, before anything is sent, when there is nothing to search
    or a warm start's name is malformed. The tuning job is tagged as the trainer's jobs
    are (`aws.tags` and the run's name)."""
    tune = config.tune
    check_tuning(tune)
    return Tuner(
        model_trainer=trainer,
        objective_metric_name=tune.metric_name,
        objective_type="Maximize" if tune.maximize else "Minimize",
        hyperparameter_ranges=parameter_ranges(tune),
        metric_definitions=[dict(item) for item in METRIC_DEFINITIONS],
        strategy=STRATEGY,
        max_jobs=tune.trials,
        max_parallel_jobs=tune.parallel,
        early_stopping_type="Auto" if tune.early_stopping else "Off",
        warm_start_config=warm_start_config(tune.warm_start),
        base_tuning_job_name=config.name,
        tags=config.aws.tag_list(config.name),
    )


# -- the trials, read back ----------------------------------------------------------


def list_trials(aws: boto3.Session, tuning_job: str) -> list[dict[str, Any]]:
    """Every training job `tuning_job` launched (ListTrainingJobsForHyperParameterTuningJob's
    summaries), oldest first. Not sorted by objective: SageMaker would then leave out the
    trials without one (failed early), which a leaderboard shows too."""
    from earthseg.aws.jobs import paged

    trials = paged(
        aws.client("sagemaker"),
        "list_training_jobs_for_hyper_parameter_tuning_job",
        "TrainingJobSummaries",
        f"the trials of tuning job {tuning_job}",
        HyperParameterTuningJobName=tuning_job,
        SortBy="CreationTime",
        SortOrder="Ascending",
        MaxResults=100,
    )
    return list(trials)


def trial(
    summary: Mapping[str, Any],
    description: Mapping[str, Any] | None = None,
    mlflow_run_id: str | None = None,
) -> Trial | None:
    """A leaderboard row from a trial's summary (HyperParameterTrainingJobSummary) and,
    for the epochs it ran, its DescribeTrainingJob (the last `epoch` metric it printed);
    None for a trial still running."""
    from earthseg.tune.leaderboard import Trial

    state = TRIAL_STATES.get(str(summary.get("TrainingJobStatus")))
    if state is None:
        return None
    final = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    metrics = {
        item["MetricName"]: item["Value"]
        for item in (description or {}).get("FinalMetricDataList", [])
    }
    return Trial(
        name=str(summary["TrainingJobName"]),
        hyperparameters={
            name: decode(value) for name, value in summary.get("TunedHyperParameters", {}).items()
        },
        objective=float(final["Value"]) if "Value" in final else None,
        state=state,
        epochs=int(metrics.get(EPOCH_METRIC, 0)),
        mlflow_run_id=mlflow_run_id,
    )


def trial_runs(uri: str, parent_run: str) -> dict[str, str]:
    """Each trial's MLflow run id by its training job's name: the children of
    `parent_run` in the store at `uri`. MLflow's errors pass through."""
    from mlflow import MlflowClient

    from earthseg.train.tracking import PARENT_TAG

    client = MlflowClient(uri)
    experiment = client.get_run(parent_run).info.experiment_id
    runs = client.search_runs(
        [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run}'", max_results=1000
    )
    return {
        run.data.tags[TRAINING_JOB_TAG]: run.info.run_id
        for run in runs
        if TRAINING_JOB_TAG in run.data.tags
    }
