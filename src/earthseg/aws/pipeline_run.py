"""`earthseg pipeline` on SageMaker: the run's SageMaker Pipeline upserted under the run's
name, an execution started and followed step by step, and, when it ends, its results
brought into the run folder (dataset manifest, model and card, training metrics and
figures, evaluation, masks) and reported on as a local run is.

`earthseg tune` runs the same pipeline with a Tune step (a SageMaker tuning job over
`tune:`) in place of Train: the best trial's model is the one evaluated and registered,
and the trials come home as a leaderboard (run folder's tuning/). When the run is
tracked, the launcher opens one MLflow run that every trial's run is a child of, and
closes it when the execution ends.

The laptop need not stay awake: `--no-wait` leaves the execution running, and
`earthseg pipeline --config run.yaml --follow` (or `--status RUN`) picks it up later.
Everything lives under `aws.s3`/<name>/: the export as uploaded (export/), each training
job's output (jobs/), and per execution the dataset, test scenes, checkpoints and
evaluation. In a locked-down account (`aws:`), the export is uploaded SSE-KMS under the
run's key, and the pipeline and its model package group are tagged as its steps are; an
execution that fails shows the tail of its failed job's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from earthseg.archives import extract
from earthseg.atomic import atomic_file
from earthseg.aws import jobs, s3
from earthseg.aws.logs import LogKind, show_failure_logs
from earthseg.aws.session import account_id, call
from earthseg.contracts.processing import IMAGES, LABELS
from earthseg.errors import InputError
from earthseg.pipeline.run_folder import RunLayout

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from earthseg.aws.pipeline_definition import PipelineInputs
    from earthseg.pipeline.config import RunConfig
    from earthseg.tune.parent_run import ParentRun

DEFINITION_FILE = "pipeline.json"  # in the run folder: what goes to SageMaker
EXECUTION_FILE = "execution.json"  # in the run folder: the execution last started
EXECUTION_ENDED = ("Succeeded", "Failed", "Stopped")
POLL_S = jobs.POLL_S
FAILED_TRIALS_SHOWN = 3  # a failed tuning's trials whose logs are shown (they often fail alike)
PARENT_RUN_STATUS = {"Succeeded": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}


def pipeline_inputs(config: RunConfig) -> PipelineInputs:
    """Where the run's export goes in S3 (`aws.s3`/<name>/export/{labels,images}/)."""
    from earthseg.aws.pipeline_definition import PipelineInputs

    root = s3.parse_s3_uri(str(config.aws.s3), "aws.s3").child(config.name)
    export = root.child("export")
    images = export.child(IMAGES).folder if config.export.images is not None else None
    return PipelineInputs(root=root, labels_uri=export.child(LABELS).folder, images_uri=images)


def define(
    config: RunConfig, aws: boto3.Session, *, offline: bool = False, tuning: bool = False
) -> Pipeline:
    """The run's Pipeline object, on a PipelineSession of `aws` (`offline`: no AWS call at
    all, the image digests left out of the registered versions' metadata; `tuning`: a
    Tune step in place of Train)."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from earthseg.aws.pipeline_definition import build_pipeline

    inputs = pipeline_inputs(config)
    session = PipelineSession(
        boto_session=aws,
        default_bucket=inputs.root.bucket,
        default_bucket_prefix=inputs.root.key or None,
    )
    return build_pipeline(
        config,
        inputs,
        session,
        str(config.role),
        lineage(config, None if offline else aws),
        tuning=tuning,
    )


def lineage(config: RunConfig, aws: boto3.Session | None) -> dict[str, Any]:
    """What a registered version records of how it was made and is known before the run:
    the run, the images (with their ECR digests), the source commit. The dataset's digest,
    its imagery and the training job are added in the definition, from the steps."""
    from earthseg.aws.registry import image_digest, image_reference, lineage_metadata, source_commit

    def image(uri: str | None) -> str:
        digest = image_digest(aws, str(uri)) if aws is not None else None
        return image_reference(str(uri), digest)

    return lineage_metadata(
        run=config.name,
        train_image=image(config.train.image),
        serve_image=image(config.deploy.image),
        commit=source_commit(),
    )


def upload_export(
    config: RunConfig, aws: boto3.Session, say: Callable[[str], None] = print
) -> None:
    """The export's folders to where the pipeline's parameters point by default."""
    inputs = pipeline_inputs(config)
    uploads = {inputs.labels_uri: config.export.labels}
    if inputs.images_uri is not None and config.export.images is not None:
        uploads[inputs.images_uri] = config.export.images
    for uri, local in uploads.items():
        say(f"uploading {local} to {uri}")
        s3.upload_folder(aws, Path(local), uri, config.aws.s3_encryption())


def write_definition(definition: dict[str, Any], folder: Path) -> Path:
    """The definition as SageMaker receives it, indented for reading, in the run folder,
    and its step graph drawn beside it (pipeline.png) where matplotlib is installed."""
    path = Path(folder) / DEFINITION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as partial:
        partial.write_text(json.dumps(definition, indent=2) + "\n")
    try:
        from earthseg.aws.pipeline_graph import draw_graph

        draw_graph(path, path.with_suffix(".png"))
    except ImportError:  # the launcher alone (the `aws` extra) has no matplotlib
        pass
    return path


def run_on_sagemaker(
    config: RunConfig,
    *,
    dry_run: bool = False,
    wait: bool = True,
    tuning: bool = False,
    say: Callable[[str], None] = print,
) -> Path | None:
    """`earthseg pipeline --config run.yaml`: define, upload the export, upsert, start,
    follow, fetch, report. Returns the report's folder (None: not waited for).
    `tuning` (`earthseg tune`): a Tune step in place of Train, its trials children of one
    MLflow run when the run is tracked."""
    from earthseg.aws.pipeline_definition import PARENT_RUN_PARAMETER, prepare_note
    from earthseg.aws.registry import ensure_group
    from earthseg.aws.session import open_session

    config.require_cloud()
    if tuning:
        from earthseg.aws.tuning import check_tuning

        check_tuning(config.tune)
    folder = Path(config.folder)
    if config.detect.enabled:
        say(
            "detect: not part of the SageMaker Pipeline (--local runs only); run it with the "
            "registered model: earthseg detect --endpoint NAME or --transform IMAGE"
        )
    note = prepare_note(config)
    if note:
        say(note)
    if dry_run:
        pipeline = define(
            config,
            boto3.Session(region_name=config.aws.region or "us-east-1"),
            offline=True,
            tuning=tuning,
        )
        path = write_definition(json.loads(pipeline.definition()), folder)
        say(f"pipeline {config.name}: definition written to {path} (nothing was sent to AWS)")
        return None
    aws = open_session(config.aws.region, config.aws.profile)
    account_id(aws)  # missing or refused credentials fail before anything is uploaded
    pipeline = define(config, aws, tuning=tuning)
    definition = json.loads(pipeline.definition())
    path = write_definition(definition, folder)
    upload_export(config, aws, say)
    tags = config.aws.tag_list(config.name)
    ensure_group(aws, config.model_package_group, f"models of earthseg run {config.name}", tags)
    existing = deployed_definition(aws, config.name)
    parent = open_parent_run(config, say) if tuning else parent_run(config, say)
    own = {PARENT_RUN_PARAMETER: parent.run_id} if parent.run_id else {}
    try:
        if existing is not None and same_steps(existing, definition):
            # What changed between runs are parameter values: the pipeline stays as it
            # is, and this execution carries them.
            values = changed_parameters(existing, definition)
            shown = ", ".join(f"{key}={value}" for key, value in values.items()) or "the defaults"
            say(f"pipeline {config.name}: unchanged; this execution runs with {shown}")
            execution = pipeline.start(parameters={**values, **own} or None)
        else:
            pipeline.upsert(
                role_arn=str(config.role), description=f"earthseg run {config.name}", tags=tags
            )
            execution = pipeline.start(parameters=own or None)
    except ClientError as error:
        parent.finish((), None, config.tune.objective, None, "FAILED")
        raise jobs.refused(error, f"pipeline {config.name}") from None
    arn = str(execution.arn)
    _remember(folder, arn)
    say(f"pipeline {config.name}: definition {path}; execution {arn}")
    if not wait:
        say(
            "left running: earthseg pipeline --config <run.yaml> --follow "
            f"(or --status {config.name})"
        )
        return None
    return follow_and_fetch(config, aws, arn, say)


def deployed_definition(aws: boto3.Session, name: str) -> dict[str, Any] | None:
    """The definition pipeline `name` has in SageMaker, or None when there is none."""
    try:
        described = call(aws.client("sagemaker"), "describe_pipeline", PipelineName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ResourceNotFound",
            "ValidationException",
        ):
            return None
        raise jobs.refused(error, f"pipeline {name}") from None
    return dict(json.loads(described["PipelineDefinition"]))


def same_steps(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two definitions differ at most in their parameters' default values."""

    def steps(definition: dict[str, Any]) -> Any:
        parameters = [
            {key: value for key, value in item.items() if key != "DefaultValue"}
            for item in definition.get("Parameters", [])
        ]
        return {**definition, "Parameters": parameters}

    return bool(steps(one) == steps(other))


def changed_parameters(deployed: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The parameter values `wanted` (this run.yaml) has and the deployed defaults do not."""
    defaults = {item["Name"]: item.get("DefaultValue") for item in deployed.get("Parameters", [])}
    return {
        item["Name"]: item["DefaultValue"]
        for item in wanted.get("Parameters", [])
        if "DefaultValue" in item and defaults.get(item["Name"]) != item["DefaultValue"]
    }


def parent_run(config: RunConfig, say: Callable[[str], None] = print) -> ParentRun:
    """The tuning's MLflow run (earthseg.tune.parent_run), not yet opened: nothing when
    the run is not tracked; a warning, and the trials tracked without a parent, when the
    store cannot be reached from here."""
    from earthseg.tune.parent_run import ParentRun

    return ParentRun(config.tracking_uri(local=False), config.experiment, say)


def open_parent_run(config: RunConfig, say: Callable[[str], None] = print) -> ParentRun:
    """`parent_run`, opened with the tuning's settings as its params."""
    tune = config.tune
    parent = parent_run(config, say)
    parent.start(
        f"{config.name} tuning",
        {
            "trials": tune.trials,
            "parallel": tune.parallel,
            "objective": tune.objective,
            "early_stopping": tune.early_stopping,
            "ranges": {
                name: item.model_dump(exclude_none=True) for name, item in tune.ranges.items()
            },
            "warm_start": tune.warm_start,
        },
    )
    if parent.run_id is not None:
        say(f"MLflow run {parent.run_id}: the tuning's trials are its children")
    return parent


def execution_parent_run(aws: boto3.Session, arn: str) -> str | None:
    """The MLflow run id execution `arn`'s trials are children of (None: none)."""
    from earthseg.aws.pipeline_definition import PARENT_RUN_PARAMETER

    client = aws.client("sagemaker")
    given = call(client, "list_pipeline_parameters_for_execution", PipelineExecutionArn=arn)
    values = {item["Name"]: item["Value"] for item in given.get("PipelineParameters", [])}
    return values.get(PARENT_RUN_PARAMETER) or None


def finish_parent_run(
    config: RunConfig, parent: ParentRun, leaderboard: Path | None, status: str
) -> None:
    """The tuning's outcome on its MLflow run (each trial's run tagged, the best, the
    leaderboard), and the run closed as the execution ended (`status`: SageMaker's)."""
    from earthseg.tune.leaderboard import read_leaderboard

    board = read_leaderboard(leaderboard) if leaderboard is not None else None
    trials = board.trials if board is not None else ()
    for trial in trials:
        parent.close_trial(trial)
    parent.finish(
        trials,
        board.best if board is not None else None,
        config.tune.objective,
        leaderboard,
        PARENT_RUN_STATUS.get(status, "FAILED"),
    )


def follow_and_fetch(
    config: RunConfig, aws: boto3.Session, arn: str | None, say: Callable[[str], None] = print
) -> Path:
    """Follow execution `arn` (None: the one this run folder started last, else the
    pipeline's latest) to its end, then bring its results home and write the report.
    A tuning's MLflow run gets its outcome and is closed as the execution ended."""
    from earthseg.aws.pipeline_definition import TUNE

    arn = arn or _remembered(Path(config.folder)) or latest_execution(aws, config.name)
    description = follow_execution(aws, arn, say)
    status = description["PipelineExecutionStatus"]
    steps = execution_steps(aws, arn)
    results = step_results(aws, steps)
    parent = parent_run(config, say)
    parent.run_id = execution_parent_run(aws, arn)
    leaderboard = None
    try:
        report = fetch_results(config, aws, results, say, parent_run=parent.run_id)
        leaderboard = RunLayout(Path(config.folder)).tuning if TUNE in results else None
    finally:
        finish_parent_run(config, parent, leaderboard, status)
    if status != "Succeeded":
        failed = failed_jobs(aws, steps)
        for kind, name in failed:
            show_failure_logs(aws, kind, name, say)
        logs = "".join(f"; its log: earthseg logs --job {name}" for _, name in failed)
        raise InputError(
            f"pipeline execution {arn}",
            f"ended {status}: {_failure(description, steps)}",
            f"the report of what did finish is in {report}; correct the cause and run again "
            f"(finished preprocessing is reused from the cache){logs}",
        )
    return report


def failed_jobs(aws: boto3.Session, steps: list[dict[str, Any]]) -> list[tuple[LogKind, str]]:
    """The training and processing jobs behind the execution's failed steps (a failed
    Tune step: its first failed trials), what kind of log each left, and its name."""
    kinds: dict[str, LogKind] = {"TrainingJob": "training", "ProcessingJob": "processing"}
    failed: list[tuple[LogKind, str]] = []
    for step in steps:
        if step.get("StepStatus") != "Failed":
            continue
        metadata = step.get("Metadata", {})
        for key, kind in kinds.items():
            if key in metadata:
                failed.append((kind, _arn_name(metadata[key]["Arn"])))
        if "TuningJob" in metadata:
            failed.extend(("training", name) for name in _failed_trials(aws, metadata))
    return failed


def _failed_trials(aws: boto3.Session, metadata: dict[str, Any]) -> list[str]:
    """The first failed trials of a Tune step's tuning job (none when they cannot be
    listed: the step's own reason is said anyway)."""
    from earthseg.aws.tuning import list_trials

    try:
        trials = list_trials(aws, _arn_name(metadata["TuningJob"]["Arn"]))
    except InputError:
        return []
    names = [trial["TrainingJobName"] for trial in trials if trial["TrainingJobStatus"] == "Failed"]
    return names[:FAILED_TRIALS_SHOWN]


def _arn_name(arn: Any) -> str:
    return str(arn).rsplit("/", 1)[-1]


def follow_execution(aws: boto3.Session, arn: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Poll until the execution ends, one line per change of any step's state."""
    client = aws.client("sagemaker")

    def describe() -> dict[str, Any]:
        description = dict(call(client, "describe_pipeline_execution", PipelineExecutionArn=arn))
        description["steps"] = execution_steps(aws, arn)
        return description

    return jobs.follow(
        describe,
        lambda described: _steps_line(described),
        lambda described: described["PipelineExecutionStatus"] in EXECUTION_ENDED,
        say,
        f"pipeline execution {arn}",
        "earthseg pipeline --config <run.yaml> --follow picks it up again",
    )


def execution_steps(aws: boto3.Session, arn: str) -> list[dict[str, Any]]:
    """The execution's steps, oldest first."""
    steps = jobs.paged(
        aws.client("sagemaker"),
        "list_pipeline_execution_steps",
        "PipelineExecutionSteps",
        f"the steps of pipeline execution {arn}",
        PipelineExecutionArn=arn,
        SortOrder="Ascending",
    )
    return list(steps)


def latest_execution(aws: boto3.Session, name: str) -> str:
    """The ARN of pipeline `name`'s most recent execution."""
    client = aws.client("sagemaker")
    try:
        page = call(
            client,
            "list_pipeline_executions",
            PipelineName=name,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except ClientError as error:
        raise InputError(
            f"pipeline {name}", f"cannot be listed ({error})", "check the run's name and region"
        ) from None
    summaries = page.get("PipelineExecutionSummaries", [])
    if not summaries:
        raise InputError(
            f"pipeline {name}", "has no execution", "start one: earthseg pipeline --config run.yaml"
        )
    return str(summaries[0]["PipelineExecutionArn"])


def status_lines(aws: boto3.Session, name: str) -> list[str]:
    """`earthseg pipeline --status RUN`: the latest execution and each of its steps."""
    arn = latest_execution(aws, name)
    description = call(
        aws.client("sagemaker"), "describe_pipeline_execution", PipelineExecutionArn=arn
    )
    lines = [f"{arn}: {description['PipelineExecutionStatus']}"]
    for step in execution_steps(aws, arn):
        line = f"  {step['StepName']}: {step.get('StepStatus', '?')}"
        if step.get("CacheHitResult"):
            line += " (cached)"
        if step.get("FailureReason"):
            line += f" - {step['FailureReason']}"
        lines.append(line)
    return lines


def step_results(aws: boto3.Session, steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The job description (Describe*Job) behind each step that succeeded, by step name.
    A Tune step gives its tuning job's (DescribeHyperParameterTuningJob) however it ended,
    for the leaderboard of its trials, and its best trial's DescribeTrainingJob as
    Train's: the model carried on, as a training's is."""
    from earthseg.aws.pipeline_definition import TRAIN

    client = aws.client("sagemaker")
    results = {}
    kinds = (  # step metadata, Describe* call, its name argument
        ("ProcessingJob", "processing_job", "ProcessingJobName"),
        ("TrainingJob", "training_job", "TrainingJobName"),
        ("TuningJob", "hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
    )
    for step in steps:
        metadata = step.get("Metadata", {})
        succeeded = step.get("StepStatus") == "Succeeded"
        for kind, api, key in kinds:
            if kind not in metadata or not (succeeded or kind == "TuningJob"):
                continue
            name = str(metadata[kind]["Arn"]).rsplit("/", 1)[-1]
            results[step["StepName"]] = dict(call(client, f"describe_{api}", **{key: name}))
            if kind == "TuningJob" and succeeded:
                best = results[step["StepName"]]["BestTrainingJob"]["TrainingJobName"]
                results[TRAIN] = dict(call(client, "describe_training_job", TrainingJobName=best))
    return results


def fetch_results(
    config: RunConfig,
    aws: boto3.Session,
    results: dict[str, dict[str, Any]],
    say: Callable[[str], None] = print,
    *,
    parent_run: str | None = None,
) -> Path:
    """The finished steps' outputs into the run folder, and the report written from them.
    `results`: each finished step's job description (DescribeProcessingJob,
    DescribeTrainingJob, DescribeHyperParameterTuningJob), as SageMaker or a local
    pipeline execution gives them (`step_results`). A tuning's trials become the
    leaderboard, each linked to its MLflow run when `parent_run` names their parent."""
    from earthseg.aws.pipeline_definition import EVALUATE, PREPARE, TRAIN, TUNE
    from earthseg.contracts import processing as mounts

    layout = RunLayout(Path(config.folder))
    tuning = None
    if TUNE in results:
        tuning = fetch_leaderboard(config, aws, results[TUNE], parent_run, say)
    downloads = layout.root / "downloads"
    test = layout.root / "test"
    if PREPARE in results:
        outputs = _processing_outputs(results[PREPARE])
        _download_prefix(
            aws, outputs[mounts.DATASET_OUTPUT], layout.dataset, only=("manifest.json",)
        )
        _download_prefix(aws, outputs[mounts.TEST_OUTPUT], test)
        say(f"dataset manifest and test scenes: {layout.dataset}, {test}")
    if TRAIN in results:
        job = results[TRAIN]
        model_uri = str(job["ModelArtifacts"]["S3ModelArtifacts"])
        output_uri = model_uri.rsplit("/", 1)[0] + "/output.tar.gz"
        for uri, target, prefix in (
            (model_uri, layout.model, ""),
            (output_uri, layout.training, "data/"),
        ):
            archive = downloads / str(job["TrainingJobName"]) / Path(uri).name
            extract(s3.download_file(aws, uri, archive), target, member_prefix=prefix)
        say(f"model and training reports: {layout.model}, {layout.training}")
    if EVALUATE in results:
        outputs = _processing_outputs(results[EVALUATE])
        evaluation = layout.root / "evaluation"
        _download_prefix(aws, outputs[mounts.EVALUATION_OUTPUT], evaluation)
        _masks_as_predictions(evaluation, layout.predictions)
        say(f"evaluation and masks: {evaluation}, {layout.predictions}")
    return _report(config, layout, test, tuning)


def fetch_leaderboard(
    config: RunConfig,
    aws: boto3.Session,
    tuning_job: dict[str, Any],
    parent_run: str | None,
    say: Callable[[str], None] = print,
) -> Path:
    """The trials of `tuning_job` (its DescribeHyperParameterTuningJob) as the run's
    leaderboard, in the run folder's tuning/; the folder."""
    from earthseg.aws.tuning import list_trials, trial, trial_runs
    from earthseg.train.tracking import one_line, public_uri
    from earthseg.tune.leaderboard import write_leaderboard

    name = str(tuning_job["HyperParameterTuningJobName"])
    client = aws.client("sagemaker")
    uri = config.tracking_uri(local=False)
    runs: dict[str, str] = {}
    if uri is not None and parent_run is not None:
        try:
            runs = trial_runs(uri, parent_run)
        except Exception as error:  # the leaderboard goes on without the links
            say(
                f"warning: the trials' MLflow runs at {public_uri(uri)} cannot be read "
                f"({one_line(error)}); the leaderboard leaves them out"
            )
    trials = []
    for summary in list_trials(aws, name):
        job = str(summary["TrainingJobName"])
        description = call(client, "describe_training_job", TrainingJobName=job)
        row = trial(summary, description, runs.get(job))
        if row is not None:
            trials.append(row)
    folder = RunLayout(Path(config.folder)).tuning
    write_leaderboard(folder, trials, config.tune.objective, config.tune.maximize)
    best = tuning_job.get("BestTrainingJob", {}).get("TrainingJobName", "none")
    say(
        f"tuning job {name}: {len(trials)} trials, the best {best}; leaderboard in {folder} "
        f"(a later tuning learns from this one with tune: {{warm_start: [{name}]}})"
    )
    return folder


def _report(config: RunConfig, layout: RunLayout, test: Path, tuning: Path | None) -> Path:
    from earthseg.contracts.evaluation import SCENES, TEST_LABELS
    from earthseg.contracts.manifest import MANIFEST
    from earthseg.contracts.model_card import MODEL_CARD
    from earthseg.report import write_report

    needed = [layout.dataset / MANIFEST, layout.model / MODEL_CARD, layout.predictions]
    missing = [path for path in needed if not path.exists()]
    if missing:
        return layout.report  # an execution that stopped early: nothing to report on
    metrics = layout.training / "metrics.json"
    fetched_labels = test / TEST_LABELS  # the scenes were fetched in Prepare: their labels
    write_report(
        layout.report,
        manifest=layout.dataset / MANIFEST,
        images=test / SCENES,
        labels=fetched_labels if fetched_labels.is_dir() else config.export.labels,
        predictions=layout.predictions,
        model_card=layout.model / MODEL_CARD,
        training_metrics=metrics if metrics.is_file() else None,
        history_csv=None,
        training_figures=layout.training if layout.training.is_dir() else None,
        title=f"earthseg run {config.name} (SageMaker Pipeline)",
        tuning=tuning,
    )
    return layout.report


def _masks_as_predictions(evaluation: Path, predictions: Path) -> None:
    """The evaluation's masks as the report reads predictions: <stem>.tif and its
    polygons, <stem>.geojson."""
    import shutil

    from earthseg.serve.scene import write_polygons

    predictions.mkdir(parents=True, exist_ok=True)
    for mask in sorted((evaluation / "masks").glob("*.tif")):
        target = predictions / mask.name
        shutil.copyfile(mask, target)
        write_polygons(target, predictions / f"{mask.stem}.geojson", None)


def _processing_outputs(job: dict[str, Any]) -> dict[str, str]:
    """Output name -> S3 folder of a processing job (a list in SageMaker's answer, a
    mapping by name in a local pipeline's)."""
    outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
    items = outputs.values() if isinstance(outputs, dict) else outputs
    return {item["OutputName"]: str(item["S3Output"]["S3Uri"]) for item in items}


def _download_prefix(
    aws: boto3.Session, uri: str, target: Path, only: tuple[str, ...] = ()
) -> None:
    """Every object under S3 folder `uri` (or only those named `only`) into `target`."""
    location = s3.parse_s3_uri(uri, "a step's output")
    client = aws.client("s3")
    prefix = location.key_prefix
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/")
            if not relative or (only and relative not in only):
                continue
            s3.download_file(aws, f"s3://{location.bucket}/{item['Key']}", target / relative)


def _steps_line(description: dict[str, Any]) -> str:
    parts = []
    for step in description["steps"]:
        part = f"{step['StepName']} {step.get('StepStatus', '?')}"
        if step.get("CacheHitResult"):
            part += " (cached)"
        parts.append(part)
    return f"{description['PipelineExecutionStatus']}: " + (", ".join(parts) or "starting")


def _failure(description: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    reasons = [
        f"{step['StepName']}: {step['FailureReason']}"
        for step in steps
        if step.get("FailureReason")
    ]
    return "; ".join(reasons) or description.get("FailureReason") or "no reason given"


def _remember(folder: Path, arn: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / EXECUTION_FILE) as partial:
        partial.write_text(json.dumps({"execution": arn, "started": time.time()}) + "\n")


def _remembered(folder: Path) -> str | None:
    path = folder / EXECUTION_FILE
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["execution"])
