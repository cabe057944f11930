"""Ways a bid engine or a producer could get spend authorised past a budget, a breaker or
an emergency stop -- each reproduced through ``BudgetPacer`` and shown closed -- and a
property test that no sequence of calls opens another one.

The same rules serve the request/reply topic (component and integration tests) and the
Redis fast path (component tests against the real local Redis).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacer_stream import BudgetPacer, ChannelType, PacingStrategy, SpendTransaction
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import CircuitBreakerState, Code, Thresholds
from pacer_stream.errors import InvalidArgument

from .conftest import DAY0, UNCAPPED, Clock, F, G, Harness, U

NOON = DAY0 + timedelta(hours=12)


def _pacer(budget: str = "2400", thresholds: Thresholds = UNCAPPED) -> tuple[BudgetPacer, Clock]:
    clock = Clock(NOON)
    pacer = BudgetPacer(clock=clock, thresholds=thresholds)
    for channel in (G, F):
        pacer.allocate_hourly_budget(
            "c", channel, Decimal(budget), PacingStrategy.EVEN_DISTRIBUTION
        )
    return pacer, clock


def _spend(
    pacer: BudgetPacer,
    clock: Clock,
    amount: str,
    *,
    channel: ChannelType = G,
    reservation_id: str | None = None,
    back: timedelta = timedelta(0),
) -> bool:
    return pacer.record_spend(
        SpendTransaction(
            "c", channel, Decimal(amount), clock.now - back, reservation_id=reservation_id
        )
    )


# -- 1. a retried request id after its hold expired -------------------------------------------
def test_retry_after_the_hold_expired_authorises_nothing() -> None:
    pacer, clock = _pacer()
    clock.set(DAY0 + timedelta(hours=22, minutes=40))  # late: most of the budget is on plan
    first = pacer.reserve("c", G, Decimal("5"), request_id="q")
    assert first.allowed
    clock.advance(seconds=61)  # the 60 s hold expires unused
    _spend(pacer, clock, "2400")  # the whole daily budget is gone
    # Nobody asked for that spend: it tripped the breaker (unauthorised spend beyond 1%
    # of the budget), for the longest cooldown (an hour). Past it the breaker is
    # HALF_OPEN and the cap answers.
    assert pacer.circuit_breakers["c"][G].state is CircuitBreakerState.OPEN
    clock.advance(seconds=3601)
    fresh = pacer.reserve("c", G, Decimal("5"))
    assert not fresh.allowed and fresh.code == Code.DAILY_CAP
    for _ in range(300):
        retry = pacer.reserve("c", G, Decimal("5"), request_id="q")
        assert not retry.allowed
        assert retry.code == Code.RESERVATION_EXPIRED


def test_a_true_retry_gets_the_same_hold_and_no_second_one() -> None:
    pacer, clock = _pacer()
    first = pacer.reserve("c", G, Decimal("5"), request_id="q")
    clock.advance(seconds=10)
    again = pacer.reserve("c", G, Decimal("5"), request_id="q")
    assert again.allowed and again.reservation_id == first.reservation_id
    assert again.expires_at == first.expires_at
    assert pacer.status("c")["google_ads"]["reserved"] == Decimal("5")


def test_retry_after_settle_or_release_is_denied_with_its_own_code() -> None:
    pacer, clock = _pacer()
    settled = pacer.reserve("c", G, Decimal("5"), request_id="s")
    _spend(pacer, clock, "5", reservation_id=settled.reservation_id)
    retry = pacer.reserve("c", G, Decimal("5"), request_id="s")
    assert not retry.allowed and retry.code == Code.RESERVATION_SETTLED
    assert retry.reservation_id == settled.reservation_id  # the original answer, marked

    released = pacer.reserve("c", G, Decimal("5"), request_id="r")
    assert pacer.release("c", G, released.reservation_id or "")
    retry = pacer.reserve("c", G, Decimal("5"), request_id="r")
    assert not retry.allowed and retry.code == Code.RESERVATION_RELEASED


def test_a_live_retry_is_refused_once_the_campaign_is_stopped() -> None:
    pacer, _ = _pacer()
    assert pacer.reserve("c", G, Decimal("5"), request_id="q").allowed
    asyncio.run(pacer.emergency_stop("c", "fraud"))
    retry = pacer.reserve("c", G, Decimal("5"), request_id="q")
    assert not retry.allowed and retry.code == Code.EMERGENCY_STOP


def test_a_live_retry_is_refused_while_the_breaker_is_open() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(NOON)
    assert h.reserve(5 * U, request_id="q").allowed
    h.engine.force_breaker(h.state, G, CircuitBreakerState.OPEN, h.now)
    d = h.reserve(5 * U, request_id="q")
    assert not d.allowed and d.code is Code.BREAKER_OPEN


# -- 2. a request id reused for another channel or amount -------------------------------------
def test_request_id_reused_on_another_channel_is_a_conflict_not_a_pass() -> None:
    pacer, _ = _pacer(budget="10000")
    assert pacer.reserve("c", G, Decimal("0.000001"), request_id="A").allowed
    asyncio.run(pacer.emergency_stop("c", "fraud"))
    reused = pacer.reserve("c", F, Decimal("9000"), request_id="A")
    assert not reused.allowed and reused.code == Code.IDEMPOTENCY_CONFLICT
    fresh = pacer.reserve("c", F, Decimal("9000"), request_id="B")
    assert not fresh.allowed and fresh.code == Code.EMERGENCY_STOP


def test_request_id_reused_with_another_amount_is_a_conflict() -> None:
    pacer, _ = _pacer()
    first = pacer.reserve("c", G, Decimal("5"), request_id="A")
    other = pacer.reserve("c", G, Decimal("50"), request_id="A")
    assert not other.allowed and other.code == Code.IDEMPOTENCY_CONFLICT
    assert other.reservation_id is None
    # the original hold is untouched
    assert pacer.reserve("c", G, Decimal("5"), request_id="A").reservation_id == (
        first.reservation_id
    )


# -- 3. a settled reservation id named by later spend ------------------------------------------
def _runaway(pacer: BudgetPacer, clock: Clock, reservation_id: str | None) -> CircuitBreakerState:
    for _ in range(30):
        clock.advance(seconds=1)
        _spend(pacer, clock, "20", reservation_id=reservation_id)
    return pacer.circuit_breakers["c"][G].state


def test_one_old_reservation_id_does_not_switch_the_breaker_off() -> None:
    # a campaign that reserves; the runaway names one settled reservation every time
    pacer, clock = _pacer(budget="10000")
    old = pacer.reserve("c", G, Decimal("1"), request_id="old")
    _spend(pacer, clock, "1", reservation_id=old.reservation_id)
    assert _runaway(pacer, clock, old.reservation_id) is CircuitBreakerState.OPEN

    plain, clock = _pacer(budget="10000")
    old = plain.reserve("c", G, Decimal("1"), request_id="old")
    _spend(plain, clock, "1", reservation_id=old.reservation_id)
    assert _runaway(plain, clock, None) is CircuitBreakerState.OPEN  # same as no id


def test_a_reservation_authorises_once_up_to_its_amount_on_its_own_channel() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U}, thresholds=UNCAPPED)
    h.at(NOON)
    d = h.reserve(10 * U)
    rid = d.reservation_id
    h.spend(4 * U, reservation_id=rid, channel=F)  # foreign channel: unauthorised there
    assert h.ch(F).unauthorised.total(h.now.timestamp(), 300) == 4 * U
    assert h.ch(G).reserved_total == 10 * U  # the hold on its own channel is untouched
    h.spend(12 * U, reservation_id=rid)  # 10 authorised, 2 beyond the hold
    assert h.ch(G).unauthorised.total(h.now.timestamp(), 300) == 2 * U
    h.spend(3 * U, reservation_id=rid)  # the hold is used up
    assert h.ch(G).unauthorised.total(h.now.timestamp(), 300) == 5 * U
    h.spend(U, reservation_id="res-unknown")
    assert h.ch(G).unauthorised.total(h.now.timestamp(), 300) == 6 * U


# -- 4. back-dated settlement ----------------------------------------------------------------
def test_back_dated_settlement_counts_as_todays_spend() -> None:
    pacer, clock = _pacer(budget="100")
    granted = 0
    for i in range(200):
        r = pacer.reserve("c", G, Decimal("5"), request_id=f"q{i}")
        if not r.allowed:
            break
        granted += 5
        _spend(pacer, clock, "5", reservation_id=r.reservation_id, back=timedelta(hours=21))
        clock.advance(seconds=1)
    # Every granted unit counts as today's spend, so the caps stop the loop (before
    # this was closed, all 1,000 units were granted on the 100 budget).
    assert 5 <= granted <= 100
    assert pacer.status("c")["google_ads"]["spent"] == Decimal(granted)


def test_late_settlement_of_a_reservation_keeps_its_own_hour_when_later() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=9, minutes=59, seconds=30))
    d = h.reserve(5 * U)
    h.at(DAY0 + timedelta(hours=10, minutes=5))
    h.spend(5 * U, reservation_id=d.reservation_id, when=DAY0 + timedelta(hours=10))
    assert h.ch().spent[10] == 5 * U  # placed at its event time (after the reservation)
    d = h.reserve(5 * U)
    h.spend(5 * U, reservation_id=d.reservation_id, when=DAY0 + timedelta(hours=3))
    assert h.ch().spent[10] == 10 * U  # back-dated: no earlier than the reservation
    assert h.ch().spent[3] == 0


# -- 6. totals that would overflow ------------------------------------------------------------
def test_an_event_that_would_overflow_a_total_is_refused_and_changes_nothing() -> None:
    h = Harness({G: MAX_MICROS}, thresholds=UNCAPPED)
    h.at(NOON)
    h.spend(MAX_MICROS - 10)
    before = h.ch().spent_total
    with pytest.raises(InvalidArgument) as info:
        h.spend(11, event_id="too-much")
    assert info.value.code == "total_overflow"
    assert h.ch().spent_total == before
    assert not h.state.dedupe.seen("too-much", h.now.timestamp())  # not remembered
    with pytest.raises(InvalidArgument) as info:
        h.spend(0, clicks=MAX_MICROS + 1)
    assert h.spend(10).applied  # exactly up to the bound is fine
    assert h.ch().spent_total == MAX_MICROS


def test_facade_refuses_overflowing_spend_with_a_typed_error() -> None:
    pacer, clock = _pacer()
    big = str(Decimal(MAX_MICROS) / Decimal(1_000_000))
    _spend(pacer, clock, big)
    with pytest.raises(InvalidArgument):
        _spend(pacer, clock, "1")
    assert pacer.status("c")["google_ads"]["spent"] == Decimal(big)


# -- the property: no sequence authorises past the budget or an open breaker ------------------
@dataclass
class Bidder:
    """A bid engine that spends exactly what it is granted, once per grant it receives,
    within the reservation TTL plus the reporting grace (the documented contract), and
    a hostile one that retries, reuses ids and back-dates its reports."""

    grants: dict[str, tuple[ChannelType, int, float]] = field(default_factory=dict)
    authorised: dict[ChannelType, int] = field(default_factory=dict)
    requests: list[tuple[str, ChannelType, int]] = field(default_factory=list)


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.sampled_from([G, F]), st.integers(1, 30 * U)),
        st.tuples(st.just("retry"), st.integers(0, 40), st.integers(0, 2)),
        st.tuples(st.just("spend_grant"), st.integers(0, 40), st.integers(0, 22 * 3600)),
        st.tuples(st.just("reuse_rid"), st.integers(0, 40), st.integers(1, 30 * U)),
        st.tuples(st.just("release"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("unauthorised"), st.sampled_from([G, F]), st.integers(1, 30 * U)),
        st.tuples(st.just("stop"), st.booleans(), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 900), st.just(0)),
    ),
    min_size=1,
    max_size=70,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, budget=st.integers(10 * U, 300 * U))
def test_no_sequence_authorises_past_the_budget_or_an_open_breaker(
    actions: list[tuple[str, object, object]], budget: int
) -> None:
    t = Thresholds()
    h = Harness({G: budget, F: budget}, thresholds=t)
    h.at(DAY0 + timedelta(hours=8))
    day_end = DAY0 + timedelta(hours=23, minutes=59)
    b = Bidder()
    events = 0

    def answer(request_id: str, channel: ChannelType, amount: int) -> None:
        d = h.reserve(amount, channel, request_id=request_id)
        if not d.allowed:
            return
        ch = h.ch(channel)
        assert not h.state.emergency_stopped
        assert ch.breaker.state is not CircuitBreakerState.OPEN
        rid = d.reservation_id
        assert rid is not None
        if rid not in b.grants:  # a retry of a live hold is the same grant
            b.grants[rid] = (channel, amount, h.now.timestamp())

    for kind, a, c in actions:
        if kind == "reserve":
            assert isinstance(a, ChannelType) and isinstance(c, int)
            rq = f"q{len(b.requests)}"
            b.requests.append((rq, a, c))
            answer(rq, a, c)
        elif kind == "retry" and b.requests:
            assert isinstance(a, int) and isinstance(c, int)
            rq, channel, amount = b.requests[a % len(b.requests)]
            # 0: a true retry; 1: another channel; 2: another amount
            channel = channel if c != 1 else (F if channel is G else G)
            answer(rq, channel, amount + (U if c == 2 else 0))
        elif kind == "spend_grant" and b.grants:
            assert isinstance(a, int) and isinstance(c, int)
            rid = list(b.grants)[a % len(b.grants)]
            channel, amount, granted_at = b.grants.pop(rid)
            if h.now.timestamp() < granted_at + t.reservation_ttl_s + t.report_grace_s:
                events += 1
                h.spend(amount, channel=channel, reservation_id=rid,
                        when=h.now - timedelta(seconds=c), event_id=f"e{events}")
                b.authorised[channel] = b.authorised.get(channel, 0) + amount
        elif kind == "reuse_rid" and b.requests:
            # spend naming an old reservation id again: never authorised
            assert isinstance(a, int) and isinstance(c, int)
            rq, channel, _ = b.requests[a % len(b.requests)]
            events += 1
            h.spend(c, channel=channel, reservation_id=f"res-{rq}", event_id=f"e{events}")
        elif kind == "release" and b.grants:
            assert isinstance(a, int)
            rid = list(b.grants)[a % len(b.grants)]
            channel, _, _ = b.grants.pop(rid)
            h.engine.release(h.state, channel, rid, h.now)
        elif kind == "unauthorised":
            assert isinstance(a, ChannelType) and isinstance(c, int)
            events += 1
            h.spend(c, channel=a, event_id=f"e{events}")
        elif kind == "stop":
            if a:
                h.engine.emergency_stop(h.state, "test", h.now)
            else:
                h.engine.resume(h.state, h.now)
        elif kind == "wait":
            assert isinstance(a, int)
            h.at(min(day_end, h.now + timedelta(seconds=a)))
        for channel in (G, F):
            assert b.authorised.get(channel, 0) <= budget


def test_remaining_is_never_negative_after_unauthorised_overspend() -> None:
    """Spend nobody authorised can take a channel past its budget; answers then say 0
    remaining (the wire refuses negative money), and still deny."""
    h = Harness({G: 10 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=23))
    h.spend(25 * U)
    d = h.reserve(U)
    assert not d.allowed and d.remaining_micros == 0
    assert h.decide(U).remaining_micros == 0
