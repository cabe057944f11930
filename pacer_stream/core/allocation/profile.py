"""Hour-of-day and day-of-week profiles read from the hourly history.

Shared by HISTORICAL_PATTERN, PERFORMANCE_WEIGHTED and the baseline predictor so the
history is read one way only. Profiles are expressed per *slot of the day being
planned*, using each slot's local hour of day, so DST days line up.
"""

from __future__ import annotations

from dataclasses import dataclass

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.calendar import local_hour_at
from pacer_stream.core.history import CLICKS, CONVERSIONS, SPEND

#: Pseudo-days of a flat profile mixed into every observed profile (shrinkage), so a
#: single odd day cannot starve an hour.
FLAT_PRIOR_DAYS = 1.0


@dataclass(frozen=True, slots=True)
class HourProfile:
    """Per local hour of day (0-23): totals over the history used."""

    clicks: tuple[float, ...]
    spend: tuple[float, ...]
    conversions: tuple[float, ...]
    days: int
    hours_with_data: int


def read_profile(ctx: AllocationContext, *, weekday: int | None = None) -> HourProfile:
    clicks = [0.0] * 24
    spend = [0.0] * 24
    conv = [0.0] * 24
    days: set[int] = set()
    n = 0
    for epoch_hour, bucket in ctx.history.before(ctx.day_start_hour):
        wd, hod = local_hour_at(ctx.day.tz, epoch_hour * 3600.0)
        if weekday is not None and wd != weekday:
            continue
        clicks[hod] += bucket[CLICKS]
        spend[hod] += bucket[SPEND]
        conv[hod] += bucket[CONVERSIONS]
        days.add(epoch_hour // 24)
        n += 1
    return HourProfile(tuple(clicks), tuple(spend), tuple(conv), len(days), n)


def traffic_weights(ctx: AllocationContext) -> tuple[list[float], int]:
    """Expected traffic share per slot of the planned day, from observed clicks (or
    spend when no clicks were reported), shrunk toward flat. Returns (weights, days)."""
    overall = read_profile(ctx)
    if overall.hours_with_data == 0:
        return [1.0] * ctx.day.n_slots, 0
    series = overall.clicks if sum(overall.clicks) > 0 else overall.spend
    same_day = read_profile(ctx, weekday=ctx.day.weekday)
    same_series = same_day.clicks if sum(same_day.clicks) > 0 else same_day.spend
    per_hour = _shrunk(series, overall.days)
    if same_day.days >= 2:
        weekly = _shrunk(same_series, same_day.days)
        per_hour = [0.5 * a + 0.5 * b for a, b in zip(per_hour, weekly, strict=True)]
    return [per_hour[h] for h in ctx.day.hours_of_day], overall.days


def _shrunk(series: tuple[float, ...], days: int) -> list[float]:
    total = sum(series)
    if total <= 0:
        return [1.0 / 24] * 24
    shares = [v / total for v in series]
    k = FLAT_PRIOR_DAYS
    d = max(days, 1)
    return [(s * d + k / 24) / (d + k) for s in shares]
