"""A pipeline run's folder and what it remembers: which stages finished, with what.

Each finished stage is recorded in `state.json` with a digest of everything it depended
on (its config section, the mode, and the digest of the stage before it), and what it
produced. A rerun skips a stage whose digest matches, so a run resumes after a failure
without redoing finished stages, and a changed option redoes its stage and the ones
after it. Every stage logs to `logs/<stage>.log`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from earthseg.atomic import atomic_file

STATE = "state.json"


def digest(*parts: Any) -> str:
    """A short, stable digest of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunFolder:
    """`runs/<name>/`: the stages' outputs, `state.json` and `logs/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)

    def finished(self, stage: str, stage_digest: str) -> dict[str, Any] | None:
        """The outputs of `stage` if it finished with this digest, else None."""
        record = self._state().get(stage)
        if record and record.get("digest") == stage_digest:
            outputs: dict[str, Any] = record["outputs"]
            return outputs
        return None

    def finish(self, stage: str, stage_digest: str, outputs: dict[str, Any]) -> None:
        state = self._state()
        state[stage] = {
            "digest": stage_digest,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "outputs": outputs,
        }
        self._write(state)

    def forget(self, stage: str) -> None:
        """Drop a stage's record (its outputs are gone, e.g. a deleted endpoint)."""
        state = self._state()
        if state.pop(stage, None) is not None:
            self._write(state)

    @contextmanager
    def stage_log(self, stage: str) -> Iterator[Path]:
        """While a stage runs, what it prints (the SDK streams a local job's output to
        stdout) and what the libraries log also go to `logs/<stage>.log`."""
        path = self.logs / f"{stage}.log"
        with open(path, "a") as log_file:
            handler = logging.StreamHandler(log_file)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            root = logging.getLogger()
            root.addHandler(handler)
            try:
                with redirect_stdout(_Tee(sys.stdout, log_file)):  # type: ignore[type-var]
                    yield path
            finally:
                root.removeHandler(handler)

    def _state(self) -> dict[str, Any]:
        path = self.root / STATE
        if not path.exists():
            return {}
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def _write(self, state: dict[str, Any]) -> None:
        with atomic_file(self.root / STATE) as tmp:
            tmp.write_text(json.dumps(state, indent=2) + "\n")


@dataclass(frozen=True)
class RunLayout:
    """Where each stage's outputs go in the run folder."""

    root: Path

    @property
    def imagery(self) -> Path:
        return self.root / "imagery"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def tuning(self) -> Path:
        """A tuning's study, trials and leaderboard (`earthseg tune --local`)."""
        return self.root / "tuning"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def detection(self) -> Path:
        return self.root / "detection"

    @property
    def report(self) -> Path:
        return self.root / "report"


class _Tee:
    """Writes to a stream and a log file alike."""

    def __init__(self, stream: TextIO, log_file: TextIO) -> None:
        self.stream = stream
        self.log_file = log_file

    def write(self, text: str) -> int:
        self.log_file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.log_file.flush()
        self.stream.flush()
