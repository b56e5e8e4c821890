"""The IAM role SageMaker jobs and endpoints run as.

It is given explicitly (`--role`) or through `SAGEMAKER_ROLE`: the SDK's own lookup,
`get_execution_role()`, only works inside SageMaker (notebooks, Studio, jobs), and a
launcher on a laptop or CI runner is outside.
"""

from __future__ import annotations

import os
import re

from earthseg.errors import InputError

ROLE_ENV = "SAGEMAKER_ROLE"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
ROLE_FIX = (
    f"pass --role arn:aws:iam::<account>:role/<name>, or export {ROLE_ENV}=<that ARN>: a role "
    "SageMaker may assume (trust sagemaker.amazonaws.com) that can read and write the S3 "
    "locations and pull the image from ECR"
)


def execution_role(value: str | None, source: str = "--role") -> str:
    """The role ARN from `value`, else from `SAGEMAKER_ROLE`; an InputError if neither
    holds an IAM role ARN."""
    role = value or os.environ.get(ROLE_ENV, "")
    if not role:
        raise InputError(source, f"was not given and {ROLE_ENV} is not set", ROLE_FIX)
    if not ROLE_ARN.match(role):
        origin = source if value else ROLE_ENV
        raise InputError(origin, f"{role!r} is not an IAM role ARN", ROLE_FIX)
    return role
