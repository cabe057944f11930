"""The fast path's time-dependent rules, against the real local Redis.

The scripts read Redis's own clock (``TIME``), so time cannot be injected; instead each
test publishes with durations of a few milliseconds and waits until *Redis's* clock has
passed the instant in question (:func:`redis_time_passes` polls ``TIME``, it does not
guess with a sleep). Every rule checked here is the Lua script's, the only
implementation there is.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from importlib import resources

import pytest

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_store import RedisStore
from pacer_stream.adapters.store import PublishRequest, ReleaseStatus, SettleStatus
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code

pytestmark = pytest.mark.redis

CH = ChannelType.SHOPPING
MS = 0.001  # one millisecond, in the seconds the store's API takes


def _reclaim_batch() -> int:
    """Timers reclaimed per call, as the Lua library defines it."""
    lib = resources.files("pacer_stream.adapters").joinpath("lua/_lib.lua").read_text()
    match = re.search(r"RECLAIM_BATCH_TEXT = '(\d+)'", lib)
    assert match is not None
    return int(match.group(1))


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, timeout_s=2.0)
    yield s
    await s.aclose()


@pytest.fixture
def cid() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


async def _redis_ms(store: RedisStore) -> float:
    sec, usec = await store.redis.time()
    return sec * 1000 + usec / 1000


async def redis_time_passes(store: RedisStore, ms: float) -> None:
    """Return once Redis's clock reads ``ms`` later than when called."""
    target = await _redis_ms(store) + ms
    while await _redis_ms(store) < target:
        await asyncio.sleep(0.001)


async def test_reservation_lives_for_its_ttl_then_is_reclaimed(store: RedisStore, cid: str) -> None:
    await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60, reservation_ttl_s=150 * MS))
    r = await store.reserve(cid, CH, 1_000, "a")
    assert r.allowed and r.expires_at_ms is not None
    assert not (await store.reserve(cid, CH, 1, "b")).allowed  # still held
    await redis_time_passes(store, r.expires_at_ms - await _redis_ms(store) + 1)
    assert (await store.reserve(cid, CH, 1_000, "c")).allowed  # reclaimed by the call
    assert (await store.release(r.reservation_id or "")).status is ReleaseStatus.EXPIRED


async def test_an_allowance_expires_by_redis_time(store: RedisStore, cid: str) -> None:
    await store.publish(PublishRequest(cid, CH, 1_000, "closed", 100 * MS))
    assert (await store.reserve(cid, CH, 1, "a")).allowed
    await redis_time_passes(store, 101)
    d = await store.reserve(cid, CH, 1, "b")
    assert d.code is Code.STATE_STALE and "stale" in d.reason
    assert await store.breaker_state(cid, CH) is None


async def test_a_breaker_published_alone_has_its_own_ttl(store: RedisStore, cid: str) -> None:
    await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60))
    await store.publish_breaker(cid, CH, CircuitBreakerState.OPEN, 100 * MS)
    assert (await store.reserve(cid, CH, 1, "a")).code is Code.BREAKER_OPEN
    await redis_time_passes(store, 101)
    assert (await store.reserve(cid, CH, 1, "a")).code is Code.STATE_STALE


async def test_records_are_forgotten_after_the_retention_window(
    store: RedisStore, cid: str
) -> None:
    await store.publish(
        PublishRequest(
            cid, CH, 10_000, "closed", 60, reservation_ttl_s=50 * MS, retention_s=100 * MS
        )
    )
    r = await store.reserve(cid, CH, 1_000, "a")
    await store.settle(r.reservation_id or "", 1_000)
    settled = await store.reserve(cid, CH, 1_000, "a")
    assert settled.replayed and settled.code is Code.RESERVATION_SETTLED  # remembered
    await redis_time_passes(store, 151)
    await store.reserve(cid, CH, 1, "other")  # any call runs the reclaim
    again = await store.reserve(cid, CH, 1_000, "a")  # forgotten: a new reservation
    assert again.allowed and not again.replayed
    assert (await store.usage(cid, CH)).consumed_micros == 1_000 + 1 + 1_000


async def test_reclaim_is_bounded_per_call(store: RedisStore, cid: str) -> None:
    batch = _reclaim_batch()
    n = batch + 36
    # The TTL outlasts the reserve loop by far even on a loaded machine: a reserve that
    # ran after the first reservations expired would reclaim some of them itself.
    ttl_ms = 1_000
    await store.publish(
        PublishRequest(cid, CH, n * 10, "closed", 60, reservation_ttl_s=ttl_ms * MS)
    )
    for i in range(n):
        assert (await store.reserve(cid, CH, 10, f"r{i}")).allowed
    await redis_time_passes(store, ttl_ms + 1)
    epoch = (await store.usage(cid, CH)).epoch
    await store.release(keys.reservation_id(cid, CH, epoch, "none"))
    assert (await store.usage(cid, CH)).outstanding_micros == 36 * 10
    await store.release(keys.reservation_id(cid, CH, epoch, "none"))
    usage = await store.usage(cid, CH)
    assert usage.outstanding_micros == 0 and usage.remaining_micros == n * 10


async def test_an_expired_reservation_settled_late_is_charged_once(
    store: RedisStore, cid: str
) -> None:
    await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60, reservation_ttl_s=50 * MS))
    r = await store.reserve(cid, CH, 600, "a")
    await redis_time_passes(store, 51)
    s = await store.settle(r.reservation_id or "", 700)
    assert s.status is SettleStatus.SETTLED_LATE and s.reserved_micros == 600
    assert s.remaining_micros == 300 and s.excess_micros == 0
    assert (await store.settle(r.reservation_id or "", 700)).replayed
    assert (await store.usage(cid, CH)).consumed_micros == 700


async def test_quarantine_ends_after_its_period(store: RedisStore, cid: str) -> None:
    p1 = await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60))
    await store.redis.delete(*keys.channel_keys(cid, CH).all())  # Redis lost the ledger
    p2 = await store.publish(
        PublishRequest(cid, CH, 1_000, "closed", 60, expected_epoch=p1.epoch, quarantine_s=150 * MS)
    )
    assert p2.quarantined
    assert (await store.reserve(cid, CH, 1, "a")).code is Code.STATE_STALE
    await redis_time_passes(store, 151)
    p3 = await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60, expected_epoch=p2.epoch))
    assert not p3.quarantined and p3.net_micros == 1_000
    assert (await store.reserve(cid, CH, 1, "a")).allowed


async def test_an_old_generations_expiry_refunds_nothing_into_the_new_one(
    store: RedisStore, cid: str
) -> None:
    """An old generation's reservation expiring refunds nothing into the new one; the
    next publish simply stops netting it."""
    await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60, reservation_ttl_s=100 * MS))
    await store.reserve(cid, CH, 400, "old")
    assert (await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60))).net_micros == 600
    await redis_time_passes(store, 101)
    await store.reserve(cid, CH, 1, "tick")  # reclaims "old"
    u = await store.usage(cid, CH)
    assert u.remaining_micros == 599 and u.outstanding_micros == 1
    assert (await store.publish(PublishRequest(cid, CH, 1_000, "closed", 60))).net_micros == 999
