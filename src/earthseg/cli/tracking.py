"""`earthseg ui`: MLflow's UI over the tracking store of a runs folder."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from earthseg.errors import InputError
from earthseg.tracked_runs import DEFAULT_RUNS

DEFAULT_PORT = 5000


def add_commands(commands: Any) -> None:
    ui = commands.add_parser(
        "ui",
        help="open MLflow's UI on the runs tracked by `earthseg pipeline --local` "
        "(the store in the runs folder)",
        description="Runs `mlflow ui` over <runs>/mlflow.db with the artifacts in "
        "<runs>/mlartifacts, on 127.0.0.1, until interrupted; prints the command, which "
        "also works on its own. No tracking server needs to run otherwise.",
    )
    ui.add_argument(
        "--runs", type=Path, default=DEFAULT_RUNS, help=f"the runs folder (default: {DEFAULT_RUNS})"
    )
    ui.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    ui.set_defaults(run=open_ui)


def open_ui(args: argparse.Namespace) -> int:
    from earthseg.train.tracking import LOCAL_STORE, local_store_uri, store_command

    if not (args.runs / LOCAL_STORE).is_file():
        raise InputError(
            args.runs,
            f"holds no tracking store ({LOCAL_STORE})",
            "give the folder that holds the run folders (run_dir's parent) of a tracked "
            "`earthseg pipeline --local` run",
        )
    command = store_command(local_store_uri(args.runs), args.port)
    print(shlex.join(command), flush=True)
    try:
        return subprocess.run([sys.executable, "-m", *command]).returncode
    except KeyboardInterrupt:
        return 0
