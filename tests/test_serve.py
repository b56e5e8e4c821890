"""Serving in-process: windows and blending, decoders, encoders, options, the Flask app,
`earthseg predict` (in-process and against a live HTTP server), on a model exported as
`earthseg train` exports it and on the real Landsat scene with its nodata collar."""

from __future__ import annotations

import fcntl
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import rasterio
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from werkzeug.serving import make_server

from earthseg.cli import main as cli
from earthseg.contracts.model_card import ModelCard, read_model_card
from earthseg.serve.app import create_app
from earthseg.serve.artifact import OnnxModel
from earthseg.serve.attributes import HEADER, parse_attributes
from earthseg.serve.cores import CoreSlots
from earthseg.serve.decoders import MAX_PIXELS, decode
from earthseg.serve.errors import RequestError
from earthseg.serve.geo import MASK_NODATA, THRESHOLD_TAG
from earthseg.serve.predictor import Predictor, load_predictor
from earthseg.serve.scene import LocalScene, save_scene
from earthseg.serve.settings import ServerSettings
from earthseg.serve.windows import DeadlineExceeded, predict_images

TILE = 64
NPY, JSON, TIFF, GEOJSON, PNG = (
    "application/x-npy",
    "application/json",
    "image/tiff",
    "application/geo+json",
    "image/png",
)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def onnx_probabilities(model_dir: Path, tiles: np.ndarray) -> np.ndarray:
    """The bare ONNX Runtime call on tiles of exactly the model's size."""
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"))
    (output,) = session.run(None, {"image": tiles.astype(np.float32)})
    return np.asarray(output)[..., 0]


@pytest.fixture(scope="module")
def predictor(test_model: Path) -> Predictor:
    return load_predictor(test_model)


@pytest.fixture(scope="module")
def client(predictor: Predictor, test_model: Path) -> FlaskClient:
    settings = ServerSettings.from_environment(test_model)
    return create_app(predictor, settings).test_client()


@pytest.fixture(scope="module")
def landsat(real_data: Path) -> bytes:
    return (real_data / "RGB.byte.tif").read_bytes()


def invoke(
    client: FlaskClient, body: bytes, content_type: str, accept: str = "*/*", attributes: str = ""
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Content-Type": content_type, "Accept": accept}
    if attributes:
        headers[HEADER] = attributes
    response = client.post("/invocations", data=body, headers=headers)
    return response.status_code, response.data, dict(response.headers)


# Windows


def test_overlapping_windows_cross_fade_where_hard_stitching_leaves_seams() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((1, 200, 230, 1), np.float32)

    def constant_per_window(stack: np.ndarray) -> np.ndarray:
        """Each window answers one random value: any seam shows as a jump."""
        return np.broadcast_to(rng.random((len(stack), 1, 1)), stack.shape[:3]).copy()

    def largest_step(values: np.ndarray) -> float:
        return float(
            max(np.abs(np.diff(values, axis=1)).max(), np.abs(np.diff(values, axis=2)).max())
        )

    blended = predict_images(image, constant_per_window, (TILE, TILE), overlap=16)
    stitched = predict_images(image, constant_per_window, (TILE, TILE), overlap=0)

    assert blended.shape == stitched.shape == (1, 200, 230)
    assert largest_step(stitched) > 0.3  # the windows' values differ: hard edges jump
    assert largest_step(blended) < 0.1  # ... and overlapping ones ramp from one to the next
    assert blended.min() >= 0.0 and blended.max() <= 1.0


def test_window_sized_images_are_one_batch_and_pass_through_unchanged() -> None:
    images = np.random.default_rng(1).random((3, TILE, TILE, 2)).astype(np.float32)
    calls = []

    def mean_of_bands(stack: np.ndarray) -> np.ndarray:
        calls.append(len(stack))
        return stack.mean(axis=-1)

    result = predict_images(images, mean_of_bands, (TILE, TILE), overlap=16)
    assert calls == [3]
    np.testing.assert_allclose(result, images.mean(axis=-1), rtol=1e-6)


def test_images_smaller_than_a_window_are_mirrored_to_its_size() -> None:
    image = np.arange(20 * 30, dtype=np.float32).reshape(1, 20, 30, 1)
    seen = []

    def identity(stack: np.ndarray) -> np.ndarray:
        seen.append(stack.shape)
        return stack[..., 0]

    result = predict_images(image, identity, (TILE, TILE), overlap=16)
    assert seen == [(1, TILE, TILE, 1)]
    np.testing.assert_array_equal(result, image[..., 0])


def test_a_passed_deadline_stops_the_work() -> None:
    with pytest.raises(DeadlineExceeded):
        predict_images(np.zeros((1, 300, 300, 1)), lambda s: s[..., 0], (TILE, TILE), 16, 1, 0.0)


# Options


@pytest.mark.parametrize(
    ("header", "threshold", "output", "crs"),
    [
        (None, None, None, None),
        ("threshold=0.25", 0.25, None, None),
        (" output=Mask ; crs=EPSG:4326 ", None, "mask", "EPSG:4326"),
        ("threshold=1,output=probability", 1.0, "probability", None),
    ],
)
def test_custom_attributes_are_parsed(
    header: str | None, threshold: float | None, output: str | None, crs: str | None
) -> None:
    options = parse_attributes(header)
    assert options.threshold == threshold
    assert options.output == output
    assert (options.crs.to_string() if options.crs else None) == crs


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("threshold=1.5", "threshold"),
        ("threshold=high", "threshold"),
        ("output=logits", "output"),
        ("crs=EPSG:99999999", "crs"),
        ("treshold=0.4", "treshold"),
        ("debug", "debug"),
    ],
)
def test_bad_custom_attributes_are_refused_by_name(header: str, named: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_attributes(header)
    assert refused.value.status_code == 400
    assert named in refused.value.message and "Fix:" in refused.value.message


# Decoding


def test_every_content_type_decodes_to_the_same_pixels(test_model: Path) -> None:
    card = read_model_card(test_model)
    image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    geotiff = MemoryFile()
    with geotiff.open(driver="GTiff", width=50, height=40, count=3, dtype="uint8") as dataset:
        dataset.write(np.moveaxis(image, -1, 0))
    bodies = {
        NPY: npy(image),
        JSON: json.dumps({"instances": [image.tolist()]}).encode(),
        PNG: png.getvalue(),
        TIFF: geotiff.read(),
    }
    for content_type, body in bodies.items():
        payload = decode(body, f"{content_type}; charset=binary", card)
        np.testing.assert_array_equal(payload.images, image[np.newaxis], err_msg=content_type)
        assert payload.single is (content_type != JSON), content_type
        assert payload.valid is None, content_type


def test_tensorflow_serving_named_instances_and_batches_decode(test_model: Path) -> None:
    card = read_model_card(test_model)
    batch = np.zeros((2, 8, 8, 3), np.float32)
    named = {"instances": [{"image": tile.tolist()} for tile in batch]}
    assert decode(json.dumps(named).encode(), JSON, card).images.shape == (2, 8, 8, 3)
    columnar = {"inputs": batch.tolist()}
    assert decode(json.dumps(columnar).encode(), JSON, card).images.shape == (2, 8, 8, 3)
    assert decode(npy(batch), NPY, card).single is False


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (npy(np.zeros((8, 8, 4), np.uint8)), NPY, 400, "4 bands"),
        (npy(np.zeros((8, 8, 3), np.uint16)), NPY, 400, "uint16"),
        (npy(np.zeros((8, 8, 3), bool)), NPY, 400, "bool"),
        (npy(np.zeros(5, np.uint8)), NPY, 400, "shape"),
        (npy(np.array([{"a": 1}], dtype=object)), NPY, 400, ".npy"),
        (b'{"instances": [[[1, 2]], [[1]]]}', JSON, 400, "one shape"),
        (b'{"images": []}', JSON, 400, "instances"),
        (b"[" * 100_000, JSON, 400, "not JSON"),
        (b"GIF89a", PNG, 400, "picture"),
        (b"II*\x00garbage", TIFF, 400, "not a readable TIFF"),
        (b"", TIFF, 400, "empty"),
        (b"a,b\n1,2\n", "text/csv", 415, "text/csv"),
        (b"", None, 415, "none"),
    ],
)
def test_bad_bodies_get_a_status_and_a_message_naming_the_problem(
    test_model: Path, body: bytes, content_type: str | None, status: int, words: str
) -> None:
    with pytest.raises(RequestError) as refused:
        decode(body, content_type, read_model_card(test_model))
    assert refused.value.status_code == status
    assert words in refused.value.message and "Fix:" in refused.value.message


def test_a_small_body_that_decodes_to_a_huge_scene_is_refused_before_decoding(
    test_model: Path,
) -> None:
    side = int(np.sqrt(MAX_PIXELS)) + 100
    memory = MemoryFile()
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8"}
    with memory.open(**profile, tiled=True, sparse_ok=True):
        pass  # no block written: a few kB on the wire
    body = memory.read()
    assert len(body) < 1_000_000
    with pytest.raises(RequestError) as refused:
        decode(body, TIFF, read_model_card(test_model))
    assert refused.value.status_code == 413


# Predictions through the app


def test_npy_tiles_and_batches_give_the_bare_model_output(
    client: FlaskClient, test_model: Path
) -> None:
    tiles = np.random.default_rng(3).integers(0, 256, (2, TILE, TILE, 3), dtype=np.uint8)
    expected = onnx_probabilities(test_model, tiles)

    status, body, headers = invoke(client, npy(tiles[0]), NPY)
    assert status == 200 and headers["Content-Type"] == NPY
    np.testing.assert_allclose(np.load(io.BytesIO(body)), expected[0], atol=1e-6)
    assert parse_attributes(headers[HEADER]).threshold == 0.5  # the card's, handed back

    status, body, _ = invoke(client, npy(tiles.astype(np.float32)), NPY, NPY, "output=mask")
    assert status == 200
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), (expected >= 0.5).astype(np.uint8))


def test_json_answers_as_tensorflow_serving_does_for_the_saved_model(
    client: FlaskClient, test_model: Path
) -> None:
    import tensorflow as tf

    tiles = np.random.default_rng(4).integers(0, 256, (2, TILE, TILE, 3)).astype(np.float32)
    serving = tf.saved_model.load(str(test_model / "1")).signatures["serving_default"]
    (saved_model_output,) = serving(tf.constant(tiles)).values()

    request = json.dumps({"instances": tiles.tolist()}).encode()
    status, body, headers = invoke(client, request, JSON)

    assert status == 200 and headers["Content-Type"] == JSON
    predictions = np.array(json.loads(body)["predictions"])
    assert predictions.shape == (2, TILE, TILE, 1)
    np.testing.assert_allclose(predictions, saved_model_output.numpy(), atol=1e-5)


def test_a_geotiff_comes_back_on_its_own_grid_with_nodata_kept(
    client: FlaskClient, landsat: bytes, real_data: Path
) -> None:
    with rasterio.open(real_data / "RGB.byte.tif") as scene:
        crs, transform, shape = scene.crs, scene.transform, scene.shape
        nodata = scene.dataset_mask() == 0
    assert nodata.any() and not nodata.all()

    status, body, headers = invoke(client, landsat, TIFF)
    assert status == 200 and headers["Content-Type"] == TIFF
    with MemoryFile(body) as memory, memory.open() as mask:
        assert (mask.crs, mask.transform, mask.shape, mask.count) == (crs, transform, shape, 1)
        values = mask.read(1)
        assert mask.nodata == MASK_NODATA
    np.testing.assert_array_equal(values == MASK_NODATA, nodata)
    assert set(np.unique(values[~nodata])) <= {0, 1}

    status, body, _ = invoke(client, landsat, TIFF, TIFF, "output=probability,threshold=0.3")
    assert status == 200
    with MemoryFile(body) as memory, memory.open() as probability:
        assert probability.dtypes[0] == "float32"
        assert float(probability.tags()[THRESHOLD_TAG]) == 0.3
        p = probability.read(1)
    np.testing.assert_array_equal(np.isnan(p), nodata)
    np.testing.assert_array_equal((p[~nodata] >= 0.5), values[~nodata] == 1)


def test_geojson_polygons_burn_back_into_the_mask_in_the_scene_crs(
    client: FlaskClient, landsat: bytes, real_data: Path
) -> None:
    with rasterio.open(real_data / "RGB.byte.tif") as scene:
        transform, shape = scene.transform, scene.shape
    _, mask_body, _ = invoke(client, landsat, TIFF, TIFF)
    with MemoryFile(mask_body) as memory, memory.open() as mask:
        positive = mask.read(1) == 1
    assert positive.any()

    status, body, headers = invoke(client, landsat, TIFF, GEOJSON)
    assert status == 200 and headers["Content-Type"] == GEOJSON
    collection = json.loads(body)
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32618"
    geometries = [feature["geometry"] for feature in collection["features"]]
    burnt = rasterize(geometries, out_shape=shape, transform=transform).astype(bool)
    np.testing.assert_array_equal(burnt, positive)

    status, body, _ = invoke(client, landsat, TIFF, GEOJSON, "crs=EPSG:4326")
    lonlat = json.loads(body)
    assert lonlat["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::4326"
    assert len(lonlat["features"]) == len(geometries)
    x, y = lonlat["features"][0]["geometry"]["coordinates"][0][0]
    assert -80 < x < -76 and 23 < y < 26  # the scene lies off Florida, in the Bahamas


def test_thresholds_and_pictures(client: FlaskClient, test_model: Path) -> None:
    tile = np.random.default_rng(5).integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)
    picture = io.BytesIO()
    Image.fromarray(tile).save(picture, format="JPEG", quality=95)

    masks = {}
    for threshold in ("0", "1"):
        status, body, headers = invoke(
            client, picture.getvalue(), "image/jpeg", PNG, f"threshold={threshold}"
        )
        assert status == 200 and headers["Content-Type"] == PNG
        masks[threshold] = np.asarray(Image.open(io.BytesIO(body)))
    assert (masks["0"] == 255).all()  # every probability is >= 0
    assert (masks["1"] == 0).all()  # ... and a sigmoid stays below 1


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "attributes", "status"),
    [
        (npy(np.zeros((2, TILE, TILE, 3), np.uint8)), NPY, TIFF, "", 406),
        (npy(np.zeros((TILE, TILE, 3), np.uint8)), NPY, "text/csv", "", 406),
        (npy(np.zeros((TILE, TILE, 3), np.uint8)), NPY, GEOJSON, "output=probability", 400),
        (npy(np.zeros((TILE, TILE, 3), np.uint8)), NPY, GEOJSON, "crs=EPSG:4326", 400),
        (npy(np.zeros((TILE, TILE, 3), np.uint8)), NPY, NPY, "threshold=2", 400),
        (b"x", "text/plain", NPY, "", 415),
    ],
)
def test_unanswerable_requests_get_json_errors(
    client: FlaskClient, body: bytes, content_type: str, accept: str, attributes: str, status: int
) -> None:
    answered, answer, headers = invoke(client, body, content_type, accept, attributes)
    assert answered == status
    assert headers["Content-Type"] == JSON
    assert "Fix:" in json.loads(answer)["error"]


def test_the_contract_routes(client: FlaskClient) -> None:
    assert client.get("/ping").status_code == 200
    parameters = client.get("/execution-parameters").get_json()
    assert parameters["BatchStrategy"] == "SINGLE_RECORD" and parameters["MaxPayloadInMB"] == 6
    missing = client.get("/nothing")
    assert missing.status_code == 404 and "error" in missing.get_json()
    assert client.get("/invocations").status_code == 405


def test_bodies_over_the_payload_limit_are_refused(client: FlaskClient) -> None:
    status, body, _ = invoke(client, b"\0" * (6 * 1024 * 1024 + 1), TIFF)
    assert status == 413
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" in json.loads(body)["error"]


# earthseg predict


@pytest.fixture
def live_server(predictor: Predictor, test_model: Path) -> Iterator[str]:
    """The app on a real HTTP socket on loopback, as `earthseg predict --url` reaches it."""
    app = create_app(predictor, ServerSettings.from_environment(test_model))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_predict_in_process_and_through_a_server_in_chunks_agree(
    test_model: Path, live_server: str, real_data: Path, tmp_path: Path
) -> None:
    scene = real_data / "RGB.byte.tif"
    local, remote, whole = tmp_path / "local.tif", tmp_path / "remote.tif", tmp_path / "whole.tif"
    polygons = tmp_path / "mask.geojson"

    assert (
        cli(
            [
                "predict",
                "--image",
                str(scene),
                "--model",
                str(test_model),
                "--out",
                str(local),
                "--geojson",
                str(polygons),
            ]
        )
        == 0
    )
    # 0.5 MB: chunks of about 360 px, so the 791 x 718 scene goes in 9 overlapping parts.
    assert (
        cli(
            [
                "predict",
                "--image",
                str(scene),
                "--url",
                live_server,
                "--out",
                str(remote),
                "--max-payload-mb",
                "0.5",
            ]
        )
        == 0
    )
    assert cli(["predict", "--image", str(scene), "--url", live_server, "--out", str(whole)]) == 0

    with rasterio.open(scene) as source, rasterio.open(local) as a, rasterio.open(remote) as b:
        for mask in (a, b):
            assert (mask.crs, mask.transform, mask.shape) == (
                source.crs,
                source.transform,
                source.shape,
            )
        in_process, chunked = a.read(1), b.read(1)
    with rasterio.open(whole) as c:
        np.testing.assert_array_equal(c.read(1), in_process)  # one request: the same windows
    np.testing.assert_array_equal(chunked == MASK_NODATA, in_process == MASK_NODATA)
    assert (chunked == in_process).mean() > 0.98  # chunks see other windows near their edges
    collection = json.loads(polygons.read_text())
    assert collection["features"] and "32618" in collection["crs"]["properties"]["name"]


def test_predict_names_what_is_wrong(
    test_model: Path, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mask.tif"
    spacenet = real_data / "sample_geotiff.tif"  # one uint16 band: not what the model takes
    assert (
        cli(["predict", "--image", str(spacenet), "--model", str(test_model), "--out", str(out)])
        == 2
    )
    assert "1 bands and the model takes 3" in capsys.readouterr().err
    assert (
        cli(["predict", "--image", str(spacenet), "--url", "http://127.0.0.1:9", "--out", str(out)])
        == 2
    )
    assert "cannot be reached" in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_model_tar_gz_is_a_model(test_model: Path, real_data: Path, tmp_path: Path) -> None:
    import tarfile

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in test_model.rglob("*"):
            tar.add(path, arcname=str(path.relative_to(test_model)))
    out = tmp_path / "mask.tif"
    assert (
        cli(
            [
                "predict",
                "--image",
                str(real_data / "RGB.byte.tif"),
                "--model",
                str(archive),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with rasterio.open(out) as mask:
        assert mask.count == 1 and mask.dtypes[0] == "uint8"


def test_georeferencing_survives_a_scene_smaller_than_a_window(
    predictor: Predictor, tmp_path: Path
) -> None:
    scene = tmp_path / "small.tif"
    transform = from_origin(10.0, 70.0, 0.005, 0.005)
    pixels = np.random.default_rng(6).integers(1, 256, (3, 30, 45), dtype=np.uint8)
    with rasterio.open(
        scene,
        "w",
        driver="GTiff",
        width=45,
        height=30,
        count=3,
        dtype="uint8",
        crs="EPSG:4326",
        transform=transform,
    ) as dataset:
        dataset.write(pixels)
    out = tmp_path / "mask.tif"
    save_scene(LocalScene(predictor, scene), out)
    with rasterio.open(out) as mask:
        assert (mask.width, mask.height, mask.transform) == (45, 30, transform)
        assert mask.crs == "EPSG:4326"


# Fuzzing: whatever the body, a decoder answers with a Payload or a RequestError


@pytest.fixture(scope="module")
def card(test_model: Path) -> ModelCard:
    return read_model_card(test_model)


@pytest.fixture(scope="module")
def valid_bodies() -> dict[str, bytes]:
    image = np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    png, jpeg, geotiff = io.BytesIO(), io.BytesIO(), MemoryFile()
    Image.fromarray(image).save(png, format="PNG")
    Image.fromarray(image).save(jpeg, format="JPEG")
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 3, "dtype": "uint8"}
    with geotiff.open(**profile, crs="EPSG:4326", transform=from_origin(0, 60, 1, 1)) as dataset:
        dataset.write(np.moveaxis(image, -1, 0))
    return {
        NPY: npy(image),
        JSON: json.dumps({"instances": [image.tolist()]}).encode(),
        PNG: png.getvalue(),
        "image/jpeg": jpeg.getvalue(),
        TIFF: geotiff.read(),
    }


def _decode_or_refuse(body: bytes, content_type: str, card: ModelCard) -> None:
    try:
        payload = decode(body, content_type, card)
    except RequestError as refused:
        assert 400 <= refused.status_code < 500 and "Fix:" in refused.message
        return
    assert payload.images.ndim == 4 and payload.images.shape[-1] == card.input.bands


CONTENT_TYPES = st.sampled_from([NPY, JSON, PNG, "image/jpeg", TIFF])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=4096), content_type=CONTENT_TYPES)
def test_fuzz_random_bodies(body: bytes, content_type: str, card: ModelCard) -> None:
    _decode_or_refuse(body, content_type, card)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), content_type=CONTENT_TYPES)
def test_fuzz_damaged_valid_bodies(
    data: st.DataObject, content_type: str, card: ModelCard, valid_bodies: dict[str, bytes]
) -> None:
    body = bytearray(valid_bodies[content_type])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(body)))
    _decode_or_refuse(bytes(body[:cut]), content_type, card)


# Cores shared by workers


def test_a_run_takes_every_free_core_or_its_own_one(tmp_path: Path) -> None:
    slots = CoreSlots(tmp_path, 2)
    slots.create()
    with slots.take() as cores:
        assert cores == 2  # alone: every core

    def run_on(home: int) -> int:
        slots.home = home
        with slots.take() as cores:
            return cores

    with open(slots.paths[0], "rb") as other_worker:
        fcntl.flock(other_worker, fcntl.LOCK_EX)  # another worker runs on core 0
        assert run_on(1) == 1  # beside it: its own core only, no waiting
        waiting: list[int] = []
        thread = threading.Thread(target=lambda: waiting.append(run_on(0)))
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not waiting  # its own core is busy: it waits ...
        fcntl.flock(other_worker, fcntl.LOCK_UN)
        thread.join(10)
    assert waiting == [1]  # ... and keeps to it: runs go side by side, not by turns


def test_a_model_on_shared_cores_answers_as_one_on_all_cores(
    test_model: Path, tmp_path: Path
) -> None:
    slots = CoreSlots(tmp_path, 2)
    slots.create()
    tiles = np.random.default_rng(8).integers(0, 256, (3, TILE, TILE, 3), dtype=np.uint8)
    shared = OnnxModel(test_model, cores=slots).probabilities(tiles)
    np.testing.assert_allclose(shared, onnx_probabilities(test_model, tiles), atol=1e-6)


def test_polygons_are_not_reprojected_from_a_scene_without_a_crs(
    test_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, out, polygons = tmp_path / "plain.tif", tmp_path / "mask.tif", tmp_path / "m.geojson"
    pixels = np.random.default_rng(9).integers(0, 256, (3, 40, 40), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": 40, "height": 40, "count": 3, "dtype": "uint8"}
    with rasterio.open(scene, "w", **profile, transform=from_origin(0, 40, 1, 1)) as dataset:
        dataset.write(pixels)
    command = ["predict", "--image", str(scene), "--model", str(test_model), "--out", str(out)]
    assert cli([*command, "--geojson", str(polygons), "--crs", "EPSG:4326"]) == 2
    assert "no CRS to reproject from" in capsys.readouterr().err
    assert not polygons.exists() and not out.exists()


def test_the_serving_contract_names_sagemakers_own_variables() -> None:
    """The launchers set, and the server reads, the variables the sagemaker-inference
    toolkit (SageMaker's own serving contract) names."""
    from sagemaker_inference import parameters

    from earthseg.contracts import serving

    assert serving.PORT_ENV == parameters.BIND_TO_PORT_ENV
    assert serving.WORKERS_ENV == parameters.MODEL_SERVER_WORKERS_ENV
    assert serving.TIMEOUT_ENV == parameters.MODEL_SERVER_TIMEOUT_ENV
    assert serving.MAX_PAYLOAD_ENV == parameters.MAX_REQUEST_SIZE
    assert serving.DEFAULT_ACCEPT_ENV == parameters.DEFAULT_INVOCATIONS_ACCEPT_ENV
    environment = serving.ServerOptions(workers=3, timeout=90).environment()
    assert environment == {
        parameters.MODEL_SERVER_WORKERS_ENV: "3",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "90",
    }
