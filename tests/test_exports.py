"""ImageLabeler exports as they come: names, the four forms, .prj-less shapefiles, zips."""

from __future__ import annotations

import datetime
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest

from earthseg.contracts.manifest import files_digest
from earthseg.errors import InputError
from earthseg.imagery.exports import (
    EXPECTED_FORM,
    EventName,
    LabelSet,
    event_name,
    open_export,
    parse_event_name,
)
from earthseg.preprocess.dataset import build_dataset
from earthseg.preprocess.labels import read_labels
from earthseg.preprocess.options import PreprocessOptions
from earthseg.synthetic.imagelabeler import zip_events
from tests.conftest import copy_shapefile

SHAPEFILE = (".shp", ".shx", ".dbf", ".prj")
# As the download-all zip names them: two events on one date, one on another.
STEMS = (
    "high-latitude-dust_2018-01-08_jdoe_197",
    "high-latitude-dust_2018-01-08_jdoe_198",
    "smoke_plume_2019-07-30_j.doe-2_3",
)


def imagelabeler_shapefile(source: Path, target: Path, prj: bool = True) -> Path:
    """`source`'s polygons as ImageLabeler writes them: FID the only field, no .cpg."""
    target.parent.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(geometry=gpd.read_file(source).geometry).to_file(target)
    target.with_suffix(".cpg").unlink()
    if not prj:
        target.with_suffix(".prj").unlink()
    return target


def flat_export(folder: Path, source: Path, stems: tuple[str, ...] = STEMS) -> Path:
    first = imagelabeler_shapefile(source, folder / f"{stems[0]}.shp")
    for stem in stems[1:]:
        copy_shapefile(first, folder / f"{stem}.shp", SHAPEFILE)
    return folder


def event_folders(flat: Path, folder: Path) -> Path:
    """The flat export's shapefiles, each in a folder of its own name."""
    for shp in flat.glob("*.shp"):
        copy_shapefile(shp, folder / shp.stem / shp.name, SHAPEFILE)
    return folder


def download_all(folders: Path, archive: Path) -> Path:
    """A zip of event folders, as ImageLabeler's "download all" gives it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    return zip_events(folders, archive)


def read_export(path: Path) -> list[LabelSet]:
    with open_export(path) as label_sets:
        return label_sets


def described(label_sets: list[LabelSet]) -> list[tuple[str, EventName | None, str, list[str]]]:
    """What a label set stands for, wherever it was read from."""
    return [
        (s.stem, s.name, files_digest(s.files()), sorted(f.name for f in s.files()))
        for s in label_sets
    ]


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("high-latitude-dust_2018-01-08_197", ("high-latitude-dust", "2018-01-08", None, "197")),
        (
            "high-latitude-dust_2018-01-08_jdoe_197",
            ("high-latitude-dust", "2018-01-08", "jdoe", "197"),
        ),
        ("smoke_plume_2019-07-30_j.doe-2_3", ("smoke_plume", "2019-07-30", "j.doe-2", "3")),
        ("a", None),
        ("high-latitude-dust_2018-01-08", None),  # no id
        ("high-latitude-dust_2018-02-30_197", None),  # no such day
    ],
)
def test_event_names_are_parsed_in_both_forms(
    stem: str, expected: tuple[str, str, str | None, str] | None
) -> None:
    parsed = parse_event_name(stem)
    if expected is None:
        assert parsed is None
    else:
        event, date, user, id_ = expected
        assert parsed == EventName(event, datetime.date.fromisoformat(date), user, id_)


def test_a_name_without_a_real_date_is_refused_naming_the_form() -> None:
    assert event_name(Path("x/dust_2018-01-08_7.shp")).id == "7"
    with pytest.raises(InputError, match=r"x/rmnp: .*Fix: name it <event>_<YYYY-MM-DD>_<id>"):
        event_name(Path("x/rmnp"))
    with pytest.raises(InputError, match=r"dust_2018-02-30_7: .*2018-02-30.*not a real date"):
        event_name(Path("dust_2018-02-30_7"))
    assert "_<user>_" in EXPECTED_FORM


def test_every_export_form_reads_into_the_same_label_sets(real_data: Path, tmp_path: Path) -> None:
    flat = flat_export(tmp_path / "flat", real_data / "box.shp")
    folders = event_folders(flat, tmp_path / "folders")
    archive = download_all(folders, tmp_path / "zip" / "export.zip")
    sagemaker = tmp_path / "opt" / "ml" / "processing" / "input" / "labels"
    sagemaker.mkdir(parents=True)
    shutil.copy(archive, sagemaker / "export.zip")

    with open_export(flat) as label_sets:
        expected = described(label_sets)
    assert [stem for stem, *_ in expected] == sorted(STEMS)
    assert expected[2][1] == EventName("smoke_plume", datetime.date(2019, 7, 30), "j.doe-2", "3")
    assert expected[0][3] == [f"{STEMS[0]}{suffix}" for suffix in (".dbf", ".prj", ".shp", ".shx")]
    for form in (folders, archive, sagemaker):
        with open_export(form) as label_sets:
            assert described(label_sets) == expected, form
            extracted = label_sets[0].path
        if form != folders:
            assert not extracted.exists()  # the zip's temporary folder went with the context


def test_forms_mix_in_one_folder_and_a_stem_twice_is_refused(
    real_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = flat_export(tmp_path / "flat", real_data / "box.shp")
    labels = tmp_path / "labels"
    copy_shapefile(source / f"{STEMS[0]}.shp", labels / "a.shp", SHAPEFILE)  # undated: flat only
    copy_shapefile(source / f"{STEMS[1]}.shp", labels / STEMS[1] / "renamed.shp", SHAPEFILE)
    staged = event_folders(source, tmp_path / "staged")
    shutil.rmtree(staged / STEMS[1])
    download_all(staged, labels / "export.zip")
    with caplog.at_level(logging.WARNING), open_export(labels) as label_sets:
        assert [(s.stem, s.name is None) for s in label_sets] == [
            ("a", True),
            *((stem, False) for stem in sorted(STEMS)),
        ]
        paths = {s.stem: s.path for s in label_sets}
        assert paths[STEMS[1]].name == "renamed.shp"  # paired by its folder's name
    assert f"{STEMS[1]}/renamed.shp: named unlike its folder" in caplog.text

    copy_shapefile(source / f"{STEMS[2]}.shp", labels / f"{STEMS[2]}.shp", SHAPEFILE)
    with pytest.raises(InputError, match=rf"several label sets for {STEMS[2]}") as refused:
        read_export(labels)
    assert str(labels / "export.zip" / STEMS[2] / f"{STEMS[2]}.shp") in str(refused.value)
    assert str(labels / f"{STEMS[2]}.shp") in str(refused.value)


def test_folders_not_named_as_imagelabeler_names_events_are_refused(
    real_data: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels"
    imagelabeler_shapefile(real_data / "rmnp.shp", labels / "rmnp" / "rmnp.shp")
    with pytest.raises(InputError, match=r"labels/rmnp: is not an ImageLabeler event name"):
        read_export(labels)
    archive = download_all(labels, tmp_path / "export.zip")
    with pytest.raises(InputError, match=r"export\.zip/rmnp: .*Fix: name it <event>_"):
        read_export(archive)
    (labels / "rmnp").rename(labels / "rmnp_2018-02-30_1")
    with pytest.raises(InputError, match=r"rmnp_2018-02-30_1: is named for 2018-02-30, which"):
        read_export(labels)
    (labels / "rmnp_2018-02-30_1").rename(labels / "rmnp_2018-02-28_1")
    for part in (labels / "rmnp_2018-02-28_1").iterdir():
        part.unlink()
    with pytest.raises(InputError, match=r"rmnp_2018-02-28_1: holds no shapefile"):
        read_export(labels)


def test_a_zip_reaching_outside_its_folder_is_refused(real_data: Path, tmp_path: Path) -> None:
    shp = imagelabeler_shapefile(real_data / "box.shp", tmp_path / "src" / "box.shp")
    for member in ("../escaped/x_2018-01-08_1.shp", "/tmp/escaped/x_2018-01-08_1.shp"):
        archive = tmp_path / "labels" / "export.zip"
        archive.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(archive, "w") as opened:
            opened.write(shp, f"x_2018-01-08_2/{shp.name}")
            opened.writestr(member, shp.read_bytes())
        with pytest.raises(InputError, match=rf"holds {member}, which would be extracted outside"):
            read_export(tmp_path / "labels")
    assert not (Path(tempfile.gettempdir()) / "escaped").exists()


def test_a_shapefile_without_prj_in_an_imagelabeler_export_is_read_as_wgs84(
    real_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stem = STEMS[0]
    labels, images, with_prj = tmp_path / "labels", tmp_path / "images", tmp_path / "with-prj"
    images.mkdir()
    for scene in STEMS[:2]:  # one per split
        imagelabeler_shapefile(real_data / "rmnp.shp", labels / scene / f"{scene}.shp", False)
        copy_shapefile(real_data / "rmnp.shp", with_prj / f"{scene}.shp", SHAPEFILE)
        shutil.copy(real_data / "rmnp-rgb.tif", images / f"{scene}.tif")
    options = PreprocessOptions(tile_size=128, splits=(0.5, 0.5, 0.0))

    with caplog.at_level(logging.WARNING):
        manifest = build_dataset(images, labels, tmp_path / "out", options)
    assert f"{stem}/{stem}.shp: no .prj beside it; read as EPSG:4326" in caplog.text
    expected = build_dataset(images, with_prj, tmp_path / "expected", options)
    assert [t.positive_fraction for t in manifest.tiles] == [
        t.positive_fraction for t in expected.tiles
    ]
    assert 0 < manifest.totals.positive_fraction < 1

    read = read_labels(labels / stem / f"{stem}.shp", assume_wgs84=True)
    assert read.crs == "EPSG:4326"
    assert read.geom_equals(read_labels(real_data / "rmnp.shp")).all()

    # Undated names are not ImageLabeler's: the CRS of their polygons is anyone's guess.
    undated, undated_images = tmp_path / "undated", tmp_path / "undated-images"
    undated_images.mkdir()
    for scene in ("a", "b"):
        imagelabeler_shapefile(real_data / "rmnp.shp", undated / f"{scene}.shp", prj=False)
        shutil.copy(real_data / "rmnp-rgb.tif", undated_images / f"{scene}.tif")
    with pytest.raises(InputError, match=r"a\.shp: has no coordinate reference system"):
        build_dataset(undated_images, undated, tmp_path / "undated-out", options)


def test_a_shapefile_without_prj_and_projected_coordinates_is_refused(
    real_data: Path, tmp_path: Path
) -> None:
    labels, images = tmp_path / "labels", tmp_path / "images"
    images.mkdir()
    for stem in STEMS[:2]:
        imagelabeler_shapefile(real_data / "box.shp", labels / stem / f"{stem}.shp", prj=False)
        shutil.copy(real_data / "RGB.byte.tif", images / f"{stem}.tif")
    with pytest.raises(InputError, match=rf"{STEMS[0]}\.shp: has no coordinate reference system"):
        build_dataset(images, labels, tmp_path / "out", PreprocessOptions(splits=(0.5, 0.5, 0)))
    assert not (tmp_path / "out").exists()


def test_a_dataset_from_the_download_all_zip_matches_the_flat_folder(
    real_data: Path, tmp_path: Path
) -> None:
    flat = flat_export(tmp_path / "flat", real_data / "box.shp")
    labels = tmp_path / "labels"
    labels.mkdir()
    download_all(event_folders(flat, tmp_path / "folders"), labels / "export.zip")
    images = tmp_path / "images"
    images.mkdir()
    for stem in STEMS:
        shutil.copy(real_data / "RGB.byte.tif", images / f"{stem}.tif")
    options = PreprocessOptions(tile_size=256)

    zipped = build_dataset(images, labels, tmp_path / "from-zip", options)
    expected = build_dataset(images, flat, tmp_path / "from-flat", options)
    assert zipped.tiles == expected.tiles
    assert zipped.inputs == expected.inputs
    assert {t.scene for t in zipped.tiles} == set(STEMS)
    assert zipped.totals.positive_fraction > 0
