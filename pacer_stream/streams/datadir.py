"""The worker's data directory: created where it is configured, or a private temporary one.

Why this exists: faust creates only the *last* component of its data directory, so a
worker started outside the development checkout (no ``.services/``) used to die at start
with ``FileNotFoundError``. Nothing the worker keeps there is needed to be correct -- the
campaign table's RocksDB databases only ever hold changelog records the broker
acknowledged (:mod:`.table_store`), so without them the table is rebuilt from the whole
changelog -- and a directory that cannot be created (read-only root filesystem, no
permission) is not a reason to refuse to run: the worker then uses a private temporary
directory and says so.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    """Where the worker keeps its local files, and why there."""

    path: Path
    #: ``configured`` (the setting, created if missing) or ``temporary`` (fallback).
    source: str
    #: Why the configured directory could not be used (empty when it was).
    problem: str = ""


def prepare_data_dir(configured: str) -> DataDir:
    """Create ``configured`` (with parents) as an absolute path and check it is writable;
    on failure fall back to a fresh ``pacer-stream-*`` directory under the system
    temporary directory. Never raises for an unusable configured path."""
    path = Path(configured).expanduser()
    if not path.is_absolute():
        # Absolute so that nothing depends on the working directory later.
        path = Path.cwd() / path
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
        return DataDir(path, "configured")
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="pacer-stream-"))
        return DataDir(fallback, "temporary", f"{type(exc).__name__}: {exc}")
