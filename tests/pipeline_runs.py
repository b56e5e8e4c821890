"""Small pipeline runs for the tests: a config for a tiny synthetic export, and what each
stage said it did. Shared by tests/test_pipeline.py and the Docker pipeline tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from earthseg.synthetic.export import write_sample_export
from earthseg.synthetic.imagelabeler import EXPORT_ZIP, IMAGERY, write_imagelabeler_sample
from earthseg.synthetic.wms_server import serve_wms

STAGES = ["preprocess", "train", "invoke", "detect", "report"]
FETCHED_STAGES = ["fetch", *STAGES]
SAMPLE = "sample"  # the labels-only export and its imagery, in a run's folder


def small_run(
    folder: Path, docker: str = "never", wms: str | None = None, **overrides: object
) -> Path:
    """A config for a 4-scene 256 px export: 64 px tiles, a tiny U-Net, 2 epochs, and a
    detection over the export's whole scenes. With `wms` (see `sample_wms`), the export is
    labels only and the scenes are fetched."""
    if wms is not None:
        export: dict[str, object] = {"export": {"labels": f"{SAMPLE}/{EXPORT_ZIP}"}}
        export["imagery"] = {"url": wms, "resolution": "0.005deg", "margin": "0.15deg"}
        export["detect"] = {"scenes": f"{SAMPLE}/{IMAGERY}/rasters"}
    else:
        if not (folder / "export").exists():
            write_sample_export(folder / "export", scenes=4, size=256, seed=3)
        export = {"export": {"images": "export/images", "labels": "export/labels"}}
        export["detect"] = {"scenes": "export/images"}
    config = {
        "name": "tiny",
        **export,
        "preprocess": {"tile_size": 64, "splits": [0.5, 0.25, 0.25]},
        "train": {"hyperparameters": {"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2}},
        "local": {"docker": docker},
        **overrides,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def sample_wms(folder: Path) -> Iterator[str]:
    """A 4-event ImageLabeler export (`folder/sample/export.zip`) and a WMS serving its
    scenes, as GIBS would, for as long as the context lasts; yields the WMS URL."""
    sample = folder / SAMPLE
    if not sample.exists():
        write_imagelabeler_sample(sample, scenes=4, size=256, seed=3)
    with serve_wms(sample / IMAGERY) as url:
        yield url


def stage_lines(output: str) -> dict[str, str]:
    """Each stage's last word on a run: running / kept."""
    lines = {}
    for line in output.splitlines():
        name, _, rest = line.partition(": ")
        if name in FETCHED_STAGES:
            lines[name] = "kept" if "kept" in rest else rest.split(" ")[0]
    return lines
