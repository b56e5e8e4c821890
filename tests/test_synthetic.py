"""The synthetic ImageLabeler-style export: layout, georeferencing, labels, determinism."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine, array_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from earthseg.errors import InputError
from earthseg.synthetic import export
from earthseg.synthetic.export import write_sample_export
from earthseg.synthetic.plumes import DARK_DUST, LIGHT_DUST
from earthseg.synthetic.scene import Scene

SCENES = 3
SIZE = 256
SEED = 7
STEM = re.compile(r"^high-latitude-dust_(\d{4}-\d{2}-\d{2})_(\d{3})$")
SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
HALO_DEG = 0.05  # beyond this distance from a label there is no dust left
BAND_DEG = 0.03  # width of the bands either side of an outline


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("synthetic") / "export"
    return out, write_sample_export(out, scenes=SCENES, size=SIZE, seed=SEED)


def read_scene(out: Path, stem: str) -> tuple[np.ndarray, Affine, gpd.GeoDataFrame]:
    with rasterio.open(out / "images" / f"{stem}.tif") as src:
        pixels = src.read()
        transform = src.transform
    return pixels, transform, gpd.read_file(out / "labels" / f"{stem}.shp")


def mask(geometries: list[BaseGeometry], transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres fall in any of the geometries."""
    shapes = [g for g in geometries if not g.is_empty]
    if not shapes:
        return np.zeros(shape, dtype=bool)
    return rasterize(shapes, out_shape=shape, transform=transform).astype(bool)


def label_masks(
    geometries: list[BaseGeometry], transform: Affine, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels inside a label, and pixels beyond the halo of every label."""
    halo = [g.buffer(HALO_DEG) for g in geometries]
    return mask(geometries, transform, shape), ~mask(halo, transform, shape)


def border_bands(
    geometry: BaseGeometry, transform: Affine, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A band just inside an outline, and a band just beyond its halo."""
    inner = mask([geometry], transform, shape) & ~mask(
        [geometry.buffer(-BAND_DEG)], transform, shape
    )
    outer = mask([geometry.buffer(HALO_DEG + BAND_DEG)], transform, shape)
    return inner, outer & ~mask([geometry.buffer(HALO_DEG)], transform, shape)


def redness(pixels: np.ndarray) -> np.ndarray:
    """Red over blue per pixel: high for dust, low for ocean and cloud."""
    red, _, blue = pixels.astype(np.float32)
    return red / np.maximum(blue, 1.0)


def distance_to_dust(pixels: np.ndarray) -> np.ndarray:
    """Per pixel, the RGB distance to the nearest colour on the dust palette."""
    rgb = pixels.transpose(1, 2, 0).astype(np.float32)
    span = LIGHT_DUST - DARK_DUST
    t = np.clip((rgb - DARK_DUST) @ span / (span @ span), 0.0, 1.0)
    return np.linalg.norm(rgb - (DARK_DUST + t[..., None] * span), axis=-1)


def all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_layout_and_stems(sample: tuple[Path, list[str]]) -> None:
    out, stems = sample
    assert len(stems) == SCENES
    assert len(set(stems)) == SCENES
    assert sorted(p.name for p in out.iterdir()) == ["images", "labels"]
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{s}.tif" for s in stems)
    expected = sorted(f"{s}{ext}" for s in stems for ext in SIDECARS)
    assert sorted(p.name for p in (out / "labels").iterdir()) == expected
    ids = []
    for stem in stems:
        match = STEM.match(stem)
        assert match, stem
        datetime.date.fromisoformat(match.group(1))
        ids.append(match.group(2))
    assert len(set(ids)) == SCENES


def test_images_look_like_high_latitude_modis(sample: tuple[Path, list[str]]) -> None:
    out, stems = sample
    for stem in stems:
        with rasterio.open(out / "images" / f"{stem}.tif") as src:
            assert src.crs.to_epsg() == 4326
            assert src.count == 3
            assert src.dtypes == ("uint8", "uint8", "uint8")
            assert (src.width, src.height) == (SIZE, SIZE)
            assert src.res == pytest.approx((0.005, 0.005))
            assert src.compression is not None
            assert src.compression.value == "DEFLATE"
            assert "TIFFTAG_DATETIME" not in src.tags()
            bottom, top = src.bounds.bottom, src.bounds.top
            assert bottom > 40.0 or top < -40.0, (stem, bottom, top)
            assert -180.0 <= src.bounds.left < src.bounds.right <= 180.0


def test_labels_are_dust_polygons_inside_their_scene(sample: tuple[Path, list[str]]) -> None:
    out, stems = sample
    for stem in stems:
        _, transform, labels = read_scene(out, stem)
        scene = box(*array_bounds(SIZE, SIZE, transform))
        match = STEM.match(stem)
        assert match
        assert labels.crs.to_epsg() == 4326
        assert 1 <= len(labels) <= 3
        assert set(labels["class"]) == {"dust"}
        assert set(labels["event"]) == {"high-latitude-dust"}
        assert set(labels["date"]) == {match.group(1)}
        for geometry in labels.geometry:
            assert geometry.geom_type == "Polygon"
            assert geometry.is_valid
            assert geometry.intersection(scene).area > 0.99 * geometry.area > 0


def test_labels_sit_on_the_dust(sample: tuple[Path, list[str]]) -> None:
    """Inside labels is redder than away from them, and each outline follows its plume.

    Along every outline the band just inside is redder than the band just beyond the halo;
    labels displaced from their plumes pass this only about half the time, each.
    """
    out, stems = sample
    checked = 0
    for stem in stems:
        pixels, transform, labels = read_scene(out, stem)
        ratio = redness(pixels)
        inside, away = label_masks(list(labels.geometry), transform, (SIZE, SIZE))
        assert ratio[inside].mean() > ratio[away].mean(), stem
        for geometry in labels.geometry:
            inner, outer = border_bands(geometry, transform, (SIZE, SIZE))
            if inner.any() and outer.any():
                assert ratio[inner].mean() > ratio[outer].mean(), stem
                checked += 1
    assert checked >= SCENES


def test_scenes_contain_distractors_away_from_labels(sample: tuple[Path, list[str]]) -> None:
    out, stems = sample
    cloudy, dusty, away_total = 0, 0, 0
    for stem in stems:
        pixels, transform, labels = read_scene(out, stem)
        _, away = label_masks(list(labels.geometry), transform, (SIZE, SIZE))
        red, _, blue = pixels.astype(np.int16)
        cloud_white = (pixels.min(axis=0) > 200) & (blue - red < 15)  # snow is bluer
        assert cloud_white[away].any(), f"{stem}: no cloud-white pixels away from the labels"
        cloudy += int(cloud_white[away].sum())
        dusty += int((distance_to_dust(pixels)[away] < 30.0).sum())
        away_total += int(away.sum())
    assert cloudy / away_total > 0.02, "too little cloud away from the labels"
    assert dusty / away_total > 0.005, "no dust-coloured ground (bare soil) away from the labels"


def test_same_seed_same_export_and_scenes_independent_of_count(
    sample: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out, stems = sample
    again = write_sample_export(tmp_path / "again", scenes=SCENES, size=SIZE, seed=SEED)
    assert again == stems
    assert all_files(tmp_path / "again") == all_files(out)

    first = write_sample_export(tmp_path / "first", scenes=1, size=SIZE, seed=SEED)
    assert first == stems[:1]
    one_pixels, _, one_labels = read_scene(tmp_path / "first", first[0])
    pixels, _, labels = read_scene(out, stems[0])
    assert np.array_equal(one_pixels, pixels)
    assert one_labels.geometry.geom_equals_exact(labels.geometry, tolerance=0.0).all()


def test_different_seed_differs(sample: tuple[Path, list[str]], tmp_path: Path) -> None:
    out, stems = sample
    other = write_sample_export(tmp_path / "other", scenes=1, size=SIZE, seed=SEED + 1)
    other_pixels, _, other_labels = read_scene(tmp_path / "other", other[0])
    pixels, _, labels = read_scene(out, stems[0])
    assert not np.array_equal(other_pixels, pixels)
    assert other_labels.geometry.iloc[0] != labels.geometry.iloc[0]


def test_failure_leaves_no_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    written: list[Path] = []

    def fail_on_second(scene: Scene, path: Path) -> None:
        if written:
            raise OSError("disk full")
        written.append(path)
        real_write_labels(scene, path)

    real_write_labels = export.write_labels
    monkeypatch.setattr(export, "write_labels", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        write_sample_export(tmp_path / "out", scenes=2, size=64, seed=0)
    assert written
    assert list(tmp_path.iterdir()) == []


def test_fills_an_existing_empty_folder(tmp_path: Path) -> None:
    stems = write_sample_export(tmp_path, scenes=1, size=64, seed=0)
    assert (tmp_path / "images" / f"{stems[0]}.tif").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]


def test_refuses_a_non_empty_output(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not empty") as caught:
        write_sample_export(tmp_path, scenes=1, size=64)
    assert caught.value.source == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"scenes": 0}, "--scenes"), ({"size": 63}, "--size"), ({"seed": -1}, "--seed")],
)
def test_rejects_bad_options(kwargs: dict[str, int], option: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        write_sample_export(tmp_path / "out", **kwargs)
    assert caught.value.source == option
    assert not (tmp_path / "out").exists()


def test_the_imagelabeler_sample_is_shaped_as_real_exports_and_reproducible(
    tmp_path: Path,
) -> None:
    """Labels only, a folder per event named <event>_<date>_<user>_<id>, FID-only DBFs,
    some without .prj, zipped like download-all; its scenes in a WMS archive by date."""
    import zipfile

    from earthseg.imagery.exports import open_export
    from earthseg.synthetic.imagelabeler import write_imagelabeler_sample

    events = write_imagelabeler_sample(tmp_path / "a", scenes=3, size=128, seed=5)
    write_imagelabeler_sample(tmp_path / "b", scenes=3, size=128, seed=5)
    assert (tmp_path / "a" / "export.zip").read_bytes() == (
        tmp_path / "b" / "export.zip"
    ).read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "export.zip") as opened:
        names = opened.namelist()
    assert not any(name.endswith((".tif", ".cpg")) for name in names)
    assert {name.split("/")[0] for name in names} == set(events)
    assert sum(name.endswith(".prj") for name in names) == 2  # the third event has none
    with open_export(tmp_path / "a" / "export.zip") as label_sets:
        assert [s.stem for s in label_sets] == sorted(events)
        assert all(s.name is not None and s.name.user == "earthseg" for s in label_sets)
        fields = gpd.read_file(label_sets[0].path).columns
        assert list(fields) == ["FID", "geometry"]  # the DBF holds only FID
    assert (tmp_path / "a" / "imagery" / "wms.map").is_file()
    assert len(list((tmp_path / "a" / "imagery" / "rasters").glob("*.tif"))) == 3
