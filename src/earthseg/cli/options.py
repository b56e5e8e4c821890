"""Command-line options made from the options models (earthseg.validation), so the CLI
shows the models' defaults and help and checks values by the models' rules: a flag per
field, read as text and validated by the model, errors naming the flag."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from earthseg.errors import InputError
from earthseg.validation import Location, allowed, default_of, validate

Model = TypeVar("Model", bound=BaseModel)


def flag(field: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line flag of a field: `tile_size` -> `--tile-size`."""
    return (flags or {}).get(field) or "--" + field.replace("_", "-")


def add_model_options(
    parser: argparse._ActionsContainer,
    model: type[BaseModel],
    fields: Iterable[str] | None = None,
    flags: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> None:
    """A flag per field of `model` (or of `fields`), whose help is the field's description
    (after its note in `notes`), what it takes, and its default. Values stay text (None
    when not given) until `model_from_args` checks them; booleans are switches."""
    for name in fields or model.model_fields:
        info = model.model_fields[name]
        default = default_of(info)
        help_text = (notes or {}).get(name, "") + (info.description or name.replace("_", " "))
        if info.annotation is bool:
            parser.add_argument(
                flag(name, flags), dest=name, action="store_true", default=None, help=help_text
            )
            continue
        shown = "" if default in (None, PydanticUndefined) else f" (default {_shown(default)})"
        parser.add_argument(
            flag(name, flags),
            dest=name,
            metavar=name.upper(),
            help=f"{help_text}{_takes(info)}{shown}",
        )


def model_from_args(
    args: argparse.Namespace,
    model: type[Model],
    fields: Iterable[str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Model:
    """`model` from the flags given (the others keep the model's defaults), or an
    InputError naming the flag."""
    names = fields or model.model_fields
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return validate(model, given, key=_flag_key(flags))


def given_options(args: argparse.Namespace, group: argparse._ArgumentGroup) -> list[str]:
    """The flags of `group` given on the command line."""
    return [
        action.option_strings[-1]
        for action in group._group_actions
        if getattr(args, action.dest) not in (None, False, [])
    ]


def refuse_unless(
    args: argparse.Namespace, group: argparse._ArgumentGroup, needs: str, what: str
) -> None:
    """Options of `group` given without `needs`, the option they belong with, are a
    mistake, not ignored; `what` says what they do."""
    named = [option for option in given_options(args, group) if option != needs]
    if named:
        raise InputError(
            ", ".join(named), f"{what}, which needs {needs}", f"add {needs}, or drop them"
        )


def add_aws_options(parser: argparse._ActionsContainer, role: bool = True) -> None:
    """Where and as whom launcher commands act (defaults: the usual AWS configuration)."""
    if role:
        parser.add_argument("--role", help="SageMaker execution role ARN (default $SAGEMAKER_ROLE)")
    parser.add_argument("--region", help="AWS region (default AWS_REGION, ~/.aws/config)")
    parser.add_argument("--profile", help="AWS profile (default AWS_PROFILE)")


def aws_session(args: argparse.Namespace) -> Any:
    """The boto3 session the AWS options name."""
    from earthseg.aws.session import open_session

    return open_session(args.region, args.profile)


def name_value(text: str, option: str, example: str = "epochs=20") -> tuple[str, str]:
    """`NAME=VALUE` (a repeatable option's item) as a pair."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise InputError(f"{option} {text}", "is not NAME=VALUE", f"write e.g. {option} {example}")
    return name.strip(), value.strip()


def _flag_key(flags: Mapping[str, str] | None) -> Any:
    def key(location: Location) -> str:
        if not location:
            return "the options"
        return " ".join([flag(str(location[0]), flags), *(str(part) for part in location[1:])])

    return key


def _takes(field: Any) -> str:
    """What a flag takes, unless it is any text."""
    words = allowed(field)
    return "" if words == "text" else f": {words}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(part) for part in value)
    return str(value)


SECURITY_FLAGS = {
    "--subnets": "vpc.subnets",
    "--security-groups": "vpc.security_groups",
    "--kms-key": "kms_key",
    "--network-isolation": "network_isolation",
    "--inter-container-encryption": "inter_container_encryption",
    "--tag": "tags",
}


def add_security_options(parser: argparse.ArgumentParser) -> None:
    """A locked-down account's settings (run.yaml's `aws:` keys), as flags."""
    group = parser.add_argument_group(
        "locked-down accounts (run.yaml aws: vpc, kms_key, network_isolation, tags)"
    )
    group.add_argument(
        "--subnets", metavar="IDS", help="VPC subnet IDs, comma-separated (subnet-...)"
    )
    group.add_argument(
        "--security-groups", metavar="IDS", help="VPC security group IDs, comma-separated (sg-...)"
    )
    group.add_argument(
        "--kms-key",
        metavar="KEY",
        help="customer-managed KMS key for volumes, outputs and S3 uploads: a key ARN, key ID, "
        "alias/NAME or alias ARN",
    )
    group.add_argument(
        "--network-isolation",
        action="store_true",
        default=None,
        help="no network for the containers (EnableNetworkIsolation)",
    )
    group.add_argument(
        "--inter-container-encryption",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="encrypt traffic between training instances (default: on with any other "
        "setting of this group)",
    )
    group.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="a tag on every resource made, repeatable (earthseg:run=<name> is added)",
    )


def security_from_args(args: argparse.Namespace) -> Any:
    """The `Security` the flags give (an InputError naming the flag at fault)."""
    from earthseg.aws.security import Security

    values: dict[str, Any] = {}
    subnets, groups = _listed(args.subnets), _listed(args.security_groups)
    if subnets is not None or groups is not None:
        if subnets is None or groups is None:
            missing = "--subnets" if subnets is None else "--security-groups"
            raise InputError(
                missing,
                "is missing: a VPC needs both subnets and security groups",
                "give --subnets and --security-groups together",
            )
        values["vpc"] = {"subnets": subnets, "security_groups": groups}
    if args.kms_key is not None:
        values["kms_key"] = args.kms_key
    if args.network_isolation:
        values["network_isolation"] = True
    if args.inter_container_encryption is not None:
        values["inter_container_encryption"] = args.inter_container_encryption
    if args.tag:
        values["tags"] = dict(name_value(item, "--tag", "project=dust") for item in args.tag)
    flags = {dotted: option for option, dotted in SECURITY_FLAGS.items()}

    def key(location: Location) -> str:
        path = ".".join(str(part) for part in location[:2])
        return flags.get(path) or flags.get(str(location[0])) or "the security options"

    return validate(Security, values, key=key)


def _listed(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]
