"""The pacer-stream worker: one faust app whose agents read like the data flow.

::

    pacer.spend.v1 ──────────────► spend_events ─┐
    pacer.budgets.v1 ────────────► budgets ──────┤   campaigns table          ┌► alerts, breakers,
    pacer.commands.v1 ───────────► commands ─────┼─► (one CampaignState per ──┤  replies, DLQ
    pacer.can-spend.requests.v1 ─► can_spend ────┘   campaign, changelog)     └► Redis allowances
                     timers: maintenance (tick), reallocation, pace snapshots

The worker is an object built from settings and a clock (:func:`build_worker`), not a
module of globals: tests construct one the way ``main`` does. How faust itself is built
from the settings (the value codec, the table and app classes) is :mod:`.faust_app`; the
web views are :mod:`.views`. Every input topic carries
raw bytes keyed by ``campaign_id`` and is co-partitioned with the others, so one worker
owns a campaign's whole state. Each agent hands the record to
:class:`~pacer_stream.streams.processor.Processor` (decode -> engine -> encoded outputs)
and then does only two things: produce the outputs and write the campaign's table value.
Agents keep faust's default concurrency of 1, so a partition's records are applied in
offset order (which the offset high-water mark relies on).

Delivery: ``processing_guarantee="at_least_once"`` (exactly-once has open bugs in
faust 0.15). faust flushes the producer -- outputs and changelog -- before it commits an
input offset, so a crash replays records whose effects may already be in the changelog;
the high-water mark in the table value makes those replays no-ops. Outputs that report
a campaign's new state wait for that state's changelog delivery in the output queue
(:mod:`.output_queue`), not in the agent, with their input records held until they are
sent. Streams are :class:`~.stream.PacerStream`: a batch starts with its first record.

Timers act only on campaigns whose partition this worker *actively* owns (never standby
replicas) and only while no rebalance or table recovery is in progress. A timer has no
input event, so it queues its changelog writes with the campaign's partition and sends
them the agents' way (directly to the Kafka client), each value encoded when it is sent:
a write never lands after a newer one of the same campaign.

State: the changelog holds the latest value per campaign (compacted). Locally the table
is kept in RocksDB under the data directory (``table_store = "rocksdb"``, the default,
:mod:`.table_store`): a restarted worker reads only the changelog records written after
the offset its database recorded. ``table_store = "memory"`` keeps faust's memory store,
rebuilt from the whole changelog at every start.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import Message as FaustMessage
from faust.types import TopicT
from mode.supervisors import CrashingSupervisor

from pacer_stream import __version__ as _version
from pacer_stream.adapters.forecast_runner import ForecastRunner
from pacer_stream.core.allocation.strategies import default_registry
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.service import ModelRegistry
from pacer_stream.core.types import CircuitBreakerState
from pacer_stream.errors import InvalidRecord
from pacer_stream.observability import metrics
from pacer_stream.observability.health import WorkerStatus, bind_worker_status
from pacer_stream.observability.logging import configure_logging, get_logger
from pacer_stream.settings import Settings, get_settings
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.clock import Clock, WallClock
from pacer_stream.streams.datadir import DataDir, prepare_data_dir
from pacer_stream.streams.deliveries import DeliveryWatch
from pacer_stream.streams.event_ids import EventIdIndex
from pacer_stream.streams.faust_app import CampaignTable, build_app, campaign_table
from pacer_stream.streams.forecasting import submit_trainings
from pacer_stream.streams.grants import GrantLog
from pacer_stream.streams.heap import freeze_startup_objects
from pacer_stream.streams.intake import BulkTopic
from pacer_stream.streams.output_queue import OutputJob, OutputQueue
from pacer_stream.streams.processor import Message, Processor, Result
from pacer_stream.streams.redis_sync import RedisSync
from pacer_stream.streams.side_records import SideRecords, campaign_of
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.value_writes import AckOrder, ValueWrites
from pacer_stream.streams.views import bearer_check, register_views

log = get_logger("pacer_stream.worker")


def split_outputs(
    messages: Sequence[Message], changelog: str
) -> tuple[list[Message], list[Message]]:
    """A batch's outputs in two lists, each in its original order: those that may go at
    once, and those that must wait for the delivery of the batch's changelog writes
    because they report the state of a campaign the batch wrote (a breaker state or
    reply must never show a state a crash could still lose)."""
    written = {campaign_of(m.key) for m in messages if m.topic == changelog and m.key}
    at_once: list[Message] = []
    after_writes: list[Message] = []
    for m in messages:
        if m.topic == changelog:
            continue
        waits = m.campaign is not None and m.campaign in written
        (after_writes if waits else at_once).append(m)
    return at_once, after_writes


class SliceClock:
    """How long a timer has held the event loop since its slice began (``slice_s``: the
    worker's ``timer_slice_ms``); a timer checks :meth:`over` after each step."""

    __slots__ = ("_start", "slice_s")

    def __init__(self, slice_s: float) -> None:
        self.slice_s = slice_s
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def over(self) -> bool:
        return self.elapsed() >= self.slice_s

    def restart(self) -> None:
        self._start = time.perf_counter()


#: (max events, seconds) per batch: a campaign touched several times in a batch writes
#: its changelog value once. Spend favours throughput (a batch waits up to 5 ms for
#: company); can-spend takes what has arrived and does not wait: a 1 ms wait for
#: company cost a request ~3 ms at the median at 1,000 requests/s (the timer's
#: resolution), and batches grow by themselves once requests queue up.
SPEND_BATCH = (1000, 0.005)
REQUEST_BATCH = (256, 0.0)
#: How long a reply to a per-client topic the worker has not written to yet may wait
#: for the broker to confirm the topic (off the agents' path).
REPLY_TOPIC_WAIT_S = 5.0
#: An agent that raises stops the worker (non-zero exit) instead of being restarted in
#: place: the batch it held stays unacknowledged, so no commit passes it, and the
#: restarted worker replays it from the committed offset (faust's default restarts the
#: agent and commits, which would drop the batch's spend).
FAIL_STOP: dict[str, Any] = {"supervisor_strategy": CrashingSupervisor}
#: faust pauses a stream whenever more than this many produced messages wait in its
#: producer buffer (faust's default: 100) and then drains it one message per
#: ``asyncio.wait_for``; a deeper buffer keeps the stream flowing (messages are still
#: flushed before every offset commit, so delivery guarantees do not change).
PRODUCER_BUFFER_MESSAGES = 5_000
#: Batches whose outputs may wait for their changelog delivery before the agents stop
#: taking more (deliveries stalled: a broker away); each holds its input records.
MAX_QUEUED_OUTPUT_JOBS = 1_000
#: DLQ code of a record whose campaign state could not be serialised or sent.
STATE_WRITE_FAILED = "state_write_failed"
#: DLQ code of a record for a campaign quarantined after such a failure.
CAMPAIGN_QUARANTINED = "campaign_quarantined"

Step = Callable[[Stored], Result]


@dataclass(slots=True)
class SweepTally:
    """What a maintenance sweep saw of the campaigns it ticked, for the gauges."""

    channels: int = 0
    reservations: int = 0
    #: Channels per breaker state other than CLOSED.
    breakers: dict[str, int] = field(default_factory=dict)

    def add(self, value: Stored) -> None:
        for ch in value.state.channels.values():
            self.channels += 1
            self.reservations += len(ch.reservations)
            state = ch.breaker.state
            if state is not CircuitBreakerState.CLOSED:
                self.breakers[state.value] = self.breakers.get(state.value, 0) + 1


@dataclass(slots=True)
class FullRuns:
    """When a timer's run covers every owned campaign, not only the ones it keeps track
    of: the first run, the first after :meth:`reset` (a table recovery: partitions may
    have moved), the first ``interval_s`` of the worker's clock after the last full run,
    and any run after that clock went back. 0: every run."""

    interval_s: float
    #: Epoch seconds (the worker's clock) of the last full run; None: none since reset.
    last_at: float | None = None

    def due(self, now: float) -> bool:
        """Whether the run at ``now`` is a full one (and if so, it counts as done)."""
        if self.last_at is not None and 0 <= now - self.last_at < self.interval_s:
            return False
        self.last_at = now
        return True

    def reset(self) -> None:
        self.last_at = None


class Worker:
    """One pacer-stream worker: the faust app, the ``campaigns`` table, four agents,
    four timers and the web views, built from ``settings`` and a ``clock``.

    Everything the worker holds lives on this object (no module globals), so tests
    build workers exactly as :func:`main` does, with their own settings and clock.
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        #: Trained forecast models per campaign/channel; PREDICTIVE_ML and
        #: ADAPTIVE_HYBRID read them through the engine's strategies. Training runs in an
        #: executor (ForecastRunner), never on the event loop.
        self.forecast_models = ModelRegistry()
        self.forecast_runner = ForecastRunner(
            self.forecast_models, timeout_s=settings.forecast_timeout_s
        )
        engine = PacingEngine(strategies=default_registry(self.forecast_models.forecaster()))
        self.processor = Processor.from_settings(
            settings, clock=clock or WallClock(float(settings.clock_offset_s)), engine=engine
        )
        self.processor.activity = ActivityLog(started_at=self.processor.clock.now().timestamp())
        self.names = self.processor.names
        self.status = WorkerStatus(redis_configured=settings.redis_publish_enabled)
        self.status.details.update({"app_id": settings.app_id, "version": _version})
        self.app = build_app(settings)
        #: campaign_id -> Stored (the campaign's whole state); changelog-backed, kept
        #: in RocksDB under the data directory (``table_store``) or in memory.
        table = campaign_table(self.app, settings)
        #: Each campaign's event-id window, in memory; every id is its own changelog
        #: record beside the campaign's value (:mod:`.event_ids`).
        changelog = table.changelog_topic.get_topic_name()
        self.event_ids = EventIdIndex(changelog, saved=table)
        #: Grants made durable as records of their own (:mod:`.grants`).
        self.grants = GrantLog(changelog, saved=table)
        self.side_records = table.side_records = SideRecords(self.event_ids, self.grants)
        #: When the spend path writes each campaign's value (:mod:`.value_writes`).
        self.value_writes = ValueWrites(settings.value_write_interval_s)
        #: Held spend records, acknowledged per partition in offset order.
        self.acks = AckOrder()
        #: Records of the last spend batch held only because an earlier record of their
        #: partition is: done once the batch's writes are handed to the producer.
        self._parked: list[Any] = []
        self.campaigns: CampaignTable = self.app.tables.add(table)  # type: ignore[assignment]
        self.redis_sync: RedisSync | None = None
        #: Input records fully handled by this process (tests wait on it).
        self.events_processed = 0
        #: Campaigns whose state could not be written: their in-memory value is dropped
        #: (the changelog keeps the last good one, recovered at the next start) and their
        #: records go to the DLQ until then, so nothing is decided from a state the
        #: changelog does not have.
        self.quarantined: set[str] = set()
        #: The data directory actually used (set by :meth:`run`).
        self.data_dir: DataDir | None = None
        self._out_topics: dict[str, TopicT] = {}
        self._last_full_publish = 0.0
        #: Owned campaigns that await time (:meth:`PacingEngine.awaits_time`), ticked
        #: every maintenance interval; every other one at the full tick.
        self._awaiting: set[str] = set()
        #: When maintenance ticks every owned campaign, and how many channels they had
        #: at the last such tick.
        self._full_ticks = FullRuns(settings.maintenance_full_interval_s)
        self._owned_channels = 0
        #: Owned campaigns changed since the last pace-snapshot run (records, timer
        #: changes), and when a run snapshots every owned campaign.
        self._changed: set[str] = set()
        self._full_snapshots = FullRuns(settings.snapshot_idle_interval_s)
        #: Timer outputs handed to faust's producer buffer since a sweep last waited
        #: for the producer to deliver them.
        self._timer_outputs_unflushed = False
        #: Timers' changelog writes waiting to be sent in order: a campaign (its value is
        #: encoded when sent) with the outputs that report it, or records as they are.
        self._timer_jobs: deque[tuple[str, list[Message]] | list[Message]] = deque()
        #: One writer at a time, from encoding a campaign value to handing it to the
        #: producer: agents and timers both write values (the spend path's deferred
        #: ones come from a timer), and the changelog keeps the last record of a key,
        #: so a value encoded earlier must never reach the producer after a later one.
        self._write_lock = asyncio.Lock()
        self._timer_flush: asyncio.Future[None] | None = None
        #: Outputs waiting for the delivery of the state they report, in order.
        self.outputs: OutputQueue[Message] = OutputQueue(self._produce, self._release)
        #: Writes the broker refused: no commit after one, and the worker stops.
        self.deliveries = DeliveryWatch(on_failure=self._stop_on_refused_write)
        self._refusal: asyncio.Future[None] | None = None
        #: Replies waiting for their per-client topic's metadata (see ``_produce``).
        self._reply_lookups: set[asyncio.Future[None]] = set()
        self.app.delivery_watch = self.deliveries  # type: ignore[attr-defined]
        self._agents()
        self._timers()
        self._lifecycle()
        self._views()

    # ------------------------------------------------------------------ construction
    def _raw_topic(self, name: str) -> TopicT:
        """A topic of raw bytes: decoding is :mod:`pacer_stream.wire.records`' job, so a bad
        payload reaches the agent and goes to the DLQ with its original bytes."""
        return self.app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=self.settings.topic_partitions,
        )

    # ------------------------------------------------------------------ the data flow
    def _agents(self) -> None:
        app, names = self.app, self.names
        if self.settings.bulk_intake:  # the hot topics skip faust's per-record delivery
            app.bulk_topics = {name: BulkTopic(app, name) for name in (names.spend, names.requests)}

        @app.agent(self._raw_topic(names.spend), name="spend-events", **FAIL_STOP)  # type: ignore[arg-type]
        async def spend_events(stream: faust.Stream[bytes]) -> None:
            """Spend events -> engine.record_spend (idempotent) -> alerts, breakers."""
            async for records in stream.take_records(*SPEND_BATCH):
                try:
                    async with self._write_lock:
                        messages = self.process(records, defer_values=True)
                        await self.send_batch(messages, inputs=records)
                finally:  # the batch's writes are in the producer's hands
                    self._release(self._parked)

        @app.agent(self._raw_topic(names.budgets), name="budgets", **FAIL_STOP)  # type: ignore[arg-type]
        async def budgets(stream: faust.Stream[bytes]) -> None:
            """Campaign configuration -> engine.configure (same table: same partition)."""
            async for event in stream.events():
                async with self._write_lock:
                    record = event.message
                    await self.send_batch(self.process([record]), inputs=[record])

        @app.agent(self._raw_topic(names.commands), name="commands", **FAIL_STOP)  # type: ignore[arg-type]
        async def commands(stream: faust.Stream[bytes]) -> None:
            """emergency_stop / resume / reallocate / force_breaker (signed if required)."""
            async for event in stream.events():
                async with self._write_lock:
                    record = event.message
                    await self.send_batch(self.process([record]), inputs=[record])

        @app.agent(self._raw_topic(names.requests), name="can-spend", **FAIL_STOP)  # type: ignore[arg-type]
        async def can_spend(stream: faust.Stream[bytes]) -> None:
            """Can-spend requests -> engine.reserve -> a reply on the replies topic."""
            async for records in stream.take_records(*REQUEST_BATCH):
                async with self._write_lock:
                    await self.send_batch(self.process(records), inputs=records)

        self.spend_events, self.budgets = spend_events, budgets
        self.commands, self.can_spend = commands, can_spend

    def process(
        self, records: Sequence[FaustMessage], *, defer_values: bool = False
    ) -> list[Message]:
        """Decode and apply each record in order, produce its outputs, then write the
        value of every campaign the batch changed -- once per campaign. With
        ``defer_values`` (the spend path) a campaign written less than
        ``value_write_interval_s`` ago and whose records produced no output is written
        later instead, its records held unacknowledged until then (:mod:`.value_writes`).

        Synchronous on purpose: nothing else runs on the event loop between reading a
        campaign's value and queueing its changelog write, so no other agent or timer
        can interleave. The agent hands what this returns to :meth:`send_batch` before
        ``take_records`` acks the records, and the offset commit flushes the producer, so a
        crash replays the whole batch and the offset high-water marks make the replay a
        no-op.

        Returns the batch's records to produce: the changelog writes first, then every
        output (replies, alerts, breaker states) in order.
        """
        defer_values = defer_values and self.value_writes.enabled
        touched: dict[str, Stored] = {}
        handled: list[tuple[Any, Result]] = []
        #: per touched campaign: its input records; campaigns whose records had outputs
        records_of: dict[str, list[Any]] = {}
        with_outputs: set[str] = set()
        # Id records go first: on the campaign's changelog partition they precede the
        # value that relies on them (see :mod:`.event_ids`).
        direct: list[Message] = []
        #: (campaign, logical topic) -> its last input offset in this batch: one id
        #: record per campaign and batch, keyed by that offset.
        id_records: dict[tuple[str, str], tuple[Stored, int]] = {}
        # The records' spend metrics go to the metrics once, after the loop.
        with self.processor.counting():
            for msg in records:
                result = self.processor.handle(
                    msg.topic, msg.partition, msg.offset, msg.key, msg.value, self.lookup
                )
                handled.append((msg, result))
                if result.store is not None:
                    cid = result.store.campaign_id
                    self.campaigns.data[cid] = result.store  # visible at once (new campaigns)
                    touched[cid] = result.store
                    records_of.setdefault(cid, []).append(msg)
                    if result.messages:
                        with_outputs.add(cid)
                    self.side_records.attach(result.store)  # a campaign this record created
                    topic = self.names.logical(msg.topic) or msg.topic
                    id_records[cid, topic] = (result.store, msg.offset)
                elif result.grant is not None:
                    stored, grant = result.grant
                    # Changed in place and not written: the store must keep it in memory.
                    self.campaigns.data[stored.campaign_id] = stored
                    direct.append(self.grants.granted(stored, grant, msg.offset))
                    self._note_time(stored)  # a new hold: the core says it awaits time
                    self._changed.add(stored.campaign_id)
        for cid, value in touched.items():
            self._note_time(value)
            self._changed.add(cid)
        for (_, topic), (value, offset) in id_records.items():
            direct.extend(self.event_ids.writes(value, offset, topic))
        # The changelog writes are handed to the producer by the agent itself (awaited,
        # like the replies) before the batch is acked: faust's ``send_soon`` buffer can
        # hold a message its background task has taken but not yet given to the Kafka
        # client while an offset commit flushes the client, and a kill -9 then loses
        # that state change although its input offsets were committed.
        failed: set[str] = set()
        deferred: set[str] = set()
        now = self.processor.clock.now().timestamp() if defer_values else 0.0
        for cid, value in touched.items():
            if (
                defer_values
                and cid not in with_outputs
                and self.value_writes.defer(cid, now, records_of[cid])
            ):
                deferred.add(cid)
                continue
            write = self._changelog_message(cid, value)
            if write is None:
                failed.add(cid)
            else:
                direct.append(write)
                direct.extend(self.grants.covered(cid))  # after the value that covers them
        for msg, result in handled:
            if result.store is not None and result.store.campaign_id in failed:
                # Its effect could not be made durable: park the record (original bytes)
                # instead of publishing outputs of a state that will not survive a restart.
                result = self.processor.dead_letter(
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    msg.key,
                    msg.value,
                    STATE_WRITE_FAILED,
                    "the campaign's new state could not be written to the changelog; "
                    "the campaign is quarantined until the worker restarts",
                )
            # Outputs follow the changelog writes (``send_batch`` waits for those to
            # be delivered first): a breaker state or alert never reaches its topic
            # ahead of the state that produced it, so a crash cannot leave the breakers
            # topic showing a transition the recovered state never made.
            direct.extend(result.messages)
            self._mark(result)
        if defer_values:
            # Held records are acknowledged when their value is delivered; a record
            # after one of them on its partition waits for it (:class:`AckOrder`).
            self._parked = []
            for msg, result in handled:
                if result.store is not None and result.store.campaign_id in deferred:
                    self.acks.hold(msg)
                elif self.acks.behind(msg):
                    self.acks.hold(msg)
                    self._parked.append(msg)
        self.events_processed += len(records)
        return direct

    def _changelog_message(self, campaign_id: str, value: Stored) -> Message | None:
        """One campaign's table value as a changelog record; None (and the campaign
        quarantined) when it cannot be encoded."""
        try:
            data = stored_codec.dumps(value)
        except Exception as exc:
            self._quarantine(campaign_id, value.partition, exc)
            return None
        topic = self.campaigns.changelog_topic.get_topic_name()
        covered: tuple[Any, ...] = ()
        if self.value_writes.enabled:
            now = self.processor.clock.now().timestamp()
            covered = tuple(self.value_writes.written(campaign_id, now))
        return Message(
            topic, campaign_id.encode(), data, partition=value.partition, releases=covered
        )

    def _quarantine(self, campaign_id: str, partition: int, exc: BaseException) -> None:
        """A value that cannot be written: a bug or a value the codec cannot hold must
        not stop the partition, nor leave the table changed without its changelog."""
        log.error(
            "state_write_failed",
            campaign_id=campaign_id,
            partition=partition,
            error=f"{type(exc).__name__}: {exc}",
        )
        self.campaigns.data.pop(campaign_id, None)
        self.side_records.drop(campaign_id)
        self.quarantined.add(campaign_id)
        # Records applied to the dropped value and not written yet: parked with their
        # original bytes (replay them from the DLQ once the cause is fixed).
        held = self.value_writes.drop(campaign_id)
        for record in held:
            result = self.processor.dead_letter(
                record.topic, record.partition, record.offset, record.key, record.value,
                STATE_WRITE_FAILED,
                "the campaign's state could not be written to the changelog; "
                "the campaign is quarantined until the worker restarts",
            )  # fmt: skip
            self._send(result.messages)
        self._release(held)

    def _write_changelog(self, campaign_id: str, outputs: Sequence[Message] = ()) -> None:
        """Queue a write of one campaign's value from a timer. The bytes are made when
        the write is sent (:meth:`flush_timer_writes`), not now: a value encoded now and
        sent later could land in the changelog after a newer one an agent wrote
        meanwhile, and compaction would then keep the older state. ``outputs`` (what the
        timer step reports of that state) go out once the write is delivered; a value
        that cannot be encoded quarantines its campaign there, and its outputs are
        dropped."""
        self._timer_jobs.append((campaign_id, list(outputs)))

    def _send_changelog(self, messages: list[Message]) -> None:
        """Queue changelog records of a timer (event-id and grant record deletions)."""
        if messages:
            self._timer_jobs.append(messages)

    async def flush_timer_writes(self) -> None:
        """Send the timers' queued changelog writes in order, each campaign value encoded
        from its current state right before it is handed to the Kafka client (the
        agents' path, so a later write of a campaign never lands before an earlier one),
        followed by the grant records it covers."""
        async with self._write_lock:
            while self._timer_jobs:
                job = self._timer_jobs.popleft()
                if isinstance(job, list):
                    await self.send_batch(job)
                    continue
                campaign_id, outputs = job
                value = self.lookup_quiet(campaign_id)
                if value is None:  # removed meanwhile (its tombstone is written)
                    self._release(self.value_writes.drop(campaign_id))
                write = None if value is None else self._changelog_message(campaign_id, value)
                if write is not None:
                    # outputs wait for the write's delivery (``send_batch``)
                    await self.send_batch([write, *self.grants.covered(campaign_id), *outputs])

    async def write_held(self, *, everything: bool = False) -> int:
        """Write the values the spend path deferred whose interval is over (all of them
        with ``everything``: partitions revoked, shutdown); each value is encoded when
        sent, and its held records are acknowledged once it is delivered."""
        if everything:
            due = list(self.value_writes.holding())
            for cid in due:
                self._write_changelog(cid)
            if due:
                await self.flush_timer_writes()
            return len(due)
        # In the timers' slices, like a sweep: a campaign's value takes ~0.15 ms to
        # encode and send, and a busy worker has hundreds due at once (every campaign
        # the spend path touched an interval ago), which held the write lock -- and every
        # spend record arriving meanwhile -- for 15-20 ms in one go.
        written = 0
        clock = SliceClock(self.settings.timer_slice_ms / 1000)
        for cid in self.value_writes.due(self.processor.clock.now().timestamp()):
            if cid not in self.value_writes:  # written meanwhile (an agent's batch)
                continue
            self._write_changelog(cid)
            await self.flush_timer_writes()
            written += 1
            if clock.over():
                await self._agents_turn(clock)
        return written

    def _stop_on_refused_write(self, error: BaseException) -> None:
        """A write the broker refused for good: stop the worker (non-zero exit) with
        nothing committed after it, so the restart replays it (:mod:`.deliveries`)."""
        self.status.mark_fatal(f"write refused by the broker: {error!r}")
        self._refusal = asyncio.ensure_future(self.app.crash(error))

    def _release(self, records: Sequence[Any], fut: asyncio.Future[Any] | None = None) -> None:
        """Acknowledge held input records (their value's write is delivered, or their
        campaign left this worker): the consumer may now commit past them. Records whose
        write ``fut`` was refused stay held (the worker stops, :mod:`.deliveries`)."""
        if fut is not None and (fut.cancelled() or fut.exception() is not None):
            return
        self.acks.release(records, self.app.consumer)

    def _apply_soon(self, result: Result) -> None:
        """:meth:`_apply_timer_result` for a caller that cannot await (the Redis sync),
        with the queued writes flushed by a task of their own."""
        self._apply_timer_result(result)
        if self._timer_jobs and (self._timer_flush is None or self._timer_flush.done()):
            self._timer_flush = asyncio.ensure_future(self.flush_timer_writes())

    async def send_batch(
        self, messages: list[Message], inputs: Sequence[FaustMessage] = ()
    ) -> None:
        """Hand a batch's records straight to the Kafka client (awaited before the batch
        is acked, so the offset commit's flush covers them), skipping faust's buffer:
        the changelog writes first, then the outputs in order. Outputs of a campaign
        whose value the batch wrote wait for that write's delivery in the
        :class:`~.output_queue.OutputQueue` (the agent goes on meanwhile, and the batch's
        ``inputs`` stay unacknowledged until those outputs are sent); the others
        (replies of campaigns the batch did not change, DLQ entries) go at once, so a
        reply never waits on another campaign's write. A changelog write the client
        refuses (e.g. a value above the topic's size limit) quarantines its campaign
        instead of stopping the agent."""
        self.outputs.raise_failure()
        self.deliveries.raise_failure()
        producer = self.app.producer
        changelog = self.campaigns.changelog_topic.get_topic_name()
        written: list[Any] = []
        for m in messages:
            if m.topic != changelog:
                continue
            assert m.key is not None
            # The store learns of each write before it is sent and of its delivery from
            # the future's own callback (in delivery order, with the timers' writes).
            pending = self.campaigns.changelog_sending(m.key.decode(), m.partition or 0)
            try:
                sent = await producer.send(m.topic, m.key, m.value, m.partition, None, None)
            except Exception as exc:
                if pending is not None:
                    self.campaigns.data.failed(pending)
                self._quarantine(campaign_of(m.key), m.partition or 0, exc)
                continue
            sent.add_done_callback(  # type: ignore[attr-defined]
                functools.partial(self.campaigns.changelog_done, pending, m.value)
            )
            self.deliveries.watch(sent, m.topic)  # type: ignore[arg-type]
            if m.releases:
                sent.add_done_callback(functools.partial(self._release, m.releases))  # type: ignore[attr-defined]
            written.append(sent)
        at_once, after_writes = split_outputs(messages, changelog)
        for m in at_once:
            await self._produce(m)
        waiting = bool(written and after_writes)
        if not waiting and not len(self.outputs):
            for m in after_writes:  # nothing to wait for, nothing queued before them
                await self._produce(m)
            self._hold_behind(inputs)
            return
        # Queued behind earlier jobs even when nothing of this batch waits, so a
        # campaign's outputs keep their order.
        held = self._hold_all(inputs)
        # Records of the batch held only for their partition's order (the spend path's)
        # are done when the job is, not before.
        held += self._parked
        self._parked = []
        self.outputs.put(OutputJob(written if waiting else (), after_writes, held))
        await self.outputs.room(MAX_QUEUED_OUTPUT_JOBS)

    def _hold_all(self, inputs: Sequence[FaustMessage]) -> list[Any]:
        """Hold the batch's input records not held already (their outputs are queued):
        released by the output queue once those are sent."""
        held = []
        for msg in inputs:
            if not self.acks.holds(msg):
                self.acks.hold(msg)
                held.append(msg)
        return held

    def _hold_behind(self, inputs: Sequence[FaustMessage]) -> None:
        """Records done at once that follow a held record of their partition: held and
        released in one go, so :class:`AckOrder` acknowledges them after it."""
        behind = []
        for msg in inputs:
            if not self.acks.holds(msg) and self.acks.behind(msg):
                self.acks.hold(msg)
                behind.append(msg)
        self._release(behind)

    async def _produce(self, m: Message) -> None:
        if self.names.is_client_reply_topic(m.topic) and not self._known_topic(m.topic):
            # A reply topic a request named and the worker has not written to yet: the
            # Kafka client would wait for its metadata up to its request timeout (many
            # minutes when it does not exist), holding every output behind it.
            self._reply_lookups.add(asyncio.ensure_future(self._produce_once_known(m)))
            return
        delivery = await self.app.producer.send(m.topic, m.key, m.value, m.partition, None, None)
        self.deliveries.watch(delivery, m.topic)  # type: ignore[arg-type]

    def _known_topic(self, topic: str) -> bool:
        """Whether the Kafka client already has the topic's metadata (faust's producer
        holds the aiokafka producer, whose cluster view says so without a request)."""
        cluster = self.app.producer._ensure_producer().client.cluster  # type: ignore[attr-defined]
        return cluster.partitions_for_topic(topic) is not None

    async def _produce_once_known(self, m: Message) -> None:
        """Send a reply to a per-client topic once the broker confirms the topic, off
        the agents' path; a topic still unknown after ``REPLY_TOPIC_WAIT_S`` loses the
        reply (logged, counted): the bid engine's wait times out, which denies."""
        task = asyncio.current_task()
        try:
            producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
            await asyncio.wait_for(producer.partitions_for(m.topic), REPLY_TOPIC_WAIT_S)
        except (TimeoutError, KafkaError) as exc:
            metrics.REPLIES_UNDELIVERABLE.inc()
            log.warning("reply_topic_unavailable", topic=m.topic, error=repr(exc))
        else:
            await self._produce(m)
        finally:
            self._reply_lookups.discard(task)  # type: ignore[arg-type]

    def lookup(self, campaign_id: str) -> Stored | None:
        if campaign_id in self.quarantined:
            raise InvalidRecord(CAMPAIGN_QUARANTINED, f"campaign {campaign_id!r} is quarantined")
        value: Stored | None = self.campaigns.get(campaign_id)
        if value is not None:
            self._attach(value)
        return value

    def _attach(self, value: Stored) -> None:
        """A campaign about to be used: its event-id window, and grants its saved value
        does not cover put back (the store then keeps the value in memory)."""
        if self.side_records.attach(value):
            self.campaigns.data[value.campaign_id] = value

    def lookup_quiet(self, campaign_id: str) -> Stored | None:
        """:meth:`lookup` for readers (Redis publisher, views): a quarantined campaign
        is unknown (its fast-path allowance then expires: fail closed)."""
        if campaign_id in self.quarantined:
            return None
        # No event-id window: readers do not need one, and while a recovery is running
        # the value may be older than the id records already read, which would then
        # look like ids of records a crash lost.
        value: Stored | None = self.campaigns.get(campaign_id)
        return value

    def _send(self, messages: list[Message]) -> None:
        for m in messages:
            self._out_topic(m.topic).send_soon(
                key=m.key, value=m.value, key_serializer="raw", value_serializer="raw"
            )

    def _out_topic(self, name: str) -> TopicT:
        topic = self._out_topics.get(name)
        if topic is None:
            if len(self._out_topics) > 1024:  # reply_to names come from requests: bounded
                self._out_topics.clear()
            topic = self._out_topics[name] = self.app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
            )
        return topic

    def _mark(self, result: Result) -> None:
        sync = self.redis_sync
        if sync is None:
            return
        for cid, channel, state in result.breakers:
            sync.mark_breaker(cid, channel, state)
        if result.dirty:
            sync.mark(result.dirty)

    def _apply_timer_result(self, result: Result) -> None:
        """Outputs of a timer step; the changelog is written with the campaign's own
        partition because no input event is in hand (queued: the caller flushes)."""
        store = result.store
        if store is not None:
            self._changed.add(store.campaign_id)
            self._write_changelog(store.campaign_id, result.messages)
        elif result.messages:
            self._send(result.messages)
            self._timer_outputs_unflushed = True
        self._mark(result)

    def _remove(self, value: Stored) -> None:
        """Drop a campaign from the table: a tombstone in the changelog, so compaction
        forgets it too and a restart does not bring it back (its side records too)."""
        cid = value.campaign_id
        self.campaigns.data.pop(cid, None)
        self._awaiting.discard(cid)
        changelog = self.campaigns.changelog_topic.get_topic_name()
        tombstone = Message(changelog, cid.encode(), None, partition=value.partition)
        self._send_changelog([*self.side_records.forget(cid), tombstone])
        log.info("campaign_expired", campaign_id=cid)

    # ------------------------------------------------------------------ ownership
    def active_partitions(self) -> set[int]:
        """Input partitions this worker actively owns (standby replicas excluded)."""
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:  # not assigned yet
            return set()
        return {tp.partition for tp in actives if tp.topic == self.names.spend}

    def settled(self) -> bool:
        """No rebalance or table recovery in progress (the table is complete)."""
        return not (self.app.rebalancing or self.app.in_recovery or self.status.recovering)

    def owned(self) -> Iterator[Stored]:
        active = self.active_partitions()
        if not active:
            return
        # A copy of the keys (agents add campaigns between a sweep's slices), taken from
        # an iterator: ``list()`` of the keys view would first count them, one more
        # scan of the on-disk store.
        for key in list(iter(self.campaigns.keys())):
            value: Stored | None = self.campaigns.get(key)
            if value is not None and value.partition in active:
                self._attach(value)
                yield value

    # ------------------------------------------------------------------ timers
    async def sweep(
        self, step: Step, *, expire: bool = False, tally: SweepTally | None = None
    ) -> int:
        """Run one timer ``step`` over every owned campaign (first dropping expired
        ones when ``expire``), giving the agents the event loop back every
        ``timer_slice_ms``; each campaign's value is read when its turn comes."""
        if not self.settled():
            return 0
        return await self._sweep_over(self.owned(), step, expire=expire, tally=tally)

    async def _sweep_over(
        self,
        values: Iterable[Stored],
        step: Step,
        *,
        expire: bool = False,
        tally: SweepTally | None = None,
    ) -> int:
        n = 0
        clock = SliceClock(self.settings.timer_slice_ms / 1000)
        for value in values:
            if expire and self.processor.expired(value):
                self._remove(value)
                continue
            result = step(value)
            if result.messages or result.store is not None or result.dirty:
                self._apply_timer_result(result)
            if self._timer_jobs:
                # Encode and send the write now, inside this slice: a value is KiBs
                # (every live reservation and remembered answer), so the writes a slice
                # of cheap ticks queues can take many times the slice to encode.
                await self.flush_timer_writes()
            self._note_time(value)
            if tally is not None:
                tally.add(value)
            n += 1
            if clock.over():
                await self._agents_turn(clock)
        await self.flush_timer_writes()
        return n

    async def _agents_turn(self, clock: SliceClock) -> None:
        """End a timer's slice: send its writes, wait for its outputs' delivery, then
        give the agents the event loop for as long as the slice had it."""
        await self.flush_timer_writes()
        await self._deliver_timer_outputs()
        await asyncio.sleep(clock.elapsed())
        clock.restart()

    async def _deliver_timer_outputs(self) -> None:
        """Wait until the outputs a sweep's slice handed to the producer are delivered.
        Why: a pace-snapshot run over 100,000 campaigns queued its records in faust's
        producer buffer faster than the Kafka client sent them, and a bid engine whose
        first request came during the run waited over 10 s for its reply (it did not
        with this wait; docs/streaming.md, "Timers"); waiting here keeps at most one
        slice of timer outputs queued, and the agents have the loop meanwhile. A
        producer that is stopping refuses to flush: the sweep goes on (the worker is
        shutting down and flushes on its way out)."""
        if self._timer_outputs_unflushed:
            self._timer_outputs_unflushed = False
            try:
                await self.app.producer.flush()
            except RuntimeError as exc:
                log.warning("timer_outputs_not_flushed", error=repr(exc))

    def _note_time(self, value: Stored) -> None:
        """Keep :attr:`_awaiting` right for a campaign just handled or ticked."""
        if self.processor.engine.awaits_time(value.state):
            self._awaiting.add(value.campaign_id)
        else:
            self._awaiting.discard(value.campaign_id)

    async def tick_all(self, tally: SweepTally | None = None) -> int:
        """Expiry, cooldowns and alerts made visible for every owned campaign; campaigns
        past retention removed; event ids past their window deleted from the changelog."""
        n = await self.sweep(self.processor.tick, expire=True, tally=tally)
        await self._expire_event_ids()
        return n

    async def tick_awaiting(self, tally: SweepTally | None = None) -> int:
        """:meth:`tick_all` for the owned campaigns that await time only
        (:meth:`PacingEngine.awaits_time`: holds, a breaker away from CLOSED, outputs
        waiting); the others wait for the next full tick."""
        if not self.settled():
            return 0
        values = self._owned_of(self._awaiting)
        n = await self._sweep_over(values, self.processor.tick, tally=tally)
        await self._expire_event_ids()
        return n

    def _owned_of(self, ids: set[str]) -> Iterator[Stored]:
        """The values of the owned campaigns among ``ids``; the others (gone,
        quarantined or no longer ours) are dropped from ``ids``."""
        active = self.active_partitions()
        for cid in list(ids):
            value = self.lookup_quiet(cid)
            if value is None or value.partition not in active:
                ids.discard(cid)
                continue
            self._attach(value)
            yield value

    async def _expire_event_ids(self) -> None:
        if self.settled():
            now = self.processor.clock.now().timestamp()
            self._send_changelog(self.event_ids.expire(now, self.active_partitions()))
            await self.flush_timer_writes()

    async def reallocate_all(self) -> int:
        """Move unused budget toward the channels that convert (engine.reallocate)."""
        return await self.sweep(self.processor.reallocate)

    async def snapshot_all(self) -> int:
        """Periodic pace snapshots per campaign/channel for dashboards: of the owned
        campaigns changed since the last run, and of every owned campaign at the first
        run ``snapshot_idle_interval_s`` (of the worker's clock) after the last such full
        run, or after a table recovery. An idle campaign's snapshot moves only with its
        plan, which its pace alerts watch at every full tick anyway."""
        if not self.settled():
            return 0
        changed, self._changed = self._changed, set()
        if self._full_snapshots.due(self.processor.clock.now().timestamp()):
            return await self.sweep(self.processor.snapshots)
        return await self._sweep_over(self._owned_of(changed), self.processor.snapshots)

    async def maintenance(self) -> None:
        """Reservation expiry, breaker cooldowns and alerts made visible promptly;
        gauges; every owned allowance re-published to Redis once per allowance slice."""
        self._refresh_status()
        if not self.settled():
            return
        tally = SweepTally()
        if self._full_ticks.due(self.processor.clock.now().timestamp()):  # the ticks' clock
            await self.tick_all(tally)
            self._owned_channels = tally.channels
        else:
            await self.tick_awaiting(tally)
        # Campaigns that await nothing hold no reservations and their breakers are
        # CLOSED: the tally of the others is exact but for CLOSED, counted against the
        # channels the last full tick saw.
        breakers = dict(tally.breakers)
        breakers[CircuitBreakerState.CLOSED.value] = max(
            0, self._owned_channels - sum(tally.breakers.values())
        )
        metrics.set_reservations_active(tally.reservations)
        metrics.set_breakers(breakers)
        sync = self.redis_sync
        mono = time.monotonic()
        if sync is not None and mono - self._last_full_publish >= self.settings.allowance_slice_s:
            self._last_full_publish = mono
            owned = list(self.owned())
            sync.retain({v.campaign_id for v in owned})
            sync.mark((v.campaign_id, c) for v in owned for c in v.state.channels)
        await self._consumer_lag()

    async def _consumer_lag(self) -> None:
        """``pacer_consumer_lag_messages{topic}``: high watermark minus this worker's
        fetch position, summed over its active partitions of each input topic."""
        app, names = self.app, self.names
        try:
            actives = [tp for tp in app.assignor.assigned_actives() if tp.topic in names.inputs]
            lag: dict[str, int] = {t: 0 for t in names.inputs}
            for tp in actives:
                position = await app.consumer.position(tp)
                if position is not None:
                    lag[tp.topic] += max(0, app.consumer.highwater(tp) - position)
        except Exception:  # metrics must never disturb the worker
            return
        for topic, messages in lag.items():
            metrics.set_consumer_lag(names.logical(topic) or topic, messages)

    async def forecast_training(self) -> int:
        """Submit due model trainings for owned campaigns, in the timers' slices (the
        executor trains, the runner swaps the model in when it is done); returns how
        many were submitted. Why in slices: a channel whose model is due has its history
        copied on the event loop (milliseconds with weeks of it), and after a restart
        every model is due."""
        now = self.processor.clock.now()
        submitted = 0

        def step(value: Stored) -> Result:
            nonlocal submitted
            submitted += submit_trainings(self.forecast_runner, (value,), now)
            return Result(status="forecast")

        await self.sweep(step)
        if submitted:
            log.info("forecast_training_submitted", count=submitted)
        return submitted

    def _timers(self) -> None:
        app, s = self.app, self.settings

        @app.timer(interval=s.maintenance_interval_s)  # type: ignore[untyped-decorator]
        async def maintenance() -> None:
            await self.maintenance()

        @app.timer(interval=s.reallocation_interval_s)  # type: ignore[untyped-decorator]
        async def reallocation() -> None:
            await self.reallocate_all()

        @app.timer(interval=s.forecast_interval_s)  # type: ignore[untyped-decorator]
        async def forecast_training() -> None:
            await self.forecast_training()

        @app.timer(interval=s.snapshot_interval_s)  # type: ignore[untyped-decorator]
        async def pace_snapshots() -> None:
            await self.snapshot_all()

        if s.value_write_interval_s > 0:
            # A quarter of the interval: a deferred value waits at most 1.25 intervals.
            @app.timer(interval=s.value_write_interval_s / 4)  # type: ignore[untyped-decorator]
            async def deferred_values() -> None:
                await self.write_held()

    # ------------------------------------------------------------------ lifecycle
    async def on_recovered(self) -> None:
        """The table is complete again: heal the compacted breakers topic (a crash may
        have lost the last transition) and re-publish every owned allowance."""
        self.status.on_recovered()
        self._full_ticks.reset()  # campaigns may have moved: tick all of them next
        self._full_snapshots.reset()  # and snapshot all of them
        self.processor.quota.reset({v.campaign_id for v in self.owned() if not v.state.configured})
        healed = 0
        for value in self.owned():
            self._send(self.processor.breaker_states(value))
            healed += 1
            if self.redis_sync is not None:
                self.redis_sync.mark((value.campaign_id, c) for c in value.state.channels)
        log.info("table_recovered", campaigns=healed, partitions=sorted(self.active_partitions()))

    def _refresh_status(self) -> None:
        """A rebalance that ends without anything to recover may not call
        ``on_recover``: recovery is over once faust says so."""
        status, app = self.status, self.app
        if status.recovering and status.assignment_received and not app.rebalancing:
            recovery = getattr(app.tables, "recovery", None)
            if recovery is not None and recovery.completed.is_set() and not app.in_recovery:
                status.on_recovered()

    async def _start(self) -> None:
        """Worker started: JSON logs, metrics, Redis publisher."""
        s = self.settings
        configure_logging(s.log_level)
        metrics.set_worker_info(_version, s.app_id)
        bind_worker_status(self.status, time.monotonic)
        self.status.mark_started()
        self.app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
        frozen = freeze_startup_objects()  # short full GC passes: see streams.heap
        log.info(
            "worker_started",
            gc_frozen_objects=frozen,
            app_id=s.app_id,
            topics=list(self.names.inputs),
            partitions=s.topic_partitions,
            web_port=s.worker_web_port,
            redis=s.redis_publish_enabled,
            data_dir=str(self.app.conf.datadir),
        )
        if self.data_dir is not None and self.data_dir.problem:
            log.warning(
                "worker_data_dir_fallback",
                configured=s.worker_data_dir,
                problem=self.data_dir.problem,
                data_dir=str(self.data_dir.path),
            )
        if not s.redis_publish_enabled:
            return
        from pacer_stream.adapters.redis_publisher import RedisPublisher

        publisher = RedisPublisher.from_settings(s)
        self.redis_sync = RedisSync(
            publisher,
            self.processor,
            lookup=self.lookup_quiet,
            owned=lambda p: p in self.active_partitions(),
            apply=self._apply_soon,
            slice_s=s.allowance_slice_s,
            status=self.status,
            ping=publisher.store.redis.ping,
        )
        await self.redis_sync.ping_once()
        try:
            await self.redis_sync.run()
        finally:
            await publisher.aclose()

    async def _probe_broker(self) -> None:
        """Keep ``/readyz`` honest about the broker (see :mod:`.broker_probe`)."""
        from pacer_stream.connection import kafka_options
        from pacer_stream.streams.broker_probe import BrokerProbe

        await BrokerProbe(kafka_options(self.settings), self.status).run()

    def _lifecycle(self) -> None:
        app, status = self.app, self.status
        self.campaigns.on_recover(self.on_recovered)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
            status.on_rebalance_started()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def _on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            status.on_partitions_assigned(len(self.active_partitions()))
            self.value_writes.suspended = False

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def _stopping(sender: Any, *args: Any, **kwargs: Any) -> None:
            status.mark_stopping()

        async def _before_wait_empty() -> None:
            # faust is about to wait for every record in hand to be acknowledged
            # (partitions revoked, or shutdown): write what is deferred now, and defer
            # nothing more until partitions are assigned again.
            self.value_writes.suspended = True
            await self.write_held(everything=True)
            await self.outputs.drain()

        app.before_wait_empty = _before_wait_empty

        @app.task(on_leader=False)  # type: ignore[untyped-decorator]
        async def start() -> None:
            await self._start()

        @app.task(on_leader=False)  # type: ignore[untyped-decorator]
        async def probe_broker() -> None:
            await self._probe_broker()

        self._lifecycle_hooks = (_on_revoked, _on_assigned, _stopping, start, probe_broker)

    # ------------------------------------------------------------------ web views
    def _views(self) -> None:
        self.unauthorised = bearer_check(self.settings.worker_web_token)
        self.views, self.ui_views = register_views(
            self.app,
            self.campaigns,
            status=self.status,
            refresh_status=self._refresh_status,
            processor=self.processor,
            lookup=self.lookup_quiet,
            owned=self.owned,
            activity=self.processor.activity,
            authorise=self.unauthorised,
        )

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run until SIGTERM/SIGINT (graceful: flush, commit, leave the group)."""
        # Create the data directory (faust creates only its last component), or fall
        # back to a temporary one: the worker starts from any working directory.
        self.data_dir = prepare_data_dir(self.settings.worker_data_dir)
        self.app.conf.datadir = self.data_dir.path
        runner = faust.Worker(self.app, loglevel=self.settings.log_level.lower(), quiet=True)
        runner.execute_from_commandline()


def build_worker(settings: Settings | None = None, clock: Clock | None = None) -> Worker:
    """A worker from ``settings`` (default: the environment) and ``clock`` (default:
    the wall clock plus ``settings.clock_offset_s``)."""
    return Worker(settings or get_settings(), clock)


def main() -> None:
    """Run the worker configured by the environment (``PACER_*``)."""
    build_worker().run()
