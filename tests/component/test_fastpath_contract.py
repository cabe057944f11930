"""The allowance store's behaviour, against the real local Redis (the Lua scripts are
the only implementation of the fast-path rules).

Reservations with a TTL of 0 expire the moment they are taken, and the next call
reclaims them; rules that need time to pass are in ``test_fastpath_expiry.py``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_store import RedisStore
from pacer_stream.adapters.store import (
    AllowanceStore,
    IdempotencyConflict,
    PublishRequest,
    ReleaseStatus,
    SettleStatus,
)
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code
from pacer_stream.errors import InvalidAmount, InvalidArgument, UnknownChannel, WrongType

from .test_fastpath_expiry import redis_time_passes

CH = ChannelType.GOOGLE_ADS


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Code] = []

    def __call__(self, reason: Code) -> None:
        self.calls.append(reason)


@pytest.fixture
def fail_closed() -> Recorder:
    return Recorder()


@pytest.fixture
async def store(redis_url: str, fail_closed: Recorder) -> AsyncIterator[Any]:
    s = RedisStore(redis_url, timeout_s=2.0, on_fail_closed=fail_closed)
    yield s
    await s.aclose()


async def drop_state(store: Any, cid: str, ch: ChannelType = CH) -> None:
    """Simulate Redis losing everything about one campaign/channel."""
    await store.redis.delete(*keys.channel_keys(cid, ch).all())


async def publish(store: Any, cid: str, amount: int, **kw: Any) -> Any:
    state = kw.pop("state", CircuitBreakerState.CLOSED)
    ttl = kw.pop("ttl_s", 30)
    return await store.publish(PublishRequest(cid, CH, amount, state, ttl, **kw))


# ------------------------------------------------------------------ basics


async def test_both_implement_the_port(store: Any) -> None:
    assert isinstance(store, AllowanceStore)


async def test_reserve_deducts_and_denies_when_amount_does_not_fit(store: Any, unique_id: str):
    p = await publish(store, unique_id, 1_000_000)
    assert p.accepted and p.generation == 1 and p.net_micros == 1_000_000 and p.created
    r = await store.reserve(unique_id, CH, 600_000, "a")
    assert r.allowed and r.code is Code.OK and r.remaining_micros == 400_000
    assert r.reservation_id and keys.parse_reservation_id(r.reservation_id).request_id == "a"
    assert r.generation == 1 and r.expires_at_ms is not None
    d = await store.reserve(unique_id, CH, 400_001, "b")
    assert not d.allowed and d.code is Code.HOURLY_CAP and d.reservation_id is None
    assert d.remaining_micros == 400_000 and "exhausted" in d.reason
    ok = await store.reserve(unique_id, CH, 400_000, "c")
    assert ok.allowed and ok.remaining_micros == 0
    u = await store.usage(unique_id, CH)
    assert (u.granted_micros, u.consumed_micros, u.remaining_micros) == (1_000_000, 1_000_000, 0)
    assert u.outstanding_micros == 1_000_000


async def test_denial_carries_the_published_limit_code(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 10, limit_code=Code.DAILY_CAP)
    d = await store.reserve(unique_id, CH, 11, "x")
    assert d.code is Code.DAILY_CAP


async def test_largest_amount_is_exact(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, MAX_MICROS)
    r = await store.reserve(unique_id, CH, MAX_MICROS - 1, "a")
    assert r.allowed and r.remaining_micros == 1
    assert (await store.reserve(unique_id, CH, 2, "b")).code is Code.HOURLY_CAP
    r2 = await store.reserve(unique_id, CH, 1, "c")
    assert r2.allowed and r2.remaining_micros == 0
    s = await store.settle(r.reservation_id, MAX_MICROS - 1)
    assert s.status is SettleStatus.SETTLED and s.refunded_micros == 0
    u = await store.usage(unique_id, CH)
    assert u.settled_micros == MAX_MICROS - 1 and u.consumed_micros == MAX_MICROS


# ------------------------------------------------------------------ breaker and staleness


@pytest.mark.parametrize("state", [CircuitBreakerState.OPEN, CircuitBreakerState.HALF_OPEN])
async def test_breaker_not_closed_denies(
    store: Any, unique_id: str, state: CircuitBreakerState
) -> None:
    await publish(store, unique_id, 1_000_000, state=state)
    d = await store.reserve(unique_id, CH, 1, "a")
    assert not d.allowed and d.code is Code.BREAKER_OPEN
    assert "circuit breaker" in d.reason
    assert await store.breaker_state(unique_id, CH) is state


async def test_publish_breaker_opens_and_closes_at_once(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000_000)
    await store.publish_breaker(unique_id, CH, CircuitBreakerState.OPEN, 30)
    assert (await store.reserve(unique_id, CH, 1, "a")).code is Code.BREAKER_OPEN
    await store.publish_breaker(unique_id, CH, "closed", 30)
    assert (await store.reserve(unique_id, CH, 1, "b")).allowed


async def test_nothing_published_is_stale(
    store: Any, unique_id: str, fail_closed: Recorder
) -> None:
    d = await store.reserve(unique_id, CH, 1, "a")
    assert not d.allowed and d.code is Code.STATE_STALE
    assert await store.breaker_state(unique_id, CH) is None
    assert fail_closed.calls == [Code.STATE_STALE, Code.STATE_STALE]


async def test_expired_allowance_is_denied_as_stale(
    store: Any, unique_id: str, fail_closed: Recorder
) -> None:
    await publish(store, unique_id, 1_000_000, ttl_s=0.05)
    await redis_time_passes(store, 51)
    d = await store.reserve(unique_id, CH, 1, "a")
    assert not d.allowed and d.code is Code.STATE_STALE
    assert await store.breaker_state(unique_id, CH) is None
    assert fail_closed.calls == [Code.STATE_STALE, Code.STATE_STALE]
    # A fresh publish makes it usable again.
    await publish(store, unique_id, 1_000_000)
    assert (await store.reserve(unique_id, CH, 1, "a")).allowed


# ------------------------------------------------------------------ idempotency


async def test_retried_reserve_returns_the_same_result_without_double_deduction(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000)
    first = await store.reserve(unique_id, CH, 300, "req-1")
    again = await store.reserve(unique_id, CH, 300, "req-1")
    assert again.replayed and not first.replayed
    assert (again.allowed, again.code, again.reservation_id, again.remaining_micros) == (
        first.allowed,
        first.code,
        first.reservation_id,
        first.remaining_micros,
    )
    assert again.expires_at_ms == first.expires_at_ms
    assert (await store.usage(unique_id, CH)).consumed_micros == 300
    conflict = await store.reserve(unique_id, CH, 301, "req-1")
    assert not conflict.allowed and conflict.code is Code.IDEMPOTENCY_CONFLICT
    assert conflict.reservation_id is None
    assert (await store.usage(unique_id, CH)).consumed_micros == 300


async def test_retry_of_an_ended_reservation_authorises_nothing(
    store: Any, unique_id: str
) -> None:
    """The same codes as the engine: a settled, released or expired hold is not granted
    again to a retry, whatever allowance is left."""
    await publish(store, unique_id, 1_000)
    s = await store.reserve(unique_id, CH, 100, "s")
    await store.settle(s.reservation_id, 100)
    again = await store.reserve(unique_id, CH, 100, "s")
    assert not again.allowed and again.code is Code.RESERVATION_SETTLED
    assert again.replayed and again.reservation_id == s.reservation_id
    r = await store.reserve(unique_id, CH, 100, "r")
    await store.release(r.reservation_id)
    again = await store.reserve(unique_id, CH, 100, "r")
    assert not again.allowed and again.code is Code.RESERVATION_RELEASED
    assert (await store.usage(unique_id, CH)).consumed_micros == 100


async def test_a_live_retry_is_refused_once_the_breaker_opens(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000)
    first = await store.reserve(unique_id, CH, 100, "q")
    assert first.allowed
    await publish(store, unique_id, 0, state=CircuitBreakerState.OPEN)
    again = await store.reserve(unique_id, CH, 100, "q")
    assert not again.allowed and again.code is Code.BREAKER_OPEN


async def test_retried_denial_is_decided_afresh(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 100)
    assert not (await store.reserve(unique_id, CH, 200, "r")).allowed
    await publish(store, unique_id, 1_000)
    assert (await store.reserve(unique_id, CH, 200, "r")).allowed


async def test_settle_and_release_are_idempotent(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000)
    a = await store.reserve(unique_id, CH, 400, "a")
    s1 = await store.settle(a.reservation_id, 250)
    s2 = await store.settle(a.reservation_id, 250)
    assert s1.status is SettleStatus.SETTLED and s1.refunded_micros == 150
    assert s2.replayed and (s2.status, s2.refunded_micros, s2.remaining_micros) == (
        s1.status,
        s1.refunded_micros,
        s1.remaining_micros,
    )
    with pytest.raises(IdempotencyConflict):
        await store.settle(a.reservation_id, 251)
    assert (await store.release(a.reservation_id)).status is ReleaseStatus.ALREADY_SETTLED
    b = await store.reserve(unique_id, CH, 100, "b")
    r1 = await store.release(b.reservation_id)
    r2 = await store.release(b.reservation_id)
    assert r1.status is ReleaseStatus.RELEASED and r1.refunded_micros == 100
    assert r2.replayed and r2.refunded_micros == 100 and r2.remaining_micros == r1.remaining_micros
    u = await store.usage(unique_id, CH)
    assert u.consumed_micros == 250 and u.outstanding_micros == 0 and u.settled_micros == 250
    # A reserve retry after release does not resurrect the reservation.
    again = await store.reserve(unique_id, CH, 100, "b")
    assert not again.allowed and again.code is Code.RESERVATION_RELEASED


# ------------------------------------------------------------------ settle amounts


async def test_settle_above_reserved_charges_down_to_zero_and_records_excess(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000)
    a = await store.reserve(unique_id, CH, 800, "a")
    s = await store.settle(a.reservation_id, 1_500)
    assert s.status is SettleStatus.SETTLED
    assert (s.reserved_micros, s.actual_micros, s.excess_micros) == (800, 1_500, 500)
    assert s.remaining_micros == 0
    u = await store.usage(unique_id, CH)
    assert u.consumed_micros == 1_000 and u.remaining_micros == 0 and u.excess_micros == 500
    assert not (await store.reserve(unique_id, CH, 1, "b")).allowed


async def test_settle_above_reserved_that_fits_takes_the_extra(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000)
    a = await store.reserve(unique_id, CH, 100, "a")
    s = await store.settle(a.reservation_id, 300)
    assert s.excess_micros == 0 and s.remaining_micros == 700


async def test_settle_zero_returns_everything(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000)
    a = await store.reserve(unique_id, CH, 1_000, "a")
    s = await store.settle(a.reservation_id, 0)
    assert s.refunded_micros == 1_000 and s.remaining_micros == 1_000


# ------------------------------------------------------------------ expiry


async def test_expired_reservation_is_reclaimed_inside_the_next_call(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000, reservation_ttl_s=0)
    a = await store.reserve(unique_id, CH, 1_000, "a")
    assert a.allowed and a.remaining_micros == 0
    # TTL 0: expired at once; the next call reclaims it before deciding.
    b = await store.reserve(unique_id, CH, 1_000, "b")
    assert b.allowed
    assert (await store.release(a.reservation_id)).status is ReleaseStatus.EXPIRED
    late = await store.settle(a.reservation_id, 400)
    assert late.status is SettleStatus.SETTLED_LATE
    # b (also expired by now) is reclaimed during the settle; the late spend is charged.
    assert late.excess_micros == 0 and late.remaining_micros == 600
    again = await store.reserve(unique_id, CH, 1_000, "a")
    assert not again.allowed and again.code is Code.RESERVATION_SETTLED  # settled late
    again = await store.reserve(unique_id, CH, 1_000, "b")
    assert not again.allowed and again.code is Code.RESERVATION_EXPIRED


async def test_settle_of_unknown_reservation_charges_the_spend_once(
    store: Any, unique_id: str
) -> None:
    p = await publish(store, unique_id, 1_000)
    rid = keys.reservation_id(unique_id, CH, p.epoch, "never-reserved")
    s1 = await store.settle(rid, 300)
    s2 = await store.settle(rid, 300)
    assert s1.status is SettleStatus.SETTLED_LATE and s1.remaining_micros == 700
    assert s2.replayed and (await store.usage(unique_id, CH)).consumed_micros == 300
    assert (await store.release(keys.reservation_id(unique_id, CH, p.epoch, "zz"))).status is (
        ReleaseStatus.UNKNOWN
    )


# ------------------------------------------------------------------ generations


async def test_new_generation_nets_outstanding_reservations_once(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000)
    old = await store.reserve(unique_id, CH, 600, "old")
    p2 = await publish(store, unique_id, 1_000)
    assert p2.generation == 2 and p2.previous_generation == 1
    assert p2.previous_remaining_micros == 400 and p2.outstanding_micros == 600
    assert p2.net_micros == 400
    # Settling the old reservation below its amount does not refund into generation 2
    # (it was netted whole); the next publish sees it no longer outstanding.
    s = await store.settle(old.reservation_id, 100)
    assert s.refunded_micros == 0 and s.remaining_micros == 400
    p3 = await publish(store, unique_id, 1_000)
    assert p3.outstanding_micros == 0 and p3.net_micros == 1_000


async def test_old_generation_release_and_expiry_do_not_refund_the_new_one(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000)
    old = await store.reserve(unique_id, CH, 300, "old")
    await publish(store, unique_id, 1_000)
    r = await store.release(old.reservation_id)
    assert r.status is ReleaseStatus.RELEASED and r.refunded_micros == 0
    assert (await store.usage(unique_id, CH)).remaining_micros == 700


async def test_old_generation_settle_above_reserved_charges_current(
    store: Any, unique_id: str
) -> None:
    await publish(store, unique_id, 1_000)
    old = await store.reserve(unique_id, CH, 300, "old")
    await publish(store, unique_id, 1_000)  # net 700
    s = await store.settle(old.reservation_id, 500)
    assert s.remaining_micros == 500 and s.excess_micros == 0


async def test_reported_spend_nets_settled_but_unreported(store: Any, unique_id: str) -> None:
    await publish(store, unique_id, 1_000)
    a = await store.reserve(unique_id, CH, 400, "a")
    await store.settle(a.reservation_id, 400)
    assert (await publish(store, unique_id, 1_000, reported_micros=0)).net_micros == 600
    assert (await publish(store, unique_id, 1_000, reported_micros=150)).net_micros == 750
    assert (await publish(store, unique_id, 1_000, reported_micros=400)).net_micros == 1_000
    assert (await publish(store, unique_id, 1_000, reported_micros=900)).net_micros == 1_000
    assert (await publish(store, unique_id, 1_000)).unreported_micros == 0


async def test_generation_fencing_rejects_stale_publishers(store: Any, unique_id: str) -> None:
    assert (await publish(store, unique_id, 1_000, generation=5)).generation == 5
    for stale in (5, 4):
        p = await publish(store, unique_id, 9_999, generation=stale)
        assert not p.accepted and p.generation == 5
    assert (await store.usage(unique_id, CH)).granted_micros == 1_000
    assert (await publish(store, unique_id, 2_000)).generation == 6


async def test_lost_ledger_is_quarantined(store: Any, unique_id: str) -> None:
    p1 = await publish(store, unique_id, 1_000)
    assert (await store.reserve(unique_id, CH, 900, "a")).allowed
    await drop_state(store, unique_id)
    p2 = await publish(store, unique_id, 1_000, expected_epoch=p1.epoch, quarantine_s=120)
    assert p2.lost and p2.created and p2.quarantined and p2.net_micros == 0
    assert p2.epoch != p1.epoch
    d = await store.reserve(unique_id, CH, 1, "b")
    assert not d.allowed and d.code is Code.STATE_STALE
    # Still quarantined on the next publish (stamp kept in the ledger).
    p3 = await publish(store, unique_id, 1_000, expected_epoch=p2.epoch)
    assert p3.quarantined and not p3.lost and p3.net_micros == 0
    # Settles naming the lost ledger cannot be applied to the new one.
    old_rid = keys.reservation_id(unique_id, CH, p1.epoch, "a")
    assert (await store.settle(old_rid, 5)).status is SettleStatus.UNKNOWN_EPOCH
    assert (await store.release(old_rid)).status is ReleaseStatus.UNKNOWN_EPOCH


async def test_lost_ledger_without_quarantine_period(store: Any, unique_id: str) -> None:
    p1 = await publish(store, unique_id, 1_000)
    await drop_state(store, unique_id)
    p2 = await publish(store, unique_id, 1_000, expected_epoch=p1.epoch, quarantine_s=0)
    assert p2.lost and not p2.quarantined and p2.net_micros == 1_000


# ------------------------------------------------------------------ invalid arguments


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (-5, InvalidAmount),
        (0, InvalidAmount),
        (MAX_MICROS + 1, InvalidAmount),
        (1.5, WrongType),
        (1.0, WrongType),
        (True, WrongType),
        ("5", WrongType),
        (None, WrongType),
    ],
)
async def test_invalid_amounts_raise_typed_errors(
    store: Any, unique_id: str, amount: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.reserve(unique_id, CH, amount, "a")


@pytest.mark.parametrize(
    ("cid", "channel", "rid", "error"),
    [
        ("", CH, "a", InvalidArgument),
        ("c", CH, "", InvalidArgument),
        ("c{x}", CH, "a", InvalidArgument),
        ("c", CH, "x" * 129, InvalidArgument),
        ("c", CH, "a\nb", InvalidArgument),
        (7, CH, "a", WrongType),
        ("c", CH, 7, WrongType),
        ("c", "carrier_pigeon", "a", UnknownChannel),
    ],
)
async def test_invalid_ids_raise_typed_errors(
    store: Any, cid: object, channel: object, rid: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.reserve(cid, channel, 1, rid)


@pytest.mark.parametrize("actual", [-1, 1.5, True, MAX_MICROS + 1])
async def test_invalid_settle_amounts_raise(store: Any, unique_id: str, actual: object) -> None:
    p = await publish(store, unique_id, 1_000)
    rid = keys.reservation_id(unique_id, CH, p.epoch, "a")
    with pytest.raises((InvalidAmount, WrongType)):
        await store.settle(rid, actual)


@pytest.mark.parametrize("rid", ["", "nope", "rsv1.", "rsv1.a.b.c", "rsv1.ab.!!.google_ads.YQ"])
async def test_malformed_reservation_ids_raise(store: Any, rid: str) -> None:
    with pytest.raises(InvalidArgument):
        await store.settle(rid, 1)
    with pytest.raises(InvalidArgument):
        await store.release(rid)


async def test_invalid_publish_arguments_raise(store: Any, unique_id: str) -> None:
    with pytest.raises(InvalidAmount):
        await store.publish(PublishRequest(unique_id, CH, -1, "closed", 30))
    with pytest.raises(WrongType):
        await store.publish(PublishRequest(unique_id, CH, 1.0, "closed", 30))
    with pytest.raises(InvalidArgument):
        await store.publish(PublishRequest(unique_id, CH, 1, "ajar", 30))
    with pytest.raises(InvalidArgument):
        await store.publish(PublishRequest(unique_id, CH, 1, "closed", 0))
    with pytest.raises(InvalidArgument):
        await store.publish(PublishRequest(unique_id, CH, 1, "closed", float("nan")))
    with pytest.raises(InvalidArgument):
        await store.publish(PublishRequest(unique_id, CH, 1, "closed", 30, generation=0))


# ------------------------------------------------------------------ random walk


async def test_random_operations_keep_the_books_balanced(store: Any, unique_id: str) -> None:
    """Invariants after every step: remaining never negative, consumed never above
    granted (plus nothing), outstanding == sum of live reservations of the ledger."""
    rng = random.Random(7)
    live: dict[str, tuple[str, int]] = {}  # reservation_id -> (request_id, amount)
    await publish(store, unique_id, 50_000)
    for step in range(400):
        op = rng.random()
        if op < 0.55:
            rid = f"r{rng.randrange(300)}"
            amount = rng.randrange(1, 3_000)
            try:
                r = await store.reserve(unique_id, CH, amount, rid)
            except IdempotencyConflict:
                continue
            assert r.remaining_micros >= 0
            if r.allowed and not r.replayed:
                live[r.reservation_id] = (rid, amount)
        elif op < 0.75 and live:
            res_id = rng.choice(sorted(live))
            s = await store.settle(res_id, rng.randrange(0, 4_000))
            assert s.remaining_micros >= 0
            live.pop(res_id)
        elif op < 0.9 and live:
            res_id = rng.choice(sorted(live))
            await store.release(res_id)
            live.pop(res_id)
        elif op < 0.95:
            p = await publish(store, unique_id, rng.randrange(0, 60_000))
            assert p.net_micros >= 0
        u = await store.usage(unique_id, CH)
        assert 0 <= u.consumed_micros <= u.granted_micros, step
        assert u.remaining_micros == u.granted_micros - u.consumed_micros
        assert u.outstanding_micros == sum(a for _, a in live.values()), step


