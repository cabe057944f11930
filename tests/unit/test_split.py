"""The channel split a day starts from (``core.split``, ``day.roll_campaign``): learned from
the channels' conversions per unit, bounded by what the taker's hours absorbed, never
below half of a donor's configured budget, deltas summing to zero, published."""

from __future__ import annotations

from datetime import timedelta

from pacer_stream.core.reallocation import ChannelPerformance, rescue_moves
from pacer_stream.core.split import MIN_START_SHARE, ChannelRecord, learned_split
from pacer_stream.core.types import BudgetMove, Code

from .conftest import DAY0, F, G, Harness, T, U

GAP = 0.2


def test_the_weaker_channel_gives_to_the_better_up_to_what_it_can_absorb() -> None:
    deltas = learned_split(
        {
            G: ChannelRecord(1000 * U, 100, 3000 * U, room=5000 * U),  # 0.033 / unit
            F: ChannelRecord(1000 * U, 300, 3000 * U, room=1300 * U),  # 0.1 / unit
        },
        GAP,
    )
    assert deltas == {G: -300 * U, F: 300 * U}


def test_a_donor_keeps_half_its_configured_budget() -> None:
    deltas = learned_split(
        {
            G: ChannelRecord(1000 * U, 100, 3000 * U, room=None),
            F: ChannelRecord(1000 * U, 300, 3000 * U, room=9000 * U),
        },
        GAP,
    )
    assert deltas[G] == -int(1000 * U * (1 - MIN_START_SHARE))
    assert sum(deltas.values()) == 0


def test_takers_best_first_and_donors_worst_first() -> None:
    deltas = learned_split(
        {
            G: ChannelRecord(1000 * U, 100, 3000 * U, room=None),  # worst: gives
            T: ChannelRecord(1000 * U, 200, 3000 * U, room=5000 * U),  # 0.067: gives
            F: ChannelRecord(1000 * U, 300, 3000 * U, room=1700 * U),  # best: takes
        },
        GAP,
    )
    assert deltas == {G: -500 * U, T: -200 * U, F: 700 * U}


def test_nothing_moves_without_evidence_or_history() -> None:
    # no history at all
    assert (
        learned_split({G: ChannelRecord(U, 0, 0, None), F: ChannelRecord(U, 0, 0, None)}, GAP) == {}
    )
    # 1 conversion against 3: far apart but within the noise of such counts
    thin = {
        G: ChannelRecord(1000 * U, 1, 30 * U, room=5000 * U),
        F: ChannelRecord(1000 * U, 3, 30 * U, room=5000 * U),
    }
    assert learned_split(thin, GAP) == {}
    # a clear gap, but the better channel's hours cannot absorb more than it has
    full = {
        G: ChannelRecord(1000 * U, 100, 3000 * U, room=5000 * U),
        F: ChannelRecord(1000 * U, 300, 3000 * U, room=900 * U),
    }
    assert learned_split(full, GAP) == {}


def _week_of_history(h: Harness) -> None:
    """Five past days: G and F each bought 200 units an hour; F converted 3x better."""
    for d in range(1, 6):
        for hour in range(24):
            when = DAY0 - timedelta(days=d) + timedelta(hours=hour)
            h.spend(200 * U, channel=G, conversions=4, when=when)
            h.spend(200 * U, channel=F, conversions=12, when=when)


def test_a_day_after_reallocation_starts_from_the_learned_split() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    _week_of_history(h)
    moves, _ = h.engine.reallocate(h.state, h.now)  # yesterday's reallocation moved money
    assert moves[G] < 0 < moves[F]
    h.at(DAY0 + timedelta(days=1, minutes=1))
    out = h.tick()
    # G keeps half of its configured budget, F takes the rest (its hours absorbed far more)
    assert h.ch(G).budget == 500 * U and h.ch(F).budget == 1500 * U
    for c in (G, F):
        assert sum(h.ch(c).plan.amounts) == h.ch(c).budget  # type: ignore[union-attr]
        assert h.ch(c).base_budget == 1000 * U  # the operator's split is unchanged
    moved = [o for o in out if isinstance(o, BudgetMove)]
    assert len(moved) == 1 and moved[0].reason == "split"
    assert moved[0].deltas == {G: -500 * U, F: 500 * U}


def test_a_campaign_reallocation_never_moved_keeps_the_operators_split() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    _week_of_history(h)
    h.at(DAY0 + timedelta(days=1, minutes=1))
    out = h.tick()
    assert h.ch(G).budget == 1000 * U and h.ch(F).budget == 1000 * U
    assert not [o for o in out if isinstance(o, BudgetMove)]


def test_every_channel_rolls_with_the_first_one_touched() -> None:
    h = Harness({G: 1000 * U, F: 1000 * U, T: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    _week_of_history(h)
    h.engine.reallocate(h.state, h.now)
    h.at(DAY0 + timedelta(days=1, minutes=1))
    h.reserve(U, G)  # touches G only
    days = {h.ch(c).day.date for c in (G, F, T)}  # type: ignore[union-attr]
    assert len(days) == 1
    assert sum(h.ch(c).budget for c in (G, F, T)) == 3000 * U


# -- excess: money a channel's remaining hours are not expected to absorb ---------------
def _perf(
    budget: int, conversions: int, capacity: int | None, excess: int = 0
) -> ChannelPerformance:
    return ChannelPerformance(budget, 0, 0, conversions, 1000 * U, capacity, 0, excess)


def test_excess_goes_to_the_channels_that_can_spend_it_best_first() -> None:
    moves = rescue_moves(
        {
            G: _perf(2000 * U, 500, None, excess=100 * U),  # the best rate: gives anyway
            F: _perf(1000 * U, 50, 60 * U),
            T: _perf(1000 * U, 20, 100 * U),
        }
    )
    assert moves == {G: -100 * U, F: 60 * U, T: 40 * U}


def test_excess_with_nobody_able_to_take_it_stays() -> None:
    assert rescue_moves({G: _perf(2000 * U, 5, None, excess=100 * U), F: _perf(U, 5, 0)}) == {}
    assert rescue_moves({G: _perf(2000 * U, 5, None), F: _perf(U, 5, 50 * U)}) == {}


def test_engine_gives_what_a_channels_remaining_hours_cannot_absorb() -> None:
    h = Harness({G: 2000 * U, F: 1000 * U})
    h.at(DAY0 + timedelta(hours=9))
    for d in range(1, 6):
        for hour in range(24):
            when = DAY0 - timedelta(days=d) + timedelta(hours=hour)
            h.spend(50 * U, channel=G, conversions=10, when=when)  # G converts better ...
            h.spend(200 * U, channel=F, conversions=1, when=when)
    # ... but its 15 hours left absorbed 15 x 50 x 0.9 = 675 units: 0.8 of that is 540,
    # and it has 2,000 left. F shows demand its hour refuses (300 units in 15 minutes).
    assert h.reserve(300 * U, F).code is Code.HOURLY_CAP
    moves, out = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 < moves[F] and sum(moves.values()) == 0
    # F takes what its rest of the day can hold: 0.6 x 15 x 180 - the 1,000 it has
    assert moves[F] == 620 * U
    assert [o.reason for o in out if isinstance(o, BudgetMove)] == ["excess"]
    for c in (G, F):
        assert sum(h.ch(c).plan.amounts) == h.ch(c).budget  # type: ignore[union-attr]


def test_excess_still_moves_after_the_last_efficiency_move_but_not_in_the_last_half_hour() -> None:
    h = Harness({G: 2000 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=22))
    for d in range(1, 6):
        for hour in range(24):
            when = DAY0 - timedelta(days=d) + timedelta(hours=hour)
            h.spend(50 * U, channel=G, conversions=10, when=when)
            h.spend(200 * U, channel=F, conversions=1, when=when)
    # 22:00: G's two hours left absorbed 2 x 45 units; it has 2,000. F refuses demand.
    assert h.reserve(300 * U, F).code is Code.DAILY_CAP
    moves, out = h.engine.reallocate(h.state, h.now)
    # F takes what its evening can hold: 0.6 x 2 x 180 - the 100 it has
    assert moves == {G: -116 * U, F: 116 * U}
    assert [o.reason for o in out if isinstance(o, BudgetMove)] == ["excess"]
    # 23:40: too late for any move
    h.at(DAY0 + timedelta(hours=23, minutes=40))
    assert h.reserve(300 * U, F).code is not Code.OK
    moves, out = h.engine.reallocate(h.state, h.now)
    assert moves == {} and not [o for o in out if isinstance(o, BudgetMove)]
