"""One input record in, encoded output records out: decode -> engine -> encode.

Why a separate, faust-free module: the faust agents (:mod:`.app`), the benchmark's plain
aiokafka loop and the component tests must do *exactly* the same work, and none of it
needs a broker. The processor holds no state of its own: the caller passes a ``lookup``
for the campaign's table value and gets back a :class:`Result` saying what to produce,
what table value to write (the caller writes it, so the changelog message comes from the
caller's stream context) and which campaign/channels' Redis allowances are now stale.

No pacing rule lives here: every decision, alert and breaker transition comes from
:class:`~pacer_stream.core.engine.PacingEngine`. This module only enforces the stream
semantics:

* **at-least-once + idempotent apply**: a record at or below the campaign's stored
  input-offset high-water mark (``state.offsets[topic]``) was already applied before a
  crash and is skipped; producer retries (same ``event_id``, new offset) are caught by
  the engine's event-id window;
* **bad input never changes state**: every decode error, key mismatch, authentication
  failure and core error (``InvalidTime``...) becomes one DLQ record with the original
  bytes and a stable code; rare operations (budgets, commands) run on a copy of the
  state that replaces the original only on success;
* **decisions use the worker's clock** (``clock.now()``), never a bidder's timestamp; a
  can-spend request's own ``requested_at`` only serves to drop it past its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pacer_stream import signing
from pacer_stream.adapters import keys as fastpath_keys
from pacer_stream.core import serde
from pacer_stream.core.calendar import from_ts as _from_ts
from pacer_stream.core.engine import PacingEngine, SpendResult
from pacer_stream.core.grants import Grant, grant_of
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import (
    Alert,
    BreakerTransition,
    BudgetMove,
    ChannelType,
    CircuitBreakerState,
    Code,
    Decision,
    Output,
    PaceSnapshot,
)
from pacer_stream.errors import InvalidRecord, PacerError
from pacer_stream.observability import metrics
from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.clock import Clock, WallClock
from pacer_stream.streams.limits import UNBUDGETED_CAMPAIGN_LIMIT, AlertLimiter, CampaignQuota
from pacer_stream.streams.names import TopicNames
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import (
    BudgetRecord,
    CanSpendRequest,
    CommandRecord,
    CommandType,
    SpendBatchRecord,
    SpendRecord,
)

log = get_logger("pacer_stream.streams")
audit = get_logger("pacer_stream.audit")

#: Code of a record that made the processor itself fail (a bug, never expected).
INTERNAL_ERROR = "internal_error"
#: Default of ``settings.max_unbudgeted_campaigns``.
DEFAULT_MAX_UNBUDGETED_CAMPAIGNS = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    """One record to produce (``topic`` is the actual topic name)."""

    topic: str
    key: bytes | None
    #: None: a tombstone (a changelog key removed).
    value: bytes | None
    #: Partition to write to (the changelog: the campaign's own); None = by key.
    partition: int | None = None
    #: Campaign whose state this output reports (replies, alerts, breaker states, pace
    #: snapshots); None for records that report no state (DLQ entries). An output waits
    #: only for the delivery of its own campaign's changelog write.
    campaign: str | None = None
    #: Input records this changelog write covers that are held unacknowledged until it
    #: is delivered (the spend path's deferred value writes, see ``value_writes``).
    releases: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Input:
    """One input record as read from Kafka (``topic`` is the actual topic name)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Result:
    """What handling one record (or one timer step) asks the caller to do."""

    #: Records to produce, in order.
    messages: list[Message] = field(default_factory=list)
    #: Table value to write (changelog) under its campaign id; None = nothing durable
    #: changed.
    store: Stored | None = None
    #: Campaign/channels whose Redis allowance should be republished.
    dirty: list[tuple[str, ChannelType]] = field(default_factory=list)
    #: What happened, for logs and tests: applied, late, duplicate, replayed, dlq,
    #: replied, expired, accepted, ignored, ticked, reallocated.
    status: str = ""
    #: Breaker changes (campaign, channel, new state), pushed to Redis at once.
    breakers: list[tuple[str, ChannelType, CircuitBreakerState]] = field(default_factory=list)
    #: A grant that changed nothing else: the campaign (changed in place) and the grant,
    #: made durable as a record of its own instead of the campaign's value
    #: (:mod:`.grants`); ``store`` is then None.
    grant: tuple[Stored, Grant] | None = None


Lookup = Callable[[str], Stored | None]
R = TypeVar("R", SpendRecord, CanSpendRequest, BudgetRecord, CommandRecord)


@dataclass(frozen=True, slots=True)
class Allowance:
    """What to publish to Redis for one campaign/channel."""

    campaign_id: str
    channel: ChannelType
    allowance_micros: int
    breaker_state: CircuitBreakerState
    limit_code: Code


class Processor:
    """Stateless handler of input records and timer steps (see the module docstring)."""

    def __init__(
        self,
        *,
        engine: PacingEngine | None = None,
        names: TopicNames | None = None,
        clock: Clock | None = None,
        command_keys: Mapping[str, bytes] | None = None,
        require_signed: bool = False,
        max_payload_bytes: int = records.DEFAULT_MAX_PAYLOAD_BYTES,
        max_batch_bytes: int = records.MAX_BATCH_BYTES,
        quota: CampaignQuota | None = None,
        alert_limiter: AlertLimiter | None = None,
    ) -> None:
        self.engine = engine or PacingEngine()
        self.names = names or TopicNames()
        self.clock: Clock = clock or WallClock()
        self.command_keys = dict(command_keys or {})
        self.require_signed = require_signed
        self.max_payload_bytes = max_payload_bytes
        self.max_batch_bytes = max_batch_bytes
        self.quota = quota or CampaignQuota(DEFAULT_MAX_UNBUDGETED_CAMPAIGNS)
        #: Logical input topic -> its handler (each takes one :class:`Input`).
        self._handlers: dict[str, Callable[[Input, Lookup, datetime], Result]] = {
            topics.SPEND: self._spend,
            topics.CAN_SPEND_REQUESTS: self._request,
            topics.BUDGETS: self._budget,
            topics.COMMANDS: self._command,
        }
        self.alert_limiter = alert_limiter or AlertLimiter()
        #: Recent decisions, breaker transitions and alerts per campaign for the operator
        #: page (observability only: nothing here is read back by a rule).
        self.activity: ActivityLog | None = None
        #: The spend metrics of the records handled inside :meth:`counting`, if any.
        self._batch_tally: _SpendTally | None = None

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Hand the spend metrics of every record handled inside to the metrics once, at
        the end (the worker wraps each batch of input records in it; ``handle`` wraps a
        record handled on its own): with one event a record, a counter and a histogram
        update per record were ~5% of its cost."""
        self._batch_tally = tally = _SpendTally()
        try:
            yield
        finally:
            self._batch_tally = None
            tally.observe()

    def _tally(self) -> _SpendTally:
        """The tally of the :meth:`counting` scope in force (``handle`` opens one for a
        record handled on its own)."""
        tally = self._batch_tally
        assert tally is not None, "spend handled outside Processor.counting"
        return tally

    @classmethod
    def from_settings(
        cls, settings: Any, *, clock: Clock | None = None, engine: PacingEngine | None = None
    ) -> Processor:
        return cls(
            engine=engine,
            names=TopicNames.from_settings(settings),
            clock=clock or WallClock(float(settings.clock_offset_s)),
            command_keys=signing.parse_keys(settings.command_keys),
            require_signed=bool(settings.require_signed_commands),
            max_payload_bytes=int(settings.max_payload_bytes),
            max_batch_bytes=int(settings.max_batch_payload_bytes),
            quota=CampaignQuota(int(settings.max_unbudgeted_campaigns)),
            alert_limiter=AlertLimiter(
                int(settings.alert_burst), float(settings.alert_burst_window_s)
            ),
        )

    # ------------------------------------------------------------------ input records
    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        lookup: Lookup,
    ) -> Result:
        """Handle one input record read from ``topic`` (actual name). Never raises for
        any input: failures become a DLQ record."""
        if self._batch_tally is None:  # a record on its own: its metrics at its end
            with self.counting():
                return self.handle(topic, partition, offset, key, value, lookup)
        now = self.clock.now()
        record = Input(topic, partition, offset, key, value)
        handler = self._handlers.get(self.names.logical(topic) or "")
        try:
            if handler is None:
                raise InvalidRecord("unknown_topic", f"not an input topic: {topic!r}")
            return handler(record, lookup, now)
        except PacerError as exc:
            return self.dead_letter(topic, partition, offset, key, value, exc.code, exc.message)
        except Exception as exc:  # a bug must not stop the partition: park the record
            log.exception("processor_error", topic=topic, partition=partition, offset=offset)
            return self.dead_letter(
                topic, partition, offset, key, value, INTERNAL_ERROR, f"{type(exc).__name__}"
            )

    def _decode(self, cls: type[R], record: Input, now: datetime | None) -> R:
        """The prologue of every handler: strict decode (size cap, time window when
        ``now`` is given) and the record key must name the payload's campaign."""
        rec = records.decode_as(cls, record.value, now=now, max_bytes=self.max_payload_bytes)
        records.check_key(rec, record.key)
        return rec

    def dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        code: str,
        message: str,
        *,
        batch_index: int | None = None,
    ) -> Result:
        """A DLQ record for a refused input (original key and bytes kept); for one event
        of a batch, that event's bytes and its ``batch_index``."""
        now = self.clock.now()
        logical = self.names.logical(topic) or topic
        metrics.observe_dlq(logical, code)
        if logical == topics.SPEND:
            metrics.observe_spend_event("dlq")
        payload = records.encode_dlq(
            topic, partition, offset, key, value, code, message, now, batch_index=batch_index
        )
        log.info("dead_lettered", topic=topic, partition=partition, offset=offset, error_code=code)
        return Result([Message(self.names.dlq, key, payload)], status="dlq")

    def _spend(self, record: Input, lookup: Lookup, now: datetime) -> Result:
        # No time window in decode: the engine judges event times with the campaign's
        # own thresholds (history_days, max_future_skew_s) and the same codes.
        rec = records.decode(
            topics.SPEND,
            record.value,
            max_bytes=self.max_payload_bytes,
            max_batch_bytes=self.max_batch_bytes,
        )
        assert isinstance(rec, SpendRecord | SpendBatchRecord)
        records.check_key(rec, record.key)
        stored = self._spend_target(rec.campaign_id, record.partition, lookup)
        state = stored.state
        if state.offsets.get(topics.SPEND, -1) >= record.offset:
            metrics.observe_spend_event("duplicate", count=_event_count(rec))
            return Result(status="replayed")
        if isinstance(rec, SpendRecord):
            try:
                applied = self._apply_spend(stored, rec, now, self._tally())
            except PacerError:
                self._forget_if_empty(stored)
                raise
            state.offsets[topics.SPEND] = record.offset
            stored.partition = record.partition
            if applied is None:
                return Result(store=stored, status="duplicate")
            res, late = applied
            return Result(
                self.emit(res.outputs),
                stored,
                [(rec.campaign_id, rec.channel)],
                "late" if late else "applied",
                _breakers(res.outputs),
            )
        return self._spend_batch(rec, record, stored, now)

    def _spend_batch(
        self, batch: SpendBatchRecord, record: Input, stored: Stored, now: datetime
    ) -> Result:
        """Every event of a batch is judged on its own: a refused one goes to the DLQ
        alone (its own bytes and its index in the batch) and the rest apply; the batch
        is one input offset, so the high-water mark covers all of it at once."""
        messages: list[Message] = []
        outputs: list[Output] = []
        dirty: dict[tuple[str, ChannelType], None] = {}
        applied = 0
        refused = [(r.index, r.code, r.message, r.payload) for r in batch.rejected]
        tally = self._tally()
        for index, rec in zip(batch.indexes, batch.events, strict=True):
            try:
                result = self._apply_spend(stored, rec, now, tally)
            except PacerError as exc:
                event_bytes = records.encode_spend(rec.to_core(), source=rec.source)
                refused.append((index, exc.code, exc.message, event_bytes))
                continue
            if result is not None:
                applied += 1
                outputs.extend(result[0].outputs)
                dirty[(rec.campaign_id, rec.channel)] = None
        for index, code, message, payload in sorted(refused):
            messages.extend(
                self.dead_letter(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    payload,
                    code,
                    message,
                    batch_index=index,
                ).messages
            )
        if not applied:
            self._forget_if_empty(stored)
        stored.state.offsets[topics.SPEND] = record.offset
        stored.partition = record.partition
        messages[:0] = self.emit(outputs)
        status = "applied" if applied else ("dlq" if refused else "duplicate")
        return Result(messages, stored, list(dirty), status, _breakers(outputs))

    def _spend_target(self, campaign_id: str, partition: int, lookup: Lookup) -> Stored:
        """The campaign's value; spend without a budget is still a fact: it creates the
        campaign, up to a quota of such campaigns."""
        stored = lookup(campaign_id)
        if stored is not None:
            return stored
        if not self.quota.admit(campaign_id):
            raise InvalidRecord(
                UNBUDGETED_CAMPAIGN_LIMIT,
                f"this worker already holds {self.quota.limit} campaigns without a "
                "budget; spend for another one is not recorded",
            )
        return Stored(self.engine.new_campaign(campaign_id), partition)

    def _forget_if_empty(self, stored: Stored) -> None:
        state = stored.state
        if not state.configured and not state.channels:
            self.quota.budgeted(state.campaign_id)  # nothing was created after all

    def _apply_spend(
        self, stored: Stored, rec: SpendRecord, now: datetime, tally: _SpendTally
    ) -> tuple[SpendResult, bool] | None:
        """One event through ``engine.record_spend``: its result and whether it was late
        (an earlier hour or day), or None for a duplicate. Raises the engine's
        :class:`PacerError` for an event it refuses (state unchanged)."""
        res = self.engine.record_spend(stored.state, rec.to_core(), now)
        if res.duplicate:
            tally.add("duplicate", rec.channel, 0)
            return None
        rid = rec.reservation_id
        # Fast-path spend the core counted today is "reported" to Redis, which then
        # stops holding it back from the allowance; spend the engine filed under an
        # earlier day is not (today's allowance never saw it), so Redis keeps holding
        # it back: the two agree on where the money went, erring on the side of less.
        if (
            rid is not None
            and res.placement == "today"
            and fastpath_keys.is_fastpath_reservation_id(rid)
        ):
            try:
                epoch = fastpath_keys.parse_reservation_id(rid).epoch
            except PacerError:
                epoch = ""
            if epoch:
                stored.add_fastpath_spend(rec.channel.value, epoch, rec.amount_micros)
        now_s, event_s = now.timestamp(), rec.event_time.timestamp()
        # Late: filed under an earlier day, or an earlier hour of today.
        late = res.placement != "today" or event_s // 3600 < now_s // 3600
        tally.add("late" if late else "applied", rec.channel, rec.amount_micros, now_s - event_s)
        return res, late

    def _request(self, record: Input, lookup: Lookup, now: datetime) -> Result:
        started = time.perf_counter()
        rec = self._decode(CanSpendRequest, record, now)
        offset = record.offset
        reply_topic = self.names.reply_topic(rec.reply_to)
        stored = lookup(rec.campaign_id)
        state = stored.state if stored is not None else None
        if now > rec.deadline:
            ch = state.channels.get(rec.channel) if state is not None else None
            decision = Decision(
                False,
                Code.DEADLINE_EXPIRED,
                f"request waited past its deadline ({rec.deadline_ms} ms after requested_at)",
                ch.remaining if ch is not None else 0,
            )
            return self._reply(rec, decision, reply_topic, now, started, None, [], "expired")
        if state is not None and state.offsets.get(topics.CAN_SPEND_REQUESTS, -1) >= offset:
            # Answered before a crash; a bidder that lost the reply retries with the same
            # request_id and gets the same reservation back (engine.reserve is idempotent).
            return Result(status="replayed")
        retry = state is not None and rec.request_id in state.answered
        decision, outputs = self.engine.reserve(
            state, rec.channel, rec.amount_micros, rec.request_id, now
        )
        durable = None
        grant = None
        if stored is not None and state is not None:
            state.offsets[topics.CAN_SPEND_REQUESTS] = offset
            # A denial or a retry changes nothing durable (lazy expiry is recomputed
            # after a crash); a new hold does, and a plain one is a record of its own.
            new_hold = decision.allowed and not retry
            if new_hold and not outputs:
                held = grant_of(state, rec.channel, rec.request_id)
                grant = (stored, held) if held is not None else None
            if outputs or (new_hold and grant is None):
                durable = stored
        result = self._reply(rec, decision, reply_topic, now, started, durable, outputs, "replied")
        if grant is not None:
            result.grant = grant
            result.dirty = [(rec.campaign_id, rec.channel)]
        return result

    def _reply(
        self,
        rec: CanSpendRequest,
        decision: Decision,
        reply_topic: str,
        now: datetime,
        started: float,
        store: Stored | None,
        outputs: list[Output],
        status: str,
    ) -> Result:
        payload = records.encode_reply(rec, decision, decided_at=now, validate=False)
        reply = Message(reply_topic, rec.campaign_id.encode(), payload, None, rec.campaign_id)
        messages = [*self.emit(outputs), reply]
        metrics.observe_decision("kafka", decision.code, time.perf_counter() - started)
        if self.activity is not None:
            self.activity.record_decision(
                rec.campaign_id, rec.channel, rec.amount_micros, decision, now
            )
        dirty = [(rec.campaign_id, rec.channel)] if store is not None else []
        return Result(messages, store, dirty, status, _breakers(outputs))

    def _budget(self, record: Input, lookup: Lookup, now: datetime) -> Result:
        rec = self._decode(BudgetRecord, record, now)
        partition, offset = record.partition, record.offset
        stored = lookup(rec.campaign_id)
        nonces = dict(stored.nonces) if stored is not None else {}
        if self.require_signed:
            self._authenticate(rec, "budget", nonces, now, record)
        if stored is not None and stored.state.offsets.get(topics.BUDGETS, -1) >= offset:
            return Result(status="replayed")
        config = rec.to_core()
        # Work on a copy so a failure half-way cannot leave a half-configured campaign.
        copy = _copy_state(stored) if stored is not None else None
        state, outputs = self.engine.configure(copy, config, now)
        state.offsets[topics.BUDGETS] = offset
        if stored is None:
            stored = Stored(state, partition)
        else:
            stored.state = state
            stored.partition = partition
        stored.nonces = nonces
        stored.config_applied_at = now.timestamp()
        stored.config_updated_at = rec.updated_at.timestamp()
        self.quota.budgeted(rec.campaign_id)
        log.info(
            "budget_applied",
            campaign_id=rec.campaign_id,
            channels={c.value: cc.daily_budget_micros for c, cc in config.channels.items()},
            strategy=config.strategy.value,
            timezone=config.timezone,
        )
        dirty = [(rec.campaign_id, c) for c in state.channels]
        return Result(self.emit(outputs), stored, dirty, "applied", _breakers(outputs))

    def _command(self, record: Input, lookup: Lookup, now: datetime) -> Result:
        rec = self._decode(CommandRecord, record, now)
        partition, offset = record.partition, record.offset
        command = rec.command.value
        stored = lookup(rec.campaign_id)
        nonces = dict(stored.nonces) if stored is not None else {}
        if self.require_signed:
            try:
                self._authenticate(rec, command, nonces, now, record)
            except signing.CommandRejected:
                metrics.observe_command(command, "rejected")
                raise
        if stored is not None and stored.state.offsets.get(topics.COMMANDS, -1) >= offset:
            return Result(status="replayed")
        if stored is None:
            if rec.command not in (CommandType.EMERGENCY_STOP, CommandType.FORCE_BREAKER):
                metrics.observe_command(command, "accepted")
                self._audit(rec, "accepted", "unknown campaign: nothing to do", record)
                return Result(status="ignored")
            # A stop for a campaign not seen yet must hold once its budget arrives.
            stored = Stored(self.engine.new_campaign(rec.campaign_id), partition)
            state = stored.state
        else:
            state = _copy_state(stored)
        if not self.engine.first_time(state, "command", rec.command_id, now):
            self._audit(rec, "duplicate", "command_id already applied", record)
            return Result(status="duplicate")
        try:
            outputs = self._apply_command(state, rec, now)
        except Exception:
            # The copy shares the campaign's id window: a command that did not apply
            # must not be remembered as applied.
            self.engine.forget_input(state, "command", rec.command_id)
            raise
        state.offsets[topics.COMMANDS] = offset
        stored.state = state
        stored.partition = partition
        stored.nonces = nonces
        metrics.observe_command(command, "accepted")
        self._audit(rec, "accepted", "", record)
        dirty = [(rec.campaign_id, c) for c in state.channels]
        return Result(self.emit(outputs), stored, dirty, "accepted", _breakers(outputs))

    def _apply_command(
        self, state: CampaignState, rec: CommandRecord, now: datetime
    ) -> list[Output]:
        e = self.engine
        if rec.command is CommandType.EMERGENCY_STOP:
            if rec.channel is not None:  # narrowed to one channel: hold it OPEN
                return e.force_breaker(state, rec.channel, CircuitBreakerState.OPEN, now)
            return e.emergency_stop(state, rec.reason, now)
        if rec.command is CommandType.RESUME:
            return e.resume(state, now)
        if rec.command is CommandType.REALLOCATE:
            return e.reallocate(state, now)[1]
        assert rec.channel is not None and rec.state is not None  # checked by decode
        return e.force_breaker(state, rec.channel, rec.state, now)

    def _authenticate(
        self,
        rec: BudgetRecord | CommandRecord,
        what: str,
        nonces: dict[str, float],
        now: datetime,
        record: Input,
    ) -> None:
        try:
            signing.verify(rec, self.command_keys, now, nonces)
        except signing.CommandRejected as exc:
            audit.warning(
                "command_rejected",
                command=what,
                campaign_id=rec.campaign_id,
                key_id=rec.key_id,
                nonce=rec.nonce,
                error_code=exc.code,
                reason=exc.message,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
            raise

    def _audit(self, rec: CommandRecord, result: str, note: str, record: Input) -> None:
        audit.info(
            "command",
            result=result,
            command=rec.command.value,
            command_id=rec.command_id,
            campaign_id=rec.campaign_id,
            channel=rec.channel.value if rec.channel else None,
            state=rec.state.value if rec.state else None,
            reason=rec.reason,
            key_id=rec.key_id,
            signed=rec.signature is not None,
            note=note,
            topic=record.topic,
            offset=record.offset,
        )

    # ------------------------------------------------------------------ outputs
    def emit(self, outputs: Iterable[Output]) -> list[Message]:
        """Encode engine outputs as records of the output topics (and count them)."""
        outputs = list(outputs)
        if self.activity is not None:
            self.activity.record_outputs(outputs)
        out: list[Message] = []
        for o in outputs:
            if isinstance(o, Alert):
                channel = o.channel.value if o.channel is not None else ""
                if not self.alert_limiter.allow(o.campaign_id, channel, o.at.timestamp()):
                    metrics.observe_alert_suppressed(o.alert_type)
                    continue
                metrics.observe_alert(o.alert_type)
                value = records.encode_alert(o, validate=False)
                out.append(
                    Message(self.names.alerts, o.campaign_id.encode(), value, None, o.campaign_id)
                )
            elif isinstance(o, BreakerTransition):
                metrics.observe_breaker_transition(o.state)
                value = records.encode_breaker(o, validate=False)
                key = records.breaker_key(o.campaign_id, o.channel)
                out.append(Message(self.names.breakers, key, value, None, o.campaign_id))
                log.info(
                    "breaker_transition",
                    campaign_id=o.campaign_id,
                    channel=o.channel.value,
                    previous=o.previous.value,
                    state=o.state.value,
                    cause=o.cause.value,
                )
            elif isinstance(o, BudgetMove):
                moved = metrics.observe_reallocation({c.value: d for c, d in o.deltas.items()})
                log.info(
                    "budget_moved",
                    campaign_id=o.campaign_id,
                    deltas={c.value: d for c, d in o.deltas.items()},
                    moved_micros=moved,
                    reason=o.reason,
                )
            elif isinstance(o, PaceSnapshot):
                value = records.encode_pace(o, validate=False)
                out.append(
                    Message(self.names.pace, o.campaign_id.encode(), value, None, o.campaign_id)
                )
        return out

    # ------------------------------------------------------------------ timer steps
    def expired(self, stored: Stored) -> bool:
        """True when the campaign should leave the table (see ``PacingEngine.expired``);
        the caller deletes it and writes the tombstone."""
        if not self.engine.expired(stored.state, self.clock.now()):
            return False
        self.quota.budgeted(stored.campaign_id)
        return True

    def tick(self, stored: Stored) -> Result:
        """Publish due time-based transitions (reservation expiry, cooldowns, alerts)."""
        outputs = self.engine.tick(stored.state, self.clock.now())
        if not outputs:
            return Result(status="ticked")
        cid = stored.campaign_id
        dirty = [(cid, c) for c in stored.state.channels]
        return Result(self.emit(outputs), stored, dirty, "ticked", _breakers(outputs))

    def reallocate(self, stored: Stored) -> Result:
        deltas, outputs = self.engine.reallocate(stored.state, self.clock.now())
        if not deltas and not outputs:
            return Result(status="ticked")
        cid = stored.campaign_id
        dirty = [(cid, c) for c in deltas]
        return Result(self.emit(outputs), stored, dirty, "reallocated", _breakers(outputs))

    def snapshots(self, stored: Stored) -> Result:
        """Pace snapshots of every channel (after a tick, so no transition is lost)."""
        result = self.tick(stored)
        now = self.clock.now()
        snaps = [self.engine.snapshot(stored.state, c, now) for c in list(stored.state.channels)]
        result.messages.extend(self.emit(snaps))
        return result

    def breaker_states(self, stored: Stored) -> list[Message]:
        """The current breaker record of every channel (to heal the compacted topic after
        a crash may have lost a transition)."""
        out: list[Message] = []
        state = stored.state
        for channel, ch in state.channels.items():
            br = ch.breaker
            if br.cause is None:  # never transitioned: no record (followers assume CLOSED)
                continue
            tr = BreakerTransition(
                campaign_id=state.campaign_id,
                channel=channel,
                previous=br.state,
                state=br.state,
                cause=br.cause,
                since=_from_ts(br.since),
                until=_from_ts(br.until) if br.until is not None else None,
                forced=br.forced,
            )
            value = records.encode_breaker(tr, validate=False)
            key = records.breaker_key(state.campaign_id, channel)
            out.append(Message(self.names.breakers, key, value, None, state.campaign_id))
        return out

    def allowances(
        self, stored: Stored, channels: Iterable[ChannelType], slice_s: float
    ) -> tuple[Result, list[Allowance]]:
        """Allowances to publish to Redis (after a tick: ``engine.allowance`` touches the
        state and would otherwise swallow a due breaker transition)."""
        result = self.tick(stored)
        now = self.clock.now()
        state = stored.state
        out: list[Allowance] = []
        for channel in channels:
            ch = state.channels.get(channel)
            if ch is None:
                continue
            amount = self.engine.allowance(state, channel, now, slice_s)
            # The rule that bounds the allowance, as the engine names it.
            probe = self.engine.decide(state, channel, amount + 1, now)
            code = probe.code if probe.code in _LIMIT_CODES else Code.HOURLY_CAP
            out.append(Allowance(state.campaign_id, channel, amount, ch.breaker.state, code))
        return result, out

    def status(self, stored: Stored) -> dict[str, Any]:
        """Status of a campaign, read in place (no copy: the view runs on the event loop
        the agents share, and copying a campaign with a large event-id window would
        stall them).

        Reading applies only the lazy time transitions every decision applies (expiry,
        day roll, cooldown end): they are a function of the clock, recomputed the same
        way after a crash, and any transition they produce waits in the campaign's
        outbox for the next record or timer to publish -- the view itself produces
        nothing and writes no changelog."""
        now = self.clock.now()
        state = stored.state
        channels = []
        for channel, ch in state.channels.items():
            snap = self.engine.snapshot(state, channel, now)
            br = ch.breaker
            channels.append(
                {
                    "channel": channel.value,
                    "budget_micros": snap.budget_micros,
                    "spent_micros": snap.spent_micros,
                    "reserved_micros": snap.reserved_micros,
                    "remaining_micros": ch.remaining,
                    "planned_micros": snap.planned_micros,
                    "pace_ratio": snap.pace_ratio,
                    "time_elapsed_pct": snap.time_elapsed_pct,
                    "hour_allowance_micros": snap.hour_allowance_micros,
                    "hour_spent_micros": snap.hour_spent_micros,
                    "pacing_multiplier": snap.pacing_multiplier,
                    "reservations": len(ch.reservations),
                    "clicks": snap.clicks,
                    "conversions": snap.conversions,
                    "impressions": snap.impressions,
                    "revenue_micros": snap.revenue_micros,
                    # CTR, conversion rate, CPC, CPA, ROAS: today, 7 days, baseline
                    "performance": snap.performance,
                    "breaker": {
                        "state": br.state.value,
                        "cause": br.cause.value if br.cause else None,
                        "since": records.format_time(_from_ts(br.since)) if br.cause else None,
                        "until": records.format_time(_from_ts(br.until)) if br.until else None,
                        "forced": br.forced,
                    },
                }
            )
        return {
            "campaign_id": state.campaign_id,
            "configured": state.configured,
            "timezone": state.timezone,
            "strategy": state.strategy.value,
            "emergency_stopped": state.emergency_stopped,
            "stop_reason": state.stop_reason,
            "offsets": dict(state.offsets),
            "dedupe_entries": len(state.dedupe),
            "partition": stored.partition,
            "at": records.format_time(now),
            "channels": channels,
        }


_LIMIT_CODES = frozenset({Code.DAILY_CAP, Code.HOURLY_CAP, Code.VELOCITY})


class _SpendTally:
    """Spend counted per (result, channel) while a record's events apply, handed to the
    metrics once per record: a batch of 1,000 events costs one counter update per kind
    and one histogram update per lag bucket instead of 1,000 of each."""

    __slots__ = ("_counts", "_lags")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ChannelType], list[int]] = {}
        self._lags: list[float] = []

    def add(
        self, result: str, channel: ChannelType, amount_micros: int, lag_s: float | None = None
    ) -> None:
        counted = self._counts.get((result, channel))
        if counted is None:
            self._counts[(result, channel)] = [1, amount_micros]
        else:
            counted[0] += 1
            counted[1] += amount_micros
        if lag_s is not None:
            self._lags.append(lag_s)

    def observe(self) -> None:
        for (result, channel), (count, amount) in self._counts.items():
            metrics.observe_spend_event(result, channel=channel, amount_micros=amount, count=count)
        self._counts.clear()
        metrics.observe_event_lags(self._lags)
        self._lags.clear()


def _event_count(rec: SpendRecord | SpendBatchRecord) -> int:
    if isinstance(rec, SpendRecord):
        return 1
    return len(rec.events) + len(rec.rejected)


def _breakers(outputs: Iterable[Output]) -> list[tuple[str, ChannelType, CircuitBreakerState]]:
    return [
        (o.campaign_id, o.channel, o.state) for o in outputs if isinstance(o, BreakerTransition)
    ]


def _copy_state(stored: Stored) -> CampaignState:
    """A deep, exact copy of the campaign state (via the table's own serialiser) that
    shares the campaign's event-id window: budgets never touch it, a command adds its
    own id and takes it back if it fails, and copying a day of ids would cost as much
    as the ids themselves."""
    copy = serde.from_dict(serde.to_dict(stored.state, dedupe=False))
    copy.dedupe = stored.state.dedupe
    return copy
