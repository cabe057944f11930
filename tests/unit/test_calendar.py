"""Campaign-local days: DST-correct slots (23/25 hours, 30-minute shifts), slot lookup."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core.calendar import (
    from_ts,
    local_day,
    local_day_at,
    local_hour_at,
    to_ts,
    zone,
)
from pacer_stream.errors import InvalidArgument

ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]


def test_zone_errors() -> None:
    assert zone("UTC") is zone("UTC")
    with pytest.raises(InvalidArgument, match="unknown timezone"):
        zone("Mars/Olympus_Mons")
    with pytest.raises(InvalidArgument, match="non-empty"):
        zone("")


def test_utc_day_has_24_hourly_slots() -> None:
    d = local_day("UTC", date(2026, 3, 2))
    assert d.n_slots == 24
    assert d.start == datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    assert d.length_s == 86400
    assert d.hours_of_day == tuple(range(24))
    assert all(b - a == 3600 for a, b in zip(d.bounds, d.bounds[1:], strict=False))
    assert d.weekday == 0


@pytest.mark.parametrize(
    ("tz", "day", "slots", "hours", "labels"),
    [
        # spring forward 02:00 -> 03:00: local hour 2 does not exist
        ("America/New_York", date(2026, 3, 8), 23, 23.0, (0, 1, 3, 4)),
        # fall back 02:00 -> 01:00: local hour 1 happens twice
        ("America/New_York", date(2026, 11, 1), 25, 25.0, (0, 1, 1, 2)),
        ("Europe/London", date(2026, 3, 29), 23, 23.0, (0, 2, 3, 4)),
        ("Europe/London", date(2026, 10, 25), 25, 25.0, (0, 1, 1, 2)),
        # Lord Howe Island shifts by 30 minutes: 23.5 h and 24.5 h days
        ("Australia/Lord_Howe", date(2026, 10, 4), 24, 23.5, (0, 1, 2, 3)),
        ("Australia/Lord_Howe", date(2026, 4, 5), 25, 24.5, (0, 1, 1, 2)),
        ("Asia/Kolkata", date(2026, 3, 8), 24, 24.0, (0, 1, 2, 3)),
    ],
)
def test_dst_days(tz: str, day: date, slots: int, hours: float, labels: tuple[int, ...]) -> None:
    d = local_day(tz, day)
    assert d.n_slots == slots
    assert d.length_s == hours * 3600
    assert d.hours_of_day[:4] == labels
    z = ZoneInfo(tz)
    assert d.start == datetime(day.year, day.month, day.day, tzinfo=z).timestamp()
    nxt = day + timedelta(days=1)
    assert d.end == datetime(nxt.year, nxt.month, nxt.day, tzinfo=z).timestamp()
    widths = [b - a for a, b in zip(d.bounds, d.bounds[1:], strict=False)]
    assert all(w == 3600 for w in widths[:-1])
    assert widths[-1] == (1800 if hours % 1 else 3600)


def test_kolkata_day_starts_at_half_past_utc() -> None:
    d = local_day("Asia/Kolkata", date(2026, 3, 2))
    assert from_ts(d.start) == datetime(2026, 3, 1, 18, 30, tzinfo=UTC)


def test_slot_of_and_clamping() -> None:
    d = local_day("America/New_York", date(2026, 3, 8))
    assert d.slot_of(d.start - 10) == 0
    assert d.slot_of(d.start) == 0
    assert d.slot_of(d.start + 3599.999) == 0
    assert d.slot_of(d.start + 3600) == 1
    # 03:30 local (after the jump) is in the third slot, index 2
    t = datetime(2026, 3, 8, 3, 30, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert d.slot_of(t) == 2
    assert d.hours_of_day[2] == 3
    assert d.slot_of(d.end - 1) == 22
    assert d.slot_of(d.end + 5000) == 22  # clamped to the day
    assert d.contains(d.start) and not d.contains(d.end)


def test_elapsed_fraction() -> None:
    d = local_day("UTC", date(2026, 3, 2))
    assert d.elapsed_fraction(d.start - 1) == 0.0
    assert d.elapsed_fraction(d.start + 21600) == 0.25
    assert d.elapsed_fraction(d.end + 1) == 1.0
    d23 = local_day("Europe/London", date(2026, 3, 29))
    assert d23.elapsed_fraction(d23.start + 23 * 1800) == 0.5


def test_local_day_at_picks_the_local_date() -> None:
    ts = datetime(2026, 3, 2, 3, 0, tzinfo=UTC).timestamp()  # 22:00 on Mar 1 in New York
    assert local_day_at("America/New_York", ts).date == date(2026, 3, 1)
    assert local_day_at("UTC", ts).date == date(2026, 3, 2)
    assert local_day_at("Asia/Kolkata", ts).date == date(2026, 3, 2)
    assert local_hour_at("America/New_York", ts) == (6, 22)  # Sunday 22h


def test_local_day_is_cached_and_frozen() -> None:
    a = local_day("Europe/London", date(2026, 3, 29))
    assert a is local_day("Europe/London", date(2026, 3, 29))
    with pytest.raises(AttributeError):
        a.tz = "UTC"  # type: ignore[misc]


def test_ts_helpers_round_trip() -> None:
    when = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert from_ts(to_ts(when)) == when
    assert from_ts(0).tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)))
def test_every_local_day_is_well_formed(tz: str, day: date) -> None:
    d = local_day(tz, day)
    assert 23 <= d.n_slots <= 25
    assert 23 * 3600 <= d.length_s <= 25 * 3600
    widths = [b - a for a, b in zip(d.bounds, d.bounds[1:], strict=False)]
    assert all(0 < w <= 3600 for w in widths)
    assert all(w == 3600 for w in widths[:-1])
    assert len(d.hours_of_day) == d.n_slots
    assert all(0 <= h <= 23 for h in d.hours_of_day)
    # consecutive days tile time with no gap or overlap
    assert local_day(tz, day + timedelta(days=1)).start == d.end
    # every instant of the day maps back to this day and to the slot that holds it
    for i in range(d.n_slots):
        mid = (d.bounds[i] + d.bounds[i + 1]) / 2
        assert d.slot_of(mid) == i
        assert local_day_at(tz, mid).date == day
