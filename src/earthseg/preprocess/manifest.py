"""The dataset manifest: what every tile is and where it came from, so a model card can
name exactly what a model saw. Written last: its presence marks a complete dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "earthseg.dataset/1"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, as `sha256:<hex>`."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One digest for a set of files (a shapefile and its sidecars), named and ordered."""
    combined = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        combined.update(f"{path.name}={file_digest(path)}\n".encode())
    return "sha256:" + combined.hexdigest()


def run_fingerprint(input_digests: list[str], options: dict[str, Any], version: str) -> str:
    """What decides a dataset's content: the inputs' bytes, the options, the code version."""
    text = json.dumps({"inputs": input_digests, "options": options, "version": version})
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a finished dataset in `folder`, or None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return manifest if manifest.get("format") == MANIFEST_FORMAT else None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` into `folder` as stable, human-readable JSON."""
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path
