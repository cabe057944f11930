"""Planned curve, pace ratio, rollover, hourly release and the de-duplicated alerts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core.allocation import AllocationContext, StrategyResult
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.pacing import (
    PlannedAtInstant,
    pace_ratio,
    planned_at,
    released_allowance,
    slot_allowance,
    velocity_limit,
)
from pacer_stream.core.planning import CLOSING_SHARE
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerTransition,
    ChannelConfig,
    CircuitBreakerState,
    Output,
    PacingStrategy,
    Severity,
    Thresholds,
)

from .conftest import DAY0, UNCAPPED, F, G, Harness, U

PACE_ALERTS = {AlertType.WARNING_OVERPACING, AlertType.CRITICAL_OVERPACING}


def alerts(outputs: object, kind: AlertType | None = None) -> list[Alert]:
    """Alerts among outputs (a list, or a SpendResult's outputs)."""
    outs: list[Output] = getattr(outputs, "outputs", outputs)  # type: ignore[assignment]
    return [o for o in outs if isinstance(o, Alert) and (kind is None or o.alert_type is kind)]


class FixedWeights:
    """A strategy with given hourly weights (to test shaping and rollover by weight)."""

    name = PacingStrategy.EVEN_DISTRIBUTION
    sure_from_hour: int | None = None

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        n = ctx.day.n_slots
        w = tuple(self.weights[:n])
        return StrategyResult(w, (1.0,) * n, (0.0,) * n, (0.0,) * n, 1.0)


def weighted_harness(weights: list[float], budget: int, t: Thresholds = UNCAPPED) -> Harness:
    engine = PacingEngine(strategies={PacingStrategy.EVEN_DISTRIBUTION: FixedWeights(weights)})
    return Harness({G: budget}, thresholds=t, engine=engine)


# -- planned curve and pace ratio -----------------------------------------------------
def test_planned_curve_is_cumulative_and_linear_inside_an_hour() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    ch = h.ch()
    day = ch.day
    assert day is not None
    assert planned_at(ch, day.start - 60) == 0
    assert planned_at(ch, day.start) == 0
    assert planned_at(ch, day.start + 1800) == 50 * U
    assert planned_at(ch, day.start + 3600) == 100 * U
    assert planned_at(ch, day.start + 5 * 3600 + 900) == 525 * U
    assert planned_at(ch, day.end) == 2400 * U
    assert planned_at(ch, day.end + 10) == 2400 * U


def test_the_plan_at_an_instant_is_the_planned_curve_there() -> None:
    h = Harness({G: 2400 * U, F: 1200 * U}, thresholds=UNCAPPED)
    day = h.ch().day
    assert day is not None
    memo = PlannedAtInstant()
    for ts in (day.start + 1800, day.start + 1800, day.start + 7200, day.start + 1800):
        for channel in (G, F, G):
            assert memo(h.ch(channel), ts) == planned_at(h.ch(channel), ts)


def test_the_plan_at_an_instant_follows_a_new_plan_at_the_same_instant() -> None:
    """A budget change re-plans the channel: the memo must not answer from the old plan,
    nor from the old day after a roll."""
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    ch = h.ch()
    assert ch.day is not None
    ts = ch.day.start + 3600
    memo = PlannedAtInstant()
    assert memo(ch, ts) == 100 * U
    config = dataclasses.replace(h.config, channels={G: ChannelConfig(4800 * U)})
    h.state, _ = h.engine.configure(h.state, config, h.now)
    assert memo(h.ch(), ts) == planned_at(h.ch(), ts) == 200 * U


def test_the_plan_at_an_instant_stays_right_past_its_bound() -> None:
    class Small(PlannedAtInstant):
        MAX_ENTRIES = 2

    h = Harness({G: 2400 * U, F: 1200 * U}, thresholds=UNCAPPED)
    day = h.ch().day
    assert day is not None
    memo = Small()
    other = Harness({G: 4800 * U}, thresholds=UNCAPPED, campaign_id="d")
    channels = [h.ch(G), h.ch(F), other.ch(G)] * 3
    for ch in channels:
        assert memo(ch, day.start + 5400) == planned_at(ch, day.start + 5400)


def test_planned_curve_follows_the_shaped_plan() -> None:
    h = Harness({G: 2400 * U})  # default: frontload protection and 15% cap
    ch = h.ch()
    plan = ch.plan
    assert plan is not None
    start = DAY0.timestamp()
    assert planned_at(ch, start + 3600) == plan.amounts[0]
    assert planned_at(ch, start + 4 * 3600) == sum(plan.amounts[:4])
    assert planned_at(ch, start + 4.5 * 3600) == sum(plan.amounts[:4]) + plan.amounts[4] // 2


@settings(max_examples=150, deadline=None)
@given(
    seconds=st.integers(min_value=60, max_value=86399),
    spend_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_even_ratio_equals_spend_share_over_time_share(seconds: int, spend_share: float) -> None:
    """EVEN without caps: actual / planned == spend% / time% (the original's ratio)."""
    budget = 1000 * U
    h = Harness({G: budget}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(seconds=seconds))
    spent = int(budget * spend_share)
    if spent:
        h.spend(spent, when=DAY0)
    ch = h.ch()
    ts = h.now.timestamp()
    original = (spent / budget) / (seconds / 86400)
    assert pace_ratio(ch, ts) == pytest.approx(original, rel=1e-5, abs=1e-9)


def test_ratio_is_zero_when_nothing_is_planned_yet() -> None:
    h = Harness({G: 1000 * U}, thresholds=UNCAPPED)
    assert pace_ratio(h.ch(), DAY0.timestamp()) == 0.0


# -- rollover and hourly release ------------------------------------------------------
def test_unspent_budget_rolls_into_later_hours_by_weight() -> None:
    weights = [float(i + 1) for i in range(24)]
    h = weighted_harness(weights, 3000 * U)
    ch = h.ch()
    plan_12 = ch.plan.amounts[12]  # type: ignore[union-attr]
    # nothing spent in the morning: all 3000 units are left for hours 12..23, by weight
    later = sum(weights[12:])
    assert slot_allowance(ch, 12) == pytest.approx(3000 * U * 13 / later, abs=2)
    assert slot_allowance(ch, 12) > plan_12
    # spending exactly the plan leaves exactly the plan
    h.at(DAY0 + timedelta(hours=12))
    h.spend(sum(ch.plan.amounts[:12]), when=DAY0 + timedelta(hours=1))  # type: ignore[union-attr]
    assert slot_allowance(ch, 12) == pytest.approx(plan_12, abs=2)


def test_overspend_of_earlier_hours_is_taken_back_later() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    h.spend(1800 * U, when=DAY0 + timedelta(hours=11))
    assert slot_allowance(h.ch(), 12) == 50 * U  # 600 left over 12 hours
    h.spend(600 * U, when=DAY0 + timedelta(hours=11, minutes=30))
    assert slot_allowance(h.ch(), 12) == 0


def test_rollover_respects_the_hour_cap() -> None:
    h = Harness({G: 1000 * U})  # 15% cap
    h.at(DAY0 + timedelta(hours=16))
    # nothing spent yet: 1000 units over 8 hours would be 12.5% each: within the cap
    assert slot_allowance(h.ch(), 16) == 125 * U
    h.at(DAY0 + timedelta(hours=20))
    # over 4 hours it would be 25% each: more than the caps can hold, the documented
    # fallback spreads the excess by weight on top instead of losing it
    assert slot_allowance(h.ch(), 20) == 250 * U


def test_hour_allowance_is_released_linearly_with_a_lead() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    ch = h.ch()
    t = h.state.thresholds
    start = DAY0.timestamp() + 12 * 3600
    slot, allowance, released = released_allowance(ch, start, t)
    assert (slot, allowance) == (12, 200 * U)
    assert released == int(200 * U * 600 / 3600)
    _, _, released = released_allowance(ch, start + 1800, t)
    assert released == int(200 * U * 2400 / 3600)
    _, _, released = released_allowance(ch, start + 3000, t)
    assert released == 200 * U
    assert velocity_limit(ch, 12, 200 * U, t, 3.0) == int(200 * U / 3600 * 300 * 3.0)


def test_the_days_last_hour_is_released_up_to_midnight() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    ch = h.ch()
    t = h.state.thresholds
    last = DAY0.timestamp() + 23 * 3600
    # (nothing was spent, so the whole budget rolled into the last hour)
    slot, allowance, released = released_allowance(ch, last, t)
    assert (slot, allowance) == (23, 2400 * U)
    # the same 10-minute lead at its start, but the whole only at midnight
    assert released == int(2400 * U * 600 / 4200)
    _, _, released = released_allowance(ch, last + 1800, t)
    assert released == int(2400 * U * 2400 / 4200)
    _, _, released = released_allowance(ch, last + 3000, t)
    assert released < 2400 * U
    # any other hour is released in full 10 minutes early
    _, allowance, released = released_allowance(ch, last - 3600 + 3000, t)
    assert released == allowance


def test_a_shaped_plan_keeps_a_closing_share_for_the_last_hour() -> None:
    """A strategy that puts almost nothing in the night's last hour still plans at least
    CLOSING_SHARE of the day there (the campaign can spend until midnight); one that
    plans more keeps its own weight. EVEN stays even."""
    low = [1.0] * 23 + [0.05]
    h = Harness(
        {G: 2400 * U},
        thresholds=UNCAPPED,
        strategy=PacingStrategy.ADAPTIVE_HYBRID,
        engine=PacingEngine(strategies={PacingStrategy.ADAPTIVE_HYBRID: _Hybrid(low)}),
    )
    plan = h.ch().plan
    assert plan is not None
    assert plan.amounts[-1] == pytest.approx(2400 * U * CLOSING_SHARE, rel=1e-6)
    assert sum(plan.amounts) == 2400 * U
    high = [1.0] * 23 + [3.0]
    h2 = Harness(
        {G: 2400 * U},
        thresholds=UNCAPPED,
        strategy=PacingStrategy.ADAPTIVE_HYBRID,
        engine=PacingEngine(strategies={PacingStrategy.ADAPTIVE_HYBRID: _Hybrid(high)}),
    )
    assert h2.ch().plan.amounts[-1] == pytest.approx(2400 * U * 3 / 26, rel=1e-6)  # type: ignore[union-attr]
    even = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    assert even.ch().plan.amounts[-1] == 100 * U  # type: ignore[union-attr]


class _Hybrid(FixedWeights):
    name = PacingStrategy.ADAPTIVE_HYBRID


def test_hourly_allowance_on_a_23_hour_day() -> None:
    h = Harness(
        {G: 2300 * U}, tz="Europe/London", thresholds=UNCAPPED, start=DAY0.replace(month=3, day=29)
    )
    ch = h.ch()
    assert ch.day.n_slots == 23  # type: ignore[union-attr]
    assert slot_allowance(ch, 0) == 100 * U
    assert planned_at(ch, ch.day.end) == 2300 * U  # type: ignore[union-attr]


# -- pace alerts: de-duplicated, re-firing after recovery -------------------------------
def test_pace_alerts_fire_once_per_level_and_refire_after_recovery() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=10))  # planned 1000
    out = h.spend(1600 * U, when=DAY0 + timedelta(hours=9))  # ratio 1.6
    warn = alerts(out, AlertType.WARNING_OVERPACING)
    assert len(warn) == 1
    assert warn[0].severity is Severity.MEDIUM
    assert warn[0].pace_ratio == pytest.approx(1.6)
    assert warn[0].current_spend_micros == 1600 * U
    # more events at the same level: no new alert
    for _ in range(5):
        h.advance(seconds=1)
        out = h.spend(1, when=DAY0 + timedelta(hours=9))
        assert alerts(out, AlertType.WARNING_OVERPACING) == []
        assert h.tick() == []
    # worse: one critical alert
    out = h.spend(500 * U, when=DAY0 + timedelta(hours=9))  # ratio ~2.1
    assert [a.alert_type for a in alerts(out)] == [AlertType.CRITICAL_OVERPACING]
    assert alerts(out)[0].severity is Severity.HIGH
    assert alerts(h.spend(1, when=DAY0 + timedelta(hours=9)).outputs) == []
    # time passes, the plan catches up: ratio falls below 0.9 x 1.5 -> recovered
    h.at(DAY0 + timedelta(hours=18))  # planned 1800, spent ~2100 -> 1.17
    assert alerts(h.tick()) == []
    assert h.ch().pace_level == 0


def test_warning_refires_after_recovery() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=4))  # planned 400
    assert len(alerts(h.spend(640 * U, when=DAY0 + timedelta(hours=3)).outputs)) == 1  # 1.6
    h.at(DAY0 + timedelta(hours=6))  # planned 600: ratio 1.07, recovered
    assert alerts(h.tick()) == []
    h.at(DAY0 + timedelta(hours=8))  # planned 800
    out = h.spend(640 * U, when=DAY0 + timedelta(hours=7))  # 1280 / 800 = 1.6
    assert [a.alert_type for a in alerts(out)] == [AlertType.WARNING_OVERPACING]


def test_hysteresis_keeps_an_alert_level_near_the_threshold() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=10))
    h.spend(1600 * U, when=DAY0 + timedelta(hours=9))  # 1.6 -> warning
    h.at(DAY0 + timedelta(hours=11))  # 1600/1100 = 1.45: below 1.5 but above 1.35
    assert alerts(h.tick()) == []
    assert h.ch().pace_level == 1
    h.spend(120 * U, when=DAY0 + timedelta(hours=10))  # 1720/1100 = 1.56: no re-fire
    assert h.ch().pace_level == 1


def test_warning_threshold_is_configurable() -> None:
    t = Thresholds(
        max_hourly_spend_pct=1.0, frontload_protection_hours=0, pace_warning_threshold=1.3
    )
    h = Harness({G: 2400 * U}, thresholds=t)
    h.at(DAY0 + timedelta(hours=10))
    out = h.spend(1400 * U, when=DAY0 + timedelta(hours=9))  # 1.4
    assert [a.alert_type for a in alerts(out)] == [AlertType.WARNING_OVERPACING]


def test_no_alert_storm_early_in_the_day() -> None:
    """Following can-spend minute by minute from midnight (the hour is released ahead
    of the clock, so the raw ratio is huge at first) raises no alert and trips nothing."""
    h = Harness({G: 1000 * U})
    seen: list[Output] = []
    spent_early = 0
    for minute in range(0, 150):
        h.at(DAY0 + timedelta(minutes=minute, seconds=30))
        seen += h.tick()
        for _ in range(4):
            d = h.reserve(400_000)
            if not d.allowed:
                break
            seen += h.spend(400_000, reservation_id=d.reservation_id).outputs
            if minute < 10:
                spent_early += 400_000
    assert spent_early > 0
    ch = h.ch()
    assert alerts(seen) == []
    assert not [o for o in seen if isinstance(o, BreakerTransition)]
    assert ch.breaker.state is CircuitBreakerState.CLOSED


def test_early_ratio_is_reported_but_not_alerted() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(minutes=10))
    out = h.spend(7 * U, when=DAY0 + timedelta(minutes=9))  # plan by now: ~3.5 units
    assert pace_ratio(h.ch(), h.now.timestamp()) > 2.0
    assert alerts(out) == []
    assert alerts(h.tick()) == []


# -- emergency_stop_required ----------------------------------------------------------
def test_emergency_alert_when_most_of_the_budget_is_gone_ahead_of_plan() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    out = h.spend(920 * U, when=DAY0 + timedelta(hours=9))
    em = alerts(out, AlertType.EMERGENCY_STOP_REQUIRED)
    assert len(em) == 1
    assert em[0].severity is Severity.CRITICAL
    assert em[0].budget_consumed_pct == pytest.approx(0.92)
    assert (
        alerts(
            h.spend(U, when=DAY0 + timedelta(hours=9)).outputs, AlertType.EMERGENCY_STOP_REQUIRED
        )
        == []
    )
    assert alerts(h.tick(), AlertType.EMERGENCY_STOP_REQUIRED) == []


def test_emergency_threshold_is_configurable() -> None:
    h = Harness({G: 1000 * U}, thresholds=Thresholds(emergency_stop_threshold=0.5))
    h.at(DAY0 + timedelta(hours=3))
    out = h.spend(600 * U, when=DAY0 + timedelta(hours=2))
    assert len(alerts(out, AlertType.EMERGENCY_STOP_REQUIRED)) == 1


def test_spending_on_plan_to_the_end_of_the_day_raises_no_emergency() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=23, minutes=30))
    planned = planned_at(h.ch(), h.now.timestamp())
    out = h.spend(planned, when=DAY0 + timedelta(hours=23))
    assert planned > 900 * U
    assert alerts(out) == []
    assert h.ch().breaker.state is CircuitBreakerState.CLOSED


# -- underpacing -------------------------------------------------------------------------
def test_underpacing_fires_once_after_a_quarter_of_the_day_and_clears() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=5))
    assert alerts(h.tick(), AlertType.UNDERPACING) == []  # too early to judge
    h.at(DAY0 + timedelta(hours=7))
    under = alerts(h.tick(), AlertType.UNDERPACING)
    assert len(under) == 1 and under[0].severity is Severity.LOW
    assert alerts(h.tick(), AlertType.UNDERPACING) == []
    h.spend(700 * U, when=DAY0 + timedelta(hours=6))  # back on plan
    assert AlertType.UNDERPACING not in h.ch().active_alerts
    h.at(DAY0 + timedelta(hours=12))  # 700/1200 < 0.8 again
    assert len(alerts(h.tick(), AlertType.UNDERPACING)) == 1


# -- performance degradation -----------------------------------------------------------
def test_performance_degradation_needs_a_baseline_and_a_sample() -> None:
    h = Harness({G: 10_000 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    # baseline: last week converted 10% of clicks
    for d in range(1, 4):
        h.spend(10 * U, when=DAY0 - timedelta(days=d), clicks=200, conversions=20)
    # today 2% on a small sample: not enough evidence
    out = h.spend(U, when=DAY0 + timedelta(hours=11), clicks=100, conversions=2)
    assert alerts(out, AlertType.PERFORMANCE_DEGRADATION) == []
    out = h.spend(U, when=DAY0 + timedelta(hours=11), clicks=150, conversions=3)
    deg = alerts(out, AlertType.PERFORMANCE_DEGRADATION)
    assert len(deg) == 1 and deg[0].severity is Severity.MEDIUM
    assert (
        alerts(
            h.spend(U, when=DAY0 + timedelta(hours=11), clicks=10).outputs,
            AlertType.PERFORMANCE_DEGRADATION,
        )
        == []
    )
    # recovery clears it; a new drop fires again
    h.spend(U, when=DAY0 + timedelta(hours=11), clicks=10, conversions=40)
    assert AlertType.PERFORMANCE_DEGRADATION not in h.ch().active_alerts
    out = h.spend(U, when=DAY0 + timedelta(hours=11), clicks=1000)  # 45 / 1270 < 5%
    assert len(alerts(out, AlertType.PERFORMANCE_DEGRADATION)) == 1


def test_no_performance_alert_without_history() -> None:
    h = Harness({G: 10_000 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    out = h.spend(U, when=DAY0 + timedelta(hours=11), clicks=1000, conversions=0)
    assert alerts(out, AlertType.PERFORMANCE_DEGRADATION) == []


# -- circuit breaker alert and check_pace's view ---------------------------------------
def test_breaker_open_alert_once_per_transition() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    out = h.spend(950 * U, when=DAY0 + timedelta(hours=9))
    assert len(alerts(out, AlertType.CIRCUIT_BREAKER_OPEN)) == 1
    assert (
        alerts(h.spend(U, when=DAY0 + timedelta(hours=9)).outputs, AlertType.CIRCUIT_BREAKER_OPEN)
        == []
    )


def test_current_alert_reports_without_touching_deduplication() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=10))
    h.spend(1600 * U, when=DAY0 + timedelta(hours=9))
    seq = h.ch().alert_seq
    for _ in range(3):
        ratio, alert = h.engine.current_alert(h.state, G, h.now)
        assert ratio == pytest.approx(1.6)
        assert alert is not None and alert.alert_type is AlertType.WARNING_OVERPACING
    assert h.ch().alert_seq == seq
    h.engine.emergency_stop(h.state, "x", h.now)
    _, alert = h.engine.current_alert(h.state, G, h.now)
    assert alert is not None and alert.alert_type is AlertType.CIRCUIT_BREAKER_OPEN


def test_alert_ids_are_unique_and_carry_context() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    seen: list[Alert] = []
    h.at(DAY0 + timedelta(hours=10))
    seen += alerts(h.spend(1600 * U, when=DAY0 + timedelta(hours=9)).outputs)
    seen += alerts(h.spend(600 * U, when=DAY0 + timedelta(hours=9)).outputs)
    assert len(seen) >= 2
    assert len({a.alert_id for a in seen}) == len(seen)
    for a in seen:
        assert a.campaign_id == "c" and a.channel is G
        assert a.budget_micros == 2400 * U
        assert a.time_elapsed_pct == pytest.approx(10 / 24)
        assert a.recommended_action
        assert a.thresholds["pace_warning_threshold"] == 1.5


def test_critical_refires_after_recovery() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=4))  # planned 400
    out = h.spend(880 * U, when=DAY0 + timedelta(hours=3))  # 2.2
    assert [a.alert_type for a in alerts(out)] == [AlertType.CRITICAL_OVERPACING]
    h.at(DAY0 + timedelta(hours=8))  # 880 / 800 = 1.1: recovered
    assert alerts(h.tick()) == []
    assert h.ch().pace_level == 0
    h.at(DAY0 + timedelta(hours=9))  # planned 900
    out = h.spend(1100 * U, when=DAY0 + timedelta(hours=8))  # 1980 / 900 = 2.2
    assert [a.alert_type for a in alerts(out)] == [AlertType.CRITICAL_OVERPACING]


def test_emergency_alert_refires_after_recovery() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    assert (
        len(
            alerts(
                h.spend(920 * U, when=DAY0 + timedelta(hours=9)), AlertType.EMERGENCY_STOP_REQUIRED
            )
        )
        == 1
    )
    h.at(DAY0 + timedelta(hours=23))  # the plan caught up: no longer ahead
    assert alerts(h.tick(), AlertType.EMERGENCY_STOP_REQUIRED) == []
    assert AlertType.EMERGENCY_STOP_REQUIRED not in h.ch().active_alerts
    # a platform reports spend far beyond the plan again (a fact, not an authorised spend)
    out = h.spend(150 * U, when=DAY0 + timedelta(hours=22))
    assert len(alerts(out, AlertType.EMERGENCY_STOP_REQUIRED)) == 1


def test_breaker_open_alert_refires_on_each_new_trip() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    assert (
        len(
            alerts(h.spend(950 * U, when=DAY0 + timedelta(hours=9)), AlertType.CIRCUIT_BREAKER_OPEN)
        )
        == 1
    )
    h.advance(minutes=6)  # cooldown over: HALF_OPEN
    assert alerts(h.tick(), AlertType.CIRCUIT_BREAKER_OPEN) == []
    assert h.ch().breaker.state is CircuitBreakerState.HALF_OPEN
    out = h.spend(U)  # still far ahead of plan: the trial fails, the breaker re-opens
    assert len(alerts(out, AlertType.CIRCUIT_BREAKER_OPEN)) == 1


def test_unbudgeted_spend_alert_once_per_channel_per_day() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=10))
    assert len(alerts(h.spend(U, channel=F), AlertType.UNBUDGETED_SPEND)) == 1
    assert alerts(h.spend(U, channel=F), AlertType.UNBUDGETED_SPEND) == []
    assert alerts(h.spend(U), AlertType.UNBUDGETED_SPEND) == []  # G has a budget
