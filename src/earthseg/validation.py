"""One validation layer: every set of options is a pydantic model, whoever reads it.

A run config, command-line options and SageMaker's hyperparameters all become `Options`
models, so a value is checked by one rule wherever it comes from, and a bad one becomes
one `InputError` naming the key as the user wrote it (`train.instances`, `--tile-size`,
`hyperparameter epochs`), the value, what is allowed and the default. The CLI takes its
defaults and help from the same fields (`earthseg.cli.options`).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import AllowInfNan, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from earthseg.errors import InputError

Model = TypeVar("Model", bound=BaseModel)
BOUND_VERDICTS = {
    "greater_than": "is too small",
    "greater_than_equal": "is too small",
    "less_than": "is too large",
    "less_than_equal": "is too large",
    "too_long": "is too long",
    "too_short": "is too short",
}
Location = tuple[int | str, ...]
KeyName = Callable[[Location], str]


def _not_a_boolean(value: object) -> object:
    """Booleans are not numbers here (pydantic would take True as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_as_number", "a true/false value is not a number")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_boolean)]
"""A whole number, also from "3" or 3.0; not from True, 2.5 or "2.5"."""
Number = Annotated[float, BeforeValidator(_not_a_boolean), AllowInfNan(False)]
"""A finite number, also from "0.1"; not from True, "nan" or "inf"."""


class Options(BaseModel):
    """A set of options: unknown keys are errors (a typo never silently means the
    default), and values do not change once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def part(self, model: type[Model]) -> Model:
        """The fields of `model` these (wider) options hold, as that model: a config section
        that extends a library's options passes on the options alone."""
        return model.model_validate(self.model_dump(include=set(model.model_fields)))


def invalid(problem: str, fix: str, keys: tuple[str, ...] = ()) -> PydanticCustomError:
    """A validator's refusal with its own fix, for rules the field types cannot say; a
    model's validator names the `keys` (fields) at fault."""
    return PydanticCustomError(
        "invalid", "{problem}", {"problem": problem, "fix": fix, "keys": keys}
    )


def dotted(location: Location) -> str:
    """A nested key as a config file spells it: `train.instances`."""
    return ".".join(str(part) for part in location)


def validate(
    model: type[Model],
    values: Mapping[str, Any],
    *,
    key: KeyName = dotted,
    source: str | None = None,
    fix: str = "correct these keys",
) -> Model:
    """`model` from `values`, or an InputError.

    One problem names its key as `source` and says what is allowed and the default; with
    `source` (a whole config file), each problem is listed with its own fix, then `fix`.
    """
    try:
        return model.model_validate(values)
    except ValidationError as error:
        found = [_problem(item, model, key) for item in error.errors()]
    if len(found) == 1 and source is None:
        raise InputError(*found[0])
    listed = "; ".join(f"{name}: {problem} ({remedy})" for name, problem, remedy in found)
    raise InputError(source or "options", listed, fix)


def allowed(field: FieldInfo) -> str:
    """What a field takes, in words: "an integer of at least 1", "a number above 0 and at
    most 1", "true or false", "one of auto, always, never"."""
    kind = _described_type(field.annotation)
    bounds: list[tuple[str, Any]] = []
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.MaxLen):
            kind += f" (at most {constraint.max_length})"
        elif isinstance(constraint, annotated_types.MinLen) and constraint.min_length:
            kind += f" (at least {constraint.min_length})"
        if isinstance(constraint, annotated_types.Ge):
            bounds.append(("at least", constraint.ge))
        elif isinstance(constraint, annotated_types.Gt):
            bounds.append(("above", constraint.gt))
        elif isinstance(constraint, annotated_types.Le):
            bounds.append(("at most", constraint.le))
        elif isinstance(constraint, annotated_types.Lt):
            bounds.append(("below", constraint.lt))
    if not bounds:
        return kind
    if [word for word, _ in bounds] == ["at least", "at most"]:
        return f"{kind} from {bounds[0][1]} to {bounds[1][1]}"
    words = " and ".join(f"{word} {value}" for word, value in bounds)
    return f"{kind} {'of ' if bounds[0][0] == 'at least' else ''}{words}"


def default_of(field: FieldInfo) -> Any:
    """The field's default, or PydanticUndefined when it is required."""
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _problem(item: Any, model: type[BaseModel], key: KeyName) -> tuple[str, str, str]:
    """(key, problem, fix) of one pydantic error."""
    location: Location = tuple(item["loc"])
    name = key(location)
    kind = item["type"]
    if kind == "extra_forbidden":
        known = _siblings(model, location[:-1])
        close = difflib.get_close_matches(str(location[-1]), known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return name, "is not an option", f"{hint}The options are: {', '.join(known)}"
    if kind == "missing":
        return name, "is required", f"set {name}"
    context = item.get("ctx") or {}
    if kind == "invalid":
        if context["keys"]:
            name = ", ".join(key((*location, field)) for field in context["keys"])
        return name, context["problem"], context["fix"]
    field = _field(model, location)
    if kind == "value_error" or field is None:
        message = str(item["msg"]).removeprefix("Value error, ")
        return name, message, f"correct {name}"
    words = allowed(field)
    default = default_of(field)
    shown = "" if default is PydanticUndefined else f" (default {_plain(default)})"
    verdict = BOUND_VERDICTS.get(kind, "is not valid")
    return (
        name,
        f"{_plain(item.get('input'))} {verdict}: it must be {words}",
        f"set {name} to {words}{shown}",
    )


def _field(model: type[BaseModel], location: Location) -> FieldInfo | None:
    """The field a location points at, through nested models."""
    parent = _model_at(model, location[:-1])
    name = location[-1] if location else None
    return parent.model_fields.get(name) if parent and isinstance(name, str) else None


def _siblings(model: type[BaseModel], location: Location) -> list[str]:
    """The field names of the model at `location` (the root for an empty one)."""
    parent = _model_at(model, location)
    return list(parent.model_fields) if parent else []


def _model_at(model: type[BaseModel], location: Location) -> type[BaseModel] | None:
    """The (nested) model a location leads to, if it leads to one."""
    current: type[BaseModel] | None = model
    for part in location:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _model_in(current.model_fields[part].annotation)
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (`Section` or `Section | None`), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _described_type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        described = [_described_type(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(described)
    if origin is Annotated:
        return _described_type(get_args(annotation)[0])
    if origin is Literal:
        return "one of " + ", ".join(str(value) for value in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if origin is list:
        item = _described_type(get_args(annotation)[0]).removeprefix("a ").removeprefix("an ")
        return f"a list of {item}s"
    if origin is tuple:
        parts = get_args(annotation)
        item = _described_type(parts[0]).removeprefix("a ").removeprefix("an ")
        if parts[-1] is Ellipsis:  # tuple[str, ...]: any number of them
            return f"a list of {item}s"
        return f"{len(parts)} {item}s"
    return "text"


def _plain(value: Any) -> str:
    """A value as the user would write it: strings quoted, booleans as YAML has them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
