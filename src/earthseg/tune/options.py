"""The `tune:` section of run.yaml: how many trials, what they search, what they maximise.

One description serves both tuners: on SageMaker a HyperparameterTuner (earthseg.aws.tuning)
and locally Optuna (earthseg.tune.local). A range names a hyperparameter of
`earthseg.train.hyperparameters.Hyperparameters`; its bounds or values are checked by the
same rules a training job applies, so a tuning never starts trials that would fail on a
bad value. Integer hyperparameters (filters, depth, epochs, ...) search whole numbers.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from earthseg.errors import InputError
from earthseg.train.hyperparameters import Hyperparameters
from earthseg.train.metric_lines import LOGGED
from earthseg.validation import Integer, Number, Options, invalid

Objective = Literal["val_iou", "val_f1", "val_precision", "val_recall", "val_loss"]
Value = bool | int | float | str


class ParameterRange(Options):
    """`{min, max, scale: linear|log}` or `{values: [...]}`."""

    min: Number | None = None
    max: Number | None = None
    scale: Literal["linear", "log"] = "linear"
    values: list[Value] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        bounded = self.min is not None or self.max is not None
        if self.values is not None and bounded:
            raise invalid("gives both values and min/max", "give either values or min and max")
        if self.values is None:
            if self.min is None or self.max is None:
                raise invalid("needs min and max (or values)", "give both min and max")
            if self.min >= self.max:
                raise invalid(f"has min {self.min} not below max {self.max}", "swap them")
            if self.scale == "log" and self.min <= 0:
                raise invalid(
                    "is on a log scale from a bound <= 0", "give min > 0 or scale: linear"
                )
        return self

    @property
    def categorical(self) -> bool:
        return self.values is not None


class TuneConfig(Options):
    """Tuning: `earthseg tune` trains `trials` jobs, `parallel` at a time, on values drawn
    from `ranges`, and carries the best on by `objective`."""

    trials: Integer = Field(8, ge=1, le=500, description="training jobs in all")
    parallel: Integer = Field(2, ge=1, le=100, description="training jobs at a time")
    objective: Objective = Field(
        "val_iou", description="the per-epoch metric compared (losses minimised, others maximised)"
    )
    early_stopping: bool = Field(
        True,
        description="stop trials that do worse than the others at the same epoch "
        "(SageMaker: TrainingJobEarlyStoppingType Auto; locally: Optuna's median pruner)",
    )
    ranges: dict[str, ParameterRange] = Field(
        default_factory=dict, description="per hyperparameter: {min, max, scale} or {values}"
    )
    warm_start: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="SageMaker: earlier tuning jobs whose trials this one learns from",
    )
    seed: Integer = Field(0, ge=0, description="the sampler's seed (local)")

    @model_validator(mode="after")
    def _ranges_fit_the_hyperparameters(self) -> Self:
        fields = Hyperparameters.model_fields
        for name, search in self.ranges.items():
            if name not in fields:
                raise invalid(
                    f"names {name!r}, which is not a hyperparameter",
                    "use one of " + ", ".join(fields),
                    (f"ranges.{name}",),
                )
            candidates = search.values if search.values is not None else [search.min, search.max]
            for value in candidates:
                try:
                    Hyperparameters.from_mapping({name: value})
                except InputError as error:  # the rule a job applies, with its fix
                    raise invalid(
                        f"holds {value!r}, which {name} cannot take: {error.problem}",
                        error.fix,
                        (f"ranges.{name}",),
                    ) from None
        return self

    @property
    def maximize(self) -> bool:
        """Losses are minimised, scores maximised."""
        return not self.objective.endswith("loss")

    @property
    def metric_name(self) -> str:
        """The objective's SageMaker metric name (`validation:iou`), as the job's metric
        definitions name it."""
        return LOGGED[self.objective]

    def is_integer(self, name: str) -> bool:
        """Whether hyperparameter `name` takes whole numbers."""
        return Hyperparameters.model_fields[name].annotation is int

    def require_ranges(self) -> None:
        """A tuning needs something to search."""
        if not self.ranges:
            raise InputError(
                "the config",
                "has no tune.ranges: a tuning would train the same model every trial",
                "add tune: {ranges: {learning_rate: {min: 0.0003, max: 0.01, scale: log}}}",
            )
