"""The optional simulator scenarios: the bid engine that applies the pacing multiplier, and the
conversion-collapse scenario with a performance floor.

Small days keep this fast; behaviour is tested, not the report's figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from pacer_stream.core.types import Thresholds
from pacer_stream.sim.bidding import BidEngine
from pacer_stream.sim.collapse import (
    apply_collapse,
    collapsed_channels,
    floor_thresholds,
    run_summary,
    seed_figures,
)
from pacer_stream.sim.faults import FaultPlan, plan_faults
from pacer_stream.sim.pacer import run_pacer
from pacer_stream.sim.runner import MULTIPLIER_ROW, Task, run_task, tasks_for
from pacer_stream.sim.scenario import MINUTES, Collapse, Faults, Scenario
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic, generate

FAULTY = Scenario(campaigns=4, channels=3)
#: Seed 15 with six fault-free campaigns: two of them have a collapsed channel large
#: enough for the engine's default minimum sample (200 clicks in the window).
COLLAPSE_SEED = 15
COLLAPSE_DAY = Scenario(campaigns=6, channels=3, faults=Faults.none())
COLLAPSE = Collapse()
GRACE_S = Thresholds().performance_grace_s


def _day(seed: int, scenario: Scenario) -> tuple[Traffic, FaultPlan]:
    t = generate(seed, scenario)
    return t, plan_faults(t, scenario.faults)


@pytest.fixture(scope="module")
def faulty() -> tuple[Traffic, FaultPlan]:
    return _day(2, FAULTY)


@pytest.fixture(scope="module")
def multiplier_runs(faulty: tuple[Traffic, FaultPlan]) -> tuple[Trace, Trace]:
    first = run_pacer(*faulty, apply_multiplier=True, name=MULTIPLIER_ROW)
    again = run_pacer(*_day(2, FAULTY), apply_multiplier=True)  # regenerated from the seed
    return first, again


# ---------------------------------------------------------------- the multiplier
def test_bid_landscape_raises_and_lowers_volume_and_cost() -> None:
    """m > 1 buys more clicks at a higher cost per click; m < 1 wins fewer batches at
    a lower cost per click; m == 0 bids nothing; m == 1 takes the batch as offered."""
    traffic = generate(0, Scenario(campaigns=1, channels=1, faults=Faults.none()))
    cost, clicks = traffic.cost[0, 0], traffic.clicks[0, 0]
    batches = [(m, k) for m in range(MINUTES) for k in range(cost.shape[1]) if cost[m, k]]

    def buy(mult: float) -> tuple[int, int, int]:
        bidder = BidEngine(traffic, 0)
        won = spent = n = 0
        for m, k in batches:
            bidder.multiplier[0] = mult
            got = bidder.offer(0, m, k)
            if got is not None:
                won += 1
                spent += got[0]
                n += got[1]
        return won, spent, n

    base_won, base_spent, base_clicks = buy(1.0)
    assert base_won == len(batches)
    assert base_spent == int(cost.sum())
    assert base_clicks == int(clicks.sum())
    hi_won, hi_spent, hi_clicks = buy(2.0)
    assert hi_won == base_won and hi_clicks > base_clicks and hi_spent > base_spent
    assert hi_spent / hi_clicks > base_spent / base_clicks
    lo_won, lo_spent, lo_clicks = buy(0.25)
    assert lo_won < base_won and lo_spent < base_spent
    assert lo_spent / lo_clicks < base_spent / base_clicks
    assert buy(0.0) == (0, 0, 0)


def test_multiplier_run_conserves_money(
    faulty: tuple[Traffic, FaultPlan], multiplier_runs: tuple[Trace, Trace]
) -> None:
    traffic, _ = faulty
    trace, _ = multiplier_runs
    assert trace.unique_micros == int(trace.spend.sum()) > 0
    assert trace.recorded_micros == trace.unique_micros, "double-counted or lost spend"
    assert np.array_equal(trace.budget.sum(axis=1), traffic.budget.sum(axis=1))
    assert (trace.budget >= 0).all()


def test_multiplier_run_is_deterministic_by_seed_and_applies_the_multiplier(
    faulty: tuple[Traffic, FaultPlan], multiplier_runs: tuple[Trace, Trace]
) -> None:
    first, again = multiplier_runs
    assert np.array_equal(first.spend, again.spend)
    assert np.array_equal(first.conversions, again.conversions)
    assert np.array_equal(first.budget, again.budget)
    plain = run_pacer(*faulty)
    assert not np.array_equal(first.spend, plain.spend), "the multiplier changed nothing"


def test_multiplier_is_off_by_default_and_adds_one_task() -> None:
    seeds = [0, 1]
    default = tasks_for(seeds, FAULTY)
    assert "pacer-multiplier" not in {t.kind for t in default}
    assert {"pacer", "pacer-static", "baselines"} <= {t.kind for t in default}
    extended = tasks_for(seeds, Scenario(campaigns=4, multiplier=True))
    assert len(extended) == len(default) + len(seeds)
    res = run_task(Task(2, "pacer-multiplier", Scenario(campaigns=2, multiplier=True)))
    assert MULTIPLIER_ROW in res.extra and res.extra[MULTIPLIER_ROW]["utilisation"] > 0


# ---------------------------------------------------------------- the collapse
@pytest.fixture(scope="module")
def collapse_runs() -> tuple[Traffic, list[int], Trace, Trace]:
    traffic, plan = _day(COLLAPSE_SEED, COLLAPSE_DAY)
    day, channels = apply_collapse(traffic, COLLAPSE)
    floor = floor_thresholds(day, channels, COLLAPSE)
    kw = {"watch": channels, "watch_from_minute": COLLAPSE.start_minute}
    on = run_pacer(day, plan, thresholds=floor, **kw)  # type: ignore[arg-type]
    off = run_pacer(day, plan, **kw)  # type: ignore[arg-type]
    return day, channels, on, off


def test_collapse_only_cuts_conversions_of_the_collapsed_channel_after_its_start() -> None:
    traffic = generate(COLLAPSE_SEED, COLLAPSE_DAY)
    day, channels = apply_collapse(traffic, COLLAPSE)
    assert channels == collapsed_channels(traffic)
    s = COLLAPSE.start_minute
    for c, h in enumerate(channels):
        assert day.conversions[c, h, s:].sum() < traffic.conversions[c, h, s:].sum()
        assert (day.conversions[c, h, s:] <= traffic.conversions[c, h, s:]).all()
        others = [x for x in range(traffic.n_channels) if x != h]
        assert np.array_equal(day.conversions[c, others], traffic.conversions[c, others])
        # The floor sits below every other channel's normal rate.
        floor = COLLAPSE.floor_share * traffic.cvr[c, h]
        assert (traffic.cvr[c, others] > floor).all()
    assert np.array_equal(day.conversions[:, :, :s], traffic.conversions[:, :, :s])
    assert np.array_equal(day.cost, traffic.cost)


def test_floor_shifts_spend_away_from_the_collapsed_channel(
    collapse_runs: tuple[Traffic, list[int], Trace, Trace],
) -> None:
    _, _, on, off = collapse_runs
    figures = seed_figures(run_summary(on, COLLAPSE), run_summary(off, COLLAPSE))
    assert figures["share_throttled"] > 0 and figures["share_denied"] > 0
    assert (
        figures["collapsed_share_after_with_floor"] < figures["collapsed_share_after_without_floor"]
    )
    assert (
        figures["collapsed_share_after_with_floor_fired"]
        < figures["collapsed_share_after_without_floor_fired"]
    )
    assert figures["denials_without_floor"] == 0
    # The money is still exact with the floor on.
    assert on.recorded_micros == on.unique_micros


def test_throttle_comes_first_and_denial_waits_for_the_grace(
    collapse_runs: tuple[Traffic, list[int], Trace, Trace],
) -> None:
    _, _, on, off = collapse_runs
    denied = [p for p in on.perf if p.denial_s is not None]
    assert denied
    for p in denied:
        assert p.throttle_s is not None and p.throttle_s <= p.denial_s
        assert p.denial_episode_s is not None
        assert p.denial_s - p.denial_episode_s >= GRACE_S
        assert p.denial_s >= p.collapse_s
    for p in on.perf:
        if p.alert_s is not None:
            assert p.throttle_s is not None and p.alert_s >= p.throttle_s
    # Without a floor the engine never throttles, denies or alerts on performance.
    assert all(p.throttle_s is None and p.denial_s is None for p in off.perf)


def test_the_hour_weights_chart_carries_the_hour_curve_the_hybrid_leaned_on() -> None:
    scenario = Scenario(campaigns=2, channels=3, faults=Faults.none(), days=3, warmup_days=2)
    res = run_task(Task(0, "pacer", scenario, charts=True))
    channels = res.chart["hour_weights"]["pacer-stream"]
    curves = [row["curve"] for row in channels.values() if "curve" in row]
    assert curves
    for curve in curves:
        assert len(curve) == 24
        assert np.mean(curve) == pytest.approx(1.0)
        assert max(curve) > min(curve)
