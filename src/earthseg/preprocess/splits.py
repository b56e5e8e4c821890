"""Split by scene, never by tile: tiles of one scene must not leak across splits."""

from __future__ import annotations

import numpy as np

from earthseg.contracts.channels import CHANNELS
from earthseg.errors import InputError


def scene_counts(scenes: int, fractions: tuple[float, ...]) -> list[int]:
    """Scenes per split by largest remainder, with at least one for every non-zero share."""
    wanted = [f > 0 for f in fractions]
    if scenes < sum(wanted):
        raise InputError(
            "--splits",
            f"asks for {sum(wanted)} non-empty splits but only {scenes} labelled scenes exist",
            "add scenes, or give fewer splits a share (e.g. --splits 0.5,0.5,0)",
        )
    exact = [f * scenes for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: scenes - sum(counts)]:
        counts[i] += 1
    for i in range(len(counts)):
        while wanted[i] and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            counts[donor] -= 1
            counts[i] += 1
    return counts


def assign_splits(stems: list[str], fractions: tuple[float, ...], seed: int) -> dict[str, str]:
    """Split name for each scene stem: the same stems, fractions and seed give the same split."""
    order = np.random.default_rng(seed).permutation(len(stems))
    shuffled = [sorted(stems)[i] for i in order]
    assignment: dict[str, str] = {}
    start = 0
    for name, count in zip(CHANNELS, scene_counts(len(stems), fractions), strict=True):
        assignment.update((stem, name) for stem in shuffled[start : start + count])
        start += count
    return assignment
