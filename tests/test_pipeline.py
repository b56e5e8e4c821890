"""`earthseg pipeline`: the config file, the run folder, and resuming, run in-process
(`local.docker: never`); tests/docker/test_pipeline_local.py runs it in the images."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio
import yaml

from earthseg.cli import main as cli
from earthseg.errors import InputError
from earthseg.pipeline.config import load_config
from tests.pipeline_runs import FETCHED_STAGES, STAGES, sample_wms, small_run, stage_lines
from tests.wms import require_mapserv

REPO = Path(__file__).resolve().parents[1]


def test_the_documented_config_lists_every_option() -> None:
    """run.yaml, the reference, sets every key the schema knows, and loads."""
    from earthseg.pipeline.config import RunConfig

    documented = yaml.safe_load((REPO / "run.yaml").read_text())
    load_config(REPO / "run.yaml")
    for name, model in RunConfig.model_fields.items():
        section = model.alias or name
        assert section in documented, section
        annotation = model.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            assert set(documented[section]) == set(annotation.model_fields), section


def test_a_typo_or_a_bad_value_names_the_key(tmp_path: Path) -> None:
    path = small_run(tmp_path, deploy={"instance_typ": "ml.m5.large"})
    with pytest.raises(InputError, match=r"deploy\.instance_typ: is not an option"):
        load_config(path)
    path = small_run(tmp_path, train={"hyperparameters": {"epocks": 3}})
    with pytest.raises(InputError, match=r"epocks.*did you mean epochs"):
        load_config(path)


def test_a_serverless_size_sagemaker_does_not_offer_fails_at_load(tmp_path: Path) -> None:
    path = small_run(tmp_path, deploy={"serverless": {"memory_mb": 1500}})
    with pytest.raises(InputError, match=r"deploy\.serverless\.memory_mb: 1500 MB is not a size"):
        load_config(path)
    path = small_run(tmp_path, deploy={"serverless": {}})
    assert load_config(path).deploy.serverless.memory_mb == 6144  # type: ignore[union-attr]


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    config = load_config(small_run(tmp_path))
    assert config.export.images == tmp_path / "export" / "images"
    assert config.folder == tmp_path / "runs" / "tiny"


def test_a_cloud_run_says_what_it_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGEMAKER_ROLE", raising=False)
    assert cli(["pipeline", "--config", str(small_run(tmp_path))]) == 2
    error = capsys.readouterr().err
    for key in ("train.image", "deploy.image", "aws.s3", "aws.role"):
        assert key in error
    assert not (tmp_path / "runs").exists()  # refused before anything was written


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A run from a labels-only ImageLabeler export, its scenes fetched from a WMS that
    stays up for the module (a rerun asks the same server)."""
    require_mapserv()
    folder = tmp_path_factory.mktemp("pipeline")
    with sample_wms(folder) as url:
        config = small_run(folder, wms=url)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli(["pipeline", "--config", str(config), "--local"]) == 0
        yield config, out.getvalue()


@pytest.mark.slow
def test_one_folder_holds_the_whole_run(finished_run: tuple[Path, str]) -> None:
    config, output = finished_run
    run = config.parent / "runs" / "tiny"
    assert stage_lines(output) == dict.fromkeys(FETCHED_STAGES, "finished")
    state = json.loads((run / "state.json").read_text())
    assert list(state) == FETCHED_STAGES
    manifest = json.loads((run / "dataset" / "manifest.json").read_text())
    card = json.loads((run / "model" / "earthseg.json").read_text())
    assert card["data"]["manifest_sha256"]
    # the imagery's provenance went from the fetch through the dataset to the model
    fetched = json.loads((run / "imagery" / "fetch.json").read_text())
    assert card["data"]["imagery"] == manifest["imagery"]
    assert card["data"]["imagery"][0]["scenes"] == len(fetched["scenes"]) == len(manifest["inputs"])
    report = (run / "report" / "report.md").read_text()
    assert "Imagery fetched" in report
    # The detection over the archive's scenes: one per date, at the end of the report.
    detected = json.loads((run / "detection" / "detect.json").read_text())
    assert len(detected["scenes"]) == 4 and not detected["failures"]
    assert all(scene["date"] for scene in detected["scenes"])
    assert (run / "detection" / "catalogue.parquet").exists()
    assert report.index("## Detection") > report.index("Imagery fetched")
    assert (run / "report" / "detection_daily.png").exists()
    assert (run / "training" / "metrics.json").exists()
    assert (run / "config.yaml").exists()
    for stage in FETCHED_STAGES:
        assert (run / "logs" / f"{stage}.log").exists()
    tests = [item["image"]["file"] for item in manifest["inputs"] if item["split"] == "test"]
    assert tests
    for file in tests:
        stem = Path(file).stem
        scene_file = run / "imagery" / "images" / file
        with (
            rasterio.open(run / "predictions" / f"{stem}.tif") as mask,
            rasterio.open(scene_file) as scene,
        ):
            assert (mask.crs, mask.transform, mask.shape) == (
                scene.crs,
                scene.transform,
                scene.shape,
            )
        assert json.loads((run / "predictions" / f"{stem}.geojson").read_text())["type"] == (
            "FeatureCollection"
        )
    assert (run / "report" / "report.html").exists()
    assert (run / "report" / "report.md").exists()


@pytest.mark.slow
def test_a_rerun_keeps_every_finished_stage(
    finished_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = finished_run
    model = config.parent / "runs" / "tiny" / "model" / "earthseg.json"
    before = model.stat().st_mtime_ns
    assert cli(["pipeline", "--config", str(config), "--local"]) == 0
    assert stage_lines(capsys.readouterr().out) == dict.fromkeys(FETCHED_STAGES, "kept")
    assert model.stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_changed_option_redoes_its_stage_and_the_later_ones(
    finished_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """On a copy of the shared run (the same export, another run folder)."""
    config, _ = finished_run
    runs = config.parent / "runs"
    shutil.copytree(runs / "tiny", runs / "changed", symlinks=True)
    settings = yaml.safe_load(config.read_text())
    settings.update(run_dir="runs/changed", invoke={"threshold": 0.99})
    changed = config.parent / "changed.yaml"
    changed.write_text(yaml.safe_dump(settings))
    assert cli(["pipeline", "--config", str(changed), "--local"]) == 0
    assert stage_lines(capsys.readouterr().out) == {
        "fetch": "kept",
        "preprocess": "kept",
        "train": "kept",
        "invoke": "finished",
        "detect": "kept",  # its own threshold: the invoke stage's does not concern it
        "report": "finished",
    }


@pytest.mark.slow
def test_a_failed_stage_resumes_without_redoing_the_finished_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run fails in the report stage (made to fail here); the rerun keeps
    everything before it."""
    import earthseg.report

    def broken(*args: object, **kwargs: object) -> None:
        raise InputError("the report", "failed on purpose", "rerun")

    monkeypatch.setattr(earthseg.report, "write_report", broken)
    config = small_run(tmp_path)
    assert cli(["pipeline", "--config", str(config), "--local"]) == 2
    first = capsys.readouterr()
    assert "failed on purpose" in first.err
    assert stage_lines(first.out) == {**dict.fromkeys(STAGES[:-1], "finished"), "report": "running"}

    monkeypatch.undo()
    assert cli(["pipeline", "--config", str(config), "--local"]) == 0
    second = stage_lines(capsys.readouterr().out)
    assert second == {**dict.fromkeys(STAGES[:-1], "kept"), "report": "finished"}


def test_a_run_without_test_scenes_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="leaves the test split empty"):
        load_config(small_run(tmp_path, preprocess={"splits": [0.75, 0.25, 0.0]}))
    with pytest.raises(InputError, match="leaves train or validation empty"):
        load_config(small_run(tmp_path, preprocess={"splits": [0.0, 0.5, 0.5]}))


def test_a_name_that_would_make_an_over_long_sagemaker_name_is_refused_at_load(
    tmp_path: Path,
) -> None:
    """Endpoints are named <name>-<24-character timestamp>, model package groups <name>
    (or register.group): 63 characters at most. Hyphens count too."""
    assert load_config(small_run(tmp_path, name="a" * 39)).name == "a" * 39
    with pytest.raises(InputError, match=r"name: 'a{40}' has 40 characters: the endpoint name"):
        load_config(small_run(tmp_path, name="a" * 40))
    with pytest.raises(InputError, match=r"the endpoint name .*\(use at most 39 characters\)"):
        load_config(small_run(tmp_path, name="a" + "-" * 20 + "b" * 20))
    with pytest.raises(InputError, match=r"register.group: .* is not a SageMaker name"):
        load_config(small_run(tmp_path, register={"group": "dust plumes"}))
    with pytest.raises(InputError, match=r"name: 'dust_plumes' is not a SageMaker name"):
        load_config(small_run(tmp_path, name="dust_plumes"))
