"""Training hyperparameters: defaults, ranges, and what SageMaker hands over.

SageMaker passes hyperparameters in `config/hyperparameters.json`. SDK v3 writes every
value as a string ("3", "0.001", "true"); SDK v2 JSON-encodes them and the
sagemaker-training toolkit decodes them again (3, 0.001, True). Both give the same
`Hyperparameters`, and a wrong name or value fails before any data is read, naming the
hyperparameter, the allowed range and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import Field

from earthseg.validation import Integer, Number, Options, validate

# SageMaker and its SDKs add hyperparameters of their own: `sagemaker_program`,
# `sagemaker_region`, ... (SDK v2 frameworks) and `_tuning_objective_metric` (tuning jobs).
RESERVED_PREFIXES = ("sagemaker_", "_")


class Hyperparameters(Options):
    """What a training run can be told; the defaults train the demo's U-Net."""

    epochs: Integer = Field(40, ge=1, description="upper bound; early stopping usually ends sooner")
    batch_size: Integer = Field(16, ge=1, description="global, per step (split across GPUs)")
    learning_rate: Number = Field(1e-3, gt=0, le=1, description="Adam")
    filters: Integer = Field(24, ge=1, description="filters of the U-Net's first level")
    depth: Integer = Field(4, ge=1, le=6, description="levels of the U-Net")
    patience: Integer = Field(
        6, ge=0, description="epochs without a better validation loss before stopping"
    )
    seed: Integer = Field(0, ge=0, le=2**31 - 1, description="weights, shuffling, augmentation")
    augment: bool = Field(True, description="flips, 90° turns, brightness and contrast")
    steps_per_epoch: Integer = Field(0, ge=0, description="0: one pass over the train channel")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Hyperparameters:
        """Hyperparameters from SageMaker's mapping: strings (SDK v3) or JSON values (SDK v2).

        Names SageMaker reserves for itself are ignored; any other unknown name is an error,
        so that a typo (`learning_rte`) never silently trains with the default.
        """
        ours = {
            name: value for name, value in values.items() if not name.startswith(RESERVED_PREFIXES)
        }
        return validate(cls, ours, key=lambda location: f"hyperparameter {location[0]}")

    def as_strings(self) -> dict[str, str]:
        """The hyperparameters given (not defaulted) as SageMaker passes them to a job:
        JSON-encoded strings ("3", "0.001", "true"), which `from_mapping` reads back."""
        return {
            name: json.dumps(value) for name, value in self.model_dump(exclude_unset=True).items()
        }
