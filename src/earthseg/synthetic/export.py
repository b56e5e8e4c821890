"""Write synthetic scenes as an ImageLabeler-style export: images/*.tif + labels/*.shp.

The export is the same shape as a real one, so everything downstream (preprocessing,
training, the demo) can run without real data, and identical for a seed so that tests
and benchmarks can compare runs.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import rasterio

from earthseg.atomic import atomic_dir
from earthseg.synthetic.naming import EVENT, LABEL_CLASS, scene_ids
from earthseg.synthetic.options import check_sample
from earthseg.synthetic.placement import CRS
from earthseg.synthetic.scene import Scene, make_scene

IMAGES = "images"
LABELS = "labels"
BLOCK = 256


def write_sample_export(out: Path, scenes: int = 8, size: int = 1024, seed: int = 0) -> list[str]:
    """Write `scenes` synthetic scenes to `out`; return their stems.

    Layout: out/images/<stem>.tif and out/labels/<stem>.shp (+ .shx .dbf .prj .cpg).
    `out` appears only once every scene is written; it must not exist or be empty.
    """
    out = Path(out)
    check_sample(out, scenes, size, seed)

    stems = []
    with atomic_dir(out) as tmp:
        (tmp / IMAGES).mkdir()
        (tmp / LABELS).mkdir()
        for index, scene_id in enumerate(scene_ids(seed, scenes)):
            scene = make_scene(seed, index, size, scene_id)
            write_image(scene, tmp / IMAGES / f"{scene.stem}.tif")
            write_labels(scene, tmp / LABELS / f"{scene.stem}.shp")
            stems.append(scene.stem)
    return stems


def write_image(scene: Scene, path: Path) -> None:
    """Write the scene as a tiled, deflate-compressed RGB GeoTIFF with no timestamp."""
    bands, rows, cols = scene.rgb.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": bands,
        "dtype": "uint8",
        "crs": CRS,
        "transform": scene.transform,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "photometric": "RGB",
        "interleave": "pixel",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scene.rgb)


def write_labels(scene: Scene, path: Path) -> None:
    """Write the scene's plume outlines as a shapefile in EPSG:4326, one feature per plume.

    The DBF header date is pinned to the scene date so that reruns are byte-identical.
    """
    date = scene.date.isoformat()
    frame = gpd.GeoDataFrame(
        {
            "class": [LABEL_CLASS] * len(scene.plumes),
            "event": [EVENT] * len(scene.plumes),
            "date": [date] * len(scene.plumes),
            "plume": list(range(1, len(scene.plumes) + 1)),
        },
        geometry=scene.plumes,
        crs=CRS,
    )
    frame.to_file(
        path,
        driver="ESRI Shapefile",
        engine="pyogrio",
        encoding="UTF-8",
        layer_options={"DBF_DATE_LAST_UPDATE": date},
    )
