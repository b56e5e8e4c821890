"""SageMaker Processing job contract: where a job's inputs and outputs are mounted, what
its outputs are called, and the command lines that ask for them.

The training image runs `earthseg preprocess` as a Processing job: the export's images
and labels at /opt/ml/processing/input/{images,labels}, the dataset written to
/opt/ml/processing/output. The pipeline's steps add two commands:

- `prepare` (training image): the same inputs, `images` absent when the export has none
  (the scenes are then fetched from a WMS); the dataset to /opt/ml/processing/output
  (output `dataset`), the test split set apart in /opt/ml/processing/test (output `test`:
  earthseg.contracts.evaluation's `scenes/`, `truth/`, `dataset.json`).
- `evaluate` (serve image): the model at /opt/ml/processing/input/model (model.tar.gz or
  an unpacked model), the `test` output at /opt/ml/processing/input/test; the evaluation
  to /opt/ml/processing/evaluation (output `evaluation`).

Launchers (a Processing job on SageMaker, a pipeline step, a local container) mount there
(`container_input`, `container_output`); the commands, without explicit paths, read there
(`input_dir`, `output_dir`), relocated by SAGEMAKER_BASE_DIR for local runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from earthseg.atomic import PARTIAL_PREFIX
from earthseg.contracts.opt_ml import base_dir, in_container
from earthseg.errors import InputError

if TYPE_CHECKING:
    from earthseg.imagery.options import FetchOptions, TransferOptions
    from earthseg.preprocess.options import PreprocessOptions

PROCESSING = "processing"
IMAGES = "images"  # the export's scenes (absent for `prepare` when they are to be fetched)
LABELS = "labels"  # the export's labels
INPUTS = (IMAGES, LABELS)  # the export's two folders
OUTPUT = "output"  # the dataset

# Both images' ENTRYPOINT (containers/*/Dockerfile). A Processing step names it as its
# ContainerEntrypoint, the image's own: SageMaker then runs it exactly as without one, and
# the SDK's local mode (which cannot run arguments without an entrypoint) can run it too.
IMAGE_ENTRYPOINT = ("/usr/local/bin/earthseg-entrypoint",)

# `prepare`'s outputs: output name -> mount folder under /opt/ml/processing.
DATASET_OUTPUT = "dataset"
TEST_OUTPUT = "test"
PREPARE_OUTPUTS = {DATASET_OUTPUT: OUTPUT, TEST_OUTPUT: "test"}

# `evaluate`'s inputs (under /opt/ml/processing/input) and output.
MODEL_INPUT = "model"  # holds MODEL_ARCHIVE as training wrote it, or an unpacked model
MODEL_ARCHIVE = "model.tar.gz"  # a training job's model artifact, as SageMaker tars it
TEST_INPUT = "test"  # `prepare`'s `test` output
EVALUATE_INPUTS = (MODEL_INPUT, TEST_INPUT)
EVALUATION_OUTPUT = "evaluation"
EVALUATE_OUTPUTS = {EVALUATION_OUTPUT: "evaluation"}

# Flags of `prepare` for fetch options whose `earthseg fetch` flag would be ambiguous
# there: a layer per --layer as in `fetch`, and the scenes' share of valid pixels apart
# from preprocessing's --min-valid (the tiles').
FETCH_FLAGS = {"layers": "--layer", "min_valid": "--fetch-min-valid"}


def input_dir(name: str) -> Path:
    """An input's mount point inside the job: /opt/ml/processing/input/<name>."""
    return base_dir() / PROCESSING / "input" / name


def output_dir(folder: str = OUTPUT) -> Path:
    """An output's mount point inside the job: /opt/ml/processing/<folder> (the dataset's:
    /opt/ml/processing/output)."""
    return base_dir() / PROCESSING / folder


def container_input(name: str) -> str:
    """Where a launcher mounts input `name` in the container."""
    return in_container(PROCESSING, "input", name)


def container_output(folder: str = OUTPUT) -> str:
    """Where a launcher mounts an output folder in the container."""
    return in_container(PROCESSING, folder)


def check_output(folder: Path, marker: str, option: str) -> None:
    """An output folder is missing, empty (a fresh Processing mount), or an earlier output
    of the same command (it holds `marker`, written last), which is replaced; anything else
    is refused rather than mixed with or deleted."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputError(folder, "exists and is not a folder", f"give {option} a new folder")
    found = sorted(p.name for p in folder.iterdir() if not p.name.startswith(PARTIAL_PREFIX))
    if found and marker not in found:
        raise InputError(
            folder,
            f"holds files this command did not write ({', '.join(found[:5])})",
            f"give {option} a new or empty folder",
        )


def prepare_arguments(
    preprocess: PreprocessOptions,
    fetch: FetchOptions | None = None,
    transfer: TransferOptions | None = None,
) -> list[str]:
    """`earthseg prepare`'s options that ask for these (the Processing step's arguments,
    after the command `prepare`): preprocessing's, then, for an export without images,
    how its scenes are fetched."""
    arguments = preprocess.arguments()
    for options in (fetch, transfer):
        if options is None:
            continue
        for name, value in options.model_dump(mode="json").items():
            option = FETCH_FLAGS.get(name) or "--" + name.replace("_", "-")
            if value is None or value is False:
                continue
            if value is True:
                arguments.append(option)
            elif isinstance(value, list):
                arguments += [f"{option}={item}" for item in value]
            else:
                arguments.append(f"{option}={value}")
    return arguments


def evaluate_arguments(threshold: float | None = None) -> list[str]:
    """`earthseg evaluate`'s options (after the command `evaluate`): the decision
    threshold, when not the model card's."""
    return [] if threshold is None else [f"--threshold={threshold}"]
