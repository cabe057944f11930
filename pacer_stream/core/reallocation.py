"""Moving unused budget from weak channels to strong ones, with exact conservation.

A channel is a *donor* when its smoothed efficiency (``core.efficiency``; conversions per
unit of spend over today and the last 7 days, shrunk toward the campaign's pooled rate)
is at least ``reallocation_gap`` (20%) below the best channel's. A donor gives
``reallocation_share`` of its unused budget (budget - spent - reserved - its plan for the
hours after the day's last reallocation), so it never drops below what it has spent plus
reserved, and keeps money for the campaign's last hours. Receivers are the other
budgeted channels that show unmet demand (requests refused by the hourly or velocity
line; extrapolated over the next half hour, and bounded by what the rest of their day
absorbed on past days, that is their *capacity*), in proportion to their efficiency and
never beyond their capacity: budget moved to a channel that cannot spend it would be
lost. Donors give only what receivers can take, pro rata. Deltas are integer micros
summing to exactly zero.

A channel with more money left than the rest of its day absorbed on past days (its
*excess*, ``planning.day_excess``: a channel that started the day with a learned share of
the campaign's budget, ``core.split``, can meet a day thinner than its history) gives it
first (:func:`rescue_moves`) to the channels that can still spend, best efficiency first:
money left at midnight converts nothing, so any channel that can spend it is better. A
run that moves excess moves nothing else (reason ``"excess"``).

Before any of that, :func:`cover_overruns`: a channel whose spend (with what it holds
and what a late platform has yet to report) is above its budget, which unasked spend
can do after reallocation cut the budget, takes the overrun back from the channels
with money left, in proportion to it. That money is spent already; the campaign's other
channels absorb it, as the channel's own slack would have under the static split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pacer_stream.core.allocation.base import waterfill
from pacer_stream.core.efficiency import pooled_rate, smoothed_efficiency
from pacer_stream.core.money import split_exact
from pacer_stream.core.types import ChannelType, Thresholds


@dataclass(frozen=True, slots=True)
class ChannelPerformance:
    budget: int
    spent: int
    reserved: int
    conversions: int
    spend_for_efficiency: int
    #: What the channel could still absorb (unmet demand, extrapolated); None when the
    #: campaign gives no demand signal (no reservations: in-process callers that only
    #: record spend) — then capacity is unknown and not limited, as in the original.
    capacity: int | None = None
    #: Money a donor keeps whatever its efficiency: its plan for the hours after the
    #: last reallocation of the day (nothing can come back then; giving it away would
    #: leave the campaign without money for its last hours).
    keep: int = 0
    #: Money left beyond what the rest of the channel's day is expected to absorb
    #: (``planning.day_excess``): lost at midnight unless another channel takes it.
    excess: int = 0

    @property
    def unused(self) -> int:
        return max(0, self.budget - self.spent - self.reserved - self.keep)


def efficiencies(channels: Mapping[ChannelType, ChannelPerformance]) -> dict[ChannelType, float]:
    conv = sum(p.conversions for p in channels.values())
    spend = sum(p.spend_for_efficiency for p in channels.values())
    prior = pooled_rate(conv, spend)
    return {
        c: smoothed_efficiency(p.conversions, p.spend_for_efficiency, prior)
        for c, p in channels.items()
    }


def plan_moves(
    channels: Mapping[ChannelType, ChannelPerformance], t: Thresholds
) -> dict[ChannelType, int]:
    """Budget deltas per channel (negative = gives). Empty when nothing should move."""
    budgeted = {c: p for c, p in channels.items() if p.budget > 0}
    if len(budgeted) < 2:
        return {}
    eff = efficiencies(budgeted)
    best = max(eff.values())
    if best <= 0:
        return {}
    floor = best * (1.0 - t.reallocation_gap)
    donors = {c for c, e in eff.items() if e <= floor}
    receivers = [
        c
        for c in sorted(budgeted, key=lambda ch: ch.value)
        if c not in donors and _capacity(budgeted[c], 1) > 0
    ]
    if not donors or not receivers:
        return {}
    donor_list = sorted(donors, key=lambda ch: ch.value)
    offers = [int(budgeted[c].unused * t.reallocation_share) for c in donor_list]
    caps = [_capacity(budgeted[c], sum(offers)) for c in receivers]
    pool = min(sum(offers), sum(caps))
    if pool <= 0:
        return {}
    deltas: dict[ChannelType, int] = {}
    for c, give in zip(donor_list, split_exact(pool, [float(o) for o in offers]), strict=True):
        if give:
            deltas[c] = -give
    parts = waterfill(pool, [eff[c] for c in receivers], caps)
    for c, part in zip(receivers, parts, strict=True):
        if part:
            deltas[c] = deltas.get(c, 0) + part
    return deltas


def rescue_moves(channels: Mapping[ChannelType, ChannelPerformance]) -> dict[ChannelType, int]:
    """Budget deltas (sum 0) moving each channel's ``excess`` (money its remaining hours
    are not expected to absorb) to channels with demand to spare, best efficiency
    first, up to their capacity. Efficiency does not decide who gives here: money a
    channel cannot spend converts nothing, so any channel that can spend it is better.
    Empty when no channel has an excess or none can take it."""
    budgeted = {c: p for c, p in channels.items() if p.budget > 0}
    givers = sorted((c for c, p in budgeted.items() if p.excess > 0), key=lambda ch: ch.value)
    if not givers or len(budgeted) < 2:
        return {}
    eff = efficiencies(budgeted)
    takers = sorted(
        (c for c, p in budgeted.items() if p.excess == 0 and p.capacity is not None),
        key=lambda ch: (-eff[ch], ch.value),
    )
    room = [_capacity(budgeted[c], 0) for c in takers]
    pool = min(sum(budgeted[c].excess for c in givers), sum(room))
    if pool <= 0:
        return {}
    deltas: dict[ChannelType, int] = {}
    parts = split_exact(pool, [float(budgeted[c].excess) for c in givers])
    for c, give in zip(givers, parts, strict=True):
        if give:
            deltas[c] = -give
    left = pool
    for c, r in zip(takers, room, strict=True):
        take = min(left, r)
        if take:
            deltas[c] = take
        left -= take
    return deltas


def _capacity(p: ChannelPerformance, unlimited: int) -> int:
    return unlimited if p.capacity is None else p.capacity


@dataclass(frozen=True, slots=True)
class ChannelBooks:
    """What a channel has and what it has committed (micros)."""

    budget: int
    #: Spent + reserved + expired-but-unreported holds.
    committed: int


def cover_overruns(channels: Mapping[ChannelType, ChannelBooks]) -> dict[ChannelType, int]:
    """Budget deltas (sum 0) that lift every budgeted channel to what it has committed,
    taken from the others' money left (budget - committed) in proportion to it, as far
    as it goes; overruns share a short pool in proportion to their size."""
    budgeted = {c: b for c, b in channels.items() if b.budget > 0}
    order = sorted(budgeted, key=lambda ch: ch.value)
    over = {c: budgeted[c].committed - budgeted[c].budget for c in order}
    short = [c for c in order if over[c] > 0]
    rich = [c for c in order if over[c] < 0]
    if not short or not rich:
        return {}
    need = sum(over[c] for c in short)
    left = [-over[c] for c in rich]
    pool = min(need, sum(left))
    deltas: dict[ChannelType, int] = {}
    for c, give in zip(rich, split_exact(pool, [float(x) for x in left]), strict=True):
        if give:
            deltas[c] = -give
    for c, take in zip(short, split_exact(pool, [float(over[c]) for c in short]), strict=True):
        if take:
            deltas[c] = take
    return deltas
