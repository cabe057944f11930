"""The can-spend decision: ordered rules, each with its stable code and a human reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pacer_stream.core import policy
from pacer_stream.core.types import (
    ChannelType,
    CircuitBreakerState,
    Code,
    Thresholds,
)
from pacer_stream.errors import InvalidAmount, WrongType

from .conftest import DAY0, UNCAPPED, F, G, Harness, U

NOON = DAY0 + timedelta(hours=12)


def test_codes_are_stable_strings() -> None:
    assert {c.value for c in Code} >= {
        "ok",
        "unknown_campaign",
        "no_budget",
        "emergency_stop",
        "circuit_breaker_open",
        "circuit_breaker_half_open_limit",
        "daily_budget_exhausted",
        "hourly_cap_reached",
        "velocity_limit",
        "performance_threshold",
    }


# -- rule 1: unknown campaign / channel without budget ---------------------------------
def test_unknown_campaign() -> None:
    v = policy.evaluate(None, None, U, NOON.timestamp())
    assert (v.allowed, v.code) == (False, Code.UNKNOWN_CAMPAIGN)
    assert "unknown campaign" in v.reason


def test_unknown_campaign_comes_before_amount_validation() -> None:
    assert policy.evaluate(None, None, -5, NOON.timestamp()).code is Code.UNKNOWN_CAMPAIGN


def test_channel_without_budget() -> None:
    h = Harness({G: 100 * U})
    d = h.decide(U, F)
    assert (d.allowed, d.code) == (False, Code.NO_BUDGET)
    assert d.remaining_micros == 0


# -- rule 2: emergency stop ------------------------------------------------------------
def test_emergency_stop_beats_every_later_rule() -> None:
    h = Harness({G: 100 * U})
    h.at(NOON)
    h.engine.emergency_stop(h.state, "ops said so", h.now)
    d = h.decide(10**15)  # also invalid and over every cap
    assert (d.allowed, d.code) == (False, Code.EMERGENCY_STOP)
    assert "ops said so" in d.reason
    assert d.pacing_multiplier == 0.0


# -- rule 3: circuit breaker -------------------------------------------------------------
def test_open_breaker_denies_with_circuit_breaker_in_the_reason() -> None:
    h = Harness()
    h.at(NOON)
    h.engine.force_breaker(h.state, G, CircuitBreakerState.OPEN, h.now)
    d = h.decide(U)
    assert (d.allowed, d.code) == (False, Code.BREAKER_OPEN)
    assert "circuit breaker" in d.reason
    # the breaker decides before the amount is validated (a denial, not an error)
    assert h.decide(-1).code is Code.BREAKER_OPEN


def test_half_open_admits_a_limited_number_of_trial_reservations() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(NOON + timedelta(minutes=50))
    ch = h.ch()
    ch.own_breaker().state = CircuitBreakerState.HALF_OPEN
    for _ in range(3):
        assert h.reserve(U).allowed
    d = h.reserve(U)
    assert (d.allowed, d.code) == (False, Code.BREAKER_TRIAL_LIMIT)
    assert "circuit breaker" in d.reason


# -- rule 4: invalid amount raises ---------------------------------------------------------
@pytest.mark.parametrize(("amount", "error"), [(-1, InvalidAmount), (0, InvalidAmount),
                                               (1.5, WrongType), ("5", WrongType)])
def test_invalid_amount_raises(amount: object, error: type[Exception]) -> None:
    h = Harness()
    h.at(NOON)
    with pytest.raises(error):
        h.decide(amount)  # type: ignore[arg-type]
    with pytest.raises(error):
        h.reserve(amount)  # type: ignore[arg-type]
    assert h.ch().reserved_total == 0


# -- rule 5: daily cap (counts reservations) ---------------------------------------------
def test_daily_cap_counts_spend_and_reservations() -> None:
    h = Harness({G: 100 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=23, minutes=55))
    h.spend(60 * U, when=DAY0 + timedelta(hours=20))
    assert h.reserve(30 * U).allowed
    d = h.decide(10 * U + 1)
    assert (d.allowed, d.code) == (False, Code.DAILY_CAP)
    assert "10.00 of 100.00 left" in d.reason
    assert h.decide(10 * U).allowed  # exactly the budget is fine


def test_daily_cap_comes_before_the_hourly_cap() -> None:
    h = Harness({G: 100 * U})
    h.at(NOON)
    assert h.decide(101 * U).code is Code.DAILY_CAP


# -- rule 6: hourly cap --------------------------------------------------------------------
def test_hourly_cap_is_the_released_part_of_the_hour_allowance() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(NOON)  # hour allowance 200 (rollover of 12 unspent hours), 1/6 released
    released = int(200 * U * 600 / 3600)
    assert h.decide(released).allowed
    # While the hour is under its release line, one request may cross it, up to the
    # hour's whole allowance (lumpy spend must not strand the sliver) ...
    assert h.decide(released + 1).allowed
    d = h.decide(200 * U + 1)
    assert (d.allowed, d.code) == (False, Code.HOURLY_CAP)
    assert "hourly allowance" in d.reason
    # ... and once the line is reached nothing more passes until more is released.
    assert h.reserve(released).allowed
    assert h.decide(1).code is Code.HOURLY_CAP


def test_hourly_cap_counts_spend_of_the_hour_and_reservations() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(NOON + timedelta(minutes=50))  # the whole hour is released: 200
    h.spend(150 * U, when=NOON + timedelta(minutes=10))
    # rollover re-plans from spend before this hour only: the hour still has 200
    assert h.reserve(20 * U).allowed
    assert h.reserve(30 * U).allowed  # 150 spent + 50 reserved = the hour's 200
    assert h.decide(1).code is Code.HOURLY_CAP


def test_first_hours_are_frontload_protected() -> None:
    h = Harness({G: 2400 * U})  # default thresholds: first 4 hours at 50%
    h.at(DAY0 + timedelta(minutes=55))  # whole first hour released
    assert h.decide(50 * U).allowed  # 2400/24 * 0.5
    assert h.decide(50 * U + 1).code is Code.HOURLY_CAP


def test_no_hour_may_exceed_the_hour_maximum() -> None:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=16, minutes=55))  # 1000 left over 8 hours: 125 each
    assert h.decide(125 * U).allowed
    assert h.decide(125 * U + 1).code is Code.HOURLY_CAP
    assert 125 * U <= 0.15 * 1000 * U


# -- rule 7: velocity ----------------------------------------------------------------------
def test_velocity_limits_spend_in_the_trailing_window() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(NOON + timedelta(minutes=50))
    limit = int(200 * U / 3600 * 300 * 3.0)  # 3x the planned rate over 5 minutes: 50
    h.spend(40 * U)
    # under the limit, one request may cross it (lumpy spend) ...
    assert h.decide(limit - 40 * U + 1).allowed
    # ... reservations count toward the window, and at the limit nothing passes
    assert h.reserve(limit - 40 * U).allowed
    d = h.decide(U)
    assert (d.allowed, d.code) == (False, Code.VELOCITY)
    assert "velocity limit" in d.reason
    # five minutes later the window holds only the reservation again
    h.advance(minutes=6)
    assert h.decide(U).allowed


def test_velocity_window_and_multiple_are_configurable() -> None:
    t = Thresholds(max_hourly_spend_pct=1.0, frontload_protection_hours=0,
                   velocity_window_s=600, velocity_multiple=2.0)
    h = Harness({G: 2400 * U}, thresholds=t)
    h.at(NOON + timedelta(minutes=50))
    limit = int(200 * U / 3600 * 600 * 2.0)  # 66.67
    h.spend(int(limit), when=NOON + timedelta(minutes=42))  # the window is full
    assert h.decide(U).code is Code.VELOCITY
    h.advance(minutes=1)  # 12:51: minute 42 is still inside a 10-minute window
    assert h.decide(U).code is Code.VELOCITY
    h.advance(minutes=1)  # 12:52: it is not (a 5-minute window would have dropped it)
    assert h.decide(U).allowed


def test_hourly_cap_comes_before_velocity() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(NOON + timedelta(minutes=50))
    h.spend(200 * U)  # the hour's allowance is used up, and so is the velocity window
    assert h.decide(U).code is Code.HOURLY_CAP


# -- rule 8: performance threshold ---------------------------------------------------------
def test_performance_threshold_denies_after_the_grace_period() -> None:
    t = Thresholds(max_hourly_spend_pct=1.0, frontload_protection_hours=0,
                   min_conversion_rate=0.05, performance_grace_s=1800)
    h = Harness({G: 2400 * U}, thresholds=t)
    h.at(NOON)
    h.spend(U, clicks=400, conversions=1)
    h.advance(minutes=20)
    assert h.decide(U).allowed
    h.advance(minutes=11)
    h.tick()
    d = h.decide(U)
    assert (d.allowed, d.code) == (False, Code.PERFORMANCE_THRESHOLD)
    assert "conversion rate" in d.reason


# -- decisions carry remaining budget and a multiplier ------------------------------------
def test_decision_reports_remaining_and_multiplier() -> None:
    h = Harness({G: 2400 * U}, thresholds=UNCAPPED)
    h.at(NOON)
    h.spend(1200 * U, when=DAY0 + timedelta(hours=11))
    d = h.decide(U)
    assert d.allowed and d.code is Code.OK
    assert d.remaining_micros == 1200 * U
    assert d.pacing_multiplier == pytest.approx(1.0)


def test_decide_reserves_nothing() -> None:
    h = Harness()
    h.at(NOON)
    for _ in range(10):
        assert h.decide(U).allowed
    assert h.ch().reserved_total == 0


@pytest.mark.parametrize("channel", [ChannelType.SEARCH, ChannelType.SHOPPING])
def test_other_channels_are_independent(channel: ChannelType) -> None:
    h = Harness({G: 100 * U, channel: 100 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=23, minutes=55))
    h.spend(100 * U, when=DAY0 + timedelta(hours=23))
    assert h.decide(U).code is Code.DAILY_CAP
    assert h.decide(U, channel).allowed
