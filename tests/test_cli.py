"""The `earthseg` command as a user meets it: installed entry point, help, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from earthseg.cli import build_parser


def test_help_lists_every_subcommand_with_its_purpose() -> None:
    earthseg = Path(sys.executable).parent / "earthseg"
    result = subprocess.run([earthseg, "--help"], capture_output=True, text=True, check=True)
    shown = " ".join(result.stdout.split())  # argparse wraps lines
    commands = next(
        action for action in build_parser()._actions if action.dest == "command"
    )._choices_actions
    assert {c.dest for c in commands} == {
        "fetch",
        "sample",
        "rasterize",
        "preprocess",
        "prepare",
        "evaluate",
        "train",
        "ui",
        "runs",
        "serve",
        "predict",
        "upload",
        "deploy",
        "models",
        "delete",
        "invoke",
        "transform",
        "detect",
        "pipeline",
        "tune",
        "logs",
        "iam-policy",
        "push",
        "doctor",
    }
    for command in commands:
        assert command.help and len(command.help) > 20
        assert f"{command.dest} {' '.join(command.help.split())}" in shown


def test_sample_writes_an_export_and_refuses_bad_options(tmp_path: Path) -> None:
    earthseg = Path(sys.executable).parent / "earthseg"
    out = tmp_path / "export"
    ok = subprocess.run(
        [earthseg, "sample", "--out", out, "--scenes", "2", "--size", "128"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(list((out / "images").glob("*.tif"))) == len(list((out / "labels").glob("*.shp")))
    bad = subprocess.run(
        [earthseg, "sample", "--out", tmp_path / "x", "--size", "8"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "--size" in bad.stderr and "Fix:" in bad.stderr and "Traceback" not in bad.stderr
