"""Shared helpers of the core unit tests: a fixed start day, an injectable clock and a
small harness around one campaign's state and the pure engine.

Nothing here sleeps or reads the wall clock: every test moves time by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from pacer_stream.core.engine import PacingEngine, SpendResult
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    Decision,
    Output,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)

U = 1_000_000  # micros per currency unit
G = ChannelType.GOOGLE_ADS
F = ChannelType.FACEBOOK_ADS
T = ChannelType.TIKTOK_ADS
#: A Monday with no DST change anywhere interesting.
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
#: Thresholds under which EVEN allocation is exactly flat (no frontload, no hour cap).
UNCAPPED = Thresholds(max_hourly_spend_pct=1.0, frontload_protection_hours=0)


class Clock:
    """A settable clock for ``BudgetPacer(clock=...)``."""

    def __init__(self, start: datetime = DAY0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now = self.now + timedelta(**kw)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


class Harness:
    """One campaign driven through :class:`PacingEngine` with a hand-moved clock."""

    def __init__(
        self,
        budgets: Mapping[ChannelType, int] | None = None,
        *,
        strategy: PacingStrategy = PacingStrategy.EVEN_DISTRIBUTION,
        tz: str = "UTC",
        thresholds: Thresholds | None = None,
        start: datetime = DAY0,
        campaign_id: str = "c",
        engine: PacingEngine | None = None,
    ) -> None:
        self.engine = engine or PacingEngine()
        self.campaign_id = campaign_id
        self.now = start
        self._ids = itertools.count()
        self.config = CampaignConfig(
            campaign_id,
            {c: ChannelConfig(b) for c, b in (budgets or {G: 1000 * U}).items()},
            strategy,
            tz,
            thresholds or Thresholds(),
        )
        self.state: CampaignState
        self.state, self.outputs = self.engine.configure(None, self.config, start)

    # -- time ---------------------------------------------------------------------
    def at(self, when: datetime) -> Harness:
        self.now = when
        return self

    def advance(self, **kw: float) -> datetime:
        self.now = self.now + timedelta(**kw)
        return self.now

    # -- actions ------------------------------------------------------------------
    def event(
        self,
        amount: int,
        *,
        channel: ChannelType = G,
        when: datetime | None = None,
        event_id: str | None = None,
        clicks: int = 0,
        conversions: int = 0,
        reservation_id: str | None = None,
    ) -> SpendEvent:
        return SpendEvent(
            event_id=event_id or f"e{next(self._ids)}",
            campaign_id=self.campaign_id,
            channel=channel,
            amount_micros=amount,
            event_time=when or self.now,
            clicks=clicks,
            conversions=conversions,
            reservation_id=reservation_id,
        )

    def spend(self, amount: int, **kw: object) -> SpendResult:
        ev = self.event(amount, **kw)  # type: ignore[arg-type]
        return self.engine.record_spend(self.state, ev, self.now)

    def decide(self, amount: int, channel: ChannelType = G) -> Decision:
        return self.engine.decide(self.state, channel, amount, self.now)

    def reserve(
        self, amount: int, channel: ChannelType = G, request_id: str | None = None
    ) -> Decision:
        d, out = self.engine.reserve(
            self.state, channel, amount, request_id or f"r{next(self._ids)}", self.now
        )
        self.outputs += out
        return d

    def tick(self) -> list[Output]:
        return self.engine.tick(self.state, self.now)

    def ch(self, channel: ChannelType = G) -> ChannelState:
        return self.state.channels[channel]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def harness() -> Harness:
    return Harness()
