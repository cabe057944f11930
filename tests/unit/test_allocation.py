"""Hourly allocation: strategies, frontload protection, per-hour maximum, water-filling."""

from __future__ import annotations

import math
from datetime import date

import pytest

from pacer_stream.core.allocation import (
    AllocationContext,
    default_registry,
    shape_day,
    waterfill,
)
from pacer_stream.core.allocation.base import StrategyResult, flat_result, slot_caps
from pacer_stream.core.allocation.strategies import (
    EvenDistribution,
    HistoricalPattern,
    PerformanceWeighted,
    PredictiveML,
)
from pacer_stream.core.calendar import LocalDay, local_day
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.types import PacingStrategy, Thresholds

from .conftest import U

BUDGET = 1000 * U
MONDAY = date(2026, 3, 2)


def ctx_for(day: LocalDay, history: HourlyHistory | None = None) -> AllocationContext:
    return AllocationContext(day, history or HourlyHistory(), int(day.start // 3600))


def history_before(
    day: LocalDay,
    days: int,
    *,
    clicks_by_hour: dict[int, int] | None = None,
    conv_by_hour: dict[int, int] | None = None,
    spend_per_click: int = 500_000,
) -> HourlyHistory:
    """``days`` full days of hourly history before ``day`` (UTC hours)."""
    h = HourlyHistory()
    start = int(day.start // 3600)
    for d in range(days, 0, -1):
        for hod in range(24):
            clicks = (clicks_by_hour or {}).get(hod, 10)
            conv = (conv_by_hour or {}).get(hod, 1)
            h.add(start - d * 24 + hod, clicks * spend_per_click, clicks, conv, 0, 0)
    return h


# -- shaping: frontload protection, per-hour maximum, held-back budget -----------------
def test_even_default_frontload_and_held_back_budget() -> None:
    day = local_day("UTC", MONDAY)
    plan = shape_day(BUDGET, flat_result(24), Thresholds())
    normal = BUDGET / 24
    assert sum(plan.amounts) == BUDGET
    for i in range(4):  # first 4 hours: at most 50% of their normal allocation
        assert plan.amounts[i] <= normal * 0.5
        assert plan.amounts[i] >= normal * 0.5 - 1
    held_back = BUDGET - sum(plan.amounts[:4]) - 20 * normal
    later = plan.amounts[4:]
    # held-back budget is not lost: it moves to the later hours, evenly for EVEN (each
    # water-filling round may hand out one leftover micro, hence a few micros of slack)
    assert max(later) - min(later) <= 3
    assert sum(later) == pytest.approx(20 * normal + held_back, abs=1)
    assert min(later) > normal
    assert max(plan.amounts) <= 0.15 * BUDGET
    assert day.n_slots == len(plan.amounts)


def test_frontload_hours_is_configurable() -> None:
    plan = shape_day(BUDGET, flat_result(24), Thresholds(frontload_protection_hours=6))
    normal = BUDGET / 24
    assert all(a <= normal * 0.5 for a in plan.amounts[:6])
    assert all(a > normal for a in plan.amounts[6:])
    assert sum(plan.amounts) == BUDGET


def test_no_frontload_no_cap_is_exactly_flat() -> None:
    t = Thresholds(max_hourly_spend_pct=1.0, frontload_protection_hours=0)
    plan = shape_day(24 * U, flat_result(24), t)
    assert plan.amounts == (U,) * 24


def test_hour_maximum_caps_a_peaked_day_and_moves_the_excess_by_weight() -> None:
    weights = [1.0] * 24
    weights[12] = 20.0  # would be ~46% of the day
    weights[13] = 2.0
    t = Thresholds(frontload_protection_hours=0)
    plan = shape_day(BUDGET, flat_or(weights), t)
    assert plan.amounts[12] == int(BUDGET * 0.15)
    assert max(plan.amounts) <= BUDGET * 0.15
    assert sum(plan.amounts) == BUDGET
    # the excess went to the others in proportion to their weights (13 has twice 14's)
    assert plan.amounts[13] == pytest.approx(2 * plan.amounts[14], abs=2)


def test_lower_hour_maximum_changes_the_plan() -> None:
    weights = [1.0] * 24
    weights[12] = 10.0
    p15 = shape_day(BUDGET, flat_or(weights), Thresholds())
    p12 = shape_day(BUDGET, flat_or(weights), Thresholds(max_hourly_spend_pct=0.12))
    assert p15.amounts[12] == int(BUDGET * 0.15)
    assert p12.amounts[12] == int(BUDGET * 0.12)
    assert sum(p12.amounts) == BUDGET


def test_frontload_held_back_goes_to_later_hours_in_proportion_to_weights() -> None:
    weights = [1.0] * 4 + [1.0, 3.0] * 10
    t = Thresholds(max_hourly_spend_pct=1.0)
    plan = shape_day(BUDGET, flat_or(weights), t)
    total_w = sum(weights)
    for i in range(4):
        assert plan.amounts[i] <= BUDGET * weights[i] / total_w * 0.5
    # later hours keep the 1:3 ratio of their weights
    for i in range(4, 24, 2):
        assert plan.amounts[i + 1] / plan.amounts[i] == pytest.approx(3.0, rel=1e-6)
    assert sum(plan.amounts) == BUDGET


def test_slot_caps() -> None:
    caps = slot_caps(BUDGET, [1.0] * 24, Thresholds())
    assert caps[:4] == [int(BUDGET / 24 * 0.5)] * 4
    assert caps[4:] == [int(BUDGET * 0.15)] * 20


def flat_or(weights: list[float]) -> StrategyResult:
    base = flat_result(len(weights))
    return StrategyResult(
        tuple(weights),
        base.multipliers,
        base.predicted_conversion_rate,
        base.predicted_cost_per_click,
        1.0,
    )


# -- waterfill -------------------------------------------------------------------------
def test_waterfill_respects_caps_and_redistributes() -> None:
    out = waterfill(100, [10, 1, 1, 1], [30, 100, 100, 100])
    assert out[0] == 30
    assert sum(out) == 100
    assert all(abs(x - 70 / 3) <= 2 for x in out[1:])  # two rounds of rounding
    assert waterfill(0, [1, 1], [5, 5]) == [0, 0]
    assert waterfill(5, [], []) == []


def test_waterfill_spreads_what_caps_cannot_hold_instead_of_losing_it() -> None:
    out = waterfill(100, [1, 1, 2], [10, 10, 10])
    assert sum(out) == 100
    # documented: caps filled, then the 70 they cannot hold spread by weight on top
    assert out == [10 + 18, 10 + 17, 10 + 35]


def test_waterfill_gives_nothing_to_zero_weight_slots() -> None:
    """Slots with zero weight (e.g. hours before a mid-day activation) must get no
    budget even when the weighted slots overflow their caps."""
    out = waterfill(100, [0, 0, 0, 1, 1], [50, 50, 50, 30, 30])
    assert out[:3] == [0, 0, 0]
    assert sum(out) == 100


# -- strategies ------------------------------------------------------------------------
def test_registry_has_every_strategy() -> None:
    reg = default_registry()
    assert set(reg) == set(PacingStrategy)
    for name, strategy in reg.items():
        assert strategy.name is name


@pytest.mark.parametrize("strategy", list(PacingStrategy))
def test_every_strategy_without_history_is_usable(strategy: PacingStrategy) -> None:
    day = local_day("UTC", MONDAY)
    result = default_registry()[strategy].weigh(ctx_for(day))
    assert len(result.weights) == day.n_slots
    assert all(w > 0 and math.isfinite(w) for w in result.weights)
    assert 0.0 <= result.confidence <= 1.0
    plan = shape_day(BUDGET, result, Thresholds())
    assert sum(plan.amounts) == BUDGET


@pytest.mark.parametrize("strategy", list(PacingStrategy))
def test_every_strategy_with_history_sums_exactly_on_dst_days(strategy: PacingStrategy) -> None:
    for tz, d in [("America/New_York", date(2026, 3, 8)), ("Europe/London", date(2026, 10, 25))]:
        day = local_day(tz, d)
        hist = history_before(day, 10, clicks_by_hour={9: 80, 10: 90, 20: 60})
        result = default_registry()[strategy].weigh(ctx_for(day, hist))
        assert len(result.weights) == day.n_slots
        plan = shape_day(BUDGET + 7, result, Thresholds())
        assert sum(plan.amounts) == BUDGET + 7
        assert all(a >= 0 for a in plan.amounts)


def test_even_distribution_is_flat_with_full_confidence() -> None:
    day = local_day("Europe/London", date(2026, 3, 29))
    r = EvenDistribution().weigh(ctx_for(day))
    assert r.weights == (1.0,) * 23
    assert r.confidence == 1.0


def test_historical_pattern_follows_observed_traffic() -> None:
    day = local_day("UTC", MONDAY)
    flat = HistoricalPattern().weigh(ctx_for(day))
    assert len(set(flat.weights)) == 1
    assert flat.confidence == 0.0
    hist = history_before(day, 7, clicks_by_hour={12: 200, 3: 1})
    r = HistoricalPattern().weigh(ctx_for(day, hist))
    assert max(range(24), key=lambda i: r.weights[i]) == 12
    assert min(range(24), key=lambda i: r.weights[i]) == 3
    assert r.weights[3] > 0  # shrunk toward flat: no hour starves
    assert r.confidence == 1.0


def test_historical_pattern_uses_only_history_before_the_day() -> None:
    day = local_day("UTC", MONDAY)
    hist = HourlyHistory()
    start = int(day.start // 3600)
    hist.add(start + 5, 10 * U, 1000, 1, 0, 0)  # today: must not shape today's plan
    r = HistoricalPattern().weigh(ctx_for(day, hist))
    assert len(set(r.weights)) == 1


def test_historical_pattern_maps_local_hours_on_dst_days() -> None:
    day = local_day("America/New_York", date(2026, 3, 8))  # 23 slots, no local 02h
    hist = HourlyHistory()
    start = int(day.start // 3600)
    # heavy traffic at local 20:00 on the previous day (EST, UTC-5)
    for d in (1, 2, 3):
        hist.add(start - d * 24 + 20, 100 * U, 500, 5, 0, 0)
    r = HistoricalPattern().weigh(ctx_for(day, hist))
    peak = max(range(day.n_slots), key=lambda i: r.weights[i])
    assert day.hours_of_day[peak] == 20


def test_performance_weighted_prefers_hours_that_convert_per_unit_of_spend() -> None:
    day = local_day("UTC", MONDAY)
    # same traffic everywhere; hour 18 converts 10x better, hour 6 not at all
    hist = history_before(day, 7, clicks_by_hour={}, conv_by_hour={18: 10, 6: 0})
    r = PerformanceWeighted().weigh(ctx_for(day, hist))
    assert r.weights[18] > r.weights[12] > r.weights[6]
    assert r.multipliers[18] > 1.0 > r.multipliers[6]
    assert r.predicted_conversion_rate[18] == pytest.approx(1.0)  # 10 conv / 10 clicks
    assert r.predicted_cost_per_click[18] == pytest.approx(0.5)
    assert 0.0 < r.confidence <= 1.0


def test_performance_weighted_small_samples_are_smoothed() -> None:
    day = local_day("UTC", MONDAY)
    hist = HourlyHistory()
    start = int(day.start // 3600)
    for hod in range(24):
        hist.add(start - 24 + hod, 100 * U, 100, 5, 0, 0)
    hist.add(start - 48 + 7, 1 * U, 1, 1, 0, 0)  # one lucky conversion on 1 unit
    r = PerformanceWeighted().weigh(ctx_for(day, hist))
    # a single conversion on one unit of spend does not make hour 7 dominate
    assert r.multipliers[7] < 2.0


def test_predictive_ml_needs_24_hours_of_history() -> None:
    day = local_day("UTC", MONDAY)
    start = int(day.start // 3600)
    hist = HourlyHistory()
    for k in range(1, 24):  # 23 hours
        hist.add(start - k, 10 * U, 20, 1, 0, 0)
    r = PredictiveML().weigh(ctx_for(day, hist))
    assert r.confidence == 0.0
    hist.add(start - 24, 10 * U, 20, 1, 0, 0)  # the 24th hour
    r24 = PredictiveML().weigh(ctx_for(day, hist))
    assert 0.0 < r24.confidence <= 1.0
    assert len(r24.weights) == 24
    assert all(w >= 0 and math.isfinite(w) for w in r24.weights)


def test_predictive_ml_confidence_grows_with_history() -> None:
    """How confident a model is depends on the forecaster; more history must not make
    it less confident, and it stays a score in [0, 1]."""
    day = local_day("UTC", MONDAY)
    hist = history_before(day, 8, clicks_by_hour={10: 50}, conv_by_hour={10: 8})
    r = PredictiveML().weigh(ctx_for(day, hist))
    r_short = PredictiveML().weigh(ctx_for(day, history_before(day, 2)))
    assert 1.0 >= r.confidence >= r_short.confidence > 0.0
    assert r.model_version is not None


def test_adaptive_hybrid_moves_from_even_to_data_with_coverage() -> None:
    day = local_day("UTC", MONDAY)
    hybrid = default_registry()[PacingStrategy.ADAPTIVE_HYBRID]
    r0 = hybrid.weigh(ctx_for(day))
    assert len(set(r0.weights)) == 1
    assert r0.confidence == 0.0
    # hour 12 has 30x the traffic and converts like every other hour
    peaked = {"clicks_by_hour": {12: 300}, "conv_by_hour": {12: 30}}
    r2 = hybrid.weigh(ctx_for(day, history_before(day, 2, **peaked)))  # type: ignore[arg-type]
    r8 = hybrid.weigh(ctx_for(day, history_before(day, 8, **peaked)))  # type: ignore[arg-type]

    def peak_share(weights: tuple[float, ...]) -> float:
        return weights[12] / sum(weights)

    assert peak_share(r8.weights) > peak_share(r2.weights) > 1 / 24
    assert 0.0 < r2.confidence < r8.confidence <= 1.0
