"""Campaign-local days and hours.

"The day" of a campaign is its local calendar day in its IANA time zone, so a DST day
has 23 or 25 hourly slots (or a shorter last slot in zones with 30-minute shifts). The
core works with epoch seconds internally; a :class:`LocalDay` maps an instant to its slot
with one ``bisect`` and is cached per (zone, date) because every campaign of a zone
shares it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pacer_stream.errors import InvalidArgument

SECONDS_PER_HOUR = 3600


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Resolve an IANA zone name, with a clear error for unknown names."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"timezone must be a non-empty IANA name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown timezone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class LocalDay:
    """One local calendar day of a time zone, cut into hourly slots."""

    tz: str
    date: date
    #: Slot boundaries in epoch seconds: ``len(slots) + 1`` values, first = local midnight.
    bounds: tuple[float, ...]
    #: Local hour of day (0-23) at the start of each slot (DST repeats or skips one).
    hours_of_day: tuple[int, ...]

    @property
    def n_slots(self) -> int:
        return len(self.bounds) - 1

    @property
    def start(self) -> float:
        return self.bounds[0]

    @property
    def end(self) -> float:
        return self.bounds[-1]

    @property
    def weekday(self) -> int:
        return self.date.weekday()

    @property
    def length_s(self) -> float:
        return self.bounds[-1] - self.bounds[0]

    def slot_of(self, ts: float) -> int:
        """Index of the slot containing ``ts`` (clamped to the day)."""
        bounds = self.bounds
        if ts < bounds[0]:
            return 0
        i = bisect.bisect_right(bounds, ts) - 1
        last = len(bounds) - 2  # the last slot (n_slots - 1, without the property's call)
        return i if i < last else last

    def contains(self, ts: float) -> bool:
        return self.bounds[0] <= ts < self.bounds[-1]

    def elapsed_fraction(self, ts: float) -> float:
        if ts <= self.start:
            return 0.0
        if ts >= self.end:
            return 1.0
        return (ts - self.start) / self.length_s


@lru_cache(maxsize=8192)
def local_day(tz: str, day: date) -> LocalDay:
    """The :class:`LocalDay` for ``day`` in zone ``tz`` (DST-aware)."""
    z = zone(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=z).timestamp()
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=z).timestamp()
    bounds: list[float] = []
    t = start
    while t < end - 1e-6:
        bounds.append(t)
        t += SECONDS_PER_HOUR
    bounds.append(end)
    hours = tuple(datetime.fromtimestamp(b, z).hour for b in bounds[:-1])
    return LocalDay(tz=tz, date=day, bounds=tuple(bounds), hours_of_day=hours)


def local_day_at(tz: str, ts: float) -> LocalDay:
    """The local day of zone ``tz`` that contains instant ``ts`` (epoch seconds)."""
    d = datetime.fromtimestamp(ts, zone(tz)).date()
    return local_day(tz, d)


def local_hour_at(tz: str, ts: float) -> tuple[int, int]:
    """(weekday, local hour of day) of an instant, for history features."""
    dt = datetime.fromtimestamp(ts, zone(tz))
    return dt.weekday(), dt.hour


def to_ts(value: datetime) -> float:
    """Epoch seconds of an aware datetime."""
    return value.timestamp()


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
