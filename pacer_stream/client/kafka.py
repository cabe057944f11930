"""Async Kafka client of pacer-stream: publish spend and budgets, ask can-spend, operate
campaigns, follow breaker states.

Why not faust's ``agent.ask``: it has no timeout and invents a reply topic per client.
A bid engine needs a bounded wait, so :meth:`PacerClient.can_spend` publishes a request
with a fresh ``request_id`` and a ``deadline_ms``, and waits with
``asyncio.wait_for`` for the reply carrying that id on a *fixed* replies topic (the
shared ``pacer.can-spend.replies.v1``, or a per-client ``reply_to`` topic named
``pacer.can-spend.replies.<client>`` for large fleets -- the worker refuses any other),
read by the client's own consumer that filters by request id. A timed-out request may
still be answered and hold a reservation until its TTL; retrying with the same
``request_id``, channel and amount gets that same reservation back while it is live,
never a second one, and never a new authorisation once it was settled, released or
expired (``reservation_settled`` / ``_released`` / ``_expired``; another channel or
amount is ``idempotency_conflict``).

Every payload goes through :mod:`pacer_stream.wire.records`' encoders (strict JSON, integer
micros, schema_version 1) and every record is keyed by ``campaign_id`` so a campaign's
records land on the partition of the worker that owns it.

Usage::

    async with PacerClient("127.0.0.1:9092") as client:
        await client.set_budget("camp-1", {"google_ads": 500_000_000})
        reply = await client.can_spend("camp-1", "google_ads", 2_000_000, timeout_s=0.05)
        if reply.allowed:
            ...
            await client.publish_spend("camp-1", "google_ads", 1_850_000,
                                       reservation_id=reply.reservation_id)
        await client.stop("camp-1", "runaway bidder")      # emergency stop (command)
        await client.resume("camp-1")
    # (outside ``async with``: ``await client.start()`` ... ``await client.close()``)

    async with BreakerFollower("127.0.0.1:9092") as breakers:
        if breakers.state("camp-1", "google_ads") is CircuitBreakerState.OPEN: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pacer_stream.client.publisher import SpendPublisher
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelType,
    CircuitBreakerState,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.errors import InvalidRecord
from pacer_stream.fetch_pace import FetchPace
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import (
    BreakerRecord,
    BudgetRecord,
    CanSpendReply,
    CanSpendRequest,
    CommandRecord,
    CommandType,
)

__all__ = ["BreakerFollower", "PacerClient", "SpendPublisher"]


#: The client's producer: every record is acknowledged by all in-sync replicas, and
#: sent as soon as it is handed over (spend batching is :class:`SpendPublisher`'s
#: linger, not a second one in the Kafka client; records handed over while a request
#: is in flight still travel together in the next one).
PRODUCER_SETTINGS: Mapping[str, Any] = {"acks": "all", "linger_ms": 0}
#: How the replies consumer fetches: at most 100 ms held while no reply comes, and while
#: replies flow 600 bytes (two or three replies) within 3 ms (:mod:`pacer_stream.fetch_pace`).
REPLY_FETCH_PACE = FetchPace(idle_wait_ms=100, busy_min_bytes=600, busy_wait_ms=3)


def _now() -> datetime:
    return datetime.now(UTC)


def _channel(value: ChannelType | str) -> ChannelType:
    return value if isinstance(value, ChannelType) else ChannelType(value)


class PacerClient:
    """Producer of spend/budget/command/request records and consumer of replies.

    ``bootstrap`` is a comma-separated ``host:port`` list; ``topic_prefix`` must match
    the worker's ``settings.topic_prefix``; ``reply_to`` names a replies topic of this
    client's own (created by the operator) instead of the shared one.
    ``signing_key=(key_id, secret)`` signs budgets and commands (HMAC-SHA256, see
    :mod:`pacer_stream.signing`). ``reply_fetch_pace`` paces the replies consumer's
    fetches (fuller while replies flow; ``FetchPace(idle_wait_ms=100)``: each fetch
    answered at its first reply). Extra keyword arguments (security options) go to
    both aiokafka clients.
    """

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        topic_prefix: str = "",
        reply_to: str | None = None,
        signing_key: tuple[str, bytes] | None = None,
        clock: Callable[[], datetime] = _now,
        spend_linger_ms: float = 5.0,
        reply_fetch_pace: FetchPace = REPLY_FETCH_PACE,
        **kafka_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.reply_to = reply_to
        self.replies_topic = reply_to or topic_prefix + topics.CAN_SPEND_REPLIES
        self.signing_key = signing_key
        self.clock = clock
        self._options = kafka_options
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[CanSpendReply]] = {}
        self._replies_lock = asyncio.Lock()
        self._reply_fetch_pace = reply_fetch_pace
        if spend_linger_ms < 0:
            raise ValueError("spend_linger_ms must be >= 0")
        #: Spend events are packed per campaign into batched records by this publisher
        #: (None when ``spend_linger_ms`` is 0: one record per event).
        self._publisher: SpendPublisher | None = (
            SpendPublisher(self.send, self._topic(topics.SPEND), linger_s=spend_linger_ms / 1000)
            if spend_linger_ms > 0
            else None
        )

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> PacerClient:
        from pacer_stream import signing
        from pacer_stream.connection import kafka_options
        from pacer_stream.settings import get_settings

        s = settings or get_settings()
        opts = kafka_options(s)
        bootstrap = opts.pop("bootstrap_servers")
        keys = signing.parse_keys(s.command_keys)
        kwargs: dict[str, Any] = {"topic_prefix": s.topic_prefix, **opts}
        if keys:
            key_id = next(iter(keys))
            kwargs["signing_key"] = (key_id, keys[key_id])
        kwargs.update(overrides)
        return cls(bootstrap, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, **PRODUCER_SETTINGS, **self._options
        )
        await producer.start()
        self._producer = producer

    async def close(self) -> None:
        """Send the spend events still lingering, then close the Kafka clients (pending
        can-spend calls fail with ``CancelledError``)."""
        if self._publisher is not None and self._producer is not None:
            with contextlib.suppress(Exception):  # each event's future carries its error
                await self._publisher.flush()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> PacerClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _topic(self, logical: str) -> str:
        return self.prefix + logical

    @property
    def spend_publisher(self) -> SpendPublisher:
        """The batching publisher behind :meth:`publish_spend`, for producers that queue
        many events without awaiting each (``publish(event)`` then ``flush()``)."""
        if self._publisher is None:
            raise RuntimeError("spend batching is off (spend_linger_ms=0)")
        return self._publisher

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> tuple[int, int]:
        """Produce one raw record, wait for the broker's acknowledgement and return its
        ``(partition, offset)``."""
        if self._producer is None:
            raise RuntimeError("PacerClient is not started (use start() or async with)")
        meta = await self._producer.send_and_wait(topic, value=value, key=key)
        return int(meta.partition), int(meta.offset)

    # ------------------------------------------------------------------ spend, budgets
    async def publish_spend(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        amount_micros: int,
        *,
        event_id: str | None = None,
        event_time: datetime | None = None,
        clicks: int = 0,
        conversions: int = 0,
        impressions: int | None = None,
        revenue_micros: int | None = None,
        reservation_id: str | None = None,
        source: str | None = None,
    ) -> str:
        """Publish one spend event and wait for the broker's acknowledgement; returns
        its ``event_id`` (generated when not given: pass your own to make producer
        retries idempotent). Events of a campaign published within the linger
        (``spend_linger_ms``, default 5 ms) by concurrent callers travel in one batched
        record; with ``spend_linger_ms=0`` each event is its own record."""
        event = SpendEvent(
            event_id=event_id or uuid.uuid4().hex,
            campaign_id=campaign_id,
            channel=_channel(channel),
            amount_micros=amount_micros,
            event_time=event_time or self.clock(),
            clicks=clicks,
            conversions=conversions,
            impressions=impressions,
            revenue_micros=revenue_micros,
            reservation_id=reservation_id,
        )
        if self._publisher is not None and source is None:
            await self._publisher.publish(event)
        else:  # a per-event source needs its own record (a batch has one source)
            await self.send(
                self._topic(topics.SPEND),
                campaign_id.encode(),
                records.encode_spend(event, source=source),
            )
        return event.event_id

    async def set_budget(
        self,
        campaign_id: str,
        budgets: Mapping[ChannelType | str, int],
        *,
        strategy: PacingStrategy | str = PacingStrategy.ADAPTIVE_HYBRID,
        timezone: str = "UTC",
        thresholds: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish a campaign configuration (daily budgets in micros per channel)."""
        record = BudgetRecord(
            campaign_id=campaign_id,
            timezone=timezone,
            strategy=PacingStrategy(strategy),
            channels={_channel(c): records.ChannelBudget(b) for c, b in budgets.items()},
            updated_at=self.clock(),
            thresholds=records.threshold_overrides(thresholds) if thresholds else None,
        )
        record.core_thresholds()  # validate before sending
        await self.send(
            self._topic(topics.BUDGETS), campaign_id.encode(), records.encode(self._sign(record))
        )

    async def set_config(self, config: CampaignConfig) -> None:
        """Publish a core :class:`CampaignConfig`."""
        record = BudgetRecord.from_core(config, updated_at=self.clock())
        await self.send(
            self._topic(topics.BUDGETS),
            config.campaign_id.encode(),
            records.encode(self._sign(record)),
        )

    # ------------------------------------------------------------------ commands
    async def command(
        self,
        campaign_id: str,
        command: CommandType | str,
        *,
        reason: str = "",
        channel: ChannelType | str | None = None,
        state: CircuitBreakerState | str | None = None,
        command_id: str | None = None,
    ) -> str:
        """Publish an operator command; returns its ``command_id``."""
        record = CommandRecord(
            command_id=command_id or uuid.uuid4().hex,
            campaign_id=campaign_id,
            command=CommandType(command),
            reason=reason,
            issued_at=self.clock(),
            channel=_channel(channel) if channel is not None else None,
            state=CircuitBreakerState(state) if state is not None else None,
        )
        await self.send(
            self._topic(topics.COMMANDS), campaign_id.encode(), records.encode(self._sign(record))
        )
        return record.command_id

    async def stop(self, campaign_id: str, reason: str = "emergency stop") -> str:
        """Emergency stop: every channel of the campaign forced OPEN until :meth:`resume`
        (returns the ``command_id``). Close the client itself with :meth:`close`."""
        return await self.command(campaign_id, CommandType.EMERGENCY_STOP, reason=reason)

    async def resume(self, campaign_id: str, reason: str = "resume") -> str:
        return await self.command(campaign_id, CommandType.RESUME, reason=reason)

    async def reallocate(self, campaign_id: str, reason: str = "operator") -> str:
        return await self.command(campaign_id, CommandType.REALLOCATE, reason=reason)

    async def force_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        reason: str = "operator",
    ) -> str:
        return await self.command(
            campaign_id, CommandType.FORCE_BREAKER, reason=reason, channel=channel, state=state
        )

    def _sign(self, record: Any) -> Any:
        if self.signing_key is None:
            return record
        from pacer_stream import signing

        key_id, secret = self.signing_key
        return signing.sign(record, key_id, secret, now=self.clock())

    # ------------------------------------------------------------------ can-spend
    async def can_spend(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        amount_micros: int,
        *,
        timeout_s: float = 0.1,
        request_id: str | None = None,
        deadline_ms: int | None = None,
    ) -> CanSpendReply:
        """Ask the worker; returns its reply or raises ``TimeoutError`` after
        ``timeout_s``. ``deadline_ms`` (default: the timeout, at least 1 ms) tells the
        worker when an unanswered request is no longer worth answering."""
        await self._ensure_replies()
        rid = request_id or uuid.uuid4().hex
        request = CanSpendRequest(
            request_id=rid,
            campaign_id=campaign_id,
            channel=_channel(channel),
            amount_micros=amount_micros,
            requested_at=self.clock(),
            deadline_ms=deadline_ms or max(1, int(timeout_s * 1000)),
            reply_to=self.reply_to,
        )
        payload = records.encode(request, validate=False)
        fut: asyncio.Future[CanSpendReply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            # One deadline for the whole round trip (produce + decision + reply);
            # ``asyncio.timeout`` is ``wait_for`` without a task per call.
            async with asyncio.timeout(timeout_s):
                await self.send(
                    self._topic(topics.CAN_SPEND_REQUESTS), campaign_id.encode(), payload
                )
                return await fut
        finally:
            self._pending.pop(rid, None)

    async def _ensure_replies(self) -> None:
        """Start the replies consumer (once), positioned at the end of every partition
        before the first request is sent, so no reply can be missed."""
        if self._consumer is not None:
            return
        async with self._replies_lock:  # concurrent first calls start one consumer
            if self._consumer is None:
                await self._start_replies()

    async def _start_replies(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._reply_fetch_pace.idle_wait_ms,
            **self._options,
        )
        await consumer.start()
        self._reply_fetch_pace.attach(consumer._fetcher)
        try:
            tps = await _assign_all(consumer, self.replies_topic)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._reader = asyncio.create_task(self._read_replies(consumer))

    async def _read_replies(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                for msg in batch:
                    self._on_reply(msg.value)

    def _on_reply(self, value: bytes | None) -> None:
        if not self._pending or not value:
            return
        # The shared replies topic carries every bidder's replies: look at the request id
        # cheaply first and strictly decode only our own.
        try:
            rid = orjson.loads(value).get("request_id")
        except (orjson.JSONDecodeError, AttributeError):
            return
        fut = self._pending.get(rid) if isinstance(rid, str) else None
        if fut is None or fut.done():
            return
        try:
            reply = records.decode_as(CanSpendReply, value)
        except InvalidRecord as exc:
            fut.set_exception(exc)
            return
        fut.set_result(reply)


class BreakerFollower:
    """Latest breaker state per campaign/channel, from the compacted breakers topic.

    Reads the topic from the beginning (it is compacted: one record per
    campaign/channel), then follows it. :meth:`state` answers from memory; a
    campaign/channel never seen is ``None`` (callers should treat it as CLOSED only if
    they trust the topic is complete -- :attr:`caught_up` says when the initial read
    reached the end).
    """

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        topic_prefix: str = "",
        on_change: Callable[[BreakerRecord], Awaitable[None] | None] | None = None,
        **kafka_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_prefix + topics.BREAKERS
        self.on_change = on_change
        self._options = kafka_options
        self._states: dict[tuple[str, ChannelType], BreakerRecord] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **self._options,
        )
        await consumer.start()
        try:
            tps = await _assign_all(consumer, self.topic)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer, ends))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> BreakerFollower:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def state(self, campaign_id: str, channel: ChannelType | str) -> CircuitBreakerState | None:
        rec = self._states.get((campaign_id, _channel(channel)))
        return rec.state if rec is not None else None

    def record(self, campaign_id: str, channel: ChannelType | str) -> BreakerRecord | None:
        return self._states.get((campaign_id, _channel(channel)))

    def snapshot(self) -> dict[tuple[str, ChannelType], BreakerRecord]:
        return dict(self._states)

    async def wait_for(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        *,
        timeout_s: float = 10.0,
    ) -> BreakerRecord:
        """Wait until the campaign/channel is in ``state``; ``TimeoutError`` otherwise."""
        key = (campaign_id, _channel(channel))
        want = CircuitBreakerState(state)

        async def _wait() -> BreakerRecord:
            async with self._changed:
                while True:
                    rec = self._states.get(key)
                    if rec is not None and rec.state is want:
                        return rec
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    async def _follow(self, consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> None:
        remaining = {tp for tp, end in ends.items() if end > 0}
        if not remaining:
            self.caught_up.set()
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            changed: list[BreakerRecord] = []
            for tp, batch in batches.items():
                for msg in batch:
                    rec = self._apply(msg.key, msg.value)
                    if rec is not None:
                        changed.append(rec)
                    if tp in remaining and msg.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            if not remaining and not self.caught_up.is_set():
                self.caught_up.set()
            if changed:
                async with self._changed:
                    self._changed.notify_all()
                if self.on_change is not None:
                    for rec in changed:
                        res = self.on_change(rec)
                        if res is not None:
                            await res

    def _apply(self, key: bytes | None, value: bytes | None) -> BreakerRecord | None:
        if value is None:  # tombstone: forget the campaign/channel
            if key is not None:
                with contextlib.suppress(InvalidRecord):
                    self._states.pop(records.parse_breaker_key(key), None)
            return None
        try:
            rec = records.decode_as(BreakerRecord, value)
        except InvalidRecord:
            return None
        self._states[(rec.campaign_id, rec.channel)] = rec
        return rec


async def _assign_all(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 15.0
) -> list[TopicPartition]:
    """Subscribe (without a consumer group: every partition is assigned to us) and wait
    for the assignment; raises ``LookupError`` if the topic does not show up.

    A topic created moments ago may be missing from the first metadata answer, and the
    client would not ask again for minutes (``metadata_max_age_ms``): re-subscribing
    makes it fetch the topic's metadata again (public API only)."""
    consumer.subscribe([topic])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    retry_at = loop.time() + 0.5
    while True:
        tps = sorted(consumer.assignment())
        if tps:
            return tps
        now = loop.time()
        if now > deadline:
            raise LookupError(f"topic {topic!r} does not exist (run `pacer-stream topics create`)")
        if now > retry_at:
            consumer.unsubscribe()
            consumer.subscribe([topic])
            retry_at = now + 0.5
        await asyncio.sleep(0.01)
