"""`earthseg fetch`: an ImageLabeler export's imagery from a WMS (NASA GIBS by default)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from earthseg.cli.options import add_model_options, model_from_args


def add_commands(commands: Any) -> None:
    from earthseg.imagery.options import FetchOptions, TransferOptions

    fetch = commands.add_parser(
        "fetch",
        help="each labelled event's scene from a WMS (NASA GIBS by default), ready to preprocess",
        description="Reads an ImageLabeler export (a folder of label files, a folder of "
        "per-event folders, or the download-all zip), and for each event fetches the "
        "imagery on the date in its name over its labels' bounds plus --margin. Writes "
        "OUT/images/<event>.tif, OUT/labels/<event>.* and OUT/fetch.json; then "
        "`earthseg preprocess --images OUT/images --labels OUT/labels`.",
    )
    fetch.add_argument("--labels", type=Path, required=True, help="the ImageLabeler export")
    fetch.add_argument("--out", type=Path, required=True, help="folder to write (or resume)")
    fetch.add_argument(
        "--layer",
        dest="layer",
        action="append",
        metavar="NAME",
        help="a WMS layer; repeat to stack several as bands "
        f"(default {','.join(FetchOptions.model_fields['layers'].default)})",
    )
    add_model_options(
        fetch, FetchOptions, fields=[n for n in FetchOptions.model_fields if n != "layers"]
    )
    add_model_options(fetch, TransferOptions)
    fetch.set_defaults(run=fetch_imagery)


def fetch_imagery(args: argparse.Namespace) -> None:
    from earthseg.imagery.fetch import fetch_export
    from earthseg.imagery.options import FetchOptions, TransferOptions

    args.layers = args.layer
    options = model_from_args(args, FetchOptions, flags={"layers": "--layer"})
    transfer = model_from_args(args, TransferOptions)
    record = fetch_export(args.labels, args.out, options, transfer)
    fetched = sum(1 for scene in record.scenes if scene.requests)
    print(
        f"{args.out}: {len(record.scenes)} scenes ({fetched} fetched, "
        f"{len(record.scenes) - fetched} kept), {len(record.skipped)} left out"
    )
    for skipped in record.skipped:
        print(f"  left out {skipped.stem}: {skipped.reason}")
    print(
        f"  preprocess: earthseg preprocess --images {args.out}/images --labels {args.out}/labels"
    )
