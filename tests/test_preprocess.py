"""`earthseg preprocess`: pairing, grouped splits, nodata tiles, shards, manifest, atomicity."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from earthseg.cli import main
from earthseg.contracts.channels import read_channel_index
from earthseg.contracts.manifest import file_digest, read_manifest
from earthseg.errors import InputError
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.options import PreprocessOptions
from earthseg.preprocess.rasterize import rasterize_file
from earthseg.preprocess.shards import read_channel
from earthseg.synthetic.export import write_sample_export
from tests.conftest import copy_shapefile, landsat_export

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic ImageLabeler export: 6 scenes of 320 px."""
    folder = tmp_path_factory.mktemp("synthetic") / "export"
    write_sample_export(folder, scenes=6, size=320, seed=3)
    return folder


@pytest.fixture(scope="module")
def dataset(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset") / "out"
    options = PreprocessOptions(tile_size=128, overlap=32, seed=1, write_tiles=True)
    build_dataset(export / "images", export / "labels", out, options)
    return out


def load_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_splits_are_grouped_by_scene_and_channels_are_written(dataset: Path) -> None:
    manifest = load_manifest(dataset)
    split_of_scene = {record["scene"]: record["split"] for record in manifest["inputs"]}
    assert set(split_of_scene.values()) == set(SPLITS)
    for tile in manifest["tiles"]:
        assert tile["split"] == split_of_scene[tile["scene"]]
    for name in SPLITS:
        tiles = [t for t in manifest["tiles"] if t["split"] == name]
        channel = json.loads((dataset / name / "shards.json").read_text())
        assert channel["manifest_sha256"] == file_digest(dataset / "manifest.json")
        assert channel["tiles"] == len(tiles) == manifest["splits"][name]["tiles"] > 0
        assert sum(len(images) for images, _ in read_channel(dataset / name)) == len(tiles)
    assert manifest["totals"]["tiles"] == len(manifest["tiles"])


def test_shards_hold_the_scene_pixels_and_the_rasterized_labels(
    export: Path, dataset: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(dataset)
    for name in SPLITS:
        images = np.concatenate([i for i, _ in read_channel(dataset / name)])
        masks = np.concatenate([m for _, m in read_channel(dataset / name)])
        tiles = [t for t in manifest["tiles"] if t["split"] == name]
        for position, tile in enumerate(tiles):
            scene = export / "images" / f"{tile['scene']}.tif"
            full_mask = rasterize_file(
                scene, export / "labels" / f"{tile['scene']}.shp", tmp_path / "m.tif"
            )
            window = Window(**tile["window"])
            with rasterio.open(scene) as source:
                expected = np.moveaxis(source.read(window=window), 0, -1)
                assert tile["bounds"] == list(rasterio.windows.bounds(window, source.transform))
            rows, cols = window.toslices()
            np.testing.assert_array_equal(images[position], expected)
            np.testing.assert_array_equal(masks[position], full_mask[rows, cols])
            assert tile["positive_fraction"] == pytest.approx(masks[position].mean())


def test_tiles_overlap_and_cover_the_whole_scene(export: Path, dataset: Path) -> None:
    manifest = load_manifest(dataset)
    scene = manifest["inputs"][0]["scene"]
    windows = [t["window"] for t in manifest["tiles"] if t["scene"] == scene]
    with rasterio.open(export / "images" / f"{scene}.tif") as source:
        covered = np.zeros((source.height, source.width), dtype=bool)
    for w in windows:
        covered[w["row_off"] : w["row_off"] + 128, w["col_off"] : w["col_off"] + 128] = True
    assert covered.all()
    starts = sorted({w["col_off"] for w in windows})
    assert starts[:3] == [0, 96, 192]  # stride = tile 128 - overlap 32
    assert starts[-1] + 128 == covered.shape[1]


def test_write_tiles_gives_the_notebook_layout(dataset: Path) -> None:
    manifest = load_manifest(dataset)
    tile = manifest["tiles"][0]
    folder = dataset / "tiles" / tile["split"]
    with rasterio.open(folder / f"{tile['id']}.tif") as written:
        left, bottom, right, top = written.bounds
        assert [left, bottom, right, top] == pytest.approx(tile["bounds"])
        assert written.crs.to_string() == tile["crs"] == "EPSG:4326"
    bitmap = np.asarray(Image.open(folder / f"{tile['id']}_bitmap.png"))
    assert set(np.unique(bitmap)) <= {0, 255}
    assert (bitmap > 0).mean() == pytest.approx(tile["positive_fraction"])
    assert len(list(folder.glob("*_bitmap.png"))) == manifest["splits"][tile["split"]]["tiles"]


def test_same_seed_same_dataset_other_seed_other_split(export: Path, tmp_path: Path) -> None:
    options = PreprocessOptions(tile_size=160)
    first = build_dataset(export / "images", export / "labels", tmp_path / "a", options)
    again = build_dataset(export / "images", export / "labels", tmp_path / "b", options)
    assert (tmp_path / "a/manifest.json").read_bytes() == (
        tmp_path / "b/manifest.json"
    ).read_bytes()
    for name in SPLITS:
        assert (tmp_path / f"a/{name}/images-00000.npy").read_bytes() == (
            tmp_path / f"b/{name}/images-00000.npy"
        ).read_bytes()
    assert first == again
    assignments = set()
    for seed in range(5):
        manifest = build_dataset(
            export / "images",
            export / "labels",
            tmp_path / f"seed{seed}",
            PreprocessOptions(tile_size=160, seed=seed),
        )
        assignments.add(tuple(record.split for record in manifest.inputs))
    assert len(assignments) > 1


def test_manifest_records_inputs_and_class_balance(export: Path, dataset: Path) -> None:
    manifest = load_manifest(dataset)
    record = manifest["inputs"][0]
    assert record["image"]["sha256"].startswith("sha256:")
    assert record["labels"]["files"] == sorted(
        p.name for p in (export / "labels").glob(f"{record['scene']}.*")
    )
    tiles = manifest["tiles"]
    balance = np.mean([t["positive_fraction"] for t in tiles])
    assert manifest["totals"]["positive_fraction"] == pytest.approx(balance)
    assert 0 < balance < 0.5
    assert manifest["options"]["tile_size"] == 128 and manifest["tile_shape"] == [128, 128, 3]


def test_tiles_mostly_nodata_are_dropped(real_data: Path, tmp_path: Path) -> None:
    images, labels = landsat_export(tmp_path / "export", real_data, ["a", "b", "c"])
    manifest = build_dataset(images, labels, tmp_path / "out", PreprocessOptions(tile_size=128))
    assert manifest.totals.dropped_tiles > 0
    with rasterio.open(real_data / "RGB.byte.tif") as source:
        for tile in manifest.tiles:
            valid = source.dataset_mask(window=Window(**tile.window.model_dump())) > 0
            assert valid.mean() >= 0.9
            assert tile.valid_fraction == pytest.approx(valid.mean())
    everything = build_dataset(
        images, labels, tmp_path / "all", PreprocessOptions(tile_size=128, min_valid=0)
    )
    assert everything.totals.dropped_tiles == 0
    total = manifest.totals.tiles + manifest.totals.dropped_tiles
    assert everything.totals.tiles == total


def test_a_split_left_without_tiles_is_reported(
    real_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, labels = landsat_export(tmp_path / "export", real_data, ["a", "b", "c"])
    options = PreprocessOptions(tile_size=700, min_valid=1.0)  # every tile touches the collar
    manifest = build_dataset(images, labels, tmp_path / "out", options)
    assert manifest.totals.tiles == 0
    for name in SPLITS:
        assert f"the {name} split has no tiles" in caplog.text


def test_single_band_16_bit_scenes_keep_their_dtype(real_data: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for stem in ("x", "y"):
        shutil.copy(real_data / "sample_geotiff.tif", images / f"{stem}.tif")
        shutil.copy(real_data / "geotiff_labels.geojson", labels / f"{stem}.geojson")
    options = PreprocessOptions(tile_size=300, splits=(0.5, 0.5, 0.0))
    manifest = build_dataset(images, labels, tmp_path / "out", options)
    assert manifest.dtype == "uint16" and manifest.tile_shape == (300, 300, 1)
    assert set(manifest.splits) == {"train", "validation"}
    assert not (tmp_path / "out" / "test").exists()
    images_, masks = next(read_channel(tmp_path / "out" / "train"))
    assert images_.dtype == np.uint16 and images_.shape[1:] == (300, 300, 1)
    assert masks.mean() == pytest.approx(manifest.splits["train"].positive_fraction)


def test_every_label_format_pairs_by_stem(real_data: Path, tmp_path: Path) -> None:
    images, labels = landsat_export(tmp_path / "export", real_data, ["shp", "zip", "geopackage"])
    for part in labels.glob("zip.*"):
        with zipfile.ZipFile(labels / "zip.zip", "a") as archive:
            archive.write(part, part.name)
        part.unlink()
    gpd.read_file(labels / "geopackage.shp").to_crs("EPSG:4326").to_file(labels / "geopackage.gpkg")
    for part in labels.glob("geopackage.*"):
        if part.suffix != ".gpkg":
            part.unlink()
    manifest = build_dataset(images, labels, tmp_path / "out", PreprocessOptions(tile_size=128))
    files = {record.scene: record.labels.files for record in manifest.inputs}
    assert files == {
        "geopackage": ["geopackage.gpkg"],
        "shp": ["shp.cpg", "shp.dbf", "shp.prj", "shp.shp", "shp.shx"],
        "zip": ["zip.zip"],
    }
    positives = {
        scene: sorted(t.positive_fraction for t in manifest.tiles if t.scene == scene)
        for scene in files
    }
    assert positives["zip"] == positives["shp"]
    assert positives["geopackage"] == positives["shp"]  # reprojected to EPSG:4326 and back


def test_unpaired_scenes_and_labels_are_named(export: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(export / "images", images)
    shutil.copytree(export / "labels", labels)
    lonely = next(images.glob("*.tif"))
    for part in labels.glob(f"{lonely.stem}.*"):
        part.unlink()
    with pytest.raises(InputError, match=rf"1 scenes have no label file.*{lonely.stem}"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions())
    lonely.unlink()
    copy_shapefile(next(labels.glob("*.shp")), labels / "orphan.shp")
    with pytest.raises(InputError, match=r"1 label files have no scene.*orphan"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions())
    assert not (tmp_path / "out").exists()


def test_mixed_crs_scenes_are_refused(export: Path, real_data: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(export / "images", images)
    shutil.copytree(export / "labels", labels)
    shutil.copy(real_data / "RGB.byte.tif", images / "landsat.tif")
    copy_shapefile(real_data / "box.shp", labels / "landsat.shp")
    with pytest.raises(
        InputError, match=r"scenes differ in crs \(EPSG:4326: .*EPSG:32618: landsat"
    ):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions())


def test_a_failure_midway_leaves_nothing_behind(export: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(export / "images", images)
    shutil.copytree(export / "labels", labels)
    last = sorted(images.glob("*.tif"))[-1]  # tiled after every other scene is packed
    with open(last, "r+b") as scene:
        scene.truncate(last.stat().st_size // 2)  # header intact, pixels cut off
    with pytest.raises(InputError, match=rf"{last.name}: is damaged: rows \d+ to \d+"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions(tile_size=64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]


def test_labels_off_their_scene_fail_before_any_tile_is_cut(export: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(export / "images", images)
    shutil.copytree(export / "labels", labels)
    last = sorted(labels.glob("*.shp"))[-1]
    frame = gpd.read_file(last)
    frame.geometry = frame.geometry.translate(xoff=90)
    for part in labels.glob(f"{last.stem}.*"):
        part.unlink()
    frame.to_file(last)
    with pytest.raises(InputError, match=rf"{last.name}: no polygon overlaps scene {last.stem}"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions(tile_size=128))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]


def test_an_output_folder_with_another_run_is_refused_and_the_same_run_kept(
    export: Path, dataset: Path, tmp_path: Path
) -> None:
    options = PreprocessOptions(tile_size=128, overlap=32, seed=1, write_tiles=True)
    before = (dataset / "manifest.json").stat().st_mtime_ns
    assert build_dataset(export / "images", export / "labels", dataset, options)
    assert (dataset / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="already holds a different preprocessing run"):
        build_dataset(export / "images", export / "labels", dataset, PreprocessOptions())
    stray = tmp_path / "notes"
    stray.mkdir()
    (stray / "todo.txt").write_text("mine")
    with pytest.raises(InputError, match=r"already holds other files \(todo.txt\)"):
        build_dataset(export / "images", export / "labels", stray, PreprocessOptions())
    assert (stray / "todo.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--splits", "0.7,0.3"], "three non-negative fractions"),
        (["--splits", "0,0.5,0.5"], "leaves train or validation empty"),
        (["--overlap", "256"], "less than the tile size"),
        (["--tile-size", "8"], "too small"),
        (["--min-valid", "1.5"], "'1.5' is too large: it must be a number from 0 to 1"),
        (["--tile-size", "512"], "smaller than one 512x512 tile"),
    ],
)
def test_bad_options_get_clear_errors(
    export: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    args = ["--images", str(export / "images"), "--labels", str(export / "labels")]
    assert main(["preprocess", *args, "--out", str(tmp_path / "out"), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and "Fix:" in error
    assert not (tmp_path / "out").exists()


def test_more_splits_than_scenes_is_refused(real_data: Path, tmp_path: Path) -> None:
    images, labels = landsat_export(tmp_path / "export", real_data, ["a", "b"])
    with pytest.raises(InputError, match="3 non-empty splits but only 2 labelled scenes"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions())


def test_runs_as_a_processing_job_on_the_sagemaker_mounts(
    export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    processing = tmp_path / "opt_ml" / "processing"
    shutil.copytree(export / "images", processing / "input" / "images")
    shutil.copytree(export / "labels", processing / "input" / "labels")
    (processing / "output").mkdir()  # SageMaker mounts it before the job starts
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    assert main(["preprocess", "--tile-size", "160"]) == 0
    output = processing / "output"
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json", *sorted(SPLITS)]
    assert load_manifest(output)["totals"]["tiles"] > 0
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "nowhere"))
    assert main(["preprocess"]) == 2
    assert "--images: was not given" in capsys.readouterr().err


def test_every_reader_of_the_manifest_gets_what_preprocess_wrote(
    dataset: Path, tmp_path: Path
) -> None:
    """One typed reader: the manifest round-trips, names its test scenes, and a damaged
    one is refused naming the file and the key at fault."""
    manifest = read_manifest(dataset)
    assert manifest == read_manifest(dataset / "manifest.json")
    assert manifest.model_dump(mode="json") == load_manifest(dataset)
    assert [scene.split for scene in manifest.test_scenes(dataset)] == ["test"] * len(
        manifest.scenes("test")
    )
    for name in SPLITS:
        index = read_channel_index(dataset / name)
        assert index.tiles == manifest.splits[name].tiles
        assert index.manifest_sha256 == file_digest(dataset / "manifest.json")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    document = load_manifest(dataset)
    del document["totals"]["tiles"]
    (damaged / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(
        InputError, match=r"manifest.json: is not a readable .* \(totals\.tiles: Field required\)"
    ):
        read_manifest(damaged)
