"""`earthseg models list|show|approve|reject`: the model versions a pipeline registered in
the SageMaker Model Registry, what each was trained on and where it serves, and the
approval that lets `earthseg deploy --model-package` serve it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from earthseg.cli.options import add_aws_options, aws_session
from earthseg.errors import InputError

if TYPE_CHECKING:
    import boto3

    from earthseg.aws.lineage import Lineage
    from earthseg.aws.registry import ModelVersion


def add_commands(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="the model versions in the SageMaker Model Registry: list, show (lineage, "
        "metrics, endpoints), approve, reject",
        description="A model package group per run name holds one version per registered "
        "model. A version serves (earthseg deploy --model-package ARN) once approved.",
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", help="the versions of a group (without --group: the groups there are)"
    )
    listing.add_argument("--group", help="a model package group (default: list the groups)")
    add_aws_options(listing, role=False)
    listing.set_defaults(run=list_models)

    show = actions.add_parser(
        "show",
        help="a version: status, image, model data, metrics, what it was trained on, the "
        "training job's hyperparameters, the endpoints serving it",
    )
    _add_version_options(show, latest=True)
    add_aws_options(show, role=False)
    show.set_defaults(run=show_model)

    approve = actions.add_parser("approve", help="approve a version: it may then serve")
    _add_version_options(approve, latest=False)
    approve.add_argument("--reason", default="", help="why (kept as its approval description)")
    add_aws_options(approve, role=False)
    approve.set_defaults(run=approve_model)

    reject = actions.add_parser("reject", help="reject a version: it may not serve")
    _add_version_options(reject, latest=False)
    reject.add_argument("--reason", required=True, help="why (kept as its approval description)")
    add_aws_options(reject, role=False)
    reject.set_defaults(run=reject_model)


def _add_version_options(parser: argparse.ArgumentParser, latest: bool) -> None:
    parser.add_argument(
        "arn", nargs="?", metavar="ARN", help="the version's ARN (earthseg models list)"
    )
    pick = "--version N or --latest-approved" if latest else "--version N"
    parser.add_argument(
        "--group", help=f"instead of ARN: a model package group, with {pick} to pick a version"
    )
    parser.add_argument("--version", type=int, metavar="N", help="the version's number")
    if latest:
        parser.add_argument(
            "--latest-approved", action="store_true", help="the group's newest Approved version"
        )


def list_models(args: argparse.Namespace) -> None:
    from earthseg.aws.registry import format_time, list_groups, list_versions

    session = aws_session(args)
    if args.group is None:
        groups = list_groups(session)
        if not groups:
            print(f"no model package groups in {session.region_name}")
        for group in groups:
            print(f"{group.name:<40} created {format_time(group.created)}")
        return
    versions = list_versions(session, args.group)
    print(f"model package group {args.group}: {len(versions)} version(s)")
    for version in versions:
        print(
            f"{version.version:>4}  {version.status:<21}  {format_time(version.created)}  "
            f"{version.arn}"
        )


def show_model(args: argparse.Namespace) -> None:
    from earthseg.aws.lineage import lineage

    session = aws_session(args)
    for line in describe(lineage(session, _version(session, args))):
        print(line)


def approve_model(args: argparse.Namespace) -> None:
    from earthseg.aws.registry import APPROVED

    _set_approval(args, APPROVED)


def reject_model(args: argparse.Namespace) -> None:
    from earthseg.aws.registry import REJECTED

    if not args.reason.strip():
        raise InputError("--reason", "is empty", "say why the version is rejected")
    _set_approval(args, REJECTED)


def _set_approval(args: argparse.Namespace, status: str) -> None:
    from earthseg.aws.lineage import deployments
    from earthseg.aws.registry import APPROVED, set_approval

    session = aws_session(args)
    version = set_approval(session, _version(session, args).arn, status, args.reason.strip())
    print(f"{version.arn}: {version.status_line()}")
    if status == APPROVED:
        print(f"serve it: earthseg deploy --model-package {version.arn}")
        return
    for deployment in deployments(session, version):
        print(
            f"note: endpoint {deployment.endpoint} still serves it; remove it: "
            f"earthseg delete --endpoint {deployment.endpoint}"
        )


def _version(session: boto3.Session, args: argparse.Namespace) -> ModelVersion:
    """The version ARN names, or --group with --version (or --latest-approved)."""
    from earthseg.aws.registry import describe_version, find_version, latest_approved

    latest = getattr(args, "latest_approved", False)
    if args.arn is not None:
        extra = [
            option
            for option, value in (
                ("--group", args.group),
                ("--version", args.version),
                ("--latest-approved", latest or None),
            )
            if value is not None
        ]
        if extra:
            raise InputError(
                ", ".join(extra), "do not go with an ARN", "give the ARN, or --group and --version"
            )
        return describe_version(session, args.arn)
    if args.group is None:
        either = " (or --latest-approved)" if hasattr(args, "latest_approved") else ""
        raise InputError(
            "ARN", "was not given", f"give a version's ARN, or --group NAME --version N{either}"
        )
    if latest and args.version is None:
        return latest_approved(session, args.group)
    if latest or args.version is None:
        raise InputError(
            f"--group {args.group}",
            "needs one version: --version N" + (" or --latest-approved" if latest else ""),
            f"see its versions: earthseg models list --group {args.group}",
        )
    return find_version(session, args.group, args.version)


def describe(lineage: Lineage) -> list[str]:
    """`earthseg models show`'s text: the version, what it was trained on, how it was
    trained, how it scored, and where it serves."""
    from earthseg.aws import registry

    version = lineage.version
    metadata = version.metadata
    lines = [
        version.arn,
        *_rows(
            ("version", f"{version.version} of model package group {version.group}"),
            ("status", version.status_line()),
            ("created", registry.format_time(version.created)),
            ("description", version.description),
            *(("image", image) for image in version.images),
            *(("model data", uri) for uri in version.model_data),
            ("takes", ", ".join(version.content_types)),
            ("answers", ", ".join(version.response_types)),
            ("real-time on", ", ".join(version.realtime_instance_types)),
            ("transform on", ", ".join(version.transform_instance_types)),
        ),
        "trained on",
        *_rows(
            ("run", metadata.get(registry.RUN_KEY, "")),
            ("manifest", metadata.get(registry.MANIFEST_KEY, "")),
            ("imagery", metadata.get(registry.IMAGERY_KEY, "")),
            ("train image", metadata.get(registry.TRAIN_IMAGE_KEY, "")),
            ("serve image", metadata.get(registry.SERVE_IMAGE_KEY, "")),
            ("source", metadata.get(registry.SOURCE_COMMIT_KEY, "")),
            empty="  (no earthseg metadata: not registered by earthseg pipeline)",
        ),
    ]
    evaluation, job = lineage.evaluation, lineage.training_job
    lines.append("training job")
    if job is None:
        lines.append("  (unknown: the model data is not a training job's output)")
    elif job.problem:
        lines.append(f"  {job.name}: {job.problem}")
    else:
        lines.append(f"  {job.name} ({', '.join(filter(None, (job.status, job.instance)))})")
    hyperparameters, origin = (job.hyperparameters if job else {}), "training job"
    if not hyperparameters and evaluation is not None and evaluation.hyperparameters:
        hyperparameters, origin = evaluation.hyperparameters, "model card"
    if hyperparameters:
        lines.append(f"  hyperparameters ({origin}):")
        lines.extend(_rows(*sorted(hyperparameters.items()), indent=4))
    lines.append("metrics")
    if evaluation is None:
        lines.append("  (none registered)")
    else:
        lines.append(f"  from {evaluation.uri}")
        if evaluation.problem:
            lines.append(f"  {evaluation.problem}")
        lines.extend(_rows(*((name, f"{value:.4f}") for name, value in evaluation.metrics.items())))
        details = [
            f"threshold {evaluation.threshold:g}" if evaluation.threshold is not None else "",
            f"{evaluation.scenes} test scenes" if evaluation.scenes is not None else "",
        ]
        if any(details):
            lines.append(f"  ({', '.join(filter(None, details))})")
    lines.append("deployed")
    lines.extend(
        f"  endpoint {deployment.endpoint} ({deployment.status}, model {deployment.model})"
        for deployment in lineage.deployments
    )
    if not lineage.deployments:
        lines.append("  (no endpoint serves it)")
    return lines


def _rows(*rows: tuple[str, str], indent: int = 2, empty: str = "") -> list[str]:
    """`label  value` lines, aligned, rows without a value left out (all out: `empty`)."""
    shown = [(label, value) for label, value in rows if value]
    if not shown:
        return [empty] if empty else []
    width = max(len(label) for label, _ in shown)
    return [f"{' ' * indent}{label:<{width}}  {value}" for label, value in shown]
