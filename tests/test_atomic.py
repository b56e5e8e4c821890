"""Outputs appear only complete, with ordinary permissions, and killed runs leave no debris."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from earthseg.atomic import PARTIAL_PREFIX, atomic_dir, atomic_file


def test_a_folder_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(target) as partial:
        (partial / "half.npy").write_bytes(b"x")
        raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as partial:
        (partial / "whole.npy").write_bytes(b"x")
        assert not target.exists()
    assert [p.name for p in target.iterdir()] == ["whole.npy"]


def test_an_existing_empty_folder_is_filled_in_place(tmp_path: Path) -> None:
    mount = tmp_path / "output"  # like /opt/ml/processing/output, which cannot be replaced
    mount.mkdir()
    inode = mount.stat().st_ino
    with pytest.raises(RuntimeError), atomic_dir(mount, last="manifest.json") as partial:
        (partial / "train").mkdir()
        raise RuntimeError("failed")
    assert list(mount.iterdir()) == []
    with atomic_dir(mount, last="manifest.json") as partial:
        (partial / "manifest.json").write_text("{}")
        (partial / "train").mkdir()
    assert sorted(p.name for p in mount.iterdir()) == ["manifest.json", "train"]
    assert mount.stat().st_ino == inode


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as partial:
            (partial / "a").write_text("a")
        with atomic_file(tmp_path / "mask.tif") as partial_file:
            partial_file.write_text("m")
    finally:
        os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "mask.tif").stat().st_mode & 0o777 == 0o644


def test_debris_of_a_killed_run_is_cleared_by_the_next_run_for_that_target(
    tmp_path: Path,
) -> None:
    debris = tmp_path / f"{PARTIAL_PREFIX}out-0123abcd"
    debris.mkdir()
    (debris / "half.npy").write_bytes(b"x")
    other = tmp_path / f"{PARTIAL_PREFIX}other-0123abcd"  # another target's run: left alone
    other.mkdir()
    with atomic_dir(tmp_path / "out") as partial:
        (partial / "whole").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "out"]
    stale_file = tmp_path / f"{PARTIAL_PREFIX}mask.tif-0123.tif"
    stale_file.write_bytes(b"x")
    with atomic_file(tmp_path / "mask.tif") as partial_file:
        partial_file.write_text("m")
    assert not stale_file.exists()


def test_replace_swaps_the_old_content_only_once_the_new_is_complete(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "old.onnx").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(model, replace=True) as partial:
        (partial / "new.onnx").write_text("half")
        raise RuntimeError("export failed")
    assert [p.name for p in model.iterdir()] == ["old.onnx"]
    with atomic_dir(model, replace=True) as partial:
        (partial / "new.onnx").write_text("new")
    assert [p.name for p in model.iterdir()] == ["new.onnx"]
