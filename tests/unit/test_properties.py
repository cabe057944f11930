"""Property tests of the core's invariants (hypothesis).

(a) allocations sum exactly to the budget, for every strategy, budget and DST day, and
    no slot is negative;
(b) whatever the interleaving of reserve / settle / expire / record, spend never exceeds
    the budget except by settlements that arrive after their reservation expired;
(c) reallocation conserves money exactly and leaves every channel >= spent + reserved;
(d) a forced-open breaker (emergency stop) never closes without resume;
(e) duplicate events (same event_id) change nothing.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.pacing import planned_at
from pacer_stream.core.reallocation import ChannelPerformance, plan_moves
from pacer_stream.core.types import (
    ChannelType,
    CircuitBreakerState,
    Code,
    PacingStrategy,
    Thresholds,
)

from .conftest import DAY0, F, G, Harness, T, U

PROPS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

#: Zones and their DST transition dates in 2026 (plus a plain day for each).
DST_DAYS = [
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Europe/London", date(2026, 3, 29)),
    ("Europe/London", date(2026, 10, 25)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),
    ("Asia/Kolkata", date(2026, 3, 8)),
    ("UTC", date(2026, 3, 8)),
]

zone_days = st.sampled_from(DST_DAYS).flatmap(
    lambda zd: st.tuples(st.just(zd[0]), st.sampled_from([zd[1] + timedelta(days=k)
                                                          for k in (-1, 0, 1)]))
)
thresholds_strategy = st.builds(
    Thresholds,
    max_hourly_spend_pct=st.floats(min_value=0.01, max_value=1.0),
    frontload_protection_hours=st.integers(min_value=0, max_value=24),
    frontload_factor=st.floats(min_value=0.0, max_value=1.0),
)
history_strategy = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=27 * 24),  # hours before the day
        st.integers(min_value=0, max_value=10**9),  # spend micros
        st.integers(min_value=0, max_value=5000),  # clicks
        st.integers(min_value=0, max_value=500),  # conversions
    ),
    max_size=60,
)


# -- (a) allocations -----------------------------------------------------------------------
@PROPS
@given(
    strategy=st.sampled_from(list(PacingStrategy)),
    zd=zone_days,
    budget=st.integers(min_value=0, max_value=MAX_MICROS),
    thresholds=thresholds_strategy,
    history=history_strategy,
    activation_s=st.one_of(st.just(0), st.integers(min_value=0, max_value=23 * 3600)),
)
def test_allocations_sum_exactly_to_the_budget(
    strategy: PacingStrategy,
    zd: tuple[str, date],
    budget: int,
    thresholds: Thresholds,
    history: list[tuple[int, int, int, int]],
    activation_s: int,
) -> None:
    tz, day = zd
    midnight = datetime.combine(day, time(), ZoneInfo(tz))
    start = midnight + timedelta(seconds=activation_s)
    h = Harness({G: budget}, strategy=strategy, tz=tz, thresholds=thresholds, start=start)
    ch = h.ch()
    day_start = ch.day.start  # type: ignore[union-attr]
    for hours_before, spend, clicks, conv in history:
        ch.history.add(int(day_start // 3600) - hours_before, spend, clicks, conv, 0, 0)
    h.engine.configure(h.state, h.config, start)  # re-plan with that history
    ch = h.ch()
    d = ch.day
    assert d is not None and d.date == day
    plan = ch.plan
    assert plan is not None
    assert len(plan.amounts) == d.n_slots
    assert sum(plan.amounts) == budget
    assert all(a >= 0 for a in plan.amounts)
    assert ch.cum_plan[-1] == budget
    if activation_s:
        ts = start.timestamp()
        for i in range(d.n_slots):
            if d.bounds[i + 1] <= ts:
                assert plan.amounts[i] == 0  # nothing planned before activation


# -- (b) interleavings of reserve / settle / expire / record ---------------------------------
action = st.one_of(
    st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=40 * U)),
    st.tuples(st.just("settle"), st.integers(min_value=0, max_value=50),
              st.floats(min_value=0.1, max_value=1.0)),
    st.tuples(st.just("record"), st.integers(min_value=1, max_value=40 * U)),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=900)),
    st.tuples(st.just("release"), st.integers(min_value=0, max_value=50)),
)


@settings(PROPS, max_examples=120)
@given(
    actions=st.lists(action, min_size=1, max_size=80),
    budget=st.integers(min_value=10 * U, max_value=500 * U),
    start_minute=st.one_of(
        st.integers(min_value=0, max_value=23 * 60 + 50),
        st.integers(min_value=22 * 60, max_value=23 * 60 + 50),  # the daily cap in play
    ),
    on_plan=st.floats(min_value=0.0, max_value=1.05),
)
def test_spend_never_exceeds_the_budget_beyond_late_settlements(
    actions: list[tuple], budget: int, start_minute: int, on_plan: float
) -> None:
    h = Harness({G: budget}, start=DAY0)
    h.at(DAY0 + timedelta(minutes=start_minute))
    # the day so far: spend up to ``on_plan`` x the plan, reported late (so the daily
    # cap is in play whenever the test starts late in the day)
    so_far = int(planned_at(h.ch(), h.now.timestamp()) * on_plan)
    if so_far:
        h.spend(min(so_far, budget), when=DAY0)
    pending: list[tuple[str, int, datetime]] = []  # reservation id, amount, expiry
    late = 0  # amounts settled after their reservation had expired
    day_end = DAY0 + timedelta(days=1)
    for act in actions:
        kind = act[0]
        if kind == "reserve":
            d = h.reserve(act[1])
            if d.allowed:
                assert d.reservation_id is not None and d.expires_at is not None
                pending.append((d.reservation_id, act[1], d.expires_at))
        elif kind == "settle" and pending:
            rid, amount, expires = pending.pop(act[1] % len(pending))
            actual = max(1, int(amount * act[2]))  # lower or equal to the hold
            if h.now >= expires:
                late += actual
            h.spend(actual, reservation_id=rid)
        elif kind == "release" and pending:
            rid, _, _ = pending.pop(act[1] % len(pending))
            h.engine.release(h.state, G, rid, h.now)
        elif kind == "record":
            if h.decide(act[1]).allowed:  # a bidder that checks, then spends at once
                h.spend(act[1])
        elif kind == "wait" and h.now + timedelta(seconds=act[1]) < day_end:
            h.advance(seconds=act[1])
        ch = h.ch()
        h.decide(1)  # touch: expire what is due
        active = [p for p in pending if p[2] > h.now]
        assert ch.reserved_total == sum(p[1] for p in active)
        assert ch.reserved_total >= 0
        assert ch.spent_total + ch.reserved_total <= budget + late
        assert ch.spent_total <= budget + late
    used = h.ch().spent_total / budget
    target(used)  # steer the search toward days that use the whole budget
    event("budget used >= 90%" if used >= 0.9 else "budget used < 90%")


def test_two_bidders_cannot_jointly_overspend_through_reservations() -> None:
    h = Harness({G: 100 * U}, start=DAY0 + timedelta(hours=23, minutes=50))
    # the day's last hour is released on the clock: by 23:59:59 all of it is
    h.at(DAY0 + timedelta(hours=23, minutes=59, seconds=59))
    grants = [h.reserve(30 * U) for _ in range(10)]
    allowed = [g for g in grants if g.allowed]
    assert sum(30 * U for _ in allowed) <= 100 * U
    assert any(g.code is Code.DAILY_CAP for g in grants)


# -- (c) reallocation ---------------------------------------------------------------------------
perf_strategy = st.builds(
    lambda b, s, r, c: ChannelPerformance(b, s, r, c, s),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**10),
    st.integers(min_value=0, max_value=10**5),
)


@settings(max_examples=300, deadline=None)
@given(
    chans=st.dictionaries(st.sampled_from(list(ChannelType)), perf_strategy, max_size=8),
    gap=st.floats(min_value=0.0, max_value=1.0),
    share=st.floats(min_value=0.0, max_value=1.0),
)
def test_plan_moves_conserves_money_exactly(
    chans: dict[ChannelType, ChannelPerformance], gap: float, share: float
) -> None:
    moves = plan_moves(chans, Thresholds(reallocation_gap=gap, reallocation_share=share))
    assert sum(moves.values()) == 0
    for c, d in moves.items():
        p = chans[c]
        assert p.budget > 0
        if d < 0:
            assert p.budget + d >= p.spent + p.reserved


@PROPS
@given(
    budgets=st.lists(st.integers(min_value=1, max_value=5000 * U), min_size=2, max_size=3),
    spends=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2),
            st.integers(min_value=0, max_value=300 * U),
            st.integers(min_value=0, max_value=200),
        ),
        max_size=12,
    ),
    reserves=st.lists(st.tuples(st.integers(min_value=0, max_value=2),
                                st.integers(min_value=1, max_value=20 * U)), max_size=5),
    rounds=st.integers(min_value=1, max_value=4),
)
def test_engine_reallocation_conserves_and_respects_spent_plus_reserved(
    budgets: list[int],
    spends: list[tuple[int, int, int]],
    reserves: list[tuple[int, int]],
    rounds: int,
) -> None:
    channels = [G, F, T][: len(budgets)]
    h = Harness(dict(zip(channels, budgets, strict=False)), start=DAY0 + timedelta(hours=14))
    for i, amount, conv in spends:
        h.spend(amount, channel=channels[i % len(channels)], conversions=conv,
                when=DAY0 + timedelta(hours=13))
    for i, amount in reserves:
        h.reserve(amount, channels[i % len(channels)])
    total = sum(h.ch(c).budget for c in channels)
    for _ in range(rounds):
        moves, _ = h.engine.reallocate(h.state, h.now)
        assert sum(moves.values()) == 0
        assert sum(h.ch(c).budget for c in channels) == total
        for c in channels:
            ch = h.ch(c)
            if moves.get(c, 0) < 0:
                assert ch.budget >= ch.spent_total + ch.reserved_total
            assert sum(ch.plan.amounts) == ch.budget  # type: ignore[union-attr]
        h.advance(minutes=5)


# -- (d) a forced-open breaker never closes without resume -------------------------------------
op = st.one_of(
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=12 * 3600)),
    st.tuples(st.just("spend"), st.integers(min_value=0, max_value=2000 * U),
              st.integers(min_value=0, max_value=1)),
    st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=10 * U),
              st.integers(min_value=0, max_value=1)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("reallocate")),
    st.tuples(st.just("reconfigure")),
    st.tuples(st.just("stop_again")),
)


@PROPS
@given(ops=st.lists(op, max_size=40), trip_first=st.booleans())
def test_emergency_stop_holds_until_resume(ops: list[tuple], trip_first: bool) -> None:
    h = Harness({G: 1000 * U, F: 500 * U}, start=DAY0 + timedelta(hours=9))
    if trip_first:  # a breaker already OPEN by a violation becomes forced too
        h.spend(950 * U, when=DAY0 + timedelta(hours=8))
        assert h.ch(G).breaker.state is CircuitBreakerState.OPEN
    h.engine.emergency_stop(h.state, "stop", h.now)
    for o in ops:
        kind = o[0]
        if kind == "wait":
            h.advance(seconds=o[1])
        elif kind == "spend":
            h.spend(o[1], channel=(G, F)[o[2]])
        elif kind == "reserve":
            d = h.reserve(o[1], (G, F)[o[2]])
            assert not d.allowed and d.code is Code.EMERGENCY_STOP
        elif kind == "tick":
            h.tick()
        elif kind == "reallocate":
            h.engine.reallocate(h.state, h.now)
        elif kind == "reconfigure":
            h.engine.configure(h.state, h.config, h.now)
        elif kind == "stop_again":
            h.engine.emergency_stop(h.state, "again", h.now)
        for c in (G, F):
            br = h.ch(c).breaker
            assert br.state is CircuitBreakerState.OPEN and br.forced
            assert not h.decide(U, c).allowed
    h.engine.resume(h.state, h.now)
    for c in (G, F):
        assert h.ch(c).breaker.state is CircuitBreakerState.HALF_OPEN
        assert not h.ch(c).breaker.forced


# -- (e) duplicate events change nothing --------------------------------------------------------
event_strategy = st.tuples(
    st.integers(min_value=0, max_value=12),  # event id from a small pool: duplicates
    st.integers(min_value=0, max_value=60 * U),
    st.integers(min_value=0, max_value=50),  # clicks
    st.integers(min_value=0, max_value=5),  # conversions
    st.integers(min_value=0, max_value=600),  # seconds to wait before
    st.integers(min_value=0, max_value=3 * 86400),  # lateness of the event
)


@PROPS
@given(events=st.lists(event_strategy, max_size=40))
def test_duplicate_events_change_nothing(events: list[tuple[int, int, int, int, int, int]]) -> None:
    with_dups = Harness({G: 1000 * U}, start=DAY0 + timedelta(hours=6))
    unique = Harness({G: 1000 * U}, start=DAY0 + timedelta(hours=6))
    first_seen: set[int] = set()
    for eid, amount, clicks, conv, wait, late in events:
        for h in (with_dups, unique):
            h.advance(seconds=wait)
        kw = {"event_id": f"ev-{eid}", "clicks": clicks, "conversions": conv,
              "when": with_dups.now - timedelta(seconds=late)}
        if eid in first_seen:
            before = copy.deepcopy(with_dups.state)
            r = with_dups.spend(amount, **kw)
            assert r.duplicate and not r.applied and r.outputs == []
            assert with_dups.state == before
        else:
            first_seen.add(eid)
            a = with_dups.spend(amount, **kw)
            b = unique.spend(amount, **kw)
            assert a.applied and b.applied and a.placement == b.placement
    x, y = with_dups.ch(), unique.ch()
    assert x.spent == y.spent and x.spent_total == y.spent_total
    assert x.clicks_today == y.clicks_today and x.conversions_today == y.conversions_today
    assert x.history.buckets == y.history.buckets
    assert x.breaker.state is y.breaker.state
    assert x.active_alerts == y.active_alerts
