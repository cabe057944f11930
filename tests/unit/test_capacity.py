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
from pacer_stream.core.allocation.capacity import (
    CAPACITY_MARGIN,
    absorb_capacity,
    sure_capacity,
)
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


# -- the sure capacity of late hours --------------------------------------------------
def _days(spend_by_day: list[dict[int, int]], default: int) -> HourlyHistory:
    """One dict of hour -> spend per past day, oldest first."""
    h = HourlyHistory()
    for back, by_hour in zip(range(len(spend_by_day), 0, -1), spend_by_day, strict=True):
        for hod in range(24):
            spend = by_hour.get(hod, default)
            if spend:
                h.add(START_H - back * 24 + hod, spend, 1, 0, 0, 0)
    return h


def test_late_hours_are_capped_at_the_least_demand_a_past_day_showed() -> None:
    hist = _days([{16: 100 * U, 9: 10 * U}, {16: 40 * U}, {16: 80 * U, 20: 0}], 100 * U)
    ctx = _ctx(hist)
    cap = absorb_capacity(ctx, {})
    assert cap is not None
    sure = sure_capacity(cap, ctx, {}, 100 * U, 15)
    assert sure is not None
    assert sure[16] == int(40 * U * CAPACITY_MARGIN)
    assert sure[20] == 0  # a day without demand in the hour counts as none
    assert sure[9] == cap[9]  # before 15:00 the mean (its least day: 10 units)
    assert sure[:15] == cap[:15]
    assert all(s <= c for s, c in zip(sure, cap, strict=True))


def test_refused_demand_counts_in_the_sure_capacity() -> None:
    hist = _days([{16: 100 * U}, {16: 40 * U}, {16: 80 * U}], 100 * U)
    ctx = _ctx(hist)
    unmet = {START_H - 2 * 24 + 16: 50 * U}  # the 40-unit day refused 50 more
    sure = sure_capacity(absorb_capacity(ctx, unmet), ctx, unmet, 100 * U, 15)
    assert sure is not None and sure[16] == int(80 * U * CAPACITY_MARGIN)


def test_sure_caps_that_cannot_hold_the_budget_are_not_used() -> None:
    hist = _days([{h: 1 * U for h in range(15, 24)}, {}], 100 * U)
    ctx = _ctx(hist)
    cap = absorb_capacity(ctx, {})
    assert cap is not None
    budget = sum(cap[:15]) + 10 * U  # the late hours' least demand holds 9 x 0.9 units
    assert sure_capacity(cap, ctx, {}, budget, 15) is cap
    assert sure_capacity(None, _ctx(HourlyHistory()), {}, budget, 15) is None


class _Flat:
    """Flat weights, trusting only the sure late hours from ``sure_from_hour``."""

    name = PacingStrategy.EVEN_DISTRIBUTION

    def __init__(self, sure_from_hour: int | None) -> None:
        self.sure_from_hour = sure_from_hour

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        return flat_result(ctx.day.n_slots, confidence=1.0)


def _rolled_plan(sure_from_hour: int | None) -> tuple[int, ...]:
    """A channel planned the day before learns three days of history (16:00 bought 300,
    40 and 200 units), then rolls into the new day: its new plan."""
    ch_t = ChannelType.GOOGLE_ADS
    eng = PacingEngine(strategies={PacingStrategy.EVEN_DISTRIBUTION: _Flat(sure_from_hour)})
    cfg = CampaignConfig(
        "c", {ch_t: ChannelConfig(2400 * U)}, PacingStrategy.EVEN_DISTRIBUTION, "UTC"
    )
    state, _ = eng.configure(None, cfg, datetime(2026, 2, 27, 12, tzinfo=UTC))
    ch = state.channels[ch_t]
    for back, spend16 in zip((3, 2, 1), (300, 40, 200), strict=True):
        for hod in range(24):
            spend = (spend16 if hod == 16 else 300) * U
            ch.history.add(START_H - back * 24 + hod, spend, 1, 0, 0, 0)
    eng.reserve(state, ch_t, 1 * U, "r1", datetime(2026, 3, 2, 0, 5, tzinfo=UTC))
    plan = state.channels[ch_t].plan
    assert plan is not None and plan.amounts is not None
    assert sum(plan.amounts) == 2400 * U
    return tuple(plan.amounts)


def test_a_strategys_sure_hours_limit_its_plan() -> None:
    usual, sure = _rolled_plan(None), _rolled_plan(15)
    assert sure[16] == int(40 * U * CAPACITY_MARGIN) < usual[16]
    others = [h for h in range(24) if h != 16]
    # what 16:00 cannot surely take went to the other hours
    assert all(sure[h] >= usual[h] for h in others)
    assert sum(sure[h] - usual[h] for h in others) == usual[16] - sure[16]
