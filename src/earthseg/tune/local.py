"""`earthseg tune --local`: an Optuna study drives the run's training jobs on this machine,
in the training image or on the host (earthseg.tune.trials), and keeps the best.

The search: Optuna's TPE sampler seeded with `tune.seed`, over `tune.ranges` (a log
scale searched as such, integer hyperparameters as whole numbers, `values` as
categories), towards `tune.objective` (losses minimised, scores maximised). A trial's
value is the last value of the objective its job printed, as SageMaker's tuner takes it.
Values are asked for in this thread, one trial after another, so a seed gives the same
first trials whatever the timing of the jobs.

Early stopping (`tune.early_stopping`) is Optuna's median pruner on the per-epoch value:
a trial whose best value so far is worse than the median of the finished trials at the
same epoch is stopped (SIGTERM; its fit ends at the next batch). Two settings:
- the median is taken once `PRUNER_STARTUP_TRIALS` (2) trials have finished: the median
  of one trial is that trial alone, a bar set by luck; and trials of a small local tuning
  (8 by default, 2 at a time) are too precious to wait for Optuna's default of 5;
- no trial is judged on its first `PRUNER_WARMUP_EPOCHS` (2) epochs: a U-Net's first
  epochs are noisy (batch-norm statistics settling, the phase where it predicts no
  positives at all), so a slow start is not yet a bad trial.
Pruned trials keep their last value for the leaderboard but are never the best: they
have no model.

`tune.parallel` jobs run at a time, at most one per core (said when that caps it); each
job keeps to cores // parallel threads (TF_NUM_INTRAOP/INTEROP_THREADS, and a CPU limit
for a container), so that parallel jobs share the machine instead of fighting over it.
Tracked jobs start a few seconds apart, each once the one before has opened its MLflow
run (earthseg.tune.trials says why).

The study is kept in `<tuning>/study.journal` (Optuna's JournalStorage): a tuning that
was interrupted, or ended in an error, resumes where it stopped: its complete and pruned
trials kept, the ones that were running or had failed run again with the same values
(the replaced ones left out of the leaderboard). A tuning of other inputs (another
`key`) starts afresh.
A failed job is a failed trial and the tuning goes on; only when no trial completes is
the tuning an error, naming the trials' logs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earthseg.atomic import atomic_file
from earthseg.errors import InputError
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.tracking import TRACKING_URI_ENV
from earthseg.tune.leaderboard import (
    COMPLETE,
    FAILED,
    PRUNED,
    Trial,
    best_trial,
    write_leaderboard,
)
from earthseg.tune.options import TuneConfig
from earthseg.tune.parent_run import ParentRun
from earthseg.tune.trials import RunningTrial, TrialJob, TrialOutcome

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "study.journal"
TRIALS = "trials"
TRIALS_RECORD = "trials.json"
PRUNER_STARTUP_TRIALS = 2
PRUNER_WARMUP_EPOCHS = 2
# What a trial's record holds beyond its values (Optuna user attributes); the study's:
# its parent run (RUN_ID) and the numbers of the trials run again (interrupted, failed).
EPOCHS, OBJECTIVE, FAILURE, RUN_ID = "epochs", "objective", "failure", "mlflow_run_id"
RETRIED = "retried"


@dataclass(frozen=True)
class TuningJob:
    """What every trial's training job shares."""

    name: str  # the run's: names the parent run
    channels: Mapping[str, Path]
    hyperparameters: Hyperparameters  # the trials override the searched ones
    environment: Mapping[str, str]  # the jobs' (dataset location, tracking)
    experiment: str  # the MLflow experiment
    image: str | None = None  # the training image; None: jobs on this machine


@dataclass(frozen=True)
class TuningResult:
    """A finished tuning: its trials (in the order they started) and the best."""

    trials: tuple[Trial, ...]
    best: Trial
    objective: str
    folder: Path  # the tuning's: study, trials, leaderboard
    mlflow_parent_run_id: str | None

    @property
    def best_folder(self) -> Path:
        """The best trial's /opt/ml: its model/ and output/data/."""
        return trial_folder(self.folder, self.best.name)

    def count(self, state: str) -> int:
        return sum(trial.state == state for trial in self.trials)


def trial_name(number: int) -> str:
    """trial-001 for Optuna's trial 0."""
    return f"trial-{number + 1:03d}"


def trial_folder(tuning: Path, name: str) -> Path:
    return Path(tuning) / TRIALS / name


def distributions(settings: TuneConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna's search space for `tune.ranges`."""
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, BaseDistribution] = {}
    for name, search in settings.ranges.items():
        if search.values is not None:
            space[name] = CategoricalDistribution(search.values)
            continue
        assert search.min is not None and search.max is not None
        log = search.scale == "log"
        if settings.is_integer(name):
            space[name] = IntDistribution(int(search.min), int(search.max), log=log)
        else:
            space[name] = FloatDistribution(float(search.min), float(search.max), log=log)
    return space


def concurrency(settings: TuneConfig, cores: int | None = None) -> tuple[int, int]:
    """Trials at a time (`parallel`, capped by the trials and the cores) and the threads
    each trial's job may use."""
    cores = cores or len(os.sched_getaffinity(0))
    parallel = max(1, min(settings.parallel, settings.trials, cores))
    return parallel, max(1, cores // parallel)


def tune(
    settings: TuneConfig,
    job: TuningJob,
    folder: Path,
    key: str,
    say: Callable[[str], None] = print,
) -> TuningResult:
    """Run (or resume) the tuning in `folder`; `key` identifies its inputs (a tuning of
    another key there is replaced). Returns the trials and the best; an InputError
    naming the trials' logs when none completed."""
    import optuna

    settings.require_ranges()
    folder = Path(folder)
    study = _open_study(settings, folder, key)
    space = distributions(settings)
    _run_again_what_did_not_finish(study, say)
    done = _trials(study)
    if done:
        say(f"tune: {len(done)} of {settings.trials} trials finished in an earlier run, kept")
    study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials))
    parallel, threads = concurrency(settings)
    cores = len(os.sched_getaffinity(0))
    if settings.parallel > cores and settings.trials > cores:
        say(
            f"tune: {settings.parallel} trials at a time asked, but this machine has {cores} "
            f"cores: {parallel} at a time"
        )
    parent = ParentRun(job.environment.get(TRACKING_URI_ENV), job.experiment, say)
    parent.start(f"{job.name}-tuning", _search(settings), study.user_attrs.get(RUN_ID))
    if parent.run_id is not None:
        study.set_user_attr(RUN_ID, parent.run_id)
    remaining = settings.trials - len(done)
    status = "FAILED"
    try:
        with ThreadPoolExecutor(parallel, thread_name_prefix="trial") as pool:
            running: dict[Future[TrialOutcome], tuple[optuna.Trial, RunningTrial]] = {}
            try:
                while remaining or running:
                    while remaining and len(running) < parallel:
                        trial = study.ask(space)
                        started = _start(trial, settings, job, folder, threads, parent, say)
                        future = pool.submit(_watch, started, settings, trial)
                        running[future] = (trial, started)
                        remaining -= 1
                        started.settled()  # its MLflow run open before the next job's
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        trial, started = running.pop(future)
                        outcome = future.result()
                        record = _tell(study, trial, outcome, settings, started.job, say)
                        parent.close_trial(record)
                        _write_record(study, folder)
            except BaseException:
                for _, started in running.values():
                    started.kill()
                raise
        status = "FINISHED"
    finally:
        trials = _trials(study)
        best = best_trial(trials, settings.maximize)
        leaderboard = None
        if trials:
            leaderboard = write_leaderboard(folder, trials, settings.objective, settings.maximize)
        status = status if best is not None else "FAILED"
        parent.finish(trials, best, settings.objective, leaderboard, status)
    if best is None:
        raise _nothing_completed(trials, folder)
    return TuningResult(tuple(trials), best, settings.objective, folder, parent.run_id)


def _open_study(settings: TuneConfig, folder: Path, key: str) -> optuna.Study:
    """The study kept in `folder` for `key`; a folder holding another study is emptied."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial says it
    journal = folder / STUDY_FILE
    if folder.exists():
        names = optuna.get_all_study_names(_storage(journal)) if journal.is_file() else []
        if names != [key]:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            # steps are epochs counted from 1: the first judged is the one after warm-up
            n_startup_trials=PRUNER_STARTUP_TRIALS,
            n_warmup_steps=PRUNER_WARMUP_EPOCHS + 1,
        )
        if settings.early_stopping
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        storage=_storage(journal),
        study_name=key,
        direction="maximize" if settings.maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=pruner,
        load_if_exists=True,
    )


def _storage(journal: Path) -> optuna.storages.BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(journal)))


def _run_again_what_did_not_finish(study: optuna.Study, say: Callable[[str], None]) -> None:
    """Trials an earlier run of the tuning left running (interrupted) or failed: marked
    as retried (left out of the leaderboard), their values queued to run again."""
    from optuna.trial import TrialState

    retried = list(study.user_attrs.get(RETRIED, []))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if trial.number in retried:
            continue
        retried.append(trial.number)
        study.set_user_attr(RETRIED, retried)
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        what = "was interrupted" if trial.state == TrialState.RUNNING else "had failed"
        say(f"tune: {trial_name(trial.number)} {what} in an earlier run; its values run again")


def _search(settings: TuneConfig) -> dict[str, object]:
    """The search, as the parent run's params."""
    return {
        "objective": settings.objective,
        "direction": "maximize" if settings.maximize else "minimize",
        "trials": settings.trials,
        "parallel": settings.parallel,
        "sampler": f"TPE, seed {settings.seed}",
        "pruner": (
            f"median, after {PRUNER_STARTUP_TRIALS} trials and {PRUNER_WARMUP_EPOCHS} epochs"
            if settings.early_stopping
            else "none"
        ),
        **{
            f"ranges.{name}": search.model_dump(exclude_none=True, exclude_defaults=True)
            for name, search in settings.ranges.items()
        },
    }


def _start(
    trial: optuna.Trial,
    settings: TuneConfig,
    job: TuningJob,
    folder: Path,
    threads: int,
    parent: ParentRun,
    say: Callable[[str], None],
) -> RunningTrial:
    name = trial_name(trial.number)
    hyperparameters = Hyperparameters.from_mapping({
        **job.hyperparameters.model_dump(exclude_unset=True),
        **trial.params,
    })  # fmt: skip
    trial_job = TrialJob(
        name=name,
        folder=trial_folder(folder, name),
        hyperparameters=hyperparameters,
        channels=job.channels,
        environment={**job.environment, **parent.child_environment()},
        threads=threads,
        image=job.image,
    )
    say(f"tune: {name} started ({_values(trial.params)}; log in {trial_job.log})")
    return RunningTrial(trial_job)


def _watch(started: RunningTrial, settings: TuneConfig, trial: optuna.Trial) -> TrialOutcome:
    """Follow one trial's job (in a worker thread), reporting each epoch to the study."""

    def judge(epoch: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, epoch)
        return settings.early_stopping and trial.should_prune()

    try:
        return started.watch(settings.objective, judge)
    except Exception as error:  # the engine or the process failed us: this trial failed
        return TrialOutcome(FAILED, 0, None, f"{type(error).__name__}: {error}", None)


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    outcome: TrialOutcome,
    settings: TuneConfig,
    job: TrialJob,
    say: Callable[[str], None],
) -> Trial:
    """Tell the study how a trial ended, say it, and return it as the leaderboard shows it."""
    from optuna.trial import TrialState

    for key, value in (
        (EPOCHS, outcome.epochs),
        (OBJECTIVE, outcome.objective),
        (FAILURE, outcome.failure),
        (RUN_ID, outcome.mlflow_run_id),
    ):
        trial.set_user_attr(key, value)
    value = "no value" if outcome.objective is None else f"{outcome.objective:.4f}"
    value = f"{settings.objective} {value}"
    if outcome.state == COMPLETE:
        study.tell(trial, outcome.objective)
        say(f"tune: {job.name} complete after {outcome.epochs} epochs: {value}")
    elif outcome.state == PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
        say(
            f"tune: {job.name} pruned (worse than the median of the finished trials), "
            f"stopped after {outcome.epochs} epochs: {value}"
        )
    else:
        study.tell(trial, state=TrialState.FAIL)
        say(
            f"tune: {job.name} failed after {outcome.epochs} epochs: {outcome.failure} "
            f"(log: {job.log})"
        )
    return Trial(
        name=job.name,
        hyperparameters=dict(trial.params),
        objective=outcome.objective,
        state=outcome.state,
        epochs=outcome.epochs,
        mlflow_run_id=outcome.mlflow_run_id,
    )


def _trials(study: optuna.Study) -> list[Trial]:
    """The study's finished trials as the leaderboard shows them, in the order started."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE: COMPLETE, TrialState.PRUNED: PRUNED, TrialState.FAIL: FAILED}
    retried = set(study.user_attrs.get(RETRIED, []))
    return [
        Trial(
            name=trial_name(trial.number),
            hyperparameters=dict(trial.params),
            objective=trial.user_attrs.get(OBJECTIVE),
            state=states[trial.state],
            epochs=int(trial.user_attrs.get(EPOCHS, 0)),
            mlflow_run_id=trial.user_attrs.get(RUN_ID),
        )
        for trial in study.trials
        if trial.state in states and trial.number not in retried
    ]


def _write_record(study: optuna.Study, folder: Path) -> None:
    """trials.json: every finished trial with why it failed, after each trial."""
    failures = {trial_name(t.number): t.user_attrs.get(FAILURE) for t in study.trials}
    records = [
        {**asdict(trial), "failure": failures.get(trial.name), "log": str(_log(folder, trial))}
        for trial in _trials(study)
    ]
    with atomic_file(folder / TRIALS_RECORD) as tmp:
        tmp.write_text(json.dumps(records, indent=2) + "\n")


def _log(folder: Path, trial: Trial) -> Path:
    from earthseg.tune.trials import TRIAL_LOG

    return trial_folder(folder, trial.name) / TRIAL_LOG


def _nothing_completed(trials: list[Trial], folder: Path) -> InputError:
    logs = ", ".join(str(_log(folder, trial)) for trial in trials) or str(folder / TRIALS)
    states = ", ".join(f"{trial.name} {trial.state}" for trial in trials)
    return InputError(
        "tuning",
        f"no trial completed ({states or 'none ran'}), so there is no model to carry on",
        f"read why in the trials' logs ({logs}) and in {folder / TRIALS_RECORD}; "
        "fix the ranges or the data, then run again",
    )


def _values(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )
