"""The worker's clock: every decision, expiry and cooldown is judged by it.

Why an object and not ``datetime.now``: decisions must use the worker's clock, never a
bidder's timestamp, and tests and replays must be able to drive that
clock. Production uses :class:`WallClock` (optionally shifted by
``settings.clock_offset_s``, which integration tests use to place the worker at a chosen
time of day); component tests use :class:`ManualClock`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current instant as an aware UTC ``datetime``."""

    def now(self) -> datetime: ...


@dataclass
class WallClock:
    """The system clock plus a fixed offset (seconds)."""

    offset_s: float = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)


@dataclass
class ManualClock:
    """A clock that only moves when told to (tests, simulations)."""

    current: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self.current = when.astimezone(UTC)
