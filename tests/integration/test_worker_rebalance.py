"""Two workers share the partitions; one leaves, the other takes over with the state.

Checks that partition rebalancing works with the changelog-backed table: every campaign
is owned by exactly one worker at a time, the status view answers from either worker
(faust routes the request to the owner), spend keeps being counted exactly, and after a
graceful leave the survivor recovers the leaver's campaigns from the changelog.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pacer_stream.client.kafka import PacerClient

from .conftest import PARTITIONS, StreamRun, WorkerProcess, ids_on_every_partition, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000


def _assigned(worker: WorkerProcess) -> int:
    code, body = worker.get("/readyz")
    if code != 200:
        return -1
    return int(body["checks"]["kafka"]["assigned_partitions"])


async def test_two_workers_share_then_one_takes_over(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
) -> None:
    w1 = workers("w1")
    w1.start()
    await w1.wait_ready()
    cids = ids_on_every_partition("rb", 4)
    for cid in cids:
        await client.set_budget(cid, {"search": 10_000 * UNIT}, strategy="even_distribution")
    await poll(lambda: all(w1.status(c) for c in cids), what="campaigns configured")

    w2 = workers("w2", data_dir=stream_run.tmp / "worker-data-w2")  # side by side
    w2.start()
    await w2.wait_ready()
    # both active, the partitions split between them (no standby counted as active)
    await poll(
        lambda: (
            _assigned(w1) >= 1
            and _assigned(w2) >= 1
            and _assigned(w1) + _assigned(w2) == PARTITIONS
        ),
        what="partitions split between the two workers",
    )
    expected: dict[str, int] = {}
    for i, cid in enumerate(cids * 5):
        amount = (i + 1) * 1_000
        await client.publish_spend(cid, "search", amount, event_id=f"ev-{i}")
        expected[cid] = expected.get(cid, 0) + amount

    def counted(worker: WorkerProcess) -> bool:
        for cid in cids:
            ch = worker.channel(cid, "search")  # routed to the owner by faust
            if ch is None or ch["spent_micros"] != expected[cid]:
                return False
        return True

    await poll(lambda: counted(w1) and counted(w2), what="spend counted, seen from both")
    owners = {w1.status(c)["partition"] for c in cids}  # type: ignore[index]
    assert owners == set(range(PARTITIONS))

    # w1 leaves gracefully: w2 owns everything and recovers w1's campaigns
    assert w1.stop() == 0
    await poll(lambda: _assigned(w2) == PARTITIONS, what="survivor owns every partition")
    await poll(lambda: counted(w2), what="all campaigns on the survivor, totals exact")
    # and it keeps processing
    await client.publish_spend(cids[0], "search", 7_000, event_id="after-leave")
    expected[cids[0]] += 7_000
    await poll(lambda: counted(w2), what="spend after the rebalance")
