"""Component tests of the worker's agents and timers, driven by faust's
``agent.test_context()`` (no broker: records are put straight into each agent's channel,
outputs and changelog writes are read back from the app's producer buffer).

Each test uses its own campaign id: the app and its in-memory table are module-global.
The worker's clock is a :class:`ManualClock`, so time-based behaviour (reservation
expiry, breaker cooldown, deadlines) is driven without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from pacer_stream import signing
from pacer_stream.core import serde
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.settings import Settings
from pacer_stream.streams import app as app_module
from pacer_stream.streams import event_ids, grants
from pacer_stream.streams.clock import ManualClock
from pacer_stream.streams.faust_app import StoredCodec
from pacer_stream.streams.names import TopicNames
from pacer_stream.streams.side_records import is_side_key
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import CommandRecord, CommandType

GOOGLE = ChannelType.GOOGLE_ADS
DISPLAY = ChannelType.DISPLAY
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Out:
    topic: str
    key: bytes | None
    value: bytes | None

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        data: dict[str, Any] = orjson.loads(self.value)
        return data


class CapturingWorker(app_module.Worker):
    """A worker that owns partition 0 and keeps the replies it would hand to the Kafka
    producer (there is no broker in these tests), built from settings like ``main``."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        super().__init__(settings, clock)
        self.direct: list[Out] = []
        self.partitions = {0}

    def active_partitions(self) -> set[int]:
        return self.partitions

    def process(self, records: Any, *, defer_values: bool = False) -> list[Any]:
        # faust's conductor counts a reference for the stream that takes a consumed
        # record (released when the stream acknowledges it); ``agent.put`` does not.
        for record in records:
            if record.refcount == 0 and not record.acked:
                record.incref()
        return super().process(records, defer_values=defer_values)

    async def send_batch(self, messages: list[Any], inputs: Any = ()) -> None:
        self.direct.extend(Out(m.topic, m.key, m.value) for m in messages)
        for m in messages:  # each write counts as delivered at once
            if m.releases:
                self._release(m.releases)


class Harness:
    """A worker plus helpers to read what it produced."""

    def __init__(self, worker: CapturingWorker, clock: ManualClock) -> None:
        self.m = worker
        self.clock = clock
        self.names = worker.names

    def drain(self) -> list[Out]:
        """Every record produced since the last drain (outputs and changelog)."""
        queue = self.m.app.producer.buffer.pending
        out: list[Out] = []
        while not queue.empty():
            fut = queue.get_nowait()
            msg = fut.message
            out.append(Out(msg.channel.get_topic_name(), msg.key, msg.value))
        out.extend(self.m.direct)
        self.m.direct.clear()
        return out

    def on(self, outs: list[Out], logical: str) -> list[Out]:
        return [o for o in outs if o.topic == self.names.actual(logical)]

    def changelog(self, outs: list[Out]) -> list[Out]:
        """The campaign values written to the changelog (not the event-id records)."""
        return [
            o
            for o in outs
            if o.topic.endswith("-campaigns-changelog") and not is_side_key(o.key or b"")
        ]

    def grant_records(self, outs: list[Out]) -> list[Out]:
        """The grant records (and their deletions) written to the changelog."""
        return [
            o
            for o in outs
            if o.topic.endswith("-campaigns-changelog") and grants.is_grant_key(o.key or b"")
        ]

    def id_records(self, outs: list[Out]) -> list[Out]:
        """The event-id records (and tombstones) written to the changelog."""
        return [
            o
            for o in outs
            if o.topic.endswith("-campaigns-changelog") and event_ids.is_id_key(o.key or b"")
        ]

    async def put(self, agent: Any, value: bytes, key: bytes, **kw: Any) -> None:
        """Put one record and wait until the agent has handled it (agents take records
        in small batches, so ``put`` alone returns before the batch is processed)."""
        before = self.m.events_processed
        await agent.put(value, key=key, **kw)
        for _ in range(2000):
            if self.m.events_processed > before:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("record not processed within 2 s")

    def state(self, campaign_id: str) -> Any:
        stored = self.m.campaigns.get(campaign_id)
        return stored.state if stored is not None else None


def _harness(tmp_path: Any, **settings: Any) -> Harness:
    """A worker; unless a test says otherwise it writes a campaign's value with every
    batch (``value_write_interval_s=0``), so each record's state can be read back from
    the changelog at once (deferred writes have tests of their own)."""
    clock = ManualClock(NOON)
    settings.setdefault("value_write_interval_s", 0.0)
    built = CapturingWorker(
        Settings(
            app_id=f"pacer-test-{uuid.uuid4().hex[:8]}",
            redis_publish_enabled=False,
            worker_data_dir=str(tmp_path / "data"),
            **settings,
        ),
        clock,
    )
    built.status.on_recovered()  # no table recovery without a broker
    return Harness(built, clock)


@pytest.fixture
def worker(tmp_path: Any) -> Iterator[Harness]:
    w = _harness(tmp_path)
    w.drain()
    yield w
    w.drain()


@pytest.fixture
def cid() -> str:
    return f"camp-{uuid.uuid4().hex[:10]}"


def _budget(cid: str, **thresholds: Any) -> bytes:
    cfg = CampaignConfig(
        cid,
        {GOOGLE: ChannelConfig(1_000_000_000), DISPLAY: ChannelConfig(200_000_000)},
        PacingStrategy.EVEN_DISTRIBUTION,
        thresholds=Thresholds(**thresholds),
    )
    return records.encode_budget(cfg, updated_at=NOON)


def _spend(
    cid: str, event_id: str, amount: int, when: datetime, channel: ChannelType = GOOGLE
) -> bytes:
    return records.encode_spend(SpendEvent(event_id, cid, channel, amount, when, clicks=1))


def _request(cid: str, rid: str, amount: int, when: datetime, **kw: Any) -> bytes:
    req = records.CanSpendRequest(
        request_id=rid, campaign_id=cid, channel=kw.pop("channel", GOOGLE),
        amount_micros=amount, requested_at=when, deadline_ms=500, **kw,
    )
    return records.encode(req)


async def _configure(w: Harness, cid: str, **thresholds: Any) -> None:
    async with w.m.budgets.test_context() as agent:
        await w.put(agent, _budget(cid, **thresholds), key=cid.encode())


async def test_budget_configures_campaign_and_writes_changelog(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    outs = worker.drain()
    state = worker.state(cid)
    assert state.configured and state.channels[GOOGLE].budget == 1_000_000_000
    assert state.offsets == {topics.BUDGETS: 0}
    log = worker.changelog(outs)
    assert [o.key for o in log] == [cid.encode()]
    restored = StoredCodec()._loads(log[0].value)
    assert restored.state == state  # the changelog value is the exact state


async def test_spend_is_applied_once_by_event_id_and_offset(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "e1", 3_000_000, NOON), key=cid.encode())  # offset 0
        await worker.put(agent, _spend(cid, "e2", 2_000_000, NOON), key=cid.encode())  # offset 1
        # producer retry: same event id, new offset -> event-id window
        await worker.put(agent, _spend(cid, "e1", 3_000_000, NOON), key=cid.encode())  # offset 2
        # crash replay: an offset at or below the high-water mark is skipped, even with a
        # new event id (the record was applied before the crash)
        agent.sent_offset = 1
        await worker.put(agent, _spend(cid, "e-replayed", 9_000_000, NOON), key=cid.encode())
    state = worker.state(cid)
    assert state.channels[GOOGLE].spent_total == 5_000_000
    assert state.offsets[topics.SPEND] == 2
    assert "e-replayed" not in state.dedupe.expiry


async def test_late_event_lands_in_its_own_hour(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(
            agent, _spend(cid, "late", 4_000_000, NOON - timedelta(hours=3)), key=cid.encode()
        )
        await worker.put(
            agent, _spend(cid, "yesterday", 7_000_000, NOON - timedelta(days=1)), key=cid.encode()
        )
    ch = worker.state(cid).channels[GOOGLE]
    assert ch.spent[9] == 4_000_000 and ch.spent_total == 4_000_000
    assert sum(b[0] for b in ch.history.buckets.values()) == 11_000_000


async def test_spend_without_budget_is_recorded_and_alerts(worker: Harness, cid: str) -> None:
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "e1", 1_000_000, NOON), key=cid.encode())
    outs = worker.drain()
    assert worker.state(cid).channels[GOOGLE].spent_total == 1_000_000
    alerts = [o.json() for o in worker.on(outs, topics.ALERTS)]
    assert [a["alert_type"] for a in alerts] == ["unbudgeted_spend"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not json", "invalid_json"),
        (b'{"schema_version": 1, "amount_micros": NaN}', "non_finite_number"),
        (b'{"schema_version": 2}', "unknown_schema_version"),
        (b"", "empty_payload"),
    ],
)
async def test_malformed_spend_goes_to_dlq_and_changes_nothing(
    worker: Harness, cid: str, payload: bytes, code: str
) -> None:
    await _configure(worker, cid)
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "ok", 1_000_000, NOON), key=cid.encode())
        before = serde.dumps(worker.state(cid))
        worker.drain()
        await worker.put(agent, payload, key=cid.encode(), partition=0)
    outs = worker.drain()
    assert serde.dumps(worker.state(cid)) == before
    assert worker.changelog(outs) == []
    (dlq,) = worker.on(outs, topics.DLQ)
    d = dlq.json()
    assert d["error_code"] == code
    assert base64.b64decode(d["payload_b64"]) == payload
    assert d["source_topic"] == worker.names.spend
    assert (d["partition"], d["offset"]) == (0, 1)
    assert base64.b64decode(d["key_b64"]) == cid.encode()
    assert dlq.key == cid.encode()


async def test_core_time_errors_go_to_dlq_with_their_code(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(
            agent, _spend(cid, "future", 1_000_000, NOON + timedelta(hours=2)), key=cid.encode()
        )
        await worker.put(
            agent, _spend(cid, "ancient", 1_000_000, NOON - timedelta(days=40)), key=cid.encode()
        )
        await worker.put(agent, _spend("other-campaign", "x", 1, NOON), key=cid.encode())
    codes = [o.json()["error_code"] for o in worker.on(worker.drain(), topics.DLQ)]
    assert codes == ["time_in_future", "time_too_old", "key_mismatch"]
    assert worker.state(cid).channels[GOOGLE].spent_total == 0


async def test_can_spend_reserves_and_replies(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "r1", 2_000_000, NOON), key=cid.encode())
        await worker.put(agent, _request(cid, "r1", 2_000_000, NOON), key=cid.encode())  # retry
        await worker.put(
            agent,
            _request(cid, "r2", 1_000_000, NOON, reply_to="pacer.can-spend.replies.bidder-7"),
            key=cid.encode(),
        )
    outs = worker.drain()
    replies = [o.json() for o in worker.on(outs, topics.CAN_SPEND_REPLIES)]
    assert [r["request_id"] for r in replies] == ["r1", "r1"]
    first, retry = replies
    assert first["allowed"] is True and first["code"] == "ok"
    assert first["reservation_id"] == retry["reservation_id"]  # idempotent by request id
    assert first["remaining_micros"] == 998_000_000
    assert first["decided_at"] == "2026-03-02T12:00:00Z"
    assert first["expires_at"] == "2026-03-02T12:01:00Z"
    custom = [o.json() for o in outs if o.topic == "pacer.can-spend.replies.bidder-7"]
    assert [r["request_id"] for r in custom] == ["r2"]
    assert worker.state(cid).channels[GOOGLE].reserved_total == 3_000_000
    assert all(o.key == cid.encode() for o in worker.on(outs, topics.CAN_SPEND_REPLIES))


async def test_can_spend_uses_worker_clock_and_deadline(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    async with worker.m.can_spend.test_context() as agent:
        # waited 2 s in the topic with a 500 ms deadline
        await worker.put(
            agent, _request(cid, "old", 1_000_000, NOON - timedelta(seconds=2)), key=cid.encode()
        )
        await worker.put(agent, _request("nobody", "r", 1_000_000, NOON), key=b"nobody")
    replies = [o.json() for o in worker.on(worker.drain(), topics.CAN_SPEND_REPLIES)]
    assert [(r["allowed"], r["code"]) for r in replies] == [
        (False, "deadline_expired"),
        (False, "unknown_campaign"),
    ]
    assert worker.state(cid).channels[GOOGLE].reserved_total == 0
    assert worker.state("nobody") is None


async def test_emergency_stop_and_resume_publish_breaker_states(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    stop = CommandRecord(
        command_id="c1",
        campaign_id=cid,
        command=CommandType.EMERGENCY_STOP,
        reason="runaway bidder",
        issued_at=NOON,
    )
    resume = CommandRecord(
        command_id="c2",
        campaign_id=cid,
        command=CommandType.RESUME,
        reason="fixed",
        issued_at=NOON,
    )
    async with worker.m.commands.test_context() as agent:
        await worker.put(agent, records.encode(stop), key=cid.encode())
        stopped = worker.drain()
        await worker.put(agent, records.encode(resume), key=cid.encode())
        resumed = worker.drain()
    states = {(o.key, o.json()["state"]) for o in worker.on(stopped, topics.BREAKERS)}
    assert states == {
        (f"{cid}:google_ads".encode(), "open"),
        (f"{cid}:display".encode(), "open"),
    }
    assert {a.json()["alert_type"] for a in worker.on(stopped, topics.ALERTS)} == {
        "circuit_breaker_open"
    }
    assert {o.json()["state"] for o in worker.on(resumed, topics.BREAKERS)} == {"half_open"}
    assert worker.state(cid).emergency_stopped is False


async def test_a_retried_command_is_applied_once(worker: Harness, cid: str) -> None:
    """A producer retry (same command_id, new offset) is not applied again (a retried
    reallocate would otherwise move budget twice, a retried stop undo a later resume)."""
    await _configure(worker, cid)
    worker.drain()
    stop = CommandRecord(
        command_id="same-id",
        campaign_id=cid,
        command=CommandType.EMERGENCY_STOP,
        reason="ops",
        issued_at=NOON,
    )
    resume = CommandRecord(
        command_id="other-id",
        campaign_id=cid,
        command=CommandType.RESUME,
        reason="ops",
        issued_at=NOON,
    )
    async with worker.m.commands.test_context() as agent:
        await worker.put(agent, records.encode(stop), key=cid.encode())
        await worker.put(agent, records.encode(resume), key=cid.encode())
        assert not worker.state(cid).emergency_stopped
        await worker.put(agent, records.encode(stop), key=cid.encode())  # the retry
    assert not worker.state(cid).emergency_stopped  # ignored: it was applied already


async def test_stop_for_unknown_campaign_sticks(worker: Harness, cid: str) -> None:
    stop = CommandRecord(
        command_id="c1",
        campaign_id=cid,
        command=CommandType.EMERGENCY_STOP,
        reason="pre-emptive",
        issued_at=NOON,
    )
    async with worker.m.commands.test_context() as agent:
        await worker.put(agent, records.encode(stop), key=cid.encode())
    await _configure(worker, cid)
    state = worker.state(cid)
    assert state.emergency_stopped and state.configured


async def test_force_breaker_and_reallocate_commands(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    force = CommandRecord(
        command_id="c1",
        campaign_id=cid,
        command=CommandType.FORCE_BREAKER,
        reason="ops",
        issued_at=NOON,
        channel=DISPLAY,
        state=CircuitBreakerState.OPEN,
    )
    realloc = CommandRecord(
        command_id="c2",
        campaign_id=cid,
        command=CommandType.REALLOCATE,
        reason="ops",
        issued_at=NOON,
    )
    async with worker.m.commands.test_context() as agent:
        await worker.put(agent, records.encode(force), key=cid.encode())
        await worker.put(agent, records.encode(realloc), key=cid.encode())
    outs = worker.drain()
    (br,) = worker.on(outs, topics.BREAKERS)
    assert br.json()["state"] == "open" and br.json()["forced"] is True
    ch = worker.state(cid).channels
    assert ch[GOOGLE].budget + ch[DISPLAY].budget == 1_200_000_000  # conserved


class TestSignedCommands:
    KEY = ("ops-1", b"s3cret")

    @pytest.fixture
    def worker(self, tmp_path: Any) -> Iterator[Harness]:
        w = _harness(tmp_path, require_signed_commands=True, command_keys="ops-1:s3cret")
        yield w
        w.drain()

    def _stop(self, cid: str, **kw: Any) -> CommandRecord:
        return CommandRecord(
            command_id=uuid.uuid4().hex,
            campaign_id=cid,
            command=CommandType.EMERGENCY_STOP,
            reason="ops",
            issued_at=NOON,
            **kw,
        )

    async def _put(self, worker: Harness, cid: str, rec: CommandRecord) -> list[Out]:
        async with worker.m.commands.test_context() as agent:
            await worker.put(agent, records.encode(rec), key=cid.encode())
        return worker.drain()

    async def test_unsigned_bad_expired_and_replayed_are_rejected(
        self, worker: Harness, cid: str
    ) -> None:
        signed = signing.sign(self._stop(cid), *self.KEY, now=NOON)
        cases = {
            "unsigned": self._stop(cid),
            "bad_signature": signing.sign(self._stop(cid), "ops-1", b"wrong", now=NOON),
            "unknown_key_id": signing.sign(self._stop(cid), "ops-9", b"s3cret", now=NOON),
            "expired": signing.sign(self._stop(cid), *self.KEY, now=NOON - timedelta(hours=1)),
        }
        for code, rec in cases.items():
            outs = await self._put(worker, cid, rec)
            assert [o.json()["error_code"] for o in worker.on(outs, topics.DLQ)] == [code]
            assert worker.state(cid) is None or not worker.state(cid).emergency_stopped
        outs = await self._put(worker, cid, signed)
        assert worker.on(outs, topics.DLQ) == []
        assert worker.state(cid).emergency_stopped
        replay = await self._put(worker, cid, signed)  # same nonce, new offset
        assert [o.json()["error_code"] for o in worker.on(replay, topics.DLQ)] == ["replayed"]

    async def test_unsigned_budget_is_rejected(self, worker: Harness, cid: str) -> None:
        async with worker.m.budgets.test_context() as agent:
            await worker.put(agent, _budget(cid), key=cid.encode())
        outs = worker.drain()
        assert [o.json()["error_code"] for o in worker.on(outs, topics.DLQ)] == ["unsigned"]
        assert worker.state(cid) is None


async def test_breaker_trips_on_runaway_spend(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    async with worker.m.spend_events.test_context() as agent:
        for i in range(4):
            await worker.put(agent, _spend(cid, f"e{i}", 240_000_000, NOON), key=cid.encode())
    outs = worker.drain()
    breakers = [o.json() for o in worker.on(outs, topics.BREAKERS)]
    assert [b["state"] for b in breakers] == ["open"]
    alerts = {o.json()["alert_type"] for o in worker.on(outs, topics.ALERTS)}
    assert "circuit_breaker_open" in alerts
    # one transition, not one per event: later spends keep it OPEN silently
    assert worker.state(cid).channels[GOOGLE].breaker.state is CircuitBreakerState.OPEN


async def test_maintenance_tick_expires_reservations_and_ends_cooldown(
    worker: Harness, cid: str
) -> None:
    await _configure(
        worker, cid, breaker_cooldown_s=30, breaker_max_cooldown_s=30, reservation_ttl_s=10
    )
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "r1", 2_000_000, NOON), key=cid.encode())
    async with worker.m.commands.test_context() as agent:
        force = CommandRecord(
            command_id="c",
            campaign_id=cid,
            command=CommandType.FORCE_BREAKER,
            reason="x",
            issued_at=NOON,
            channel=DISPLAY,
            state=CircuitBreakerState.HALF_OPEN,
        )
        await worker.put(agent, records.encode(force), key=cid.encode())
    async with worker.m.spend_events.test_context() as agent:
        # unasked spend fails the trial: DISPLAY re-opens for the longest cooldown (30 s)
        for i in range(6):
            await worker.put(
                agent, _spend(cid, f"d{i}", 60_000_000, NOON, DISPLAY), key=cid.encode()
            )
    assert worker.state(cid).channels[DISPLAY].breaker.state is CircuitBreakerState.OPEN
    worker.drain()
    worker.clock.advance(31)
    assert await worker.m.tick_all() >= 1
    outs = worker.drain()
    assert [o.json()["state"] for o in worker.on(outs, topics.BREAKERS)] == ["half_open"]
    assert worker.changelog(outs), "a timer transition must reach the changelog"
    state = worker.state(cid)
    assert state.channels[GOOGLE].reserved_total == 0  # TTL 10 s elapsed
    # nothing due: no output, no changelog write
    assert await worker.m.tick_all() >= 1
    assert worker.drain() == []


async def test_timers_act_only_on_actively_owned_partitions(
    worker: Harness, cid: str
) -> None:
    await _configure(worker, cid)
    worker.drain()
    worker.m.partitions = {5}  # standby only
    assert await worker.m.snapshot_all() == 0
    assert worker.drain() == []
    worker.m.partitions = {0}
    worker.m.status.on_rebalance_started()
    assert await worker.m.snapshot_all() == 0  # never during recovery


async def test_pace_snapshots_timer(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    await worker.m.snapshot_all()
    mine = [o.json() for o in worker.on(worker.drain(), topics.PACE) if o.key == cid.encode()]
    assert {p["channel"] for p in mine} == {"google_ads", "display"}
    assert all(p["budget_micros"] > 0 and "pace_ratio" in p for p in mine)


async def test_status_view_is_read_only(worker: Harness, cid: str) -> None:
    await _configure(worker, cid, reservation_ttl_s=10)
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "r1", 2_000_000, NOON), key=cid.encode())
    worker.drain()
    worker.clock.advance(60)
    state = worker.state(cid)
    dedupe, answered = list(state.dedupe.expiry), dict(state.answered)
    body = worker.m.processor.status(worker.m.campaigns.get(cid))
    assert body["channels"][0]["reserved_micros"] == 0  # expired in the view...
    assert worker.drain() == []  # ...which produces nothing and writes no changelog
    assert worker.state(cid) is state  # read in place, not on a copy
    assert list(state.dedupe.expiry) == dedupe and state.answered == answered
    assert body["offsets"] == {topics.BUDGETS: 0, topics.CAN_SPEND_REQUESTS: 0}
    # performance analytics are part of the status (ratios None without clicks)
    perf = body["channels"][0]["performance"]
    assert set(perf) == {"today", "last_7_days", "baseline"}
    assert perf["today"]["clicks"] == 0 and perf["today"]["conversion_rate"] is None
    assert "pacing_multiplier" in body["channels"][0]


# -- money safety on the topic path ---------------------------------------------------------
@pytest.mark.parametrize(
    "reply_to",
    [
        "{app_id}-campaigns-changelog",  # the table's changelog
        "__consumer_offsets",
        "pacer.commands.v1",
        "pacer.breakers.v1",
        "pacer.can-spend.requests.v1",
        "pacer.dlq.v1",
        "someone-elses.topic",
    ],
)
async def test_reply_to_must_name_an_allowed_reply_topic(
    worker: Harness, cid: str, reply_to: str
) -> None:
    await _configure(worker, cid)
    worker.drain()
    target = reply_to.format(app_id=worker.m.settings.app_id)
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "r1", 1_000_000, NOON, reply_to=target),
                         key=cid.encode())
    outs = worker.drain()
    dlq = [o.json() for o in worker.on(outs, topics.DLQ)]
    assert [d["error_code"] for d in dlq] == ["reply_to_not_allowed"]
    assert [o.topic for o in outs] == [worker.names.dlq]  # nothing else produced
    assert worker.state(cid).channels[GOOGLE].reserved_total == 0


async def test_request_id_reuse_on_the_topic_path(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "A", 1, NOON), key=cid.encode())
        await worker.put(agent, _request(cid, "A", 9_000_000, NOON, channel=DISPLAY),
                         key=cid.encode())
        await worker.put(agent, _request(cid, "A", 2, NOON), key=cid.encode())
        first, other_channel, other_amount = (
            o.json() for o in worker.on(worker.drain(), topics.CAN_SPEND_REPLIES)
        )
        assert first["allowed"] is True
        assert (other_channel["allowed"], other_channel["code"]) == (
            False,
            "idempotency_conflict",
        )
        assert (other_amount["allowed"], other_amount["code"]) == (False, "idempotency_conflict")
        assert worker.state(cid).channels[DISPLAY].reserved_total == 0
        # settled, the same request is answered as settled and authorises nothing new
        async with worker.m.spend_events.test_context() as spend:
            rid = first["reservation_id"]
            settle = SpendEvent("e1", cid, GOOGLE, 1, NOON, reservation_id=rid)
            await worker.put(spend, records.encode_spend(settle), key=cid.encode())
        await worker.put(agent, _request(cid, "A", 1, NOON), key=cid.encode())
    (again,) = (o.json() for o in worker.on(worker.drain(), topics.CAN_SPEND_REPLIES))
    assert (again["allowed"], again["code"]) == (False, "reservation_settled")
    assert again["reservation_id"] == first["reservation_id"]


async def test_spend_that_would_overflow_a_total_is_dead_lettered(
    worker: Harness, cid: str
) -> None:
    await _configure(worker, cid)
    top = 2**53 - 1
    async with worker.m.spend_events.test_context() as agent:
        for i in range(3):  # three maximal events: the third would pass 2**53 - 1
            await worker.put(agent, _spend(cid, f"e{i}", top // 2, NOON), key=cid.encode())
    outs = worker.drain()
    assert [o.json()["error_code"] for o in worker.on(outs, topics.DLQ)] == ["total_overflow"]
    assert worker.state(cid).channels[GOOGLE].spent_total == 2 * (top // 2)
    last = StoredCodec()._loads(worker.changelog(outs)[-1].value)
    assert last.state.channels[GOOGLE].spent_total == 2 * (top // 2)  # changelog agrees


async def test_a_state_that_cannot_be_written_quarantines_the_campaign(
    worker: Harness, cid: str
) -> None:
    """A value the codec cannot hold (here: a total corrupted past 64 bits, as a bug
    might) never crashes the agent: the record goes to the DLQ, nothing of it is
    published, the in-memory value is dropped (the changelog keeps the last good one)
    and later records of the campaign are parked too."""
    await _configure(worker, cid)
    worker.drain()
    # another channel than the one spent on: the spend's own checks pass
    worker.state(cid).channels[ChannelType.DISPLAY].clicks_today = 2**70
    try:
        async with worker.m.spend_events.test_context() as agent:
            await worker.put(agent, _spend(cid, "s1", 1_000, NOON), key=cid.encode())
            await worker.put(agent, _spend(cid, "s2", 1_000, NOON), key=cid.encode())
        outs = worker.drain()
        codes = [o.json()["error_code"] for o in worker.on(outs, topics.DLQ)]
        assert codes == ["state_write_failed", "campaign_quarantined"]
        assert worker.changelog(outs) == []
        assert worker.state(cid) is None and cid in worker.m.quarantined
    finally:
        worker.m.quarantined.discard(cid)


async def test_a_grant_writes_only_its_record_until_the_value_carries_it(
    worker: Harness, cid: str
) -> None:
    """A plain grant is a small record of its own (the campaign's value is not written);
    a retry writes nothing; the next value written carries the hold and deletes the
    grant record right after it."""
    await _configure(worker, cid)
    worker.drain()
    async with worker.m.can_spend.test_context() as agent:
        await worker.put(agent, _request(cid, "r1", 1_000_000, NOON), key=cid.encode())
        await worker.put(agent, _request(cid, "r1", 1_000_000, NOON), key=cid.encode())
    outs = worker.drain()
    replies = [o.json() for o in worker.on(outs, topics.CAN_SPEND_REPLIES)]
    assert [r["allowed"] for r in replies] == [True, True]
    assert replies[0]["reservation_id"] == replies[1]["reservation_id"]
    assert worker.changelog(outs) == []
    (record,) = worker.grant_records(outs)
    saved = grants.decode_grant(record.value)
    assert (saved.request_id, saved.amount, saved.channel) == ("r1", 1_000_000, GOOGLE)
    assert saved.reservation_id == replies[0]["reservation_id"]
    assert worker.state(cid).channels[GOOGLE].reserved_total == 1_000_000
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "s1", 1_000, NOON), key=cid.encode())
    outs = worker.drain()
    (value,) = worker.changelog(outs)
    carried = StoredCodec()._loads(value.value)
    assert carried.state.channels[GOOGLE].reserved_total == 1_000_000
    (deletion,) = worker.grant_records(outs)
    assert deletion.key == record.key and deletion.value is None
    log = [o for o in outs if o.topic.endswith("-campaigns-changelog")]
    assert log.index(deletion) > log.index(value)  # the value first, then the deletion


async def test_a_timer_write_carries_the_state_at_send_time_not_at_queue_time(
    worker: Harness, cid: str
) -> None:
    """A timer's value write is encoded when it is sent: if an agent applied a record of
    the campaign in between, the timer's (later) changelog write is the newer state, so
    compaction can never keep a value older than what the agent wrote."""
    await _configure(worker, cid)
    worker.drain()
    worker.m._write_changelog(cid)  # queued by a timer step
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "late-1", 1_000, NOON), key=cid.encode())
    await worker.m.flush_timer_writes()
    values = [
        StoredCodec()._loads(o.value) for o in worker.changelog(worker.drain())
    ]
    assert len(values) == 2  # the agent's write, then the timer's
    agent_value, timer_value = values
    assert agent_value.state.offsets[topics.SPEND] == 0
    assert timer_value.state.offsets == agent_value.state.offsets
    assert timer_value.state.channels[GOOGLE].spent_total == 1_000


async def test_fast_path_spend_is_reported_to_redis_only_where_the_core_counted_it(
    worker: Harness, cid: str
) -> None:
    """The worker tells Redis how much fast-path spend the core has counted (so the
    allowance stops holding it back). Spend the engine files under an earlier day was
    not counted today, so it is not reported: Redis keeps holding it back."""
    from pacer_stream.adapters import keys

    await _configure(worker, cid)
    rid = keys.reservation_id(cid, GOOGLE, "ep1", "r1")
    async with worker.m.spend_events.test_context() as agent:
        back = SpendEvent("e1", cid, GOOGLE, 5_000_000, NOON - timedelta(hours=21),
                          reservation_id=rid)
        await worker.put(agent, records.encode_spend(back), key=cid.encode())
        stored = worker.m.campaigns.get(cid)
        assert stored.fastpath_reported(GOOGLE.value, "ep1") == 0
        now = SpendEvent("e2", cid, GOOGLE, 2_000_000, NOON, reservation_id=rid)
        await worker.put(agent, records.encode_spend(now), key=cid.encode())
    assert worker.m.campaigns.get(cid).fastpath_reported(GOOGLE.value, "ep1") == 2_000_000


# -- bounded resources -----------------------------------------------------------------------
async def test_unbudgeted_campaigns_are_limited_per_worker(tmp_path: Any) -> None:
    worker = _harness(tmp_path, max_unbudgeted_campaigns=2)
    quota = worker.m.processor.quota
    ids = [f"ghost-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    async with worker.m.spend_events.test_context() as agent:
        for i, cid in enumerate(ids):
            await worker.put(agent, _spend(cid, f"e{i}", 1_000, NOON), key=cid.encode())
        # a known unbudgeted campaign keeps recording its spend
        await worker.put(agent, _spend(ids[0], "e9", 1_000, NOON), key=ids[0].encode())
    outs = worker.drain()
    codes = [o.json()["error_code"] for o in worker.on(outs, topics.DLQ)]
    assert codes == ["unbudgeted_campaign_limit"] * 2
    assert [worker.state(c) is not None for c in ids] == [True, True, False, False]
    assert worker.state(ids[0]).channels[GOOGLE].spent_total == 2_000
    assert quota.unbudgeted == set(ids[:2])
    await _configure(worker, ids[0])  # budgeted: no longer counts against the quota
    assert quota.unbudgeted == {ids[1]}


async def test_unbudgeted_campaigns_expire_after_the_history_horizon(
    worker: Harness, cid: str
) -> None:
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, _spend(cid, "e1", 1_000, NOON), key=cid.encode())
    stored = worker.m.campaigns.get(cid)
    stored.partition = 0
    worker.drain()
    worker.clock.advance(27 * 86400)
    await worker.m.tick_all()
    assert worker.state(cid) is not None  # within the 28-day horizon: kept
    worker.clock.advance(2 * 86400)
    await worker.m.tick_all()
    assert worker.state(cid) is None
    tombstones = [o for o in worker.changelog(worker.drain()) if o.key == cid.encode()]
    assert [t.value for t in tombstones] == [None]


def test_alert_limiter_caps_bursts_per_campaign_channel_and_its_memory() -> None:
    from pacer_stream.streams.limits import AlertLimiter

    limiter = AlertLimiter(burst=3, window_s=60, max_keys=100)
    assert [limiter.allow("c", "g", t) for t in (0, 1, 2, 3, 4)] == [True] * 3 + [False] * 2
    assert limiter.allow("c", "other", 5)  # per campaign/channel
    assert limiter.allow("c", "g", 61)  # the window moved on
    for i in range(1_000):
        limiter.allow(f"c{i}", "g", 100)
    assert len(limiter) == 100  # tracked keys stay bounded


def test_client_reply_topics_are_those_only_a_request_names() -> None:
    """The worker writes to these only because a request named them, so they may not
    exist: their replies wait for the broker's metadata off the agents' path."""
    names = TopicNames(prefix="it-1.", reply_pattern="pacer.can-spend.replies.*")
    assert names.is_client_reply_topic("it-1.pacer.can-spend.replies.bidder-7")
    for own in (names.replies, names.dlq, names.spend, "pacer.can-spend.replies.bidder-7"):
        assert not names.is_client_reply_topic(own)
