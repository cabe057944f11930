"""Reallocation: donors/receivers by the 20% efficiency gap, smoothing, exact conservation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pacer_stream.core.efficiency import pooled_rate, smoothed_efficiency
from pacer_stream.core.pacing import slot_allowance
from pacer_stream.core.reallocation import (
    ChannelBooks,
    ChannelPerformance,
    cover_overruns,
    efficiencies,
    plan_moves,
)
from pacer_stream.core.types import BudgetMove, ChannelType, Code, Thresholds

from .conftest import DAY0, F, G, Harness, T, U

TH = Thresholds()


def perf(budget: int, spent: int, conversions: int, reserved: int = 0) -> ChannelPerformance:
    return ChannelPerformance(budget, spent, reserved, conversions, spent)


# -- efficiency ------------------------------------------------------------------------
def test_smoothed_efficiency_blends_toward_the_prior() -> None:
    assert pooled_rate(10, 0) == 0.0
    assert pooled_rate(10, 100 * U) == pytest.approx(0.1)
    # no spend: exactly the prior
    assert smoothed_efficiency(0, 0, prior_rate=0.1) == pytest.approx(0.1)
    # one conversion on one unit is not "1 per unit": it stays near the prior
    assert smoothed_efficiency(1, U, prior_rate=0.1) == pytest.approx((1 + 5) / 51)
    # lots of data: follows the data
    assert smoothed_efficiency(5000, 10_000 * U, 0.1) == pytest.approx(0.5, rel=0.01)


# -- plan_moves ----------------------------------------------------------------------------
def test_worse_channel_gives_half_its_unused_budget_to_the_better() -> None:
    moves = plan_moves({G: perf(1000 * U, 200 * U, 2), F: perf(1000 * U, 200 * U, 40)}, TH)
    assert moves == {G: -400 * U, F: 400 * U}
    assert sum(moves.values()) == 0


def test_gap_under_twenty_percent_moves_nothing() -> None:
    # 10% apart with plenty of data (smoothing barely matters)
    chans = {G: perf(1000 * U, 10_000 * U, 900), F: perf(1000 * U, 10_000 * U, 1000)}
    eff = efficiencies(chans)
    assert eff[G] / eff[F] > 0.8
    assert plan_moves(chans, TH) == {}


def test_gap_over_twenty_percent_moves() -> None:
    chans = {G: perf(20_000 * U, 10_000 * U, 700), F: perf(20_000 * U, 10_000 * U, 1000)}
    eff = efficiencies(chans)
    assert eff[G] / eff[F] < 0.8
    moves = plan_moves(chans, TH)
    assert moves[G] == -5_000 * U and moves[F] == 5_000 * U


def test_gap_threshold_is_configurable() -> None:
    chans = {G: perf(20_000 * U, 10_000 * U, 900), F: perf(20_000 * U, 10_000 * U, 1000)}
    assert plan_moves(chans, TH) == {}
    assert plan_moves(chans, Thresholds(reallocation_gap=0.05)) != {}


def test_small_samples_do_not_dominate() -> None:
    # F's single lucky conversion on 2 units must not make G (solid data) a donor
    chans = {G: perf(1000 * U, 500 * U, 50), F: perf(1000 * U, 2 * U, 1)}
    assert plan_moves(chans, TH) == {}


def test_donor_never_drops_below_spent_plus_reserved() -> None:
    chans = {G: perf(100 * U, 90 * U, 0, reserved=5 * U), F: perf(100 * U, 50 * U, 50)}
    moves = plan_moves(chans, TH)
    assert moves[G] == -(5 * U // 2)
    assert 100 * U + moves[G] >= 95 * U


def test_nothing_to_move() -> None:
    assert plan_moves({G: perf(100 * U, 10 * U, 1)}, TH) == {}
    assert plan_moves({G: perf(100 * U, 10 * U, 1), F: perf(0, 10 * U, 9)}, TH) == {}
    # the donor has nothing unused
    assert plan_moves({G: perf(100 * U, 100 * U, 0), F: perf(100 * U, 50 * U, 50)}, TH) == {}
    # no conversions anywhere: no channel is better
    assert plan_moves({G: perf(100 * U, 10 * U, 0), F: perf(100 * U, 50 * U, 0)}, TH) == {}


def test_receivers_share_in_proportion_to_efficiency() -> None:
    chans = {
        G: perf(1000 * U, 10_000 * U, 10),  # donor
        F: perf(1000 * U, 10_000 * U, 1000),
        T: perf(1000 * U, 10_000 * U, 900),
    }
    chans[G] = ChannelPerformance(11_000 * U, 10_000 * U, 0, 10, 10_000 * U)
    moves = plan_moves(chans, TH)
    eff = efficiencies(chans)
    assert moves[G] == -500 * U
    assert moves[F] + moves[T] == 500 * U
    assert moves[F] / moves[T] == pytest.approx(eff[F] / eff[T], rel=1e-6)


def test_several_donors() -> None:
    chans = {
        G: perf(1000 * U, 100 * U, 0),
        T: perf(1000 * U, 300 * U, 1),
        F: perf(1000 * U, 100 * U, 50),
    }
    moves = plan_moves(chans, TH)
    assert moves[G] == -450 * U and moves[T] == -350 * U
    assert moves[F] == 800 * U
    assert sum(moves.values()) == 0


# -- through the engine --------------------------------------------------------------------
def test_engine_reallocation_moves_budget_and_replans() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    moves, out = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 < moves[F]
    assert sum(moves.values()) == 0
    assert h.ch(G).budget + h.ch(F).budget == 2000 * U
    for c in (G, F):
        assert sum(h.ch(c).plan.amounts) == h.ch(c).budget  # type: ignore[union-attr]
        assert h.ch(c).budget >= h.ch(c).spent_total + h.ch(c).reserved_total
    events = [o for o in out if isinstance(o, BudgetMove)]
    assert len(events) == 1 and events[0].deltas == moves and events[0].campaign_id == "c"


def test_engine_reallocation_learns_from_the_last_week_too() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    for d in range(1, 6):
        # both channels' hours absorbed 200 units each (far more than the budget: the
        # receiver's rest of the day can take more than it has)
        for hour in range(24):
            when = DAY0 - timedelta(days=d) + timedelta(hours=hour)
            h.spend(200 * U, channel=G, conversions=5 if hour == 0 else 0, when=when)
            h.spend(200 * U, channel=F, conversions=100 if hour == 0 else 0, when=when)
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 < moves[F]


def test_engine_reallocation_keeps_reservations_safe() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=20, minutes=55))
    h.spend(80 * U, channel=G, when=DAY0 + timedelta(hours=19))
    h.spend(50 * U, channel=F, conversions=50, when=DAY0 + timedelta(hours=19))
    assert h.reserve(4 * U, G).allowed
    # F shows unmet demand (a request above its hour's allowance): it can take budget.
    assert h.reserve(30 * U, F).code is Code.HOURLY_CAP
    evening = _planned_after_cutoff(h, G)
    moves, _ = h.engine.reallocate(h.state, h.now)
    # half of 100 - 80 spent - 4 reserved - its plan for 21:00-24:00
    assert moves[G] == -int((16 * U - evening) * 0.5)
    assert h.ch(G).budget >= h.ch(G).spent_total + h.ch(G).reserved_total + evening


# -- overruns: a channel reallocation cut, then unasked spend took past its budget ------
def test_cover_overruns_takes_the_overrun_from_the_money_left_elsewhere() -> None:
    books = {
        G: ChannelBooks(100 * U, 130 * U),
        F: ChannelBooks(300 * U, 100 * U),
        T: ChannelBooks(200 * U, 100 * U),
    }
    moves = cover_overruns(books)
    assert moves[G] == 30 * U
    assert moves[F] == -20 * U and moves[T] == -10 * U  # in proportion to what is left
    assert sum(moves.values()) == 0


def test_cover_overruns_gives_no_more_than_is_left_and_ignores_unbudgeted() -> None:
    books = {
        G: ChannelBooks(100 * U, 130 * U),
        F: ChannelBooks(100 * U, 90 * U),
        T: ChannelBooks(0, 50 * U),
    }
    assert cover_overruns(books) == {G: 10 * U, F: -10 * U}
    assert cover_overruns({G: ChannelBooks(100 * U, 100 * U), F: ChannelBooks(9, 0)}) == {}


def test_engine_reallocation_covers_unasked_spend_on_a_channel_it_had_cut() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0
    cut = h.ch(G).budget
    # a runaway bidder on G spends without asking, past G's (reduced) budget
    h.advance(minutes=5)
    h.spend(cut, channel=G)
    assert h.ch(G).spent_total > h.ch(G).budget
    h.advance(minutes=10)
    moves, out = h.engine.reallocate(h.state, h.now)
    # the overrun is covered from F's money left: the campaign absorbs it, and no
    # channel ends with less budget than it has spent
    assert h.ch(G).budget >= h.ch(G).spent_total
    assert h.ch(G).budget + h.ch(F).budget == 2000 * U
    assert sum(moves.values()) == 0
    assert any(isinstance(o, BudgetMove) and o.reason == "overrun" for o in out)
    for c in (G, F):
        assert sum(h.ch(c).plan.amounts) == h.ch(c).budget  # type: ignore[union-attr]


def test_nothing_to_reallocate_returns_empty_and_emits_nothing() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    moves, out = h.engine.reallocate(h.state, h.now)
    assert moves == {}
    assert not [o for o in out if isinstance(o, BudgetMove)]


@pytest.mark.parametrize("channel", list(ChannelType))
def test_unbudgeted_channels_neither_give_nor_receive(channel: ChannelType) -> None:
    budgets = {G: 1000 * U, F: 1000 * U}
    h = Harness(budgets)
    h.at(DAY0 + timedelta(hours=9))
    if channel not in budgets:
        h.spend(U, channel=channel, conversions=100)
    h.spend(10 * U, channel=F, conversions=10)
    moves, _ = h.engine.reallocate(h.state, h.now)
    if channel not in budgets:
        assert channel not in moves
    assert sum(moves.values()) == 0


# -- capacity: receivers only get what they can absorb ----------------------------------
def test_receivers_get_no_more_than_their_capacity() -> None:
    chans = {
        G: ChannelPerformance(1000 * U, 200 * U, 0, 2, 200 * U, capacity=0),
        F: ChannelPerformance(1000 * U, 200 * U, 0, 40, 200 * U, capacity=50 * U),
    }
    moves = plan_moves(chans, TH)
    assert moves == {G: -50 * U, F: 50 * U}


def test_no_receiver_with_capacity_moves_nothing() -> None:
    chans = {
        G: ChannelPerformance(1000 * U, 200 * U, 0, 2, 200 * U, capacity=0),
        F: ChannelPerformance(1000 * U, 200 * U, 0, 40, 200 * U, capacity=0),
    }
    assert plan_moves(chans, TH) == {}


def test_engine_uses_unmet_demand_when_the_campaign_reserves() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    assert h.reserve(U, G).allowed  # the campaign reserves, F shows no unmet demand
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves == {}
    assert h.reserve(200 * U, F).code is Code.HOURLY_CAP  # unmet demand of 200 in 15 min
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 < moves[F] <= 800 * U  # at most an hour of that demand
    assert sum(moves.values()) == 0


def _planned_after_cutoff(h: Harness, channel: ChannelType) -> int:
    """A channel's plan for the hours after the day's last reallocation (21:00-24:00)."""
    return h.ch(channel).cum_plan[-1] - h.ch(channel).cum_plan[21]


def test_a_donor_keeps_its_plan_for_the_hours_after_the_last_reallocation() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    evening = _planned_after_cutoff(h, G)
    assert evening > 100 * U
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] == -int((900 * U - evening) * 0.5)  # not half of all 900 it has left


def test_no_moves_in_the_last_hours_of_the_day() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=22, minutes=30))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves == {}


def test_a_donor_keeps_the_money_of_expired_unreported_holds() -> None:
    """A late platform has probably spent an expired hold's money: giving it away would
    make the donor overspend when the report arrives."""
    h = Harness({G: 100 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=20, minutes=55))
    h.spend(80 * U, channel=G, when=DAY0 + timedelta(hours=19))
    h.spend(50 * U, channel=F, conversions=50, when=DAY0 + timedelta(hours=19))
    assert h.reserve(4 * U, G).allowed
    h.advance(seconds=h.state.thresholds.reservation_ttl_s + 1)
    h.tick()
    assert h.ch(G).reserved_total == 0 and h.ch(G).unreported_total == 4 * U
    assert h.reserve(30 * U, F).code is Code.HOURLY_CAP
    evening = _planned_after_cutoff(h, G)
    moves, _ = h.engine.reallocate(h.state, h.now)
    # half of 100 - 80 spent - 4 expired but unreported - its plan for 21:00-24:00
    assert moves[G] == -int((16 * U - evening) * 0.5)
    assert h.ch(G).budget >= h.ch(G).spent_total + h.ch(G).unreported_total


# -- where received money goes, and who may receive -------------------------------------
def test_received_money_goes_to_the_next_half_hour_where_the_demand_was_seen() -> None:
    h = Harness({G: 200 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    assert h.reserve(300 * U, F).code is Code.HOURLY_CAP  # demand F's hours refuse
    before = slot_allowance(h.ch(F), 9)
    later = list(h.ch(F).plan.amounts[10:])  # type: ignore[union-attr]
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[F] == -moves[G] > 0
    plan = h.ch(F).plan
    assert plan is not None and sum(plan.amounts) == h.ch(F).budget
    # 09:00-09:30 lies in this hour: the hour gets it all (not 1/15th of it), ...
    assert slot_allowance(h.ch(F), 9) - before >= moves[F]
    # ... and the later hours keep their plan (to the micro of the exact split).
    assert all(abs(a - b) <= 1 for a, b in zip(plan.amounts[10:], later, strict=True))


def test_received_money_beyond_the_hour_maximum_flows_to_the_later_hours() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    h.spend(100 * U, channel=G, clicks=100, conversions=1, when=DAY0 + timedelta(hours=8))
    h.spend(100 * U, channel=F, clicks=100, conversions=30, when=DAY0 + timedelta(hours=8))
    assert h.reserve(200 * U, F).code is Code.HOURLY_CAP
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[F] > 0
    plan = h.ch(F).plan
    assert plan is not None and sum(plan.amounts) == h.ch(F).budget
    hour_max = int(h.ch(F).budget * h.state.thresholds.max_hourly_spend_pct)
    assert plan.amounts[9] == hour_max  # filled to the per-hour maximum
    assert sum(plan.amounts[10:]) > (1000 * U - sum(plan.amounts[:9])) * 14 // 15


def _evening(evening_hourly: int) -> Harness:
    """F converts far better; yesterday its last four hours absorbed ``evening_hourly``
    each. At 20:00 it has 400 units left and shows unmet demand."""
    h = Harness({G: 1000 * U, F: 1000 * U})
    y = DAY0 - timedelta(days=1)
    for hour in range(24):
        h.spend(40 * U, channel=G, clicks=40, when=y + timedelta(hours=hour))
        amount = evening_hourly if hour >= 20 else 40 * U
        h.spend(amount, channel=F, clicks=40, conversions=20, when=y + timedelta(hours=hour))
    h.at(DAY0 + timedelta(hours=20))
    h.spend(600 * U, channel=G, clicks=600, conversions=1, when=DAY0 + timedelta(hours=19))
    h.spend(600 * U, channel=F, clicks=600, conversions=300, when=DAY0 + timedelta(hours=19))
    assert h.reserve(300 * U, F).code is Code.HOURLY_CAP
    return h


def test_no_money_to_a_receiver_whose_evening_cannot_spend_what_it_has() -> None:
    h = _evening(U)  # its evening hours absorb about 1 unit each: 400 left is already too much
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves == {}


def test_a_receiver_whose_evening_absorbs_more_still_receives() -> None:
    h = _evening(400 * U)
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 < moves[F]


def test_a_receiver_whose_evening_absorbs_only_a_little_more_than_it_has_receives_nothing() -> None:
    # Its four evening hours absorbed 150 units each: 540 with the capacity margin, more
    # than the 400 it has left, but evening demand varies: only 60% of it counts (324).
    h = _evening(150 * U)
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves == {}
