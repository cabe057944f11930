"""The day's plan: how a channel's budget is spread over the slots of its local day.

Planning runs when a day starts, when the budget changes mid-day (re-based so hours
already past keep their amounts) and when reallocation hands a channel more budget
(placed where the demand it was moved for was seen). The engine decides what happens to
a request or a spend event against the plan; this module only builds the plan, from the
strategy registry the engine holds and the channel's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace as dataclass_replace
from typing import TypeVar

from pacer_stream.core.allocation import (
    AllocationContext,
    AllocationStrategy,
    StrategyResult,
    shape_day,
)
from pacer_stream.core.allocation.base import DayPlan, slot_caps, waterfill
from pacer_stream.core.allocation.capacity import absorb_capacity, sure_capacity
from pacer_stream.core.calendar import LocalDay
from pacer_stream.core.money import split_exact
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import PacingStrategy

#: Unmet demand over this trailing window, extrapolated to the rest of the day, is what
#: a channel is believed able to absorb when it receives reallocated budget ...
UNMET_WINDOW_S = 900
#: ... but only over the next half hour: demand seen now says little about tonight, and
#: the reallocation timer runs again (every 15 minutes by default) to move more if the
#: demand persists. Extrapolating further would move the same demand again at each run
#: and strand budget on receivers (measured in the simulator: utilisation fell to 0.98).
UNMET_HORIZON_S = 1800
#: A receiver may hold at most this share of what its remaining hours absorbed on past
#: days (``allocation.capacity``: the mean demand x 0.9). Evening demand varies from day
#: to day and money a receiver cannot spend by midnight is lost, while a donor would
#: have spent it: measured in the simulator (10 seeds, 8 campaigns, 5 days, 3 warm-up),
#: utilisation with reallocation was 0.9968 at 1.0, 0.9985 at 0.7 and 0.9990 at 0.6,
#: against 0.9982 for the static split, with conversions +11% / +11% / +8% over it.
RECEIVER_HEADROOM_SHARE = 0.6
#: A channel gives back the money it has left beyond this share of what its remaining
#: hours absorbed on past days (``day_excess``). Above RECEIVER_HEADROOM_SHARE, so a
#: channel that gives excess is never a receiver in the same state (no ping-pong).
EXCESS_CAPACITY_SHARE = 0.9
#: The day's last slot gets at least this share of the plan's weight (1.5x an even
#: hour's): a campaign stays able to spend until midnight instead of finishing its
#: budget at the night trough. The "alive" figure counts a campaign that has spent 99%
#: of its budget as done, so the last 1% must last the day's last 1% (14.4 minutes);
#: the last hour's allowance reaches its whole only at midnight
#: (``pacing.released_allowance``). Measured in the simulator (6 seeds, 8 campaigns, 5
#: days, 3 warm-up): alive 0.976 with no floor (and the last hour released in full 10
#: minutes early), 0.991 at 1/16, 0.993 at 1/12; utilisation 0.9989 / 0.9980 / 0.9971
#: (static split 0.9988 / 0.9976 / 0.9964); conversions 1,626 / 1,619 / 1,601.
CLOSING_SHARE = 1.0 / 16.0


def replan(
    state: CampaignState,
    ch: ChannelState,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> None:
    """Plan the channel's day from scratch with its strategy (from activation on). A
    strategy with ``sure_from_hour`` plans the hours from then on against their sure
    capacity (``capacity.sure_capacity``); later re-plans of the day (a budget change, a
    reallocation) keep the plan's weights and read the usual capacity."""
    day = ch.day
    if day is None:
        return
    kind = ch.strategy or state.strategy
    strategy = strategies[kind]
    ctx = context(state, ch, day)
    result = strategy.weigh(ctx)
    if ch.active_from is not None and ch.active_from > day.start:
        result = from_activation(result, day, ch.active_from)
    ch.result = result = shared_result(result)
    capacity = slot_capacity(state, ch, day)
    if strategy.sure_from_hour is not None:
        capacity = sure_capacity(
            capacity, ctx, ch.unmet_hours.amounts, ch.budget, strategy.sure_from_hour
        )
    if kind is not PacingStrategy.EVEN_DISTRIBUTION:  # even is even, to the last hour
        result = closing_floor(result)
    set_plan(ch, shape_day(ch.budget, result, state.thresholds, capacity))


def closing_floor(result: StrategyResult) -> StrategyResult:
    """Raise the day's last slot to at least :data:`CLOSING_SHARE` of the weight (never
    lower it): the plan keeps money for the day's last hour."""
    weights = list(result.weights)
    if len(weights) < 2:
        return result
    rest = sum(weights[:-1])
    floor = rest * CLOSING_SHARE / (1.0 - CLOSING_SHARE)
    if weights[-1] >= floor:
        return result
    weights[-1] = floor
    return dataclass_replace(result, weights=tuple(weights))


def rebase(
    state: CampaignState,
    ch: ChannelState,
    ts: float,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> None:
    """Re-plan after a mid-day budget change: hours already past keep their planned
    amounts and the rest of the new budget is spread over the remaining hours, so
    the planned curve up to now does not jump (a channel that gave budget away is
    not suddenly "ahead of plan", one that received it not suddenly behind)."""
    old, day = ch.plan, ch.day
    if old is None or day is None or not day.contains(ts):
        replan(state, ch, strategies)
        return
    slot = day.slot_of(ts)
    budget = ch.budget
    past = list(old.amounts[:slot])
    if sum(past) > budget:
        past = split_exact(budget, [float(a) for a in past])
    caps = slot_caps(budget, old.weights, state.thresholds, slot_capacity(state, ch, day))
    future = waterfill(budget - sum(past), old.weights[slot:], caps[slot:])
    set_plan(ch, DayPlan(tuple(past + future), tuple(caps), old.weights, state.thresholds))


def receive(
    state: CampaignState,
    ch: ChannelState,
    ts: float,
    received: int,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> None:
    """Re-plan a receiver after reallocation gave it ``received`` micros (its budget
    already includes them): the rest of the day keeps its planned amounts, and the
    received money goes to the next ``UNMET_HORIZON_S`` seconds, where the demand it
    was moved for was seen (in proportion to each slot's share of that span, up to
    the per-hour maximum); only what those slots cannot take is spread by weight over
    the later hours. Spread by weight over the whole rest of the day (as a budget
    change is), it would wait for evening hours that may not buy it: stranded.

    The plan's future weights become its amounts, so the hourly rollover keeps the
    money where it was placed (a slot that leaves part of it unspent passes that part
    on to the later hours in proportion to their plan)."""
    old, day = ch.plan, ch.day
    if old is None or day is None or not day.contains(ts):
        replan(state, ch, strategies)
        return
    t = state.thresholds
    slot = day.slot_of(ts)
    past = list(old.amounts[:slot])
    before = ch.budget - received
    if sum(past) > before:
        past = split_exact(before, [float(a) for a in past])
    caps = slot_caps(before, old.weights, t, slot_capacity(state, ch, day))
    future = waterfill(before - sum(past), old.weights[slot:], caps[slot:])
    hour_cap = int(ch.budget * t.max_hourly_spend_pct)
    end = ts + UNMET_HORIZON_S
    spans = [
        max(0.0, min(day.bounds[i + 1], end) - max(day.bounds[i], ts))
        for i in range(slot, day.n_slots)
    ]
    left = received
    if sum(spans) > 0:
        for k, part in enumerate(split_exact(received, spans)):
            take = min(part, max(0, hour_cap - future[k]))
            future[k] += take
            left -= take
    if left:
        room = [max(0, hour_cap - f) for f in future]
        for k, part in enumerate(waterfill(left, old.weights[slot:], room)):
            future[k] += part
    weights = tuple(old.weights[:slot]) + tuple(float(a) for a in future)
    new_caps = tuple(caps[:slot]) + tuple(
        max(c, a) for c, a in zip(caps[slot:], future, strict=True)
    )
    set_plan(ch, DayPlan(tuple(past + future), new_caps, weights, t))


def day_headroom(state: CampaignState, ch: ChannelState, ts: float) -> int | None:
    """What the rest of the day can absorb beyond the money the channel already has
    left (budget - spent - held), from what its hours absorbed on past days
    (``allocation.capacity``, times ``RECEIVER_HEADROOM_SHARE``); None without
    enough history. A receiver with no
    headroom would only strand what it gets: a burst of refusals now (the unmet
    demand) says little about tonight, the hours' history does."""
    day = ch.day
    assert day is not None
    hours = slot_capacity(state, ch, day)
    if hours is None:
        return None
    slot = day.slot_of(ts)
    lo, hi = day.bounds[slot], day.bounds[slot + 1]
    absorb = int(hours[slot] * (hi - ts) / (hi - lo)) + sum(hours[slot + 1 :])
    absorb = int(absorb * RECEIVER_HEADROOM_SHARE)
    left = ch.budget - ch.spent_total - ch.reserved_total - ch.unreported_total
    return max(0, absorb - max(0, left))


def day_excess(state: CampaignState, ch: ChannelState, ts: float) -> int:
    """Money the channel has left (budget - spent - held) beyond what the rest of its
    day absorbed on past days (``allocation.capacity``, times
    :data:`EXCESS_CAPACITY_SHARE`); 0 without enough history. A channel that started
    the day with a learned share of the campaign's budget (``core.split``) can meet a
    day thinner than its history: what it cannot spend by midnight is lost, while a
    channel with demand to spare would have spent it."""
    day = ch.day
    assert day is not None
    hours = slot_capacity(state, ch, day)
    if hours is None:
        return 0
    slot = day.slot_of(ts)
    lo, hi = day.bounds[slot], day.bounds[slot + 1]
    absorb = int(hours[slot] * (hi - ts) / (hi - lo)) + sum(hours[slot + 1 :])
    absorb = int(absorb * EXCESS_CAPACITY_SHARE)
    left = ch.budget - ch.spent_total - ch.reserved_total - ch.unreported_total
    return max(0, left - absorb)


def set_plan(ch: ChannelState, plan: DayPlan) -> None:
    ch.plan = shared_plan(plan)  # the channel's cum_plan is the plan's
    ch.allowance_key = (-1, -1, -1)


#: Slots of each sharing table (plans, strategy results, weight tuples).
SHARED_PLANS = 4096

_PLANS: list[DayPlan | None] = [None] * SHARED_PLANS
_RESULTS: list[StrategyResult | None] = [None] * SHARED_PLANS
_WEIGHTS: list[tuple[float, ...] | None] = [None] * SHARED_PLANS

T = TypeVar("T")


def _interned(table: list[T | None], value: T) -> T:
    """The value equal to ``value`` that ``table`` holds, else ``value``, which the
    table then holds in its place.

    A table of fixed size indexed by hash (each value has one slot; a different value
    with the same slot replaces it) rather than a cache of every value seen: a worker
    whose campaigns all have budgets of their own holds a plan per channel that no
    other channel will share, and an entry of an ``lru_cache`` cost ~190 bytes per
    plan, a dict's ~75. This one costs its 32 KB once, whatever the number of
    channels. Equal values always map to the same slot, so a plan most channels have
    stays shared; one replaced by a colliding plan is shared again from its next
    occurrence on. Sharing only saves memory: a value is never changed in place."""
    i = hash(value) % SHARED_PLANS
    found = table[i]
    if found is not None and found == value:
        return found
    table[i] = value
    return value


def shared_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    """The shared weight tuple equal to ``weights``: a strategy that ignores history
    gives every channel the same weights, and a 24-slot tuple costs 232 bytes."""
    return _interned(_WEIGHTS, weights)


def shared_plan(plan: DayPlan) -> DayPlan:
    """The shared plan equal to ``plan`` (its ``cum`` is the channel's ``cum_plan``).

    Channels with the same budget, strategy and history shape (most new channels, and
    every channel of a strategy that ignores history) get equal plans: they share one
    ``DayPlan`` and its arrays instead of holding about 0.5 KB each; a plan of its own
    shares at least its weights. Plans are only ever replaced, never changed in place,
    so sharing cannot leak a change from one channel to another."""
    weights = shared_weights(plan.weights)
    if weights is not plan.weights:
        plan = plan.with_weights(weights)
    return _interned(_PLANS, plan)


def shared_result(result: StrategyResult) -> StrategyResult:
    """The shared strategy result equal to ``result`` (frozen: safe to share)."""
    weights = shared_weights(result.weights)
    if weights is not result.weights:
        result = dataclass_replace(result, weights=weights)
    return _interned(_RESULTS, result)


def slot_capacity(state: CampaignState, ch: ChannelState, day: LocalDay) -> tuple[int, ...] | None:
    """What each slot of ``day`` can absorb (cached per day: see ``capacity_cache``)."""
    start = int(day.start // 3600)
    if ch.capacity_cache[0] != start:
        ctx = context(state, ch, day)
        ch.capacity_cache = (start, absorb_capacity(ctx, ch.unmet_hours.amounts))
    return ch.capacity_cache[1]


def context(state: CampaignState, ch: ChannelState, day: LocalDay) -> AllocationContext:
    return AllocationContext(
        day, ch.history, int(day.start // 3600), (state.campaign_id, ch.channel.value)
    )


def from_activation(result: StrategyResult, day: LocalDay, active_from: float) -> StrategyResult:
    """Zero the weight of slots that ended before activation and scale the slot that
    contains it by its remaining fraction."""
    weights = list(result.weights)
    for i in range(day.n_slots):
        lo, hi = day.bounds[i], day.bounds[i + 1]
        if hi <= active_from:
            weights[i] = 0.0
        elif lo < active_from:
            weights[i] *= (hi - active_from) / (hi - lo)
    if sum(weights) <= 0:
        return result
    return dataclass_replace(result, weights=tuple(weights))
