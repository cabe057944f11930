"""A worker restarted on the same data directory comes back with its state from RocksDB.

The campaign table's RocksDB databases live under the worker's data directory. After a
kill -9 the next worker on that directory opens them, reads the changelog only from the
offset they recorded (its ``table_store_opened`` log lines say which), and shows every
campaign exactly as before; new spend keeps being counted on top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from pacer_stream.client.kafka import PacerClient

from .conftest import PARTITIONS, StreamRun, WorkerProcess, ids_on_every_partition, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000


def _opened(worker: WorkerProcess) -> dict[int, int | None]:
    """Partition -> changelog offset its database had recorded when it was opened (the
    line is logged as JSON or, before logging is configured, as ``key=value`` pairs)."""
    found: dict[int, int | None] = {}
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if "table_store_opened" not in line:
            continue
        partition = re.search(r'"?partition"?[=:]\s*(\d+)', line)
        offset = re.search(r'"?persisted_offset"?[=:]\s*(\w+)', line)
        assert partition is not None and offset is not None, line
        found[int(partition.group(1))] = int(offset.group(1)) if offset.group(1).isdigit() else None
    return found


def _stable(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The channel fields that do not move with the clock."""
    keys = ("channel", "budget_micros", "spent_micros", "reserved_micros", "reservations")
    return [(*(c[k] for k in keys), c["breaker"]["state"]) for c in body["channels"]]


async def test_restart_on_the_same_data_dir_comes_back_from_rocksdb(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
) -> None:
    w1 = workers("w1")
    w1.start()
    await w1.wait_ready()
    cids = ids_on_every_partition("st", 3)
    for cid in cids:
        await client.set_budget(cid, {"search": 10_000 * UNIT}, strategy="even_distribution")
    expected: dict[str, int] = {}
    for i, cid in enumerate(cids * 3):
        amount = (i + 1) * 1_000
        await client.publish_spend(cid, "search", amount, event_id=f"ev-{i}")
        expected[cid] = expected.get(cid, 0) + amount

    def counted(worker: WorkerProcess) -> bool:
        for cid in cids:
            ch = worker.channel(cid, "search")
            if ch is None or ch["spent_micros"] != expected[cid]:
                return False
        return True

    await poll(lambda: counted(w1), what="spend counted")
    # every partition's database has recorded a delivered changelog offset
    data_dir = stream_run.tmp / "worker-data"
    assert sorted(p.name for p in data_dir.glob("v*/tables/campaigns-*.db")) == [
        f"campaigns-{p}.db" for p in range(PARTITIONS)
    ]
    before = {cid: w1.status(cid) for cid in cids}
    w1.kill()

    w2 = workers("w2")  # same data directory
    w2.start()
    await w2.wait_ready()
    opened = await poll(
        lambda: (o := _opened(w2)) and len(o) == PARTITIONS and o, what="databases opened"
    )
    assert all(offset is not None for offset in opened.values()), opened
    await poll(lambda: counted(w2), what="state back after the restart")
    for cid in cids:
        after = w2.status(cid)
        assert after is not None and before[cid] is not None
        assert after["offsets"] == before[cid]["offsets"]
        assert _stable(after) == _stable(before[cid])
    await client.publish_spend(cids[0], "search", 5_000, event_id="after-restart")
    expected[cids[0]] += 5_000
    await poll(lambda: counted(w2), what="spend after the restart")
