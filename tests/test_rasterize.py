"""Labels -> masks on the scene's own grid, on real georeferenced data."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from shapely.affinity import translate

from earthseg.atomic import PARTIAL_PREFIX
from earthseg.cli import main
from earthseg.errors import InputError
from earthseg.preprocess.rasterize import rasterize_file
from tests.conftest import copy_shapefile

# What solaris's own tests expect for its footprints over its chip (shared/data/real/README).
SOLARIS_POSITIVE_FRACTION = 0.0418


def pixel_centres_inside(scene: Path, polygon: shapely.Polygon) -> np.ndarray:
    """Independent reference: which pixel centres of `scene` fall inside `polygon`."""
    with rasterio.open(scene) as dataset:
        rows, cols = np.mgrid[0 : dataset.height, 0 : dataset.width]
        xs, ys = rasterio.transform.xy(dataset.transform, rows.ravel(), cols.ravel())
    inside = shapely.contains_xy(polygon, np.asarray(xs), np.asarray(ys))
    return inside.reshape(rows.shape)


def test_mask_is_on_the_scene_grid_and_matches_solaris(real_data: Path, tmp_path: Path) -> None:
    scene = real_data / "sample_geotiff.tif"
    out = tmp_path / "mask.tif"
    mask = rasterize_file(scene, real_data / "geotiff_labels.geojson", out)
    with rasterio.open(scene) as image, rasterio.open(out) as written:
        assert (written.crs, written.transform) == (image.crs, image.transform)
        assert (written.width, written.height, written.count) == (image.width, image.height, 1)
        assert written.dtypes[0] == "uint8"
        np.testing.assert_array_equal(written.read(1), mask)
    assert set(np.unique(mask)) == {0, 1}
    assert mask.mean() == pytest.approx(SOLARIS_POSITIVE_FRACTION, abs=5e-4)


def test_same_mask_whatever_crs_the_labels_arrive_in(real_data: Path, tmp_path: Path) -> None:
    scene = real_data / "sample_geotiff.tif"
    native = rasterize_file(scene, real_data / "geotiff_labels.geojson", tmp_path / "a.tif")
    geographic = tmp_path / "labels_4326.gpkg"
    gpd.read_file(real_data / "geotiff_labels.geojson").to_crs("EPSG:4326").to_file(geographic)
    assert gpd.read_file(geographic).crs.to_epsg() == 4326
    reprojected = rasterize_file(scene, geographic, tmp_path / "b.tif")
    np.testing.assert_array_equal(reprojected, native)


def test_box_burns_exactly_the_pixel_centres_inside_it(real_data: Path, tmp_path: Path) -> None:
    scene = real_data / "RGB.byte.tif"
    mask = rasterize_file(scene, real_data / "box.shp", tmp_path / "mask.tif")
    box = gpd.read_file(real_data / "box.shp").geometry.iloc[0]
    np.testing.assert_array_equal(mask.astype(bool), pixel_centres_inside(scene, box))


def test_every_label_format_gives_the_same_mask(real_data: Path, tmp_path: Path) -> None:
    scene = real_data / "RGB.byte.tif"
    reference = rasterize_file(scene, real_data / "box.shp", tmp_path / "ref.tif")
    zipped = tmp_path / "box.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for part in real_data.glob("box.*"):
            archive.write(part, part.name)
    frame = gpd.read_file(real_data / "box.shp")
    frame.to_crs("EPSG:3857").to_file(tmp_path / "box.geojson")
    frame.to_file(tmp_path / "box.gpkg")
    for labels in (zipped, tmp_path / "box.geojson", tmp_path / "box.gpkg"):
        mask = rasterize_file(scene, labels, tmp_path / f"{labels.suffix[1:]}.tif")
        np.testing.assert_array_equal(mask, reference, err_msg=str(labels))


def test_all_touched_grows_the_mask(real_data: Path, tmp_path: Path) -> None:
    scene, labels = real_data / "sample_geotiff.tif", real_data / "geotiff_labels.geojson"
    centres = rasterize_file(scene, labels, tmp_path / "a.tif")
    touched = rasterize_file(scene, labels, tmp_path / "b.tif", all_touched=True)
    assert touched.sum() > centres.sum()
    assert np.all(touched[centres == 1] == 1)


def test_labels_without_crs_name_the_missing_prj(real_data: Path, tmp_path: Path) -> None:
    labels = copy_shapefile(real_data / "box.shp", tmp_path / "box.shp", (".shp", ".shx", ".dbf"))
    with pytest.raises(InputError, match=r"box\.shp.*\.prj"):
        rasterize_file(real_data / "RGB.byte.tif", labels, tmp_path / "mask.tif")
    assert not (tmp_path / "mask.tif").exists()


def test_labels_outside_the_scene_are_refused(real_data: Path, tmp_path: Path) -> None:
    frame = gpd.read_file(real_data / "box.shp")
    frame.geometry = frame.geometry.map(lambda g: translate(g, xoff=1e6))
    frame.to_file(tmp_path / "far.geojson")
    with pytest.raises(InputError, match=r"no polygon overlaps scene RGB\.byte\.tif"):
        rasterize_file(real_data / "RGB.byte.tif", tmp_path / "far.geojson", tmp_path / "m.tif")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tif"]


def test_invalid_polygons_are_repaired_and_reported(
    real_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = gpd.read_file(real_data / "box.shp").geometry.iloc[0]
    (minx, miny, maxx, maxy) = box.bounds
    bowtie = shapely.Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy)])
    assert not bowtie.is_valid
    frame = gpd.GeoDataFrame(geometry=[bowtie, shapely.Polygon()], crs="EPSG:32618")
    frame.to_file(tmp_path / "bowtie.gpkg")
    with caplog.at_level(logging.WARNING):
        mask = rasterize_file(
            real_data / "RGB.byte.tif", tmp_path / "bowtie.gpkg", tmp_path / "m.tif"
        )
    assert "repaired 1 invalid polygons (Self-intersection" in caplog.text
    assert "dropped 1 empty geometries" in caplog.text
    expected = pixel_centres_inside(real_data / "RGB.byte.tif", shapely.make_valid(bowtie))
    np.testing.assert_array_equal(mask.astype(bool), expected)


def test_points_are_not_labels(real_data: Path, tmp_path: Path) -> None:
    centre = gpd.read_file(real_data / "box.shp").geometry.iloc[0].centroid
    gpd.GeoDataFrame(geometry=[centre], crs="EPSG:32618").to_file(tmp_path / "p.geojson")
    with pytest.raises(InputError, match="1 Point geometries; labels must be polygons"):
        rasterize_file(real_data / "RGB.byte.tif", tmp_path / "p.geojson", tmp_path / "m.tif")


def test_unreadable_raster_and_unreadable_labels(real_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tif"
    broken.write_text("not a GeoTIFF")
    with pytest.raises(InputError, match=r"broken\.tif: cannot be read as a raster"):
        rasterize_file(broken, real_data / "box.shp", tmp_path / "m.tif")
    garbage = tmp_path / "labels.geojson"
    garbage.write_text("{ not json")
    with pytest.raises(InputError, match=r"labels\.geojson: cannot be read as vector labels"):
        rasterize_file(real_data / "RGB.byte.tif", garbage, tmp_path / "m.tif")


def test_scene_without_crs_is_refused(real_data: Path, tmp_path: Path) -> None:
    with rasterio.open(real_data / "RGB.byte.tif") as source:
        profile, data = source.profile, source.read()
    profile.pop("crs")
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as target:
        target.write(data)
    with pytest.raises(InputError, match=r"bare\.tif: has no coordinate reference system"):
        rasterize_file(bare, real_data / "box.shp", tmp_path / "m.tif")


def test_cli_writes_the_mask_and_reports_bad_input(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "masks" / "box.tif"
    args = ["rasterize", "--image", str(real_data / "RGB.byte.tif"), "--out", str(out)]
    assert main([*args, "--labels", str(real_data / "box.shp")]) == 0
    assert out.is_file()
    assert "labelled" in capsys.readouterr().out
    shutil.copy(real_data / "box.shp", tmp_path / "lonely.shp")
    assert main([*args, "--labels", str(tmp_path / "lonely.shp")]) == 2
    error = capsys.readouterr().err
    assert "lonely.shp" in error and "Fix:" in error
    assert not list(out.parent.glob(f"{PARTIAL_PREFIX}*"))
