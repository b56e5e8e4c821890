"""What a pipeline backend is: where the stages run, each returning the outputs
`state.json` records for it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from earthseg.serve.scene import ScenePrediction

ScenePredictor = Callable[[Path, float | None], ScenePrediction]  # scene, threshold (None: card's)


class Backend(Protocol):
    """Where the stages run."""

    mode: str
    images: dict[str, str]  # role -> image the stages run in ({} on the host, without containers)

    def preprocess(self, images: Path, labels: Path, dataset: Path) -> dict[str, Any]:
        """Write the dataset of the export `images` + `labels` (at least its manifest) to
        `dataset`."""
        ...

    def train(self, dataset: dict[str, Any], model: Path, training: Path) -> dict[str, Any]:
        """Train on the dataset; the artifact extracted to `model`, the job's reports
        (metrics.json, figures) to `training`."""
        ...

    def tune(
        self, dataset: dict[str, Any], model: Path, training: Path, tuning: Path, key: str
    ) -> dict[str, Any]:
        """Tune the training on the dataset (config.tune): the trials, their study and
        leaderboard in `tuning`; the best trial's model to `model` and its reports to
        `training`, as `train` leaves them. `key` names the tuning's inputs: a tuning
        of the same key in `tuning` is resumed, another one replaced."""
        ...

    def deploy(self, trained: dict[str, Any]) -> AbstractContextManager[ScenePredictor]:
        """Serve the model for as long as the context lasts."""
        ...
