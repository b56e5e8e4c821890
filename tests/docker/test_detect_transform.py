"""`earthseg detect --transform --local`: the scenes through a Batch Transform job in the
serve image (the SageMaker SDK's local mode), catalogued as an in-process run would be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthseg.cli import main as cli
from tests.scenes import write_scene

pytestmark = pytest.mark.docker


def test_detect_through_a_local_transform_job_equals_detect_in_process(
    serve_image: str, test_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_scene(scenes / "dust_2024-05-01.tif", 1)
    write_scene(scenes / "dust_2024-05-02.tif", 2, size=(400, 300))
    write_scene(scenes / "one-band_2024-05-03.tif", 3, bands=1)  # refused by the server
    common = ["detect", "--scenes", str(scenes), "--model", str(test_model), "--probabilities"]
    via_job = [*common, "--transform", serve_image, "--local", "--out", str(tmp_path / "job")]
    assert cli(via_job) == 1  # the refused scene is listed, the others catalogued
    printed = capsys.readouterr().out
    assert "failed one-band_2024-05-03" in printed
    assert cli([*common, "--out", str(tmp_path / "here")]) == 1

    job = json.loads((tmp_path / "job" / "detect.json").read_text())
    here = json.loads((tmp_path / "here" / "detect.json").read_text())
    assert job["model"].startswith(f"transform {serve_image}")
    assert [s["scene"] for s in job["scenes"]] == ["dust_2024-05-01", "dust_2024-05-02"]
    assert [s["events"] for s in job["scenes"]] == [s["events"] for s in here["scenes"]]
    for entry in job["scenes"]:
        name = entry["scene"]
        with (
            rasterio.open(tmp_path / "job" / "probabilities" / f"{name}.tif") as remote,
            rasterio.open(tmp_path / "here" / "probabilities" / f"{name}.tif") as local,
            rasterio.open(scenes / f"{name}.tif") as scene,
        ):
            assert (remote.crs, remote.transform, remote.shape) == (
                scene.crs,
                scene.transform,
                scene.shape,
            )
            np.testing.assert_allclose(remote.read(1), local.read(1), atol=1e-5, equal_nan=True)
