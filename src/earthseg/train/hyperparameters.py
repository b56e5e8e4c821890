"""Training hyperparameters: defaults, parsing what SageMaker hands over, validation.

SageMaker passes hyperparameters in `config/hyperparameters.json`. SDK v3 writes every
value as a string ("3", "0.001", "true"); SDK v2 JSON-encodes them and the
sagemaker-training toolkit decodes them again (3, 0.001, True). Both give the same
`Hyperparameters`, and a wrong name or value fails before any data is read, naming the
hyperparameter, the allowed range and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from earthseg.errors import InputError

# SageMaker and its SDKs add hyperparameters of their own: `sagemaker_program`,
# `sagemaker_region`, ... (SDK v2 frameworks) and `_tuning_objective_metric` (tuning jobs).
RESERVED_PREFIXES = ("sagemaker_", "_")
BOOLEANS = {"true": True, "false": False}  # JSON's spelling; Python's "True" works too


def _limits(
    minimum: float, maximum: float | None = None, *, exclusive_minimum: bool = False
) -> dict[str, Any]:
    return {"minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum}


@dataclass(frozen=True)
class Hyperparameters:
    """What a training run can be told; the defaults train the demo's U-Net."""

    epochs: int = field(default=40, metadata=_limits(1))
    batch_size: int = field(default=16, metadata=_limits(1))
    learning_rate: float = field(default=1e-3, metadata=_limits(0, 1, exclusive_minimum=True))
    filters: int = field(default=24, metadata=_limits(1))
    depth: int = field(default=4, metadata=_limits(1, 6))
    patience: int = field(default=6, metadata=_limits(0))  # epochs without val_loss progress
    seed: int = field(default=0, metadata=_limits(0, 2**31 - 1))
    augment: bool = True
    steps_per_epoch: int = field(default=0, metadata=_limits(0))  # 0: one pass over train

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not _in_range(spec, value):
                raise _error(spec, value, "is out of range")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Hyperparameters:
        """Hyperparameters from SageMaker's mapping: strings (SDK v3) or JSON values (SDK v2).

        Names SageMaker reserves for itself are ignored; any other unknown name is an error,
        so that a typo (`learning_rte`) never silently trains with the default.
        """
        specs = {spec.name: spec for spec in fields(cls)}
        parsed: dict[str, Any] = {}
        for name, raw in values.items():
            if name.startswith(RESERVED_PREFIXES):
                continue
            if name not in specs:
                close = difflib.get_close_matches(name, list(specs), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise InputError(
                    f"hyperparameter {name}",
                    "is not a hyperparameter of earthseg training",
                    f"remove it or use one of: {', '.join(specs)}{hint}",
                )
            parsed[name] = _coerce(specs[name], raw)
        return cls(**parsed)

    def as_dict(self) -> dict[str, Any]:
        """Plain values by name, for the model card and logs."""
        return asdict(self)


def _coerce(spec: Field[Any], raw: object) -> bool | int | float:
    """`raw` as the field's type (that of its default), whether a string or a JSON value."""
    kind = type(spec.default)
    value = _from_text(raw.strip(), kind) if isinstance(raw, str) else raw
    if kind is bool and isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is float:
            return float(value)
        if kind is int and float(value).is_integer():
            return int(value)
    raise _error(spec, raw, "is not valid")


def _from_text(text: str, kind: type) -> object:
    """A string as the JSON value it stands for; unparseable text comes back unchanged."""
    if kind is bool:
        return BOOLEANS.get(text.lower(), text)
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            continue
    return text


def _in_range(spec: Field[Any], value: Any) -> bool:
    if not spec.metadata:
        return True
    minimum, maximum = spec.metadata["minimum"], spec.metadata["maximum"]
    above = value > minimum if spec.metadata["exclusive_minimum"] else value >= minimum
    return bool(above and (maximum is None or value <= maximum))


def _allowed(spec: Field[Any]) -> str:
    """The allowed values in words, e.g. "an integer from 1 to 6"."""
    if not spec.metadata:
        return "true or false"
    noun = "an integer" if isinstance(spec.default, int) else "a number"
    minimum, maximum = spec.metadata["minimum"], spec.metadata["maximum"]
    if spec.metadata["exclusive_minimum"]:
        upper = f" and at most {maximum}" if maximum is not None else ""
        return f"{noun} above {minimum}{upper}"
    if maximum is None:
        return f"{noun} of at least {minimum}"
    return f"{noun} from {minimum} to {maximum}"


def _error(spec: Field[Any], value: object, problem: str) -> InputError:
    allowed = _allowed(spec)
    return InputError(
        f"hyperparameter {spec.name}",
        f"{value!r} {problem}: it must be {allowed}",
        f"set {spec.name} to {allowed} (default {spec.default!r})",
    )
