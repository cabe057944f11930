"""Kafka goes away for ~20 s and comes back while spend and can-spend traffic flow.

On a private broker (the shared one is never touched): the worker reconnects by itself,
``/readyz`` says "not ready" while the broker is away and "ready" after, can-spend
requests sent during the outage time out on the client (no answer from stale state --
a request the broker delivers late is answered ``expired``, never allowed), and once all
traffic is in, every campaign/channel's spend equals the sum of its unique events to the
micro (producer retries and duplicates included: 0 lost, 0 double counted).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pacer_stream.client.kafka import PacerClient
from pacer_stream.core.types import ChannelType, SpendEvent
from pacer_stream.streams.admin import create_topics
from pacer_stream.wire import records, topics

from .conftest import Collector, StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000
CHANNELS = ("google_ads", "display")
#: How long the broker stays down (fault shaping, not a timing assertion).
OUTAGE_S = 20.0


class Traffic:
    """Spend producer with retries (same event id: idempotent) and a can-spend poller."""

    def __init__(self, run: StreamRun, client: PacerClient, cids: list[str]) -> None:
        self.run, self.client, self.cids = run, client, cids
        self.rng = random.Random(11)
        self.spend: dict[tuple[str, str], int] = {}
        self.seen: set[str] = set()
        self.last_offset: dict[str, int] = {}
        self.send_failures = 0
        self.phase = "up"
        #: (phase when sent, request id, "allowed" | "denied" | "timeout")
        self.requests: list[tuple[str, str, str]] = []
        self.stop = asyncio.Event()

    async def _send(self, cid: str, channel: str, event_id: str, amount: int) -> None:
        payload = records.encode_spend(
            SpendEvent(event_id, cid, ChannelType(channel), amount, self.run.now(), clicks=1)
        )
        while True:  # a real producer retries until the broker takes the event
            try:
                async with asyncio.timeout(5):
                    _, offset = await self.client.send(
                        self.run.topic(topics.SPEND), cid.encode(), payload
                    )
                break
            except Exception:
                self.send_failures += 1
                await asyncio.sleep(0.2)
        self.last_offset[cid] = max(offset, self.last_offset.get(cid, -1))
        if event_id not in self.seen:
            self.seen.add(event_id)
            self.spend[(cid, channel)] = self.spend.get((cid, channel), 0) + amount

    async def produce(self, n: int) -> None:
        for i in range(n):
            cid, channel = self.rng.choice(self.cids), self.rng.choice(CHANNELS)
            event = (cid, channel, f"ev-{i}", self.rng.randint(1, 90) * 10_000)
            await self._send(*event)
            if i % 10 == 0:  # the same event delivered twice
                await self._send(*event)
            await asyncio.sleep(0.02)  # a steady trickle across the outage

    async def ask(self) -> None:
        i = 0
        while not self.stop.is_set():
            phase, rid = self.phase, f"q-{i}"
            i += 1
            try:
                reply = await self.client.can_spend(
                    self.cids[i % len(self.cids)], "google_ads", 1_000, timeout_s=1.0,
                    request_id=rid,
                )  # fmt: skip
                outcome = "allowed" if reply.allowed else "denied"
            except TimeoutError:
                outcome = "timeout"
            except Exception:  # the producer itself refusing while the broker is down
                outcome = "timeout"
            self.requests.append((phase, rid, outcome))
            await asyncio.sleep(0.1)


def _caught_up(w: WorkerProcess, traffic: Traffic) -> bool:
    for cid in traffic.cids:
        body = w.status(cid)
        if body is None or body["offsets"].get(topics.SPEND, -1) < traffic.last_offset[cid]:
            return False
    return True


async def test_broker_restart_under_traffic(private_kafka: Any, tmp_path: Path) -> None:
    broker = private_kafka("kafka")
    run = StreamRun(tmp_path, bootstrap=broker.bootstrap)
    await create_topics(run.settings())
    w = WorkerProcess(run, "w")
    client = run.client()
    replies = Collector(run.topic(topics.CAN_SPEND_REPLIES), topics.CAN_SPEND_REPLIES,
                        broker.bootstrap)  # fmt: skip
    cids = [f"br-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    traffic = Traffic(run, client, cids)
    try:
        w.start()
        await w.wait_ready()
        await client.start()
        for cid in cids:
            await client.set_budget(
                cid,
                {c: 1_000_000 * UNIT for c in CHANNELS},
                strategy="even_distribution",
                thresholds={"reservation_ttl_s": 3600},
            )
        await poll(lambda: all(w.status(c) for c in cids), what="campaigns configured")
        producer = asyncio.create_task(traffic.produce(900))
        asker = asyncio.create_task(traffic.ask())
        await poll(
            lambda: (
                sum(1 for p, _, o in traffic.requests if p == "up" and o == "allowed") >= 5
                and len(traffic.seen) >= 50
            ),
            what="traffic flowing before the outage",
        )

        traffic.phase = "stopping"
        broker.stop()
        traffic.phase = "down"
        down_at = time.monotonic()
        _, body = await poll(
            lambda: (lambda r: r if r[0] == 503 else None)(w.get("/readyz")),
            timeout=30,
            what="/readyz not ready while the broker is away",
        )
        assert body["checks"]["kafka"]["broker_reachable"] is False, body
        assert body["checks"]["kafka"]["error"]
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert not producer.done(), "the outage must happen while events are still flowing"
        assert w.proc is not None and w.proc.poll() is None, "the worker must ride it out"

        traffic.phase = "restarting"
        broker.start()
        traffic.phase = "back"
        await w.wait_ready(timeout=90)
        await poll(
            lambda: any(p == "back" and o == "allowed" for p, _, o in traffic.requests),
            timeout=90,
            what="can-spend answered again after the broker returned",
        )
        await producer
        traffic.stop.set()
        await asyncio.wait_for(asker, 10)
        await poll(lambda: _caught_up(w, traffic), timeout=90, what="all spend applied")

        for cid in cids:
            for channel in CHANNELS:
                ch = w.channel(cid, channel)
                assert ch is not None
                assert ch["spent_micros"] == traffic.spend.get((cid, channel), 0), (cid, channel)
        assert traffic.send_failures > 0, "the producer must have felt the outage"

        down = [(rid, o) for p, rid, o in traffic.requests if p == "down"]
        assert down and all(o == "timeout" for _, o in down), down
        # A request the broker delivered late is answered 'expired', never allowed.
        await replies.start()
        down_ids = {rid for rid, _ in down}
        answered = sum(1 for _, _, o in traffic.requests if o != "timeout")
        await poll(lambda: len(replies.values()) >= answered, what="replies topic read")
        late = [r for r in replies.values() if r.request_id in down_ids]
        assert all(not r.allowed for r in late), late
        print(
            f"broker outage {OUTAGE_S:.0f} s: {len(down)} can-spend timeouts, "
            f"{len(late)} late replies (all denied), {traffic.send_failures} producer retries"
        )
    finally:
        traffic.stop.set()
        await replies.close()
        await client.close()
        w.stop(timeout=20)
