"""`earthseg transform --local`: a Batch Transform job with the real inference image, run
by the SageMaker Python SDK's own local mode (`LocalSession`, whose `_LocalTransformJob`
starts the image with docker-compose, asks /execution-parameters, posts each file whole
and writes `<file>.out`), over a folder of small GeoTIFF scenes.

Two container runs (about 17 s each): mask GeoTIFFs; then polygons, over the same scenes
and one the model cannot read, which fails the job as it would on SageMaker.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from earthseg.aws.transform import TransformOptions, TransformResult, transform_local
from earthseg.errors import InputError
from earthseg.serve.geo import MASK_NODATA

pytestmark = pytest.mark.docker

SCENES = {
    # name: (CRS, transform, rows, cols, nodata)
    "arctic.tif": ("EPSG:3413", from_origin(-2_000_000, 1_000_000, 500, 500), 90, 130, None),
    "collar.tif": ("EPSG:32633", from_origin(500_000, 7_800_000, 250, 250), 110, 70, 0),
    "lonlat.tiff": ("EPSG:4326", from_origin(-20.0, 66.0, 0.01, 0.01), 64, 96, None),
}
ANSWERS = sorted(f"{name}.out" for name in SCENES)
ONE_BAND = "one-band.tif"  # the model takes 3 bands: the server refuses it (400)


class Run(NamedTuple):
    """A local job: its result (or error), the SDK's requests for /execution-parameters
    with their answers, what the job said, and the container's log (the SDK streams it to
    stdout)."""

    result: TransformResult | None
    error: InputError | None
    parameters: list[tuple[str, int, Any]]
    said: str
    log: str


def write_scene(path: Path, crs: str, transform: Any, rows: int, cols: int, nodata: Any) -> None:
    """A uint8 RGB scene with a bright plume, and a collar without data if `nodata`."""
    pixels = np.random.default_rng(7).integers(1, 256, (3, rows, cols), dtype=np.uint8)
    pixels[:, rows // 3 : rows // 2, cols // 4 : cols // 2] = 250
    if nodata is not None:
        pixels[:, :, : cols // 3] = nodata
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 3, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": nodata,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as scene:
        scene.write(pixels)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transform") / "scenes"
    folder.mkdir()
    for name, grid in SCENES.items():
        write_scene(folder / name, *grid)
    return folder


def run_local(
    image: str, model: Path, scenes: Path, output: Path, options: TransformOptions
) -> Run:
    """`transform_local`, recording the SDK's requests for /execution-parameters (its
    module-level helper, wrapped, still makes them)."""
    import sagemaker.core.local.entities as entities

    asked: list[tuple[str, int, Any]] = []
    request = entities._perform_request

    def recorded(url: str, pool: Any = None) -> Any:
        response, status = request(url, pool)
        if url.endswith("/execution-parameters"):
            asked.append((url, status, json.loads(response.data) if status == 200 else None))
        return response, status

    said: list[str] = []
    log = io.StringIO()
    result, error = None, None
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(log):
        patch.setattr(entities, "_perform_request", recorded)
        try:
            result = transform_local(image, model, scenes, output, options, say=said.append)
        except InputError as raised:
            error = raised
    said.append(f"took {time.perf_counter() - start:.1f} s")
    print("\n".join(said))
    return Run(result, error, asked, "\n".join(said), log.getvalue())


@pytest.fixture(scope="module")
def masks(
    serve_image: str, test_model: Path, scenes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    output = tmp_path_factory.mktemp("masks")
    return run_local(serve_image, test_model, scenes, output, TransformOptions())


@pytest.fixture(scope="module")
def polygons(
    serve_image: str, test_model: Path, scenes: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Path]:
    """The scenes and one the model cannot read, answered as polygons."""
    folder = tmp_path_factory.mktemp("polygons")
    shutil.copytree(scenes, folder / "scenes")
    with rasterio.open(scenes / "arctic.tif") as arctic:
        profile = arctic.profile | {"count": 1}
        band = arctic.read(1)
    with rasterio.open(folder / "scenes" / ONE_BAND, "w", **profile) as one_band:
        one_band.write(band, 1)
    options = TransformOptions(accept="application/geo+json")
    output = folder / "answers"
    return run_local(serve_image, test_model, folder / "scenes", output, options), output


def test_every_scene_gets_a_mask_on_its_own_grid_with_nodata_where_it_had_none(
    masks: Run, scenes: Path
) -> None:
    assert masks.result is not None, masks.error
    output = Path(masks.result.output)
    assert masks.result.outputs == [str(output / name) for name in ANSWERS]
    assert sorted(path.name for path in output.iterdir()) == ANSWERS
    for name, (*_, nodata) in SCENES.items():
        with rasterio.open(scenes / name) as scene, rasterio.open(output / f"{name}.out") as mask:
            assert (mask.crs, mask.transform, mask.shape) == (
                scene.crs,
                scene.transform,
                scene.shape,
            )
            assert (mask.count, mask.dtypes[0], mask.nodata) == (1, "uint8", MASK_NODATA)
            values = mask.read(1)
            without_data = scene.dataset_mask() == 0
        assert set(np.unique(values)) <= {0, 1, MASK_NODATA}, name
        assert np.array_equal(values == MASK_NODATA, without_data), name
        assert without_data.any() == (nodata is not None), name


def test_the_sdk_asked_the_container_for_its_execution_parameters(masks: Run) -> None:
    """Before any scene: the container says what Batch Transform should send, by the
    environment the job's model set (SAGEMAKER_MAX_PAYLOAD_IN_MB=100)."""
    ((url, status, answer),) = masks.parameters
    assert status == 200, url
    assert answer["BatchStrategy"] == "SINGLE_RECORD"
    assert answer["MaxPayloadInMB"] == 100
    assert answer["MaxConcurrentTransforms"] >= 1


def test_the_container_ran_with_the_environment_of_the_jobs_model(masks: Run) -> None:
    assert "timeout 600 s, payload up to 100 MB" in masks.log, masks.log
    assert "3 scenes" in masks.said and "Completed: 3 answers" in masks.said


def test_polygon_answers_are_feature_collections_of_the_masks_in_the_scenes_crs(
    polygons: tuple[Run, Path], masks: Run
) -> None:
    _, output = polygons
    assert masks.result is not None
    # The refused scene has no answer; the others' answers are kept, as SageMaker keeps them.
    assert sorted(path.name for path in output.iterdir()) == ANSWERS
    for name, (crs, *_) in SCENES.items():
        collection = json.loads((output / f"{name}.out").read_bytes())
        assert collection["type"] == "FeatureCollection", name
        assert CRS.from_user_input(collection["crs"]["properties"]["name"]) == CRS.from_string(crs)
        with rasterio.open(Path(masks.result.output) / f"{name}.out") as mask:
            positive = bool((mask.read(1) == 1).any())
        assert positive and collection["features"], name
        for feature in collection["features"]:
            assert feature["geometry"]["type"] in {"Polygon", "MultiPolygon"}


def test_a_scene_the_container_refuses_fails_the_job_naming_it(
    polygons: tuple[Run, Path],
) -> None:
    run, _ = polygons
    assert run.result is None and run.error is not None
    message = str(run.error)
    assert message.startswith("local transform job earthseg-"), message
    assert f"ended Failed: 1 of 4 scenes were refused ({ONE_BAND}: 400 " in message
    assert "band" in message  # the server's own reason
