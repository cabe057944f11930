"""Lazy time: what the passage of time does to a channel, applied when it is touched.

Day roll-over, reservation expiry and the end of a breaker cooldown happen whenever the
engine touches a channel (any request, spend, command or tick), so correctness never
depends on a timer firing. Kept apart from the engine so the decision path reads as
"touch, then decide" without the roll-over details in between.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

from pacer_stream.core import split
from pacer_stream.core.alerting import transition_outputs
from pacer_stream.core.allocation import AllocationStrategy
from pacer_stream.core.calendar import from_ts, local_day_at
from pacer_stream.core.history import CLICKS, CONVERSIONS, SPEND
from pacer_stream.core.holds import expire_holds
from pacer_stream.core.planning import replan, slot_capacity
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import (
    BudgetMove,
    ChannelType,
    CircuitBreakerState,
    Output,
    PacingStrategy,
)


def touch(
    state: CampaignState,
    ch: ChannelState,
    ts: float,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> list[Output]:
    """Lazy time: roll the day, expire reservations, end a cooldown."""
    out: list[Output] = []
    day = ch.day
    if day is None or ts >= day.end:
        out += roll_campaign(state, ch, ts, strategies)
    br = ch.breaker
    if ch.held()[0]:  # runs on every request and spend: skip the call
        expire_holds(state, ch, ts)
    if br.state is CircuitBreakerState.OPEN:
        tr = br.poll(ts, state.thresholds)
        if tr is not None:
            out += transition_outputs(state, ch, tr)
    return out


def awaits_time(state: CampaignState) -> bool:
    """Whether the passage of time alone will change this campaign in a way others must
    see promptly: a hold to expire or leave its grace, a breaker away from CLOSED (a
    cooldown to end, a trial under way), or outputs waiting in its outbox.

    What time does to any other campaign can wait for its next record or a periodic
    tick: its day rolls lazily on the next touch, and its pace and performance alerts
    only follow its plan. The worker therefore ticks the campaigns that await time
    every maintenance interval and every other one less often."""
    if state.outbox:
        return True
    for ch in state.channels.values():
        if ch.held()[0] or ch.breaker.state is not CircuitBreakerState.CLOSED:
            return True
    return False


def roll_campaign(
    state: CampaignState,
    ch: ChannelState,
    ts: float,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> list[Output]:
    """Roll ``ch`` to the local day containing ``ts``. On a roll from an earlier day,
    every channel of the campaign still on an earlier day rolls with it and, if
    reallocation had moved the campaign's budgets (the day ended away from the
    configured split), the new day starts from the split learned from the history
    (``core.split``), published as a ``BudgetMove`` (reason ``"split"``).

    The channels roll together because the split is one decision over all of them: a
    late report between two separate rolls would change the history the second one
    reads, and the deltas would no longer sum to zero. They would roll on their next
    touch anyway (the worker's tick touches every channel each minute). A campaign
    whose budgets reallocation never moved (no reallocation timer, or nothing worth
    moving) keeps the operator's split: the learned split only starts reallocation's
    work at midnight, it is not a second allocator."""
    previous = ch.day
    day = local_day_at(state.timezone, ts)
    if previous is None or day.date <= previous.date or previous.tz != day.tz:
        roll_day(state, ch, ts, strategies)
        return []
    budgeted = [c for c in state.channels.values() if c.base_budget > 0]
    moved = any(c.budget != c.base_budget for c in budgeted)
    peers = [c for c in state.channels.values() if c.day is not None and c.day.end <= day.start]
    for c in peers:
        roll_day(state, c, ts, strategies)
    if not moved or any(c not in peers for c in budgeted):
        return []
    start = int(day.start // 3600)
    records: dict[ChannelType, split.ChannelRecord] = {}
    for c in budgeted:
        assert c.day is not None
        past = c.history.totals(start - split.SPLIT_HISTORY_DAYS * 24, start)
        hours = slot_capacity(state, c, c.day)
        records[c.channel] = split.ChannelRecord(
            c.base_budget,
            past[CONVERSIONS],
            past[SPEND],
            None if hours is None else int(sum(hours) * split.START_CAPACITY_SHARE),
        )
    deltas = split.learned_split(records, state.thresholds.reallocation_gap)
    if not deltas:
        return []
    for channel, delta in deltas.items():
        c = state.channels[channel]
        c.budget += delta
        replan(state, c, strategies)
    return [BudgetMove(state.campaign_id, dict(deltas), from_ts(ts), "split")]


def roll_day(
    state: CampaignState,
    ch: ChannelState,
    ts: float,
    strategies: Mapping[PacingStrategy, AllocationStrategy],
) -> None:
    """Start the local day containing ``ts`` (no-op if the channel is already on it or
    a later one): reset today's counters and alerts, then plan the day."""
    day = local_day_at(state.timezone, ts)
    previous = ch.day
    if previous is not None and day.date <= previous.date and previous.tz == day.tz:
        return
    if ch.active_from is not None and not day.contains(ch.active_from):
        ch.active_from = None
    ch.day = day
    ch.budget = ch.base_budget
    ch.spent = array("i", [0]) * day.n_slots  # widened by add_spent if needed
    ch.spent_total = 0
    ch.clicks_today = ch.conversions_today = 0
    ch.impressions_today = ch.revenue_today = 0
    ch.pace_level = 0
    ch.active_alerts.clear()
    ch.overspend_times.clear()
    ch.unauthorised_times.clear()
    # A performance denial lasts at most until the end of the day: the new day
    # starts from a clean slate (a denied channel cannot produce new evidence).
    ch.perf_violation_since = None
    ch.perf_violation_reason = ""
    ch.perf_violation_alerted = False
    # Rebuilding "today" (first use, or a time zone change): count today's spend from
    # history. A normal roll to the next day must not: the only history at or after
    # the new day's start is then spend already counted on the previous day (early
    # arrivals are placed at min(event time, now)), plus, in zones whose day starts at
    # :30 or :45, yesterday's last minutes sharing the first epoch hour.
    if previous is None or previous.tz != day.tz:
        start_hour = int(day.start // 3600)
        for h, b in ch.history.items():
            if h >= start_hour and h * 3600 < day.end:
                slot = day.slot_of(max(h * 3600.0, day.start))
                ch.add_spent(slot, b[SPEND])
                ch.spent_total += b[SPEND]
                ch.clicks_today += b[CLICKS]
                ch.conversions_today += b[CONVERSIONS]
    replan(state, ch, strategies)
