"""Mutable state of one campaign and its channels (the value of the worker's table).

Everything here is bounded: today's per-slot arrays (<= 25 entries), a per-minute ring,
a queue of recent overspend times, the active reservations (each expires after its TTL),
sparse hourly history over a fixed horizon, and the dedupe window.

It is also compact, because a worker holds one value per campaign/channel in memory:
per-slot series are ``array('q')`` (8 bytes a value, no int objects), the queues of
times and the alert set are the small containers of ``core.compact`` (a few dozen bytes
while empty, where a ``deque`` costs about 760 and a ``set`` 216), the per-minute
rings allocate nothing until first used, and the maps most channels leave empty
(reservations, unreported holds, answered requests, the outbox) share one empty
container until their first entry (``compact.own``).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import StrEnum

from pacer_stream.core.allocation.base import DayPlan, StrategyResult
from pacer_stream.core.breaker import Breaker
from pacer_stream.core.calendar import LocalDay
from pacer_stream.core.compact import AlertSet, FloatQueue, no_entries, no_outputs
from pacer_stream.core.history import HourlyAmounts, HourlyHistory
from pacer_stream.core.report_lag import Lags, new_lags
from pacer_stream.core.types import (
    ChannelType,
    Output,
    PacingStrategy,
    Thresholds,
)
from pacer_stream.core.windows import DedupeWindow, MinuteRing


@dataclass(slots=True)
class Reservation:
    reservation_id: str
    amount: int
    expires_at: float
    created_at: float


class AnswerStatus(StrEnum):
    """Where the reservation granted to a request stands (for retries of the request)."""

    LIVE = "live"
    SETTLED = "settled"
    EXPIRED = "expired"
    RELEASED = "released"


@dataclass(slots=True)
class Answer:
    """What a granted reservation request was answered, kept so that a retry of the same
    request gets the same hold back and nothing more.

    A request id is a retry only with the same channel and amount; the status says
    whether the hold still exists (a retry after it was settled, expired or released
    authorises nothing new)."""

    channel: ChannelType
    amount: int
    reservation_id: str
    answered_at: float
    status: AnswerStatus = AnswerStatus.LIVE


@dataclass(slots=True)
class Unreported:
    """A reservation that expired before its spend was reported: it keeps counting
    against the daily cap until ``drop_at`` (late-reporting platforms)."""

    amount: int
    drop_at: float
    #: When the reservation was made: spend that settles it counts no earlier.
    created_at: float


@dataclass(slots=True)
class ChannelState:
    channel: ChannelType
    #: Budget from configuration (0 = no budget: spend is recorded, never authorised).
    base_budget: int = 0
    #: Today's budget: base + today's reallocation deltas.
    budget: int = 0
    strategy: PacingStrategy | None = None
    day: LocalDay | None = None
    #: When the channel got its budget, if that was during the current day: the plan
    #: then covers only the rest of the day (a mid-day start is not "underpacing").
    active_from: float | None = None
    plan: DayPlan | None = None
    result: StrategyResult | None = None
    #: Cumulative planned spend at each slot boundary (len = slots + 1). Shared by
    #: channels with equal plans (``planning.shared_plan``): replaced, never changed.
    cum_plan: array[int] = field(default_factory=lambda: array("q"))
    spent: array[int] = field(default_factory=lambda: array("q"))
    spent_total: int = 0
    clicks_today: int = 0
    conversions_today: int = 0
    impressions_today: int = 0
    revenue_today: int = 0
    reserved_total: int = 0
    #: Live reservations (the shared empty dict until the first: ``compact.own``).
    reservations: dict[str, Reservation] = field(default_factory=no_entries)
    #: Reservations that expired before their spend was reported, by reservation id.
    #: They still count against the daily cap for ``report_grace_s``, because a
    #: platform that reports late has probably spent the money already.
    unreported: dict[str, Unreported] = field(default_factory=no_entries)
    unreported_total: int = 0
    #: Recent report lags (seconds from reservation to the spend settling it): the
    #: grace of expired reservations follows them (``core.report_lag``).
    report_lags: Lags = field(default_factory=new_lags)
    velocity: MinuteRing = field(default_factory=MinuteRing)
    #: Spend nobody authorised (no reservation, or above the reserved amount): the
    #: breaker's runaway and repeated-overspend rules look only at this, so authorised
    #: spend (already gated by the rules) never trips it.
    unauthorised: MinuteRing = field(default_factory=MinuteRing)
    #: Amounts requested but refused by the hourly or velocity line: unmet demand,
    #: the evidence that a channel could use more budget (reallocation receivers).
    unmet: MinuteRing = field(default_factory=MinuteRing)
    #: The same refusals (and daily-cap ones) by epoch hour, over the history horizon:
    #: with the spend history, the demand each hour offered (``allocation.capacity``).
    unmet_hours: HourlyAmounts = field(default_factory=HourlyAmounts)
    #: Times of unauthorised spend events in the velocity window: a runaway is a *rate*,
    #: so one odd event (however large) never trips the breaker on velocity alone.
    unauthorised_times: FloatQueue = field(default_factory=FloatQueue)
    overspend_times: FloatQueue = field(default_factory=FloatQueue)
    breaker: Breaker = field(default_factory=Breaker)
    pace_level: int = 0
    active_alerts: AlertSet = field(default_factory=AlertSet)
    alert_seq: int = 0
    #: Since when a performance threshold has been violated (None = not violated).
    perf_violation_since: float | None = None
    perf_violation_reason: str = ""
    perf_violation_alerted: bool = False
    history: HourlyHistory = field(default_factory=HourlyHistory)
    #: (slot, spent before slot, budget) -> allowance of the slot after rollover.
    allowance_key: tuple[int, int, int] = (-1, -1, -1)
    #: (day start hour, clicks, conversions) of the 7-day baseline before today: read
    #: once per day, so recording a spend never re-sums the history (derived, not saved).
    baseline_cache: tuple[int, int, int] = field(default=(-1, 0, 0), compare=False)
    allowance_value: int = 0
    #: (day start hour, capacity per slot) from ``allocation.capacity``: history before
    #: today changes rarely, so a mid-day re-plan does not re-read it (derived, not saved).
    capacity_cache: tuple[int, tuple[int, ...] | None] = field(default=(-1, None), compare=False)

    @property
    def remaining(self) -> int:
        """What is left of today's budget, never below 0 (spend nobody authorised can
        take the channel past its budget; "remaining" is then 0, not negative)."""
        return max(0, self.budget - self.spent_total - self.reserved_total - self.unreported_total)


@dataclass(slots=True)
class CampaignState:
    campaign_id: str
    timezone: str = "UTC"
    strategy: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID
    thresholds: Thresholds = field(default_factory=Thresholds)
    configured: bool = False
    channels: dict[ChannelType, ChannelState] = field(default_factory=dict)
    emergency_stopped: bool = False
    stop_reason: str = ""
    dedupe: DedupeWindow = field(default_factory=DedupeWindow)
    #: Input offset high-water marks, kept inside the state they guard: a record at or
    #: below the mark was already applied (crash-replay protection).
    offsets: dict[str, int] = field(default_factory=dict)
    #: Recently granted reservation requests by request id, oldest first (bounded by
    #: count and by age, see ``engine.ANSWER_RETENTION_S``).
    answered: dict[str, Answer] = field(default_factory=no_entries)
    #: Outputs produced by lazy time transitions during read-only calls (decide,
    #: snapshot, allowance...): handed out by the next call that returns outputs, so a
    #: breaker transition is never swallowed by a read.
    outbox: list[Output] = field(default_factory=no_outputs)
