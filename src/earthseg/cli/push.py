"""`earthseg push` (`make push`): the images `make build` made, to ECR or another registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    from earthseg.shipping.registry import FLAVORS, IMAGES_JSON

    push = commands.add_parser(
        "push",
        help="push the images `make build` made to ECR (or REGISTRY) and say where they went",
        description="Pushes earthseg-{train,serve}:<version>-<flavor> under the tags "
        "<version>-<flavor> and <commit>-<flavor>, never rebuilding. The target: REGISTRY "
        "(host[:port][/namespace]; unset: the ECR registry of the configured AWS account), "
        "REGISTRY_AUTH=ecr for ECR behind another host name, REGISTRY_USERNAME and "
        "REGISTRY_PASSWORD for other registries. Prints `<role> image: <uri>` and writes "
        "the URIs and digests as JSON.",
    )
    push.add_argument("--flavor", choices=FLAVORS, default="gpu", help="default: gpu")
    push.add_argument("--json", type=Path, help=f"default: {IMAGES_JSON}")
    push.set_defaults(run=push_images)


def push_images(args: argparse.Namespace) -> None:
    from earthseg.shipping.push import push

    for image in push(args.flavor, args.json, say=_say):
        print(f"{image.role} image: {image.uris[0]}")


def _say(line: str) -> None:
    print(f"push: {line}", flush=True)
