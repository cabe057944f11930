"""The facts of the operator page, as plain JSON-able data (no faust, no HTML).

One function per view: :func:`campaign_facts` (one campaign) and :func:`index_facts`
(the campaigns this worker owns). Both read the campaign state in place, like the JSON
status view: no copy (it would stall the agents sharing the event loop), and nothing
is produced or written -- only the lazy time transitions every decision applies.
The same facts feed the HTML page (:mod:`.render`), its refresh endpoint and
``pacer-stream status --watch``.

Money stays integer micros here; formatting is the renderer's job. Times are epoch
seconds (floats) so the renderers can show them in UTC and in the campaign's zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pacer_stream.core.calendar import LocalDay, local_day
from pacer_stream.core.history import SPEND
from pacer_stream.core.pacing import pace_ratio
from pacer_stream.core.state import ChannelState
from pacer_stream.core.types import ChannelType, Thresholds
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.stored import Stored

_DEFAULT_THRESHOLDS = Thresholds()

#: Most rows the index returns (search narrows it down).
INDEX_LIMIT = 500


def campaign_facts(
    processor: Processor, stored: Stored, activity: ActivityLog | None, now: datetime
) -> dict[str, Any]:
    """Everything the campaign page shows (see the module docstring)."""
    facts = processor.status(stored)  # in place, like the JSON view: no copy to stall
    state = stored.state  # the agents; it has just applied the day's lazy transitions
    ts = now.timestamp()
    for row in facts["channels"]:  # one row per channel of the state, same order
        ch = state.channels[ChannelType(row["channel"])]
        row["curve"] = _curves(ch, ch.day, ts) if ch.day is not None else None
        row["base_budget_micros"] = ch.base_budget
        row["channel_strategy"] = ch.strategy.value if ch.strategy else None
        row["breaker"]["since_ts"] = ch.breaker.since if ch.breaker.cause else None
        row["breaker"]["until_ts"] = ch.breaker.until
    facts["now"] = ts
    facts["config_applied_at"] = stored.config_applied_at
    facts["config_updated_at"] = stored.config_updated_at
    facts["thresholds"] = _thresholds(state.thresholds)
    summary = activity.summary(stored.campaign_id, now) if activity is not None else None
    facts["activity"] = summary
    return facts


def _curves(ch: ChannelState, day: LocalDay, ts: float) -> dict[str, Any]:
    """Cumulative spend of today (one point per hour boundary up to now, then now), the
    planned curve of today and yesterday's cumulative spend, on an axis of hours since
    local midnight (so yesterday lines up hour for hour)."""
    start = day.start
    current = day.slot_of(ts) if day.contains(ts) else day.n_slots
    actual: list[tuple[float, int]] = []
    cum = 0
    for i in range(min(current, day.n_slots) + 1):
        actual.append(((day.bounds[i] - start) / 3600, cum))
        if i < len(ch.spent):
            cum += ch.spent[i]
    if day.contains(ts):
        actual.append(((ts - start) / 3600, ch.spent_total))
    plan = [((b - start) / 3600, p) for b, p in zip(day.bounds, ch.cum_plan, strict=False)]
    yday = local_day(day.tz, day.date - timedelta(days=1))
    first = int(yday.start // 3600)
    last = int((yday.end - 1) // 3600)
    per_hour = {h: b[SPEND] for h, b in ch.history.buckets.items() if first <= h <= last}
    yesterday: list[tuple[float, int]] = []
    if any(per_hour.values()):
        cum = 0
        for b in yday.bounds:
            yesterday.append(((b - yday.start) / 3600, cum))
            cum += per_hour.get(int(b // 3600), 0)
        yesterday[-1] = ((yday.end - yday.start) / 3600, sum(per_hour.values()))
    return {
        "day": day.date.isoformat(),
        "hours": day.length_s / 3600,
        "now_h": (ts - start) / 3600 if day.contains(ts) else None,
        "actual": actual,
        "plan": plan,
        "yesterday": yesterday,
    }


def _thresholds(t: Thresholds) -> list[dict[str, Any]]:
    """Every threshold with its default, so the page can mark what was changed."""
    out = []
    for f in dataclasses.fields(t):
        value = getattr(t, f.name)
        default = getattr(_DEFAULT_THRESHOLDS, f.name)
        out.append({"name": f.name, "value": value, "default": value == default})
    return out


def index_facts(owned: Iterable[Stored], query: str, now: datetime) -> dict[str, Any]:
    """The campaigns this worker owns whose id contains ``query`` (case-insensitive),
    highest pace ratio first, at most :data:`INDEX_LIMIT` rows.

    Read straight from the table values without copying (an index of thousands of
    campaigns must not stall the worker): the breaker shown is the stored one, which the
    maintenance timer keeps current; the pace ratio is that of the campaign's current
    day (None before its first event of the day).
    """
    needle = query.casefold()
    ts = now.timestamp()
    total = 0
    rows: list[dict[str, Any]] = []
    for stored in owned:
        total += 1
        state = stored.state
        if needle and needle not in state.campaign_id.casefold():
            continue
        channels: list[dict[str, Any]] = []
        ratios: list[float] = []
        for channel, ch in state.channels.items():
            ratio = pace_ratio(ch, ts) if ch.day is not None and ch.day.contains(ts) else None
            if ratio is not None and ch.budget > 0:
                ratios.append(ratio)
            channels.append(
                {
                    "channel": channel.value,
                    "budget_micros": ch.budget,
                    "spent_micros": ch.spent_total,
                    "pace_ratio": ratio,
                    "breaker": ch.breaker.state.value,
                    "breaker_cause": ch.breaker.cause.value if ch.breaker.cause else None,
                }
            )
        rows.append(
            {
                "campaign_id": state.campaign_id,
                "configured": state.configured,
                "emergency_stopped": state.emergency_stopped,
                "timezone": state.timezone,
                "strategy": state.strategy.value,
                "pace_ratio": max(ratios) if ratios else None,
                "breakers_not_closed": sum(1 for c in channels if c["breaker"] != "closed"),
                "spent_micros": sum(ch.spent_total for ch in state.channels.values()),
                "budget_micros": sum(ch.budget for ch in state.channels.values()),
                "channels": channels,
            }
        )
    rows.sort(key=lambda r: (-(r["pace_ratio"] or 0.0), r["campaign_id"]))
    return {
        "now": ts,
        "query": query,
        "total": total,
        "matched": len(rows),
        "campaigns": rows[:INDEX_LIMIT],
    }
