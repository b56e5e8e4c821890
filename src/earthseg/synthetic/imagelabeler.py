"""A synthetic export shaped as ImageLabeler really gives it, with the imagery behind it
served as GIBS would: the demo's and the tests' way into `earthseg fetch`.

`export.zip` is the "download all" zip: one folder per event named
`<event>_<YYYY-MM-DD>_<user>_<id>`, holding a shapefile of the same name whose DBF carries
only `FID`; every third event has no `.prj`, as some real exports. `imagery/` is a MapServer
archive of the scenes by date (`earthseg.synthetic.wms_archive`), for a local WMS standing in
for GIBS (`python -m earthseg.synthetic.wms_server DIR/imagery`).
"""

from __future__ import annotations

import datetime
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from shapely.geometry.base import BaseGeometry

from earthseg.atomic import atomic_dir
from earthseg.synthetic.export import write_image
from earthseg.synthetic.naming import EVENT, scene_ids
from earthseg.synthetic.options import check_sample
from earthseg.synthetic.placement import CRS
from earthseg.synthetic.scene import Scene, make_scene
from earthseg.synthetic.wms_archive import write_wms_archive

EXPORT_ZIP = "export.zip"
IMAGERY = "imagery"
USER = "earthseg"
ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed member times: the same seed, the same bytes
SWATH_EDGE = 0.15  # share of columns without data in every fourth scene (a swath's edge)


def write_event(
    folder: Path,
    stem: str,
    polygons: list[BaseGeometry],
    prj: bool = True,
    written: datetime.date = datetime.date(2024, 1, 1),
) -> Path:
    """`folder/<stem>/<stem>.shp` as ImageLabeler writes it: polygons in lon/lat, FID the
    only field, no .cpg, and without `prj` no .prj. The DBF's date is `written`, so
    the same polygons give the same bytes."""
    shapefile = folder / stem / f"{stem}.shp"
    shapefile.parent.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(geometry=polygons, crs=CRS).to_file(
        shapefile,
        engine="pyogrio",
        layer_options={"DBF_DATE_LAST_UPDATE": written.isoformat()},
    )
    shapefile.with_suffix(".cpg").unlink(missing_ok=True)
    if not prj:
        shapefile.with_suffix(".prj").unlink()
    return shapefile


def zip_events(folder: Path, archive: Path) -> Path:
    """The event folders under `folder` as one zip, as "download all" gives them."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as opened:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            member = zipfile.ZipInfo(path.relative_to(folder).as_posix(), ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            opened.writestr(member, path.read_bytes())
    return archive


def write_imagelabeler_sample(out: Path, scenes: int, size: int, seed: int) -> list[str]:
    """`out/export.zip` (labels only) and `out/imagery/` (the scenes by date, for a local
    WMS); return the events' names. `out` appears only complete."""
    out = Path(out)
    check_sample(out, scenes, size, seed)
    stems = []
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(dir=tmp) as work:
        events, rasters = Path(work) / "events", Path(work) / "scenes"
        rasters.mkdir()
        dated = []
        for index, scene_id in enumerate(scene_ids(seed, scenes)):
            scene = make_scene(seed, index, size, scene_id)
            stem = f"{EVENT}_{scene.date.isoformat()}_{USER}_{scene_id}"
            write_event(events, stem, scene.plumes, prj=index % 3 != 2, written=scene.date)
            raster = rasters / f"{stem}.tif"
            write_image(scene, raster)
            if index % 4 == 3:
                _mask_swath_edge(raster, scene)
            dated.append((raster, scene.date))
            stems.append(stem)
        zip_events(events, tmp / EXPORT_ZIP)
        write_wms_archive(dated, tmp / IMAGERY)
    return stems


def _mask_swath_edge(raster: Path, scene: Scene) -> None:
    """No data beyond the edge of the satellite's swath, as in real daily imagery."""
    columns = scene.rgb.shape[2]
    valid = np.full(scene.rgb.shape[1:], 255, np.uint8)
    valid[:, : int(columns * SWATH_EDGE)] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(raster, "r+") as dataset:
        dataset.write_mask(valid)
