"""The simulator's traffic and fault model: seeded, shaped as documented, fault-stable.

These check the model's own invariants (determinism, the shape docs/targets.md describes),
never the report's figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from pacer_stream.sim.faults import RUNAWAY_WINDOW, plan_faults
from pacer_stream.sim.scenario import CHUNKS, DST_DAY, MINUTES, Faults, Scenario
from pacer_stream.sim.traffic import DIURNAL, diurnal_curve, generate

SMALL = Scenario(campaigns=12, channels=3)


@pytest.fixture(scope="module")
def day():  # type: ignore[no-untyped-def]
    return generate(7, SMALL)


def test_same_seed_gives_identical_traffic(day) -> None:  # type: ignore[no-untyped-def]
    again = generate(7, SMALL)
    for name in ("budget", "cost", "clicks", "conversions", "expected_conversions", "uniform"):
        assert np.array_equal(getattr(day, name), getattr(again, name)), name
    assert day.zones == again.zones


def test_other_seed_gives_other_traffic(day) -> None:  # type: ignore[no-untyped-def]
    assert not np.array_equal(day.cost, generate(8, SMALL).cost)


def test_shapes(day) -> None:  # type: ignore[no-untyped-def]
    assert day.cost.shape == (12, 3, MINUTES, CHUNKS)
    assert day.forecast_cum.shape == (12, 3, MINUTES + 1)
    assert np.allclose(day.forecast_cum[:, :, -1], 1.0)
    assert (day.cost >= 0).all() and (day.conversions >= 0).all()
    assert ((day.clicks == 0) <= (day.cost == 0)).all(), "no click, no cost"


def test_traffic_offers_more_than_the_budget(day) -> None:  # type: ignore[no-untyped-def]
    offered = day.cost.sum(axis=(2, 3)) / day.budget
    # 1.5-3x by construction, plus bursts and Poisson noise on small channels.
    assert np.median(offered) > 1.5
    assert offered.min() > 1.0


def test_diurnal_peak_to_trough_is_four_to_one() -> None:
    assert max(DIURNAL) / min(DIURNAL) == pytest.approx(4.0, rel=0.01)
    curve = diurnal_curve(np.array([0.0, 2.0]))
    assert curve.shape == (2, MINUTES)
    assert curve.max(axis=1) / curve.min(axis=1) == pytest.approx([4.0, 4.0], rel=0.05)
    # The phase shift moves the peak later.
    assert np.argmax(curve[1]) - np.argmax(curve[0]) == pytest.approx(120, abs=2)


def test_channel_cpa_ratios_are_about_1_15_3(day) -> None:  # type: ignore[no-untyped-def]
    ratios = np.sort(day.cpa_ratio, axis=1).mean(axis=0)
    assert ratios == pytest.approx([1.0, 1.5, 3.0], rel=0.15)
    cpa = day.cpc / day.cvr
    assert (np.sort(cpa, axis=1)[:, 2] / np.sort(cpa, axis=1)[:, 0]).mean() > 2.0


def test_campaigns_live_in_several_time_zones() -> None:
    day = generate(1, Scenario(campaigns=40))
    assert len(set(day.zones)) >= 4
    # Local midnights differ by zone, so days start at different UTC instants.
    assert len(set(day.day_start.tolist())) == len(set(day.zones))


def test_switching_faults_off_keeps_the_traffic() -> None:
    a = generate(3, SMALL)
    b = generate(3, SMALL.with_faults(Faults.none()))
    assert np.array_equal(a.cost, b.cost)


def test_fault_plan_is_seeded_and_placed_apart(day) -> None:  # type: ignore[no-untyped-def]
    plan = plan_faults(day, Faults())
    again = plan_faults(day, Faults())
    assert np.array_equal(plan.duplicate, again.duplicate)
    assert [r.start_minute for r in plan.runaways] == [r.start_minute for r in again.runaways]
    assert len(plan.runaways) >= 1
    prompt = [r for r in plan.runaways if not r.late]
    assert len(prompt) >= 1
    for r in plan.runaways:
        # The prompt incidents never sit on a late platform; the late ones always do,
        # each on a campaign no prompt incident touches.
        assert bool(plan.late[r.campaign, r.channel]) is r.late
        if r.late:
            assert r.campaign not in {p.campaign for p in prompt}
            assert r.campaign in plan.late_runaway_campaigns()
        assert RUNAWAY_WINDOW[0] <= r.start_minute < RUNAWAY_WINDOW[1]
        stall = plan.stall_minutes(r.campaign)
        assert not set(stall) & set(range(r.start_minute - 20, r.end_minute + 20))
        # 20x the requests of a minute's batches, for 15 minutes.
        assert len(r.times) == CHUNKS * 20 * 15
        assert np.all(np.diff(r.times) > 0)
    for c in range(day.n_campaigns):
        stall = plan.stall_minutes(c)
        assert len(stall) == 2 and 0 < stall.start < MINUTES


def test_late_runaways_leave_the_other_faults_as_they_were(day) -> None:  # type: ignore[no-untyped-def]
    with_late = plan_faults(day, Faults())
    without = plan_faults(day, Faults(late=False))
    assert any(r.late for r in with_late.runaways)
    assert not any(r.late for r in without.runaways)
    assert [(r.campaign, r.start_minute) for r in with_late.runaways if not r.late] == [
        (r.campaign, r.start_minute) for r in without.runaways
    ]
    assert np.array_equal(with_late.duplicate, without.duplicate)


def test_faults_off_means_no_faults(day) -> None:  # type: ignore[no-untyped-def]
    plan = plan_faults(day, Faults.none())
    assert plan.runaways == ()
    assert not plan.duplicate.any() and not plan.late.any()
    assert all(len(plan.stall_minutes(c)) == 0 for c in range(day.n_campaigns))
    assert plan.deliver_at(0, 1000.0) == 1000.0


def test_duplicate_share_is_about_one_percent(day) -> None:  # type: ignore[no-untyped-def]
    plan = plan_faults(day, Faults())
    assert plan.duplicate.mean() == pytest.approx(0.01, abs=0.002)


def test_scenario_validates_sizes() -> None:
    with pytest.raises(ValueError):
        Scenario(campaigns=0)
    with pytest.raises(ValueError):
        Scenario(channels=9)


# ---------------------------------------------------------------- multi-day
MULTI = Scenario(campaigns=20, channels=2, days=9, warmup_days=7)


def test_days_share_the_campaigns_but_not_the_dice() -> None:
    a, b = generate(5, MULTI, 0), generate(5, MULTI, 1)
    assert np.array_equal(a.budget, b.budget) and a.zones == b.zones
    assert np.allclose(a.cvr, b.cvr)
    assert not np.array_equal(a.clicks, b.clicks)
    assert (b.day_start - a.day_start >= 23 * 3600).all()


def test_conversion_pattern_is_learnable_from_history() -> None:
    """Hourly conversion quality over a week of days correlates with the true hour
    pattern (the noise does not hide it), and the pattern drifts day by day."""
    days = [generate(6, MULTI, d) for d in range(7)]
    observed = np.mean([d.quality[:, :, ::60] for d in days], axis=0)
    truth = np.mean([d.true_hour_quality for d in days], axis=0)
    corr = np.corrcoef(np.log(observed).ravel(), np.log(truth).ravel())[0, 1]
    assert corr > 0.8

    def shape(q: np.ndarray) -> np.ndarray:  # hour pattern without the weekday level
        return np.log(q / q.mean(axis=2, keepdims=True)).ravel()

    first, last = shape(days[0].true_hour_quality), shape(days[-1].true_hour_quality)
    assert not np.allclose(first, last)
    # Slow drift: a week later the hour pattern is still close to the old one.
    assert np.corrcoef(first, last)[0, 1] > 0.9


def test_dst_day_has_no_auctions_past_its_end() -> None:
    dst = generate(7, MULTI, MULTI.warmup_days + 1)
    assert dst.scenario.date_of(dst.day) == DST_DAY
    short = dst.day_minutes < MINUTES
    assert short.any() and (dst.day_minutes[short] == 23 * 60).all()
    for c in np.flatnonzero(short):
        assert dst.cost[c, :, 23 * 60 :].sum() == 0
        assert dst.cost[c, :, : 23 * 60].sum() > 0
