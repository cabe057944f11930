"""Vocabulary of the core: enums, configuration, input and output records.

All money fields are integer micros; all instants are aware ``datetime`` objects (UTC
inside the core). These records are plain frozen dataclasses so the stream layer, the
Redis layer, the simulator and the ``BudgetPacer`` facade can share them without
importing any I/O library. The two built once per event or request (``SpendEvent`` and
``Decision``) are frozen ``msgspec`` structs instead: a frozen dataclass sets each
field through ``object.__setattr__``, about 1.3 us a construction, a tenth of what a
whole decision costs; a struct is built in about 0.1 us and behaves the same (fields,
equality, hashing, immutability).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from msgspec import Struct

from pacer_stream.core.validation import validate_thresholds


class ChannelType(StrEnum):
    """Marketing channels (values as in the original Budget Pacer)."""

    GOOGLE_ADS = "google_ads"
    FACEBOOK_ADS = "facebook_ads"
    TIKTOK_ADS = "tiktok_ads"
    DISPLAY = "display"
    NATIVE = "native"
    VIDEO = "video"
    SEARCH = "search"
    SHOPPING = "shopping"


class PacingStrategy(StrEnum):
    """Hourly allocation strategies (values as in the original Budget Pacer)."""

    EVEN_DISTRIBUTION = "even_distribution"
    PERFORMANCE_WEIGHTED = "performance_weighted"
    HISTORICAL_PATTERN = "historical_pattern"
    PREDICTIVE_ML = "predictive_ml"
    ADAPTIVE_HYBRID = "adaptive_hybrid"


class CircuitBreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerState = CircuitBreakerState


class AlertType(StrEnum):
    WARNING_OVERPACING = "warning_overpacing"
    CRITICAL_OVERPACING = "critical_overpacing"
    EMERGENCY_STOP_REQUIRED = "emergency_stop_required"
    CIRCUIT_BREAKER_OPEN = "circuit_breaker_open"
    PERFORMANCE_DEGRADATION = "performance_degradation"
    UNDERPACING = "underpacing"
    UNBUDGETED_SPEND = "unbudgeted_spend"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Code(StrEnum):
    """Stable machine codes of can-spend decisions (replies, reservations, metrics)."""

    OK = "ok"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    UNKNOWN_CHANNEL = "unknown_channel"
    NO_BUDGET = "no_budget"
    EMERGENCY_STOP = "emergency_stop"
    BREAKER_OPEN = "circuit_breaker_open"
    BREAKER_TRIAL_LIMIT = "circuit_breaker_half_open_limit"
    INVALID_AMOUNT = "invalid_amount"
    DAILY_CAP = "daily_budget_exhausted"
    HOURLY_CAP = "hourly_cap_reached"
    VELOCITY = "velocity_limit"
    PERFORMANCE_THRESHOLD = "performance_threshold"
    DEADLINE_EXPIRED = "deadline_expired"
    # Retried request ids: a retry is one only when campaign, channel and amount match
    # the original request; it never authorises anything the original did not.
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    RESERVATION_EXPIRED = "reservation_expired"
    RESERVATION_RELEASED = "reservation_released"
    RESERVATION_SETTLED = "reservation_settled"
    #: The channel holds as many reservations as it may (``policy.MAX_HELD_RESERVATIONS``).
    RESERVATION_LIMIT = "reservation_limit"
    # Fast-path (Redis) codes: fail closed.
    STORE_UNAVAILABLE = "store_unavailable"
    STATE_STALE = "state_stale"


class BreakerCause(StrEnum):
    OVERSPEND_AHEAD_OF_PLAN = "overspend_ahead_of_plan"
    RUNAWAY_VELOCITY = "runaway_velocity"
    REPEATED_OVERSPEND = "repeated_overspend"
    EMERGENCY_STOP = "emergency_stop"
    FORCED = "forced"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    TRIAL_PASSED = "trial_passed"
    TRIAL_FAILED = "trial_failed"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every tunable of the pacing rules, with the documented defaults.

    Ratios and percentages are plain floats (they are not money). Durations are seconds.
    """

    max_hourly_spend_pct: float = 0.15
    frontload_protection_hours: int = 4
    frontload_factor: float = 0.5
    emergency_stop_threshold: float = 0.90
    #: "ahead of plan" for the emergency rule: spend exceeds plan by this share of budget.
    emergency_ahead_pct: float = 0.10
    pace_warning_threshold: float = 1.5
    pace_critical_threshold: float = 2.0
    #: Pace alerts are evaluated only once planned spend reaches this share of the day
    #: (avoids alert storms when planned spend is still a few micros).
    pace_min_planned_pct: float = 0.02
    #: Underpacing: projected end-of-day utilisation below this fires ``underpacing``.
    underpacing_target: float = 0.80
    #: Underpacing is judged only after this share of the day has elapsed.
    underpacing_min_elapsed: float = 0.25
    #: Velocity rule: trailing-window spend may be at most multiple x planned rate.
    #: The hour's allowance is released linearly over the hour, this far ahead of the
    #: clock, so spend follows the planned curve inside the hour too.
    hour_release_lead_s: int = 600
    velocity_window_s: int = 300
    velocity_multiple: float = 3.0
    #: Breaker trip on runaway velocity: trailing spend above this multiple of plan.
    velocity_trip_multiple: float = 2.0
    #: Minimum trailing-window spend (share of daily budget) before velocity can trip.
    velocity_trip_min_pct: float = 0.002
    #: ... and at least this many unauthorised spend events in the window.
    velocity_trip_min_events: int = 2
    #: Repeated overspend: this many spends beyond the hour allowance within the window.
    overspend_events_to_trip: int = 5
    overspend_window_s: int = 60
    breaker_cooldown_s: int = 300
    breaker_max_cooldown_s: int = 3600
    half_open_trial_spends: int = 3
    reservation_ttl_s: int = 60
    #: An expired, unreported reservation keeps counting against the daily cap this
    #: long (late-reporting platforms), then is released. Once a channel has reported
    #: enough spend, the grace follows its observed report lag instead
    #: (``core.report_lag``); this is the grace until then.
    report_grace_s: int = 600
    #: Reallocation: a channel this much less efficient than the best gives budget.
    reallocation_gap: float = 0.20
    #: Share of a donor's projected unused budget that one reallocation moves.
    reallocation_share: float = 0.5
    #: Performance degradation: conversion rate this much below baseline, and a minimum
    #: sample of clicks today before it can fire.
    performance_drop: float = 0.5
    performance_min_clicks: int = 200
    #: Late events older than this (days) are refused; events further ahead than
    #: ``max_future_skew_s`` are refused.
    #: Optional performance floors (None = off), judged over the trailing
    #: ``performance_window_h`` hours with at least ``performance_min_clicks`` clicks.
    #: A violation throttles the pacing multiplier at once and, if it persists for
    #: ``performance_grace_s``, denies spend with ``performance_threshold``.
    min_conversion_rate: float | None = None
    max_cost_per_click_micros: int | None = None
    target_roas: float | None = None
    performance_window_h: int = 3
    performance_grace_s: int = 1800
    performance_throttle: float = 0.5
    #: Pacing multiplier controller: m = clamp(1 + gain * (1 - pace ratio), 0, max).
    multiplier_gain: float = 1.0
    max_multiplier: float = 2.0
    history_days: int = 28
    max_future_skew_s: int = 300

    def __post_init__(self) -> None:
        validate_thresholds(self)


@lru_cache(maxsize=256)
def shared_thresholds(t: Thresholds) -> Thresholds:
    """The first-seen instance equal to ``t``: campaigns configured alike (nearly all use
    the defaults) then share one object instead of holding a copy each (about 330 bytes
    per campaign). Thresholds are frozen, so sharing cannot leak a change."""
    return t


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    daily_budget_micros: int
    strategy: PacingStrategy | None = None


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    campaign_id: str
    channels: dict[ChannelType, ChannelConfig]
    strategy: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID
    timezone: str = "UTC"
    thresholds: Thresholds = field(default_factory=Thresholds)


class SpendEvent(Struct, frozen=True):
    """One spend fact reported by an ad platform (the core's view of SpendTransaction)."""

    event_id: str
    campaign_id: str
    channel: ChannelType
    amount_micros: int
    event_time: datetime
    clicks: int = 0
    conversions: int = 0
    impressions: int | None = None
    revenue_micros: int | None = None
    reservation_id: str | None = None


class Decision(Struct, frozen=True):
    allowed: bool
    code: Code
    reason: str
    remaining_micros: int
    reservation_id: str | None = None
    expires_at: datetime | None = None
    #: Bid/throttle multiplier for the bid engine (see ``core.multiplier``).
    pacing_multiplier: float = 0.0


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    campaign_id: str
    channel: ChannelType | None
    alert_type: AlertType
    severity: Severity
    pace_ratio: float
    current_spend_micros: int
    budget_micros: int
    budget_consumed_pct: float
    time_elapsed_pct: float
    projected_overspend_micros: int
    recommended_action: str
    at: datetime
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    campaign_id: str
    channel: ChannelType
    previous: CircuitBreakerState
    state: CircuitBreakerState
    cause: BreakerCause
    since: datetime
    until: datetime | None
    forced: bool = False


@dataclass(frozen=True, slots=True)
class BudgetMove:
    campaign_id: str
    deltas: dict[ChannelType, int]
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class PaceSnapshot:
    campaign_id: str
    channel: ChannelType
    at: datetime
    budget_micros: int
    spent_micros: int
    reserved_micros: int
    planned_micros: int
    pace_ratio: float
    time_elapsed_pct: float
    hour_allowance_micros: int
    hour_spent_micros: int
    breaker: CircuitBreakerState
    clicks: int
    conversions: int
    impressions: int = 0
    revenue_micros: int = 0
    pacing_multiplier: float = 0.0
    #: Derived metrics of today, last 7 days and baseline (``core.performance``).
    performance: dict[str, dict[str, float | int | None]] = field(default_factory=dict)


Output = Alert | BreakerTransition | BudgetMove | PaceSnapshot
