"""The worker's Kafka consumer: faust's aiokafka consumer, made to hand each input
partition's records to the agents in offset order, without holes, across rebalances and
table recoveries.

Why: the offset high-water mark inside a campaign's value (:mod:`.stored`) skips every
record at or below it as already applied. That is exact only if a partition's records
reach the agents in offset order: a record that is skipped over and delivered later, or
never, is lost -- its spend is missing, while later records advanced the mark. faust
0.15 breaks that order in three places when it resumes the streams after a rebalance or
a table recovery:

1. It resumes fetching the input partitions *before* it seeks them back to their
   committed offsets. Records fetched from the old position (past the records it dropped
   when the partitions were revoked) reach the agents first, and the seek then delivers
   the skipped ones after them, below the mark.
2. It clears the agents' buffers when it resumes its flow control, *after* that seek:
   records delivered in between are dropped without being acknowledged, and faust's
   commit does not stop at such a hole right after its committed offset.
3. The Kafka client seeks only partitions whose committed offset is above 0, so a
   partition the group never committed (a new deployment, a worker killed before its
   first commit there) keeps a fetch position past the records faust dropped.

This consumer holds the input partitions faust resumes until faust resumes its flow
(after the buffers are cleared), and then sets each one to the position found by the
seek: its committed offset, or its earliest offset when it has none (where the
``earliest`` reset policy starts anyway). Records already applied come round again and
are no-ops; none is skipped.

It also bounds how long the broker may hold a fetch (:class:`ConsumerThread`), and
commits nothing once a write was refused (:mod:`.deliveries`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, cast

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode import Service, ServiceT

from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.deliveries import delivery_watch
from pacer_stream.streams.intake import BulkTopic, bulk_topics

log = get_logger("pacer_stream.consumer")


def uncommitted(committed: Mapping[TP, int | None]) -> list[TP]:
    """The partitions with no committed offset to seek to (none, or 0: the Kafka client
    seeks only offsets above 0)."""
    return sorted((tp for tp, offset in committed.items() if not offset), key=_order)


def _order(tp: TP) -> tuple[str, int]:
    return tp.topic, tp.partition


class Consumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer that resumes input partitions only once faust's flow is
    resumed, each at the position its last seek found (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Input partitions faust resumed that this consumer has not resumed yet.
        self._held: set[TP] = set()
        #: Where each input partition is read from when it is resumed.
        self._start_at: dict[TP, int] = {}

    def _inputs(self, tps: Iterable[TP]) -> set[TP]:
        changelogs = self.app.tables.changelog_topics
        return {tp for tp in tps if tp.topic not in changelogs}

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        inputs = self._inputs(tps)
        self._held |= inputs
        if tps - inputs:
            super().resume_partitions(tps - inputs)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        self._held -= tps
        super().pause_partitions(tps)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        inputs = self._inputs(committed)
        start_at = {tp: offset for tp, offset in committed.items() if tp in inputs and offset}
        missing = [tp for tp in uncommitted(committed) if tp in inputs]
        if missing and self.app.conf.consumer_auto_offset_reset == "earliest":
            earliest = await self.earliest_offsets(*missing)
            start_at.update((tp, earliest[tp]) for tp in missing)
            log.info(
                "uncommitted_partitions_read_from_earliest",
                partitions={f"{tp.topic}:{tp.partition}": earliest[tp] for tp in missing},
            )
        for tp in inputs:  # a position found by an earlier seek is not used again
            self._start_at.pop(tp, None)
        self._start_at.update(start_at)
        return committed

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit, unless a write was refused (:mod:`.deliveries`): its input must be
        read again by the restarted worker."""
        watch = delivery_watch(self.app)
        if watch is not None:
            await asyncio.sleep(0)  # the flush just ended: let delivery callbacks run
            if watch.refuses_commits():
                log.error("commit_refused_after_failed_delivery", error=repr(watch.failure))
                return False
        committed: bool = await super()._commit(offsets)
        return committed

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_flow(self) -> None:
        super().resume_flow()
        if not self._held:
            return
        tps = self._held & set(self.assignment())
        self._held = set()
        for tp in sorted(tps, key=_order):
            offset = self._start_at.get(tp)
            if offset is not None:
                self._thread.seek(tp, offset)
                self._read_offset[tp] = offset if offset else None
        super().resume_partitions(tps)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - Kafka
        """faust's fetch loop (same offsets, gaps, commits and flow control), except
        that the records of a bulk topic (:mod:`.intake`) are not delivered one by one:
        each fetch's records of such a topic are queued for its agent as one list."""
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        bulk = bulk_topics(self.app)
        yield_every = 100
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                ait: AsyncIterator[tuple[TP, Message]] = getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                fetched: dict[str, list[Message]] = {}
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > yield_every:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (faust drops it the same way)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if tp.topic in bulk:
                        fetched.setdefault(tp.topic, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                for topic, records in fetched.items():
                    await self._hand_over(bulk[topic], records)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            log.exception("drain_messages_failed", error=repr(exc))
            raise

    async def _hand_over(self, topic: BulkTopic, records: list[Message]) -> None:
        """Queue one fetch's records for the topic's agent; while its queue is full,
        wait for room unless faust suspends the flow (then they are dropped, as faust
        drops a record it could not deliver before a rebalance, and read again from the
        committed offset)."""
        if not self.flow_active:
            return
        if not topic.full():
            topic.put_nowait(records)
            return
        await self.wait_first(topic.put(records), self.suspend_flow.wait())


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's Kafka client thread, paced by the app's
    :class:`~pacer_stream.fetch_pace.FetchPace`: its idle wait instead of faust's fixed
    1,500 ms from the start, and fuller fetches while records flow once started.

    Why: the Kafka client keeps one fetch in flight per broker and sends it only for the
    partitions whose records it does not still buffer. When the agents are still taking
    the last fetch's spend records, the next fetch covers only the idle topics; the
    broker holds it until ``fetch_max_wait_ms`` passes, and spend events or requests that
    arrive meanwhile wait behind it. Measured with 5,000 single records/s and with
    can-spend requests at 2,000/s, that wait was the lag (seconds) and the timeouts."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        pace = getattr(self.app, "fetch_pace", None)
        if pace is not None:
            # faust passes a constant to the client's constructor; the client reads this
            # attribute when it starts its fetcher.
            consumer._fetch_max_wait_ms = pace.idle_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        pace = getattr(self.app, "fetch_pace", None)
        if pace is not None:
            pace.attach(self._consumer._fetcher)


class Transport(aiokafka_driver.Transport):
    """The aiokafka transport with the worker's :class:`Consumer`."""

    Consumer = Consumer
