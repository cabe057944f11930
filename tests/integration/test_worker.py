"""The worker on the real local Kafka: spend in, alerts/breakers/DLQ/replies out.

Each test runs its own worker subprocess on its own topics (see ``conftest.py``); the
worker's clock reads 12:00 UTC. Waits poll conditions with bounded timeouts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pacer_stream.client.kafka import BreakerFollower, PacerClient
from pacer_stream.core.types import CircuitBreakerState
from pacer_stream.wire import topics

from .conftest import BOOTSTRAP, Collector, StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.integration

UNIT = 1_000_000


async def _spent(worker: WorkerProcess, cid: str, channel: str, amount: int) -> bool:
    ch = worker.channel(cid, channel)
    return ch is not None and ch["spent_micros"] == amount


async def test_spend_alerts_breakers_dlq_and_views(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    collect: Callable[[str], Awaitable[Collector]],
) -> None:
    worker = workers()
    worker.start()
    alerts = await collect(topics.ALERTS)
    dlq = await collect(topics.DLQ)
    await worker.wait_ready()
    cid = f"c-{uuid.uuid4().hex[:8]}"
    await client.set_budget(
        cid,
        {"google_ads": 1000 * UNIT, "display": 200 * UNIT},
        strategy="even_distribution",
        thresholds={"breaker_cooldown_s": 2},
    )
    await poll(lambda: worker.status(cid), what="campaign configured")

    # normal spend, and the same event delivered twice (producer retry): counted once
    await client.publish_spend(cid, "google_ads", 2 * UNIT, event_id="e1")
    await client.publish_spend(cid, "google_ads", 3 * UNIT, event_id="e2")
    await client.publish_spend(cid, "google_ads", 2 * UNIT, event_id="e1")
    await poll(lambda: _spent(worker, cid, "google_ads", 5 * UNIT), what="5 units spent")

    def third_applied() -> bool:  # the duplicate (3rd record) was seen, and changed nothing
        body = worker.status(cid)
        return body is not None and body["offsets"].get(topics.SPEND) == 2

    await poll(third_applied, what="duplicate processed")
    assert worker.channel(cid, "google_ads")["spent_micros"] == 5 * UNIT  # type: ignore[index]

    # malformed records: each one dead-lettered with its code, state unchanged
    before = worker.status(cid)
    bad = [
        (b"{not json", "invalid_json"),
        (
            b'{"schema_version":1,"event_id":"x","campaign_id":"'
            + cid.encode()
            + b'","channel":"google_ads","amount_micros":1.5,"event_time":"2026-01-01T00:00:00Z",'
            b'"clicks":0,"conversions":0}',
            "float_not_allowed",
        ),
    ]
    for payload, _ in bad:
        await client.send(stream_run.topic(topics.SPEND), cid.encode(), payload)
    expected = len(bad)
    await poll(lambda: len(dlq.values()) >= expected, what=f"{expected} DLQ records")
    entries = dlq.values()
    for (payload, code), entry in zip(bad, entries, strict=False):
        assert entry.error_code == code
        assert entry.payload == payload
        assert entry.source_topic == stream_run.topic(topics.SPEND)
        assert entry.key == cid.encode() and entry.offset >= 0
    after = worker.status(cid)
    assert after is not None and before is not None
    assert [c["spent_micros"] for c in after["channels"]] == [
        c["spent_micros"] for c in before["channels"]
    ]
    assert after["offsets"] == before["offsets"]
    assert after["dedupe_entries"] == before["dedupe_entries"]

    # runaway spend: the breaker opens (compacted topic) and alerts fire once
    async with BreakerFollower(BOOTSTRAP, topic_prefix=stream_run.prefix) as follower:
        for i in range(4):
            await client.publish_spend(cid, "google_ads", 240 * UNIT, event_id=f"big{i}")
        opened = await follower.wait_for(cid, "google_ads", CircuitBreakerState.OPEN)
        assert opened.cause.value in {
            "runaway_velocity",
            "overspend_ahead_of_plan",
            "repeated_overspend",
        }
        await alerts.wait(
            lambda a: a.campaign_id == cid and a.alert_type.value == "circuit_breaker_open",
            what="circuit_breaker_open alert",
        )
        # cooldown (2 s) elapses -> the maintenance timer publishes HALF_OPEN
        await follower.wait_for(cid, "google_ads", CircuitBreakerState.HALF_OPEN, timeout_s=30)
    opens = [a for a in alerts.values() if a.alert_type.value == "circuit_breaker_open"]
    assert len(opens) == 1, "alerts are de-duplicated per state change"
    reply = await client.can_spend(cid, "google_ads", UNIT, timeout_s=10)
    assert reply.code.value in {
        "ok",
        "circuit_breaker_half_open_limit",
        "daily_budget_exhausted",
        "hourly_cap_reached",
        "velocity_limit",
    }

    # views
    assert worker.get("/healthz")[0] == 200
    code, text = worker.get("/metrics")
    assert code == 200 and "pacer_spend_events_total" in text
    assert 'pacer_dlq_records_total{error_code="invalid_json"' in text
    assert 'pacer_consumer_lag_messages{topic="pacer.spend.v1"}' in text
    assert "pacer_breaker_transitions_total" in text and "pacer_alerts_emitted_total" in text
    assert worker.get("/campaigns/nope")[0] == 404


async def test_can_spend_request_reply_and_no_joint_overspend(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
) -> None:
    worker = workers()
    worker.start()
    await worker.wait_ready()
    cid = f"c-{uuid.uuid4().hex[:8]}"
    await client.set_budget(
        cid,
        {"google_ads": 12_000 * UNIT},
        strategy="even_distribution",
        thresholds={"reservation_ttl_s": 600, "velocity_multiple": 1000.0},
    )
    await poll(lambda: worker.status(cid), what="campaign configured")

    first = await client.can_spend(cid, "google_ads", UNIT, timeout_s=10)
    assert first.allowed and first.reservation_id and first.expires_at is not None
    assert first.remaining_micros == 11_999 * UNIT
    retry = await client.can_spend(
        cid, "google_ads", UNIT, timeout_s=10, request_id=first.request_id
    )
    assert retry.reservation_id == first.reservation_id  # idempotent by request id

    # 4 independent bidders x 30 concurrent requests of 5 units: more than the hour has
    # released (about 1/6 of 1000 units at 12:00 with the 10-minute release lead)
    bidders = [stream_run.client() for _ in range(4)]
    for b in bidders:
        await b.start()
    try:
        replies = await asyncio.gather(
            *(
                b.can_spend(cid, "google_ads", 5 * UNIT, timeout_s=20)
                for b in bidders
                for _ in range(30)
            )
        )
    finally:
        for b in bidders:
            await b.close()
    granted = sum(5 * UNIT for r in replies if r.allowed)
    denied = [r for r in replies if not r.allowed]
    assert denied, "demand exceeded the allowance, some requests must be denied"
    assert {r.code.value for r in denied} <= {"hourly_cap_reached", "daily_budget_exhausted"}
    ch = worker.channel(cid, "google_ads")
    assert ch is not None
    # every grant is held, and all holds together fit the hour's released allowance
    assert ch["reserved_micros"] == UNIT + granted
    assert ch["reserved_micros"] <= ch["hour_allowance_micros"] <= 12_000 * UNIT
    assert granted >= 20 * UNIT, "some of the concurrent requests must have been granted"
    assert len({r.reservation_id for r in replies if r.allowed}) == len(replies) - len(denied)

    # a request that waited past its deadline is denied by the worker's clock
    late = await client.can_spend(cid, "google_ads", UNIT, timeout_s=10, deadline_ms=1)
    assert not late.allowed and late.code.value == "deadline_expired"
    unknown = await client.can_spend("nobody-" + cid, "google_ads", UNIT, timeout_s=10)
    assert unknown.code.value == "unknown_campaign"

    # settle a reservation with a spend event: reserved drops, spend counted once
    await client.publish_spend(
        cid, "google_ads", UNIT // 2, event_id="settle-1", reservation_id=first.reservation_id
    )
    await poll(lambda: _spent(worker, cid, "google_ads", UNIT // 2), what="settled spend")
    ch = worker.channel(cid, "google_ads")
    assert ch is not None and ch["reserved_micros"] == granted


async def test_bad_input_corpus_goes_to_dlq(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    collect: Callable[[str], Awaitable[Collector]],
) -> None:
    """Every malformed input of the contract corpus (bad JSON, NaN, huge numbers, floats
    for micros, unknown channel, duplicate keys, missing fields, oversized, unknown
    schema version, far past/future times...) is dead-lettered with its code, and no
    state appears."""
    from contract import load_corpus

    worker = workers()
    worker.start()
    dlq = await collect(topics.DLQ)
    await worker.wait_ready()
    expected: dict[tuple[str, int, int], str] = {}
    for case in load_corpus():
        if case.topic not in topics.INPUT_TOPICS:
            continue
        key = b"cmp-1"
        partition, offset = await client.send(stream_run.topic(case.topic), key, case.payload)
        expected[(stream_run.topic(case.topic), partition, offset)] = case.code
    await poll(lambda: len(dlq.values()) >= len(expected), what=f"{len(expected)} DLQ records")
    got = {(d.source_topic, d.partition, d.offset): d.error_code for d in dlq.values()}
    assert got == expected
    assert len(expected) >= 80
    assert worker.status("cmp-1") is None  # nothing was applied


async def test_reply_to_topic_and_timeouts(
    stream_run: StreamRun, workers: Callable[..., WorkerProcess], client: PacerClient
) -> None:
    # no worker yet: the wait is bounded by the caller's timeout
    with pytest.raises(TimeoutError):
        await client.can_spend("nobody", "google_ads", UNIT, timeout_s=0.3)
    worker = workers()
    worker.start()
    await worker.wait_ready()
    # a per-client reply topic
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    own = stream_run.prefix + "pacer.can-spend.replies.bidder-1"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(own, 1, 1)])
    finally:
        await admin.close()
    cid = f"c-{uuid.uuid4().hex[:8]}"
    await client.set_budget(cid, {"display": 50 * UNIT}, strategy="even_distribution")
    await poll(lambda: worker.status(cid), what="campaign configured")
    mine = PacerClient(
        BOOTSTRAP, topic_prefix=stream_run.prefix, reply_to=own, clock=stream_run.now
    )
    await mine.start()
    try:
        reply = await mine.can_spend(cid, "display", UNIT // 10, timeout_s=10)
        assert reply.allowed, reply
    finally:
        await mine.close()


async def test_redis_fast_path_follows_the_worker(tmp_path: Path, kafka_available: None) -> None:
    """With Redis publishing on, a budget yields a fast-path allowance and an emergency
    stop closes the fast path at once."""
    from pacer_stream.client.fastpath import FastPathClient
    from pacer_stream.settings import Settings
    from pacer_stream.streams.admin import create_topics

    from .conftest import _delete_topics

    run = StreamRun(tmp_path, redis=True)
    run.offset_s = 0.0  # Redis judges staleness in real time
    await create_topics(run.settings())
    worker = WorkerProcess(run)
    client = run.client()
    try:
        worker.start()
        await worker.wait_ready()
        await client.start()
        cid = f"c-{uuid.uuid4().hex[:8]}"
        await client.set_budget(cid, {"search": 5000 * UNIT}, strategy="even_distribution")
        async with FastPathClient(Settings().redis_url) as fp:

            async def reserved() -> bool:
                r = await fp.reserve(cid, "search", 1000, request_id=uuid.uuid4().hex)
                return r.allowed

            await poll(reserved, what="fast-path allowance published")
            await client.stop(cid, "test")

            async def closed() -> bool:
                r = await fp.reserve(cid, "search", 1000, request_id=uuid.uuid4().hex)
                return not r.allowed and r.code.value == "circuit_breaker_open"

            await poll(closed, what="fast path closed by the emergency stop")
    finally:
        await client.close()
        worker.stop()
        await _delete_topics(run)
