"""MemoryStore with a manual clock: the time-dependent rules, exercised by moving time.

The behaviour both stores share is in tests/component/test_fastpath_contract.py; these
tests cover what needs a controllable clock (Redis tests cannot move server time).
"""

from __future__ import annotations

import pytest

from pacer_stream.adapters import keys
from pacer_stream.adapters.memory_store import RECLAIM_BATCH, ManualClock, MemoryStore
from pacer_stream.adapters.store import ReleaseStatus, SettleStatus
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code

CH = ChannelType.SHOPPING
CID = "camp-1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ms=1_000_000)


@pytest.fixture
def store(clock: ManualClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def test_reservation_lives_for_its_ttl_then_is_reclaimed(
    store: MemoryStore, clock: ManualClock
) -> None:
    store.publish_now(CID, CH, 1_000, "closed", 600, reservation_ttl_s=60)
    r = store.reserve_now(CID, CH, 1_000, "a")
    assert r.expires_at_ms == clock() + 60_000
    clock.advance(59_999)
    assert not store.reserve_now(CID, CH, 1, "b").allowed  # still held
    clock.advance(1)  # expiry instant: reclaimed by the next call
    assert store.reserve_now(CID, CH, 1_000, "c").allowed
    assert store.release_now(r.reservation_id).status is ReleaseStatus.EXPIRED


def test_allowance_expires_by_the_clock(store: MemoryStore, clock: ManualClock) -> None:
    hook: list[Code] = []
    s = MemoryStore(clock=clock, on_fail_closed=hook.append)
    s.publish_now(CID, CH, 1_000, "closed", 10)
    clock.advance(9_999)
    assert s.reserve_now(CID, CH, 1, "a").allowed
    clock.advance(1)
    d = s.reserve_now(CID, CH, 1, "b")
    assert d.code is Code.STATE_STALE and "stale" in d.reason
    assert s.breaker_state_now(CID, CH) is None
    assert hook == [Code.STATE_STALE, Code.STATE_STALE]
    clock.advance(60_000)  # key TTL passed too: the allowance is simply gone
    assert "no circuit breaker" in s.reserve_now(CID, CH, 1, "c").reason


def test_breaker_published_alone_has_its_own_ttl(store: MemoryStore, clock: ManualClock) -> None:
    store.publish_now(CID, CH, 1_000, "closed", 600)
    store.publish_breaker_now(CID, CH, CircuitBreakerState.OPEN, 5)
    assert store.reserve_now(CID, CH, 1, "a").code is Code.BREAKER_OPEN
    clock.advance(5_000)
    assert store.reserve_now(CID, CH, 1, "a").code is Code.STATE_STALE


def test_records_are_forgotten_after_the_retention_window(
    store: MemoryStore, clock: ManualClock
) -> None:
    store.publish_now(CID, CH, 10_000, "closed", 3_600, reservation_ttl_s=10, retention_s=30)
    r = store.reserve_now(CID, CH, 1_000, "a")
    store.settle_now(r.reservation_id, 1_000)
    clock.advance(10_000 + 29_999)
    assert store.reserve_now(CID, CH, 1_000, "a").replayed  # still remembered
    clock.advance(1)
    store.reserve_now(CID, CH, 1, "other")  # any call runs the reclaim
    again = store.reserve_now(CID, CH, 1_000, "a")  # forgotten: a new reservation
    assert again.allowed and not again.replayed
    assert store.usage_now(CID, CH).consumed_micros == 1_000 + 1 + 1_000


def test_reclaim_is_bounded_per_call(store: MemoryStore, clock: ManualClock) -> None:
    n = RECLAIM_BATCH + 36
    store.publish_now(CID, CH, n * 10, "closed", 3_600, reservation_ttl_s=1)
    for i in range(n):
        assert store.reserve_now(CID, CH, 10, f"r{i}").allowed
    clock.advance(1_000)
    store.release_now(keys.reservation_id(CID, CH, store.usage_now(CID, CH).epoch, "none"))
    assert store.usage_now(CID, CH).outstanding_micros == 36 * 10
    store.release_now(keys.reservation_id(CID, CH, store.usage_now(CID, CH).epoch, "none"))
    assert store.usage_now(CID, CH).outstanding_micros == 0
    assert store.usage_now(CID, CH).remaining_micros == n * 10


def test_expired_reservation_settled_late_is_charged_once(
    store: MemoryStore, clock: ManualClock
) -> None:
    store.publish_now(CID, CH, 1_000, "closed", 3_600, reservation_ttl_s=1)
    r = store.reserve_now(CID, CH, 600, "a")
    clock.advance(1_000)
    s = store.settle_now(r.reservation_id, 700)
    assert s.status is SettleStatus.SETTLED_LATE and s.reserved_micros == 600
    assert s.remaining_micros == 300 and s.excess_micros == 0
    assert store.settle_now(r.reservation_id, 700).replayed
    assert store.usage_now(CID, CH).consumed_micros == 700


def test_quarantine_ends_after_its_period(store: MemoryStore, clock: ManualClock) -> None:
    p1 = store.publish_now(CID, CH, 1_000, "closed", 30)
    store.drop_state(CID, CH)
    p2 = store.publish_now(CID, CH, 1_000, "closed", 30, expected_epoch=p1.epoch, quarantine_s=90)
    assert p2.quarantined and p2.quarantine_until_ms == clock() + 90_000
    assert store.reserve_now(CID, CH, 1, "a").code is Code.STATE_STALE
    clock.advance(90_000)
    p3 = store.publish_now(CID, CH, 1_000, "closed", 30, expected_epoch=p2.epoch)
    assert not p3.quarantined and p3.net_micros == 1_000
    assert store.reserve_now(CID, CH, 1, "a").allowed


def test_ledger_survives_idle_periods_up_to_its_ttl(store: MemoryStore, clock: ManualClock) -> None:
    p1 = store.publish_now(CID, CH, 1_000, "closed", 30, ledger_ttl_s=3_600)
    clock.advance(3_599_000)
    p2 = store.publish_now(
        CID, CH, 1_000, "closed", 30, expected_epoch=p1.epoch, ledger_ttl_s=3_600
    )
    assert p2.epoch == p1.epoch and not p2.lost
    clock.advance(3_600_000)
    p3 = store.publish_now(CID, CH, 1_000, "closed", 30, expected_epoch=p2.epoch)
    assert p3.lost and p3.created and p3.epoch != p1.epoch


def test_settle_below_reserved_after_expiry_of_other_generation(
    store: MemoryStore, clock: ManualClock
) -> None:
    """An old generation's reservation expiring refunds nothing into the new one; the
    next publish simply stops netting it."""
    store.publish_now(CID, CH, 1_000, "closed", 600, reservation_ttl_s=5)
    store.reserve_now(CID, CH, 400, "old")
    assert store.publish_now(CID, CH, 1_000, "closed", 600).net_micros == 600
    clock.advance(5_000)
    store.reserve_now(CID, CH, 1, "tick")  # reclaims "old"
    u = store.usage_now(CID, CH)
    assert u.remaining_micros == 599 and u.outstanding_micros == 1
    assert store.publish_now(CID, CH, 1_000, "closed", 600).net_micros == 999


def test_reclaim_order_is_by_expiry_then_id(store: MemoryStore, clock: ManualClock) -> None:
    store.publish_now(CID, CH, 10_000, "closed", 600, reservation_ttl_s=1, retention_s=0.001)
    for rid in ("b", "a", "c"):
        store.reserve_now(CID, CH, 10, rid)
    clock.advance(5_000)
    channel = store._channels[(CID, CH)]
    # Same expiry for all three: ties break by member, as ZRANGEBYSCORE does.
    assert channel.timers.due(clock(), 10) == ["x:a", "x:b", "x:c", "g:a", "g:b", "g:c"]
    store.reserve_now(CID, CH, 10, "d")
    assert store.usage_now(CID, CH).outstanding_micros == 10
    assert channel.ledger is not None and set(channel.ledger.records) == {"d"}
