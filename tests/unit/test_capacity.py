"""What an hour can absorb limits what the shared shaping plans into it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pacer_stream.core.allocation.base import (
    AllocationContext,
    StrategyResult,
    flat_result,
    shape_day,
)
from pacer_stream.core.allocation.capacity import CAPACITY_MARGIN, absorb_capacity
from pacer_stream.core.calendar import local_day
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    Code,
    PacingStrategy,
    Thresholds,
)

from .conftest import U

MONDAY = date(2026, 3, 2)
DAY = local_day("UTC", MONDAY)
START_H = int(DAY.start // 3600)


def _ctx(history: HourlyHistory) -> AllocationContext:
    return AllocationContext(DAY, history, START_H)


def _history(days: int, spend_by_hour: dict[int, int], default: int) -> HourlyHistory:
    h = HourlyHistory()
    for d in range(days, 0, -1):
        for hod in range(24):
            h.add(START_H - d * 24 + hod, spend_by_hour.get(hod, default), 1, 0, 0, 0)
    return h


def test_no_history_means_no_limit() -> None:
    assert absorb_capacity(_ctx(HourlyHistory()), {}) is None


def test_capacity_is_spend_plus_unmet_demand_per_hour() -> None:
    hist = _history(3, {23: 2 * U}, 100 * U)
    unmet = {START_H - 24 + 22: 30 * U}  # yesterday 22:00 refused 30 units
    cap = absorb_capacity(_ctx(hist), unmet)
    assert cap is not None
    assert cap[23] == int(2 * U * CAPACITY_MARGIN)
    assert cap[22] == int((100 * U + 30 * U / 3) * CAPACITY_MARGIN)


def test_an_hour_that_cannot_absorb_its_share_gives_it_to_the_others() -> None:
    budget = 2400 * U
    t = Thresholds(frontload_protection_hours=0)
    hist = _history(3, {23: 10 * U}, 1000 * U)
    cap = absorb_capacity(_ctx(hist), {})
    plan = shape_day(budget, flat_result(24), t, cap)
    assert sum(plan.amounts) == budget
    assert plan.amounts[23] <= 10 * U
    assert all(a > 100 * U for a in plan.amounts[:23])  # 23:00's share flowed back


@given(
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**10), min_size=24, max_size=24),
    st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=24, max_size=24),
)
def test_shaping_with_capacity_never_loses_money(
    budget: int, capacity: list[int], weights: list[float]
) -> None:
    flat = flat_result(24)
    result = StrategyResult(tuple(weights), flat.multipliers, flat.weights, flat.weights, 0.0)
    plan = shape_day(budget, result, Thresholds(), capacity)
    assert sum(plan.amounts) == budget
    assert all(a >= 0 for a in plan.amounts)


def test_engine_records_refused_demand_by_hour() -> None:
    eng = PacingEngine()
    ch_t = ChannelType.GOOGLE_ADS
    cfg = CampaignConfig(
        "c", {ch_t: ChannelConfig(24 * U)}, PacingStrategy.EVEN_DISTRIBUTION, "UTC"
    )
    now = datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    state, _ = eng.configure(None, cfg, now - timedelta(hours=9))
    d, _ = eng.reserve(state, ch_t, 5 * U, "big", now)
    assert d.code is Code.HOURLY_CAP
    assert state.channels[ch_t].unmet_hours.amounts == {int(now.timestamp() // 3600): 5 * U}


def test_capacity_that_cannot_hold_the_budget_is_ignored() -> None:
    """History of small spends (24 units a day) and a budget of 2400: the ceilings could
    not hold it, so the plan is the one without them (hour cap intact)."""
    budget = 2400 * U
    t = Thresholds(frontload_protection_hours=0)
    cap = absorb_capacity(_ctx(_history(3, {}, 1 * U)), {})
    assert cap is not None and sum(cap) < budget
    assert shape_day(budget, flat_result(24), t, cap) == shape_day(budget, flat_result(24), t)
