"""Kill -9 soak (``make soak``; deselected from ``make test``): two workers, a private
broker, >= 100,000 spend events (1 % duplicates, single sends and producer batches),
>= 20 random SIGKILLs of either worker and one broker restart, can-spend reservations
settled by spend events, forced and spend-driven breakers.

At the end, per campaign/channel: spend equals the sum of the unique events to the micro,
no reservation is left behind once every reservation has been settled or has expired, and
every breaker state equals the last record of the compacted breakers topic. Recovery time
(SIGKILL -> every campaign has applied every event produced before the kill) is reported
as p50/p99 in ``out/soak/soak_report.json``; the figures of a run are in
docs/operations.md.

Knobs (environment): ``SOAK_EVENTS`` (100000), ``SOAK_KILLS`` (20), ``SOAK_CAMPAIGNS``
(50), ``SOAK_OUT`` (out/soak).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pacer_stream.core.types import ChannelType, SpendEvent
from pacer_stream.streams.admin import create_topics
from pacer_stream.wire import records, topics

from .conftest import REPO, Collector, StreamRun, WorkerProcess, poll

pytestmark = [pytest.mark.integration, pytest.mark.soak]

UNIT = 1_000_000
CHANNELS = ("google_ads", "display")
EVENTS = int(os.environ.get("SOAK_EVENTS", "100000"))
KILLS = int(os.environ.get("SOAK_KILLS", "20"))
CAMPAIGNS = int(os.environ.get("SOAK_CAMPAIGNS", "50"))
OUT = Path(os.environ.get("SOAK_OUT", str(REPO / "out" / "soak")))
RESERVATION_TTL_S = 20


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Feed:
    """What was produced: unique spend per campaign/channel and the last offsets."""

    def __init__(self, run: StreamRun, client: Any, cids: list[str]) -> None:
        self.run, self.client, self.cids = run, client, cids
        self.rng = random.Random(2024)
        self.spend: dict[tuple[str, str], int] = {}
        self.sent: list[tuple[str, str, str, int, str | None]] = []
        self.unique: set[str] = set()
        self.last_offset: dict[str, int] = {}
        self.produced = 0
        self.duplicates = 0
        self.retries = 0
        self.reservations_settled = 0

    def _payload(self, cid: str, ch: str, eid: str, amount: int, rid: str | None) -> bytes:
        event = SpendEvent(
            eid, cid, ChannelType(ch), amount, self.run.now(), clicks=1, reservation_id=rid
        )
        return records.encode_spend(event)

    def _account(self, cid: str, ch: str, eid: str, amount: int, offset: int) -> None:
        self.last_offset[cid] = max(offset, self.last_offset.get(cid, -1))
        self.produced += 1
        if eid in self.unique:
            self.duplicates += 1
        else:
            self.unique.add(eid)
            self.spend[(cid, ch)] = self.spend.get((cid, ch), 0) + amount

    async def send_one(self, ev: tuple[str, str, str, int, str | None]) -> None:
        cid, ch, eid, amount, rid = ev
        payload = self._payload(cid, ch, eid, amount, rid)
        while True:  # retry through a broker restart (same event id: idempotent)
            try:
                async with asyncio.timeout(10):
                    _, offset = await self.client.send(
                        self.run.topic(topics.SPEND), cid.encode(), payload
                    )
                break
            except Exception:
                self.retries += 1
                await asyncio.sleep(0.5)
        self._account(cid, ch, eid, amount, offset)

    async def send_batch(self, evs: list[tuple[str, str, str, int, str | None]]) -> None:
        """Many records handed to the producer at once (one produce request per
        partition), then awaited together."""
        producer = self.client._producer
        assert producer is not None
        while True:
            try:
                async with asyncio.timeout(20):
                    futures = [
                        await producer.send(
                            self.run.topic(topics.SPEND),
                            self._payload(*ev),
                            key=ev[0].encode(),
                        )
                        for ev in evs
                    ]
                    metas = await asyncio.gather(*futures)
                break
            except Exception:
                self.retries += 1
                await asyncio.sleep(0.5)
        for ev, meta in zip(evs, metas, strict=True):
            self._account(ev[0], ev[1], ev[2], ev[3], meta.offset)

    def event(self, i: int) -> tuple[str, str, str, int, str | None]:
        if self.sent and self.rng.random() < 0.01:  # a duplicate of an earlier event
            return self.sent[self.rng.randrange(len(self.sent))]
        cid, ch = self.rng.choice(self.cids), self.rng.choice(CHANNELS)
        ev = (cid, ch, f"s-{i}", self.rng.randint(1, 20) * 1_000, None)
        self.sent.append(ev)
        return ev

    async def produce(self, n: int, rate_per_s: float) -> None:
        i, started = 0, time.monotonic()
        while self.produced < n:
            if self.rng.random() < 0.5:
                batch = [self.event(i + k) for k in range(50)]
                i += 50
                await self.send_batch(batch)
            else:
                await self.send_one(self.event(i))
                i += 1
            ahead = self.produced / rate_per_s - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)  # pace the feed (load shaping)

    async def reserve_and_settle(self, stop: asyncio.Event) -> None:
        """Bid engine over Kafka: can-spend, then settle by a spend event naming the
        reservation (or let it expire, one in four)."""
        i = 0
        while not stop.is_set():
            cid = self.rng.choice(self.cids)
            i += 1
            try:
                reply = await self.client.can_spend(cid, "google_ads", 5_000, timeout_s=2.0)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            if reply.allowed and reply.reservation_id and i % 4:
                ev = (cid, "google_ads", f"r-{i}", 4_000, reply.reservation_id)
                self.sent.append(ev)
                await self.send_one(ev)
                self.reservations_settled += 1
            await asyncio.sleep(0.05)


def _caught_up(workers: list[WorkerProcess], feed: Feed, marks: dict[str, int]) -> bool:
    for cid, offset in marks.items():
        body = next((b for w in workers if (b := w.status(cid)) is not None), None)
        if body is None or body["offsets"].get(topics.SPEND, -1) < offset:
            return False
    return True


@pytest.mark.timeout(3600)
async def test_kill9_soak(private_kafka: Any, tmp_path: Path) -> None:
    broker = private_kafka("soak-kafka")
    run = StreamRun(tmp_path, bootstrap=broker.bootstrap)
    run.extra_env["PACER_LOG_LEVEL"] = "WARNING"
    await create_topics(run.settings())
    rng = random.Random(7)
    workers = [
        WorkerProcess(run, name, data_dir=tmp_path / f"worker-data-{name}")  # side by side
        for name in ("w0", "w1")
    ]
    client = run.client()
    cids = [f"soak-{uuid.uuid4().hex[:6]}-{i}" for i in range(CAMPAIGNS)]
    feed = Feed(run, client, cids)
    recovery: list[float] = []
    broker_recovery_s = 0.0
    stop = asyncio.Event()
    started = time.monotonic()
    try:
        for w in workers:
            w.start()
        for w in workers:
            await w.wait_ready(timeout=120)
        await client.start()
        for k, cid in enumerate(cids):
            # One campaign in ten has a small display budget: its breaker opens on spend.
            display = 30 * UNIT if k % 10 == 0 else 1_000_000 * UNIT
            await client.set_budget(
                cid,
                {"google_ads": 1_000_000 * UNIT, "display": display},
                strategy="even_distribution",
                thresholds={"reservation_ttl_s": RESERVATION_TTL_S},
            )
        for cid in cids[1:4]:
            await client.force_breaker(cid, "google_ads", "open", reason="soak: held open")
        await poll(
            lambda: all(any(w.status(c) for w in workers) for c in cids),
            timeout=120,
            what="campaigns configured",
        )
        producer = asyncio.create_task(feed.produce(EVENTS, rate_per_s=450))
        bidder = asyncio.create_task(feed.reserve_and_settle(stop))

        kills = 0
        while kills < KILLS or not producer.done():
            if producer.done() and producer.exception():
                raise producer.exception()  # type: ignore[misc]
            await asyncio.sleep(rng.uniform(1.0, 4.0))  # random moment (fault shaping)
            if kills == KILLS // 2 and broker_recovery_s == 0.0:
                marks = dict(feed.last_offset)
                t0 = time.monotonic()
                broker.stop()
                await asyncio.sleep(10)  # the broker stays away for a while
                broker.start()
                await poll(
                    lambda m=marks: _caught_up(workers, feed, m),
                    timeout=300,
                    what="caught up after the broker restart",
                )
                broker_recovery_s = time.monotonic() - t0
                print(f"soak: broker restart recovered in {broker_recovery_s:.1f} s", flush=True)
            if kills >= KILLS:
                continue
            victim = rng.choice(workers)
            marks = dict(feed.last_offset)
            t0 = time.monotonic()
            victim.kill()
            victim.start()
            kills += 1
            await poll(
                lambda m=marks: _caught_up(workers, feed, m),
                timeout=300,
                what=f"caught up after kill {kills}",
            )
            recovery.append(time.monotonic() - t0)
            print(
                f"soak: kill {kills} ({victim.log_path.stem}) recovered in {recovery[-1]:.1f} s;"
                f" {feed.produced} events produced",
                flush=True,
            )
        await producer
        stop.set()
        await asyncio.wait_for(bidder, 30)
        marks = dict(feed.last_offset)
        await poll(lambda: _caught_up(workers, feed, marks), timeout=300, what="all applied")

        # 1. Spend: exactly the unique events, per campaign/channel.
        def view(cid: str) -> dict[str, Any] | None:
            return next((b for w in workers if (b := w.status(cid)) is not None), None)

        mismatches = []
        for cid in cids:
            body = view(cid)
            assert body is not None
            for ch in body["channels"]:
                want = feed.spend.get((cid, ch["channel"]), 0)
                if ch["spent_micros"] != want:
                    mismatches.append((cid, ch["channel"], ch["spent_micros"], want))
        dlq = Collector(run.topic(topics.DLQ), topics.DLQ, broker.bootstrap)
        await dlq.start()
        try:
            await asyncio.sleep(3)  # read what the DLQ holds (diagnostics only)
            dlq_codes: dict[str, int] = {}
            for rec in dlq.values():
                code = str(getattr(rec, "error_code", "?"))
                dlq_codes[code] = dlq_codes.get(code, 0) + 1
        finally:
            await dlq.close()
        assert not mismatches, (mismatches[:10], f"DLQ codes: {dlq_codes}")

        # 2. No reservation leaked: every one is settled or expires.
        def no_reservations() -> bool:
            for cid in cids:
                body = view(cid)
                if body is None or any(
                    ch["reservations"] or ch["reserved_micros"] for ch in body["channels"]
                ):
                    return False
            return True

        await poll(no_reservations, timeout=RESERVATION_TTL_S + 60, what="reservations gone")

        # 3. Breakers: the worker's state is the last record of the compacted topic.
        breakers = Collector(run.topic(topics.BREAKERS), topics.BREAKERS, broker.bootstrap)
        await breakers.start()
        try:

            def consistent() -> list[tuple[str, str, str, str | None]] | None:
                last: dict[tuple[str, str], str] = {}
                for rec in breakers.values():
                    last[(rec.campaign_id, rec.channel.value)] = rec.state.value
                wrong = []
                for cid in cids:
                    body = view(cid)
                    assert body is not None
                    for ch in body["channels"]:
                        state = ch["breaker"]["state"]
                        topic_state = last.get((cid, ch["channel"]))
                        if topic_state != state and not (state == "closed" and not topic_state):
                            wrong.append((cid, ch["channel"], state, topic_state))
                return None if wrong else []

            await poll(lambda: consistent() is not None, timeout=60, what="breakers topic")
            opened = {k for k, rec in _last(breakers).items() if rec != "closed"}
        finally:
            await breakers.close()
        assert {(c, "google_ads") for c in cids[1:4]} <= opened
    finally:
        stop.set()
        await client.close()
        for w in workers:
            w.stop(timeout=30)

    report = {
        "events_produced": feed.produced,
        "unique_events": len(feed.unique),
        "duplicates": feed.duplicates,
        "reservations_settled_by_spend": feed.reservations_settled,
        "producer_retries": feed.retries,
        "campaigns": CAMPAIGNS,
        "kills": len(recovery),
        "recovery_s": {
            "p50": round(_pct(recovery, 0.5), 2),
            "p99": round(_pct(recovery, 0.99), 2),
            "max": round(max(recovery, default=0.0), 2),
            "mean": round(statistics.fmean(recovery), 2) if recovery else 0.0,
        },
        "broker_restart_recovery_s": round(broker_recovery_s, 2),
        "breakers_open_at_end": len(opened),
        "wall_time_s": round(time.monotonic() - started, 1),
        "spend_mismatches": 0,
        "dlq_codes": dlq_codes,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    assert feed.produced >= EVENTS and len(recovery) >= KILLS


def _last(c: Collector) -> dict[tuple[str, str], str]:
    last: dict[tuple[str, str], str] = {}
    for rec in c.values():
        last[(rec.campaign_id, rec.channel.value)] = rec.state.value
    return last
