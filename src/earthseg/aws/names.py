"""The names SageMaker resources get, and the base names that make them.

The SDK makes every job and endpoint name from a base name and a timestamp, and cuts the
whole to SageMaker's 63 characters (the base, or the timestamp that makes it unique): two
runs could then get names that say nothing of them, or the same name. So a base name that
would be cut is refused instead, before anything is uploaded or paid for; a run config
checks every name its run will make.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from earthseg.errors import InputError

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
NAME_LENGTH = 63
DEFAULT_NAME = "earthseg"  # base name of jobs and endpoints when none is given


@dataclass(frozen=True)
class NameRule:
    """A kind of resource, the suffix its names get after the base, and the timestamp
    the SDK appends."""

    kind: str
    timestamp: int  # characters, the hyphen before it included
    suffix: str = ""

    @property
    def longest_base(self) -> int:
        """The longest base name whose names keep it whole."""
        return NAME_LENGTH - self.timestamp - len(self.suffix)

    def base(self, name: str) -> str:
        """The base name the SDK gets for a resource of run (or command) `name`."""
        return f"{name}{self.suffix}"


TRAINING_JOB = NameRule("training job", len("-20260131120000"))  # ModelTrainer
PROCESSING_JOB = NameRule("processing job", len("-2026-01-31-12-00-00-000"), "-preprocess")
ENDPOINT = NameRule("endpoint", len("-2026-01-31-12-00-00-000"))  # and its config and model
MODEL_PACKAGE_GROUP = NameRule("model package group", 0)  # named whole, no timestamp


def check_name(name: str, rules: tuple[NameRule, ...], source: str) -> str:
    """`name` if every rule's resource keeps it whole; otherwise an InputError naming
    `source`, the resource that would cut it, and the limit."""
    if not SAGEMAKER_NAME.match(name):
        raise InputError(
            source,
            f"{name!r} is not a SageMaker name",
            "use letters, digits and hyphens, starting and ending with a letter or digit",
        )
    for rule in sorted(rules, key=lambda rule: rule.longest_base):
        if len(name) > rule.longest_base:
            raise InputError(
                source,
                f"{name!r} has {len(name)} characters: the {rule.kind} name "
                f"{rule.base(name)}-<timestamp> would pass SageMaker's {NAME_LENGTH}",
                f"use at most {rule.longest_base} characters",
            )
    return name
