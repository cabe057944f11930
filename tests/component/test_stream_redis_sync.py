"""The worker's Redis sync: allowances and breaker states reach the fast path, failures
never reach the stream. A fake publisher checks the contract; the last test goes through
the real ``RedisPublisher`` and ``FastPathClient`` on the local Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    PacingStrategy,
)
from pacer_stream.observability.health import WorkerStatus
from pacer_stream.streams.clock import ManualClock
from pacer_stream.streams.processor import Processor, Result
from pacer_stream.streams.redis_sync import REDIS_PUBLISHES, RedisSync
from pacer_stream.streams.stored import Stored

GOOGLE = ChannelType.GOOGLE_ADS
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[Any, ...]] = []

    async def publish(
        self,
        campaign_id: str,
        channel: Any,
        allowance_micros: int,
        breaker_state: Any,
        ttl_s: float | None = None,
        *,
        reported_micros: int | None = None,
        limit_code: Code = Code.HOURLY_CAP,
    ) -> Any:
        if self.fail:
            raise ConnectionError("redis down")
        self.calls.append(
            (
                "publish",
                campaign_id,
                channel,
                allowance_micros,
                breaker_state,
                reported_micros,
                limit_code,
            )
        )
        return type(
            "R", (), {"accepted": True, "quarantined": False, "lost": False, "excess_micros": 0}
        )()

    async def publish_breaker(
        self, campaign_id: str, channel: Any, state: Any, ttl_s: float | None = None
    ) -> int:
        if self.fail:
            raise ConnectionError("redis down")
        self.calls.append(("breaker", campaign_id, channel, state))
        return 0

    def known_epoch(self, campaign_id: str, channel: Any) -> str | None:
        return None


def _stored(processor: Processor, cid: str) -> Stored:
    cfg = CampaignConfig(
        cid, {GOOGLE: ChannelConfig(1_000_000_000)}, PacingStrategy.EVEN_DISTRIBUTION
    )
    state, _ = processor.engine.configure(None, cfg, processor.clock.now())
    return Stored(state, partition=0)


def _sync(
    publisher: Any, table: dict[str, Stored], owned: set[int], status: WorkerStatus | None = None
) -> tuple[RedisSync, Processor, list[Result]]:
    processor = Processor(clock=ManualClock(NOON))
    applied: list[Result] = []
    sync = RedisSync(
        publisher,
        processor,
        lookup=table.get,
        owned=lambda p: p in owned,
        apply=applied.append,
        slice_s=10,
        status=status,
    )
    return sync, processor, applied


async def test_marked_allowances_are_published_with_the_core_figure() -> None:
    pub = FakePublisher()
    table: dict[str, Stored] = {}
    sync, processor, _ = _sync(pub, table, {0})
    table["c1"] = _stored(processor, "c1")
    sync.mark([("c1", GOOGLE), ("c1", GOOGLE)])  # coalesced
    assert await sync.flush() == 1
    ((kind, cid, ch, allowance, breaker, reported, code),) = pub.calls
    expected = processor.engine.allowance(table["c1"].state, GOOGLE, NOON, 10)
    assert (kind, cid, ch, breaker) == ("publish", "c1", GOOGLE, CircuitBreakerState.CLOSED)
    assert allowance == expected > 0
    assert reported == 0  # no epoch known yet: count everything settled as unreported
    assert code in (Code.HOURLY_CAP, Code.DAILY_CAP, Code.VELOCITY)


async def test_breaker_changes_are_pushed_first_and_only_by_the_owner() -> None:
    pub = FakePublisher()
    table: dict[str, Stored] = {}
    sync, processor, _ = _sync(pub, table, {0})
    table["c1"] = _stored(processor, "c1")
    table["c2"] = _stored(processor, "c2")
    table["c2"].partition = 3  # not ours (standby / revoked)
    sync.mark([("c1", GOOGLE)])
    sync.mark_breaker("c1", GOOGLE, CircuitBreakerState.OPEN)
    sync.mark([("c2", GOOGLE)])
    await sync.flush()
    assert [c[0] for c in pub.calls] == ["breaker", "publish"]
    assert all(c[1] == "c1" for c in pub.calls)


async def test_publish_failures_are_counted_and_never_raised() -> None:
    status = WorkerStatus(redis_configured=True)
    pub = FakePublisher(fail=True)
    table: dict[str, Stored] = {}
    sync, processor, _ = _sync(pub, table, {0}, status)
    table["c1"] = _stored(processor, "c1")
    before = REDIS_PUBLISHES.labels(result="error")._value.get()
    sync.mark_breaker("c1", GOOGLE, CircuitBreakerState.OPEN)
    await sync.flush()
    assert REDIS_PUBLISHES.labels(result="error")._value.get() == before + 2
    assert status.redis_error is not None and "redis down" in status.redis_error


async def test_allowance_through_real_redis(redis_url: str) -> None:
    from pacer_stream.adapters.redis_publisher import RedisPublisher
    from pacer_stream.client.fastpath import FastPathClient

    cid = f"sync-{uuid.uuid4().hex[:10]}"
    publisher = RedisPublisher(redis_url, ttl_s=30)
    table: dict[str, Stored] = {}
    processor = Processor()  # wall clock: Redis judges staleness in its own time
    sync = RedisSync(
        publisher,
        processor,
        lookup=table.get,
        owned=lambda p: True,
        apply=lambda r: None,
        slice_s=10,
    )
    table[cid] = _stored(processor, cid)
    published: list[int] = []
    real_publish = publisher.publish

    async def spy(*args: Any, **kwargs: Any) -> Any:
        published.append(args[2])
        return await real_publish(*args, **kwargs)

    publisher.publish = spy  # type: ignore[method-assign]
    try:
        sync.mark([(cid, GOOGLE)])
        assert await sync.flush() == 1
        (allowance,) = published
        assert allowance > 0
        async with FastPathClient(redis_url) as fp:
            ok = await fp.reserve(cid, GOOGLE, allowance, request_id="all-of-it")
            assert ok.allowed, ok
            more = await fp.reserve(cid, GOOGLE, 1, request_id="one-more")
            assert not more.allowed
    finally:
        await publisher.aclose()


async def test_publisher_state_shrinks_to_what_the_worker_owns(redis_url: str) -> None:
    """The publisher remembers each campaign/channel's ledger epoch; when campaigns move
    to another worker or expire, ``retain`` drops them, so the map stays as large as
    what this worker owns."""
    from pacer_stream.adapters.redis_publisher import RedisPublisher

    kept, moved = (f"sync-{uuid.uuid4().hex[:10]}" for _ in range(2))
    publisher = RedisPublisher(redis_url, ttl_s=30, timeout_s=2.0)  # a loaded machine
    table: dict[str, Stored] = {}
    processor = Processor()
    sync = RedisSync(
        publisher, processor, lookup=table.get, owned=lambda p: True,
        apply=lambda r: None, slice_s=10,
    )
    try:
        for cid in (kept, moved):
            table[cid] = _stored(processor, cid)
        sync.mark([(kept, GOOGLE), (moved, GOOGLE)])
        assert await sync.flush() == 2
        assert publisher.known_epoch(moved, GOOGLE) is not None
        sync.retain({kept})
        assert publisher.known_epoch(moved, GOOGLE) is None
        assert publisher.known_epoch(kept, GOOGLE) is not None
    finally:
        await publisher.aclose()
