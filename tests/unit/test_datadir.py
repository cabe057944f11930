"""The worker's data directory is created wherever it points, or replaced by a private
temporary one when it cannot be (the worker must start from any working directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacer_stream.streams.datadir import prepare_data_dir


def test_missing_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "worker-data"
    d = prepare_data_dir(str(target))
    assert d.path == target and d.source == "configured" and d.problem == ""
    assert target.is_dir()


def test_relative_path_is_made_absolute_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    d = prepare_data_dir(".services/worker-data")
    assert d.path == tmp_path / ".services" / "worker-data"
    assert d.path.is_absolute() and d.path.is_dir()


def test_existing_directory_is_reused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    d = prepare_data_dir(str(tmp_path))
    assert d.path == tmp_path and (tmp_path / "keep.txt").read_text() == "x"


def test_unusable_path_falls_back_to_a_private_temporary_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    d = prepare_data_dir(str(blocker / "worker-data"))
    try:
        assert d.source == "temporary"
        assert "NotADirectoryError" in d.problem
        assert d.path.is_dir() and d.path.name.startswith("pacer-stream-")
        assert os.access(d.path, os.W_OK)
        assert blocker.read_text() == "not a directory"  # nothing overwritten
    finally:
        d.path.rmdir()
