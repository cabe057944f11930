"""The channel split a campaign's new day starts from, learned from its channels' history.

Reallocation moves unused budget from weak channels to strong ones in 15-minute steps,
bounded by what each receiver showed it could absorb in the last half hour and by a
share of what its remaining hours absorbed on past days. Starting every day again from
the operator's split leaves much of the difference between channels on the table: the
money walks to the strong channels during the day, after their early hours have gone.

So a day whose campaign had budget moved by reallocation the day before starts from a
split learned from the history, before the first hour is planned (``day.roll_campaign``,
published as a ``BudgetMove`` with reason ``"split"``):

* **Who gives, who takes.** Each channel's efficiency is the measure reallocation uses
  (``core.efficiency``: conversions per unit over the last :data:`SPLIT_HISTORY_DAYS`
  days, shrunk toward the campaign's pooled rate). A donor is a channel at least the
  campaign's ``reallocation_gap`` below the best *and* below it by
  :data:`SPLIT_EVIDENCE_Z` standard errors of the difference (Poisson counts: a channel
  with 4 conversions a day is known to +-50%). The others take, best first; the donors
  give, worst first.
* **What a taker can absorb.** At most :data:`START_CAPACITY_SHARE` of what its hours
  absorbed on past days (``room``, from ``allocation.capacity``, itself 0.9 of the mean
  demand): a plan with more than that strands money at midnight that the donor would
  have spent. Without a capacity estimate a channel takes nothing.
* **The operator's split stays the prior.** No donor starts below
  :data:`MIN_START_SHARE` of its configured budget (it keeps buying, and so keeps
  producing the evidence that could bring it back); with no history every channel
  starts at its configured budget, and each day's split is learned afresh from the
  configured one (never compounded from yesterday's).

Deltas are integer micros summing to exactly zero: the campaign's daily budget is
always the configured total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from pacer_stream.core.efficiency import DEFAULT_PRIOR_UNITS, pooled_rate, smoothed_efficiency

K = TypeVar("K")

#: No donor starts a day below this share of its configured budget.
MIN_START_SHARE = 0.5
#: A taker starts the day with at most this share of what its hours absorbed on past
#: days.
START_CAPACITY_SHARE = 0.9
#: A channel gives only when it is below the best by this many standard errors of the
#: difference of their efficiencies.
SPLIT_EVIDENCE_Z = 1.0
#: Days of history the efficiency is read from (as reallocation's).
SPLIT_HISTORY_DAYS = 7


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """What the split of one channel is learned from (micros, counts)."""

    configured: int
    conversions: int
    spend: int
    #: What the new day can absorb (micros); None when the history cannot say.
    room: int | None


def learned_split(channels: Mapping[K, ChannelRecord], gap: float) -> dict[K, int]:
    """Budget deltas (sum exactly 0, no zero entries) to apply to the configured budgets
    for a new day; empty when nothing should move."""
    budgeted = {k: r for k, r in channels.items() if r.configured > 0}
    if len(budgeted) < 2:
        return {}
    prior = pooled_rate(
        sum(r.conversions for r in budgeted.values()), sum(r.spend for r in budgeted.values())
    )
    if prior <= 0:
        return {}
    eff = {k: smoothed_efficiency(r.conversions, r.spend, prior) for k, r in budgeted.items()}
    pseudo = prior * DEFAULT_PRIOR_UNITS  # the prior's weight, in conversions
    # variance of a Gamma-Poisson rate estimate: rate^2 / (conversions + prior weight)
    var = {k: eff[k] ** 2 / (r.conversions + pseudo) for k, r in budgeted.items()}
    order = sorted(budgeted, key=lambda x: (eff[x], str(x)))  # worst first
    top = order[-1]
    best = eff[top]
    floor = best * (1.0 - gap)
    givers: list[tuple[K, int]] = []
    takers: list[tuple[K, int]] = []
    for k in order:
        r = budgeted[k]
        if eff[k] <= floor and best - eff[k] >= SPLIT_EVIDENCE_Z * math.sqrt(var[top] + var[k]):
            offer = r.configured - math.ceil(r.configured * MIN_START_SHARE)
            if offer > 0:
                givers.append((k, offer))
        elif r.room is not None and r.room > r.configured:
            takers.append((k, r.room - r.configured))
    takers.reverse()  # best first
    pool = min(sum(o for _, o in givers), sum(w for _, w in takers))
    if pool <= 0:
        return {}
    deltas: dict[K, int] = {}
    for sign, side in ((-1, givers), (1, takers)):
        left = pool
        for k, limit in side:
            part = min(left, limit)
            if part:
                deltas[k] = sign * part
            left -= part
    return deltas
