"""Argument checks shared by the core and the adapters; each error says what was wrong.

It imports nothing of the core, so ``types`` can use it at import time (no cycle): the
threshold check reads the fields by name from any object that has them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pacer_stream.errors import InvalidArgument, InvalidTime, WrongType

FRACTIONS = (
    "max_hourly_spend_pct",
    "frontload_factor",
    "emergency_stop_threshold",
    "emergency_ahead_pct",
    "pace_min_planned_pct",
    "underpacing_target",
    "underpacing_min_elapsed",
    "velocity_trip_min_pct",
    "reallocation_gap",
    "reallocation_share",
    "performance_drop",
    "performance_throttle",
)
POSITIVE = (
    "pace_warning_threshold",
    "pace_critical_threshold",
    "velocity_multiple",
    "velocity_trip_multiple",
    "max_multiplier",
    "multiplier_gain",
)
POSITIVE_INTS = (
    "velocity_window_s",
    "overspend_events_to_trip",
    "velocity_trip_min_events",
    "overspend_window_s",
    "breaker_cooldown_s",
    "breaker_max_cooldown_s",
    "half_open_trial_spends",
    "reservation_ttl_s",
    "report_grace_s",
    "history_days",
    "performance_window_h",
    "performance_grace_s",
)
_NON_NEGATIVE_INTS = (
    "frontload_protection_hours",
    "hour_release_lead_s",
    "performance_min_clicks",
    "max_future_skew_s",
)


def validate_thresholds(t: Any) -> None:
    """Check the fields of a ``types.Thresholds`` (ranges, types, cross-field rules)."""
    for name in FRACTIONS:
        value = getattr(t, name)
        _number(name, value)
        if not 0.0 <= value <= 1.0:
            raise InvalidArgument(f"{name} must be between 0 and 1, got {value}")
    for name in POSITIVE:
        value = getattr(t, name)
        _number(name, value)
        if value <= 0:
            raise InvalidArgument(f"{name} must be positive, got {value}")
    for name in POSITIVE_INTS:
        value = getattr(t, name)
        _integer(name, value)
        if value <= 0:
            raise InvalidArgument(f"{name} must be a positive integer, got {value}")
    for name in _NON_NEGATIVE_INTS:
        value = getattr(t, name)
        _integer(name, value)
        if value < 0:
            raise InvalidArgument(f"{name} must not be negative, got {value}")
    for name in ("min_conversion_rate", "target_roas"):
        value = getattr(t, name)
        if value is not None:
            _number(name, value)
            if value < 0:
                raise InvalidArgument(f"{name} must not be negative, got {value}")
    if t.max_cost_per_click_micros is not None:
        _integer("max_cost_per_click_micros", t.max_cost_per_click_micros)
        if t.max_cost_per_click_micros <= 0:
            raise InvalidArgument(
                f"max_cost_per_click_micros must be positive, got {t.max_cost_per_click_micros}"
            )
    if t.velocity_window_s > 900:
        raise InvalidArgument(
            f"velocity_window_s must be at most 900 (15 minutes), got {t.velocity_window_s}"
        )
    if t.max_hourly_spend_pct == 0:
        raise InvalidArgument("max_hourly_spend_pct must be above 0")
    if t.frontload_protection_hours > 24:
        raise InvalidArgument(
            f"frontload_protection_hours must be at most 24, got {t.frontload_protection_hours}"
        )
    if t.pace_critical_threshold < t.pace_warning_threshold:
        raise InvalidArgument(
            "pace_critical_threshold must not be below pace_warning_threshold "
            f"({t.pace_critical_threshold} < {t.pace_warning_threshold})"
        )
    if t.breaker_max_cooldown_s < t.breaker_cooldown_s:
        raise InvalidArgument("breaker_max_cooldown_s must not be below breaker_cooldown_s")


def _number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongType(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be finite, got {value}")


def _integer(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongType(f"{name} must be an integer, got {type(value).__name__}")


def aware(value: datetime, *, what: str = "time") -> datetime:
    """Require an aware datetime (the core never guesses a time zone)."""
    if not isinstance(value, datetime):
        raise WrongType(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTime(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value


def epoch_s(value: datetime, *, what: str = "time") -> float:
    """Epoch seconds of an aware datetime (``aware`` then ``timestamp``). A UTC
    ``datetime``, what every adapter passes, skips the checks' calls: this runs once or
    twice for every decision and spend event."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value.timestamp()
    return aware(value, what=what).timestamp()
