"""The worker starts from any directory, configured by environment variables only.

A real deployment has no ``.services/`` folder next to it: the worker must create its
data directory (parents included) where the setting points -- relative paths against its
working directory -- and say where in its ``worker_started`` log line.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from pacer_stream.client.kafka import PacerClient

from .conftest import StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000


def _log_event(worker: WorkerProcess, event: str) -> dict[str, object] | None:
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            record: dict[str, object] = json.loads(line)
            return record
    return None


async def test_worker_starts_in_an_empty_directory_with_env_only(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty-cwd"
    empty.mkdir()
    # Only what a container would set: PATH/HOME and PACER_* -- no data dir setting, so
    # the default (.services/worker-data) is resolved against the empty directory.
    env = {k: v for k, v in stream_run.env(0).items() if k.startswith("PACER_")}
    del env["PACER_WORKER_DATA_DIR"]
    env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(empty)})
    w = workers("anywhere", cwd=empty, env=env)
    env["PACER_WORKER_WEB_PORT"] = str(w.port)
    w.start()
    await w.wait_ready()

    expected = empty / ".services" / "worker-data"
    assert expected.is_dir()
    started = await poll(lambda: _log_event(w, "worker_started"), what="worker_started log")
    assert started["data_dir"] == str(expected)
    assert _log_event(w, "worker_data_dir_fallback") is None
    # The objects alive at start (its imports: well over 10,000) are frozen out of the
    # garbage collector's full passes (streams/heap.py).
    frozen = started["gc_frozen_objects"]
    assert isinstance(frozen, int) and frozen > 10_000

    # ...and it is a working worker, not just a live process.
    cid = f"sa-{uuid.uuid4().hex[:8]}"
    await client.set_budget(cid, {"google_ads": 100 * UNIT}, strategy="even_distribution")
    await poll(lambda: w.status(cid), what="campaign configured")
    await client.publish_spend(cid, "google_ads", 2 * UNIT, event_id="e1")
    await poll(
        lambda: (w.channel(cid, "google_ads") or {}).get("spent_micros") == 2 * UNIT,
        what="spend applied",
    )


async def test_unusable_data_dir_falls_back_and_says_so(
    stream_run: StreamRun, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    stream_run.extra_env["PACER_WORKER_DATA_DIR"] = str(blocker / "worker-data")
    w = workers("fallback")
    w.start()
    await w.wait_ready()
    warning = await poll(lambda: _log_event(w, "worker_data_dir_fallback"), what="fallback warning")
    assert warning["configured"] == str(blocker / "worker-data")
    assert "NotADirectoryError" in str(warning["problem"])
    used = Path(str(warning["data_dir"]))
    assert used.is_dir() and used.name.startswith("pacer-stream-")
    assert blocker.read_text() == "not a directory"
