"""Invariants of the simulated runs: money is conserved, seeds are deterministic, the
baselines do what their definitions say and the oracle is not beaten beyond noise.

Small days (a few campaigns) keep this fast; the figures of the report are not tested.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pacer_stream.sim.baselines import (
    ORIGINAL_BREAKER,
    original_hourly,
    run_gate,
    run_oracle,
)
from pacer_stream.sim.faults import FaultPlan, plan_faults
from pacer_stream.sim.pacer import run_pacer, run_pacer_days
from pacer_stream.sim.runner import seed_days
from pacer_stream.sim.scenario import MINUTES, Faults, Scenario
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic, generate

FAULTY = Scenario(campaigns=6, channels=3)
CLEAN = FAULTY.with_faults(Faults.none())


@pytest.fixture(scope="module")
def faulty() -> tuple[Traffic, FaultPlan]:
    # Seed 2: its runaway lands on a campaign of this small day.
    t = generate(2, FAULTY)
    return t, plan_faults(t, FAULTY.faults)


@pytest.fixture(scope="module")
def clean() -> tuple[Traffic, FaultPlan]:
    t = generate(2, CLEAN)
    return t, plan_faults(t, CLEAN.faults)


@pytest.fixture(scope="module")
def pacer_faulty(faulty: tuple[Traffic, FaultPlan]) -> Trace:
    return run_pacer(*faulty, reallocate=True, timeline_campaign=faulty[1].runaways[0].campaign)


@pytest.fixture(scope="module")
def gates_clean(clean: tuple[Traffic, FaultPlan]) -> dict[str, Trace]:
    names = ("asap", "even-gate", "traffic-gate", "original-rules", "throttle")
    return {n: run_gate(n, *clean) for n in names}


def _cum(trace: Trace) -> np.ndarray:
    """Cumulative spend per channel at minute boundaries [C, H, M + 1]."""
    c, h, _ = trace.spend.shape
    return np.concatenate([np.zeros((c, h, 1)), np.cumsum(trace.spend, axis=2)], axis=2)


# ---------------------------------------------------------------- pacer-stream
def test_pacer_books_every_unique_micro_once(pacer_faulty: Trace) -> None:
    """Duplicates, late events and the stall: the engine's books equal the unique
    events to the micro."""
    assert pacer_faulty.unique_micros == int(pacer_faulty.spend.sum())
    assert pacer_faulty.recorded_micros == pacer_faulty.unique_micros
    assert pacer_faulty.counters.get("duplicates_ignored", 0) > 0


def test_reallocation_conserves_each_campaign_budget(
    faulty: tuple[Traffic, FaultPlan], pacer_faulty: Trace
) -> None:
    traffic, _ = faulty
    assert np.array_equal(pacer_faulty.budget.sum(axis=1), traffic.budget.sum(axis=1))
    assert not np.array_equal(pacer_faulty.budget, traffic.budget), "something moved"
    assert (pacer_faulty.budget >= 0).all()


def test_each_day_records_the_split_it_started_from() -> None:
    """``start_budget`` is the split a day starts from: the configured one on the first
    day and without reallocation; a split learned from the days before (moved at the
    day's first tick, the campaign total kept) later, which intraday moves then change
    further (``budget``)."""
    days = seed_days(0, Scenario(campaigns=4, channels=3, faults=Faults.none(), days=3))
    moving = run_pacer_days(days, reallocate=True)
    static = run_pacer_days(days, reallocate=False)
    configured = days[0][0].budget
    assert np.array_equal(moving[0].start_budget, configured)
    for trace in static:
        assert np.array_equal(trace.start_budget, configured)
    for trace in moving:
        assert np.array_equal(trace.start_budget.sum(axis=1), configured.sum(axis=1))
        assert not np.array_equal(trace.start_budget, trace.budget), "moved during the day"
    learned = [not np.array_equal(t.start_budget, configured) for t in moving[1:]]
    assert any(learned), "a later day starts from a learned split"


def test_the_breaker_stops_the_runaway_bidder(pacer_faulty: Trace) -> None:
    assert pacer_faulty.runaways
    for r in pacer_faulty.runaways:
        assert r.stopped
        assert 0 <= r.detect_minutes < 15
    tl = pacer_faulty.timeline
    assert tl is not None
    assert any(state == "open" for _, state in tl.breaker)
    assert any(kind == "circuit_breaker_open" for _, kind in tl.alerts)


def test_a_runaway_on_a_late_platform_is_stopped_within_the_delay_and_a_minute(
    faulty: tuple[Traffic, FaultPlan], pacer_faulty: Trace
) -> None:
    _, plan = faulty
    late = [r for r in pacer_faulty.runaways if r.late]
    assert late, "this small day has a runaway on a late platform"
    delay_min = plan.faults.late_minutes
    for r in late:
        assert plan.late[r.campaign, r.channel]
        assert r.stopped and r.first_spend_s is not None and r.stop_s is not None
        # the engine hears of the first unasked spend only when the platform reports it
        assert delay_min <= r.detect_from_spend_minutes <= delay_min + 1
        assert r.detect_minutes <= 1.0  # measured from that report


def test_prompt_runaways_are_stopped_within_two_minutes_of_their_first_report(
    pacer_faulty: Trace,
) -> None:
    prompt = [r for r in pacer_faulty.runaways if not r.late]
    assert prompt
    assert all(r.stopped and r.detect_minutes <= 2.0 for r in prompt)


def test_pacer_is_deterministic(clean: tuple[Traffic, FaultPlan]) -> None:
    a = run_pacer(*clean, reallocate=True)
    b = run_pacer(*clean, reallocate=True)
    assert np.array_equal(a.spend, b.spend)
    assert np.array_equal(a.budget, b.budget)
    assert np.array_equal(a.conversions, b.conversions)


def test_pacer_without_faults_never_overspends(clean: tuple[Traffic, FaultPlan]) -> None:
    trace = run_pacer(*clean, reallocate=False)
    spent = trace.spend.sum(axis=2)
    assert (spent <= trace.budget).all()
    assert trace.recorded_micros == trace.unique_micros
    # and the plan it reports ends at the budget
    assert np.allclose(trace.plan[:, MINUTES], clean[0].budget.sum(axis=1))


# ---------------------------------------------------------------- baselines
def test_asap_spends_first(gates_clean: dict[str, Trace]) -> None:
    asap = _cum(gates_clean["asap"]).sum(axis=(0, 1))
    even = _cum(gates_clean["even-gate"]).sum(axis=(0, 1))
    assert asap[MINUTES // 2] > even[MINUTES // 2] * 1.1
    assert (asap >= even - 1).all()


@pytest.mark.parametrize("name", ["asap", "even-gate", "traffic-gate", "throttle"])
def test_gates_never_overspend_without_faults(
    name: str, clean: tuple[Traffic, FaultPlan], gates_clean: dict[str, Trace]
) -> None:
    spent = gates_clean[name].spend.sum(axis=2)
    assert (spent <= clean[0].budget).all()


def test_even_gate_stays_under_the_line(
    clean: tuple[Traffic, FaultPlan], gates_clean: dict[str, Trace]
) -> None:
    cum = _cum(gates_clean["even-gate"])
    line = clean[0].budget[:, :, None] * np.arange(MINUTES + 1)[None, None, :] / MINUTES
    assert (cum <= line + 1).all()
    # ... and close to it: the traffic offers more than the line.
    assert gates_clean["even-gate"].spend.sum() / clean[0].budget.sum() > 0.97


def test_traffic_gate_stays_under_the_forecast_curve(
    clean: tuple[Traffic, FaultPlan], gates_clean: dict[str, Trace]
) -> None:
    cum = _cum(gates_clean["traffic-gate"])
    cap = clean[0].budget[:, :, None] * clean[0].forecast_cum
    assert (cum <= cap + 1).all()


def test_original_rules_hourly_caps_and_breaker_at_90(
    clean: tuple[Traffic, FaultPlan], gates_clean: dict[str, Trace]
) -> None:
    traffic = clean[0]
    trace = gates_clean["original-rules"]
    b = traffic.budget.reshape(-1).astype(float)
    caps = original_hourly(b).reshape((*traffic.budget.shape, 24))
    hourly = trace.spend.reshape((*trace.spend.shape[:2], 24, 60)).sum(axis=3)
    assert (hourly <= caps + 1).all(), "never above the hour's allocation"
    assert caps[..., 0] == pytest.approx(caps[..., 10] * 0.5), "frontload: 50% in hour 0"
    spent = trace.spend.sum(axis=2)
    # The breaker opens at 90% and blocks: at most one minute's batches beyond it.
    assert (spent < traffic.budget * ORIGINAL_BREAKER + traffic.cost.max(axis=(2, 3)) * 4).all()
    blocked = ~trace.able
    reached = spent >= traffic.budget * ORIGINAL_BREAKER
    assert (blocked[..., -1] >= reached).all(), "a channel past 90% is blocked"


def test_throttle_tracks_its_plan_better_than_asap(gates_clean: dict[str, Trace]) -> None:
    def gap(t: Trace) -> float:
        cum = _cum(t).sum(axis=1)
        return float(np.abs(cum - t.plan).mean())

    assert gap(gates_clean["throttle"]) < gap(gates_clean["asap"]) / 2


def test_gates_count_duplicates_naively(faulty: tuple[Traffic, FaultPlan]) -> None:
    trace = run_gate("even-gate", *faulty)
    assert trace.recorded_micros > trace.unique_micros


def test_runaway_runs_unchecked_except_for_the_original_breaker(
    faulty: tuple[Traffic, FaultPlan],
) -> None:
    asap = run_gate("asap", *faulty)
    assert all(not r.stopped and r.detect_minutes == 15 for r in asap.runaways)
    assert all(r.excess_micros > 0 for r in asap.runaways)


def test_gates_are_deterministic(faulty: tuple[Traffic, FaultPlan]) -> None:
    a = run_gate("throttle", *faulty)
    b = run_gate("throttle", *faulty)
    assert np.array_equal(a.spend, b.spend)


def test_unknown_gate_is_refused(clean: tuple[Traffic, FaultPlan]) -> None:
    with pytest.raises(ValueError):
        run_gate("nope", *clean)


# ---------------------------------------------------------------- oracle
def test_oracle_respects_each_campaign_budget(clean: tuple[Traffic, FaultPlan]) -> None:
    traffic = clean[0]
    oracle = run_oracle(traffic)
    assert (oracle.spend.sum(axis=(1, 2)) <= traffic.budget.sum(axis=1)).all()
    assert np.array_equal(oracle.budget.sum(axis=1), traffic.budget.sum(axis=1))
    static = run_oracle(traffic, per_channel=True)
    assert (static.spend.sum(axis=2) <= traffic.budget).all()


def test_an_oracle_bound_to_another_split_spends_each_channel_within_it(
    clean: tuple[Traffic, FaultPlan],
) -> None:
    """What another split (a pacer's own channel spend) could have bought: each channel
    within its own budget of that split; the operator's split given as ``budgets`` is
    the static oracle itself."""
    traffic = clean[0]
    tilted = traffic.budget.copy()
    tilted[:, 0] //= 2  # half the first channel's money, moved to the second
    tilted[:, 1] += traffic.budget[:, 0] - tilted[:, 0]
    bound = run_oracle(traffic, per_channel=True, budgets=tilted)
    assert (bound.spend.sum(axis=2) <= tilted).all()
    assert (bound.spend[:, 0].sum(axis=1) <= traffic.budget[:, 0] // 2).all()
    static = run_oracle(traffic, per_channel=True)
    same = run_oracle(traffic, per_channel=True, budgets=traffic.budget)
    assert np.array_equal(same.spend, static.spend)


def test_an_oracle_ranked_by_another_value_buys_in_that_order(
    clean: tuple[Traffic, FaultPlan],
) -> None:
    """``value`` replaces each batch's own expected value: ranked by lateness, the
    oracle buys the day's last batches first, within the same budget."""
    traffic = clean[0]

    def lateness(t: Traffic, c: int, channels: list[int]) -> np.ndarray:
        return np.broadcast_to(
            np.arange(MINUTES, dtype=float)[None, :, None], t.cost[c, channels].shape
        ).reshape(-1)

    late = run_oracle(traffic, per_channel=True, value=lateness)
    assert (late.spend.sum(axis=2) <= traffic.budget).all()
    offered = traffic.cost.sum(axis=3)  # [C, H, M]
    for c in range(traffic.n_campaigns):
        for h in range(traffic.n_channels):
            bought = np.flatnonzero(late.spend[c, h])
            assert bought.size
            # A suffix of the day: every minute after the first one bought, whole.
            after = slice(int(bought[0]) + 1, MINUTES)
            assert np.array_equal(late.spend[c, h, after], offered[c, h, after])
    assert not np.array_equal(late.spend, run_oracle(traffic, per_channel=True).spend)


def test_oracle_is_not_beaten_beyond_noise(
    clean: tuple[Traffic, FaultPlan], gates_clean: dict[str, Trace]
) -> None:
    traffic = clean[0]
    best = int(run_oracle(traffic).conversions.sum())
    others = {n: int(t.conversions.sum()) for n, t in gates_clean.items()}
    others["pacer-stream"] = int(run_pacer(*clean, reallocate=True).conversions.sum())
    for name, conv in others.items():
        # The oracle maximises *expected* conversions; realised ones are Poisson.
        assert conv <= best + 3 * math.sqrt(best), name
    # and with the campaign-wide budget it does at least as well as with the static split
    static = int(run_oracle(traffic, per_channel=True).conversions.sum())
    assert best >= static - 3 * math.sqrt(static)
