"""`earthseg runs` and `earthseg runs compare`: runs tracked into a real SQLite store by the
training job's own tracking (`start_tracking` and its `Tracking`, as `earthseg train`
calls them, on real datasets and a real exported model; only the training loop is left
out, its per-epoch and final values given), then listed and compared through the CLI."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from earthseg.cli import main
from earthseg.contracts.manifest import file_digest
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.export import write_sample_export
from earthseg.tracked_runs import TrackedRun, compare
from earthseg.train.environment import TrainingEnvironment
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.tracking import (
    DATASET_URI_ENV,
    EXPERIMENT_ENV,
    JOB_NAME_ENV,
    PARENT_RUN_ENV,
    TRACKING_URI_ENV,
    end_run,
    local_store_uri,
    serve_store,
    start_parent_run,
    start_tracking,
)
from tests.mlflow_server import closed_port_uri

BASE = {"epochs": "3", "batch_size": "8", "learning_rate": "0.001", "filters": "8", "depth": "2"}
COLUMNS = [
    "run",
    "name",
    "started (UTC)",
    "status",
    "experiment",
    "dataset",
    "learning_rate",
    "batch_size",
    "filters",
    "depth",
    "epochs",
    "augment",  # other hyperparameters the runs differ in; patience, ... not
    "seed",
    "epochs run",
    "validation_iou",
    "test_iou",
    "parent",
]


@dataclass(frozen=True)
class Store:
    runs: Path  # the runs folder holding mlflow.db
    ids: dict[str, str]  # what each run is (see `store`) -> run id
    digests: dict[str, str]  # dataset -> manifest digest


def scores(validation_iou: float, test_iou: float) -> dict[str, dict[str, float]]:
    return {
        "validation": {"iou": validation_iou, "f1": validation_iou + 0.1},
        "test": {"iou": test_iou, "f1": test_iou + 0.1},
    }


def track(
    patch: pytest.MonkeyPatch,
    uri: str,
    base: Path,
    dataset: Path,
    *,
    name: str,
    experiment: str,
    hyperparameters: dict[str, str],
    val_ious: list[float],
    final: dict[str, dict[str, float]] | None,
    model: Path,
    parent: str | None = None,
) -> str:
    """A training job's run as `earthseg train` tracks it, in the environment a launcher
    gives the job; None for `final`: the job failed after its epochs. Returns the run id."""
    environment = TrainingEnvironment(
        base_dir=base,
        hyperparameters=Hyperparameters.from_mapping(hyperparameters),
        channels={split: dataset / split for split in ("train", "validation", "test")},
        hosts=["algo-1"],
        current_host="algo-1",
    )
    patch.setenv(TRACKING_URI_ENV, uri)
    patch.setenv(EXPERIMENT_ENV, experiment)
    patch.setenv(JOB_NAME_ENV, name)
    patch.setenv(DATASET_URI_ENV, f"s3://bucket/datasets/{dataset.parent.name}/")
    if parent:
        patch.setenv(PARENT_RUN_ENV, parent)
    else:
        patch.delenv(PARENT_RUN_ENV, raising=False)
    tracking = start_tracking(environment)
    run_id = tracking.run_id
    assert run_id is not None
    for epoch, iou in enumerate(val_ious, start=1):
        tracking.log_epoch(epoch, {"loss": 1 - iou, "val_loss": 1.1 - iou, "val_iou": iou})
    if final is None:
        tracking.end("FAILED")
        return run_id
    tracking.log_results(
        threshold=0.45,
        metrics=final,
        epochs=len(val_ious),
        model_dir=model,
        output_dir=base / "output",
    )
    assert tracking.active, "tracking turned itself off"
    tracking.end()
    time.sleep(0.01)  # distinct start times, so "newest first" has one answer
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, test_model: Path) -> Store:
    """Five runs, oldest first: base (dust, dataset a), a tuning parent and its trial
    (learning rate and seed changed, stopped after 2 epochs), other (experiment other,
    dataset b, 16 filters, no augmentation), failed (one epoch, no final metrics, the same
    job name as base)."""
    root = tmp_path_factory.mktemp("runs-store")
    datasets, digests = {}, {}
    for name, seed in (("a", 5), ("b", 6)):
        write_sample_export(root / name / "export", scenes=4, size=128, seed=seed)
        datasets[name] = root / name / "dataset"
        build_dataset(
            root / name / "export" / "images",
            root / name / "export" / "labels",
            datasets[name],
            PreprocessOptions(tile_size=32, splits=(0.5, 0.25, 0.25)),
        )
        digests[name] = file_digest(datasets[name] / "manifest.json")
    runs = root / "runs"
    uri = local_store_uri(runs)
    ids = {}
    with pytest.MonkeyPatch.context() as patch:  # the jobs' environment, for the jobs only
        common = {"model": test_model, "experiment": "dust"}
        ids["base"] = track(
            patch, uri, root / "job1", datasets["a"], name="dust-base", hyperparameters=BASE,
            val_ious=[0.4, 0.5, 0.6], final=scores(0.6, 0.55), **common,
        )  # fmt: skip
        ids["parent"] = start_parent_run(uri, "dust", "dust-tuning", {"trials": 1})
        ids["trial"] = track(
            patch, uri, root / "job2", datasets["a"], name="dust-trial-1",
            hyperparameters={**BASE, "learning_rate": "0.003", "seed": "1"},
            val_ious=[0.65, 0.7], final=scores(0.7, 0.62), parent=ids["parent"], **common,
        )  # fmt: skip
        end_run(uri, ids["parent"])
        ids["other"] = track(
            patch, uri, root / "job3", datasets["b"], name="dust-other",
            hyperparameters={**BASE, "filters": "16", "augment": "false"},
            val_ious=[0.5, 0.6, 0.65], final=scores(0.65, 0.66),
            model=test_model, experiment="other",
        )  # fmt: skip
        ids["failed"] = track(
            patch, uri, root / "job4", datasets["a"], name="dust-base", hyperparameters=BASE,
            val_ious=[0.3], final=None, **common,
        )  # fmt: skip
        mlflow.set_tracking_uri(None)  # the jobs' global store (and $MLFLOW_TRACKING_URI)
    return Store(runs, ids, digests)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> list[dict[str, str]]:
    """The listing's lines as rows keyed by the header's columns (cells are separated by
    two spaces or more)."""
    header, *lines = out.splitlines()
    columns = re.split(r"\s{2,}", header.strip())
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert all(len(row) == len(columns) for row in rows), out
    return [dict(zip(columns, row, strict=True)) for row in rows]


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def test_the_listing_is_newest_first_with_data_hyperparameters_epochs_and_scores(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["runs", "--runs", str(store.runs)], capsys)
    assert code == 0, err
    assert re.split(r"\s{2,}", out.splitlines()[0]) == COLUMNS
    rows = table(out)
    assert [row["run"] for row in rows] == [
        store.ids[run][:8] for run in ("failed", "other", "trial", "parent", "base")
    ]
    failed, other, trial, parent, base = rows
    assert base == {
        "run": store.ids["base"][:8],
        "name": "dust-base",
        "started (UTC)": base["started (UTC)"],
        "status": "FINISHED",
        "experiment": "dust",
        "dataset": short(store.digests["a"]),
        "learning_rate": "0.001",
        "batch_size": "8",
        "filters": "8",
        "depth": "2",
        "epochs": "3",
        "augment": "true",
        "seed": "0",
        "epochs run": "3",
        "validation_iou": "0.6000",
        "test_iou": "0.5500",
        "parent": "-",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", base["started (UTC)"])
    assert (trial["learning_rate"], trial["epochs run"], trial["validation_iou"]) == (
        "0.003",
        "2",
        "0.7000",
    )
    assert trial["parent"] == store.ids["parent"][:8]
    assert (other["experiment"], other["dataset"], other["filters"], other["augment"]) == (
        "other",
        short(store.digests["b"]),
        "16",
        "false",
    )
    # a failed job: its epoch counted, its missing scores "-"
    assert (failed["status"], failed["epochs run"]) == ("FAILED", "1")
    assert (failed["validation_iou"], failed["test_iou"]) == ("-", "-")
    # the tuning's own run: no dataset, no hyperparameters of a job
    assert parent["name"] == "dust-tuning"
    assert {parent[c] for c in ("dataset", "learning_rate", "epochs run", "test_iou")} == {"-"}


def test_sorting_puts_the_best_first_and_runs_without_the_metric_last(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ["--runs", str(store.runs)]
    code, out, err = run_cli(["runs", *runs, "--sort", "validation_iou"], capsys)
    assert code == 0, err
    order = [row["name"] for row in table(out)]
    assert order == ["dust-trial-1", "dust-other", "dust-base", "dust-base", "dust-tuning"]

    # a loss: lowest first; the sorting metric gets a column; --limit keeps the best
    code, out, err = run_cli(["runs", *runs, "--sort", "val_loss", "--limit", "2"], capsys)
    assert code == 0, err
    rows = table(out)
    assert [row["run"] for row in rows] == [store.ids["trial"][:8], store.ids["other"][:8]]
    assert [row["val_loss"] for row in rows] == ["0.4000", "0.4500"]

    code, _, err = run_cli(["runs", *runs, "--sort", "val_iuo"], capsys)
    assert code == 2
    assert "--sort: no listed run has the metric 'val_iuo'" in err
    assert "validation_iou" in err and "val_iou" in err  # the metrics there are

    assert run_cli(["runs", *runs, "--limit", "0"], capsys)[0] == 2


def test_one_experiment_by_name_or_from_the_run_config(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run_cli(["runs", "--runs", str(store.runs), "--experiment", "other"], capsys)
    assert code == 0, err
    assert [row["name"] for row in table(out)] == ["dust-other"]

    code, _, err = run_cli(["runs", "--runs", str(store.runs), "--experiment", "dusty"], capsys)
    assert code == 2
    assert "--experiment: no experiment 'dusty'" in err and "Default, dust, other" in err

    # a run config named dust, tracked locally: its experiment in its runs folder's store
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "dust", "export": {"labels": "labels"}}))
    (tmp_path / "runs").symlink_to(store.runs)
    code, out, err = run_cli(["runs", "--config", str(config)], capsys)
    assert code == 0, err
    assert {row["experiment"] for row in table(out)} == {"dust"}
    assert len(table(out)) == 4

    # its tracking: section, naming the store and an experiment without runs
    config.write_text(
        yaml.safe_dump(
            {
                "name": "dust",
                "export": {"labels": "labels"},
                "tracking": {"uri": f"sqlite:///{store.runs / 'mlflow.db'}", "experiment": "other"},
            }
        )
    )
    code, out, err = run_cli(["runs", "--config", str(config)], capsys)
    assert code == 0, err
    assert [row["name"] for row in table(out)] == ["dust-other"]


def test_the_json_form_has_every_run_whole(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["runs", "--runs", str(store.runs), "--json"], capsys)
    assert code == 0, err
    runs = json.loads(out)
    assert [run["run_id"] for run in runs] == [
        store.ids[run] for run in ("failed", "other", "trial", "parent", "base")
    ]
    trial = runs[2]
    assert trial["name"] == "dust-trial-1"
    assert trial["experiment"] == "dust"
    assert trial["status"] == "FINISHED"
    assert trial["started"].endswith("+00:00")
    assert trial["parent"] == store.ids["parent"]
    assert trial["dataset"] == {"digest": store.digests["a"], "source": "s3://bucket/datasets/a/"}
    assert (
        trial["hyperparameters"]
        == Hyperparameters.from_mapping(
            {**BASE, "learning_rate": "0.003", "seed": "1"}
        ).model_dump()
    )
    assert trial["epochs_run"] == 2
    assert trial["metrics"]["validation_iou"] == pytest.approx(0.7)
    assert trial["metrics"]["threshold"] == pytest.approx(0.45)
    assert trial["metrics"]["val_iou"] == pytest.approx(0.7)  # the last epoch's
    assert runs[3]["hyperparameters"] == {"trials": 1}  # the tuning's run
    assert runs[0]["dataset"]["digest"] == store.digests["a"]

    code, out, _ = run_cli(["runs", "--runs", str(store.runs), "--experiment", "Default"], capsys)
    assert (code, out) == (0, f"no tracked runs in experiment Default at {store_uri(store)}\n")
    code, out, _ = run_cli(
        ["runs", "--runs", str(store.runs), "--experiment", "Default", "--json"], capsys
    )
    assert (code, json.loads(out)) == (0, [])


def store_uri(store: Store) -> str:
    return local_store_uri(store.runs)


def test_compare_shows_the_params_that_differ_and_the_metrics_b_minus_a(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    base, trial = store.ids["base"], store.ids["trial"]
    # A by a prefix of its id, B by its name; the store given before `compare`
    code, out, err = run_cli(
        ["runs", "--runs", str(store.runs), "compare", base[:6].upper(), "dust-trial-1"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0])[:3] == ["A", base, "dust-base"]
    assert re.split(r"\s{2,}", lines[1])[:3] == ["B", trial, "dust-trial-1"]
    assert "experiment dust" in lines[0] and "FINISHED" in lines[1]
    section = lines[lines.index("") + 1 :]
    params = section[: section.index("")]
    assert [re.split(r"\s{2,}", line.strip()) for line in params] == [
        ["params", "A", "B"],
        ["learning_rate", "0.001", "0.003"],
        ["seed", "0", "1"],
        ["17 params the same"],  # 9 hyperparameters and 10 data.* params, less 2
    ]
    section = section[section.index("") + 1 :]
    metrics = [re.split(r"\s{2,}", line.strip()) for line in section[: section.index("")]]
    assert metrics == [
        ["metrics", "A", "B", "B-A"],
        ["epochs run", "3", "2", "-1"],
        ["validation_iou", "0.6000", "0.7000", "+0.1000"],
        ["test_iou", "0.5500", "0.6200", "+0.0700"],
        ["test_f1", "0.6500", "0.7200", "+0.0700"],
        ["threshold", "0.4500", "0.4500", "+0.0000"],
        ["validation_f1", "0.7000", "0.8000", "+0.1000"],
    ]
    assert section[-1] == (
        f"dataset: the same (manifest {store.digests['a']}, s3://bucket/datasets/a/)"
    )


def test_compare_names_the_datasets_when_they_differ_and_missing_metrics(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    other, failed = store.ids["other"], store.ids["failed"]
    # the store given after `compare`
    code, out, err = run_cli(
        ["runs", "compare", other, failed[:4], "--runs", str(store.runs)], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    names = [re.split(r"\s{2,}", line.strip())[0] for line in lines]
    differing = names[names.index("params") + 1 : names.index("metrics") - 1]
    # hyperparameters first, then the dataset's params; what is the same only counted
    assert differing[:2] == ["filters", "augment"]
    assert differing[2:4] == ["data.manifest_sha256", "data.source"]
    assert all(name.startswith("data.") for name in differing[2:-1])
    assert re.fullmatch(r"\d+ params the same", differing[-1])
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert ["validation_iou", "0.6500", "-", "-"] in rows
    assert ["epochs run", "3", "1", "-2"] in rows
    digests = [short(store.digests["b"]), short(store.digests["a"])]
    assert ["data.manifest_sha256", *digests] in rows  # whole in the dataset lines
    assert lines[-3:] == [
        "dataset: different",
        f"  A  manifest {store.digests['b']}  s3://bucket/datasets/b/",
        f"  B  manifest {store.digests['a']}  s3://bucket/datasets/a/",
    ]


def test_compare_refuses_unknown_ambiguous_and_identical_runs(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ["--runs", str(store.runs)]
    trial = store.ids["trial"]

    code, _, err = run_cli(["runs", "compare", "dust-base", trial, *runs], capsys)
    assert code == 2
    assert "A: 'dust-base' names 2 runs:" in err
    assert store.ids["base"][:8] in err and store.ids["failed"][:8] in err
    assert "give more characters of the run id" in err

    code, _, err = run_cli(["runs", "compare", trial, "no-such-job", *runs], capsys)
    assert code == 2
    assert "B: no run in the store at sqlite:///" in err and "'no-such-job'" in err

    code, _, err = run_cli(["runs", "compare", trial[:3], trial, *runs], capsys)
    assert code == 2 and "an id prefix needs 4 characters or more" in err

    code, _, err = run_cli(["runs", "compare", trial[:5], "dust-trial-1", *runs], capsys)
    assert code == 2 and "A and B: both name run" in err

    # runs of another experiment are not looked at
    code, _, err = run_cli(
        ["runs", "compare", trial, "dust-other", *runs, "--experiment", "dust"], capsys
    )
    assert code == 2 and "B: no run in experiment dust at" in err

    code, _, err = run_cli(
        ["runs", "--runs", "x", "compare", "a", "b", "--tracking-uri", "http://h:1"], capsys
    )
    assert code == 2 and "name the store twice" in err


def test_a_store_that_is_not_there_or_not_reachable_is_named_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["runs", "--runs", str(tmp_path)], capsys)
    assert code == 2
    assert f"{tmp_path}: holds no tracking store" in err and "--tracking-uri" in err
    assert not (tmp_path / "mlflow.db").exists()  # not made by looking

    uri = closed_port_uri()
    started = time.monotonic()
    code, _, err = run_cli(["runs", "--tracking-uri", uri.replace("//", "//me:secret@")], capsys)
    assert time.monotonic() - started < 30
    assert code == 2
    assert f"--tracking-uri: the tracking store {uri} cannot be read" in err
    assert "secret" not in err

    code, _, err = run_cli(["runs", "--tracking-uri", "localhost:5000"], capsys)
    assert code == 2 and "--tracking-uri: 'localhost:5000' is not a tracking URI" in err


def test_a_tracking_server_is_read_like_the_file(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same store through `mlflow server` (as a remote or SageMaker-managed one)."""
    with serve_store(store_uri(store), tmp_path / "server.log") as url:
        code, out, err = run_cli(["runs", "--tracking-uri", url, "--sort", "test_iou"], capsys)
        assert code == 0, err
        assert [row["name"] for row in table(out)][:3] == [
            "dust-other",
            "dust-trial-1",
            "dust-base",
        ]
        code, out, err = run_cli(
            ["runs", "compare", store.ids["base"], "dust-other", "--tracking-uri", url], capsys
        )
        assert code == 0, err
        assert "dataset: different" in out


def test_compare_orders_params_hyperparameters_data_then_imagery_by_scene() -> None:
    def run(run_id: str, params: dict[str, str]) -> TrackedRun:
        return TrackedRun(run_id, None, "x", "FINISHED", None, params, {}, None, None)

    names = ["zoom", "imagery.10.url", "data.source", "imagery.2.url", "filters", "epochs", "a"]
    comparison = compare(
        run("a" * 32, {name: "1" for name in names} | {"same": "s"}),
        run("b" * 32, {name: "2" for name in names[1:]} | {"same": "s"}),
    )
    assert [d.name for d in comparison.params] == [
        "filters", "epochs", "a", "zoom", "data.source", "imagery.2.url", "imagery.10.url",
    ]  # fmt: skip
    assert (comparison.params[3].a, comparison.params[3].b) == ("1", None)
    assert comparison.same_params == 1
    assert comparison.same_dataset is None
