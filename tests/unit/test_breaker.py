"""Circuit breakers: the state machine alone, then its trip causes inside the engine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pacer_stream.core.breaker import Breaker
from pacer_stream.core.pacing import planned_at
from pacer_stream.core.types import (
    BreakerCause,
    BreakerTransition,
    CircuitBreakerState,
    Code,
    Output,
    Thresholds,
)

from .conftest import DAY0, UNCAPPED, G, Harness, U

CLOSED = CircuitBreakerState.CLOSED
OPEN = CircuitBreakerState.OPEN
HALF_OPEN = CircuitBreakerState.HALF_OPEN
T = Thresholds()  # cooldown 300 s, max 3600 s, 3 trial spends


def transitions(outputs: list[Output]) -> list[BreakerTransition]:
    return [o for o in outputs if isinstance(o, BreakerTransition)]


# -- the state machine -----------------------------------------------------------------
def test_trip_opens_with_cause_and_cooldown() -> None:
    b = Breaker()
    tr = b.trip(1000.0, BreakerCause.RUNAWAY_VELOCITY, T)
    assert tr is not None
    assert (tr.previous, tr.state, tr.cause) == (CLOSED, OPEN, BreakerCause.RUNAWAY_VELOCITY)
    assert tr.at == 1000.0 and tr.until == 1300.0 and not tr.forced
    assert b.state is OPEN and b.cause is BreakerCause.RUNAWAY_VELOCITY
    assert not b.can_admit(T)
    assert b.trip(1001.0, BreakerCause.REPEATED_OVERSPEND, T) is None  # already open


def test_cooldown_leads_to_half_open_lazily() -> None:
    b = Breaker()
    b.trip(1000.0, BreakerCause.RUNAWAY_VELOCITY, T)
    assert b.poll(1299.9, T) is None
    tr = b.poll(5000.0, T)  # polled late: the transition is dated at the cooldown's end
    assert tr is not None
    assert (tr.state, tr.cause, tr.at) == (HALF_OPEN, BreakerCause.COOLDOWN_ELAPSED, 1300.0)
    assert b.poll(6000.0, T) is None


def test_half_open_closes_only_on_evidence() -> None:
    b = Breaker()
    b.trip(0.0, BreakerCause.RUNAWAY_VELOCITY, T)
    b.poll(300.0, T)
    for _ in range(3):
        assert b.can_admit(T)
        b.admit_trial()
    assert not b.can_admit(T)  # the trial spends are in use
    assert b.poll(10**9, T) is None  # time alone never closes it
    assert b.on_spend(400.0, True, T) is None
    assert b.on_spend(401.0, True, T) is None
    tr = b.on_spend(402.0, True, T)
    assert tr is not None and (tr.state, tr.cause) == (CLOSED, BreakerCause.TRIAL_PASSED)
    assert b.can_admit(T)


def test_failed_trial_reopens_with_doubled_cooldown_capped() -> None:
    b = Breaker()
    now = 0.0
    b.trip(now, BreakerCause.RUNAWAY_VELOCITY, T)
    cooldowns = [b.until - now]  # type: ignore[operator]
    for _ in range(6):
        now = b.until  # type: ignore[assignment]
        assert b.poll(now, T) is not None
        tr = b.on_spend(now + 1, False, T)
        assert tr is not None
        assert (tr.previous, tr.state, tr.cause) == (HALF_OPEN, OPEN, BreakerCause.TRIAL_FAILED)
        now += 1
        cooldowns.append(b.until - now)  # type: ignore[operator]
    assert cooldowns == [300, 600, 1200, 2400, 3600, 3600, 3600]


def test_trip_count_resets_after_a_long_calm() -> None:
    b = Breaker()
    b.trip(0.0, BreakerCause.RUNAWAY_VELOCITY, T)
    b.poll(300.0, T)
    for k in range(3):
        b.on_spend(301.0 + k, True, T)
    assert b.state is CLOSED
    b.trip(400.0, BreakerCause.RUNAWAY_VELOCITY, T)  # soon after: backed off
    assert b.until == 400.0 + 600
    b.poll(1000.0, T)
    for k in range(3):
        b.on_spend(1001.0 + k, True, T)
    b.trip(1003.0 + 3600, BreakerCause.RUNAWAY_VELOCITY, T)  # an hour of calm
    assert b.until == 1003.0 + 3600 + 300


def test_forced_open_never_leaves_by_itself() -> None:
    b = Breaker()
    tr = b.force(OPEN, 0.0, BreakerCause.EMERGENCY_STOP)
    assert tr.forced and b.forced and b.until is None
    assert b.poll(10**12, T) is None
    assert b.trip(5.0, BreakerCause.RUNAWAY_VELOCITY, T) is None
    assert b.on_spend(6.0, True, T) is None
    assert b.state is OPEN
    tr2 = b.resume(7.0)
    assert tr2 is not None and (tr2.state, tr2.cause) == (HALF_OPEN, BreakerCause.RESUME)
    assert not b.forced
    assert b.resume(8.0) is None  # nothing to resume


def test_force_closed_resets_the_backoff() -> None:
    b = Breaker()
    b.trip(0.0, BreakerCause.RUNAWAY_VELOCITY, T)
    b.poll(300.0, T)
    b.on_spend(301.0, False, T)
    assert b.trips == 2
    b.force(CLOSED, 302.0, BreakerCause.FORCED)
    assert b.trips == 0 and b.state is CLOSED and not b.forced


# -- trip causes inside the engine -------------------------------------------------------
def test_overspend_ahead_of_plan_trips() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    out = h.spend(950 * U, when=DAY0 + timedelta(hours=9))
    tr = transitions(out.outputs)
    assert len(tr) == 1
    assert (tr[0].state, tr[0].cause) == (OPEN, BreakerCause.OVERSPEND_AHEAD_OF_PLAN)
    assert tr[0].until == h.now + timedelta(seconds=300)
    d = h.decide(U)
    assert d.code is Code.BREAKER_OPEN and "circuit breaker" in d.reason
    assert "overspend_ahead_of_plan" in d.reason


def _on_plan_until_noon(h: Harness) -> None:
    h.at(DAY0 + timedelta(hours=12))
    h.spend(planned_at(h.ch(), h.now.timestamp()), when=DAY0 + timedelta(hours=11))


def test_runaway_velocity_trips_when_ahead_of_plan() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)  # hour allowance 100, trip at 37.5/5min
    _on_plan_until_noon(h)
    h.at(DAY0 + timedelta(hours=12, minutes=30))  # planned 1250, spent 1200
    out = h.spend(45 * U)  # burst > 37.5 but still behind plan: a catch-up, not a runaway
    assert transitions(out.outputs) == []
    out = h.spend(15 * U)  # 1260 > 1250: now ahead of plan at 60 in 5 minutes
    tr = transitions(out.outputs)
    assert len(tr) == 1 and tr[0].cause is BreakerCause.RUNAWAY_VELOCITY


def test_small_bursts_do_not_trip_velocity() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _on_plan_until_noon(h)
    h.at(DAY0 + timedelta(hours=12, minutes=30))
    for k in range(30):
        h.at(DAY0 + timedelta(hours=12, minutes=30 + k))
        assert transitions(h.spend(U + U // 2).outputs) == []  # ~1.1x the planned rate
    assert h.ch().breaker.state is CLOSED


def _hour_already_spent(h: Harness) -> None:
    """Hour 12 has spent exactly its allowance early on (outside the velocity window)."""
    _on_plan_until_noon(h)
    h.at(DAY0 + timedelta(hours=12, minutes=50))
    h.spend(100 * U, when=DAY0 + timedelta(hours=12, minutes=5))


def test_repeated_overspend_trips() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _hour_already_spent(h)
    for k in range(4):
        h.at(DAY0 + timedelta(hours=12, minutes=50, seconds=10 * k))
        assert transitions(h.spend(U).outputs) == []
    h.at(DAY0 + timedelta(hours=12, minutes=50, seconds=40))
    tr = transitions(h.spend(U).outputs)
    assert len(tr) == 1 and tr[0].cause is BreakerCause.REPEATED_OVERSPEND


def test_overspends_spread_out_do_not_trip() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _hour_already_spent(h)
    for k in range(8):
        h.at(DAY0 + timedelta(hours=12, minutes=50, seconds=61 * k))
        assert transitions(h.spend(U // 10).outputs) == []


def _tripped_near_the_hour(h: Harness) -> None:
    """Trip by repeated overspend at 12:58 so the trials happen in a fresh hour."""
    _on_plan_until_noon(h)
    h.at(DAY0 + timedelta(hours=12, minutes=58))
    h.spend(100 * U, when=DAY0 + timedelta(hours=12, minutes=5))
    for k in range(5):
        h.at(DAY0 + timedelta(hours=12, minutes=58, seconds=k))
        h.spend(U // 10)
    assert h.ch().breaker.state is OPEN


def test_cooldown_then_trial_spends_on_pace_close_the_breaker() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _tripped_near_the_hour(h)
    h.at(DAY0 + timedelta(hours=13, minutes=2))
    assert h.decide(U).code is Code.BREAKER_OPEN
    h.at(DAY0 + timedelta(hours=13, minutes=3, seconds=5))
    out = h.tick()
    assert [t.state for t in transitions(out)] == [HALF_OPEN]
    assert transitions(out)[0].cause is BreakerCause.COOLDOWN_ELAPSED
    results: list[Output] = []
    for _ in range(3):
        d = h.reserve(U)
        assert d.allowed
        results += h.spend(U, reservation_id=d.reservation_id).outputs
    closed = transitions(results)
    assert [(t.state, t.cause) for t in closed] == [(CLOSED, BreakerCause.TRIAL_PASSED)]
    assert h.decide(U).allowed


def test_half_open_limits_trial_reservations() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _tripped_near_the_hour(h)
    h.at(DAY0 + timedelta(hours=13, minutes=4))
    for _ in range(3):
        assert h.reserve(U).allowed
    assert h.reserve(U).code is Code.BREAKER_TRIAL_LIMIT


def test_failing_trial_reopens_with_a_longer_cooldown() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    _tripped_near_the_hour(h)
    h.at(DAY0 + timedelta(hours=13, minutes=4))
    h.tick()
    assert h.ch().breaker.state is HALF_OPEN
    # a trial spend far ahead of plan fails the trial
    out = h.spend(700 * U, when=DAY0 + timedelta(hours=12, minutes=59))
    tr = transitions(out.outputs)
    assert tr and tr[0].previous is HALF_OPEN and tr[0].state is OPEN
    assert tr[0].cause is BreakerCause.TRIAL_FAILED
    assert tr[0].until == h.now + timedelta(seconds=600)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_normal_end_of_day_spending_trips_nothing_and_uses_the_last_ten_percent(
    tz: str,
) -> None:
    """The original blocked the last 10% of every budget; on-plan spending must be able
    to reach ~100% with the breaker CLOSED the whole time."""
    budget = 1000 * U
    h = Harness({G: budget}, tz=tz, start=DAY0 + timedelta(hours=5))
    day = h.ch().day
    assert day is not None
    seen: list[Output] = []
    t = day.start + 18 * 3600
    h.at(DAY0.fromtimestamp(t, DAY0.tzinfo))
    h.spend(planned_at(h.ch(), t), when=DAY0.fromtimestamp(t - 60, DAY0.tzinfo))
    while t < day.end - 30:
        h.at(DAY0.fromtimestamp(t, DAY0.tzinfo))
        seen += h.tick()
        for _ in range(5):
            d = h.reserve(U // 2)
            if not d.allowed:
                break
            seen += h.spend(U // 2, reservation_id=d.reservation_id).outputs
        t += 60
    ch = h.ch()
    assert ch.spent_total >= 0.99 * budget
    assert ch.spent_total <= budget
    assert transitions(seen) == []
    assert ch.breaker.state is CLOSED


def test_unused_trial_reservations_free_their_slot() -> None:
    """Trial reservations that expire or are released without a spend must not keep
    HALF_OPEN blocked for good (it would never see the evidence it waits for)."""
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    h.engine.force_breaker(h.state, G, OPEN, h.now)
    h.engine.resume(h.state, h.now)
    assert h.ch().breaker.state is HALF_OPEN
    trials = [h.reserve(U) for _ in range(3)]
    assert all(d.allowed for d in trials)
    assert h.reserve(U).code is Code.BREAKER_TRIAL_LIMIT
    # one is released unused: one new trial may start
    assert h.engine.release(h.state, G, trials[0].reservation_id, h.now)  # type: ignore[arg-type]
    assert h.reserve(U).allowed
    assert h.reserve(U).code is Code.BREAKER_TRIAL_LIMIT
    # all expire unused: trials may start again, hours or days later
    h.advance(minutes=2)
    assert h.reserve(U).allowed
    h.advance(days=1)
    assert h.reserve(U).allowed
    # and trial spends that settle on pace close the breaker
    results: list[Output] = []
    h.advance(minutes=2)
    for _ in range(3):
        d = h.reserve(U)
        assert d.allowed
        results += h.spend(U, reservation_id=d.reservation_id).outputs
    assert h.ch().breaker.state is CLOSED
    assert [t.cause for t in transitions(results)] == [BreakerCause.TRIAL_PASSED]


def test_reservations_from_before_half_open_are_not_trials() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12, minutes=50))
    before = h.reserve(U)  # CLOSED: an ordinary hold
    assert before.allowed
    h.advance(seconds=1)
    h.engine.force_breaker(h.state, G, HALF_OPEN, h.now)
    for _ in range(3):
        assert h.reserve(U).allowed
    assert h.engine.release(h.state, G, before.reservation_id, h.now)  # type: ignore[arg-type]
    assert h.reserve(U).code is Code.BREAKER_TRIAL_LIMIT


# -- bounded HALF_OPEN trials ----------------------------------------------------------
def test_half_open_trials_hold_a_bounded_share_of_the_hours_allowance() -> None:
    from pacer_stream.core.breaker import TRIAL_ALLOWANCE_SHARE

    b = Breaker()
    b.trip(0.0, BreakerCause.RUNAWAY_VELOCITY, T)
    b.poll(300.0, T)
    allowance = 1000 * U
    bound = int(allowance * TRIAL_ALLOWANCE_SHARE)
    # the first trial may cross the bound once (a lump must fit somewhere) ...
    assert b.can_admit(T, bound + 1, allowance)
    b.admit_trial(bound + 1)
    # ... after that nothing more, however small, until it settles or comes back
    assert not b.can_admit(T, 1, allowance)
    b.release_trial(bound + 1)
    assert b.trial_amount == 0 and b.can_admit(T, bound // 2, allowance)
    b.admit_trial(bound // 2)
    assert b.can_admit(T, bound - bound // 2, allowance)
    assert not b.can_admit(T, bound - bound // 2 + 1, allowance)


def test_engine_half_open_refuses_a_second_large_trial_and_reopens_on_small_money() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    br = h.ch().own_breaker()
    br.trip(h.now.timestamp(), BreakerCause.RUNAWAY_VELOCITY, h.state.thresholds)
    h.advance(seconds=T.breaker_cooldown_s)
    h.tick()
    assert br.state is HALF_OPEN
    first = h.reserve(5 * U)
    assert first.allowed
    second = h.reserve(5 * U)
    assert not second.allowed and second.code is Code.BREAKER_TRIAL_LIMIT
    assert br.trial_amount == 5 * U
    # the trial comes back unused: its amount is free again
    h.advance(seconds=h.state.thresholds.reservation_ttl_s + 1)
    h.tick()
    assert br.trial_amount == 0
    again = h.reserve(5 * U)
    assert again.allowed
    # a trial whose spend is reported frees its amount too, and the next trial follows,
    # so enough good trials can close the breaker
    h.engine.record_spend(h.state, h.event(5 * U, reservation_id=again.reservation_id), h.now)
    assert br.trial_amount == 0 and br.state is HALF_OPEN
    for _ in range(2):
        d = h.reserve(1 * U)
        assert d.allowed
        h.engine.record_spend(h.state, h.event(1 * U, reservation_id=d.reservation_id), h.now)
    assert br.state is CLOSED


def _reserving(budget: int) -> Harness:
    """A campaign that reserves (so only unasked spend is unauthorised), at noon."""
    h = Harness({G: budget}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(U)
    h.spend(U, reservation_id=d.reservation_id)
    return h


def test_one_small_unasked_event_does_not_trip() -> None:
    h = _reserving(1000 * U)
    out = h.spend(9 * U)  # 0.9% of the daily budget, nobody asked
    assert transitions(out.outputs) == []
    assert h.ch().breaker.state is CLOSED


def test_unasked_spend_beyond_the_share_trips_whatever_the_count() -> None:
    h = _reserving(1000 * U)
    # Sparse unasked events (one every 4 minutes: never two in the velocity window)
    # accumulate past 1% of the daily budget within the 15-minute window.
    causes = []
    for k in range(3):
        h.at(DAY0 + timedelta(hours=12, minutes=4 * k + 1))
        causes += [t.cause for t in transitions(h.spend(4 * U).outputs)]
    assert causes == [BreakerCause.RUNAWAY_VELOCITY]
    assert h.ch().breaker.state is OPEN


def test_one_unasked_event_above_the_share_trips() -> None:
    h = _reserving(1000 * U)
    tr = transitions(h.spend(11 * U).outputs)
    assert len(tr) == 1 and tr[0].cause is BreakerCause.RUNAWAY_VELOCITY


def test_the_share_is_of_the_configured_budget_when_reallocation_raised_it() -> None:
    h = _reserving(1000 * U)
    h.ch().budget = 3000 * U  # as if reallocation had given this channel 2000 units
    tr = transitions(h.spend(11 * U).outputs)
    assert len(tr) == 1 and tr[0].cause is BreakerCause.RUNAWAY_VELOCITY


def test_unasked_spend_older_than_the_window_is_forgotten() -> None:
    h = _reserving(1000 * U)
    for k in range(3):
        h.at(DAY0 + timedelta(hours=12, minutes=17 * k + 1))
        assert transitions(h.spend(6 * U).outputs) == []
    assert h.ch().breaker.state is CLOSED


def test_a_campaign_that_never_reserves_is_not_judged_on_the_share() -> None:
    h = Harness({G: 1000 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    h.spend(400 * U, when=DAY0 + timedelta(hours=11))  # behind plan (planned 500)
    # all its spend is "unauthorised", none of it asked for: a catch-up, not a runaway
    assert transitions(h.spend(11 * U).outputs) == []
    assert h.ch().breaker.state is CLOSED


def _on_pace(budget: int) -> Harness:
    """A campaign that reserves and has bought, reservation by reservation, all its
    plan let it buy until 01:30 (so its spend and holds reach its plan)."""
    h = Harness({G: budget}, thresholds=UNCAPPED)
    for _ in range(90):
        d = h.reserve(budget // 400)
        if d.allowed:
            h.spend(budget // 400, reservation_id=d.reservation_id)
        h.advance(minutes=1)
    ch = h.ch()
    assert ch.spent_total + ch.reserved_total >= planned_at(ch, h.now.timestamp())
    return h


def test_one_small_unasked_event_on_a_channel_at_its_plan_trips_at_once() -> None:
    h = _on_pace(1000 * U)
    tr = transitions(h.spend(5 * U).outputs)  # 0.5% of the budget, naming no reservation
    assert len(tr) == 1 and tr[0].state is OPEN
    assert tr[0].cause is BreakerCause.RUNAWAY_VELOCITY
    assert tr[0].until is not None  # unasked: held for the longest cooldown
    assert (tr[0].until - tr[0].since).total_seconds() == T.breaker_max_cooldown_s


def test_the_same_event_behind_plan_waits_for_the_share() -> None:
    h = _reserving(1000 * U)  # noon, 1 unit spent of about 500 planned
    assert transitions(h.spend(5 * U).outputs) == []
    assert h.ch().breaker.state is CLOSED


def test_spend_beyond_a_granted_reservation_at_plan_is_not_the_first_unasked_report() -> None:
    # A report naming its reservation but a little over it (a platform's rounding, a
    # late click) is judged by the share, not tripped on sight.
    h = _on_pace(1000 * U)
    d = h.reserve(2 * U)
    assert d.allowed
    assert transitions(h.spend(5 * U, reservation_id=d.reservation_id).outputs) == []
    assert h.ch().breaker.state is CLOSED


def test_a_campaign_that_never_reserves_is_not_tripped_at_plan() -> None:
    h = Harness({G: 1440 * U}, thresholds=UNCAPPED)
    for _ in range(90):
        h.spend(U)  # the plan's rate (it never asks: every event names no reservation)
        h.advance(minutes=1)
    assert h.ch().spent_total >= planned_at(h.ch(), h.now.timestamp())
    assert transitions(h.spend(U).outputs) == []
    assert h.ch().breaker.state is CLOSED


# -- unasked spend: re-tested at the longest cooldown ----------------------------------
def test_an_unasked_trip_holds_open_for_the_maximum_cooldown() -> None:
    b = Breaker()
    tr = b.trip(1000.0, BreakerCause.RUNAWAY_VELOCITY, T, unasked=True)
    assert tr is not None and tr.until == 1000.0 + T.breaker_max_cooldown_s
    assert b.poll(1000.0 + T.breaker_cooldown_s, T) is None  # the usual cooldown is not enough
    assert b.poll(1000.0 + T.breaker_max_cooldown_s, T) is not None


def test_a_runaway_that_spends_without_asking_is_not_re_admitted_after_the_usual_cooldown() -> None:
    h = _reserving(1000 * U)
    tr = transitions(h.spend(11 * U).outputs)  # one unasked event above 1% of the budget
    assert len(tr) == 1 and tr[0].state is OPEN
    assert tr[0].until is not None
    assert (tr[0].until - tr[0].since).total_seconds() == T.breaker_max_cooldown_s
    h.advance(seconds=T.breaker_cooldown_s * 2)
    h.tick()
    # a bidder following the kill switch still sees OPEN: no second burst
    assert h.ch().breaker.state is OPEN
    h.advance(seconds=T.breaker_max_cooldown_s)
    h.tick()
    assert h.ch().breaker.state is HALF_OPEN


def test_a_campaign_that_never_reserves_keeps_the_usual_cooldown_on_a_runaway() -> None:
    h = Harness({G: 1000 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    out = []
    for _ in range(4):
        out += transitions(h.spend(240 * U).outputs)
    assert out and out[0].state is OPEN and out[0].until is not None
    assert (out[0].until - out[0].since).total_seconds() == T.breaker_cooldown_s
