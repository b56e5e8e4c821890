"""The `earthseg` command: one module per group of subcommands, each parsing its options
and calling one library function.

Heavy imports (rasterio, geopandas, TensorFlow, boto3) happen inside the subcommands so
`earthseg --help` answers at once, also in images that carry only some extras.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from earthseg import __version__
from earthseg.cli import (
    data,
    detect,
    doctor,
    evaluation,
    iam_policy,
    imagery,
    logs,
    models,
    pipeline,
    push,
    runs,
    sagemaker,
    serving,
    tracking,
    training,
    transform,
)
from earthseg.errors import InputError

EXIT_BAD_INPUT = 2
GROUPS = (
    imagery,
    data,
    evaluation,
    training,
    tracking,
    runs,
    serving,
    sagemaker,
    models,
    transform,
    detect,
    pipeline,
    logs,
    iam_policy,
    push,
    doctor,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earthseg",
        description="Earth-science segmentation on SageMaker: labels to masks, tiles, models.",
    )
    parser.add_argument("--version", action="version", version=f"earthseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries (pyogrio, rasterio) log chatter at INFO: only their warnings get through.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("earthseg").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # The SageMaker SDK sets its config logger to INFO unless the application chose.
    logging.getLogger("sagemaker.config").setLevel(
        logging.INFO if args.verbose else logging.WARNING
    )
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        return run(args) or 0
    except InputError as error:
        print(f"earthseg {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
