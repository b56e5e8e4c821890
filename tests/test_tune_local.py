"""`earthseg tune --local` (earthseg.tune.local): an Optuna study over real training jobs on
this machine (`local.docker: never`), tracked in the run's local MLflow store, pruning a
trial that cannot learn, the best trial's model carried through the rest of the run, the
leaderboard in the run's report; trials that fail; the leaderboard's contract; a
tuning without ranges. tests/docker/test_tune_container.py runs trials in the image."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from earthseg.contracts.manifest import file_digest
from earthseg.contracts.model_card import read_model_card
from earthseg.errors import InputError
from earthseg.pipeline.stages import run_config
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.metric_lines import metrics_line, parse_metrics_line
from earthseg.train.tracking import PARENT_TAG, local_store_uri, serve_store
from earthseg.tune.leaderboard import (
    Trial,
    best_trial,
    read_leaderboard,
    write_leaderboard,
)
from earthseg.tune.local import TuningJob, concurrency, distributions, trial_folder, tune
from earthseg.tune.options import ParameterRange, TuneConfig
from tests.pipeline_runs import small_run

EPOCHS = 8
GOOD, STUCK = (0.01, 0.003), 1e-5
# Three trials, two at a time, minimising val_loss: the seed makes TPE's first (random)
# draws two learning rates that learn and, third, one too small to learn anything, whose
# val_loss stays at its starting value (about 1.45, where the others are near 1.3 by
# epoch 3): the median pruner stops it at the first epoch it may judge (3), by when both
# others have finished. val_loss rather than val_iou: on this tiny sample the IoU at 0.5
# is noisy for the first epochs, the loss falls steadily.
TUNE = {
    "trials": 3,
    "parallel": 2,
    "objective": "val_loss",
    "seed": 10,
    "ranges": {
        "learning_rate": {"values": [*GOOD, STUCK]},
        "filters": {"values": [8, 12]},
    },
}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tuned run of the 4-scene sample (host mode): its folder and what it said."""
    folder = tmp_path_factory.mktemp("tuned")
    config = small_run(
        folder,
        train={"hyperparameters": {"epochs": EPOCHS, "batch_size": 8, "filters": 8, "depth": 2}},
        tune=TUNE,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = run_config(config, tuning=True)
    assert report == folder / "runs" / "tiny" / "report"
    return folder / "runs" / "tiny", out.getvalue()


@pytest.mark.slow
def test_a_trial_that_cannot_learn_is_pruned_and_the_best_is_carried_on(
    tuned: tuple[Path, str],
) -> None:
    run, said = tuned
    records = {item["name"]: item for item in json.loads((run / "tuning/trials.json").read_text())}
    assert list(records) == ["trial-001", "trial-002", "trial-003"], said
    (pruned,) = [item for item in records.values() if item["state"] == "pruned"]
    assert pruned["hyperparameters"]["learning_rate"] == STUCK
    assert 3 <= pruned["epochs"] < EPOCHS  # stopped early, by SIGTERM, cleanly
    log = (run / "tuning/trials" / pruned["name"] / "train.log").read_text()
    assert "SIGTERM: training stops after this batch" in log
    complete = [item for item in records.values() if item["state"] == "complete"]
    assert [item["epochs"] for item in complete] == [EPOCHS, EPOCHS]
    assert {item["hyperparameters"]["learning_rate"] for item in complete} <= set(GOOD)
    best = min(complete, key=lambda item: item["objective"])

    # the stage's outputs in state.json
    state = json.loads((run / "state.json").read_text())
    assert list(state) == ["preprocess", "tune", "invoke", "detect", "report"]
    outputs = state["tune"]["outputs"]
    assert (outputs["trials"], outputs["pruned"], outputs["failed"]) == (3, 1, 0)
    assert outputs["best trial"] == best["name"]
    assert outputs["val_loss"] == pytest.approx(best["objective"], abs=1e-4)
    assert outputs["mlflow_run_id"] == best["mlflow_run_id"]
    assert outputs["model"] == str(run / "model")

    # the best trial's model, and its reports, are the run's
    best_model = trial_folder(run / "tuning", best["name"]) / "model"
    card = read_model_card(run / "model")
    assert card.tracking is not None and card.tracking.run_id == best["mlflow_run_id"]
    assert file_digest(run / "model/model.onnx") == file_digest(best_model / "model.onnx")
    assert (
        card.training.hyperparameters["learning_rate"] == best["hyperparameters"]["learning_rate"]
    )
    assert outputs["threshold"] == card.threshold
    best_reports = trial_folder(run / "tuning", best["name"]) / "output/data"
    assert (run / "training/metrics.json").read_text() == (
        best_reports / "metrics.json"
    ).read_text()
    # ... and the rest of the run served it: the report names its ONNX digest
    report = (run / "report/report.md").read_text()
    assert file_digest(run / "model/model.onnx") in report


@pytest.mark.slow
def test_the_trials_are_children_of_one_parent_run(tuned: tuple[Path, str], tmp_path: Path) -> None:
    """Read back through the run's store served, as `earthseg ui` opens it."""
    run, _ = tuned
    with serve_store(local_store_uri(run.parent), tmp_path / "server.log") as url:
        check_tracked_tuning(run, MlflowClient(url))


def check_tracked_tuning(run: Path, client: MlflowClient) -> None:
    records = json.loads((run / "tuning/trials.json").read_text())
    outputs = json.loads((run / "state.json").read_text())["tune"]["outputs"]
    parent = client.get_run(outputs["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert json.loads(parent.data.params["objective"]) == "val_loss"
    assert json.loads(parent.data.params["ranges.learning_rate"]) == {"values": [*GOOD, STUCK]}
    assert parent.data.tags["earthseg.best_trial"] == outputs["best trial"]
    assert parent.data.tags["earthseg.best_run_id"] == outputs["mlflow_run_id"]
    assert parent.data.metrics["best_val_loss"] == pytest.approx(outputs["val_loss"], abs=1e-4)
    assert parent.data.metrics["trials_pruned"] == 1
    artifacts = {
        Path(item.path).name for item in client.list_artifacts(parent.info.run_id, "leaderboard")
    }
    assert artifacts == {"leaderboard.csv", "leaderboard.json", "leaderboard.png"}

    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    )
    assert {child.info.run_id for child in children} == {item["mlflow_run_id"] for item in records}
    for child in children:
        record = next(item for item in records if item["mlflow_run_id"] == child.info.run_id)
        assert child.data.tags["earthseg.trial"] == record["name"]
        assert child.data.tags["earthseg.trial_state"] == record["state"]
        assert (
            json.loads(child.data.params["learning_rate"])
            == record["hyperparameters"]["learning_rate"]
        )
        steps = [point.step for point in client.get_metric_history(child.info.run_id, "val_loss")]
        assert steps == list(range(1, record["epochs"] + 1))
        expected = "KILLED" if record["state"] == "pruned" else "FINISHED"
        assert child.info.status == expected, record


@pytest.mark.slow
def test_the_leaderboard_is_in_the_tuning_folder_and_the_report(tuned: tuple[Path, str]) -> None:
    run, said = tuned
    board = read_leaderboard(run / "tuning")
    assert board is not None
    assert (board.objective, board.maximize) == ("val_loss", False)
    assert [trial.state for trial in board.trials] == ["complete", "complete", "pruned"]
    assert board.trials[0].objective <= board.trials[1].objective  # type: ignore[operator]
    assert board.best == board.trials[0]
    assert board.searched == ["filters", "learning_rate"]  # as run.yaml lists them
    for name in ("leaderboard.csv", "leaderboard.json", "leaderboard.png", "study.journal"):
        assert (run / "tuning" / name).is_file(), name
    report = (run / "report/report.md").read_text()
    section = report[report.index("## Tuning") : report.index("## Data and model")]
    for trial in board.trials:
        assert f"`{trial.name}`" in section
    assert f"`{board.trials[0].name}` | complete, best" in section
    assert (run / "report/tuning/leaderboard.png").is_file()
    assert "tuning/leaderboard.png" in section
    assert "data:image/png;base64," in (run / "report/report.html").read_text()
    for name in ("trial-001", "trial-002", "trial-003"):
        assert f"tune: {name} started" in said


@pytest.mark.slow
def test_a_rerun_keeps_the_tuning(
    tuned: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = tuned
    before = (run / "model/model.onnx").stat().st_mtime_ns
    run_config(run.parent.parent / "run.yaml", tuning=True)
    said = capsys.readouterr().out
    assert "tune: done in an earlier run, kept" in said
    assert "started" not in said
    assert (run / "model/model.onnx").stat().st_mtime_ns == before


def test_a_tuning_without_ranges_is_refused_before_anything_runs(tmp_path: Path) -> None:
    config = small_run(tmp_path)
    with pytest.raises(InputError) as refused:
        run_config(config, tuning=True)
    assert "tune.ranges" in str(refused.value)
    assert "learning_rate" in refused.value.fix
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune-data")
    write_sample_export(root / "export", scenes=4, size=128, seed=5)
    build_dataset(
        root / "export" / "images",
        root / "export" / "labels",
        root / "dataset",
        PreprocessOptions(tile_size=32, splits=(0.5, 0.25, 0.25)),
    )
    return root / "dataset"


def test_failed_trials_are_recorded_and_all_failing_names_their_logs(
    dataset: Path, tmp_path: Path
) -> None:
    """Jobs that fail at once (no validation channel: each job says so in its failure
    file): every trial failed, with the job's own reason, and the tuning is an error
    naming their logs; a rerun tries the same values again."""
    settings = TuneConfig(
        trials=2, parallel=2, ranges={"learning_rate": ParameterRange(min=1e-4, max=1e-2)}
    )
    job = TuningJob(
        name="broken",
        channels={"train": dataset / "train"},  # no validation channel
        hyperparameters=Hyperparameters(epochs=1),
        environment={},
        experiment="broken",
    )
    said: list[str] = []
    with pytest.raises(InputError) as failed:
        tune(settings, job, tmp_path / "tuning", "key-1", said.append)
    message = str(failed.value)
    assert "no trial completed (trial-001 failed, trial-002 failed)" in message
    for name in ("trial-001", "trial-002"):
        assert str(tmp_path / "tuning/trials" / name / "train.log") in message
    records = json.loads((tmp_path / "tuning/trials.json").read_text())
    assert [item["state"] for item in records] == ["failed", "failed"]
    for item in records:
        assert "no validation channel" in item["failure"]
        assert 1e-4 <= item["hyperparameters"]["learning_rate"] <= 1e-2
        assert (tmp_path / "tuning/trials" / item["name"] / "output/failure").is_file()
    assert sum("failed after 0 epochs" in line for line in said) == 2
    board = read_leaderboard(tmp_path / "tuning")
    assert board is not None and board.best is None
    assert [trial.state for trial in board.trials] == ["failed", "failed"]

    said.clear()
    with pytest.raises(InputError):
        tune(settings, job, tmp_path / "tuning", "key-1", said.append)
    assert sum("had failed in an earlier run" in line for line in said) == 2
    again = json.loads((tmp_path / "tuning/trials.json").read_text())
    assert [item["name"] for item in again] == ["trial-003", "trial-004"]
    first = sorted(item["hyperparameters"]["learning_rate"] for item in records)
    assert sorted(item["hyperparameters"]["learning_rate"] for item in again) == first


def test_the_search_space_follows_the_ranges() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    settings = TuneConfig(
        ranges={
            "learning_rate": ParameterRange(min=3e-4, max=1e-2, scale="log"),
            "filters": ParameterRange(min=8, max=32),
            "depth": ParameterRange(min=2, max=4, scale="log"),
            "augment": ParameterRange(values=[True, False]),
            "batch_size": ParameterRange(values=[8, 16]),
        }
    )
    space = distributions(settings)
    assert space["learning_rate"] == FloatDistribution(3e-4, 1e-2, log=True)
    assert space["filters"] == IntDistribution(8, 32)
    assert space["depth"] == IntDistribution(2, 4, log=True)
    assert space["augment"] == CategoricalDistribution([True, False])
    assert space["batch_size"] == CategoricalDistribution([8, 16])


def test_parallel_trials_are_capped_by_the_cores_and_share_them() -> None:
    assert concurrency(TuneConfig(trials=8, parallel=2), cores=2) == (2, 1)
    assert concurrency(TuneConfig(trials=8, parallel=4), cores=2) == (2, 1)
    assert concurrency(TuneConfig(trials=8, parallel=1), cores=2) == (1, 2)
    assert concurrency(TuneConfig(trials=8, parallel=3), cores=16) == (3, 5)
    assert concurrency(TuneConfig(trials=1, parallel=4), cores=16) == (1, 16)


def test_a_metrics_line_reads_back_as_printed() -> None:
    logs = {"loss": 0.21, "val_loss": 0.25, "val_iou": 0.74, "val_f1": 0.85}
    line = metrics_line(2, logs)
    read = parse_metrics_line(f"algo-1  | {line}\n")
    assert read is not None and read.epoch == 3
    assert read.values == pytest.approx(logs, abs=1e-4)
    nan = parse_metrics_line(metrics_line(0, {"loss": math.nan, "val_iou": 0.5}))
    assert nan is not None and math.isnan(nan.values["loss"])
    for other in ("weights_sha256=ab host=algo-1", "epoch=3 loss=", "trained 2 epochs;"):
        assert parse_metrics_line(other) is None


def _trial(name: str, state: str, objective: float | None, **values: Any) -> Trial:
    return Trial(name, values, objective, state, 4 if objective is not None else 0)


def test_the_leaderboard_ranks_complete_trials_and_never_crowns_a_pruned_one(
    tmp_path: Path,
) -> None:
    trials = [
        _trial("job-a", "complete", 0.61, learning_rate=0.003, filters=16),
        _trial("job-b", "pruned", 0.95, learning_rate=0.0004, filters=24),  # best value, pruned
        _trial("job-c", "complete", 0.74, learning_rate=0.01, filters=32),
        _trial("job-d", "failed", None, learning_rate=0.008, filters=16),
        _trial("job-e", "complete", math.nan, learning_rate=0.001, filters=16),
    ]
    assert best_trial(trials, maximize=True) == trials[2]
    assert best_trial(trials, maximize=False) == trials[0]
    assert best_trial([trials[1], trials[3]], maximize=True) is None

    write_leaderboard(tmp_path, trials, "val_iou", maximize=True)
    board = read_leaderboard(tmp_path)
    assert board is not None
    assert [trial.name for trial in board.trials] == ["job-c", "job-a", "job-e", "job-b", "job-d"]
    assert board.trials[2].objective is None  # not a number: no value
    assert board.best is not None and board.best.name == "job-c"
    rows = (tmp_path / "leaderboard.csv").read_text().splitlines()
    assert rows[0] == "rank,trial,state,val_iou,epochs,learning_rate,filters,mlflow_run_id"
    assert rows[1] == "1,job-c,complete,0.74,4,0.01,32,"
    assert (tmp_path / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "leaderboard.json").read_text())["best"] == "job-c"
    assert read_leaderboard(tmp_path / "elsewhere") is None
    with pytest.raises(ValueError, match="states"):
        write_leaderboard(tmp_path, [_trial("x", "stopped", 0.5, filters=8)], "val_iou", True)
