"""Stream benchmark: the faust worker against a plain aiokafka loop, same run, same work.

What is measured (targets: docs/targets.md), on throwaway topics of the given broker:

1. **Throughput on a backlog.** ``n_events`` spend events for ``n_campaigns`` configured
   campaigns are produced while no consumer runs; then the consumer starts and the
   events/s between the first and the last *applied* event is measured. "Applied" is
   read from each consumer's changelog: a batch of input records writes each touched
   campaign's table value once, whose offset high-water mark names the campaign's last
   spend record in the batch (so it covers that campaign's earlier records on the
   partition too), and the changelog record's timestamp is when it was written. The
   faust worker is a real ``python -m pacer_stream worker`` subprocess (restarted after
   the budgets were applied, so its table is recovered from the changelog first -- the
   restart time is reported too). The baseline is a plain aiokafka consume ->
   ``Processor.handle`` -> produce outputs -> one id record and one value per campaign
   the fetched batch touched -> commit loop in this process: the same decoding, engine
   work, serialisation and produce as the worker, minus faust. The worker's CPU time
   over the same span, per event, is reported beside its rate (``cpu_us_per_event``):
   on cores it shares with the broker and this process, the rate also counts the time
   it waited for a core.
2. **End-to-end lag.** Events produced at a fixed rate (``live_rate``, the same for both)
   for ``live_seconds`` by a producer configured as our client's
   (:data:`~pacer_stream.client.kafka.PRODUCER_SETTINGS`: no linger in the Kafka
   client, which would count in the lag); lag = apply time - produce time, per event;
   p50/p99. The apply
   time is that of the first changelog record showing the event applied: the event-id
   record of the batch that applied it, or a value covering it (the worker writes a busy
   campaign's value at most once per ``value_write_interval_s``; its id records go out
   as each batch is applied, one per campaign and batch, keyed by the offset of the
   campaign's last record in the batch, so that record stands for the campaign's earlier
   records of the batch too).
3. **Can-spend round trip.** ``PacerClient.can_spend`` through the worker at fixed
   request rates (250/s to 4,000/s by default) for ``request_seconds`` each: p50/p99 of
   the round trip (request produced, decided, reply consumed), timeouts counted, and the
   highest rate held with p99 <= 50 ms (the top rates lie past the goal of 3,000/s, so
   the figure is a measured ceiling, not the end of the list). A step's achieved rate
   is the rate the client sent at, from its first request to its last. Target p99 <= 20
   ms at 1,000/s.
   Grants are never settled; the campaigns' reservation TTL is 5 s so the number of live
   holds stays steady. At the very end (after the batched records, so no later phase
   reads its spend), once more at ``mixed_rates[0]`` requests/s while the worker
   applies ``mixed_rates[1]`` spend events/s from ``SpendPublisher`` (200 campaigns of
   their own, spending from a second before the requests): the round trip of a worker
   that carries spend too (no target; docs/capacity.md reads it). Beside the worker's
   steps, the floor of any request/reply through this broker at that moment: two
   servers that only answer ``ok`` (:mod:`.peers`, a faust echo agent and a plain
   aiokafka echo loop), timed by the same client at ``floor_rates`` (1,000 and 3,000/s)
   on topics of their own, so a worker's p99 reads against what Kafka and faust alone
   cost in the same minute.

4. **Batched records.** After the peers, ``batch_events`` spend events published through
   :class:`~pacer_stream.client.publisher.SpendPublisher` (per campaign, 5 ms linger,
   the wire limits) as a backlog for the worker (events/s, each record weighted by the
   events it carries), then at ``batch_live_rate`` events/s for the lag (per record,
   plus the linger as the bound of an event's wait for its batch). These events go to
   ``n_campaigns`` campaigns of their own, configured at the start and idle until then:
   the can-spend phase turns the first set into campaigns that reserve, whose spend
   naming no reservation is unasked spend that the runaway rules examine event by event,
   a slower path than the single-event backlog took. Both record shapes are measured on
   the same work. The plain loop's phase produced single-event records while the worker
   was stopped; the worker applies them before the batched backlog is produced, so the
   batched figures count batched records only (``events_handled``, the worker's own
   count of spend events over a backlog, is the phase's events and no others).

A phase's changelog reader runs on the cores the worker is measured on: it starts at
the changelog's end from before the phase's records were produced and decodes only the
values of campaigns with records still pending.

The whole sequence runs ``runs`` times (``pacer-stream bench --stream-runs``, 3 by
default), each on fresh topics with fresh worker processes; the figures reported are the
medians over the runs, each ratio computed within its own run first
(:func:`~pacer_stream.bench.repeats.median_of`), and ``per_run`` keeps every run's own.

Every fixed-rate phase (the lags, the round trips) runs with this process's heap frozen
(``_frozen_heap``), so a full garbage collection over the earlier phases' bookkeeping
does not stall the sender or the client mid-phase and read as the worker's latency.

Timestamps are Kafka ``CreateTime`` values set by the producing clients on this machine
(millisecond resolution), so lags under ~1 ms read as 0-1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pacer_stream.bench.repeats import median_of, range_of
from pacer_stream.bench.worker_process import (
    WorkerProcess,
    create_bench_topics,
    delete_topics,
    free_port,
    worker_env,
)
from pacer_stream.client.kafka import PRODUCER_SETTINGS
from pacer_stream.client.publisher import SpendPublisher
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.streams import event_ids
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.event_ids import EventIdIndex
from pacer_stream.streams.heap import freeze_startup_objects
from pacer_stream.streams.names import TopicNames
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.side_records import is_side_key
from pacer_stream.wire import records, topics

UNIT = 1_000_000
RESERVATION_TTL_S = 5
CHANNELS = (ChannelType.GOOGLE_ADS, ChannelType.FACEBOOK_ADS, ChannelType.DISPLAY)
#: Key of the spend topic's high-water mark inside a stored campaign value.
_SPEND_HWM = topics.SPEND


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(_pct(values, 0.50), 3),
        "p99_ms": round(_pct(values, 0.99), 3),
        "max_ms": round(max(values), 3) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values), 3) if values else float("nan"),
    }


async def _produce_budgets(
    producer: AIOKafkaProducer, names: TopicNames, campaigns: list[str]
) -> None:
    now = datetime.now(UTC)
    futs = []
    for cid in campaigns:
        cfg = CampaignConfig(
            cid,
            {c: ChannelConfig(1_000_000 * UNIT) for c in CHANNELS},
            PacingStrategy.EVEN_DISTRIBUTION,
            # The benchmark never settles its reservations; a short TTL keeps the live
            # holds per campaign at a steady, realistic level (bidders settle in seconds).
            thresholds=Thresholds(reservation_ttl_s=RESERVATION_TTL_S),
        )
        payload = records.encode_budget(cfg, updated_at=now)
        futs.append(await producer.send(names.budgets, payload, key=cid.encode()))
    await asyncio.gather(*futs)


def _spend_payloads(campaigns: list[str], n: int, tag: str) -> list[tuple[bytes, bytes]]:
    """Pre-encoded spend events (encoding is not part of the measured work)."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        cid = campaigns[i % len(campaigns)]
        event = SpendEvent(
            f"{tag}-{i}", cid, CHANNELS[i % len(CHANNELS)], 1_000 + i % 997, now, clicks=1
        )
        out.append((cid.encode(), records.encode_spend(event)))
    return out


#: A produced spend record: (partition, offset, key). Keys matter because the worker
#: writes a campaign's value once per batch of input records, so the value's offset
#: high-water mark names only the last record of that campaign in the batch; every
#: earlier record of the campaign on that partition was applied by the same write.
RecordId = tuple[int, int, bytes]


async def _produce_all(
    producer: AIOKafkaProducer, topic: str, items: Iterable[tuple[bytes, bytes]]
) -> dict[RecordId, int]:
    """Produce as fast as possible; returns record id -> CreateTime (ms)."""
    keyed = list(items)
    futs = [await producer.send(topic, value, key=key) for key, value in keyed]
    metas = await asyncio.gather(*futs)
    pairs = zip(keyed, metas, strict=True)
    return {(m.partition, m.offset, key): m.timestamp for (key, _), m in pairs}


#: The fixed-rate loops send at once what falls due within this long: a sleep for every
#: event (5,000 a second) cost this process more CPU than the sending itself, CPU the
#: worker under test shares on a small machine. Lag is timed from each record's own
#: produce time, so sending up to a tick early does not shorten it.
PACE_TICK_S = 0.002


async def _pace(start: float, i: int, rate: float) -> None:
    """Wait until the ``i``-th send at ``rate``/s from loop time ``start`` is due (no
    drift: the schedule is absolute), unless it is due within :data:`PACE_TICK_S`."""
    delay = start + i / rate - asyncio.get_running_loop().time()
    if delay > PACE_TICK_S:
        await asyncio.sleep(delay)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Run a timed phase with this process's heap frozen, as the worker freezes its
    start-up objects (``streams/heap.py``).

    By the timed phases this process holds the earlier phases' records and their
    bookkeeping (hundreds of thousands of tracked objects); a full collection walking
    them pauses the sending loop and the client for tens of milliseconds, which would
    read as the worker's lag or round-trip time (a scratch run of 1,000 requests/s with
    300,000 such objects alive: p99 38 ms, max 76; frozen, 28 and 42)."""
    freeze_startup_objects()
    try:
        yield
    finally:
        gc.unfreeze()


async def _produce_at_rate(
    producer: AIOKafkaProducer,
    topic: str,
    items: list[tuple[bytes, bytes]],
    rate: float,
) -> dict[RecordId, int]:
    """Produce ``items`` at ``rate`` per second (schedule-driven, no drift)."""
    futs = []
    with _frozen_heap():
        start = asyncio.get_running_loop().time()
        for i, (key, value) in enumerate(items):
            await _pace(start, i, rate)
            futs.append(await producer.send(topic, value, key=key))
        metas = await asyncio.gather(*futs)
    pairs = zip(items, metas, strict=True)
    return {(m.partition, m.offset, key): m.timestamp for (key, _), m in pairs}


class Applied(dict[RecordId, int]):
    """Record id -> CreateTime (ms) of the changelog write that applied it, plus the
    bytes (key + value) of the changelog writes that applied at least one of them."""

    changelog_bytes: int = 0


async def _changelog_ends(bootstrap: str, changelog: str) -> dict[int, int]:
    """Partition -> end offset of a changelog now: where a phase's reader starts, so
    it reads only what the worker wrote during the phase."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = consumer.partitions_for_topic(changelog) or set()
        tps = [TopicPartition(changelog, p) for p in partitions]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def _applied_times(
    bootstrap: str,
    changelog: str,
    produced: dict[RecordId, int],
    timeout: float,
    since: dict[int, int] | None = None,
) -> Applied:
    """Read a changelog until every produced spend record is seen applied; returns
    record id -> CreateTime (ms) of the first changelog write that shows it applied:
    its event-id record (written when the worker applied it) or the first value that
    covers it (same partition and campaign, offset high-water mark at or past it).

    The reader runs while the worker is measured, on the same cores: it starts at
    ``since`` (partition -> offset, from :func:`_changelog_ends` before the phase's
    records were produced; the beginning without it) and decodes only the values of
    campaigns with records still pending, so it takes as little CPU from the worker as
    it can (reading every earlier phase's values took a share of a core from the
    batched phase)."""
    pending: dict[tuple[int, bytes], list[int]] = {}
    for partition, offset, key in produced:
        pending.setdefault((partition, key), []).append(offset)
    for offsets in pending.values():
        offsets.sort(reverse=True)  # pop() takes the lowest
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    applied = Applied()
    try:
        consumer.subscribe([changelog])
        deadline = time.monotonic() + timeout
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {changelog} not found")
            await asyncio.sleep(0.05)
        await consumer.seek_to_beginning(*consumer.assignment())
        for tp in consumer.assignment():
            if since and tp.partition in since:
                consumer.seek(tp, since[tp.partition])
        while len(applied) < len(produced):
            if time.monotonic() > deadline:
                missing = len(produced) - len(applied)
                raise TimeoutError(f"{missing} events not applied within {timeout}s")
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, msgs in batches.items():
                for m in msgs:
                    if m.value is None or m.key is None:
                        continue
                    if is_side_key(m.key):
                        # An event-id record counts with the spend record it came from;
                        # grant records are the can-spend phase's.
                        if event_ids.is_id_key(m.key):
                            cid, _, offset = event_ids.split_key(m.key)
                            key = cid.encode()
                            if (tp.partition, offset, key) in produced:
                                applied.changelog_bytes += len(m.key) + len(m.value)
                            # Written when the worker applied the batch whose last
                            # record of this campaign is at ``offset``: every earlier
                            # record of the campaign on the partition was applied by
                            # then (in this batch or before; the value covering them
                            # may follow up to the value write interval later).
                            _pop_through(pending, applied, tp.partition, key, offset, m.timestamp)
                        continue
                    waiting = pending.get((tp.partition, m.key))
                    if not waiting:
                        continue
                    hwm = _spend_hwm(m.value)
                    if hwm is None:
                        continue
                    if waiting[-1] <= hwm:
                        applied.changelog_bytes += len(m.key) + len(m.value)
                    _pop_through(pending, applied, tp.partition, m.key, hwm, m.timestamp)
    finally:
        await consumer.stop()
    return applied


def _pop_through(
    pending: dict[tuple[int, bytes], list[int]],
    applied: Applied,
    partition: int,
    key: bytes,
    offset: int,
    timestamp: int,
) -> None:
    """Mark the campaign's pending records at or below ``offset`` applied at
    ``timestamp`` (``pending`` lists are sorted high to low)."""
    offsets = pending.get((partition, key))
    while offsets and offsets[-1] <= offset:
        applied.setdefault((partition, offsets.pop(), key), timestamp)


def _spend_hwm(value: bytes) -> int | None:
    obj = orjson.loads(stored_codec.json_of(value))
    offsets = obj.get("s", {}).get("o", {})
    hwm = offsets.get(_SPEND_HWM)
    return int(hwm) if hwm is not None else None


def _throughput(
    applied: dict[RecordId, int], since_s: float, sizes: dict[RecordId, int] | None = None
) -> float:
    """Events/s from ``since_s`` (epoch seconds: when the consumer started on the
    backlog) to the last applied record, each record counted by the events it carries
    (``sizes``; one each without it). Timed from the start, not from the first applied
    record: a worker that takes its backlog in a few large batches would otherwise be
    credited with one batch's work for free."""
    span_s = max(max(applied.values()) / 1000.0 - since_s, 1e-3)
    events = sum(sizes[k] for k in applied) if sizes is not None else len(applied)
    return events / span_s


def _cpu_us_per_event(before: float | None, after: float | None, events: int) -> float | None:
    """The worker's CPU per event of a backlog (µs): what it used from its readiness until
    this process had read the backlog's last write (read while the worker writes, so the
    idle tail is short); None where ``/proc`` is not there to read."""
    if before is None or after is None or events <= 0:
        return None
    return round((after - before) / events * 1e6, 1)


def _lags(produced: dict[RecordId, int], applied: dict[RecordId, int]) -> list[float]:
    return [float(applied[k] - produced[k]) for k in produced]


async def _publish_batched(
    producer: AIOKafkaProducer,
    topic: str,
    campaigns: list[str],
    n: int,
    tag: str,
    rate: float | None = None,
    linger_s: float = 0.005,
) -> tuple[dict[RecordId, int], dict[RecordId, int]]:
    """Publish ``n`` spend events through :class:`SpendPublisher` (the client's batching:
    per campaign, ``linger_s``, wire limits), as fast as possible or at ``rate`` events/s.

    Returns (partition, offset) of each batched record -> its CreateTime (ms), and ->
    the number of events it carries."""
    created: dict[RecordId, int] = {}
    sizes: dict[RecordId, int] = {}

    async def send(topic: str, key: bytes, value: bytes) -> None:
        meta = await (await producer.send(topic, value, key=key))
        created[(meta.partition, meta.offset, key)] = meta.timestamp
        # Our own encoder writes the field name once per event (a string value cannot
        # contain it unescaped), so this counts the record's events without decoding.
        sizes[(meta.partition, meta.offset, key)] = value.count(b'"event_id":')

    publisher = SpendPublisher(send, topic, linger_s=linger_s)
    now = datetime.now(UTC)
    with _frozen_heap() if rate is not None else contextlib.nullcontext():
        start = asyncio.get_running_loop().time()
        for i in range(n):
            if rate is not None:
                await _pace(start, i, rate)
            cid = campaigns[i % len(campaigns)]
            publisher.publish(
                SpendEvent(f"{tag}-{i}", cid, CHANNELS[i % len(CHANNELS)], 1_000 + i % 997, now)
            )
        await publisher.flush()
    return created, sizes


class PlainLoop:
    """The baseline: aiokafka consume -> Processor.handle -> produce outputs, then each
    campaign the fetched batch touched writes its event-id record and its value to a
    changelog once -> commit (after a flush: at-least-once). The worker's durable work
    per batch, without faust and without its deferral of value writes."""

    def __init__(self, bootstrap: str, names: TopicNames, changelog: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.changelog = changelog
        self.group = group
        self.processor = Processor(names=names)
        self.table: dict[str, stored_codec.Stored] = {}
        self.event_ids = EventIdIndex(changelog)
        self.spend_seen = 0
        #: Wall-clock time (epoch seconds) the first spend record was handled.
        self.first_spend_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def _lookup(self, campaign_id: str) -> stored_codec.Stored | None:
        value = self.table.get(campaign_id)
        if value is not None:
            self.event_ids.attach(value)
        return value

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.names.budgets,
            self.names.spend,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0)
        await consumer.start()
        await producer.start()
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                touched: dict[str, tuple[stored_codec.Stored, int, str, int]] = {}
                for msgs in batches.values():
                    for m in msgs:
                        await self._handle(
                            producer, m.topic, m.partition, m.offset, m.key, m.value, touched
                        )
                await self._write(producer, touched)
                if time.monotonic() - last_commit > 1.0:
                    await producer.flush()
                    await consumer.commit()
                    last_commit = time.monotonic()
        finally:
            await producer.flush()
            with contextlib.suppress(Exception):
                await consumer.commit()
            await consumer.stop()
            await producer.stop()

    async def _handle(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        touched: dict[str, tuple[stored_codec.Stored, int, str, int]],
    ) -> None:
        result = self.processor.handle(topic, partition, offset, key, value, self._lookup)
        # ``send`` only waits for room in the batch accumulator, not for delivery (the
        # flush before each commit does that): the same contract as faust's send_soon.
        for out in result.messages:
            await producer.send(out.topic, out.value, key=out.key)
        if result.store is not None:
            self.table[result.store.campaign_id] = result.store
            self.event_ids.attach(result.store)
            logical = self.names.logical(topic) or topic
            touched[result.store.campaign_id] = (result.store, offset, logical, partition)
        if topic == self.names.spend:
            if not self.spend_seen:
                # The consumer's group join is not part of its rate.
                self.first_spend_at = time.time()
            self.spend_seen += 1

    async def _write(
        self,
        producer: AIOKafkaProducer,
        touched: dict[str, tuple[stored_codec.Stored, int, str, int]],
    ) -> None:
        """Each touched campaign's id record (keyed by its last input offset of the
        batch) and then its value, as the worker writes them."""
        for store, offset, logical, partition in touched.values():
            for write in self.event_ids.writes(store, offset, logical):
                await producer.send(self.changelog, write.value, key=write.key, partition=partition)
            await producer.send(
                self.changelog,
                stored_codec.dumps(store),
                key=store.campaign_id.encode(),
                partition=partition,
            )


async def _can_spend_round_trips(
    bootstrap: str, prefix: str, campaigns: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    from pacer_stream.client.kafka import PacerClient

    latencies: list[float] = []
    timeouts = 0
    codes: dict[str, int] = {}
    async with PacerClient(bootstrap, topic_prefix=prefix) as client:
        # warm-up: start the replies consumer and the worker's hot paths
        for cid in campaigns[:20]:
            await client.can_spend(cid, "google_ads", 1_000, timeout_s=10)
        n = int(rate * seconds)
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            nonlocal timeouts
            t0 = time.perf_counter()
            try:
                reply = await client.can_spend(
                    campaigns[i % len(campaigns)], "google_ads", 1_000, timeout_s=2.0
                )
            except TimeoutError:
                timeouts += 1
                return
            latencies.append((time.perf_counter() - t0) * 1000.0)
            codes[reply.code.value] = codes.get(reply.code.value, 0) + 1

        with _frozen_heap():
            start = loop.time()
            tasks = []
            for i in range(n):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            achieved = _sending_rate(n, loop.time() - start)
            await asyncio.gather(*tasks)
    return {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(achieved, 1),
        "requests": n,
        "timeouts": timeouts,
        "codes": codes,
        **_summary_ms(latencies),
        "target_p99_ms": 20.0,
    }


async def _can_spend_with_spend(
    bootstrap: str,
    prefix: str,
    names: TopicNames,
    producer: AIOKafkaProducer,
    live_producer: AIOKafkaProducer,
    worker: WorkerProcess,
    campaigns: list[str],
    rates: tuple[float, float],
    seconds: float,
) -> dict[str, Any]:
    """Can-spend round trips at ``rates[0]`` requests/s while the same worker applies
    ``rates[1]`` spend events/s (``SpendPublisher``, to campaigns of their own,
    configured for this step and spending for a second before the requests start): a
    bid engine's view of a worker that also carries its ad platforms' spend. No
    target; the capacity plan reads it."""
    request_rate, spend_rate = rates
    spenders = [f"bench-m{i}" for i in range(len(campaigns))]
    await _produce_budgets(producer, names, spenders)
    await _wait_configured(worker, spenders)
    spending = asyncio.create_task(
        _publish_batched(
            live_producer,
            names.spend,
            spenders,
            int(spend_rate * (seconds + 2)),
            "mixed",
            rate=spend_rate,
        )
    )
    try:
        await asyncio.sleep(1.0)
        trips = await _can_spend_round_trips(bootstrap, prefix, campaigns, request_rate, seconds)
    finally:
        await spending
    return {**trips, "spend_rate_per_s": spend_rate}


#: The answer-only servers of :func:`_can_spend_floor` (:mod:`.peers` kinds), with the
#: label the terminal table gives each.
ECHO_SERVERS = {"faust-echo": "faust echo agent", "plain-echo": "plain aiokafka echo"}


def _echo_names(prefix: str, kind: str) -> TopicNames:
    return TopicNames(f"{prefix}{kind}.")


async def _create_echo_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """The echo servers' request and reply topics, made with the run's others: a topic
    made just before its first use has no leader known to every client yet, and the
    client's first offset lookups then fail (logged, retried)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        pairs = [_echo_names(prefix, kind) for kind in ECHO_SERVERS]
        await admin.create_topics(
            [NewTopic(t, partitions, 1) for names in pairs for t in (names.requests, names.replies)]
        )
    finally:
        await admin.close()


async def _can_spend_floor(
    bootstrap: str,
    prefix: str,
    campaigns: list[str],
    rates: tuple[float, ...],
    seconds: float,
) -> dict[str, Any]:
    """The round trip of servers that only answer (:mod:`.peers`: a faust agent and a
    plain aiokafka loop replying ``ok`` at once), timed by the same client at ``rates``
    on the same broker, each on two topics of its own (:func:`_create_echo_topics`):
    what any request/reply through Kafka costs on this machine at that moment, beside
    the worker's figures. A step of 500/s for a second first warms the server and the
    client up (not reported), as the worker's lower steps warm it up before its
    1,000/s one."""
    floors: dict[str, Any] = {}
    for kind in ECHO_SERVERS:
        names = _echo_names(prefix, kind)
        proc = await _start_peer(
            kind, bootstrap, names.requests, names.replies, f"{prefix}{kind}", reports=False
        )
        try:
            await _can_spend_round_trips(bootstrap, names.prefix, campaigns, 500.0, 1.0)
            floors[kind] = [
                await _can_spend_round_trips(bootstrap, names.prefix, campaigns, rate, seconds)
                for rate in rates
            ]
        finally:
            proc.kill()
            await proc.wait()
    return floors


def _sending_rate(n: int, span_s: float) -> float:
    """Requests per second the client sent: ``n`` requests, the first at the start and
    the last ``span_s`` later. The replies still outstanding then are not part of the
    rate (they are the round trips measured), so a step that sends exactly at its rate
    reads its rate, not a little less by its last round trip."""
    if n < 2 or span_s <= 0:
        return float(n)
    return (n - 1) / span_s


def _highest_rate_held(round_trips: list[dict[str, Any]], p99_ms: float) -> float | None:
    """The highest request rate achieved with zero timeouts and p99 within ``p99_ms``
    (None when even the lowest rate missed): the Kafka path's crossover to the Redis
    fast path."""
    held = [
        float(r["achieved_rate_per_s"])
        for r in round_trips
        if r["timeouts"] == 0
        and r.get("p99_ms") is not None
        and r["p99_ms"] <= p99_ms
        and r["achieved_rate_per_s"] >= 0.95 * r["target_rate_per_s"]
    ]
    return max(held) if held else None


async def run(
    bootstrap: str = "127.0.0.1:9092",
    *,
    n_events: int = 20_000,
    n_campaigns: int = 200,
    partitions: int = 4,
    live_rate: float | None = None,
    live_seconds: float = 5.0,
    request_rates: tuple[float, ...] = (
        250.0,
        500.0,
        1_000.0,
        2_000.0,
        3_000.0,
        3_500.0,
        4_000.0,
    ),
    request_seconds: float = 5.0,
    mixed_rates: tuple[float, float] = (1_000.0, 2_000.0),
    floor_rates: tuple[float, ...] = (1_000.0, 3_000.0),
    batch_events: int = 200_000,
    batch_live_rate: float = 5_000.0,
    workdir: Path | None = None,
    runs: int = 1,
) -> dict[str, Any]:
    """Run the stream benchmark on ``bootstrap`` ``runs`` times (each on fresh topics and
    workers); returns the median of every figure over the runs (:mod:`.repeats`), with
    ``runs`` and each run's own figures in ``per_run`` (see module doc).

    ``live_rate`` (events/s for the lag measurement) defaults to half the faust worker's
    measured backlog throughput, capped at 1,000/s, so lag is measured below saturation
    on any machine; the same rate is used for the plain loop."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    results = []
    with _quiet_logs():
        for i in range(runs):
            results.append(
                await _run(
                    bootstrap,
                    n_events=n_events,
                    n_campaigns=n_campaigns,
                    partitions=partitions,
                    live_rate=live_rate,
                    live_seconds=live_seconds,
                    request_rates=request_rates,
                    request_seconds=request_seconds,
                    mixed_rates=mixed_rates,
                    floor_rates=floor_rates,
                    batch_events=batch_events,
                    batch_live_rate=batch_live_rate,
                    workdir=workdir / f"run-{i}" if workdir is not None else None,
                )
            )
    return {**median_of(results), "runs": runs, "per_run": results}


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The in-process plain loop logs like the worker (every budget applied); keep the
    benchmark's terminal output to warnings while it runs."""
    import logging

    import structlog

    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**old)


async def _run(
    bootstrap: str,
    *,
    n_events: int,
    n_campaigns: int,
    partitions: int,
    live_rate: float | None,
    live_seconds: float,
    request_rates: tuple[float, ...],
    request_seconds: float,
    mixed_rates: tuple[float, float],
    floor_rates: tuple[float, ...],
    batch_events: int,
    batch_live_rate: float,
    workdir: Path | None,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}."
    app_id = f"pacer-bench-{run_id}"
    names = TopicNames(prefix)
    plain_changelog = f"{prefix}plain-campaigns-changelog"
    await create_bench_topics(
        bootstrap, prefix=prefix, app_id=app_id, partitions=partitions, compacted=plain_changelog
    )
    await _create_echo_topics(bootstrap, prefix, partitions)

    tmp = Path(workdir or tempfile.mkdtemp(prefix="pacer-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = worker_env(
        bootstrap=bootstrap,
        prefix=prefix,
        app_id=app_id,
        partitions=partitions,
        port=port,
        data_dir=tmp / "worker-data",
    )
    campaigns = [f"bench-c{i}" for i in range(n_campaigns)]
    # The batched phase's own campaigns, idle until then (the module's docstring, 4.).
    batch_campaigns = [f"bench-b{i}" for i in range(n_campaigns)]
    worker = WorkerProcess(env, port, tmp / "worker.log")
    # Backlogs are produced in bulk (their production is not timed); the fixed-rate
    # phases, whose lag starts at each record's produce time, produce as our client does.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    live_producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_SETTINGS)
    await live_producer.start()
    result: dict[str, Any] = {
        "n_events": n_events,
        "n_campaigns": n_campaigns,
        "channels": len(CHANNELS),
        "partitions": partitions,
    }
    try:
        # --- faust worker: configure, stop, backlog, restart ---------------------------
        worker.start()
        await worker.wait_ready()
        await _produce_budgets(producer, names, campaigns + batch_campaigns)
        await _wait_configured(worker, campaigns + batch_campaigns)
        worker.stop()
        changelog = f"{app_id}-campaigns-changelog"
        backlog = _spend_payloads(campaigns, n_events, "b")
        since = await _changelog_ends(bootstrap, changelog)
        produced = await _produce_all(producer, names.spend, backlog)
        t0 = worker.start()
        ready_at = await worker.wait_ready()
        restart_s = time.monotonic() - t0
        cpu_at_ready = worker.cpu_seconds()
        applied = await _applied_times(bootstrap, changelog, produced, 600, since)
        cpu_per_event = _cpu_us_per_event(cpu_at_ready, worker.cpu_seconds(), len(produced))
        counted = worker.spend_events_counted()
        faust_rate = _throughput(applied, ready_at)
        if live_rate is None:
            live_rate = max(50.0, min(1_000.0, round(faust_rate / 2, -1)))
        live = _spend_payloads(campaigns, int(live_rate * live_seconds), "lf")
        since = await _changelog_ends(bootstrap, changelog)
        produced_live = await _produce_at_rate(live_producer, names.spend, live, live_rate)
        applied_live = await _applied_times(bootstrap, changelog, produced_live, 600, since)
        result["faust_worker"] = {
            "events_per_s": round(faust_rate, 1),
            "changelog_bytes_per_event": round(applied.changelog_bytes / len(produced), 1),
            "cpu_us_per_event": cpu_per_event,
            "events_handled": counted,
            "restart_to_ready_s": round(restart_s, 2),
            "live_rate_per_s": live_rate,
            "lag": _summary_ms(_lags(produced_live, applied_live)),
        }
        round_trips = [
            await _can_spend_round_trips(bootstrap, prefix, campaigns, rate, request_seconds)
            for rate in request_rates
        ]
        result["can_spend_round_trip"] = round_trips
        result["can_spend_highest_rate_p99_50ms"] = _highest_rate_held(round_trips, 50.0)
        result["worker_rss_mib"] = worker.rss_mib()
        worker.stop()
        result["can_spend_floor"] = await _can_spend_floor(
            bootstrap, prefix, campaigns, floor_rates, request_seconds
        )

        # --- plain aiokafka loop on the same topics (its own group and changelog) ------
        # The loop runs in this process: the changelog is read only after it is done
        # (timestamps are set when written), so reading never competes with it.
        plain = PlainLoop(bootstrap, names, plain_changelog, f"{app_id}-plain")
        all_spend = {**produced, **produced_live}
        await plain.start()
        await _wait_count(lambda: plain.spend_seen, len(all_spend), timeout=600)
        live2 = _spend_payloads(campaigns, int(live_rate * live_seconds), "lp")
        since = await _changelog_ends(bootstrap, plain_changelog)
        produced_live2 = await _produce_at_rate(live_producer, names.spend, live2, live_rate)
        await _wait_count(lambda: plain.spend_seen, len(all_spend) + len(live2), timeout=600)
        await plain.stop()
        applied_plain = await _applied_times(bootstrap, plain_changelog, all_spend, timeout=600)
        plain_rate = _throughput({k: applied_plain[k] for k in all_spend}, plain.first_spend_at)
        applied_live2 = await _applied_times(bootstrap, plain_changelog, produced_live2, 600, since)
        result["plain_loop"] = {
            "events_per_s": round(plain_rate, 1),
            "live_rate_per_s": live_rate,
            "lag": _summary_ms(_lags(produced_live2, applied_live2)),
        }
        result["faust_vs_plain"] = round(faust_rate / plain_rate, 3) if plain_rate else None
        result["target_faust_vs_plain"] = 0.5

        # --- peers on the same backlog (every spend record produced so far) ------------
        total = len(all_spend) + len(live2)
        peers: dict[str, Any] = {}
        for kind in ("faust", "quix"):
            peers[kind] = await _peer(kind, bootstrap, names.spend, f"{app_id}-{kind}", total)
        result["peers"] = peers
        trivial = peers["faust"].get("events_per_s")
        result["faust_vs_trivial_agent"] = (
            round(faust_rate / trivial, 3) if isinstance(trivial, float) and trivial else None
        )
        result["target_faust_vs_trivial_agent"] = 0.8

        # --- our worker on batched records from our client -------------------------------
        # After the peers (they read single-event records only): a backlog of batched
        # records, then a fixed-rate run for the lag. Lag is per record (changelog write
        # - CreateTime) plus the publisher's linger, an upper bound of how long an event
        # waited for its batch. The worker first applies what the plain loop's phase
        # produced while it was stopped (the single-event records of ``live2``), so the
        # batched figures count batched records only.
        since = await _changelog_ends(bootstrap, changelog)
        worker.start()
        await worker.wait_ready()
        await _applied_times(bootstrap, changelog, produced_live2, 600, since)
        worker.stop()
        linger_s = 0.005
        since = await _changelog_ends(bootstrap, changelog)
        batch_created, batch_sizes = await _publish_batched(
            producer, names.spend, batch_campaigns, batch_events, "bb", linger_s=linger_s
        )
        t0 = worker.start()
        ready_at = await worker.wait_ready()
        batch_restart_s = time.monotonic() - t0
        cpu_at_ready = worker.cpu_seconds()
        applied_batches = await _applied_times(bootstrap, changelog, batch_created, 600, since)
        batch_cpu_per_event = _cpu_us_per_event(cpu_at_ready, worker.cpu_seconds(), batch_events)
        batch_counted = worker.spend_events_counted()
        batch_rate = _throughput(applied_batches, ready_at, batch_sizes)
        since = await _changelog_ends(bootstrap, changelog)
        live_created, _ = await _publish_batched(
            live_producer,
            names.spend,
            batch_campaigns,
            int(batch_live_rate * live_seconds),
            "bl",
            rate=batch_live_rate,
            linger_s=linger_s,
        )
        applied_live_batches = await _applied_times(bootstrap, changelog, live_created, 600, since)
        batch_lags = [lag + linger_s * 1000 for lag in _lags(live_created, applied_live_batches)]
        result["faust_worker_batched"] = {
            "events": batch_events,
            "records": len(batch_created),
            "events_per_record": round(batch_events / max(1, len(batch_created)), 1),
            "events_per_s": round(batch_rate, 1),
            "changelog_bytes_per_event": round(
                applied_batches.changelog_bytes / max(1, batch_events), 1
            ),
            "cpu_us_per_event": batch_cpu_per_event,
            "events_handled": batch_counted,
            "restart_to_ready_s": round(batch_restart_s, 2),
            "live_rate_per_s": batch_live_rate,
            "lag": _summary_ms(batch_lags),
            "target_events_per_s": 30_000,
            "target_lag_p99_ms": 50.0,
        }
        quix = peers["quix"].get("events_per_s")
        result["batched_vs_quixstreams"] = (
            round(batch_rate / quix, 2) if isinstance(quix, float) and quix else None
        )
        result["worker_rss_mib_batched"] = worker.rss_mib()
        # Last: its spend records would otherwise be in the backlog the later phases read.
        result["can_spend_with_spend"] = await _can_spend_with_spend(
            bootstrap,
            prefix,
            names,
            producer,
            live_producer,
            worker,
            campaigns,
            mixed_rates,
            request_seconds,
        )
        worker.stop()
    finally:
        worker.stop()
        await producer.stop()
        await live_producer.stop()
        await delete_topics(bootstrap, (prefix, app_id))
    return result


async def _start_peer(kind: str, *args: str, reports: bool) -> asyncio.subprocess.Process:
    """A peer (:mod:`.peers`) in a process of its own; its stdout piped when it
    ``reports`` figures there, its stderr dropped (faust's and Kafka's logs)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pacer_stream.bench.peers",
        kind,
        *args,
        stdout=asyncio.subprocess.PIPE if reports else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _peer(
    kind: str, bootstrap: str, topic: str, group: str, count: int, timeout: float = 600
) -> dict[str, Any]:
    """Run one peer (:mod:`.peers`) to ``count`` records; its figures, or why not."""
    if kind == "quix" and importlib.util.find_spec("quixstreams") is None:
        return {"skipped": "quixstreams is not installed (pip install '.[bench]')"}
    proc = await _start_peer(kind, bootstrap, topic, group, str(count), reports=True)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while line := await proc.stdout.readline():
                with contextlib.suppress(ValueError):
                    # faust may put terminal control codes in front of the line
                    report: dict[str, Any] = json.loads(line[line.find(b"{") :])
                    if "events_per_s" in report:
                        return report
        return {"error": f"{kind} peer exited ({proc.returncode}) before {count} records"}
    except TimeoutError:
        return {"error": f"{kind} peer did not handle {count} records in {timeout:.0f}s"}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _wait_count(get: Callable[[], int], target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while get() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {get()} of {target} events processed")
        await asyncio.sleep(0.05)


async def _wait_configured(
    worker: WorkerProcess, campaigns: list[str], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    for cid in campaigns:
        while worker.get(f"/campaigns/{cid}")[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("budgets not applied")
            await asyncio.sleep(0.05)


def show(res: dict[str, Any], print_: Any) -> None:
    """The figures that have targets, as terminal tables (the JSON has them all)."""
    from rich.markup import escape
    from rich.table import Table

    def num(value: Any, fmt: str = ",.0f") -> str:
        return "–" if value is None else format(value, fmt)

    runs = res.get("per_run", [])

    def spread(*path: str | int, fmt: str = ",.0f", sep: str = "\n") -> str:
        """``(lowest-highest)`` of a figure over the runs, after ``sep``, when there were
        several (on a line of its own by default: narrow terminals fold, not cut)."""
        bounds = range_of(runs, path) if len(runs) > 1 else None
        return "" if bounds is None else f"{sep}({num(bounds[0], fmt)}-{num(bounds[1], fmt)})"

    peers = res.get("peers", {})
    each = f"median of {len(runs)} runs (lowest-highest)" if len(runs) > 1 else "one run"
    spend = Table(
        title=f"spend events/s ({res['n_campaigns']} campaigns, same broker; ratios within "
        f"each run; {each})",
        show_edge=False,
    )
    for col, width in (
        ("consumer", None),
        ("events/s", 15),  # room for a range, (10,300-11,701), and "33 µs CPU/event"
        ("lag p50 / p99 ms", None),
        ("changelog B/event", 9),
        ("target", None),
    ):
        spend.add_column(col, justify="right", overflow="fold", min_width=width, max_width=width)
    single, batched = res["faust_worker"], res.get("faust_worker_batched", {})

    def cpu(figures: dict[str, Any]) -> str:
        """The worker's CPU per event on a line of its own, when measured."""
        value = figures.get("cpu_us_per_event")
        return "" if value is None else f"\n{num(value)} µs CPU/event"

    spend.add_row(
        "worker, single-event records",
        num(single["events_per_s"]) + spread("faust_worker", "events_per_s") + cpu(single),
        f"{num(single['lag']['p50_ms'])} / {num(single['lag']['p99_ms'])}"
        f" at {num(single['live_rate_per_s'])}/s{spread('faust_worker', 'lag', 'p99_ms')}",
        num(single.get("changelog_bytes_per_event")),
        f">= 0.8 x trivial agent: {num(res.get('faust_vs_trivial_agent'), '.2f')}"
        + spread("faust_vs_trivial_agent", fmt=".2f"),
    )
    if batched:
        spend.add_row(
            f"worker, batched records ({num(batched['events_per_record'], '.0f')}/record)",
            num(batched["events_per_s"])
            + spread("faust_worker_batched", "events_per_s")
            + cpu(batched),
            f"{num(batched['lag']['p50_ms'])} / {num(batched['lag']['p99_ms'])}"
            f" at {num(batched['live_rate_per_s'])}/s"
            f"{spread('faust_worker_batched', 'lag', 'p99_ms')}",
            num(batched.get("changelog_bytes_per_event")),
            ">= 30,000/s; lag p99 <= 50 ms",
        )
    plain = num(res["plain_loop"]["events_per_s"]) + spread("plain_loop", "events_per_s")
    spend.add_row("plain aiokafka loop, same work", plain, "", "", "")
    for kind, label in (("faust", "trivial faust agent"), ("quix", "quixstreams dedupe + sum")):
        peer = peers.get(kind, {})
        spend.add_row(
            label,
            num(peer.get("events_per_s")) + spread("peers", kind, "events_per_s"),
            "",
            "",
            escape(peer.get("skipped") or ""),
        )
    print_(spend)
    asks = Table(title="can-spend over Kafka (round trip)")
    for col in ("rate/s", "achieved/s", "p50 ms", "p99 ms", "timeouts"):
        asks.add_column(col, justify="right")
    for i, r in enumerate(res["can_spend_round_trip"]):
        asks.add_row(
            num(r["target_rate_per_s"]),
            num(r["achieved_rate_per_s"]),
            num(r.get("p50_ms"), ".1f"),
            num(r.get("p99_ms"), ".1f")
            + spread("can_spend_round_trip", i, "p99_ms", fmt=".1f", sep=" "),
            num(r["timeouts"]),
        )
    print_(asks)
    mixed = res.get("can_spend_with_spend")
    if mixed:
        print_(
            f"can-spend at {num(mixed['target_rate_per_s'])}/s while the worker applies "
            f"{num(mixed['spend_rate_per_s'])} spend events/s: p50 / p99 "
            f"{num(mixed.get('p50_ms'), '.1f')} / {num(mixed.get('p99_ms'), '.1f')} ms"
            f"{spread('can_spend_with_spend', 'p99_ms', fmt='.1f', sep=' ')}, "
            f"{num(mixed['timeouts'])} timeouts"
        )
    for kind, label in ECHO_SERVERS.items():
        steps = res.get("can_spend_floor", {}).get(kind) or []
        if steps:
            figures = ", ".join(
                f"{num(r.get('p99_ms'), '.1f')}"
                f"{spread('can_spend_floor', kind, i, 'p99_ms', fmt='.1f', sep=' ')} ms"
                f" at {num(r['target_rate_per_s'])}/s"
                for i, r in enumerate(steps)
            )
            print_(f"floor, same client and broker: {label} (answers only), p99 {figures}")
    print_(
        "highest request rate held with p99 <= 50 ms and no timeout: "
        f"{num(res.get('can_spend_highest_rate_p99_50ms'))}/s"
        f"{spread('can_spend_highest_rate_p99_50ms', sep=' ')} (target p99 <= 20 ms at 1,000/s)"
    )


def main() -> None:  # pragma: no cover - manual use: python -m pacer_stream.bench.stream_bench
    res = asyncio.run(run(os.environ.get("PACER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["PlainLoop", "run"]
