"""The step graph of a SageMaker Pipeline definition, drawn: what `--dry-run` puts beside
pipeline.json, and the README's picture.

Edges are read from the definition itself (a step's property references to another
step, its DependsOn, a Condition's branches), so the picture shows what SageMaker will
run, not what we meant to define.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earthseg.atomic import atomic_file

REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9_-]+)")
COLOURS = {
    "Processing": "#dbe9f6",
    "Training": "#fde2c8",
    "Tuning": "#fcd0a1",
    "Condition": "#eeeeee",
    "RegisterModel": "#d9f2d9",
    "Fail": "#f8d0d0",
}


@dataclass
class GraphStep:
    name: str
    kind: str
    detail: str
    after: set[str] = field(default_factory=set)  # steps it needs
    branch: str = ""  # "if" / "else" under a Condition


def graph_steps(definition: dict[str, Any]) -> dict[str, GraphStep]:
    """Every step of `definition` (condition branches included) with what it waits for."""
    steps: dict[str, GraphStep] = {}

    def visit(step: dict[str, Any], parent: str | None = None, branch: str = "") -> None:
        arguments = step.get("Arguments", {})
        node = GraphStep(step["Name"], step["Type"], _detail(step), branch=branch)
        own = {k: v for k, v in arguments.items() if k not in ("IfSteps", "ElseSteps")}
        node.after = _references(own) | set(step.get("DependsOn", []))
        node.after |= {reference for reference in _references(step.get("PropertyFiles", []))}
        if parent is not None:
            node.after.add(parent)
        node.after.discard(node.name)
        steps[node.name] = node
        for key, label in (("IfSteps", "if"), ("ElseSteps", "else")):
            for inner in arguments.get(key, []):
                visit(inner, step["Name"], label)

    for step in definition["Steps"]:
        visit(step)
    for node in steps.values():  # an edge another path already implies is not drawn
        node.after = {
            before
            for before in node.after
            if not any(before in _ancestors(steps, other) for other in node.after - {before})
        }
    return steps


def _ancestors(steps: dict[str, GraphStep], name: str) -> set[str]:
    found: set[str] = set()
    pending = list(steps[name].after)
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending += steps[current].after
    return found


def draw_graph(definition_file: Path, picture: Path) -> Path:
    """`definition_file` (pipeline.json) drawn into `picture` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    steps = graph_steps(json.loads(Path(definition_file).read_text()))
    levels = _levels(steps)
    columns: dict[int, list[str]] = {}
    for name in steps:
        columns.setdefault(levels[name], []).append(name)
    width, height = 2.6, 1.1
    position = {
        name: (level * (width + 0.8), -row * (height + 0.6))
        for level, names in columns.items()
        for row, name in enumerate(names)
    }
    figure, axes = plt.subplots(
        figsize=(2.3 * len(columns) + 1, 1.3 * max(map(len, columns.values())) + 1)
    )
    for name, step in steps.items():
        x, y = position[name]
        axes.add_patch(
            FancyBboxPatch(
                (x, y),
                width,
                height,
                boxstyle="round,pad=0.05",
                facecolor=COLOURS.get(step.kind, "#ffffff"),
                edgecolor="#555555",
            )
        )
        axes.text(
            x + width / 2,
            y + height * 0.68,
            name,
            ha="center",
            va="center",
            weight="bold",
            fontsize=10,
        )
        axes.text(
            x + width / 2,
            y + height * 0.3,
            f"{step.kind}\n{step.detail}",
            ha="center",
            va="center",
            fontsize=7,
        )
        for before in sorted(step.after):
            bx, by = position[before]
            axes.annotate(
                "",
                xy=(x, y + height / 2),
                xytext=(bx + width, by + height / 2),
                arrowprops={"arrowstyle": "->", "color": "#333333"},
            )
            if step.branch:
                axes.text(
                    (x + bx + width) / 2,
                    (y + by) / 2 + height / 2 + 0.1,
                    step.branch,
                    fontsize=8,
                    ha="center",
                )
    axes.set_xlim(-0.3, len(columns) * (width + 0.8))
    lowest = min(y for _, y in position.values())
    axes.set_ylim(lowest - 0.3, height + 0.3)
    axes.set_axis_off()
    picture.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(picture) as partial:
        figure.savefig(partial, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return picture


def _levels(steps: dict[str, GraphStep]) -> dict[str, int]:
    """Each step's column: one after the latest step it needs."""
    levels: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in levels:
            needed = [
                level(other, seen | {name}) for other in steps[name].after if other not in seen
            ]
            levels[name] = 1 + max(needed, default=-1)
        return levels[name]

    for name in steps:
        level(name)
    return levels


def _references(value: Any) -> set[str]:
    """The steps a piece of a definition refers to ({"Get": "Steps.Name...."})."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Get" and isinstance(item, str) and (match := REFERENCE.match(item)):
                found.add(match.group(1))
            else:
                found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _detail(step: dict[str, Any]) -> str:
    """One line under a step's name: its image (repository) and command, or a tuning's
    trials, or a condition's comparison."""
    arguments = step.get("Arguments", {})
    if step.get("Type") == "Condition":
        return "\n".join(_comparison(item) for item in arguments.get("Conditions", []))
    containers = arguments.get("InferenceSpecification", {}).get("Containers") or [{}]
    trials = arguments.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
    image = (
        arguments.get("AppSpecification", {}).get("ImageUri")
        or arguments.get("AlgorithmSpecification", {}).get("TrainingImage")
        or arguments.get("TrainingJobDefinition", {})
        .get("AlgorithmSpecification", {})
        .get("TrainingImage")
        or containers[0].get("Image")
    )
    command = (arguments.get("AppSpecification", {}).get("ContainerArguments") or [""])[0]
    if not isinstance(image, str):
        return ""
    repository = image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    if trials:
        return (
            f"{repository}\n{trials.get('MaxNumberOfTrainingJobs')} trials, "
            f"{trials.get('MaxParallelTrainingJobs')} at a time"
        )
    return f"{repository} {command}".strip()


def _comparison(condition: dict[str, Any]) -> str:
    signs = {"GreaterThanOrEqualTo": ">=", "GreaterThan": ">", "LessThan": "<"}
    signs |= {"LessThanOrEqualTo": "<=", "Equals": "=="}

    def side(value: Any) -> str:
        if isinstance(value, dict) and "Std:JsonGet" in value:
            return str(value["Std:JsonGet"]["Path"]).removeprefix("metrics.").removesuffix(".value")
        if isinstance(value, dict) and "Get" in value:
            return str(value["Get"]).rsplit(".", 1)[-1]
        return str(value)

    sign = signs.get(condition.get("Type", ""), condition.get("Type", "?"))
    return f"{side(condition.get('LeftValue'))} {sign} {side(condition.get('RightValue'))}"
