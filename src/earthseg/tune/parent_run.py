"""A local tuning in MLflow: one parent run holding the search (ranges, objective, pruning),
the best trial and its value, and the leaderboard; every trial's job tracks its own run
as a child of it (earthseg.train.tracking: `child_environment`).

Tracking never stops a tuning: a store that fails is one warning naming it, and the
tuning goes on untracked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from earthseg.train.tracking import (
    child_environment,
    end_run,
    one_line,
    public_uri,
    quiet,
    start_parent_run,
)
from earthseg.tune.leaderboard import (
    COMPLETE,
    LEADERBOARD_CSV,
    LEADERBOARD_JSON,
    LEADERBOARD_PNG,
    PRUNED,
    STATES,
    Trial,
)

LEADERBOARD_ARTIFACTS = "leaderboard"
TRIAL_TAG = "earthseg.trial"
STATE_TAG = "earthseg.trial_state"
BEST_TRIAL_TAG = "earthseg.best_trial"
BEST_RUN_TAG = "earthseg.best_run_id"
# What a trial's run ends as when its job did not close it (killed, or failed early).
RUN_STATUS = {COMPLETE: "FINISHED", PRUNED: "KILLED"}
NO_LINKS_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class ParentRun:
    """The tuning's MLflow run, or nothing (no tracking URI, or once the store failed)."""

    def __init__(self, uri: str | None, experiment: str, say: Callable[[str], None]) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_id: str | None = None
        self._say = say

    def start(self, name: str, params: Mapping[str, object], earlier: str | None = None) -> None:
        """Open the run (`earlier`: continue that one, a resumed tuning's)."""
        if self.uri is None:
            return
        uri = self.uri
        if earlier is not None:
            try:
                with _quiet(uri):
                    self._client().update_run(earlier, status="RUNNING")
                self.run_id = earlier
                return
            except Exception:  # gone, or another store: a new run, or the warning below
                pass
        self.run_id = self._attempt(
            "starting the tuning's run",
            lambda: start_parent_run(uri, self.experiment, name, params),
        )

    def child_environment(self) -> dict[str, str]:
        """What a trial's job adds to its environment to track as a child of this run."""
        if self.uri is None or self.run_id is None:
            return {}
        return child_environment(self.uri, self.experiment, self.run_id)

    def close_trial(self, trial: Trial) -> None:
        """Tag a trial's run with its name and state; close it if its job could not."""
        if self.run_id is None or trial.mlflow_run_id is None:
            return
        run_id = trial.mlflow_run_id

        def tag() -> None:
            client = self._client()
            client.set_tag(run_id, TRIAL_TAG, trial.name)
            client.set_tag(run_id, STATE_TAG, trial.state)
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, RUN_STATUS.get(trial.state, "FAILED"))

        self._attempt(f"closing {trial.name}'s run", tag)

    def finish(
        self,
        trials: Sequence[Trial],
        best: Trial | None,
        objective: str,
        leaderboard: Path | None,
        status: str = "FINISHED",
    ) -> None:
        """The outcome on the run (best trial, its value, counts, the leaderboard), closed."""
        if self.run_id is None or self.uri is None:
            return
        run_id, uri = self.run_id, self.uri

        def record() -> None:
            from mlflow.entities import Metric

            client = self._client()
            counts = {state: sum(trial.state == state for trial in trials) for state in STATES}
            metrics: dict[str, float] = {
                "trials": len(trials),
                **{f"trials_{k}": v for k, v in counts.items()},
            }
            if best is not None and best.objective is not None:
                metrics[f"best_{objective}"] = best.objective
                client.set_tag(run_id, BEST_TRIAL_TAG, best.name)
                if best.mlflow_run_id:
                    client.set_tag(run_id, BEST_RUN_TAG, best.mlflow_run_id)
            client.log_batch(run_id, [Metric(k, float(v), 0, 0) for k, v in metrics.items()])
            if leaderboard is not None:
                for name in (LEADERBOARD_CSV, LEADERBOARD_JSON, LEADERBOARD_PNG):
                    client.log_artifact(run_id, str(leaderboard / name), LEADERBOARD_ARTIFACTS)

        self._attempt("recording the tuning's outcome", record)
        self._attempt("ending the tuning's run", lambda: end_run(uri, run_id, status))

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.uri)

    def _attempt(self, what: str, action: Callable[[], Any]) -> Any:
        """Run `action` unless tracking is off; a failure turns it off with a warning."""
        if self.uri is None:
            return None
        try:
            with _quiet(self.uri):
                return action()
        except Exception as error:  # whatever the store or the network did: tune on
            self._say(
                f"tune: warning: MLflow tracking at {public_uri(self.uri)} failed while {what} "
                f"({one_line(error)}); the tuning goes on without tracking"
            )
            self.uri, self.run_id = None, None
            return None


@contextlib.contextmanager
def _quiet(uri: str) -> Iterator[None]:
    """The tracking module's quiet, and no links to the served store (it lives only as
    long as the tuning)."""
    links = os.environ.get(NO_LINKS_ENV)
    os.environ[NO_LINKS_ENV] = "true"
    try:
        with quiet(uri):
            yield
    finally:
        if links is None:
            os.environ.pop(NO_LINKS_ENV, None)
        else:
            os.environ[NO_LINKS_ENV] = links
