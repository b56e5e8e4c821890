"""`earthseg detect`: scenes from a folder or fetched from the WMS stand-in, the model
in-process, masks as COGs on each scene's grid, events that match the masks, failures
listed while the run goes on, and a rerun that keeps what was done."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from earthseg.cli import main as cli
from earthseg.detect.models import InProcessModel
from earthseg.detect.options import DetectOptions, parse_bbox, parse_dates
from earthseg.detect.run import detect
from earthseg.detect.scenes import folder_scenes
from earthseg.errors import InputError
from tests.scenes import write_scene
from tests.wms import MAY_1, MAY_2, MAY_5, Standin

if TYPE_CHECKING:
    from tests.aws_emulator import Emulator


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_scene(folder / "dust_2024-05-01.tif", 1)
    write_scene(folder / "dust_2024-05-03.tif", 2, size=(700, 500))
    shutil.copy(real_data / "RGB.byte.tif", folder / "landsat.tif")  # UTM, no date
    return folder


def positive_pixels(mask: Path) -> int:
    with rasterio.open(mask) as dataset:
        return int((dataset.read(1) == 1).sum())


def test_every_scene_gets_a_cog_mask_on_its_grid_and_events_that_match_it(
    scene_folder: Path, test_model: Path, tmp_path: Path
) -> None:
    options = DetectOptions(probabilities=True)
    result = detect(
        folder_scenes(scene_folder), InProcessModel(test_model, options), tmp_path, options
    )
    assert not result.failures and len(result.scenes) == 3
    for scene in result.scenes:
        name = scene.key.scene
        mask, probabilities = (
            tmp_path / "masks" / f"{name}.tif",
            tmp_path / "probabilities" / f"{name}.tif",
        )
        with rasterio.open(scene_folder / f"{name}.tif") as source, rasterio.open(mask) as out:
            assert (out.crs, out.transform, out.shape) == (
                source.crs,
                source.transform,
                source.shape,
            )
            assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            nodata = source.dataset_mask() == 0
            assert (out.read(1)[nodata] == 255).all() and nodata.any()
        with rasterio.open(probabilities) as prob:
            assert prob.dtypes[0] == "float32" and np.isnan(prob.read(1)[nodata]).all()
        # The events are the mask's positive pixels, no more, no fewer.
        assert sum(event.pixels for event in scene.events) == positive_pixels(mask)
    dated = {scene.key.scene: scene.key.date for scene in result.scenes}
    assert dated == {
        "dust_2024-05-01": datetime.date(2024, 5, 1),
        "dust_2024-05-03": datetime.date(2024, 5, 3),
        "landsat": None,
    }
    catalogue = gpd.read_parquet(tmp_path / "catalogue.parquet")
    assert len(catalogue) == result.events > 0
    assert catalogue.crs == "EPSG:4326"
    from_geojson = gpd.read_file(tmp_path / "catalogue.geojson")
    assert len(from_geojson) == len(catalogue)
    daily = pd.read_csv(tmp_path / "daily.csv")
    assert list(daily["date"].dropna()) == ["2024-05-01", "2024-05-03"]  # + undated
    record = json.loads((tmp_path / "detect.json").read_text())
    assert record["model"].startswith("onnx sha256:") and record["failures"] == []


def test_a_bad_scene_is_listed_and_the_run_goes_on_then_a_rerun_keeps_the_rest(
    scene_folder: Path, test_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = tmp_path / "scenes"
    shutil.copytree(scene_folder, scenes)
    write_scene(scenes / "one-band.tif", 3, bands=1)
    (scenes / "garbage.tif").write_bytes(b"not a tiff at all")
    out = tmp_path / "out"
    args = ["detect", "--scenes", str(scenes), "--model", str(test_model), "--out", str(out)]
    assert cli(args) == 1
    printed = capsys.readouterr().out
    assert "failed one-band" in printed and "1 bands and the model takes 3" in printed
    assert "failed garbage" in printed and "3 scenes" in printed
    record = json.loads((out / "detect.json").read_text())
    assert sorted(f["scene"] for f in record["failures"]) == ["garbage", "one-band"]
    assert not (out / "masks" / "one-band.tif").exists()

    masks = {p.name: p.stat().st_mtime_ns for p in (out / "masks").iterdir()}
    (scenes / "one-band.tif").unlink()
    (scenes / "garbage.tif").unlink()
    assert cli(args) == 0
    assert "3 scenes (3 kept from before)" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "masks").iterdir()} == masks

    assert cli([*args, "--threshold", "0.9"]) == 0  # other options: detected again
    assert "(0 kept from before)" in capsys.readouterr().out


def test_scenes_fetched_for_an_area_and_days_one_per_day_and_layer(
    standin: Standin, wms_url: str, test_model: Path, tmp_path: Path
) -> None:
    # `wide` (May 1) and `tall` (May 2 and 5) share this corner; May 3 and 4 have nothing.
    west, south, east, north = standin.scenes["wide"].bounds(slice(10, 130), slice(20, 160))
    out = tmp_path / "detect"
    code = cli(
        [
            "detect",
            "--bbox",
            f"{west},{south},{east},{north}",
            "--dates",
            f"{MAY_1}..{MAY_5}",
            "--wms",
            wms_url,
            "--resolution",
            "0.01deg",
            "--model",
            str(test_model),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "detect.json").read_text())
    days = sorted(s["date"] for s in record["scenes"])
    assert days == [MAY_1.isoformat(), MAY_2.isoformat(), MAY_5.isoformat()]
    for entry in record["scenes"]:
        with rasterio.open(out / entry["mask"]) as mask:
            assert mask.shape == (120, 140)
            assert mask.bounds == pytest.approx((west, south, east, north))
        assert entry["layer"] == "MODIS_Aqua_CorrectedReflectance_TrueColor"


@pytest.mark.parametrize(
    ("text", "problem"),
    [("1,2,3", "four numbers"), ("10,5,-10,6", "not a box"), ("170,0,190,1", "not a box")],
)
def test_a_bad_bbox_is_refused_with_the_form(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as error:
        parse_bbox(text)
    assert "WEST,SOUTH,EAST,NORTH" in str(error.value)


def test_dates_are_a_range_of_days_both_included() -> None:
    assert parse_dates("2024-02-27..2024-03-01") == [
        datetime.date(2024, 2, 27),
        datetime.date(2024, 2, 28),
        datetime.date(2024, 2, 29),
        datetime.date(2024, 3, 1),
    ]
    assert parse_dates("2024-05-01") == [datetime.date(2024, 5, 1)]
    with pytest.raises(InputError, match="ends before it starts"):
        parse_dates("2024-05-02..2024-05-01")
    with pytest.raises(InputError, match="2024-02-30"):
        parse_dates("2024-02-30..2024-03-01")


def test_detect_through_a_sagemaker_transform_job_asks_for_probabilities(
    aws_env: Emulator, scene_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto takes the job but runs no container: every scene is then listed as failed
    with the reason, after the job SageMaker would run was asked for."""
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="earthseg-test")
    s3.put_object(Bucket="earthseg-test", Key="model/model.tar.gz", Body=b"model")
    for name in ("dust_2024-05-01.tif", "dust_2024-05-03.tif"):
        s3.upload_file(str(scene_folder / name), "earthseg-test", f"scenes/{name}")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/earthseg-serve:0.1.0-gpu"
    args = [
        "detect", "--scenes", "s3://earthseg-test/scenes/", "--transform", image,
        "--model", "s3://earthseg-test/model/model.tar.gz", "--out", str(tmp_path),
        "--role", "arn:aws:iam::123456789012:role/earthseg-sagemaker",
        "--instance-type", "ml.g4dn.xlarge", "--ami-version", "al2-ami-sagemaker-batch-gpu-535",
    ]  # fmt: skip
    assert cli(args) == 1
    (model,) = aws_env.received("CreateModel")
    assert model["PrimaryContainer"]["Environment"]["EARTHSEG_OUTPUT"] == "probability"
    (job,) = aws_env.received("CreateTransformJob")
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].startswith(
        "s3://earthseg-test/scenes"
    )
    assert job["TransformOutput"]["Accept"] == "image/tiff"
    assert job["TransformResources"]["TransformAmiVersion"] == "al2-ami-sagemaker-batch-gpu-535"
    # a host whose driver cannot run the serve image's CUDA 12 is refused before the job
    old_driver = [
        "--instance-type",
        "ml.g5.xlarge",
        "--ami-version",
        "al2-ami-sagemaker-batch-gpu-470",
    ]
    assert cli([*args[:-4], *old_driver]) == 2
    refused = capsys.readouterr().err
    assert "its transform host (al2-ami-sagemaker-batch-gpu-470) has NVIDIA driver 470" in refused
    assert "needs driver 525" in refused
    assert len(aws_env.received("CreateTransformJob")) == 1
    record = json.loads((tmp_path / "detect.json").read_text())
    assert [f["scene"] for f in record["failures"]] == ["dust_2024-05-01", "dust_2024-05-03"]
    assert all("no answer from the transform job" in f["reason"] for f in record["failures"])
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == [
        "dust_2024-05-01.tif",
        "dust_2024-05-03.tif",
    ]


def test_transform_options_without_transform_are_refused(
    scene_folder: Path, test_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["detect", "--scenes", str(scene_folder), "--model", str(test_model)]
    assert cli([*args, "--out", str(tmp_path), "--local"]) == 2
    assert "apply to --transform" in capsys.readouterr().err
    serve = "earthseg-serve:cpu"
    assert cli([*args, "--out", str(tmp_path), "--transform", serve]) == 2  # local paths
    assert "add --local" in capsys.readouterr().err
    local = [*args, "--out", str(tmp_path), "--transform", serve, "--local"]
    assert cli([*local, "--ami-version", "al2-ami-sagemaker-batch-gpu-535"]) == 2
    assert "--ami-version: picks a SageMaker host" in capsys.readouterr().err
