"""State survives restarts: graceful stop, then kill -9 while events flow.

After every restart each campaign's spend, reservations, breaker states and dedupe window
are as before, and once every produced record is processed the spend equals the sum of
the *unique* events exactly (0 lost, 0 double counted) -- the table's changelog plus the
offset high-water mark inside the table value make replays harmless.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pacer_stream.client.kafka import PacerClient
from pacer_stream.wire import topics

from .conftest import StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000
CHANNELS = ("google_ads", "display")


class Ledger:
    """What was produced: unique spend per campaign/channel, last offset per campaign."""

    def __init__(self) -> None:
        self.unique: dict[str, int] = {}
        self.spend: dict[tuple[str, str], int] = {}
        self.last_offset: dict[str, int] = {}

    async def spend_event(
        self,
        client: PacerClient,
        run: StreamRun,
        cid: str,
        channel: str,
        event_id: str,
        amount: int,
    ) -> None:
        from pacer_stream.core.types import ChannelType, SpendEvent
        from pacer_stream.wire import records

        payload = records.encode_spend(
            SpendEvent(event_id, cid, ChannelType(channel), amount, run.now(), clicks=1)
        )
        _, offset = await client.send(run.topic(topics.SPEND), cid.encode(), payload)
        self.last_offset[cid] = max(offset, self.last_offset.get(cid, -1))
        if event_id not in self.unique:
            self.unique[event_id] = amount
            key = (cid, channel)
            self.spend[key] = self.spend.get(key, 0) + amount

    async def spend_batch(
        self,
        client: PacerClient,
        run: StreamRun,
        cid: str,
        events: list[tuple[str, str, int]],
    ) -> None:
        """One batched record of ``(channel, event_id, amount)`` events of ``cid``."""
        from pacer_stream.core.types import ChannelType, SpendEvent
        from pacer_stream.wire import records

        payload = records.encode_spend_batch(
            cid,
            [
                SpendEvent(eid, cid, ChannelType(ch), amount, run.now(), clicks=1)
                for ch, eid, amount in events
            ],
        )
        _, offset = await client.send(run.topic(topics.SPEND), cid.encode(), payload)
        self.last_offset[cid] = max(offset, self.last_offset.get(cid, -1))
        for channel, event_id, amount in events:
            if event_id not in self.unique:
                self.unique[event_id] = amount
                key = (cid, channel)
                self.spend[key] = self.spend.get(key, 0) + amount


def _view(worker: WorkerProcess, cid: str) -> dict[str, Any] | None:
    body = worker.status(cid)
    if body is None:
        return None
    return {
        "offsets": body["offsets"],
        "dedupe": body["dedupe_entries"],
        "stopped": body["emergency_stopped"],
        "channels": {
            c["channel"]: (
                c["spent_micros"],
                c["reserved_micros"],
                c["reservations"],
                c["breaker"]["state"],
                c["breaker"]["forced"],
                c["clicks"],
            )
            for c in body["channels"]
        },
    }


def _caught_up(worker: WorkerProcess, ledger: Ledger, cids: list[str]) -> bool:
    for cid in cids:
        body = worker.status(cid)
        if body is None or body["offsets"].get(topics.SPEND) != ledger.last_offset.get(cid):
            return False
    return True


def _assert_exact(worker: WorkerProcess, ledger: Ledger, cids: list[str]) -> None:
    for cid in cids:
        for channel in CHANNELS:
            ch = worker.channel(cid, channel)
            assert ch is not None
            assert ch["spent_micros"] == ledger.spend.get((cid, channel), 0), (cid, channel)


async def test_restart_graceful_and_kill9_exact_totals(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
) -> None:
    rng = random.Random(7)
    ledger = Ledger()
    cids = [f"r-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]

    w1 = workers("w1")
    w1.start()
    await w1.wait_ready()
    for cid in cids:
        await client.set_budget(
            cid,
            {c: 1_000_000 * UNIT for c in CHANNELS},
            strategy="even_distribution",
            thresholds={"reservation_ttl_s": 3600},
        )
    # budgets and requests are different topics: no order between them, so wait
    await poll(lambda: all(w1.status(c) for c in cids), what="campaigns configured")
    await client.force_breaker(cids[1], "display", "open", reason="held open for the test")
    hold = await client.can_spend(cids[0], "google_ads", 3 * UNIT, timeout_s=20)
    assert hold.allowed

    # phase 1: events with producer-retry duplicates
    sent: list[tuple[str, str, str, int]] = []
    for i in range(150):
        cid, channel = rng.choice(cids), rng.choice(CHANNELS)
        event = (cid, channel, f"ev-{i}", rng.randint(1, 50) * 10_000)
        sent.append(event)
        await ledger.spend_event(client, stream_run, *event)
        if i % 10 == 0:  # the same event delivered again
            await ledger.spend_event(client, stream_run, *event)
    await poll(lambda: _caught_up(w1, ledger, cids), what="phase 1 applied")
    _assert_exact(w1, ledger, cids)
    before = {cid: _view(w1, cid) for cid in cids}

    # graceful restart: everything is as before
    assert w1.stop() == 0
    w2 = workers("w2")
    w2.start()
    await w2.wait_ready()
    await poll(lambda: all(_view(w2, cid) for cid in cids), what="campaigns recovered")
    after = {cid: _view(w2, cid) for cid in cids}
    assert after == before
    assert after[cids[1]]["channels"]["display"][3:5] == ("open", True)  # type: ignore[index]
    assert after[cids[0]]["channels"]["google_ads"][1] == 3 * UNIT  # type: ignore[index]
    # the dedupe window survived: old event ids delivered again change nothing
    for event in sent[:20]:
        await ledger.spend_event(client, stream_run, *event)
    await poll(lambda: _caught_up(w2, ledger, cids), what="re-deliveries processed")
    _assert_exact(w2, ledger, cids)

    # kill -9 while events flow, then recover and finish
    done = asyncio.Event()

    async def produce() -> None:
        for i in range(400):
            cid, channel = rng.choice(cids), rng.choice(CHANNELS)
            event = (cid, channel, f"live-{i}", rng.randint(1, 50) * 10_000)
            await ledger.spend_event(client, stream_run, *event)
            if i % 7 == 0:
                await ledger.spend_event(client, stream_run, *event)
            if i % 25 == 0:
                await asyncio.sleep(0.01)  # let the worker interleave (not a timing wait)
        done.set()

    producer = asyncio.create_task(produce())
    target = sum(ledger.last_offset.values()) + 60

    def progressed() -> bool:
        bodies = [w2.status(cid) for cid in cids]
        return all(bodies) and sum(b["offsets"].get(topics.SPEND, 0) for b in bodies) > target  # type: ignore[index]

    await poll(progressed, what="worker processing live events")
    assert not done.is_set(), "the kill must happen while events are still flowing"
    w2.kill()
    killed_at = time.monotonic()
    w3 = workers("w3")
    w3.start()
    await w3.wait_ready()
    await producer
    assert done.is_set()
    await poll(lambda: _caught_up(w3, ledger, cids), what="all events after kill -9")
    recovery_s = time.monotonic() - killed_at
    _assert_exact(w3, ledger, cids)
    view = _view(w3, cids[1])
    assert view is not None and view["channels"]["display"][3:5] == ("open", True)
    total_unique = sum(ledger.spend.values())
    assert total_unique > 0
    print(f"recovery after kill -9 (ready + caught up): {recovery_s:.1f} s")


@pytest.mark.parametrize("table_store", ["rocksdb", "memory"])
async def test_kill9_with_batched_records_exact_totals(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    table_store: str,
) -> None:
    """Batched records (duplicates inside a batch, across batches and whole batches
    delivered twice) while the worker is killed -9: every unique event counts once, on
    either table store (the event ids are records of their own beside the campaign
    values: recovered from the local database and the changelog's tail, or from the
    whole changelog)."""
    rng = random.Random(11)
    ledger = Ledger()
    cids = [f"b-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    store = {"PACER_TABLE_STORE": table_store}
    w1 = workers("w1", extra_env=store)
    w1.start()
    await w1.wait_ready()
    for cid in cids:
        await client.set_budget(
            cid, {c: 1_000_000 * UNIT for c in CHANNELS}, strategy="even_distribution"
        )
    await poll(lambda: all(w1.status(c) for c in cids), what="campaigns configured")
    done = asyncio.Event()
    ids = [f"bev-{i}" for i in range(3000)]

    async def produce() -> None:
        for n in range(120):
            cid = rng.choice(cids)
            events = []
            for _ in range(rng.randint(1, 40)):
                i = rng.randrange(len(ids))  # ids repeat within and across batches
                # the same id always carries the same channel and amount, as a retry does
                events.append((CHANNELS[i % 2], f"{cid}-{ids[i]}", (i % 50 + 1) * 10_000))
            await ledger.spend_batch(client, stream_run, cid, events)
            if n % 9 == 0:  # the whole record delivered again
                await ledger.spend_batch(client, stream_run, cid, events)
            if n % 10 == 0:
                # paced, so the kill lands mid-flow (not a timing assertion)
                await asyncio.sleep(0.2)
        done.set()

    producer = asyncio.create_task(produce())

    def progressed() -> bool:
        bodies = [w1.status(cid) for cid in cids]
        return all(bodies) and sum(b["offsets"].get(topics.SPEND, 0) for b in bodies) > 40  # type: ignore[index]

    # The kill often comes before the group's first commit on a partition: the next
    # worker then reads that partition from its earliest offset, including records a
    # rebalance or its table recovery made it drop (:mod:`pacer_stream.streams.consumer`).
    await poll(progressed, what="worker applying batches")
    assert not done.is_set(), "the kill must happen while batches are still flowing"
    w1.kill()
    w2 = workers("w2", extra_env=store)
    w2.start()
    await w2.wait_ready()
    await producer
    await poll(lambda: _caught_up(w2, ledger, cids), what="all batches after kill -9")
    _assert_exact(w2, ledger, cids)
    assert sum(ledger.spend.values()) > 0


async def test_kill9_keeps_the_grants_made_since_the_campaign_was_last_written(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
) -> None:
    """A plain grant is a record of its own, not a write of the campaign: after a kill -9
    every hold granted since the campaign's value was last written is still held, and a
    retried request gets its reservation back and nothing more."""
    cid = f"g-{uuid.uuid4().hex[:8]}"
    w1 = workers("w1")
    w1.start()
    await w1.wait_ready()
    await client.set_budget(
        cid,
        {c: 1_000_000 * UNIT for c in CHANNELS},
        strategy="even_distribution",
        thresholds={"reservation_ttl_s": 3600},
    )
    await poll(lambda: w1.status(cid) is not None, what="campaign configured")
    granted = {}
    for i in range(12):
        reply = await client.can_spend(
            cid, CHANNELS[i % 2], UNIT, request_id=f"grant-{i}", timeout_s=20
        )
        assert reply.allowed
        granted[f"grant-{i}"] = reply.reservation_id
    view = _view(w1, cid)
    assert view is not None
    held = {ch: v[1] for ch, v in view["channels"].items()}  # type: ignore[attr-defined]
    assert held == {c: 6 * UNIT for c in CHANNELS}
    w1.kill()
    w2 = workers("w2")
    w2.start()
    await w2.wait_ready()
    await poll(lambda: _view(w2, cid) is not None, what="campaign recovered")
    view = _view(w2, cid)
    assert view is not None
    assert {ch: v[1] for ch, v in view["channels"].items()} == held  # type: ignore[attr-defined]
    retry = await client.can_spend(cid, CHANNELS[1], UNIT, request_id="grant-5", timeout_s=20)
    assert retry.allowed and retry.reservation_id == granted["grant-5"]
    view = _view(w2, cid)
    assert view is not None
    assert {ch: v[1] for ch, v in view["channels"].items()} == held  # type: ignore[attr-defined]
