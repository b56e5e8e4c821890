"""`earthseg pipeline --local` end to end in the real images, from where scientists start:
a labels-only ImageLabeler export whose scenes are fetched from a WMS standing in for GIBS,
preprocessing in the training image with the Processing mounts, training through the
SageMaker SDK's local mode, serving in the serve image, predicting over HTTP, the report;
then a failed run resumed without redoing what finished."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio
import yaml

from earthseg.cli import main as cli
from tests.pipeline_runs import FETCHED_STAGES, sample_wms, small_run, stage_lines
from tests.wms import require_mapserv

pytestmark = pytest.mark.docker


@pytest.fixture
def wms_sample(tmp_path: Path) -> Iterator[str]:
    """The sample's WMS URL; its labels-only export is in tmp_path/sample."""
    require_mapserv()
    with sample_wms(tmp_path) as url:
        yield url


def test_pipeline_local_runs_every_stage_in_the_images_and_resumes_after_a_failure(
    train_image: str,
    serve_image: str,
    wms_sample: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = wms_sample
    broken = {"train_image": train_image, "serve_image": "earthseg-serve:no-such-tag"}
    config = small_run(tmp_path, docker="always", wms=url, local=broken)
    assert cli(["pipeline", "--config", str(config), "--local"]) == 2
    first = capsys.readouterr()
    assert "earthseg-serve:no-such-tag" in first.err and "make build" in first.err
    assert stage_lines(first.out) == {
        "fetch": "finished",
        "preprocess": "finished",
        "train": "finished",
        "invoke": "running",
    }

    settings = yaml.safe_load(config.read_text())
    settings["local"]["serve_image"] = serve_image
    config.write_text(yaml.safe_dump(settings))
    assert cli(["pipeline", "--config", str(config), "--local"]) == 0
    second = capsys.readouterr().out
    assert stage_lines(second) == {
        "fetch": "kept",
        "preprocess": "kept",
        "train": "kept",
        "invoke": "finished",
        "detect": "finished",
        "report": "finished",
    }

    run = tmp_path / "runs" / "tiny"
    assert list(json.loads((run / "state.json").read_text())) == FETCHED_STAGES
    # Each stage ran in its image: the containers' own logs are in the run folder.
    assert "tiles from 4 scenes" in (run / "logs" / "preprocess-container.log").read_text()
    assert "worker" in (run / "logs" / "deploy-container.log").read_text()
    card = json.loads((run / "model" / "earthseg.json").read_text())
    assert card["training"]["hyperparameters"]["epochs"] == 2
    # the fetched scenes' provenance crossed both containers into the model card
    manifest = json.loads((run / "dataset" / "manifest.json").read_text())
    assert card["data"]["imagery"] == manifest["imagery"] and manifest["imagery"][0]["url"] == url
    assert (run / "training" / "metrics.json").exists()
    tests = [item["image"]["file"] for item in manifest["inputs"] if item["split"] == "test"]
    for file in tests:
        with rasterio.open(run / "predictions" / f"{Path(file).stem}.tif") as mask:
            assert mask.nodata == 255
            assert set(map(int, set(mask.read(1).ravel()))) <= {0, 1, 255}
    assert (run / "report" / "report.html").exists()
    # The detection went through the serve container too: every scene, and the report.
    detected = json.loads((run / "detection" / "detect.json").read_text())
    assert len(detected["scenes"]) == 4 and not detected["failures"]
    assert detected["model"].startswith("run ")
    assert "## Detection" in (run / "report" / "report.md").read_text()
