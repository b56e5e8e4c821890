"""Small pipeline runs for the tests: a config for a tiny synthetic export, and what each
stage said it did. Shared by tests/test_pipeline.py and the Docker pipeline tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from earthseg.synthetic.export import write_sample_export

STAGES = ["preprocess", "train", "invoke", "report"]


def small_run(folder: Path, docker: str = "never", **overrides: object) -> Path:
    """A config for a 4-scene 256 px export: 64 px tiles, a tiny U-Net, 2 epochs."""
    if not (folder / "export").exists():
        write_sample_export(folder / "export", scenes=4, size=256, seed=3)
    config = {
        "name": "tiny",
        "export": {"images": "export/images", "labels": "export/labels"},
        "preprocess": {"tile_size": 64, "splits": [0.5, 0.25, 0.25]},
        "train": {"hyperparameters": {"epochs": 2, "batch_size": 8, "filters": 8, "depth": 2}},
        "local": {"docker": docker},
        **overrides,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stage_lines(output: str) -> dict[str, str]:
    """Each stage's last word on a run: running / kept."""
    lines = {}
    for line in output.splitlines():
        name, _, rest = line.partition(": ")
        if name in STAGES:
            lines[name] = "kept" if "kept" in rest else rest.split(" ")[0]
    return lines
