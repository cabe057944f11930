"""Replay of a whole simulated day through ``BudgetPacer`` with an injected clock.

Minute by minute, several channels, a bidder that reserves before it spends and settles
with the actual amount. With ample traffic the day must end at >= 99% of every budget,
never above it, with spend in every hour of the (local, DST-aware) day and without a
breaker trip or an overpacing alert. Nothing here sleeps: a day replays in a fraction of
a second of CPU.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pacer_stream import BudgetPacer, ChannelType, PacingStrategy, SpendTransaction
from pacer_stream.api import PacingAlert

from .conftest import Clock

CHANNELS = {
    ChannelType.GOOGLE_ADS: (Decimal("1000.00"), PacingStrategy.EVEN_DISTRIBUTION),
    ChannelType.FACEBOOK_ADS: (Decimal("500.00"), PacingStrategy.PERFORMANCE_WEIGHTED),
    ChannelType.TIKTOK_ADS: (Decimal("250.00"), PacingStrategy.ADAPTIVE_HYBRID),
    ChannelType.SEARCH: (Decimal("333.33"), PacingStrategy.HISTORICAL_PATTERN),
}


def traffic(minute_of_day: int) -> float:
    """Diurnal demand, lowest at night but never absent (ample traffic all day)."""
    hour = minute_of_day / 60
    return 1.0 + 2.0 * max(0.0, 1 - abs(hour - 14) / 9)


@pytest.mark.parametrize(
    ("tz", "day"),
    [("UTC", datetime(2026, 3, 2)), ("America/New_York", datetime(2026, 3, 8))],
)
def test_replay_of_a_day(tz: str, day: datetime) -> None:
    z = ZoneInfo(tz)
    # local midnights, then absolute (UTC) arithmetic: aware local arithmetic is wall-clock
    start = day.replace(tzinfo=z).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=z).astimezone(UTC)
    clock = Clock(start)
    alerts: list[PacingAlert] = []
    pacer = BudgetPacer(alert_callback=alerts.append, clock=clock)
    for channel, (budget, strategy) in CHANNELS.items():
        pacer.allocate_hourly_budget("replay", channel, budget, strategy, timezone=tz)
    rng = random.Random(7)
    hours = int((end - start).total_seconds() // 3600)
    assert hours == (23 if tz == "America/New_York" else 24)
    spent = {c: Decimal(0) for c in CHANNELS}
    by_hour = {c: [Decimal(0)] * hours for c in CHANNELS}
    n = 0
    for minute in range(hours * 60):
        clock.set(start + timedelta(minutes=minute, seconds=30))
        for channel, (budget, _) in CHANNELS.items():
            demand = traffic(minute % 1440) * 3  # about 3-9x what the plan needs
            for k in range(int(demand) + 1):
                bid = (budget / 1440 * Decimal(rng.uniform(0.5, 1.5))).quantize(Decimal("0.01"))
                r = pacer.reserve("replay", channel, bid, request_id=f"{channel}-{minute}-{k}")
                if not r.allowed:
                    break
                # the platform charges a little less than the hold, or exactly it
                actual = (bid * Decimal(rng.choice(["1", "1", "0.9"]))).quantize(Decimal("0.01"))
                pacer.record_spend(
                    SpendTransaction(
                        "replay", channel, actual, clock(), clicks=rng.randint(1, 5),
                        conversions=rng.randint(0, 1), reservation_id=r.reservation_id,
                        transaction_id=f"tx-{channel}-{minute}-{k}",
                    )
                )
                spent[channel] += actual
                by_hour[channel][minute // 60] += actual
                n += 1
    clock.set(end - timedelta(seconds=1))
    status = pacer.status("replay")
    assert n > 1000
    for channel, (budget, _) in CHANNELS.items():
        assert status[channel.value]["spent"] == spent[channel]
        assert spent[channel] <= budget, "overspend"
        assert spent[channel] >= budget * Decimal("0.99"), (channel, spent[channel], budget)
        assert all(x > 0 for x in by_hour[channel]), "an hour of the day went unused"
        assert status[channel.value]["breaker"] == "closed"
    kinds = {a.alert_type for a in alerts}
    assert not kinds & {
        "circuit_breaker_open",
        "emergency_stop_required",
        "critical_overpacing",
        "warning_overpacing",
    }
