"""Performance analytics, the pacing multiplier and performance thresholds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.performance import Metrics, performance_snapshot, threshold_violation
from pacer_stream.core.types import (
    AlertType,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    Code,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)

G = ChannelType.GOOGLE_ADS
DAY = datetime(2026, 3, 2, tzinfo=UTC)
BUDGET = 1_000_000_000  # 1,000 units


def _setup(t: Thresholds | None = None, budget: int = BUDGET):
    eng = PacingEngine()
    cfg = CampaignConfig(
        "c",
        {G: ChannelConfig(budget)},
        PacingStrategy.EVEN_DISTRIBUTION,
        thresholds=t or Thresholds(),
    )
    state, _ = eng.configure(None, cfg, DAY)
    return eng, state


def _spend(eng, state, i, when, amount, clicks=0, conv=0, impressions=None, revenue=None):
    ev = SpendEvent(f"e{i}", "c", G, amount, when, clicks, conv, impressions, revenue)
    return eng.record_spend(state, ev, when)


# -- metric arithmetic -----------------------------------------------------------------
def test_ratios_are_none_when_undefined() -> None:
    m = Metrics(spend_micros=0, impressions=0, clicks=0, conversions=0, revenue_micros=0)
    assert m.ctr is None
    assert m.conversion_rate is None
    assert m.cost_per_click is None
    assert m.cost_per_acquisition is None
    assert m.roas is None


def test_ratios_with_data() -> None:
    m = Metrics(
        spend_micros=50_000_000,
        impressions=1000,
        clicks=100,
        conversions=5,
        revenue_micros=200_000_000,
    )
    assert m.ctr == pytest.approx(0.1)
    assert m.conversion_rate == pytest.approx(0.05)
    assert m.cost_per_click == pytest.approx(0.5)
    assert m.cost_per_acquisition == pytest.approx(10.0)
    assert m.roas == pytest.approx(4.0)


def test_clicks_without_impressions_reported() -> None:
    m = Metrics(spend_micros=10_000_000, impressions=0, clicks=10, conversions=0, revenue_micros=0)
    assert m.ctr is None  # impressions missing: CTR undefined, not 0 or infinite
    assert m.conversion_rate == 0.0
    assert m.cost_per_acquisition is None


def test_snapshot_windows_split_today_week_and_baseline() -> None:
    h = HourlyHistory()
    start = 1000 * 24
    h.add(start - 10 * 24, 5, 1, 0, 0, 0)  # 10 days ago: baseline only
    h.add(start - 2, 7, 2, 1, 0, 0)  # yesterday: week and baseline
    h.add(start + 3, 11, 3, 1, 30, 22)  # today
    snap = performance_snapshot(h, start, start + 24)
    assert snap.today.spend_micros == 11 and snap.today.impressions == 30
    assert snap.last_7_days.spend_micros == 7
    assert snap.baseline.spend_micros == 12
    assert len(snap.hourly) == 24 and snap.hourly[3].clicks == 3


def test_facade_and_snapshot_expose_performance() -> None:
    eng, state = _setup()
    t = DAY + timedelta(hours=10)
    _spend(eng, state, 1, t, 2_000_000, clicks=4, conv=1, impressions=40, revenue=9_000_000)
    snap = eng.snapshot(state, G, t)
    today = snap.performance["today"]
    assert today["clicks"] == 4 and today["impressions"] == 40
    assert today["roas"] == pytest.approx(4.5)
    assert snap.impressions == 40 and snap.revenue_micros == 9_000_000


# -- the multiplier --------------------------------------------------------------------
def test_multiplier_is_one_on_plan_above_one_when_behind_below_when_ahead() -> None:
    eng, state = _setup()
    noon = DAY + timedelta(hours=12)
    ch = state.channels[G]
    eng.tick(state, noon)
    from pacer_stream.core.pacing import planned_at

    planned = planned_at(ch, noon.timestamp())
    assert eng.pacing_multiplier(state, G, noon) > 1.0  # nothing spent: behind plan
    _spend(eng, state, 1, noon, planned)
    assert eng.pacing_multiplier(state, G, noon) == pytest.approx(1.0, abs=0.01)
    _spend(eng, state, 2, noon, planned // 2)
    assert eng.pacing_multiplier(state, G, noon) < 1.0


def test_multiplier_zero_when_blocked() -> None:
    eng, state = _setup()
    t = DAY + timedelta(hours=12)
    eng.emergency_stop(state, "test", t)
    assert eng.pacing_multiplier(state, G, t) == 0.0


def test_multiplier_zero_when_budget_used_up() -> None:
    eng, state = _setup(Thresholds(emergency_stop_threshold=1.0), budget=10_000_000)
    t = DAY + timedelta(hours=23, minutes=59)
    _spend(eng, state, 1, t, 10_000_000)
    assert eng.pacing_multiplier(state, G, t) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(min_value=0, max_value=BUDGET),
    b=st.integers(min_value=0, max_value=BUDGET),
    hour=st.integers(min_value=3, max_value=22),
)
def test_more_overpacing_never_raises_the_multiplier(a: int, b: int, hour: int) -> None:
    lo, hi = min(a, b), max(a, b)
    t = DAY + timedelta(hours=hour)
    values = []
    for spent in (lo, hi):
        eng, state = _setup(Thresholds(velocity_trip_multiple=1e9, emergency_stop_threshold=1.0))
        if spent:
            _spend(eng, state, 1, t, spent)
        # Breaker trips would make the multiplier 0 for the larger spend, which is
        # still "not higher"; the property holds either way.
        values.append(eng.pacing_multiplier(state, G, t))
    assert values[1] <= values[0]


def test_multiplier_in_decisions() -> None:
    eng, state = _setup()
    t = DAY + timedelta(hours=12)
    d, _ = eng.reserve(state, G, 1_000_000, "r1", t)
    assert d.allowed and d.pacing_multiplier > 1.0


# -- performance thresholds ------------------------------------------------------------
def test_threshold_needs_minimum_sample() -> None:
    few = Metrics(
        spend_micros=100_000_000, impressions=0, clicks=50, conversions=0, revenue_micros=0
    )
    assert (
        threshold_violation(
            few,
            min_conversion_rate=0.05,
            max_cost_per_click_micros=None,
            target_roas=None,
            min_clicks=200,
        )
        is None
    )
    many = replace(few, clicks=400)
    reason = threshold_violation(
        many,
        min_conversion_rate=0.05,
        max_cost_per_click_micros=None,
        target_roas=None,
        min_clicks=200,
    )
    assert reason is not None and "conversion rate" in reason


def test_cpc_and_roas_thresholds() -> None:
    m = Metrics(
        spend_micros=400_000_000,
        impressions=0,
        clicks=200,
        conversions=10,
        revenue_micros=400_000_000,
    )
    assert "cost per click" in (
        threshold_violation(
            m,
            min_conversion_rate=None,
            max_cost_per_click_micros=1_000_000,
            target_roas=None,
            min_clicks=100,
        )
        or ""
    )
    assert "ROAS" in (
        threshold_violation(
            m,
            min_conversion_rate=None,
            max_cost_per_click_micros=None,
            target_roas=2.0,
            min_clicks=100,
        )
        or ""
    )


def test_violation_throttles_then_denies_with_alert_after_grace() -> None:
    t0 = Thresholds(
        min_conversion_rate=0.05,
        performance_min_clicks=100,
        performance_grace_s=1800,
        velocity_trip_multiple=1e9,
    )
    eng, state = _setup(t0)
    start = DAY + timedelta(hours=10)
    before = eng.pacing_multiplier(state, G, start)
    # 300 clicks, 1 conversion: conversion rate 0.33% < 5%.
    _spend(eng, state, 1, start, 1_000_000, clicks=300, conv=1)
    throttled = eng.pacing_multiplier(state, G, start)
    assert 0 < throttled < before
    assert eng.decide(state, G, 100_000, start + timedelta(minutes=1)).code is not (
        Code.PERFORMANCE_THRESHOLD
    )
    later = start + timedelta(minutes=31)
    outputs = eng.tick(state, later)
    kinds = [o.alert_type for o in outputs if hasattr(o, "alert_type")]
    assert kinds.count(AlertType.PERFORMANCE_DEGRADATION) == 1
    d = eng.decide(state, G, 100_000, later)
    assert not d.allowed and d.code is Code.PERFORMANCE_THRESHOLD
    # The alert is not repeated while the violation lasts.
    again = eng.tick(state, later + timedelta(minutes=1))
    assert not [
        o for o in again if getattr(o, "alert_type", None) is AlertType.PERFORMANCE_DEGRADATION
    ]


def test_thresholds_off_by_default() -> None:
    eng, state = _setup()
    t = DAY + timedelta(hours=10)
    _spend(eng, state, 1, t, 1_000_000, clicks=1000, conv=0)
    assert state.channels[G].perf_violation_since is None


def test_conversion_floor_needs_statistical_evidence() -> None:
    # 200 clicks at a 1% floor: 2 conversions expected; 0 observed is noise, not a breach.
    noisy = Metrics(spend_micros=100_000_000, impressions=0, clicks=200, conversions=0,
                    revenue_micros=0)
    assert threshold_violation(noisy, min_conversion_rate=0.01, max_cost_per_click_micros=None,
                               target_roas=None, min_clicks=200) is None
    # 5,000 clicks at 1%: 50 expected; 10 observed is far below (> 2 sigma).
    clear = replace(noisy, clicks=5000, conversions=10)
    assert threshold_violation(clear, min_conversion_rate=0.01, max_cost_per_click_micros=None,
                               target_roas=None, min_clicks=200) is not None
    # 42 observed (within 2 sigma of 50): not a breach.
    close = replace(noisy, clicks=5000, conversions=42)
    assert threshold_violation(close, min_conversion_rate=0.01, max_cost_per_click_micros=None,
                               target_roas=None, min_clicks=200) is None


def test_a_denial_does_not_lift_itself_when_the_sample_shrinks() -> None:
    t0 = Thresholds(min_conversion_rate=0.05, performance_min_clicks=100,
                    performance_grace_s=1800, velocity_trip_multiple=1e9)
    eng, state = _setup(t0)
    start = DAY + timedelta(hours=10)
    _spend(eng, state, 1, start, 1_000_000, clicks=300, conv=1)
    eng.tick(state, start + timedelta(minutes=31))
    assert eng.decide(state, G, 100_000, start + timedelta(minutes=31)).code is (
        Code.PERFORMANCE_THRESHOLD
    )
    # Four hours later the trailing window holds no clicks at all (the channel was
    # denied): still denied, and no second alert.
    later = start + timedelta(hours=4)
    again = eng.tick(state, later)
    assert not [o for o in again if getattr(o, "alert_type", None)
                is AlertType.PERFORMANCE_DEGRADATION]
    assert eng.decide(state, G, 100_000, later).code is Code.PERFORMANCE_THRESHOLD
    # The next day starts clean.
    assert eng.decide(state, G, 100_000, start + timedelta(days=1)).code is not (
        Code.PERFORMANCE_THRESHOLD
    )
