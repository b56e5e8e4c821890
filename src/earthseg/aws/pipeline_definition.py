"""`earthseg pipeline` on SageMaker as a SageMaker Pipeline, defined from `run.yaml`.

    Prepare (Processing, training image: fetch + preprocess, the test split set apart)
      -> Train (Training, training image)
         | Tune (Tuning, training image: `earthseg tune`, trials searching `tune.ranges`)
      -> Evaluate (Processing, serve image: the test scenes predicted and scored, with
                   Train's model or Tune's best trial's; evaluation.json is the
                   PropertyFile "Evaluation")
      -> CheckTestIoU (Condition: test IoU >= MinTestIoU)
           -> Register (a model package version in the run's group)
           |  BelowBar (Fail: the IoU and the bar)

What users change between runs (instance types, hyperparameters, the IoU bar, the
approval status, the export's S3 location) are pipeline parameters, so a rerun starts an
execution of the same definition with other values (in a tuning, the hyperparameters
searched are the tuner's, not parameters; `MlflowParentRunId` is the MLflow run its
trials are children of, opened by the launcher). Prepare and Evaluate are cached: an
unchanged step of a rerun is not paid for twice. Built with the SDK v3's own steps
(`Processor.run`, `ModelTrainer.train` and `HyperparameterTuner.tune` under a
PipelineSession, one ModelTrainer for training and tuning alike); the registration is a
step of our own whose arguments are exactly the CreateModelPackage request
`earthseg.aws.registry` makes, so the registry commands read what it wrote.

Every step's request carries what a locked-down account demands (`aws:` of run.yaml,
earthseg.aws.security): the jobs their VPC, network isolation, inter-container encryption,
the KMS key on volumes and outputs, and all of them, the new model version too, the tags
naming the run. Prepare keeps its network when it fetches the imagery (`prepare_note`
says so); Evaluate and the trainings are cut off when isolation is asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from earthseg.aws.sdk import sdk_default_region

with sdk_default_region():
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        MetricDefinition,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.properties import Properties, PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import (
        CacheConfig,
        ProcessingStep,
        Step,
        StepTypeEnum,
        TrainingStep,
        TuningStep,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

from earthseg.aws import s3
from earthseg.aws.processing import MAX_RUN_S, VOLUME_SIZE_GB, processor_security
from earthseg.aws.registry import lineage_metadata, model_package_request
from earthseg.aws.training import job_networking, job_tags
from earthseg.aws.tuning import encode, run_tuner, static_hyperparameters
from earthseg.contracts import processing as mounts
from earthseg.contracts.channels import REQUIRED
from earthseg.contracts.evaluation import EVALUATION_FILE, metric_json_path
from earthseg.contracts.opt_ml import CHECKPOINTS_PER_JOB_ENV
from earthseg.train.metric_lines import METRIC_DEFINITIONS
from earthseg.train.tracking import PARENT_RUN_ENV

if TYPE_CHECKING:
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from earthseg.pipeline.config import RunConfig

PREPARE, TRAIN, TUNE, EVALUATE = "Prepare", "Train", "Tune", "Evaluate"
CHECK, REGISTER, BELOW_BAR = "CheckTestIoU", "Register", "BelowBar"
STEPS = (PREPARE, TRAIN, TUNE, EVALUATE, CHECK, REGISTER, BELOW_BAR)
PARENT_RUN_PARAMETER = "MlflowParentRunId"  # a tuning's MLflow parent run ("": none)
JOBS_FOLDER = "jobs"  # under the run's S3 root: <job name>/output/model.tar.gz per job
EVALUATION_PROPERTY_FILE = "Evaluation"
CACHE_FOR = "P30D"  # an unchanged Prepare or Evaluate is reused for 30 days
APPROVALS = {"manual": "PendingManualApproval", "auto": "Approved"}
BAR_METRIC = "test_iou"  # what CheckTestIoU compares with register.min_test_iou
MANIFEST_JSON_PATH = "dataset.manifest_sha256"  # in evaluation.json: the dataset's digest
IMAGERY_JSON_PATH = "dataset.imagery"  # ... and where its scenes came from
ROLE_CHECK_ENV = "SAGEMAKER_VALIDATE_ROLE"  # the SDK's switch for its client-side role check


@dataclass(frozen=True)
class PipelineInputs:
    """Where a pipeline execution finds the export, and the run's S3 root."""

    root: s3.S3Uri  # aws.s3/<run name>/
    labels_uri: str  # the export's labels, uploaded
    images_uri: str | None  # its images, uploaded; None: Prepare fetches them


@dataclass(frozen=True)
class Parameters:
    """The pipeline's parameters, by what they stand for."""

    processing_instance: ParameterString
    training_instance: ParameterString
    evaluation_instance: ParameterString
    min_test_iou: ParameterFloat
    approval: ParameterString
    labels_uri: ParameterString
    images_uri: ParameterString | None
    hyperparameters: dict[str, ParameterString]
    parent_run: ParameterString | None = None

    def all(self) -> list[ParameterString | ParameterFloat]:
        fixed = [
            self.processing_instance,
            self.training_instance,
            self.evaluation_instance,
            self.min_test_iou,
            self.approval,
            self.labels_uri,
            *([self.images_uri] if self.images_uri is not None else []),
            *([self.parent_run] if self.parent_run is not None else []),
        ]
        return fixed + list(self.hyperparameters.values())


def pipeline_parameters(
    config: RunConfig, inputs: PipelineInputs, tuning: bool = False
) -> Parameters:
    """Parameters with the config's values as defaults. Hyperparameters keep their own
    names (as `earthseg train` takes them) and are strings, as SageMaker passes them; in
    a tuning, only those not searched, and, when the run is tracked, the MLflow run the
    trials are children of."""
    hyperparameters = (
        static_hyperparameters(config)
        if tuning
        else {
            name: encode(value) for name, value in config.train.hyperparameters.model_dump().items()
        }
    )
    tracked = config.tracking_uri(local=False) is not None
    return Parameters(
        processing_instance=ParameterString(
            "ProcessingInstanceType", config.preprocess.instance_type
        ),
        training_instance=ParameterString("TrainingInstanceType", config.train.instance_type),
        evaluation_instance=ParameterString(
            "EvaluationInstanceType", config.evaluate.instance_type
        ),
        min_test_iou=ParameterFloat("MinTestIoU", config.registration.min_test_iou),
        approval=ParameterString(
            "ModelApprovalStatus", APPROVALS[config.registration.approve], list(APPROVALS.values())
        ),
        labels_uri=ParameterString("ExportLabels", inputs.labels_uri),
        images_uri=(
            ParameterString("ExportImages", inputs.images_uri)
            if inputs.images_uri is not None
            else None
        ),
        hyperparameters={
            name: ParameterString(name, value) for name, value in hyperparameters.items()
        },
        parent_run=ParameterString(PARENT_RUN_PARAMETER, "") if tuning and tracked else None,
    )


def build_pipeline(
    config: RunConfig,
    inputs: PipelineInputs,
    session: PipelineSession,
    role: str,
    metadata: dict[str, Any],
    *,
    registration: bool = True,
    tuning: bool = False,
) -> Pipeline:
    """The run's SageMaker Pipeline (not yet created or started). Nothing is sent to AWS:
    the definition can be written and reviewed offline (`--dry-run`). `registration`
    False leaves the Register step out (SageMaker's local mode cannot run one).
    `tuning`: a Tune step (`tune:`) in place of Train, its best trial's model carried
    on; an InputError when `tune:` has nothing to search."""
    # The SDK warns, for every job step, that it leaves the job's name to SageMaker: as
    # it should (SageMaker names each execution's jobs), so not worth a user's attention.
    logging.getLogger("sagemaker.core.workflow.utilities").setLevel(logging.ERROR)
    with _roles_checked_by_sagemaker(), sdk_default_region(), warnings.catch_warnings():
        # ... and that under a PipelineSession no job starts: the point of defining.
        warnings.filterwarnings("ignore", "Running within a PipelineSession", UserWarning)
        return _build(config, inputs, session, role, metadata, registration, tuning)


@contextlib.contextmanager
def _roles_checked_by_sagemaker() -> Iterator[None]:
    """The SDK checks a job's role with IAM policy simulations when a job is described
    (ModelTrainer, Processor); in a pipeline definition the jobs start later, under the
    pipeline's role, and SageMaker checks them then. Skipped here, so that defining
    needs no IAM access and no network."""
    before = os.environ.get(ROLE_CHECK_ENV)
    os.environ[ROLE_CHECK_ENV] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ROLE_CHECK_ENV, None)
        else:
            os.environ[ROLE_CHECK_ENV] = before


def _build(
    config: RunConfig,
    inputs: PipelineInputs,
    session: PipelineSession,
    role: str,
    metadata: dict[str, Any],
    registration: bool,
    tuning: bool,
) -> Pipeline:
    cache = CacheConfig(enable_caching=True, expire_after=CACHE_FOR)
    parameters = pipeline_parameters(config, inputs, tuning)
    prepare = ProcessingStep(
        PREPARE,
        step_args=_prepare_args(config, inputs, parameters, session, role),
        cache_config=cache,
        description="fetch the scenes (when the export has none), preprocess, set the test "
        "split apart",
    )
    dataset = prepare.properties.ProcessingOutputConfig.Outputs[
        mounts.DATASET_OUTPUT
    ].S3Output.S3Uri
    # Not cached: its checkpoint folder is the execution's own (the image resumes from
    # what it finds there, which must be this training's), and checkpoints are in the key.
    trainer = _trainer(config, inputs, parameters, session, role, dataset, tuning)
    channels = training_channels(dataset)
    training: TrainingStep | TuningStep
    if tuning:
        training = TuningStep(
            TUNE,
            step_args=run_tuner(config, trainer).tune(inputs=channels),
            description=f"{config.tune.trials} trainings, {config.tune.parallel} at a time, "
            f"searching {', '.join(config.tune.ranges)} for the best {config.tune.objective}",
        )
        # SageMaker keeps a trial's model where it keeps a training job's (run_trainer).
        jobs = inputs.root.child(JOBS_FOLDER)
        model_uri: Any = training.get_top_model_s3_uri(
            top_k=0, s3_bucket=jobs.bucket, prefix=jobs.key
        )
        training_job = training.properties.BestTrainingJob.TrainingJobName
    else:
        training = TrainingStep(
            TRAIN,
            step_args=trainer.train(input_data_config=channels),
            description="train the U-Net in the training image (spot: resumes from checkpoints)",
        )
        model_uri = training.properties.ModelArtifacts.S3ModelArtifacts
        training_job = training.properties.TrainingJobName
    test = prepare.properties.ProcessingOutputConfig.Outputs[mounts.TEST_OUTPUT].S3Output.S3Uri
    evaluation_file = PropertyFile(
        name=EVALUATION_PROPERTY_FILE, output_name=mounts.EVALUATION_OUTPUT, path=EVALUATION_FILE
    )
    evaluate = ProcessingStep(
        EVALUATE,
        step_args=_evaluate_args(config, inputs, parameters, session, role, model_uri, test),
        property_files=[evaluation_file],
        cache_config=cache,
        description="predict the test scenes with the serve image and score them",
    )
    test_iou = JsonGet(
        step_name=EVALUATE, property_file=evaluation_file, json_path=condition_path(BAR_METRIC)
    )
    evaluation_uri = Join(
        on="/",
        values=[
            evaluate.properties.ProcessingOutputConfig.Outputs[
                mounts.EVALUATION_OUTPUT
            ].S3Output.S3Uri,
            EVALUATION_FILE,
        ],
    )
    made_by = {
        **metadata,
        **lineage_metadata(
            manifest_sha256=JsonGet(
                step_name=EVALUATE, property_file=evaluation_file, json_path=MANIFEST_JSON_PATH
            ),
            imagery=JsonGet(
                step_name=EVALUATE, property_file=evaluation_file, json_path=IMAGERY_JSON_PATH
            ),
            training_job=training_job,
        ),
    }
    register = RegisterModelPackage(
        REGISTER,
        _register_request(config, parameters, model_uri, evaluation_uri, made_by),
        description="a new version in the model package group " + config.model_package_group,
    )
    below_bar = FailStep(
        BELOW_BAR,
        error_message=Join(
            on="",
            values=[
                "test IoU ",
                test_iou,
                " is below register.min_test_iou (MinTestIoU = ",
                parameters.min_test_iou,
                "): the model is not registered",
            ],
        ),
    )
    check = ConditionStep(
        CHECK,
        conditions=[ConditionGreaterThanOrEqualTo(left=test_iou, right=parameters.min_test_iou)],
        if_steps=[register] if registration else [],
        else_steps=[below_bar],
        description="register the model only when its test IoU reaches the bar",
    )
    return Pipeline(
        name=config.name,
        parameters=parameters.all(),
        steps=[prepare, training, evaluate, check],
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )


def prepare_note(config: RunConfig) -> str | None:
    """One line for a run asking for network isolation whose Prepare step fetches the
    imagery: that step keeps its network (None: nothing to say)."""
    if not config.aws.network_isolation or config.export.images is not None:
        return None
    where = " (in the VPC)" if config.aws.vpc is not None else ""
    return (
        f"aws.network_isolation: the {PREPARE} step fetches imagery from "
        f"{config.imagery.url}, so it keeps its network{where}"
    )


def condition_path(metric: str) -> str:
    """Where in evaluation.json the Condition step finds `metric`: one the evaluation
    writes, or an InputError before anything is defined."""
    return metric_json_path(metric)


def _prepare_args(
    config: RunConfig,
    inputs: PipelineInputs,
    parameters: Parameters,
    session: PipelineSession,
    role: str,
) -> Any:
    fetched = inputs.images_uri is None
    processor = _processor(
        config,
        str(config.train.image),
        parameters.processing_instance,
        f"{config.name}-prepare",
        session,
        role,
        isolated=not fetched,  # fetching the scenes needs the network
    )
    sources = {mounts.LABELS: parameters.labels_uri}
    if parameters.images_uri is not None:
        sources[mounts.IMAGES] = parameters.images_uri
    arguments = [
        "prepare",
        *mounts.prepare_arguments(
            config.preprocess.options(),
            config.imagery.options() if fetched else None,
            config.imagery.transfer() if fetched else None,
        ),
    ]
    return processor.run(
        inputs=[_input(name, uri, mounts.container_input(name)) for name, uri in sources.items()],
        outputs=[
            _output(name, inputs.root, folder) for name, folder in mounts.PREPARE_OUTPUTS.items()
        ],
        arguments=arguments,
    )


def _trainer(
    config: RunConfig,
    inputs: PipelineInputs,
    parameters: Parameters,
    session: PipelineSession,
    role: str,
    dataset: Any,
    tuning: bool,
) -> ModelTrainer:
    """The pipeline's trainer: the run's, with the pipeline's parameters, its checkpoints
    per execution, and in a tuning the MLflow parent run in the jobs' environment."""
    environment = config.cloud_environment(dataset)
    if parameters.parent_run is not None:
        environment[PARENT_RUN_ENV] = parameters.parent_run
    if tuning:  # the trials share the checkpoint URI: each keeps its own folder in it
        environment[CHECKPOINTS_PER_JOB_ENV] = "1"
    return run_trainer(
        config,
        session,
        role,
        instance_type=parameters.training_instance,
        hyperparameters=parameters.hyperparameters,
        jobs=inputs.root.child(JOBS_FOLDER),
        checkpoints=per_execution(inputs.root.child("checkpoints")),
        environment=environment,
    )


def run_trainer(
    config: RunConfig,
    session: Session,
    role: str,
    *,
    instance_type: Any,
    hyperparameters: Mapping[str, Any],
    jobs: s3.S3Uri,
    checkpoints: Any,
    environment: Mapping[str, Any],
) -> ModelTrainer:
    """The run's training job as a ModelTrainer: the training image on `train:`'s
    resources (managed spot when `train.spot`, resuming from `checkpoints` in S3), the
    package's metric definitions, each job's model under `jobs`/<job name>/output/, and
    `aws:`'s VPC, isolation, KMS key (volume and output) and tags. Values may be plain or
    pipeline variables; the data channels are given when it runs (`training_channels`),
    so one trainer serves a Train step and a tuner alike."""
    from earthseg.contracts.opt_ml import CHECKPOINTS, in_container

    resources = config.train
    security = config.aws
    return ModelTrainer(
        training_mode=Mode.SAGEMAKER_TRAINING_JOB,
        sagemaker_session=session,
        role=role,
        training_image=str(config.train.image),
        base_job_name=config.name,
        compute=Compute(
            instance_type=instance_type,
            instance_count=resources.instances,
            volume_size_in_gb=resources.volume_size_gb,
            volume_kms_key_id=security.kms_key,
            enable_managed_spot_training=resources.spot,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=resources.max_run_s,
            max_wait_time_in_seconds=resources.wait_s if resources.spot else None,
        ),
        output_data_config=OutputDataConfig(s3_output_path=str(jobs), kms_key_id=security.kms_key),
        checkpoint_config=CheckpointConfig(
            s3_uri=checkpoints, local_path=in_container(CHECKPOINTS)
        ),
        hyperparameters=dict(hyperparameters),
        training_input_mode="File",
        environment=dict(environment),
        networking=job_networking(security),
        tags=job_tags(security, config.name),
    ).with_metric_definitions(
        [MetricDefinition(name=item["Name"], regex=item["Regex"]) for item in METRIC_DEFINITIONS]
    )


def training_channels(dataset: Any) -> list[InputData]:
    """The channels a training job reads: `dataset`/<channel> for each required channel
    (`dataset`: an S3 folder, or the pipeline's variable holding one)."""

    def source(name: str) -> Any:
        if isinstance(dataset, str):
            return f"{dataset.rstrip('/')}/{name}"
        return Join(on="/", values=[dataset, name])

    return [InputData(channel_name=name, data_source=source(name)) for name in REQUIRED]


def _evaluate_args(
    config: RunConfig,
    inputs: PipelineInputs,
    parameters: Parameters,
    session: PipelineSession,
    role: str,
    model_uri: Any,
    test: Any,
) -> Any:
    processor = _processor(
        config,
        str(config.deploy.image),
        parameters.evaluation_instance,
        f"{config.name}-evaluate",
        session,
        role,
        isolated=True,
    )
    arguments = ["evaluate", *mounts.evaluate_arguments(config.invoke.threshold)]
    return processor.run(
        inputs=[
            _input(mounts.MODEL_INPUT, model_uri, mounts.container_input(mounts.MODEL_INPUT)),
            _input(mounts.TEST_INPUT, test, mounts.container_input(mounts.TEST_INPUT)),
        ],
        outputs=[
            _output(name, inputs.root, folder) for name, folder in mounts.EVALUATE_OUTPUTS.items()
        ],
        arguments=arguments,
    )


def _register_request(
    config: RunConfig,
    parameters: Parameters,
    model_uri: Any,
    evaluation_uri: Any,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    return model_package_request(
        group=config.model_package_group,
        image=str(config.deploy.image),
        model_uri=model_uri,
        evaluation_uri=evaluation_uri,
        metadata=metadata,
        approval=parameters.approval,
        description=f"earthseg run {config.name}",
        tags=config.aws.tag_list(config.name),
    )


def _processor(
    config: RunConfig,
    image: str,
    instance_type: Any,
    base_job_name: str,
    session: PipelineSession,
    role: str,
    *,
    isolated: bool,
) -> Processor:
    """A one-instance Processing job in `image`, run through the image's own entrypoint,
    with the run's security settings (`isolated`: whether it may be cut off from the
    network)."""
    return Processor(
        role=role,
        image_uri=image,
        instance_count=1,
        instance_type=instance_type,
        volume_size_in_gb=VOLUME_SIZE_GB,
        max_runtime_in_seconds=MAX_RUN_S,
        base_job_name=base_job_name,
        entrypoint=list(mounts.IMAGE_ENTRYPOINT),
        sagemaker_session=session,
        **processor_security(config.aws, config.name, isolated),
    )


def _input(name: str, uri: Any, local_path: str) -> Any:
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri,
            local_path=local_path,
            s3_data_type="S3Prefix",
            s3_input_mode="File",
        ),
    )


def _output(name: str, root: s3.S3Uri, folder: str) -> Any:
    """Output `name`, written in /opt/ml/processing/<folder>, uploaded to
    <root>/<name>/<execution id>/."""
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(
            s3_uri=per_execution(root.child(name)),
            local_path=mounts.container_output(folder),
            s3_upload_mode="EndOfJob",
        ),
    )


def per_execution(folder: s3.S3Uri) -> Any:
    """`folder`/<execution id>: what one execution writes never overwrites what an
    earlier one wrote and a registered version points at. SageMaker's cache keys leave
    outputs out, so a cached step still hits (and hands on its earlier outputs)."""
    return Join(
        on="/", values=[folder.folder.rstrip("/"), ExecutionVariables.PIPELINE_EXECUTION_ID]
    )


class RegisterModelPackage(Step):
    """A step whose arguments are a CreateModelPackage request: SageMaker Pipelines'
    RegisterModel step type, without the SDK's ModelBuilder (which would infer a framework
    and repack the artifact); its properties are DescribeModelPackage's."""

    def __init__(self, name: str, request: dict[str, Any], description: str = "") -> None:
        super().__init__(name, description=description, step_type=StepTypeEnum.REGISTER_MODEL)
        self.request = request
        self._properties = Properties(
            step_name=name, step=self, shape_name="DescribeModelPackageOutput"
        )

    @property
    def arguments(self) -> dict[str, Any]:
        return self.request

    @property
    def properties(self) -> Any:
        return self._properties
