"""What each hour of the planned day can absorb, read from the channel's own history.

A strategy that moves budget toward hours it predicts to be good must not move more
than those hours can spend: money planned into an evening that offers too little
traffic rolls forward to the last hours of the day and is lost at midnight (measured:
PREDICTIVE_ML spent 88% of its budget). The demand an hour offered on a past day is what
was bought in it (spend) plus what a budget rule refused in it (unmet demand): the hour
could have absorbed both. Per local hour of day the capacity is the mean demand over the
observed days, with the level of the planned weekday (same-weekday days, when known),
times :data:`CAPACITY_MARGIN` (traffic varies from day to day).

The shared shaping (:func:`~pacer_stream.core.allocation.base.slot_caps`) uses the
capacity as a further per-slot ceiling, so every strategy benefits and what a slot
cannot take flows to the others by weight.

A plan that concentrates its money on a few learned good hours needs more than the
mean: money kept for a late hour that turns out thinner than its history is lost at
midnight. :func:`sure_capacity` caps the hours from a given local hour at the *least*
demand any past day showed in them (:func:`least_demand`); the planner applies it for
strategies that set ``sure_from_hour`` (ADAPTIVE_HYBRID).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.calendar import local_hour_at
from pacer_stream.core.history import SPEND

#: Days of history read (two weeks: recent enough to follow drift, long enough for a level).
CAPACITY_DAYS = 14
#: Fewer observed days than this: capacity unknown (no ceiling). One day already says
#: which hours are dead; the margin covers its noise.
MIN_CAPACITY_DAYS = 1
#: Share of the mean observed demand planned at most (day-to-day traffic noise).
CAPACITY_MARGIN = 0.9


def past_demand(ctx: AllocationContext, unmet: Mapping[int, int]) -> dict[int, int]:
    """Epoch hour -> demand seen in it (spend plus demand refused, ``unmet``) over the
    :data:`CAPACITY_DAYS` days before ``ctx``'s day; hours without demand are absent."""
    lo = ctx.day_start_hour - CAPACITY_DAYS * 24
    hi = ctx.day_start_hour
    demand: dict[int, int] = {}
    for h, bucket in ctx.history.before(hi):
        if h >= lo and bucket[SPEND] > 0:
            demand[h] = bucket[SPEND]
    for h, amount in unmet.items():
        if lo <= h < hi and amount > 0:
            demand[h] = demand.get(h, 0) + amount
    return demand


@lru_cache(maxsize=1 << 16)
def local_day_hour(tz: str, epoch_hour: int) -> tuple[int, int, int]:
    """(local day, weekday, local hour of day) of an epoch hour in zone ``tz``; the local
    day is a number the hours of one local day share (DST days included).

    Memoised: at a local midnight every channel of a zone reads the same two weeks of
    hours (capacity and sure capacity), and a zone conversion costs ~2 us an hour."""
    weekday, hod = local_hour_at(tz, epoch_hour * 3600.0)
    return (epoch_hour - hod + 12) // 24, weekday, hod


def absorb_capacity(ctx: AllocationContext, unmet: Mapping[int, int]) -> tuple[int, ...] | None:
    """Per slot of ``ctx.day``: micros the slot is expected to absorb, or None when the
    history is too short to say (then no slot is limited)."""
    demand = past_demand(ctx, unmet)
    if not demand:
        return None
    tz = ctx.day.tz
    by_hour = [0.0] * 24
    days: set[int] = set()
    same_total = 0.0
    same_days: set[int] = set()
    for h, amount in demand.items():
        day_key, weekday, hod = local_day_hour(tz, h)
        by_hour[hod] += amount
        days.add(day_key)
        if weekday == ctx.day.weekday:
            same_total += amount
            same_days.add(day_key)
    if len(days) < MIN_CAPACITY_DAYS:
        return None
    per_day = [v / len(days) for v in by_hour]
    level = 1.0
    day_total = sum(per_day)
    if same_days and day_total > 0:
        level = (same_total / len(same_days)) / day_total
    return tuple(int(per_day[h] * level * CAPACITY_MARGIN) for h in ctx.day.hours_of_day)


def least_demand(ctx: AllocationContext, unmet: Mapping[int, int]) -> list[int] | None:
    """Per slot of ``ctx.day``: the least demand any of the :data:`CAPACITY_DAYS` past
    days with demand showed in the slot's local hour (a day without demand in the hour
    counts as 0), times :data:`CAPACITY_MARGIN`; None without history."""
    demand = past_demand(ctx, unmet)
    if not demand:
        return None
    by_hour: dict[int, dict[int, int]] = {}
    days: set[int] = set()
    for h, amount in demand.items():
        day_key, _, hod = local_day_hour(ctx.day.tz, h)
        days.add(day_key)
        by_hour.setdefault(hod, {})[day_key] = amount
    return [
        int(min(by_hour.get(hod, {}).get(d, 0) for d in days) * CAPACITY_MARGIN)
        for hod in ctx.day.hours_of_day
    ]


def sure_capacity(
    capacity: tuple[int, ...] | None,
    ctx: AllocationContext,
    unmet: Mapping[int, int],
    budget: int,
    from_hour: int,
) -> tuple[int, ...] | None:
    """``capacity`` (:func:`absorb_capacity`) with the slots from local hour
    ``from_hour`` on capped at :func:`least_demand`: what a plan may surely count on
    there. Unchanged without history, or when the slots so capped cannot hold
    ``budget`` (then the mean is the better guess than a plan that cannot place it).

    Why only the late hours: money a plan keeps for an hour that turns out thinner than
    its history rolls forward, and from the afternoon on there are too few hours left to
    take it; a morning shortfall still has the day ahead."""
    sure = least_demand(ctx, unmet)
    if sure is None:
        return capacity
    base = capacity if capacity is not None else (budget,) * len(sure)
    capped = tuple(
        min(b, s) if hod >= from_hour else b
        for b, s, hod in zip(base, sure, ctx.day.hours_of_day, strict=True)
    )
    return capped if sum(capped) >= budget else capacity
