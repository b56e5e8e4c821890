"""`earthseg transform --local`: a Batch Transform job with the real inference image, run
by the SageMaker Python SDK's own local mode (`LocalSession`, whose `_LocalTransformJob`
starts the image with docker-compose, asks /execution-parameters, posts each file whole
and writes `<file>.out`), over a folder of small GeoTIFF scenes.

Two container runs, one per answer type: mask GeoTIFFs, then polygons.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from earthseg.aws.transform import TransformOptions, TransformResult, transform_local
from earthseg.serve.geo import MASK_NODATA

pytestmark = pytest.mark.docker

SCENES = {
    # name: (CRS, transform, rows, cols, nodata)
    "arctic.tif": ("EPSG:3413", from_origin(-2_000_000, 1_000_000, 500, 500), 90, 130, None),
    "collar.tif": ("EPSG:32633", from_origin(500_000, 7_800_000, 250, 250), 110, 70, 0),
    "lonlat.tiff": ("EPSG:4326", from_origin(-20.0, 66.0, 0.01, 0.01), 64, 96, None),
}


class Run(NamedTuple):
    """A finished local job: its result, what the SDK asked /execution-parameters and
    heard, what the job said, and the container's log (which the SDK streams to stdout)."""

    result: TransformResult
    parameters: list[tuple[str, int, Any]]
    said: str
    log: str


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three uint8 RGB scenes on different grids; collar.tif has a nodata (0) border."""
    folder = tmp_path_factory.mktemp("transform") / "scenes"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name, (crs, transform, rows, cols, nodata) in SCENES.items():
        pixels = rng.integers(1, 256, (3, rows, cols), dtype=np.uint8)
        pixels[:, rows // 3 : rows // 2, cols // 4 : cols // 2] = 250  # a bright plume
        if nodata is not None:
            pixels[:, :, : cols // 3] = nodata  # a collar without data
        profile = {
            "driver": "GTiff", "width": cols, "height": rows, "count": 3, "dtype": "uint8",
            "crs": crs, "transform": transform, "nodata": nodata,
        }  # fmt: skip
        with rasterio.open(folder / name, "w", **profile) as scene:
            scene.write(pixels)
    return folder


def run_local(
    image: str, model: Path, scenes: Path, output: Path, options: TransformOptions
) -> Iterator[Run]:
    """`transform_local`, recording the SDK's requests for /execution-parameters (its
    module-level helper, wrapped, still does the request)."""
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
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entities, "_perform_request", recorded)
        start = time.perf_counter()
        result = transform_local(image, model, scenes, output, options, say=said.append)
        said.append(f"took {time.perf_counter() - start:.1f} s")
    print("\n".join(said))
    yield Run(result, asked, "\n".join(said), log.getvalue())


@pytest.fixture(scope="module")
def masks(
    serve_image: str, test_model: Path, scenes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    output = tmp_path_factory.mktemp("masks")
    yield from run_local(serve_image, test_model, scenes, output, TransformOptions())


@pytest.fixture(scope="module")
def polygons(
    serve_image: str, test_model: Path, scenes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    output = tmp_path_factory.mktemp("polygons")
    options = TransformOptions(accept="application/geo+json")
    yield from run_local(serve_image, test_model, scenes, output, options)


def test_every_scene_gets_a_mask_on_its_own_grid_with_nodata_where_it_had_none(
    masks: Run, scenes: Path
) -> None:
    output = Path(masks.result.output)
    assert masks.result.outputs == [str(output / f"{name}.out") for name in sorted(SCENES)]
    assert sorted(path.name for path in output.iterdir()) == [
        f"{name}.out" for name in sorted(SCENES)
    ]
    for name in SCENES:
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
        assert without_data.any() == (SCENES[name][4] is not None), name


def test_the_sdk_asked_the_container_for_its_execution_parameters(masks: Run) -> None:
    """Before any scene: the container answers what Batch Transform should send, from the
    environment the job's model set (SAGEMAKER_MAX_PAYLOAD_IN_MB=100)."""
    ((url, status, answer),) = masks.parameters
    assert status == 200, url
    assert answer["BatchStrategy"] == "SINGLE_RECORD"
    assert answer["MaxPayloadInMB"] == 100
    assert answer["MaxConcurrentTransforms"] >= 1


def test_the_container_ran_with_the_environment_of_the_jobs_model(masks: Run) -> None:
    assert "timeout 600 s, payload up to 100 MB" in masks.log, masks.log
    assert "3 scenes" in masks.said and "Completed: 3 answers" in masks.said


def test_polygon_answers_are_feature_collections_of_the_masks(polygons: Run, masks: Run) -> None:
    output = Path(polygons.result.output)
    assert sorted(path.name for path in output.iterdir()) == [
        f"{name}.out" for name in sorted(SCENES)
    ]
    for name in SCENES:
        collection = json.loads((output / f"{name}.out").read_bytes())
        assert collection["type"] == "FeatureCollection", name
        with rasterio.open(Path(masks.result.output) / f"{name}.out") as mask:
            positive = bool((mask.read(1) == 1).any())
        assert bool(collection["features"]) == positive, name
        for feature in collection["features"]:
            assert feature["geometry"]["type"] in {"Polygon", "MultiPolygon"}
